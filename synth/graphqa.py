"""Graph-walk synthesis (`wdtk synth graphqa`): hard questions composed along random walks over the crawl's links.

After WebSailor's SailorFog-QA and WebShaper: a walk of 3 to 6 linked pages (synth/linkgraph.py) is a chain of
entities; the LLM extracts each page's facts as claims (synth/prompts/graphqa_extract.txt, one call per page, cached),
then composes one question whose answer is an entity or value on the walk's last page, with the walk's claims as
its conditions, blurred: names become descriptions, exact dates and numbers become ranges
(synth/prompts/graphqa_compose.txt). It returns the claims it used (a range as `approx`) and the names it hid.

A question is kept only if it passes, in order: a short answer that the question does not contain (nor every word
of it), no hidden name or exact blurred value left in the question, claims that carry the answer from the last page
and chain at least `min_hops` hops from what the question names, every claim stated on the walk page it cites
(synth/claims.py: text check, then the LLM), and no second answer found by search (synth/rivals.py). The difficulty
gate runs after synthesis, in `wdtk filter --difficulty` (filters/difficulty.py). Kept records: type GRAPH, the
claims with hidden names as variables ?e1, ?e2, ..., the walk's URLs in `walk`, its steps in `hops`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from .. import __version__
from ..schemas import record_id
from . import claims as claimlib
from .linkgraph import LinkGraph, WalkConfig
from .llm.base import Sampling
from .parallel import Backends, RunOptions, Stage, read_input, run_stage
from .prompting import load_prompt
from .rivals import RivalConfig, find_rival
from .text import contains, normalize, word_count

EXTRACT_SCHEMA = {"type": "object", "required": ["claims"], "properties": {"claims": claimlib.CLAIMS_SCHEMA}}
COMPOSED_CLAIM = {**claimlib.CLAIM_SCHEMA, "properties": {**claimlib.CLAIM_SCHEMA["properties"], "approx": {}}}
COMPOSE_SCHEMA = {
    "type": "object",
    "required": ["question", "answer", "claims"],
    "properties": {
        "question": {"type": "string"},
        "answer": {"type": ["string", "number"]},
        "claims": {"type": "array", "items": COMPOSED_CLAIM},
        "hidden": {"type": "array", "items": {"type": ["string", "number"]}},
    },
}
PROMPTS = ("graphqa_extract", "graphqa_compose", "claim_check", "rival_check")


@dataclass(frozen=True)
class GraphQAConfig:
    """Options of graph-walk synthesis."""

    walk: WalkConfig = field(default_factory=WalkConfig)
    max_page_chars: int = 3000  # of each page, shown to the extraction and claim-check prompts
    max_claims: int = 12  # per page
    max_answer_words: int = 8
    temperature: float = 0.7
    max_tokens: int = 1024
    verify_with_llm: bool = True  # claims the text check misses go to the LLM (else they are rejected)
    rivals: RivalConfig | None = field(default_factory=RivalConfig)  # None: no search for a second answer


# --- extraction, once per page ----------------------------------------------------------------------------------

# backend -> {extraction prompt: task}. Keyed by the backend, which a worker process shares, not by the client: each
# partition gets its own client and several partitions run at once on the process's loop, so walks through one
# page in two partitions would each call for it. Entries leave when the call ends: the response cache answers after.
_IN_FLIGHT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def page_claims(page: dict, ctx) -> tuple[list[dict], str | None]:
    """(the page's facts as claims with its URL as source, the model's raw reply when it could not be read); walks
    sharing a page share one call: at once through the in-flight task, later through the response cache."""
    cfg: GraphQAConfig = ctx.config
    prompt = load_prompt("graphqa_extract")
    content = prompt.render(
        title=page["title"], url=page["url"], text=page["text"][: cfg.max_page_chars], max_claims=cfg.max_claims
    )
    tasks = _IN_FLIGHT.setdefault(ctx.client.llm, {})
    if content not in tasks:
        tasks[content] = task = asyncio.ensure_future(_extract(content, prompt.version, page["url"], ctx))
        task.add_done_callback(lambda _: tasks.pop(content, None))
    return await asyncio.shield(tasks[content])


async def _extract(content: str, version: str, url: str, ctx) -> tuple[list[dict], str | None]:
    cfg: GraphQAConfig = ctx.config
    result = await ctx.client.chat_json(
        [{"role": "user", "content": content}],
        EXTRACT_SCHEMA,
        Sampling(temperature=0.0, max_tokens=cfg.max_tokens),
        prompt_version=version,
        stage="graphqa_extract",
    )
    if result.value is None:
        return [], result.raw
    return [{**c, "source_url": url} for c in claimlib.clean(result.value["claims"])[: cfg.max_claims]], None


def render_walk(walk: dict, claims: list[list[dict]]) -> str:
    """The walk for the compose prompt: each page's title, URL and claims, in order."""
    blocks = []
    for i, (page, facts) in enumerate(zip(walk["pages"], claims, strict=True), 1):
        lines = "\n".join(f"- {c['subject']} | {c['relation']} | {c['object']}" for c in facts) or "- (none found)"
        blocks.append(f"[Page {i}] {page['title']}\nURL: {page['url']}\n{lines}")
    return "\n\n".join(blocks)


