"""CRAWLQA: question-answer pairs written by an LLM from a crawled page and its sublinks.

A group is a root page plus the pages it links to (navigation links, those found on a large share of
all pages, are left out). The LLM gets the group's text and the requested question types and answers
in JSON; every pair is then checked (type asked for, short answer, answer not in the question, evidence
URLs from the group, answer supported by the evidence text) and kept or rejected with a reason. Each pair carries
its claims (synth/claims.py): the facts it is built from, one of them stating the answer, each checked against its
source page; a pair with no claims, none carrying the answer, or one its page does not state is rejected.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from .. import __version__
from ..schemas import record_id
from . import claims as claimlib
from .llm.base import Sampling
from .parallel import Backends, RunOptions, Stage, read_input, run_stage
from .prompting import load_prompt
from .text import contains, is_number, normalize, word_count

QA_TYPES = {
    "SIMPLE": "a fact stated on one page.",
    "COUNT": "how many items of some kind the pages list or mention (the answer is a number).",
    "MULTI-HOP": "needs two facts from two different pages, chained (e.g. the birthplace of the founder of X).",
    "INTERSECTION": "the one entity that meets two or more conditions stated on different pages.",
    "COMPARISON": "compares two entities on an attribute (earlier, larger, ...); the answer names one of them.",
    "TEMPORAL": "about a date or year, or about the order of events.",
}

QA_OUTPUT_SCHEMA = {
    "type": "object",
    "required": ["qa"],
    "properties": {
        "qa": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "question", "answer", "evidence_urls"],
                "properties": {
                    "type": {"type": "string"},
                    "question": {"type": "string"},
                    "answer": {"type": ["string", "number"]},
                    "evidence_urls": {"type": "array", "items": {"type": "string"}},
                    "evidence": {"type": "string"},
                    "claims": claimlib.CLAIMS_SCHEMA,
                },
            },
        }
    },
}
SUPPORT_SCHEMA = {"type": "object", "required": ["supported"], "properties": {"supported": {"type": "boolean"}}}


@dataclass(frozen=True)
class CrawlQAConfig:
    """Options of the CRAWLQA stage."""

    types: tuple[str, ...] = ("COUNT", "MULTI-HOP", "INTERSECTION")
    per_type: int = 1
    max_sublinks: int = 4
    max_page_chars: int = 2500
    nav_link_share: float = 0.3  # a link on more than this share of pages is navigation, not a sublink
    max_answer_words: int = 8
    temperature: float = 0.7
    max_tokens: int = 1024
    verify_with_llm: bool = True
    check_claims: bool = True  # False: claims are kept as given, unchecked (what bench/quality.py compares against)


def page_groups(pages: Iterable[dict], cfg: CrawlQAConfig) -> Iterator[dict]:
    """Groups of a root page and up to cfg.max_sublinks of the pages it links to, in crawl order."""
    pages = [p for p in pages if p.get("text")]
    by_url = {p["url"]: p for p in pages} | {p["final_url"]: p for p in pages}
    link_counts = Counter(link for p in pages for link in set(p["links"]))
    nav = {link for link, n in link_counts.items() if n > cfg.nav_link_share * len(pages)}
    for root in pages:
        subs = [by_url[u] for u in root["links"] if u in by_url and u not in nav and by_url[u] is not root]
        members = [root, *_unique(subs)][: 1 + cfg.max_sublinks]
        if len(members) < 2:
            continue
        yield {
            "id": record_id("group", [m["url"] for m in members]),
            "root": root["url"],
            "pages": [{"id": m["id"], "url": m["final_url"], "title": m["title"], "text": m["text"]} for m in members],
        }


def _unique(pages: list[dict]) -> list[dict]:
    """Pages in order, each once (a page reached by two URLs is one page)."""
    return list({p["id"]: p for p in pages}.values())


def render_messages(group: dict, cfg: CrawlQAConfig) -> list[dict]:
    """The chat messages that ask for QA over one group."""
    definitions = "\n".join(f"- {t}: {QA_TYPES.get(t, 'a question of this kind.')}" for t in cfg.types)
    pages = "\n\n".join(
        f"[Page {i}] {p['title']}\nURL: {p['url']}\n{p['text'][: cfg.max_page_chars]}"
        for i, p in enumerate(group["pages"], 1)
    )
    prompt = load_prompt("crawlqa").render(type_definitions=definitions, per_type=cfg.per_type, pages=pages)
    return [{"role": "user", "content": prompt}]


def drop_reason(qa: dict, group: dict, cfg: CrawlQAConfig) -> str | None:
    """Why a generated pair fails the checks that need no LLM, or None if it passes them."""
    question, answer = qa["question"].strip(), str(qa["answer"]).strip()
    if qa["type"].upper() not in cfg.types:
        return "type_not_requested"
    if not question or not answer:
        return "empty"
    if word_count(answer) > cfg.max_answer_words:
        return "answer_too_long"
    if contains(question, answer):
        return "answer_in_question"
    if qa["type"].upper() == "COUNT" and not is_number(answer):
        return "count_not_a_number"
    if not evidence_pages(qa, group):
        return "evidence_not_in_group"
    claims = claimlib.clean(qa.get("claims"))
    if not cfg.check_claims:
        return None
    if not claims:
        return "no_claims"
    if qa["type"].upper() != "COUNT" and not any(claimlib.carries(c, answer) for c in claims):
        return "answer_not_in_claims"  # a COUNT answer is counted from its claims, not stated in one
    return None


def evidence_pages(qa: dict, group: dict) -> list[dict]:
    """The group's pages that the pair cites as evidence."""
    cited = {normalize(u) for u in qa.get("evidence_urls", [])}
    return [p for p in group["pages"] if normalize(p["url"]) in cited]


