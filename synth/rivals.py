"""Answer uniqueness by search: look for another answer that fits the question, and ask the LLM about each one.

A question with two correct answers teaches an agent nothing reliable (ASearcher checks this before keeping a
question). The claims-only check (filters/uniqueness.py) sees a question's structure; this one looks at the world.
For each question, the search engine is asked the question itself and each constraint on the answer ("birthplace
Tarnholm", or for a described neighbour its conditions: "employer astronomer the 1850s"); the pages it returns are
candidates, their subjects (page titles) taken as rival answers, leaving out the gold answer and names the question
itself contains. The LLM (synth/prompts/rival_check.txt) reads each
candidate's page beside the question (and the claims it was built from) and says whether the candidate satisfies
every condition. The first one it confirms makes the question `ambiguous`, and is recorded.

It sits at the synth floor so that synthesis (synth/graphqa.py) can keep only unique questions; `wdtk filter`
runs it on any QA through filters/gates.py.

    rival, info = await find_rival(qa, ctx, RivalConfig())   # ({"name", "url", "reason"} or None, what was checked)
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from .claims import ANSWER_VAR, is_variable, same_term
from .linkgraph import site_suffix
from .llm.base import Sampling
from .prompting import load_prompt
from .text import contains, normalize

SATISFIES_SCHEMA = {"type": "object", "required": ["satisfies"], "properties": {"satisfies": {"type": "boolean"}}}


@dataclass(frozen=True)
class RivalConfig:
    """How hard to look for a second answer."""

    search_k: int = 5  # results per query
    max_queries: int = 3  # the question, then constraints on the answer
    max_candidates: int = 5  # LLM checks per question
    max_page_chars: int = 1500  # of a candidate's page shown to the LLM


def queries(qa: dict, cfg: RivalConfig) -> list[str]:
    """The question, then per claim on the answer its relation with what the claim names at its other end, or with
    what the claims say of that end when the question only describes it ("employer astronomer the 1850s")."""
    claims, answer, out = qa.get("claims", []), qa["answer"], [qa["question"]]
    for c in claims:
        for end, other in (("subject", "object"), ("object", "subject")):
            if not _is_answer(c[end], answer) or _is_answer(c[other], answer):
                continue
            if not is_variable(c[other]):
                out.append(f"{c['relation']} {_named(c, other)}")
            else:  # the neighbour is described: its named conditions stand for it
                said = [
                    _named(d, "object")
                    for d in claims
                    if d["subject"] == c[other]
                    and not is_variable(d["object"])
                    and not _is_answer(d["object"], answer)
                ]
                out += [" ".join([c["relation"], *said])] if said else []
    return list(dict.fromkeys(out))[: cfg.max_queries]


def _named(claim: dict, end: str) -> str:
    """How the question gives a claim's end: its range when blurred, else as written."""
    return claim.get("approx") if end == "object" and claim.get("approx") else claim[end]


def _is_answer(term: str, answer: str) -> bool:
    return term == ANSWER_VAR or same_term(term, answer)


def candidates(qa: dict, hits: list, cfg: RivalConfig) -> list[dict]:
    """Rival answers among search hits, in rank order: {"name", "url"}; the gold answer and names in the question
    are not rivals."""
    suffix = site_suffix([h.title for h in hits])
    out, seen = [], {normalize(qa["answer"])}
    for h in hits:
        name = h.title.removesuffix(suffix).strip()
        key = normalize(name)
        if not key or key in seen or contains(name, qa["answer"]) or contains(qa["answer"], name):
            continue
        seen.add(key)
        if contains(qa["question"], name):  # what the question names is a constraint, not an answer
            continue
        out.append({"name": name, "url": h.url, "snippet": h.snippet})
    return out[: cfg.max_candidates]


def render_claims(claims: list[dict]) -> str:
    """The facts block of the prompt: one JSON claim a line, or nothing for a question without claims."""
    if not claims:
        return ""
    keys = ("subject", "relation", "object", "approx")
    lines = "\n".join("- " + json.dumps({k: c[k] for k in keys if c.get(k)}, ensure_ascii=False) for c in claims)
    return f"The facts the question was built from (a name starting with ? is described, not named):\n{lines}\n"


async def confirms(qa: dict, candidate: dict, ctx, cfg: RivalConfig) -> bool | None:
    """The LLM's verdict on whether `candidate` also answers the question; None when its reply cannot be read."""
    page = ctx.search.get(candidate["url"]) if hasattr(ctx.search, "get") else None
    text = page.text if page else candidate["snippet"]
    prompt = load_prompt("rival_check")
    content = prompt.render(
        question=qa["question"],
        answer=qa["answer"],
        facts=render_claims(qa.get("claims", [])),
        candidate=candidate["name"],
        url=candidate["url"],
        page=text[: cfg.max_page_chars],
    )
    result = await ctx.client.chat_json(
        [{"role": "user", "content": content}],
        SATISFIES_SCHEMA,
        Sampling(max_tokens=256),
        prompt_version=prompt.version,
        stage="uniqueness",
    )
    return None if result.value is None else bool(result.value["satisfies"])


async def find_rival(qa: dict, ctx, cfg: RivalConfig) -> tuple[dict | None, dict]:
    """(the first candidate the LLM confirms as a second answer, or None; {"candidates": names checked,
    "unreadable": replies that could not be read}). Needs ctx.search."""
    found = await asyncio.gather(*(ctx.search.search(q, cfg.search_k) for q in queries(qa, cfg)))
    rivals = candidates(qa, [h for hits in found for h in hits], cfg)
    verdicts = await asyncio.gather(*(confirms(qa, c, ctx, cfg) for c in rivals))
    info = {"candidates": [c["name"] for c in rivals], "unreadable": sum(v is None for v in verdicts)}
    rival = next((c for c, v in zip(rivals, verdicts, strict=True) if v), None)
    return ({"name": rival["name"], "url": rival["url"]} if rival else None), info