# --- the checks -------------------------------------------------------------------------------------------------


def composed_claims(raw: list[dict] | None) -> list[dict]:
    """Claims as the model gave them (synth/claims.clean), keeping each one's `approx` wording."""
    out = []
    for c in raw or []:
        approx = " ".join(str(c.get("approx") or "").split())
        out += [claim | ({"approx": approx} if approx else {}) for claim in claimlib.clean([c])]
    return out


def bound(claims: list[dict], hidden: list[str], answer: str) -> list[dict]:
    """The claims with each hidden name (not the answer) turned into a variable ?e1, ?e2, ... in order."""
    names = [h for h in dict.fromkeys(hidden) if normalize(h) and normalize(h) != normalize(answer)]
    for i, name in enumerate(names, 1):
        claims = claimlib.bind(claims, f"?e{i}", name=name)
    return claims


def drop_reason(q: dict, walk: dict, cfg: GraphQAConfig) -> str | None:
    """Why a composed question fails the checks that need no LLM, or None. `q` holds question, answer, claims (as
    composed, names written out) and hidden."""
    question, answer = q["question"], q["answer"]
    if not question or not answer:
        return "empty"
    if word_count(answer) > cfg.max_answer_words:
        return "answer_too_long"
    words = set(normalize(answer).split())
    if contains(question, answer) or (len(words) > 1 and words <= set(normalize(question).split())):
        return "answer_in_question"
    if any(contains(question, h) for h in q["hidden"] if normalize(h) != normalize(answer)):
        return "name_in_question"
    if any(c.get("approx") and contains(question.replace(c["approx"], " "), c["object"]) for c in q["claims"]):
        return "value_not_blurred"
    if not q["claims"]:
        return "no_claims"
    last = walk["pages"][-1]
    carrying = [c for c in q["claims"] if claimlib.carries(c, answer)]
    if not carrying:
        return "answer_not_in_claims"
    on_last = any(claimlib.source_key(c.get("source_url", "")) == claimlib.source_key(last["url"]) for c in carrying)
    if not on_last and not claimlib.same_term(last["title"], answer):  # the last page's value, or its subject
        return "answer_not_at_walk_end"
    # as the audit counts them: a blurred value is the range the question states, so two conditions blurred to the
    # same range ("the 1870s") are one named end, and the chain from it may be shorter than from the exact values
    stated = [{**c, "object": c["approx"]} if c.get("approx") else c for c in q["claims"]]
    pattern = claimlib.bind(bound(stated, q["hidden"], answer), claimlib.ANSWER_VAR, name=answer)
    hops = claimlib.chain_hops(pattern, claimlib.ANSWER_VAR)
    if hops is None or hops < cfg.walk.min_hops:
        return "too_few_hops"
    return None


async def check(q: dict, walk: dict, ctx) -> tuple[str | None, list[dict], dict]:
    """(None, checked claims with hidden names bound, uniqueness info) for a question that passes every check, else
    (the reason, [], detail). Claims are checked as composed, names written out, so the text check can see them."""
    cfg: GraphQAConfig = ctx.config
    if reason := drop_reason(q, walk, cfg):
        return reason, [], {}
    pages = {claimlib.source_key(p["url"]): (p["url"], p["text"]) for p in walk["pages"]}
    llm_chars = cfg.max_page_chars if cfg.verify_with_llm else 0
    reason, checked = await claimlib.check(q["claims"], pages, ctx, "graphqa_claims", llm_chars)
    if reason:
        return reason, [], {}
    checked = bound(checked, q["hidden"], q["answer"])
    info = {}
    if cfg.rivals is not None and ctx.search is not None:
        rival, info = await find_rival({**q, "claims": checked}, ctx, cfg.rivals)
        if rival:
            return "ambiguous", [], {"rival": rival, **info}
    return None, checked, info


