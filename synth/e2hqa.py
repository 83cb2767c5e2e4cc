"""E2HQA: make easy questions hard. Each round replaces an entity in the question with a searched description.

One round: the LLM picks an entity named in the question (never the answer); the search engine looks it
up; the LLM turns the results into a description that identifies the entity without naming it; the
description replaces the name, so answering takes one more hop. The round is checked (entity really in
the question, name and answer absent from the description, the LLM agrees the answer is unchanged and
not given away) and otherwise rejected, keeping the previous question. Every hop is recorded.

Claims (synth/claims.py): the description comes with the facts it uses, the hidden entity written `?x`; each must be
stated on the search result it cites (text check, then the LLM). The hardened question's claims are the seed's (asked
of the model once when a seed has none) with the replaced entity turned into a variable `?e1`, `?e2`, ... shared
with its description's claims, so the question keeps the structure it was built from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from .. import __version__
from ..schemas import RecordError, record_id
from . import claims as claimlib
from .llm.base import Sampling
from .parallel import Backends, RunOptions, Stage, read_input, run_stage
from .prompting import load_prompt
from .text import contains

ENTITY_SCHEMA = {"type": "object", "required": ["entity"], "properties": {"entity": {"type": "string"}}}
DESCRIBE_SCHEMA = {
    "type": "object",
    "required": ["description"],
    "properties": {"description": {"type": "string"}, "claims": claimlib.CLAIMS_SCHEMA},
}
SEED_CLAIMS_SCHEMA = {"type": "object", "required": ["claims"], "properties": {"claims": claimlib.CLAIMS_SCHEMA}}
CHECK_SCHEMA = {
    "type": "object",
    "required": ["same_answer", "leaks_answer"],
    "properties": {"same_answer": {"type": "boolean"}, "leaks_answer": {"type": "boolean"}},
}
QUESTION_KEYS = ("question", "problem", "query", "Question", "Problem")
ANSWER_KEYS = ("answer", "Answer", "gold", "gold_answer", "final_answer")


@dataclass(frozen=True)
class E2HQAConfig:
    """Options of the E2HQA stage."""

    rewrites: int = 3
    search_k: int = 5
    temperature: float = 0.7
    max_tokens: int = 512
    verify_with_llm: bool = True  # claims the text check misses go to the LLM (else they are rejected)
    max_page_chars: int = 2500  # of a cited page, shown to the LLM claim check
    check_claims: bool = True  # False: a description's claims are kept as given, unchecked (for bench/quality.py)


def seed_record(row: dict, path: str | None = None, index: int | None = None) -> dict:
    """A qa record from a seed row: wdtk qa records pass through; SimpleQA-style rows are converted."""
    if {"id", "question", "answer", "type", "source"} <= row.keys():
        return row
    question = next((str(row[k]).strip() for k in QUESTION_KEYS if row.get(k)), "")
    answer = next((str(row[k]).strip() for k in ANSWER_KEYS if row.get(k) not in (None, "")), "")
    if not question or not answer:
        keys = QUESTION_KEYS if not question else ANSWER_KEYS
        raise RecordError(
            f"seed has no {'question' if not question else 'answer'} (looked for: {', '.join(keys)})",
            path=path,
            index=index,
        )
    record = {
        "id": record_id("qa", question, answer),
        "question": question,
        "answer": answer,
        "type": "SIMPLE",
        "source": "seed",
        "evidence_urls": [],
        "meta": {"wdtk_version": __version__},
    }
    claims = [{k: c[k] for k in ("subject", "relation", "object")} for c in claimlib.clean(row.get("claims"))]
    return record | ({"claims": claims} if claims else {})


def substitute(question: str, entity: str, description: str) -> str | None:
    """The question with the first mention of `entity` replaced by `description`, or None if not found."""
    match = re.search(re.escape(entity), question, flags=re.IGNORECASE)
    if not match:
        return None
    return question[: match.start()] + description + question[match.end() :]


def round_reason(entity: str, description: str, answer: str, before: str) -> str | None:
    """Why a rewrite fails the checks that need no LLM, or None."""
    if not entity.strip() or not contains(before, entity):
        return "entity_not_in_question"
    if contains(entity, answer) or contains(answer, entity):
        return "entity_is_answer"
    if not description.strip():
        return "empty_description"
    if contains(description, entity):
        return "description_names_entity"
    if contains(description, answer):
        return "description_leaks_answer"
    return None


def claims_reason(claims: list[dict], var: str) -> str | None:
    """Why a description's claims cannot stand for it (none, or none about the described entity), or None."""
    if not any(var in (c["subject"], c["object"]) for c in claims):
        return "description_no_claims"
    return None


