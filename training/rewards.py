"""Rewards for RL on search-agent rollouts, WebDancer's: 0.1 x format + 0.9 x answer.

- format: 1.0 when the rollout is well formed from start to end: every assistant turn has balanced <think>,
  <tool_call> and <answer> tags and one action, every tool call names a real tool with valid arguments and gets its
  response, and the rollout ends with an answer. That is the funnel's validity check
  (`wdtk.filters.funnel.validity_reason`), so RL rewards exactly what SFT data was filtered for. Else 0.0.
- answer: 1.0 when the final answer is right, by the LLM judge (`wdtk.synth.judge.Judge`, GAIA-style equivalence)
  when one is given, else by normalised exact match (`wdtk.synth.judge.exact_match`); 0.0 without an answer.

The scores are pure functions of a trajectory: the dict the RL rollout builds for each completion, shaped like a
trajectory record (`messages`, `tools`, `termination`, `prediction`). `format_reward` and `answer_reward(judge)`
wrap them as TRL reward functions, `f(completions, **columns) -> list[float]`, reading the rollout's `trajectory`
column and the dataset's `question` and `answer` columns; pass `reward_weights=list(WEIGHTS.values())` to TRL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..filters.funnel import validity_reason
from ..synth.judge import Judge, exact_match

WEIGHTS = {"format": 0.1, "answer": 0.9}  # WebDancer's weights, in the order of the reward functions


def format_score(trajectory: dict) -> float:
    """1.0 when every turn is well formed and the rollout ends with an answer, else 0.0."""
    return 0.0 if validity_reason(trajectory) else 1.0


def exact_score(trajectory: dict, gold: str) -> float:
    """1.0 when the rollout's final answer matches `gold` after normalisation, else 0.0."""
    prediction = trajectory.get("prediction")
    return float(bool(prediction) and exact_match(prediction, gold))


async def judged_score(judge: Judge, trajectory: dict, question: str, gold: str, item_id: str = "") -> float:
    """1.0 when `judge` finds the rollout's final answer right, else 0.0 (no answer is wrong without a call)."""
    prediction = trajectory.get("prediction")
    if not prediction:
        return 0.0
    verdict = await judge.judge(item_id, question, gold, prediction)
    return float(verdict["correct"])


def total_reward(format_value: float, answer_value: float) -> float:
    """The reward a rollout gets: 0.1 x format + 0.9 x answer."""
    return WEIGHTS["format"] * format_value + WEIGHTS["answer"] * answer_value


def format_reward(completions: list, trajectory: list[dict] | None = None, **_) -> list[float]:
    """TRL reward function: `format_score` of each rollout's trajectory."""
    return [format_score(t) for t in _trajectories(completions, trajectory)]


def answer_reward(judge: Judge | None = None) -> Callable:
    """TRL reward function scoring final answers: by `judge` (an async function, run on TRL's event loop) when given,
    else by exact match. Either is called `answer_reward`, the name TRL logs it under."""
    if judge is None:

        def answer_reward(completions: list, answer: list[str], trajectory: list[dict] | None = None, **_):
            return [
                exact_score(t, gold) for t, gold in zip(_trajectories(completions, trajectory), answer, strict=True)
            ]

        return answer_reward

    async def answer_reward(completions, answer, question, trajectory=None, id=None, **_):  # id: the pool's column
        rollouts = _trajectories(completions, trajectory)
        ids = id or [""] * len(rollouts)
        return list(
            await asyncio.gather(
                *(judged_score(judge, t, q, g, i) for t, q, g, i in zip(rollouts, question, answer, ids, strict=True))
            )
        )

    return answer_reward


def _trajectories(completions: list, trajectory: list[dict] | None) -> list[dict]:
    if trajectory is None:
        raise ValueError(
            "the rewards read a `trajectory` column, which wdtk.training.rl's rollout adds; "
            f"got {len(completions)} completions without one (was the trainer given rollout_func=ToolRollout(...)?)"
        )
    return trajectory
