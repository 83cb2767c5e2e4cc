"""RL rewards (wdtk.training.rewards): 0.1 x format + 0.9 x answer on good and bad rollouts, exact match or judge."""

from __future__ import annotations

import asyncio
import copy
import re

import pytest
from tiny_lm import trajectory

from wdtk.filters.funnel import validity_reason
from wdtk.synth.judge import Judge
from wdtk.synth.llm.client import LLMClient
from wdtk.synth.llm.factory import make_llm
from wdtk.training.rewards import (
    WEIGHTS,
    answer_reward,
    exact_score,
    format_reward,
    format_score,
    judged_score,
    total_reward,
)

QUESTION = "In which year was the Halvard Institute founded?"
SEARCH = ("I should look this up.", "search", {"query": ["Halvard Institute founded"]}, "Founded in 1872.")


def good(answer: str = "1872") -> dict:
    return trajectory(QUESTION, "1872", [SEARCH]) | {"prediction": answer}


def with_turn(t: dict, index: int, **changes) -> dict:
    """`t` with message `index` changed."""
    t = copy.deepcopy(t)
    t["messages"][index].update(changes)
    return t


def call(name: str, arguments: dict) -> list[dict]:
    return [{"type": "function", "id": "call_0", "function": {"name": name, "arguments": arguments}}]


def broken(t: dict) -> dict:
    """A rollout that ended on a turn that broke the format: the raw output kept, no answer."""
    t = copy.deepcopy(t)
    t["messages"][-1] = {"role": "assistant", "content": "<think>hmm</think><tool_call>{not json</tool_call>"}
    del t["prediction"]
    return t | {"termination": "format_error"}


BAD_FORMAT = {  # why the funnel finds the rollout invalid -> the rollout; those with an answer state the right one
    "format_error": lambda: broken(good()),
    "token_limit": lambda: good() | {"termination": "token_limit"},
    "unknown_tool": lambda: with_turn(good(), 2, tool_calls=call("browse", {"query": ["x"]})),
    "bad_arguments": lambda: with_turn(good(), 2, tool_calls=call("search", {"query": "not a list"})),
    "malformed_turn": lambda: with_turn(good(), 4, content="<answer>1872</answer></think>"),
    "missing_tool_response": lambda: good() | {"messages": good()["messages"][:3] + good()["messages"][4:]},
}


def test_a_good_rollout_gets_the_full_reward():
    t = good()
    assert format_score(t) == 1.0 and exact_score(t, "1872") == 1.0
    assert total_reward(format_score(t), exact_score(t, "1872")) == pytest.approx(1.0)
    assert exact_score(good("1,872"), "1872") == 1.0 and exact_score(good("The 1872"), "1872") == 1.0  # normalised


@pytest.mark.parametrize("case", list(BAD_FORMAT))
def test_bad_format_scores_zero_format(case):
    t = BAD_FORMAT[case]()
    assert validity_reason(t) == case and format_score(t) == 0.0
    expected = 0.9 * exact_score(t, "1872")  # the answer part stands on its own
    assert total_reward(format_score(t), exact_score(t, "1872")) == pytest.approx(expected)


def test_wrong_or_missing_answer_scores_zero_answer():
    wrong = good("1901")
    assert format_score(wrong) == 1.0 and exact_score(wrong, "1872") == 0.0
    assert total_reward(1.0, 0.0) == pytest.approx(0.1) and WEIGHTS == {"format": 0.1, "answer": 0.9}
    assert exact_score(broken(good()), "1872") == 0.0  # no prediction at all


def test_trl_reward_functions_score_each_completion():
    rollouts = [good(), good("1901"), broken(good())]
    completions = [[{"role": "assistant", "content": "..."}]] * 3
    assert format_reward(completions, trajectory=rollouts) == [1.0, 1.0, 0.0]
    exact = answer_reward()
    assert exact.__name__ == "answer_reward"  # the name TRL logs it under
    assert exact(completions, answer=["1872"] * 3, trajectory=rollouts, question=[QUESTION] * 3) == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="trajectory"):
        format_reward(completions)


def judge_responder(body: dict) -> str:
    """A judge that accepts "the Halvard year" for 1872 (which exact match cannot) and nothing else but 1872."""
    prompt = body["messages"][-1]["content"]
    prediction = re.search(r"^Predicted answer: (.*)$", prompt, re.M).group(1).strip()
    return "Correct" if prediction in ("1872", "the Halvard year") else "Incorrect"


def test_answer_reward_asks_the_judge(openai_server):
    openai_server.responder = judge_responder
    judge = Judge(LLMClient(make_llm("judge-model", api_base=openai_server.base_url), max_retries=0))
    reward = answer_reward(judge)
    assert reward.__name__ == "answer_reward" and asyncio.iscoroutinefunction(reward)
    rollouts = [good("the Halvard year"), good("1901"), broken(good())]

    async def score():
        async with judge.client:
            return await reward([[]] * 3, answer=["1872"] * 3, question=[QUESTION] * 3, trajectory=rollouts,
                                id=["a", "b", "c"])  # fmt: skip

    assert asyncio.run(score()) == [1.0, 0.0, 0.0]
    assert exact_score(rollouts[0], "1872") == 0.0  # the judge, not exact match, gave the first its reward
    prompts = [r["messages"][-1]["content"] for r in openai_server.requests]
    assert len(prompts) == 2  # no call for the rollout without an answer
    assert all(QUESTION in p and "Labeled answer: 1872" in p for p in prompts)


def test_judged_score_without_a_prediction_makes_no_call(openai_server):
    judge = Judge(LLMClient(make_llm("judge-model", api_base=openai_server.base_url), max_retries=0))
    assert asyncio.run(judged_score(judge, broken(good()), QUESTION, "1872")) == 0.0
    assert openai_server.requests == []
