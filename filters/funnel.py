"""The trajectory funnel (`wdtk funnel`): validity, then correctness, then quality, with counts at every stage.

(a) validity: the rollout ended with an answer, its turns are well formed (each assistant turn renders and parses
    back to itself), every tool call names a real tool with valid arguments and gets its response;
(b) correctness: a judge compares the final answer with the gold one (an LLM, GAIA-style; exact match and F1
    without one); every verdict is kept as a judgement record naming the judge model and prompt version;
(c) quality: too many actions, identical calls repeated, URLs visited that no search returned, an answer (or a gold
    answer) that no tool response contains, over-long trajectories.
Kept trajectories go to OUT/records, each drop to OUT/rejects as {"stage", "reason", "record"}, verdicts to
OUT/judgements, and questions left with no surviving rollout to OUT/rl_pool, as WebDancer does.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..schemas import ShardWriter, batched, check_accounting, mark_complete, read_records, require_complete
from ..synth.agent.format import check_call, parse_turn, render_assistant
from ..synth.text import contains, is_number
from .judge import Judge, judge_many

STAGES = ("validity", "correctness", "quality")
_URL = re.compile(r"https?://[^\s)\]>\"']+")


@dataclass(frozen=True)
class FunnelConfig:
    """Thresholds of the quality stage."""

    max_actions: int = 12
    max_repeats: int = 0  # identical tool calls allowed beyond the first
    max_tokens: int = 24_000  # estimated tokens of the whole trajectory (characters / 4)
    require_support: bool = True  # the answer must appear in a tool response (counts are exempt)
    require_gold_support: bool = True  # so must the gold answer, with require_support


def validity_reason(t: dict) -> str | None:
    """Why a trajectory is invalid, or None. Non-answer endings keep their termination label as the reason."""
    if t["termination"] != "answer":
        return t["termination"]
    messages = t["messages"]
    if [m["role"] for m in messages[:2]] != ["system", "user"]:
        return "bad_roles"
    tools = {tool["function"]["name"] for tool in t["tools"]}
    pending: dict[str, str] = {}
    for m in messages[2:]:
        if m["role"] == "assistant":
            if pending:
                return "missing_tool_response"
            for call in m.get("tool_calls") or []:
                name, args = call["function"]["name"], call["function"]["arguments"]
                if name not in tools:
                    return "unknown_tool"
                if check_call(name, args):
                    return "bad_arguments"
                pending[call.get("id", name)] = name
            if _reparse_error(m):
                return "malformed_turn"
        elif m["role"] == "tool":
            if pending.pop(m.get("tool_call_id", m.get("name")), None) != m.get("name"):
                return "unexpected_tool_response"
        else:
            return "bad_roles"
    last = messages[-1]
    if last["role"] != "assistant" or last.get("tool_calls") or not t.get("prediction"):
        return "no_final_answer"
    return None


def _reparse_error(message: dict) -> bool:
    """Whether an assistant turn fails to survive rendering and parsing (stray tags in its text, two actions...)."""
    turn = parse_turn(render_assistant(message))
    calls = message.get("tool_calls") or []
    if turn.error:
        return True
    if calls:
        return len(calls) != 1 or turn.call != {k: calls[0]["function"][k] for k in ("name", "arguments")}
    return turn.answer is None


def quality_reason(t: dict, cfg: FunnelConfig) -> str | None:
    """Why a correct trajectory is still not good training data, or None."""
    calls = [c["function"] for m in t["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    if len(calls) > cfg.max_actions:
        return "too_many_actions"
    repeats = Counter(json.dumps(c, sort_keys=True) for c in calls)
    if any(n > 1 + cfg.max_repeats for n in repeats.values()):
        return "repeated_call"
    if _invented_url(t["messages"]):
        return "hallucinated_url"
    observations = [m["content"] for m in t["messages"] if m["role"] == "tool"]
    if cfg.require_support and not _read(t.get("prediction", ""), observations):
        return "unsupported_answer"
    if cfg.require_support and cfg.require_gold_support and not _read(str(t.get("answer", "")), observations):
        return "gold_unsupported"  # judged correct, yet nothing it read states the gold answer: a judge's slip
    if sum(len(m["content"]) + len(m.get("reasoning_content", "")) for m in t["messages"]) / 4 > cfg.max_tokens:
        return "too_long"
    return None


def _read(answer: str, observations: list[str]) -> bool:
    """Whether a tool response states `answer` (a number counts as read: a count is worked out, not read)."""
    return is_number(answer) or any(contains(o, answer) for o in observations)


def _invented_url(messages: list[dict]) -> bool:
    """Whether a visit names a URL that neither the question nor any earlier tool response contains."""
    seen = {u.rstrip("/.,") for m in messages[:2] for u in _URL.findall(m["content"])}
    for m in messages[2:]:
        if m["role"] == "tool":
            seen.update(u.rstrip("/.,") for u in _URL.findall(m["content"]))
        for call in m.get("tool_calls") or []:
            if call["function"]["name"] == "visit":
                if any(u.rstrip("/.,") not in seen for u in call["function"]["arguments"]["url"]):
                    return True
    return False


def run(
    sources: Iterable[Path],
    out_dir: Path,
    cfg: FunnelConfig,
    judge: Judge,
    qa_sources: Iterable[Path] = (),
    batch: int = 512,
    allow_incomplete: bool = False,
) -> dict:
    """Run the funnel over trajectory records into out_dir; return the summary (also OUT/summary.json).

    A source directory whose stage did not finish is refused unless `allow_incomplete`; the output directories
    are marked complete last, once every trajectory is accounted for."""
    sources = list(sources)
    for source in sources:
        require_complete(source, allow_incomplete)
    return asyncio.run(_run(sources, out_dir, cfg, judge, qa_sources, batch))


def decide(validity: str | None, correct: bool | None, quality: str | None) -> tuple[str, str] | None:
    """The (stage, reason) a trajectory is dropped at, or None when it is kept: validity, then the verdict, then
    quality. `correct` is None for an invalid trajectory (it is never judged)."""
    if validity:
        return "validity", validity
    if not correct:
        return "correctness", "incorrect"
    if quality:
        return "quality", quality
    return None


async def _run(sources, out_dir: Path, cfg: FunnelConfig, judge: Judge, qa_sources, batch: int) -> dict:
    started = time.monotonic()
    for old in ("records", "rejects", "judgements", "rl_pool"):  # judge calls are cached, so a rerun is cheap
        shutil.rmtree(out_dir / old, ignore_errors=True)
    counts = {s: Counter() for s in (*STAGES, "format_errors")}
    entered = Counter()
    outcomes: dict[str, Counter] = defaultdict(Counter)  # question id -> what became of its rollouts
    questions: dict[str, dict] = {}
    agreement = Counter()
    writers = {n: ShardWriter(out_dir / n, kind=k, complete_on_close=False) for n, k in _OUTPUTS.items()}
    with writers["records"], writers["rejects"], writers["judgements"]:
        for chunk in batched(read_all(sources), batch):
            validity = [validity_reason(t) for t in chunk]
            valid = [t for t, reason in zip(chunk, validity, strict=True) if not reason]
            verdicts = dict(zip((t["id"] for t in valid), await judge_many(judge, valid), strict=True))
            for t, invalid in zip(chunk, validity, strict=True):
                questions.setdefault(t["question_id"], {k: t[k] for k in ("question", "answer")})
                verdict = verdicts.get(t["id"]) if not invalid else None
                if verdict is not None:
                    writers["judgements"].write(verdict)
                    if verdict["method"] == "llm":
                        agreement["judged"] += 1
                        agreement["agree_with_exact"] += verdict["correct"] == verdict["exact_match"]
                correct = verdict["correct"] if verdict else None
                drop = decide(invalid, correct, quality_reason(t, cfg) if correct else None)
                for stage in STAGES[: STAGES.index(drop[0]) + 1 if drop else len(STAGES)]:
                    entered[stage] += 1
                if drop:
                    _drop(writers, counts, outcomes, *drop, t)
                else:  # a kept trajectory says who judged it correct, and where the verdict is
                    by = verdict.get("judge") or {"model": verdict["method"], "prompt_version": "none"}
                    t["meta"] = {**t["meta"], "judge": {**by, "method": verdict["method"]}, "judgement": verdict["id"]}
                    writers["records"].write(t)
                    outcomes[t["question_id"]]["kept"] += 1
    pool = rl_pool(questions, outcomes, _qa_index(qa_sources))
    with ShardWriter(out_dir / "rl_pool", complete_on_close=False) as writer:
        for row in pool:
            writer.write(row)
    kept = entered["quality"] - sum(counts["quality"].values())
    summary = {
        "stage": "funnel",
        "trajectories": entered["validity"],
        "questions": len(questions),
        "stages": [
            {"name": s, "in": entered[s], "kept": entered[s] - sum(counts[s].values()), "dropped": dict(counts[s])}
            for s in STAGES
        ],
        "format_errors": dict(counts["format_errors"].most_common()),
        "kept": kept,
        "questions_kept": sum(1 for o in outcomes.values() if o["kept"]),
        "rl_pool": len(pool),
        "judge": judge.describe(),
        "judge_agreement": {"judged": agreement["judged"], "agree_with_exact": agreement["agree_with_exact"]},
        "seconds": round(time.monotonic() - started, 2),
        "usage": judge.client.usage.summary() if judge.client is not None else {},
    }
    check_accounting(
        "funnel", entered["validity"], kept=kept, dropped=sum(sum(c.values()) for c in map(counts.get, STAGES))
    )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    for name in (*_OUTPUTS, "rl_pool"):
        mark_complete(out_dir / name, stage="funnel")
    if judge.client is not None:
        await judge.client.aclose()  # its connections belong to this event loop
    return summary


_OUTPUTS = {"records": "trajectory", "rejects": None, "judgements": "judgement"}


def read_all(sources: Iterable[Path]) -> Iterator[dict]:
    for source in sources:
        yield from read_records(source, kind="trajectory")


def _drop(writers, counts, outcomes, stage: str, reason: str, t: dict) -> None:
    counts[stage][reason] += 1
    outcomes[t["question_id"]][f"{stage}:{reason}"] += 1
    detail = t.get("termination_detail") if reason == t["termination"] else None
    if reason == "format_error" and detail:  # what the model got wrong: no_action, tool_call_not_json...
        counts["format_errors"][format_error_kind(detail)] += 1
    writers["rejects"].write({"stage": stage, "reason": reason, "record": t, **({"detail": detail} if detail else {})})


def format_error_kind(detail: str) -> str:
    """The kind of a format error from its detail: 'bad_arguments: url/0: ...' -> 'bad_arguments'."""
    return detail.split(":", 1)[0].split(" (", 1)[0].strip()


def _qa_index(sources: Iterable[Path]) -> dict[str, dict]:
    """qa id -> type, source and hops of the question, when the QA records are at hand."""
    index = {}
    for source in sources:
        if Path(source).exists():
            for qa in read_records(source):
                index[qa["id"]] = {"type": qa.get("type"), "source": qa.get("source"), "hops": len(qa.get("hops", []))}
    return index


def rl_pool(questions: dict[str, dict], outcomes: dict[str, Counter], qa: dict[str, dict]) -> list[dict]:
    """Questions no rollout of which survived: the hard ones RL trains on, with what became of their rollouts."""
    rows = []
    for qid, q in questions.items():
        if outcomes[qid]["kept"]:
            continue
        meta = {"rollouts": sum(outcomes[qid].values()), "outcomes": dict(outcomes[qid]), **qa.get(qid, {})}
        rows.append({"id": qid, "question": q["question"], "answer": q["answer"], "metadata": meta})
    return rows


def describe_funnel(summary: dict, out_dir: Path) -> str:
    """Counts at every stage of the funnel, what was kept and what went to the RL pool."""
    lines = [f"funnel: {summary['trajectories']} trajectories of {summary['questions']} questions"]
    for stage in summary["stages"]:
        dropped = ", ".join(f"{k} {v}" for k, v in stage["dropped"].items()) or "none dropped"
        lines.append(f"  {stage['name']:<12} {stage['in']:>6} -> {stage['kept']:<6} ({dropped})")
    if summary.get("format_errors"):
        lines.append("  format errors: " + ", ".join(f"{k} {v}" for k, v in summary["format_errors"].items()))
    lines.append(
        f"  kept {summary['kept']} trajectories for {summary['questions_kept']} questions -> {out_dir / 'records'}; "
        f"{summary['rl_pool']} questions to the RL pool -> {out_dir / 'rl_pool'}"
    )
    lines.append(f"  judge: {summary['judge'].get('model', 'exact match / F1')}")
    return "\n".join(lines)
