"""The trajectory funnel: validity, correctness (LLM judge or exact match), quality, the RL pool, `wdtk funnel`."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from servers.agent_model import AgentModel

from wdtk.cli import main
from wdtk.filters.funnel import FunnelConfig, quality_reason, run, validity_reason
from wdtk.schemas import read_records, validate, write_records
from wdtk.synth.judge import Judge

PLANS = [["good", "wrong", "broken"], ["loop"], ["repeat", "invented_url", "good"], ["reasoning", "good", "good"]]
EXPECTED = {  # what each plan's rollout becomes in the funnel
    "good": ("kept", None), "reasoning": ("kept", None), "wrong": ("correctness", "incorrect"),
    "broken": ("validity", "format_error"), "loop": ("validity", "call_budget_exceeded"),
    "repeat": ("quality", "repeated_call"), "invented_url": ("quality", "hallucinated_url"),
}  # fmt: skip


@pytest.fixture(scope="module")
def sampled(qa_run, qa_seeds, tmp_path_factory) -> Path:
    """A run directory whose sample/ holds 3 scripted rollouts for each of the four questions."""
    from servers import FakeOpenAIServer

    run_dir = tmp_path_factory.mktemp("funnel_run")
    for name in ("crawl", "index"):
        (run_dir / name).symlink_to(qa_run / name)
    with FakeOpenAIServer() as server:
        server.responder = AgentModel(
            {s["problem"]: s["answer"] for s in qa_seeds},
            {s["problem"]: p for s, p in zip(qa_seeds, PLANS, strict=True)},
        )
        result = CliRunner().invoke(
            main,
            ["sample", str(qa_run / "seeds.jsonl"), "--dir", str(run_dir), "--model", "agent-model",
             "--api-base", server.base_url, "--workers", "0", "--max-calls", "5"],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    return run_dir


def expected_counts(qa_seeds) -> Counter:
    counts = Counter()
    for plans in PLANS:
        for plan in plans * (3 // len(plans)):
            counts[EXPECTED[plan]] += 1
    return counts


def test_wdtk_funnel_with_an_llm_judge(sampled, qa_seeds, openai_server):
    openai_server.responder = AgentModel({s["problem"]: s["answer"] for s in qa_seeds})
    result = CliRunner().invoke(
        main,
        ["funnel", "--dir", str(sampled), "--judge", "judge-model", "--judge-api-base", openai_server.base_url,
         "--no-export"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = sampled / "funnel"
    summary = json.loads((out / "summary.json").read_text())
    want = expected_counts(qa_seeds)
    assert summary["trajectories"] == 12 and summary["questions"] == 4
    assert summary["format_errors"] == {"tool_call_not_json": 1}  # the broken plan's call is not JSON
    assert "format errors: tool_call_not_json 1" in result.output
    stages = {s["name"]: s for s in summary["stages"]}
    for (stage, reason), n in want.items():
        if stage != "kept":
            assert stages[stage]["dropped"][reason] == n, (stage, reason)
    assert stages["validity"]["in"] == 12
    assert stages["correctness"]["in"] == stages["validity"]["kept"]
    assert stages["quality"]["in"] == stages["correctness"]["kept"]
    assert summary["kept"] == stages["quality"]["kept"] == want[("kept", None)]
    kept = list(read_records(out / "records", kind="trajectory"))
    assert len(kept) == summary["kept"] and all(t["termination"] == "answer" for t in kept)
    rejects = list(read_records(out / "rejects"))
    assert Counter((r["stage"], r["reason"]) for r in rejects) == {k: v for k, v in want.items() if k[0] != "kept"}
    # only the question whose rollouts all looped is left without a survivor
    pool = list(read_records(out / "rl_pool"))
    assert [p["question"] for p in pool] == [qa_seeds[1]["problem"]]
    assert pool[0]["answer"] == qa_seeds[1]["answer"]
    assert pool[0]["metadata"]["outcomes"] == {"validity:call_budget_exceeded": 3}
    assert summary["rl_pool"] == 1 and summary["questions_kept"] == 3
    # every valid rollout was judged by the LLM, and the judgement says by which model and prompt
    judgements = list(read_records(out / "judgements", kind="judgement"))
    assert len(judgements) == stages["correctness"]["in"]
    assert {j["method"] for j in judgements} == {"llm"}
    assert {j["judge"]["model"] for j in judgements} == {summary["judge"]["model"]}
    assert all(j["judge"]["prompt_version"] == summary["judge"]["prompt_version"] for j in judgements)
    assert summary["judge_agreement"] == {"judged": len(judgements), "agree_with_exact": len(judgements)}
    verdicts = {j["id"]: j for j in judgements}
    for t in kept:  # each kept trajectory names its judge and verdict
        assert t["meta"]["judge"] == summary["judge"]
        assert verdicts[t["meta"]["judgement"]]["item_id"] == t["id"] and verdicts[t["meta"]["judgement"]]["correct"]
    assert "validity" in result.output and "RL pool" in result.output


def test_without_a_judge_exact_match_and_f1_decide(sampled, tmp_path):
    summary = run([sampled / "sample" / "records"], tmp_path / "f", FunnelConfig(), Judge(None))
    judgements = list(read_records(tmp_path / "f" / "judgements", kind="judgement"))
    assert {j["method"] for j in judgements} <= {"exact", "f1"} and summary["judge"] == {"method": "exact"}
    assert summary["judge_agreement"]["judged"] == 0
    assert summary["stages"][1]["dropped"] == {"incorrect": 1}


@pytest.fixture(scope="module")
def good(sampled) -> dict:
    """A rollout of the "good" plan: searched, visited, answered right."""
    rollouts = read_records(sampled / "sample" / "records")
    return next(
        t
        for t in rollouts
        if t["stats"]["actions"] == 2
        and t.get("prediction") == t["answer"]
        and "never-linked" not in str(t["messages"])
    )


def test_validity_catches_broken_structure(good):
    assert validity_reason(good) is None

    def broken(edit) -> dict:
        t = copy.deepcopy(good)
        edit(t)
        return t

    call = lambda t: t["messages"][2]["tool_calls"][0]["function"]  # noqa: E731
    cases = {
        "unknown_tool": lambda t: call(t).update(name="browse"),
        "bad_arguments": lambda t: call(t).update(arguments={"q": "x"}),
        "missing_tool_response": lambda t: t["messages"].pop(3),
        "unexpected_tool_response": lambda t: t["messages"][3].update(name="visit"),
        "malformed_turn": lambda t: t["messages"][2].update(content="see <answer>x</answer>"),
        "no_final_answer": lambda t: t.pop("prediction"),
        "bad_roles": lambda t: t["messages"][1].update(role="assistant"),
    }
    for reason, edit in cases.items():
        assert validity_reason(broken(edit)) == reason


def test_quality_flags_each_problem(good):
    cfg = FunnelConfig()
    assert quality_reason(good, cfg) is None
    assert quality_reason(good, FunnelConfig(max_actions=1)) == "too_many_actions"
    assert quality_reason(good, FunnelConfig(max_tokens=100)) == "too_long"
    unsupported = copy.deepcopy(good)
    unsupported["prediction"] = "Zanzibar Quartet"
    assert quality_reason(unsupported, cfg) == "unsupported_answer"
    assert quality_reason(unsupported, FunnelConfig(require_support=False)) is None
    counted = copy.deepcopy(good) | {"prediction": "17"}  # counts are computed, not quoted
    assert quality_reason(counted, cfg) is None


def test_funnel_names_a_bad_record(tmp_path):
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"id": "x"}\n')
    result = CliRunner().invoke(main, ["funnel", str(bad), "--dir", str(tmp_path), "--no-export"])
    assert result.exit_code != 0 and "t.jsonl:1:" in result.output and "question_id" in result.output


def test_kept_records_round_trip_the_schema(sampled):
    for t in read_records(sampled / "funnel" / "records"):
        validate(t, "trajectory")
    write_records([], sampled / "empty.jsonl")


def test_funnel_writes_the_exports_and_wdtk_export_rewrites_them(sampled, tmp_path):
    from wdtk.filters.export import rl_row, sft_row

    result = CliRunner().invoke(main, ["funnel", "--dir", str(sampled), "-o", str(tmp_path / "funnel")])
    assert result.exit_code == 0, result.output
    kept = list(read_records(tmp_path / "funnel" / "records"))
    pool = list(read_records(tmp_path / "funnel" / "rl_pool"))
    assert list(read_records(tmp_path / "funnel" / "export" / "sft")) == [sft_row(t) for t in kept]  # all under -o
    assert list(read_records(tmp_path / "funnel" / "export" / "rl")) == [rl_row(p) for p in pool]
    assert not (sampled / "export").exists()
    again = CliRunner().invoke(main, ["export", str(tmp_path / "funnel"), "-o", str(tmp_path / "export")])
    assert again.exit_code == 0 and f"sft {len(kept)}, webdancer {len(kept)}, rl {len(pool)}" in again.output
    assert len(list(read_records(tmp_path / "export" / "webdancer"))) == len(kept)


def test_the_report_shows_what_the_funnel_dropped(sampled):
    from wdtk.report.gather import gather
    from wdtk.report.html import render

    run([sampled / "sample" / "records"], sampled / "funnel", FunnelConfig(), Judge(None))
    figures = gather(sampled)
    drops = {d["stage"]: d["reasons"] for d in figures["drops"]}
    summary = json.loads((sampled / "funnel" / "summary.json").read_text())
    assert drops["Funnel: validity"] == summary["stages"][0]["dropped"]
    assert drops["Funnel: format errors by kind"] == summary["format_errors"]
    assert "format errors by kind" in render(figures)