async def rewrite_round(question: str, answer: str, ctx, var: str = "?e1") -> tuple[dict | None, str | None, dict]:
    """(hop, None, {}) for a successful round, or (None, reason, detail) for a rejected one. The hidden entity is
    `var` in the hop's claims."""
    sampling = Sampling(temperature=ctx.config.temperature, max_tokens=ctx.config.max_tokens)
    picked = await _ask(ctx, "e2hqa_entity", ENTITY_SCHEMA, sampling, question=question, answer=answer)
    if picked.value is None:
        return None, "entity_unparseable", {"raw": picked.raw}
    entity = picked.value["entity"].strip()
    hits = await ctx.search.search(entity, ctx.config.search_k) if entity else []
    if not hits:
        return None, "no_search_results", {"entity": entity}
    results = "\n".join(f"- {h.title} ({h.url}): {h.snippet}" for h in hits)
    described = await _ask(
        ctx, "e2hqa_describe", DESCRIBE_SCHEMA, sampling, entity=entity, answer=answer, results=results
    )
    if described.value is None:
        return None, "description_unparseable", {"entity": entity, "raw": described.raw}
    description = described.value["description"].strip()
    claims = claimlib.bind(claimlib.clean(described.value.get("claims")), var, name=entity, old_var="?x")
    reason = round_reason(entity, description, answer, question)
    if reason is None and ctx.config.check_claims:
        reason = claims_reason(claims, var)
    after = substitute(question, entity, description) if reason is None else None
    detail = {"entity": entity, "description": description, "claims": claims}
    if reason or after is None:
        return None, reason or "entity_not_in_question", detail
    detail["question_after"] = after
    reason, checked = await checked_claims(claims, hits, ctx)
    if reason:
        return None, reason, detail
    verdict = await _ask(
        ctx, "e2hqa_check", CHECK_SCHEMA, Sampling(max_tokens=256), before=question, after=after, answer=answer
    )
    if verdict.value is None or not verdict.value["same_answer"] or verdict.value["leaks_answer"]:
        reason = "check_unparseable" if verdict.value is None else "check_failed"
        return None, reason, detail | {"raw": verdict.raw}
    hop = {
        "entity": entity,
        "query": entity,
        "evidence_urls": list(dict.fromkeys(h.url for h in hits)),
        "question_before": question,
        "question_after": after,
        "claims": checked,
    }
    return hop, None, {}


async def checked_claims(claims: list[dict], hits: list, ctx) -> tuple[str | None, list[dict]]:
    """The description's claims checked against the search results they cite, or why not (as given when the
    config turns the check off)."""
    if not ctx.config.check_claims:
        return None, claims
    llm_chars = ctx.config.max_page_chars if ctx.config.verify_with_llm else 0
    return await claimlib.check(claims, result_pages(hits, ctx.search), ctx, "e2hqa_claims", llm_chars)


def result_pages(hits: list, search) -> dict[str, tuple[str, str]]:
    """The text behind each search result, for checking claims: the stored page when the engine keeps pages (the
    local index), else the result's title and snippet."""
    pages = {}
    for h in hits:
        page = search.get(h.url) if hasattr(search, "get") else None
        pages[claimlib.source_key(h.url)] = (h.url, page.text if page else f"{h.title}\n{h.snippet}")
    return pages


