"""Evaluation (`wdtk eval`): k ReAct rollouts per benchmark question, each judged, then Pass@1, Pass@k and Cons@k.

    wdtk eval gaia_val.jsonl -o runs/eval --k 3 --search bm25:runs/demo/index --model openai:my-sft \\
        --api-base http://127.0.0.1:8000/v1 --judge gpt-4o-mini

Benchmarks (GAIA, WebWalkerQA, BrowseComp, plain QA; layout detected per row): `wdtk.training.benchmarks`.

Metrics (pure functions over each question's judged rollouts, see `outcome`):
  Pass@1  mean correctness of a question's rollouts, then mean over questions; Pass@k  one of its k is correct;
  Cons@k  the majority answer is correct: answers vote normalised, rollouts without one do not vote, a tie goes to
          the answer given first (lowest rollout index), and its correctness is its first rollout's judgement;
  invalid_action_rate  rollouts whose validity reason (filters.trajectory.validity_reason) is format_error (a turn
          the agent could not parse: broken format, unknown tool, bad arguments), unknown_tool, bad_arguments or
          malformed_turn; budget exhaustion (call_budget_exceeded, token_limit, time_limit) is budget_exhausted_rate;
  actions_per_rollout  mean tool calls per rollout. Rates and actions pool all rollouts.
Correctness is the judge's verdict on the final answer alone, valid rollout or not. Rollouts lost to LLM errors
are counted in overall.rollouts_missing; a question left with none scores 0.

OUT: questions.jsonl (qa records), rollouts/ (the resumable sampling stage), judgements/, results.json
({"overall", "breakdown": {dimension: {value: metrics}}, "benchmark", "config"}) and results.md (a table).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import __version__
from ..filters.funnel import validity_reason
from ..schemas import ShardWriter, batched, read_records, write_records
from ..synth.agent.loop import AgentConfig
from ..synth.judge import Judge, judge_many
from ..synth.parallel import Backends
from ..synth.text import is_number, normalize
from .benchmarks import Question, load_benchmark

INVALID_ACTION = frozenset({"format_error", "unknown_tool", "bad_arguments", "malformed_turn"})
BUDGET = frozenset({"call_budget_exceeded", "token_limit", "time_limit"})


@dataclass(frozen=True)
class EvalConfig:
    """Rollouts per question, the agent's budgets, and how many questions to take."""

    k: int = 3
    agent: AgentConfig = field(default_factory=AgentConfig)
    limit: int | None = None


def outcome(trajectory: dict, judgement: dict) -> dict:
    """What the metrics need of one judged rollout."""
    return {
        "rollout": trajectory["rollout"],
        "prediction": trajectory.get("prediction"),
        "correct": judgement["correct"],
        "validity": validity_reason(trajectory) or "valid",
        "actions": trajectory["stats"].get("actions", 0),
    }


def answer_key(prediction: str | None) -> str | float | None:
    """What an answer votes as: a number by value, other text normalised; None for no answer."""
    text = (prediction or "").strip()
    if is_number(text):
        return float(text.replace(",", ""))
    return normalize(text) or text.casefold() or None  # text of no letter normalize keeps: compared case-folded


def pass_at_1(rollouts: list[dict]) -> float:
    """Mean correctness of one question's rollouts (0 without rollouts)."""
    return sum(r["correct"] for r in rollouts) / len(rollouts) if rollouts else 0.0


def pass_at_k(rollouts: list[dict]) -> float:
    """1 when at least one rollout of the question is correct."""
    return float(any(r["correct"] for r in rollouts))


def majority(rollouts: list[dict]) -> dict | None:
    """The first rollout of the most frequent answer, a tie going to the answer given first; None: no answers."""
    votes: dict = {}
    for r in sorted(rollouts, key=lambda r: r["rollout"]):
        if (key := answer_key(r["prediction"])) is not None:
            votes.setdefault(key, []).append(r)
    return max(votes.values(), key=len)[0] if votes else None  # max keeps the first of equals: the earliest answer


def cons_at_k(rollouts: list[dict]) -> float:
    """1 when the question's majority answer is correct."""
    best = majority(rollouts)
    return float(best is not None and best["correct"])


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def summarize(questions: list[list[dict]]) -> dict:
    """The metrics over questions, each a list of rollout outcomes."""
    rollouts = [r for q in questions for r in q]
    return {
        "questions": len(questions),
        "rollouts": len(rollouts),
        "pass@1": _mean(pass_at_1(q) for q in questions),
        "pass@k": _mean(pass_at_k(q) for q in questions),
        "cons@k": _mean(cons_at_k(q) for q in questions),
        "invalid_action_rate": _mean(r["validity"] in INVALID_ACTION for r in rollouts),
        "budget_exhausted_rate": _mean(r["validity"] in BUDGET for r in rollouts),
        "actions_per_rollout": _mean(r["actions"] for r in rollouts),
        "validity": dict(Counter(r["validity"] for r in rollouts).most_common()),
    }


def breakdown(questions: list[tuple[dict[str, str], list[dict]]]) -> dict:
    """{dimension: {value: metrics}} over (groups, rollout outcomes) pairs."""
    dims: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for groups, rollouts in questions:
        for dim, value in groups.items():
            dims[dim][value].append(rollouts)
    return {d: {v: summarize(qs) for v, qs in sorted(values.items())} for d, values in sorted(dims.items())}


