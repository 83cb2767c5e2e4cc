"""Evaluation: Pass@1, Pass@k and Cons@k on hand-made rollouts, benchmark layouts, and `wdtk eval` end to end."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from servers.agent_model import AgentModel

from wdtk.cli import main
from wdtk.schemas import RecordError, read_records
from wdtk.synth.agent.loop import AgentConfig
from wdtk.synth.judge import Judge
from wdtk.synth.parallel import Backends, RunOptions
from wdtk.training.benchmarks import detect_layout, load_benchmark, parse_row
from wdtk.training.evaluate import (
    EvalConfig,
    answer_key,
    breakdown,
    cons_at_k,
    majority,
    outcome,
    pass_at_1,
    pass_at_k,
    run,
    summarize,
)


def r(i: int, prediction: str | None, correct: bool, validity: str = "valid", actions: int = 2) -> dict:
    """One judged rollout, as `outcome` makes them."""
    return {"rollout": i, "prediction": prediction, "correct": correct, "validity": validity, "actions": actions}


# --- metrics -------------------------------------------------------------------------------------------------------


def test_one_right_of_three_passes_at_k_but_loses_the_vote():
    rollouts = [r(0, "Oslo", True), r(1, "Bergen", False), r(2, "bergen.", False)]  # the wrong two agree
    assert pass_at_1(rollouts) == pytest.approx(1 / 3)
    assert pass_at_k(rollouts) == 1.0
    assert majority(rollouts)["rollout"] == 1
    assert cons_at_k(rollouts) == 0.0


def test_two_right_of_three_win_the_vote_when_the_wrong_one_differs():
    rollouts = [r(0, "Bergen", False), r(1, "The Oslo", True), r(2, "oslo", True)]
    assert pass_at_1(rollouts) == pytest.approx(2 / 3)
    assert (pass_at_k(rollouts), cons_at_k(rollouts)) == (1.0, 1.0)


@pytest.mark.parametrize(("right", "cons"), [(0, 1.0), (1, 0.0), (2, 0.0)])
def test_a_tie_goes_to_the_answer_given_first(right, cons):
    answers = ["Oslo" if i == right else f"Wrong {i}" for i in range(3)]
    rollouts = [r(i, a, i == right) for i, a in enumerate(answers)]
    assert cons_at_k(list(reversed(rollouts))) == cons  # the order rollouts arrive in does not matter
    # two answers twice each: the one whose first rollout came first wins
    pairs = [r(0, "Bergen", False), r(1, "Oslo", True), r(2, "Oslo", True), r(3, "Bergen", False)]
    assert majority(pairs)["prediction"] == "Bergen" and cons_at_k(pairs) == 0.0


def test_rollouts_without_an_answer_do_not_vote():
    rollouts = [r(0, None, False, "format_error"), r(1, "", False, "call_budget_exceeded"), r(2, "Oslo", True)]
    assert cons_at_k(rollouts) == 1.0
    assert majority([r(0, None, False), r(1, None, False)]) is None
    assert cons_at_k([r(0, None, False)]) == 0.0
    assert (pass_at_1([]), pass_at_k([]), cons_at_k([])) == (0.0, 0.0, 0.0)


def test_answers_vote_normalised_and_numbers_by_value():
    assert answer_key("The Eiffel Tower.") == answer_key("eiffel tower")
    assert answer_key("1,204") == answer_key("1204") == answer_key(" 1204.0 ")
    assert answer_key("東京") == answer_key("東京 ") != answer_key("大阪")
    assert answer_key(None) is None and answer_key("  ") is None


def test_summary_averages_per_question_and_counts_invalid_actions_apart_from_budgets():
    questions = [
        [r(0, "Oslo", True, actions=3)],  # one rollout, right
        [
            r(0, None, False, "format_error", 0),
            r(1, None, False, "call_budget_exceeded", 16),
            r(2, "Bergen", False, "malformed_turn", 1),
        ],
        [
            r(0, "x", False, "unknown_tool", 2),
            r(1, "y", False, "bad_arguments", 2),
            r(2, None, False, "time_limit", 4),
        ],
    ]
    s = summarize(questions)
    assert (s["questions"], s["rollouts"]) == (3, 7)
    assert s["pass@1"] == pytest.approx(1 / 3)  # per question first: pooled over rollouts it would be 1/7
    assert s["pass@k"] == pytest.approx(1 / 3) and s["cons@k"] == pytest.approx(1 / 3)
    assert s["invalid_action_rate"] == pytest.approx(
        4 / 7
    )  # format_error, malformed_turn, unknown_tool, bad_arguments
    assert s["budget_exhausted_rate"] == pytest.approx(2 / 7)  # call budget and time, never counted as invalid
    assert s["actions_per_rollout"] == pytest.approx(28 / 7)
    assert sum(s["validity"].values()) == 7 and s["validity"]["valid"] == 1
    empty = summarize([[]])
    assert empty["pass@1"] == empty["invalid_action_rate"] == 0.0


def test_breakdown_by_level():
    right, wrong = [r(0, "a", True), r(1, "b", False), r(2, "b", False)], [r(0, "c", False, "format_error")]
    table = breakdown([({"level": "1"}, right), ({"level": "2"}, wrong), ({"level": "1"}, wrong), ({}, right)])
    assert list(table) == ["level"] and list(table["level"]) == ["1", "2"]
    one, two = table["level"]["1"], table["level"]["2"]
    assert one["questions"] == 2 and one["pass@k"] == 0.5 and one["pass@1"] == pytest.approx(1 / 6)
    assert one["cons@k"] == 0.0 and one["invalid_action_rate"] == pytest.approx(1 / 4)
    assert two == summarize([wrong])


def test_outcome_reads_a_trajectory_and_its_judgement():
    t = {"rollout": 2, "termination": "format_error", "stats": {"llm_calls": 1, "actions": 0}, "messages": []}
    o = outcome(t, {"correct": False})
    assert o == {"rollout": 2, "prediction": None, "correct": False, "validity": "format_error", "actions": 0}


# --- benchmark layouts ---------------------------------------------------------------------------------------------


def encrypt(text: str, password: str) -> str:
    """BrowseComp's scheme, written out here so the module's decrypt is checked against an independent copy."""
    key = hashlib.sha256(password.encode()).digest()
    data = text.encode()
    stream = (key * (len(data) // len(key) + 1))[: len(data)]
    return base64.b64encode(bytes(a ^ b for a, b in zip(data, stream, strict=True))).decode()


CANARY = "BENCHMARK DATA SHOULD NEVER APPEAR AS PLAIN TEXT ONLINE. canary GUID test:0000"


def test_gaia_rows_keep_their_level_and_skip_attachments():
    row = {"task_id": "t1", "Question": " Who wrote it? ", "Level": 2, "Final answer": "Ada", "file_name": ""}
    q = parse_row(row)
    assert detect_layout(row) == "gaia" and q.skip is None
    assert (q.qa["question"], q.qa["answer"], q.groups) == ("Who wrote it?", "Ada", {"level": "2"})
    assert parse_row(row | {"file_name": "data.xlsx"}).skip == "gaia_attachment"
    assert parse_row(row | {"Final answer": "?"}).skip == "hidden_answer"


def test_webwalkerqa_rows_in_both_spellings():
    info = {"type": "multi_source", "difficulty_level": "easy", "domain": "conference", "lang": "en"}
    row = {"question": "When?", "answer": "May", "root_url": "https://x.org/", "info": info}
    readme = {"Question": "When?", "Answer": "May", "Root_Url": "https://x.org/",
              "Info": {"Hop": "multi-source", "Difficulty_Level": "Easy"}}  # fmt: skip
    for layout in (row, readme):
        q = parse_row(layout)
        assert detect_layout(layout) == "webwalkerqa"
        assert (q.qa["question"], q.qa["answer"]) == ("When?", "May")
        assert q.groups == {"type": "multi_source", "difficulty": "easy"}


def test_browsecomp_rows_are_decrypted_with_their_canary(tmp_path):
    problem, answer = "Which café in Zürich opened first, in 1873?", "Café Sprüngli"
    row = {"problem": encrypt(problem, CANARY), "answer": encrypt(answer, CANARY), "problem_topic": "History",
           "canary": CANARY}  # fmt: skip
    q = parse_row(row)
    assert detect_layout(row) == "browsecomp"
    assert (q.qa["question"], q.qa["answer"], q.groups) == (problem, answer, {"topic": "History"})
    plain = parse_row({"problem": problem, "answer": answer, "problem_topic": "History"})  # already decrypted
    assert plain.qa == q.qa
    # the public set is a CSV: read it as one
    path = tmp_path / "browse_comp_test_set.csv"
    lines = ["problem,answer,problem_topic,canary", f"{row['problem']},{row['answer']},History,{CANARY}"]
    path.write_text("\ufeff" + "\n".join(lines) + "\n")  # with the BOM spreadsheets write
    questions, skipped = load_benchmark(path)
    assert [x.qa["question"] for x in questions] == [problem] and not skipped
    with pytest.raises(RecordError, match=r"x\.csv:2: .*decrypt"):
        parse_row(row | {"answer": "not base64!"}, "x.csv", 2)


def test_plain_and_simpleqa_rows():
    q = parse_row({"question": "Q?", "answer": "A", "type": "COUNT", "source": "crawlqa"})
    assert (q.layout, q.groups) == ("plain", {"type": "COUNT"})
    simple = parse_row({"problem": "Q?", "answer": "A"})
    assert simple.layout == "plain" and simple.qa["id"] == q.qa["id"] and simple.groups == {}
    assert parse_row({"question": "How many?", "answer": 0, "level": 3}).qa["answer"] == "0"  # JSON numbers too


def test_bad_rows_are_named_by_file_line_and_field(tmp_path):
    path = tmp_path / "bench.jsonl"
    good = {"task_id": "t1", "Question": "Q?", "Final answer": "A", "Level": 1}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({"task_id": "t2", "Question": "Q2?", "Level": 1}) + "\n")
    with pytest.raises(RecordError) as err:
        load_benchmark(path)
    assert str(err.value).startswith(f"{path}:3: GAIA row has no 'Final answer'") and "task_id" in str(err.value)
    path.write_text('{"question": "Q?"}\n')
    with pytest.raises(RecordError, match=r"bench\.jsonl:1: QA row has no 'answer' or 'Answer'"):
        load_benchmark(path)
    path.write_text('{"question": "Q?", "answer": "A"}\n{"question": \n')
    with pytest.raises(RecordError, match=r"bench\.jsonl:2: invalid JSON"):
        load_benchmark(path)
    path.write_text(json.dumps(good | {"file_name": "a.pdf"}) + "\n")
    with pytest.raises(RecordError, match="no questions to evaluate.*gaia_attachment"):
        load_benchmark(path)


def test_duplicates_and_limit(tmp_path):
    path = tmp_path / "b.jsonl"
    rows = [{"question": f"Q{i}?", "answer": "A"} for i in (1, 1, 2, 3)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    questions, skipped = load_benchmark(path)
    assert [q.qa["question"] for q in questions] == ["Q1?", "Q2?", "Q3?"] and skipped == {"duplicate": 1}
    assert len(load_benchmark(path, limit=2)[0]) == 2


# --- `wdtk eval` end to end ----------------------------------------------------------------------------------------

MAX_CALLS = 5
PLANS = [
    ["good", "wrong", "wrong"],
    ["good", "good", "wrong"],
    ["broken", "loop", "good"],
    ["wrong", "broken", "loop"],
]
LEVELS = ["1", "1", "2", "2"]
# what each of AgentModel's plans does (tests/servers/agent_model.py): its answer, validity and tool calls
ANSWER = {"good": "gold", "wrong": "Atlantis", "broken": None, "loop": None}
VALIDITY = {"good": "valid", "wrong": "valid", "broken": "format_error", "loop": "call_budget_exceeded"}
ACTIONS = {"good": 2, "wrong": 2, "broken": 0, "loop": MAX_CALLS}  # search+visit; none; one search per LLM call


def expected(plan_lists: list[list[str]]) -> dict:
    """The metrics the plans imply, worked out from what each plan does."""
    flat = [p for plans in plan_lists for p in plans]

    def majority_is_gold(plans: list[str]) -> bool:
        votes = Counter(ANSWER[p] for p in plans if ANSWER[p])
        return bool(votes) and votes.most_common(1)[0][0] == "gold"

    n = len(plan_lists)
    return {
        "pass@1": sum(plans.count("good") / len(plans) for plans in plan_lists) / n,
        "pass@k": sum("good" in plans for plans in plan_lists) / n,
        "cons@k": sum(majority_is_gold(plans) for plans in plan_lists) / n,
        "invalid_action_rate": sum(VALIDITY[p] == "format_error" for p in flat) / len(flat),
        "budget_exhausted_rate": sum(VALIDITY[p] == "call_budget_exceeded" for p in flat) / len(flat),
        "actions_per_rollout": sum(ACTIONS[p] for p in flat) / len(flat),
    }


@pytest.fixture
def gaia_file(qa_seeds, tmp_path) -> Path:
    rows = [
        {
            "task_id": f"t{i}",
            "Question": s["problem"],
            "Level": int(level),
            "Final answer": s["answer"],
            "file_name": "",
        }
        for i, (s, level) in enumerate(zip(qa_seeds, LEVELS, strict=True))
    ]
    rows.append(rows[0] | {"task_id": "t9", "Question": "What does the attached sheet say?", "file_name": "a.xlsx"})
    path = tmp_path / "gaia_validation.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_wdtk_eval_reports_what_the_plans_imply(openai_server, qa_run, qa_seeds, gaia_file, tmp_path):
    answers = {s["problem"]: s["answer"] for s in qa_seeds}
    openai_server.responder = AgentModel(answers, {s["problem"]: p for s, p in zip(qa_seeds, PLANS, strict=True)})
    out = tmp_path / "eval"
    args = ["eval", str(gaia_file), "-o", str(out), "--k", "3", "--search", f"bm25:{qa_run / 'index'}",
            "--model", "agent-model", "--api-base", openai_server.base_url, "--judge", "judge-model",
            "--judge-api-base", openai_server.base_url, "--workers", "0", "--max-calls", str(MAX_CALLS)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    overall = results["overall"]
    assert (overall["questions"], overall["rollouts"], overall["rollouts_missing"]) == (4, 12, 0)
    for key, value in expected(PLANS).items():
        assert overall[key] == pytest.approx(value), key
    for level in ("1", "2"):
        subset = [plans for plans, lv in zip(PLANS, LEVELS, strict=True) if lv == level]
        for key, value in expected(subset).items():
            assert results["breakdown"]["level"][level][key] == pytest.approx(value), (level, key)
    assert results["benchmark"]["skipped"] == {"gaia_attachment": 1} and results["benchmark"]["layouts"] == {"gaia": 4}
    assert results["config"]["k"] == 3 and results["config"]["model"] == "agent-model"
    assert "judge-model" in results["config"]["judge"]["model"] and results["config"]["wdtk_version"]
    # every rollout was judged; the LLM judge saw only those with an answer
    judgements = list(read_records(out / "judgements", kind="judgement"))
    answered = sum(ANSWER[p] is not None for plans in PLANS for p in plans)
    assert len(judgements) == 12 and sum(j["method"] == "llm" for j in judgements) == answered
    # the table: all questions, then one row per level, as in results.json
    table = (out / "results.md").read_text()
    assert "| Subset | Questions | Pass@1 | Pass@3 | Cons@3 |" in table
    assert f"| all | 4 | {100 * expected(PLANS)['pass@1']:.1f} | {100 * expected(PLANS)['pass@k']:.1f} |" in table
    assert "| level=1 | 2 |" in table and "| level=2 | 2 |" in table and "gaia_attachment 1" in table
    assert table.strip() in result.output.replace("\r", "")
    assert list(read_records(out / "questions.jsonl", kind="qa"))[0]["question"] == qa_seeds[0]["problem"]

    # run again through the API, judged by exact match: the finished rollouts are reused, not sampled again
    calls = openai_server.request_count
    backends = Backends(model="agent-model", api_base=openai_server.base_url,
                        cache_path=str(out / "llm_cache.sqlite"), search=f"bm25:{qa_run / 'index'}")  # fmt: skip
    cfg = EvalConfig(k=3, agent=AgentConfig(max_calls=MAX_CALLS))
    again = run(gaia_file, out, cfg, backends, Judge(None), RunOptions(workers=0))
    assert openai_server.request_count == calls
    assert again["config"]["judge"] == {"method": "exact"}
    for key, value in expected(PLANS).items():
        assert again["overall"][key] == pytest.approx(value), key
    # other settings in the same directory would mix rollouts: refused, with the way out
    other_k = CliRunner().invoke(main, [*args[:5], "2", *args[6:]])
    assert other_k.exit_code != 0 and "rollouts of other settings" in other_k.output and "--restart" in other_k.output


def test_wdtk_eval_names_a_bad_benchmark_row(qa_run, tmp_path):
    bench = tmp_path / "webwalker.jsonl"
    bench.write_text('{"question": "Q?", "answer": "A", "root_url": "https://x.org/"}\n{"root_url": "https://y/"}\n')
    args = ["eval", str(bench), "-o", str(tmp_path / "out"), "--search", f"bm25:{qa_run / 'index'}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and f"{bench}:2: WebWalkerQA row has no 'question'" in result.output
    bench.write_text('{"question": "Q?", "answer": "A"}\n')
    missing = CliRunner().invoke(main, ["eval", str(bench), "-o", str(tmp_path / "o"), "--search", "bm25:/no/index"])
    assert missing.exit_code != 0 and "no search index at /no/index" in missing.output
