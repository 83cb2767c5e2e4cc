"""Verdicts of the audit, one pure function per record: a QA record or a trajectory against the world's truth.

QA (`audit_qa`): the record's claims become a pattern over facts.json, the answer a variable (`?answer`), a blurred
value its range (a claim's `approx`, as graphqa questions give dates and numbers):
- correct: the gold answer is among the values the pattern allows (every claim matches a fact, names resolved);
- unique: the pattern allows exactly one value (a description that fits three people has three answers);
- hops: the longest chain of claims from a named entity or value to the answer;
- leak: the answer, or a name the world lists for it, appears in the question;
- unresolved: why the claims could not be matched to the world (then correct and unique are None): never a guess.
A COUNT question's answer is the number of values its one variable takes.
Trajectory (`audit_trajectory`): its final answer against the question's true answers, beside the funnel's judge.
"""

from __future__ import annotations

from ..synth.claims import chain_hops, same_term
from ..synth.text import contains
from .truth import Unresolved, World, fits

ANSWER = "?answer"
SHOWN = 5  # solutions named in a verdict's why


def question_pattern(claims: list[dict], answer: str, qtype: str, world: World) -> tuple[list[dict], str]:
    """The claims with the answer turned into ?answer, and the variable the question asks for. A claim the question
    blurs is matched by how the question states it (its `approx`, a range), not by the exact value its page gives."""
    claims = [{**c, "object": c["approx"]} if c.get("approx") else c for c in claims]
    if qtype == "COUNT":
        names = {t for c in claims for t in (c["subject"], c["object"]) if t.startswith("?")}
        if len(names) != 1:
            raise Unresolved("a COUNT question's claims need exactly one variable, for what is counted")
        return claims, names.pop()
    gold = _entities(answer, world)

    def is_answer(term: str) -> bool:
        return (
            term == ANSWER
            or same_term(term, answer)
            or bool(gold and not term.startswith("?") and _entities(term, world) == gold)
        )

    pattern = [{**c, **{k: ANSWER for k in ("subject", "object") if is_answer(c[k])}} for c in claims]
    if not any(ANSWER in (c["subject"], c["object"]) for c in pattern):
        raise Unresolved("no claim states the answer")
    return pattern, ANSWER


def _entities(text: str, world: World) -> set[tuple]:
    return {v for v in world.resolve(text) if v[0] == "entity"}


def claim_hops(claims: list[dict], target: str) -> int | None:
    """The longest of the shortest chains of claims from a named end to `target`; None when nothing named links."""
    return chain_hops(claims, target)


def leaked(question: str, answer: str, world: World) -> str | None:
    """The answer, or a name the world lists for it, when the question contains it."""
    names = [answer, *(n for v in sorted(_entities(answer, world)) for n in world.leak_names(v[1]))]
    return next((n for n in names if contains(question, n)), None)


def audit_qa(qa: dict, world: World) -> tuple[dict, set | None]:
    """(verdict, the values that truly answer the question or None when unresolved) for one QA record."""
    answer, qtype = str(qa["answer"]), str(qa.get("type", "")).upper()
    verdict = {
        "id": qa["id"],
        "kind": "qa",
        "source": qa.get("source", "?"),
        "type": qtype,
        "rounds": qa.get("rounds", len(qa.get("hops", []))),  # E2HQA rewrite rounds
        "question": qa["question"],
        "answer": answer,
        "correct": None,
        "unique": None,
        "solutions": None,
        "hops": None,
        "leak": False,
        "unresolved": None,
        "why": [],
    }
    if name := leaked(qa["question"], answer, world):
        verdict["leak"] = True
        verdict["why"].append(f"the question contains '{name}', a name of the answer")
    try:
        if not qa.get("claims"):
            raise Unresolved("the record has no claims")
        pattern, target = question_pattern(qa["claims"], answer, qtype, world)
        compiled = world.compile(pattern, hint={ANSWER: frozenset(world.resolve(answer))})
        values = world.solve(compiled, target)
    except Unresolved as exc:
        verdict["unresolved"] = str(exc)
        verdict["why"].append(f"unresolved: {exc}")
        return verdict, None
    verdict["hops"] = claim_hops(pattern, target)
    if qtype == "COUNT":
        return _count(verdict, values, answer, world), {("number", len(values))}
    verdict["solutions"] = len(values)
    verdict["correct"] = any(fits(v, frozenset(world.resolve(answer))) for v in values)
    verdict["unique"] = len(values) == 1
    if any(c.open_relation and not c.readings for c in compiled):
        verdict["unique"] = None  # a claim's relation is unknown and no fact pins it: its solutions are not counted
        verdict["why"].append("a claim's relation is not one the world has, and no fact joins its ends")
    names = sorted(world.label(v) for v in values)
    if not values:
        verdict["why"].append("no entity or value in the world satisfies the claims")
    elif len(values) > 1:
        shown = ", ".join(names[:SHOWN]) + (", ..." if len(names) > SHOWN else "")
        verdict["why"].append(f"{len(values)} answers satisfy the claims: {shown}")
    if values and not verdict["correct"]:
        verdict["why"].append(f"the claims' answer is {names[0]!r}, not {answer!r}")
    return verdict, values


def _count(verdict: dict, values: set, answer: str, world: World) -> dict:
    """A COUNT question: correct when the answer is how many values its variable takes; a count is one answer."""
    verdict["solutions"], verdict["unique"] = len(values), True
    verdict["correct"] = fits(("number", len(values)), frozenset(world.resolve(answer)))
    if not verdict["correct"]:
        verdict["why"].append(f"the claims count {len(values)}, not {answer}")
    return verdict


def audit_trajectory(t: dict, answers: set | None, world: World, judged: bool | None, outcome: str) -> dict:
    """A trajectory's final answer against the question's true answers (None: the question is unresolved), the
    funnel judge's verdict (None: not judged), whether a tool response holds the answer, and its outcome."""
    prediction = str(t.get("prediction") or "")
    truth = None
    if answers is not None:
        truth = bool(prediction.strip()) and any(fits(a, frozenset(world.resolve(prediction))) for a in answers)
    tools = [m.get("content") or "" for m in t.get("messages", []) if m.get("role") == "tool"]
    return {
        "id": t["id"],
        "kind": "trajectory",
        "question_id": t.get("question_id"),
        "prediction": prediction,
        "truth": truth,
        "judge": judged,
        "outcome": outcome,
        "in_tool_response": bool(prediction.strip()) and any(contains(o, prediction) for o in tools),
    }