# --- one walk ---------------------------------------------------------------------------------------------------


async def process_walk(walk: dict, ctx) -> tuple[list[dict], list[dict]]:
    """The kept GRAPH record (or none) and the reject for one walk: extraction, composition, checks."""
    cfg: GraphQAConfig = ctx.config
    extracted = await asyncio.gather(*(page_claims(p, ctx) for p in walk["pages"]))
    claims = [c for c, _ in extracted]
    if not any(claims):  # with what the model said instead, for the pages it could not be read on
        return [], [reject("no_claims_extracted", walk, raw=[raw for _, raw in extracted if raw] or None)]
    prompt = load_prompt("graphqa_compose")
    content = prompt.render(walk=render_walk(walk, claims), last=len(walk["pages"]))
    result = await ctx.client.chat_json(
        [{"role": "user", "content": content}],
        COMPOSE_SCHEMA,
        Sampling(temperature=cfg.temperature, max_tokens=cfg.max_tokens),
        prompt_version=prompt.version,
        stage="graphqa",
    )
    if result.value is None:
        return [], [reject("unparseable", walk, detail=result.error, raw=result.raw)]
    answer = str(result.value["answer"]).strip()
    hidden = [str(h).strip() for h in result.value.get("hidden") or []]
    q = {"question": result.value["question"].strip(), "answer": answer, "hidden": hidden}
    q["claims"] = composed_claims(result.value["claims"])
    reason, checked, info = await check(q, walk, ctx)
    if reason:  # the question it would have made, for the audit
        claims = bound(q["claims"], hidden, answer)
        candidate = {"type": "GRAPH", "question": q["question"], "answer": answer, "claims": claims}
        return [], [reject(reason, walk, candidate=candidate | {"hops": len(walk["urls"]) - 1}, **info)]
    return [graph_record(q, checked, walk, ctx.client.llm.name, info)], []


def graph_record(q: dict, claims: list[dict], walk: dict, model: str, uniqueness: dict) -> dict:
    """The qa record of a kept question: type GRAPH, its claims, the walk and its steps."""
    urls = walk["urls"]
    cited = {c["source_url"] for c in claims}
    meta = {
        "model": model,
        "prompt_version": ",".join(load_prompt(n).version for n in PROMPTS),
        "parent_ids": [p["id"] for p in walk["pages"]],
        "walk": walk["id"],
        "wdtk_version": __version__,
    }
    if uniqueness:
        meta["uniqueness"] = {"method": "search", **uniqueness}
    return {
        "id": record_id("qa", q["question"], q["answer"]),
        "question": q["question"],
        "answer": q["answer"],
        "type": "GRAPH",
        "source": "graphqa",
        "evidence_urls": [u for u in urls if u in cited],
        "claims": claims,
        "walk": urls,
        "hops": [{"from": a, "to": b} for a, b in zip(urls, urls[1:], strict=False)],
        "meta": meta,
    }


def reject(reason: str, walk: dict, **extra) -> dict:
    """A rejected walk, kept for auditing: why, which walk, and what the model said."""
    return {"stage": "graphqa", "reason": reason, "walk": walk["id"], "urls": walk["urls"], **extra}


def walk_hops(record: dict) -> str:
    """What the stage summary tallies per kept record: its walk's hops."""
    return str(len(record["hops"]))


def run(
    pages: Path,
    out_dir: Path,
    cfg: GraphQAConfig,
    backends: Backends,
    opts: RunOptions | None = None,
    max_walks: int | None = None,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """Graph-walk synthesis over crawled page records: GRAPH qa records in out_dir/records, rejects beside them."""
    walks = islice(LinkGraph.build(read_input(pages, opts, kind="page"), cfg.walk).walks(), max_walks)
    stage = Stage("graphqa", process_walk, cfg, "qa", backends, tally=walk_hops)
    return run_stage(stage, walks, out_dir, opts, progress)