def markdown(results: dict) -> str:
    """results.json as a markdown table: all questions, then one row per breakdown value."""
    cfg, k = results["config"], results["config"]["k"]
    head = ["Subset", "Questions", "Pass@1", f"Pass@{k}", f"Cons@{k}", "Invalid actions", "Budget hit", "Actions"]
    rows = [("all", results["overall"])]
    rows += [(f"{d}={v}", m) for d, values in results["breakdown"].items() for v, m in values.items()]
    judge = cfg["judge"].get("model", "exact match / F1")
    lines = [f"## {Path(results['benchmark']['path']).name}: {cfg['model']}, k={k}, judge: {judge}", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in rows:
        rates = (m[key] for key in ("pass@1", "pass@k", "cons@k", "invalid_action_rate", "budget_exhausted_rate"))
        cells = [name, str(m["questions"]), *(f"{100 * x:.1f}" for x in rates), f"{m['actions_per_rollout']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Rates in %. Budget hit: call, token or time budget exhausted. Actions: tool calls per rollout."]
    if skipped := results["benchmark"]["skipped"]:
        lines.append("Skipped rows: " + ", ".join(f"{k} {v}" for k, v in skipped.items()) + ".")
    return "\n".join(lines) + "\n"


# --- the stage -----------------------------------------------------------------------------------------------------


def prepare(benchmark: Path, out_dir: Path, limit: int | None = None) -> tuple[list[Question], Counter, Path]:
    """Load the benchmark and write its questions as qa records to out_dir/questions.jsonl, the sampler's input."""
    questions, skipped = load_benchmark(benchmark, limit)
    write_records((q.qa for q in questions), out_dir / "questions.jsonl", kind="qa")
    return questions, skipped, out_dir / "questions.jsonl"


def sample_rollouts(source: Path, out_dir: Path, cfg: EvalConfig, backends: Backends, opts=None, progress=None):
    """k rollouts per question into out_dir/rollouts by the sampling stage (so resumable); its summary."""
    from ..synth.sample import SampleConfig
    from ..synth.sample import run as sample

    # a resumed run must not mix in rollouts of another model, k or budget: Pass@k would silently mean something else
    stamp = out_dir / "rollouts" / "eval_settings.json"
    settings = json.dumps({"model": backends.model, "search": backends.search, "k": cfg.k, "agent": asdict(cfg.agent)})
    if stamp.exists() and stamp.read_text() != settings:
        raise ValueError(
            f"{stamp.parent} holds rollouts of other settings ({stamp.read_text()}); use --restart or -o NEW"
        )
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(settings)
    return sample([source], out_dir / "rollouts", SampleConfig(cfg.k, cfg.agent), backends, opts, None, progress)


def score(questions: list[Question], skipped: Counter, out_dir: Path, judge: Judge, config: dict) -> dict:
    """Judge every rollout into out_dir/judgements; write results.json and results.md; return the results."""
    rollouts: dict[str, list[dict]] = {q.qa["id"]: [] for q in questions}
    shutil.rmtree(out_dir / "judgements", ignore_errors=True)  # judge calls are cached: judging again is cheap
    asyncio.run(_judge_all(judge, out_dir, rollouts))
    pairs = [(q.groups, rollouts[q.qa["id"]]) for q in questions]
    overall = summarize([r for _, r in pairs])
    overall["rollouts_missing"] = config["k"] * len(questions) - overall["rollouts"]
    layouts = dict(Counter(q.layout for q in questions))
    results = {
        "overall": overall,
        "breakdown": breakdown(pairs),
        "benchmark": {**config["benchmark"], "layouts": layouts, "skipped": dict(skipped)},
        "config": {k: v for k, v in config.items() if k != "benchmark"} | {"judge": judge.describe()},
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    (out_dir / "results.md").write_text(markdown(results))
    return results


async def _judge_all(judge: Judge, out_dir: Path, rollouts: dict[str, list[dict]], batch: int = 256) -> None:
    with ShardWriter(out_dir / "judgements", kind="judgement") as writer:
        for chunk in batched(read_records(out_dir / "rollouts" / "records", kind="trajectory"), batch):
            for t, judgement in zip(chunk, await judge_many(judge, chunk), strict=True):
                writer.write(judgement)
                rollouts.setdefault(t["question_id"], []).append(outcome(t, judgement))
    if judge.client is not None:
        await judge.client.aclose()  # its connections belong to this event loop


def describe(benchmark: Path, cfg: EvalConfig, backends: Backends) -> dict:
    """The run's configuration for results.json (`score` adds the judge)."""
    digest = hashlib.sha256(Path(benchmark).read_bytes()).hexdigest()[:16]
    return {
        "benchmark": {"path": str(benchmark), "sha256": digest},
        "model": backends.model,
        "search": backends.search,
        "k": cfg.k,
        "agent": asdict(cfg.agent),
        "wdtk_version": __version__,
    }


def run(benchmark: Path, out_dir: Path, cfg: EvalConfig, backends: Backends, judge: Judge, opts=None, progress=None):
    """Sample, judge and score `benchmark` into out_dir; return what results.json holds."""
    questions, skipped, source = prepare(benchmark, out_dir, cfg.limit)
    sample_rollouts(source, out_dir, cfg, backends, opts, progress)
    return score(questions, skipped, out_dir, judge, describe(benchmark, cfg, backends))
