"""Answer uniqueness by search: look for a second answer to the question, and ask the LLM about each page found.

A question with two correct answers teaches an agent nothing reliable (ASearcher checks this before keeping a
question). The claims-only check (filters/uniqueness.py) sees a question's structure; this one looks at the world.
For each question, the search engine is asked the question itself and each constraint on the answer ("birthplace
Tarnholm", or for a described neighbour its conditions: "employer astronomer the 1850s"); the pages it returns,
but the gold answer's own, are the candidates. The LLM (synth/prompts/rival_check.txt) reads each page beside the
question (and the claims it was built from) and names what on it, the page's subject or anything it lists, meets
every condition other than the gold answer, or nothing. A rival it names must be written on the page (a name the
model made up is ignored) and must not be the gold answer; the first one makes the question `ambiguous`, recorded.

It sits at the synth floor so that synthesis (synth/graphqa.py) can keep only unique questions; `wdtk filter`
runs it on any QA through filters/gates.py.

    rival, info = await find_rival(qa, ctx, RivalConfig())   # ({"name", "url"} or None, what was checked)
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from .claims import ANSWER_VAR, is_variable, same_term
from .linkgraph import site_suffix
from .llm.base import Sampling
from .prompting import load_prompt
from .text import contains

RIVAL_SCHEMA = {"type": "object", "required": ["rival"], "properties": {"rival": {"type": ["string", "null"]}}}


@dataclass(frozen=True)
class RivalConfig:
    """How hard to look for a second answer."""

    search_k: int = 5  # results per query
    max_queries: int = 3  # the question, then constraints on the answer
    max_candidates: int = 5  # pages the LLM reads per question
    max_page_chars: int = 2500  # of a candidate page shown to the LLM


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
                out.append(" ".join([c["relation"], *said]))  # the relation alone still finds its kind of page
    return list(dict.fromkeys(out))[: cfg.max_queries]


def _named(claim: dict, end: str) -> str:
    """How the question gives a claim's end: its range when blurred, else as written."""
    return claim.get("approx") if end == "object" and claim.get("approx") else claim[end]


def _is_answer(term: str, answer: str) -> bool:
    return term == ANSWER_VAR or same_term(term, answer)


def candidates(qa: dict, hits: list, cfg: RivalConfig) -> list[dict]:
    """Pages among search hits that may show a second answer, in rank order, each once: {"title", "url", "snippet"};
    the gold answer's own page is not one."""
    suffix = site_suffix([h.title for h in hits])
    out, seen = [], set()
    for h in hits:
        title = h.title.removesuffix(suffix).strip()
        if h.url in seen or same_term(title, qa["answer"]):
            continue
        seen.add(h.url)
        out.append({"title": title, "url": h.url, "snippet": h.snippet})
    return out[: cfg.max_candidates]


def render_claims(claims: list[dict]) -> str:
    """The facts block of the prompt: one JSON claim a line, or nothing for a question without claims."""
    if not claims:
        return ""
    keys = ("subject", "relation", "object", "approx")
    lines = "\n".join("- " + json.dumps({k: c[k] for k in keys if c.get(k)}, ensure_ascii=False) for c in claims)
    return f"The facts the question was built from (a name starting with ? is described, not named):\n{lines}\n"


async def rival_on(qa: dict, candidate: dict, ctx, cfg: RivalConfig) -> str | None:
    """The second answer the LLM finds on a candidate page ("" for none); None when its reply cannot be read. A name
    the page does not hold, or the gold answer again, counts as none."""
    page = ctx.search.get(candidate["url"]) if hasattr(ctx.search, "get") else None
    text = (page.text if page else candidate["snippet"])[: cfg.max_page_chars]
    prompt = load_prompt("rival_check")
    content = prompt.render(
        question=qa["question"],
        answer=qa["answer"],
        facts=render_claims(qa.get("claims", [])),
        title=candidate["title"],
        url=candidate["url"],
        page=text,
    )
    result = await ctx.client.chat_json(
        [{"role": "user", "content": content}],
        RIVAL_SCHEMA,
        Sampling(max_tokens=256),
        prompt_version=prompt.version,
        stage="uniqueness",
    )
    if result.value is None:
        return None
    rival = " ".join(str(result.value["rival"] or "").split())
    on_page = contains(f"{candidate['title']}\n{text}", rival)
    return rival if rival and on_page and not same_term(rival, qa["answer"]) else ""


async def find_rival(qa: dict, ctx, cfg: RivalConfig) -> tuple[dict | None, dict]:
    """(the first second answer the LLM finds on a candidate page, {"name", "url"}, or None; {"candidates": pages
    read, "unreadable": replies that could not be read}). Needs ctx.search."""
    found = await asyncio.gather(*(ctx.search.search(q, cfg.search_k) for q in queries(qa, cfg)))
    pages = candidates(qa, [h for hits in found for h in hits], cfg)
    rivals = await asyncio.gather(*(rival_on(qa, c, ctx, cfg) for c in pages))
    info = {"candidates": [c["url"] for c in pages], "unreadable": sum(r is None for r in rivals)}
    hit = next(((c, r) for c, r in zip(pages, rivals, strict=True) if r), None)
    return ({"name": hit[1], "url": hit[0]["url"]} if hit else None), info
