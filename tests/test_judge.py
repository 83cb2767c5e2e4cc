"""The answer judge: exact match and F1, reading judge verdicts, and Judge over a real OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import re

import pytest
from servers import FakeOpenAIServer

from wdtk import __version__
from wdtk.schemas import record_id, validate
from wdtk.synth.judge import Judge, JudgeConfig, exact_match, f1, judge_many, parse_verdict
from wdtk.synth.llm.client import LLMClient
from wdtk.synth.llm.factory import make_llm
from wdtk.synth.prompting import load_prompt

ITEM = "0123456789abcdef"
ALIASES = {"new york city": {"nyc", "new york city", "new york, ny"}}


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("1,204", "1204"),
        ("1204.0", "1204"),
        ("1,204", "1204.00"),
        ("$12", "12"),
        ("The Eiffel Tower.", "eiffel tower"),
        ("Café Müller", "cafe muller"),
        ("北京", "北京"),
    ],
)
def test_exact_match_accepts_format_differences(prediction, gold):
    assert exact_match(prediction, gold) and exact_match(gold, prediction)
    assert f1(prediction, gold) == 1.0


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [("1204", "1205"), ("12.5", "125"), ("Paris", "Paris, Texas"), ("", ""), ("the", "a"), ("北京", "上海")],
)
def test_exact_match_rejects_different_answers(prediction, gold):
    assert not exact_match(prediction, gold)


def test_f1_is_squad_token_overlap():
    precision, recall = 2 / 2, 2 / 3  # "barack obama" against "barack h obama"
    assert f1("Barack Obama", "Barack H. Obama") == pytest.approx(2 * precision * recall / (precision + recall))
    assert f1("Barack Obama", "Barack H. Obama") == pytest.approx(f1("Barack H. Obama", "Barack Obama"))
    assert f1("the the cat", "cat cat dog") == pytest.approx(2 * (1 / 1) * (1 / 3) / (1 + 1 / 3))  # counts clipped
    assert f1("Boston", "New York City") == 0.0
    assert f1("", "New York City") == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "Correct",
        "Correct.",
        "  correct\n",
        "**Correct**",
        "Judgement: correct",
        "**Verdict:** Correct",
        "Correct, both name the same city.",
        "<think>The labeled answer is New York City; is NYC incorrect? No, it is an abbreviation.</think>\nCorrect",
        "The answers mean the same. Incorrect would be wrong here.\n\nFinal verdict: Correct",
        "The predicted answer is correct.",
        '{"correct": true}',
        '```json\n{"correct": true, "reason": "same city, incorrect spelling aside"}\n```',
        '{"verdict": "Correct"}',
    ],
)
def test_parse_verdict_reads_correct(text):
    assert parse_verdict(text) is True


@pytest.mark.parametrize(
    "text",
    [
        "Incorrect",
        "Incorrect.",
        "**Incorrect**",
        "INCORRECT",
        "Judgment: incorrect",
        "Incorrect. The correct answer is Paris.",
        "Judgement: Incorrect (the correct one is Paris)",
        "<think>Is it correct? The gold says 1872 and it says 1871.</think>Incorrect",
        "The prediction names a different year, so it is not correct.",
        "The prediction isn't correct.",
        '{"correct": false}',
        '{"correct": "false", "reason": "correct year is 1872"}',
        '{"verdict": "Incorrect"}',
    ],
)
def test_parse_verdict_reads_incorrect(text):
    assert parse_verdict(text) is False


@pytest.mark.parametrize(
    "text",
    [
        "",
        None,
        "   \n ",
        "I am not sure.",
        "Correct or Incorrect?",
        "The correct answer is 1872, so the prediction 1871 is incorrect",  # two verdicts, neither settled on
        "<think>The prediction looks correct",  # reasoning cut off before any verdict
        "<think>It is correct.</think>",
        '{"correct": "maybe"}',
        '{"reason": "same"}',
        "correctly formatted, but",
        "Yes",
    ],
)
def test_parse_verdict_gives_none_when_unclear(text):
    assert parse_verdict(text) is None


def judge_responder(body: dict) -> str:
    """A judge that knows aliases: reads the labeled and predicted answers from the rendered prompt."""
    prompt = body["messages"][-1]["content"]
    gold = re.search(r"^Labeled answer: (.*)$", prompt, re.M).group(1).strip().lower()
    prediction = re.search(r"^Predicted answer: (.*)$", prompt, re.M).group(1).strip().lower()
    if prediction == "i cannot tell":
        return "Hmm, hard to say whether this is correct or incorrect."
    return "**Correct**" if prediction in ALIASES.get(gold, {gold}) else "Incorrect."


def judge_with(server: FakeOpenAIServer) -> Judge:
    return Judge(LLMClient(make_llm("judge-model", api_base=server.base_url), max_retries=0))


def run_judge(judge: Judge, *args) -> dict:
    async def go():
        async with judge.client:
            return await judge.judge(*args)

    return asyncio.run(go())


def test_llm_verdict_is_recorded_with_model_and_prompt_version(openai_server):
    openai_server.responder = judge_responder
    judge = judge_with(openai_server)
    record = run_judge(judge, ITEM, "Which city hosts the UN headquarters?", "New York City", "NYC")
    validate(record, "judgement")
    version = load_prompt("judge").version
    assert record["method"] == "llm" and record["correct"] is True and record["score"] == 1.0
    assert record["exact_match"] is False and record["f1"] == 0.0  # the judge overrules the string metrics
    assert record["judge"] == {"model": judge.client.llm.name, "prompt_version": version}
    assert "openai:judge-model" in record["judge"]["model"] and record["raw"] == "**Correct**"
    assert record["id"] == record_id("judgement", ITEM, "llm", judge.client.llm.name, version)
    assert record["meta"] == {"wdtk_version": __version__}
    [request] = openai_server.requests
    assert request["temperature"] == 0 and request["max_tokens"] == JudgeConfig().max_tokens
    prompt = request["messages"][-1]["content"]
    assert "Which city hosts the UN headquarters?" in prompt and "Labeled answer: New York City" in prompt
    assert "Predicted answer: NYC" in prompt and "$" not in prompt  # every placeholder filled
    assert judge.client.usage.summary()["judge"]["calls"] == 1


def test_llm_verdict_can_reject_an_exact_match(openai_server):
    openai_server.queue("Incorrect")  # e.g. a judge that reads the question more strictly than string equality
    record = run_judge(judge_with(openai_server), ITEM, "In which year did it open?", "1872", "1,872")
    validate(record, "judgement")
    assert record["exact_match"] is True and record["correct"] is False and record["method"] == "llm"
    assert record["score"] == 0.0


@pytest.mark.parametrize(
    ("prediction", "method", "correct"),
    [("1,204", "exact", True), ("Boston", "f1", False)],
)
def test_unreadable_verdict_falls_back_and_keeps_raw(openai_server, prediction, method, correct):
    openai_server.queue("<think>Let me compare.</think>Both could be argued; correct or incorrect is unclear.")
    judge = judge_with(openai_server)
    gold = "1204" if method == "exact" else "New York City"
    record = run_judge(judge, ITEM, "Which one?", gold, prediction)
    validate(record, "judgement")
    assert record["method"] == method and record["correct"] is correct
    assert record["raw"].startswith("<think>Let me compare.") and "unreadable" in record["rationale"]
    assert record["judge"]["model"] == judge.client.llm.name  # who was asked, even though it did not decide
    assert openai_server.request_count == 1


@pytest.mark.parametrize("prediction", ["", "   ", None])
def test_empty_prediction_is_incorrect_without_an_llm_call(openai_server, prediction):
    openai_server.responder = lambda body: "Correct"
    judge = judge_with(openai_server)
    record = run_judge(judge, ITEM, "Which city?", "New York City", prediction)
    validate(record, "judgement")
    assert record["correct"] is False and record["score"] == 0.0 and record["method"] != "llm"
    assert "judge" not in record and "raw" not in record and "empty" in record["rationale"]
    assert openai_server.request_count == 0 and judge.client.usage.summary() == {}


def test_without_a_client_exact_match_then_f1_decide():
    judge = Judge(None)
    exact = asyncio.run(judge.judge(ITEM, "How many?", "1204", "1,204.0"))
    close = asyncio.run(judge.judge(ITEM, "Who?", "Barack Hussein Obama II", "Barack Hussein Obama"))
    far = asyncio.run(judge.judge(ITEM, "Which city?", "New York City", "Boston"))
    for record in (exact, close, far):
        validate(record, "judgement")
        assert "judge" not in record and "raw" not in record
    assert (exact["method"], exact["correct"], exact["score"]) == ("exact", True, 1.0)
    assert exact["id"] == record_id("judgement", ITEM, "exact", "", "")
    assert close["method"] == "f1" and close["correct"] is True and close["score"] == close["f1"] >= 0.8
    assert far["method"] == "f1" and far["correct"] is False and far["score"] == 0.0
    strict = asyncio.run(
        Judge(None, JudgeConfig(f1_threshold=0.9)).judge(
            ITEM, "Who?", "Barack Hussein Obama II", "Barack Hussein Obama"
        )
    )
    assert strict["correct"] is False and strict["score"] == close["score"]
    assert judge.describe() == {"method": "exact"}


def test_judge_many_keeps_order_and_judges_each(openai_server):
    openai_server.responder = judge_responder
    judge = judge_with(openai_server)
    items = [
        {"id": record_id("t", i), "question": "Which city?", "answer": "New York City", "prediction": p}
        for i, p in enumerate(["NYC", "Boston", "i cannot tell"])
    ] + [{"id": record_id("t", 9), "question": "Which city?", "answer": "New York City"}]  # no final answer

    async def go():
        async with judge.client:
            return await judge_many(judge, items)

    records = asyncio.run(go())
    assert [r["item_id"] for r in records] == [item["id"] for item in items]
    assert [r["correct"] for r in records] == [True, False, False, False]
    assert [r["method"] for r in records] == ["llm", "llm", "f1", "f1"]
    assert openai_server.request_count == 3
    assert judge.describe() == {
        "method": "llm",
        "model": judge.client.llm.name,
        "prompt_version": judge.prompt.version,
    }
