"""Answer uniqueness from a QA record's claims alone: does the question's structure pin its answer down?

Claims read "the RELATION of SUBJECT is OBJECT" (synth/prompts ask for them so), so a subject has one object per
relation. A variable of the claims (the answer, or an entity a description hides) is pinned when it is the object of
a claim whose subject is named or pinned ("the birthplace of X"), or the subject of at least `min_constraints`
claims whose objects are named or pinned ("the poet born in Tarnholm"). "Who was born in Tarnholm?" leaves its
answer open: many people may have been. This is structure, not the world: two constraints can still fit several
entities (the audit counts those against the ground truth); `wdtk filter --search` then looks for a second answer
in the world (synth/rivals.py, run by filters/gates.py).

    reason = drop_reason(qa, UniquenessConfig())     # "ambiguous_answer", "ambiguous_description" or None
"""

from __future__ import annotations

from dataclasses import dataclass

from ..synth.claims import ANSWER_VAR, is_variable, same_term


@dataclass(frozen=True)
class UniquenessConfig:
    """How many named constraints pin an entity that is only ever a claim's subject."""

    min_constraints: int = 2


def answer_claims(claims: list[dict], answer: str) -> list[dict]:
    """The claims with every end that names the answer written as the variable ?answer."""
    return [{**c, **{k: ANSWER_VAR for k in ("subject", "object") if same_term(c[k], answer)}} for c in claims]


def open_variables(claims: list[dict], cfg: UniquenessConfig) -> list[str]:
    """The claims' variables that nothing pins, in order of first appearance."""
    variables = list(dict.fromkeys(t for c in claims for t in (c["subject"], c["object"]) if is_variable(t)))
    pinned: set[str] = set()

    def fixed(term: str) -> bool:
        return not is_variable(term) or term in pinned

    changed = True
    while changed:
        changed = False
        for var in variables:
            if var in pinned:
                continue
            as_object = any(c["object"] == var and fixed(c["subject"]) for c in claims)
            as_subject = sum(c["subject"] == var and fixed(c["object"]) for c in claims)
            if as_object or as_subject >= cfg.min_constraints:
                pinned.add(var)
                changed = True
    return [v for v in variables if v not in pinned]


def drop_reason(qa: dict, cfg: UniquenessConfig) -> str | None:
    """Why the record's claims leave its answer (or a described entity) open, or None; records without claims, and
    COUNT questions (a count is one number), pass."""
    if not qa.get("claims") or str(qa.get("type", "")).upper() == "COUNT":
        return None
    unpinned = open_variables(answer_claims(qa["claims"], str(qa["answer"])), cfg)
    if any(v != ANSWER_VAR for v in unpinned):  # an open description leaves everything it leads to open too
        return "ambiguous_description"
    return "ambiguous_answer" if unpinned else None
