"""Trajectory sampling (`wdtk sample`): several ReAct rollouts per question, every one kept as a trajectory record.

Nothing is judged here: the funnel (`wdtk.filters.funnel`) decides which rollouts are valid, correct and
good enough. Runs on `synth/parallel.run_stage` with one item per rollout (question id and k), so a killed run
resumes without losing or repeating finished rollouts, LLM calls already made inside an unfinished one are
answered by the response cache (rollout k of a question always uses sample_index k, so each replays its own
calls), and a larger --rollouts or --limit runs only the new rollouts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path

from .. import __version__
from ..schemas import record_id
from .agent.format import TOOLS
from .agent.loop import Agent, AgentConfig, Rollout
from .agent.visit import EXTRACT_SAMPLING, Visitor
from .e2hqa import seed_record
from .parallel import Backends, RunOptions, Stage, read_input, run_stage


@dataclass(frozen=True)
class RolloutConfig:
    """What each rollout runs with: the stage's config, without --rollouts (so that more rollouts extend a run)."""

    agent: AgentConfig = field(default_factory=AgentConfig)
    visit_max_tokens: int = EXTRACT_SAMPLING.max_tokens  # the visit tool's extraction reply
    visit_max_chars: int = 60_000  # page text the visit tool shows the model


@dataclass(frozen=True)
class SampleConfig:
    """Options of the sampling stage."""

    rollouts: int = 3
    agent: AgentConfig = field(default_factory=AgentConfig)
    visit_max_tokens: int = EXTRACT_SAMPLING.max_tokens  # the visit tool's extraction reply
    visit_max_chars: int = 60_000  # page text the visit tool shows the model

    def per_rollout(self) -> RolloutConfig:
        """The stage's config: everything but the number of rollouts."""
        return RolloutConfig(self.agent, self.visit_max_tokens, self.visit_max_chars)


def trajectory_record(qa: dict, k: int, rollout: Rollout, model: str, prompt_version: str, temperature: float) -> dict:
    """The trajectory record of rollout `k` on `qa`."""
    record = {
        "id": record_id("trajectory", qa["id"], k, model, prompt_version, temperature),
        "question_id": qa["id"],
        "question": qa["question"],
        "answer": qa["answer"],
        "rollout": k,
        "messages": rollout.messages,
        "tools": TOOLS,
        "termination": rollout.termination,
        "stats": rollout.stats,
        "meta": {
            "wdtk_version": __version__,
            "model": model,
            "prompt_version": prompt_version,
            "parent_ids": [qa["id"]],
            "temperature": temperature,
            "constrained": rollout.constrained,  # every turn held to the ReAct grammar while decoding
        },
    }
    if rollout.prediction is not None:
        record["prediction"] = rollout.prediction
    if rollout.detail:
        record["termination_detail"] = rollout.detail
    return record


def make_agent(ctx) -> Agent:
    """The agent of a stage context (whose config is a RolloutConfig): its search engine doubles as the visit tool's
    offline corpus when it can."""
    corpus = ctx.search if hasattr(ctx.search, "get") else None
    cfg = ctx.config
    sampling = replace(EXTRACT_SAMPLING, max_tokens=cfg.visit_max_tokens)
    visitor = Visitor(ctx.client, corpus=corpus, max_chars=cfg.visit_max_chars, sampling=sampling)
    return Agent(ctx.client, ctx.search, visitor, cfg.agent)


async def sample_rollout(item: dict, ctx) -> tuple[list[dict], list[dict]]:
    """Rollout `item["rollout"]` of the question `item["qa"]`."""
    agent, qa, k = make_agent(ctx), item["qa"], item["rollout"]
    rollout = await agent.run(qa["question"], k)
    model, version = ctx.client.llm.name, agent.instructions.version
    return [trajectory_record(qa, k, rollout, model, version, ctx.config.agent.temperature)], []


def rollout_items(qas: Iterable[dict], rollouts: int) -> Iterable[dict]:
    """One item per rollout: every question's rollouts 0..rollouts-1, in question order."""
    for qa in qas:
        for k in range(rollouts):
            yield {"id": f"{qa['id']}/{k}", "qa": qa, "rollout": k}


def questions(sources: Iterable[Path], opts: RunOptions | None = None) -> Iterable[dict]:
    """qa records (or SimpleQA-style rows) from every source, in order, first occurrence of an id only; a source
    directory its stage did not finish is refused unless opts.allow_incomplete."""
    seen: set[str] = set()
    for source in sources:
        for i, row in enumerate(read_input(source, opts)):
            qa = seed_record(row, str(source), i)
            if qa["id"] not in seen:
                seen.add(qa["id"])
                yield qa


def run(
    sources: Iterable[Path],
    out_dir: Path,
    cfg: SampleConfig,
    backends: Backends,
    opts: RunOptions | None = None,
    limit: int | None = None,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """Sample `cfg.rollouts` trajectories per question into out_dir/records; return the stage summary.

    The stage's items are rollouts (`items`); `questions` says how many questions they came from."""
    rollout = cfg.per_rollout()
    stage = Stage("sample", sample_rollout, rollout, "trajectory", backends, tally=termination, needs_search=True)
    qas = list(islice(questions(sources, opts), limit))
    summary = run_stage(stage, rollout_items(qas, cfg.rollouts), out_dir, opts, progress)
    summary["questions"] = len(qas)
    summary["terminations"] = summary.pop("tally", {})  # counted per chunk as it was written
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def termination(trajectory: dict) -> str:
    """How a rollout ended: what the stage summary counts."""
    return trajectory["termination"]
