"""Claims: the facts a synthesised question is built from, as {subject, relation, object, source_url}.

Subject and object are names or values as written on the page, or variables (`?x`) for what a description hides.
CRAWLQA and E2HQA ask the model for them and check each against its source page: a cheap text check first (every
named end of the claim appears in the page's text), the LLM (synth/prompts/claim_check.txt) only when that fails.
E2HQA composes a hardened question's claims: the hidden entity becomes a variable shared with its description's.
"""

from __future__ import annotations

from collections import deque

from .llm.base import Sampling
from .prompting import load_prompt
from .text import contains, normalize

CLAIM_SCHEMA = {
    "type": "object",
    "required": ["subject", "relation", "object"],
    "properties": {
        "subject": {"type": ["string", "number"]},
        "relation": {"type": "string"},
        "object": {"type": ["string", "number"]},
        "source_url": {"type": "string"},
    },
}
CLAIMS_SCHEMA = {"type": "array", "items": CLAIM_SCHEMA}
SUPPORT_SCHEMA = {"type": "object", "required": ["supported"], "properties": {"supported": {"type": "boolean"}}}
ANSWER_VAR = "?answer"


def is_variable(term: str) -> bool:
    """Whether a claim's subject or object is a variable (`?x`) rather than a name or value."""
    return term.strip().startswith("?")


def clean(raw: list[dict] | None) -> list[dict]:
    """Claims as the model gave them, with strings stripped and empty ones dropped (source_url kept when given)."""
    out = []
    for c in raw or []:
        claim = {k: " ".join(str(c.get(k, "")).split()) for k in ("subject", "relation", "object")}
        if all(claim.values()):
            if str(c.get("source_url") or "").strip():
                claim["source_url"] = str(c["source_url"]).strip()
            out.append(claim)
    return out


def same_term(term: str, name: str) -> bool:
    """Whether a claim's term names `name` (normalised text equal)."""
    return not is_variable(term) and normalize(term) == normalize(name) != ""


def carries(claim: dict, answer: str) -> bool:
    """Whether the claim states the answer: one end is the answer (or the ?answer variable)."""
    return any(same_term(claim[k], answer) or claim[k] == ANSWER_VAR for k in ("subject", "object"))


def text_supports(claim: dict, text: str) -> bool:
    """The cheap check: every named end of the claim appears in `text` (a claim of two variables never passes)."""
    named = [claim[k] for k in ("subject", "object") if not is_variable(claim[k])]
    return bool(named) and all(contains(text, term) for term in named)


def bind(claims: list[dict], var: str, name: str | None = None, old_var: str | None = None) -> list[dict]:
    """The claims with every end that names `name`, or is the variable `old_var`, replaced by the variable `var`."""

    def term(t: str) -> str:
        return var if (name is not None and same_term(t, name)) or t == old_var else t

    return [{**c, "subject": term(c["subject"]), "object": term(c["object"])} for c in claims]


async def llm_supports(claim: dict, url: str, text: str, ctx, stage: str) -> bool | None:
    """The LLM's verdict on whether the page states the claim; None when its reply cannot be read."""
    prompt = load_prompt("claim_check")
    content = prompt.render(
        subject=claim["subject"], relation=claim["relation"], object=claim["object"], url=url, page=text
    )
    result = await ctx.client.chat_json(
        [{"role": "user", "content": content}],
        SUPPORT_SCHEMA,
        Sampling(max_tokens=256),
        prompt_version=prompt.version,
        stage=stage,
    )
    return None if result.value is None else bool(result.value["supported"])


def distances(claims: list[dict], target: str) -> dict[str, int]:
    """Shortest chains of claims from `target` to every term they reach: variables by name, named ends as "=name"."""
    edges: dict[str, set[str]] = {}
    for c in claims:
        s, o = (t if is_variable(t) else "=" + t.lower() for t in (c["subject"], c["object"]))
        edges.setdefault(s, set()).add(o)
        edges.setdefault(o, set()).add(s)
    distance, queue = {target: 0}, deque([target])
    while queue:
        node = queue.popleft()
        for nxt in edges.get(node, ()):
            if nxt not in distance:
                distance[nxt] = distance[node] + 1
                queue.append(nxt)
    return distance


def chain_hops(claims: list[dict], target: str) -> int | None:
    """The longest of the shortest chains of claims from a named end to `target`: how many hops the question reaches
    (the audit's hops); None when nothing named links to it."""
    named = [d for node, d in distances(claims, target).items() if node.startswith("=")]
    return max(named) if named else None


def source_key(url: str) -> str:
    """How a cited URL is matched to a page: normalised, as evidence URLs are."""
    return normalize(url)


async def check(claims: list[dict], pages: dict[str, tuple[str, str]], ctx, stage: str, llm_chars: int):
    """(None, claims marked with how each was checked and their source_url as the page's) when every claim is
    stated on its source page, else (the reject reason, []). `pages` maps source_key(url) to (url, text); a claim
    the text check misses goes to the LLM with the page's first `llm_chars` characters (0: no LLM, rejected)."""
    sources = [pages.get(source_key(c.get("source_url", ""))) for c in claims]
    if any(s is None for s in sources):
        return "claim_source_unknown", []
    cheap = [text_supports(c, text) for c, (_, text) in zip(claims, sources, strict=True)]
    checked = []
    for claim, (url, text), ok in zip(claims, sources, cheap, strict=True):
        verdict = ok or (await llm_supports(claim, url, text[:llm_chars], ctx, stage) if llm_chars else False)
        if verdict is None:
            return "claim_check_unparseable", []
        if not verdict:
            return "claim_unsupported", []
        checked.append({**claim, "source_url": url, "checked": "text" if ok else "llm"})
    return None, checked