async def seed_claims(seed: dict, ctx) -> tuple[list[dict], dict | None]:
    """The seed's claims; asked of the model (without sources) when the seed has none. A reject when unreadable."""
    if seed.get("claims"):
        return seed["claims"], None
    sampling = Sampling(temperature=ctx.config.temperature, max_tokens=ctx.config.max_tokens)
    asked = await _ask(
        ctx, "e2hqa_claims", SEED_CLAIMS_SCHEMA, sampling, question=seed["question"], answer=seed["answer"]
    )
    if asked.value is None:
        return [], {"stage": "e2hqa", "reason": "seed_claims_unparseable", "seed": seed["id"], "raw": asked.raw}
    return [{k: c[k] for k in ("subject", "relation", "object")} for c in claimlib.clean(asked.value["claims"])], None


async def _ask(ctx, prompt_name: str, schema: dict, sampling: Sampling, **values):
    prompt = load_prompt(prompt_name)
    messages = [{"role": "user", "content": prompt.render(**values)}]
    return await ctx.client.chat_json(messages, schema, sampling, prompt_version=prompt.version, stage="e2hqa")


async def process_seed(seed: dict, ctx) -> tuple[list[dict], list[dict]]:
    """The hardened qa record (if any round succeeded) and one reject per failed round."""
    question, answer, hops = seed["question"], seed["answer"], []
    claims, rejected = await seed_claims(seed, ctx)
    rejects = [rejected] if rejected else []
    for round_no in range(1, ctx.config.rewrites + 1):
        var = f"?e{len(hops) + 1}"
        hop, reason, detail = await rewrite_round(question, answer, ctx, var)
        if hop is None:
            if "question_after" in detail:  # the candidate the round would have made, for the audit
                composed = [*claimlib.bind(claims, var, name=detail["entity"]), *detail.pop("claims")]
                detail["candidate"] = {"question": detail["question_after"], "answer": answer, "claims": composed}
            rejects.append({"stage": "e2hqa", "reason": reason, "seed": seed["id"], "round": round_no, **detail})
            continue
        hops.append(hop)
        question = hop["question_after"]
        claims = [*claimlib.bind(claims, var, name=hop["entity"]), *hop["claims"]]
    if not hops:
        return [], rejects
    return [hardened_record(seed, question, hops, ctx.client.llm.name, claims)], rejects


def hardened_record(seed: dict, question: str, hops: list[dict], model: str, claims: list[dict] = ()) -> dict:
    """The qa record for a seed after its successful rounds: same answer, harder question, every hop kept."""
    evidence = list(dict.fromkeys([*seed.get("evidence_urls", []), *(u for h in hops for u in h["evidence_urls"])]))
    names = ("e2hqa_entity", "e2hqa_describe", "claim_check", "e2hqa_check")
    versions = ",".join(load_prompt(n).version for n in names)
    record = {
        "id": record_id("qa", question, seed["answer"]),
        "question": question,
        "answer": seed["answer"],
        "type": seed["type"] if seed["type"] != "SIMPLE" else "MULTI-HOP",
        "source": "e2hqa",
        "evidence_urls": evidence,
        "hops": hops,
        "meta": {"model": model, "prompt_version": versions, "parent_ids": [seed["id"]], "wdtk_version": __version__},
    }
    return record | ({"claims": list(claims)} if claims else {})


def run(
    seeds: Path,
    out_dir: Path,
    cfg: E2HQAConfig,
    backends: Backends,
    opts: RunOptions | None = None,
    limit: int | None = None,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """E2HQA over seed QA (wdtk qa records or SimpleQA-style rows): hardened qa records in out_dir/records."""
    rows = (seed_record(row, str(seeds), i) for i, row in enumerate(read_input(seeds, opts)))
    stage = Stage("e2hqa", process_seed, cfg, "qa", backends, needs_search=True)
    return run_stage(stage, islice(rows, limit), out_dir, opts, progress)