def supported_by_text(qa: dict, group: dict) -> bool:
    """Whether the answer appears in the cited pages' text (a COUNT answer cannot, and needs the LLM)."""
    return any(contains(p["text"], str(qa["answer"])) for p in evidence_pages(qa, group))


def qa_record(qa: dict, group: dict, model: str, claims: list[dict]) -> dict:
    """The schema's qa record for a pair that passed every check."""
    question, answer = qa["question"].strip(), str(qa["answer"]).strip()
    cited = evidence_pages(qa, group)
    return {
        "id": record_id("qa", question, answer),
        "question": question,
        "answer": answer,
        "type": qa["type"].upper(),
        "source": "crawlqa",
        "evidence_urls": [p["url"] for p in cited],
        "claims": claims,
        "meta": {
            "model": model,
            "prompt_version": load_prompt("crawlqa").version,
            "parent_ids": [p["id"] for p in cited],
            "group": group["id"],
            "wdtk_version": __version__,
        },
    }


async def process_group(group: dict, ctx) -> tuple[list[dict], list[dict]]:
    """Kept qa records and rejects for one group: one generation call, then checks per pair."""
    cfg: CrawlQAConfig = ctx.config
    prompt = load_prompt("crawlqa")
    sampling = Sampling(temperature=cfg.temperature, max_tokens=cfg.max_tokens)
    result = await ctx.client.chat_json(
        render_messages(group, cfg), QA_OUTPUT_SCHEMA, sampling, prompt_version=prompt.version, stage="crawlqa"
    )
    if result.value is None:
        return [], [reject("unparseable", group, detail=result.error, raw=result.raw)]
    if not result.value["qa"]:  # an empty list is an answer too: the group is accounted for, with the reply
        return [], [reject("empty", group, raw=result.raw)]
    kept, rejects = [], []
    for qa in result.value["qa"]:
        reason, claims = await check_pair(qa, group, ctx)
        if reason:
            rejects.append(reject(reason, group, candidate=qa))
        else:
            kept.append(qa_record(qa, group, ctx.client.llm.name, claims))
    return kept, rejects


async def check_pair(qa: dict, group: dict, ctx) -> tuple[str | None, list[dict]]:
    """(None, checked claims) for a pair that passes every check, else (the reject reason, [])."""
    cfg: CrawlQAConfig = ctx.config
    reason = drop_reason(qa, group, cfg)
    if reason is None and not supported_by_text(qa, group):
        reason = await _llm_support(qa, group, ctx) if cfg.verify_with_llm else "unsupported"
    if reason:
        return reason, []
    pages = {claimlib.source_key(p["url"]): (p["url"], p["text"]) for p in group["pages"]}
    claims = claimlib.clean(qa.get("claims"))
    if not cfg.check_claims:
        return None, claims
    llm_chars = cfg.max_page_chars if cfg.verify_with_llm else 0
    return await claimlib.check(claims, pages, ctx, "crawlqa_claims", llm_chars)


async def _llm_support(qa: dict, group: dict, ctx) -> str | None:
    prompt = load_prompt("support_check")
    evidence = "\n\n".join(p["text"][: ctx.config.max_page_chars] for p in evidence_pages(qa, group))
    messages = [
        {"role": "user", "content": prompt.render(question=qa["question"], answer=qa["answer"], evidence=evidence)}
    ]
    result = await ctx.client.chat_json(
        messages, SUPPORT_SCHEMA, Sampling(max_tokens=256), prompt_version=prompt.version, stage="crawlqa_verify"
    )
    if result.value is None:
        return "support_check_unparseable"
    return None if result.value["supported"] else "unsupported"


def reject(reason: str, group: dict, **extra) -> dict:
    """A rejected output, kept for auditing: why, from which group, and what the model said."""
    return {
        "stage": "crawlqa",
        "reason": reason,
        "group": group["id"],
        "root": group["root"],
        **{k: v for k, v in extra.items() if v is not None},
    }


def run(
    pages: Path,
    out_dir: Path,
    cfg: CrawlQAConfig,
    backends: Backends,
    opts: RunOptions | None = None,
    max_groups: int | None = None,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """CRAWLQA over crawled page records: qa records in out_dir/records, rejects in out_dir/rejects."""
    groups = islice(page_groups(read_input(pages, opts, kind="page"), cfg), max_groups)
    return run_stage(Stage("crawlqa", process_group, cfg, "qa", backends), groups, out_dir, opts, progress)
