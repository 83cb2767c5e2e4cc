"""E2HQA: make easy questions hard. Each round replaces an entity in the question with a searched description.

One round: the LLM picks an entity named in the question (never the answer); the search engine looks it
up; the LLM turns the results into a description that identifies the entity without naming it; the
description replaces the name, so answering takes one more hop. The round is checked (entity really in
the question, name and answer absent from the description, the LLM agrees the answer is unchanged and
not given away) and otherwise rejected, keeping the previous question. Every hop is recorded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from .. import __version__
from ..schemas import RecordError, record_id
from .llm.base import Sampling
from .parallel import Backends, RunOptions, Stage, read_input, run_stage
from .prompting import load_prompt
from .text import contains

ENTITY_SCHEMA = {"type": "object", "required": ["entity"], "properties": {"entity": {"type": "string"}}}
DESCRIBE_SCHEMA = {"type": "object", "required": ["description"], "properties": {"description": {"type": "string"}}}
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
    return {
        "id": record_id("qa", question, answer),
        "question": question,
        "answer": answer,
        "type": "SIMPLE",
        "source": "seed",
        "evidence_urls": [],
        "meta": {"wdtk_version": __version__},
    }


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


async def rewrite_round(question: str, answer: str, ctx) -> tuple[dict | None, str | None, dict]:
    """(hop, None, {}) for a successful round, or (None, reason, detail) for a rejected one."""
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
    reason = round_reason(entity, description, answer, question)
    after = substitute(question, entity, description) if reason is None else None
    if reason or after is None:
        return None, reason or "entity_not_in_question", {"entity": entity, "description": description}
    checked = await _ask(
        ctx, "e2hqa_check", CHECK_SCHEMA, Sampling(max_tokens=256), before=question, after=after, answer=answer
    )
    if checked.value is None or not checked.value["same_answer"] or checked.value["leaks_answer"]:
        reason = "check_unparseable" if checked.value is None else "check_failed"
        return None, reason, {"entity": entity, "question_after": after, "raw": checked.raw}
    hop = {
        "entity": entity,
        "query": entity,
        "evidence_urls": list(dict.fromkeys(h.url for h in hits)),
        "question_before": question,
        "question_after": after,
    }
    return hop, None, {}


async def _ask(ctx, prompt_name: str, schema: dict, sampling: Sampling, **values):
    prompt = load_prompt(prompt_name)
    messages = [{"role": "user", "content": prompt.render(**values)}]
    return await ctx.client.chat_json(messages, schema, sampling, prompt_version=prompt.version, stage="e2hqa")


async def process_seed(seed: dict, ctx) -> tuple[list[dict], list[dict]]:
    """The hardened qa record (if any round succeeded) and one reject per failed round."""
    question, answer, hops, rejects = seed["question"], seed["answer"], [], []
    for round_no in range(1, ctx.config.rewrites + 1):
        hop, reason, detail = await rewrite_round(question, answer, ctx)
        if hop is None:
            rejects.append({"stage": "e2hqa", "reason": reason, "seed": seed["id"], "round": round_no, **detail})
            continue
        hops.append(hop)
        question = hop["question_after"]
    if not hops:
        return [], rejects
    return [hardened_record(seed, question, hops, ctx.client.llm.name)], rejects


def hardened_record(seed: dict, question: str, hops: list[dict], model: str) -> dict:
    """The qa record for a seed after its successful rounds: same answer, harder question, every hop kept."""
    evidence = list(dict.fromkeys([*seed.get("evidence_urls", []), *(u for h in hops for u in h["evidence_urls"])]))
    versions = ",".join(load_prompt(n).version for n in ("e2hqa_entity", "e2hqa_describe", "e2hqa_check"))
    return {
        "id": record_id("qa", question, seed["answer"]),
        "question": question,
        "answer": seed["answer"],
        "type": seed["type"] if seed["type"] != "SIMPLE" else "MULTI-HOP",
        "source": "e2hqa",
        "evidence_urls": evidence,
        "hops": hops,
        "meta": {"model": model, "prompt_version": versions, "parent_ids": [seed["id"]], "wdtk_version": __version__},
    }


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
