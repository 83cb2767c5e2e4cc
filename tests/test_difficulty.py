"""The difficulty gate (filters/difficulty.py) and the gates stage of `wdtk filter` (filters/gates.py) against the
local fake OpenAI server with scripted solvers: easy questions are dropped as too_easy and hard ones kept, with
their pass rates in meta.difficulty; closed-book and agent attempts, exact match and an LLM judge; reruns and a
SIGKILLed `wdtk filter --difficulty` repeat no completed LLM call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from servers.agent_model import AgentModel
from servers.kill import sigkill_after_requests

from wdtk.filters.gates import GatesConfig
from wdtk.filters.gates import run as run_gates
from wdtk.schemas import read_records, record_id, write_records
from wdtk.synth.difficulty import DifficultyConfig, closed_book_answer
from wdtk.synth.parallel import Backends, RunOptions

SOLVED = {"Who wrote The Grey Harbour?": "Dorn Vael"}  # the solver knows this one
HALF = {"Where was Ava Lund born?": "Tarnholm"}  # ... this one on its first try only
HARD = {"Which river did the cartographer born in the 1870s map first?": "Ostmere"}  # ... and never this one


def qa(question: str, answer: str) -> dict:
    return {"id": record_id("qa", question, answer), "question": question, "answer": answer, "type": "MULTI-HOP",
            "source": "e2hqa", "evidence_urls": [], "meta": {"wdtk_version": "test"}}  # fmt: skip


def solver(body: dict) -> str:
    """Closed-book: the answer it knows, else a wrong guess (prefixed as a model might)."""
    prompt = body["messages"][-1]["content"]
    question = prompt.split("Question: ", 1)[1].strip()
    if question in SOLVED:
        return f"Answer: {SOLVED[question]}"
    if question in HALF and body.get("seed", 0) == 0:
        return HALF[question].lower() + "."
    return "<think>No idea.</think>\nAtlantis"


@pytest.fixture
def records(tmp_path) -> Path:
    path = tmp_path / "qa.jsonl"
    write_records([qa(q, a) for q, a in {**SOLVED, **HALF, **HARD}.items()], path, kind="qa")
    return path


def backends(server, tmp_path, search=None) -> Backends:
    return Backends("openai:solver", server.base_url, str(tmp_path / "cache.sqlite"), search, concurrency=8)


def gate(server, tmp_path, records, out="out", **cfg) -> tuple[dict, dict, dict]:
    """(summary, kept by question, rejects by question) of the gates with a difficulty config."""
    summary = run_gates(
        [records], tmp_path / out, GatesConfig(difficulty=DifficultyConfig(**cfg)), backends(server, tmp_path),
        RunOptions(workers=0),
    )  # fmt: skip
    kept = {r["question"]: r for r in read_records(tmp_path / out / "records", kind="qa")}
    rejects = {r["record"]["question"]: r for r in read_records(tmp_path / out / "rejects")}
    return summary, kept, rejects


def test_the_gate_drops_easy_questions_and_keeps_hard_ones_with_their_pass_rates(openai_server, tmp_path, records):
    openai_server.responder = solver
    summary, kept, rejects = gate(openai_server, tmp_path, records, attempts=3)
    assert set(kept) == set(HARD) and set(rejects) == set(SOLVED) | set(HALF)
    assert summary["rejected"] == {"too_easy": 2}
    hard = kept[next(iter(HARD))]["meta"]["difficulty"]
    assert hard["solver"].startswith("openai:solver")
    assert hard | {"solver": "-"} == {"solver": "-", "k": 3, "judge": "exact", "closed_book_pass": 0.0}
    assert rejects[next(iter(SOLVED))]["record"]["meta"]["difficulty"]["closed_book_pass"] == 1.0
    assert rejects[next(iter(HALF))]["record"]["meta"]["difficulty"]["closed_book_pass"] == pytest.approx(0.3333)
    prompts = [r["messages"][0]["content"] for r in openai_server.requests]
    assert len(prompts) == 9 and all(p.startswith("Answer the question below from what you know") for p in prompts)
    assert sorted(r.get("seed") for r in openai_server.requests)[:3] == [0, 0, 0]  # three samples, seeds 0, 1, 2


def test_max_pass_keeps_questions_solved_less_often(openai_server, tmp_path, records):
    openai_server.responder = solver
    _, kept, _ = gate(openai_server, tmp_path, records, attempts=3, max_pass=0.5)
    assert set(kept) == set(HARD) | set(HALF)


def test_an_llm_judge_decides_when_given(openai_server, tmp_path, records):
    def model(body):
        prompt = body["messages"][-1]["content"]
        if "Labeled answer:" in prompt:  # the judge: any answer naming a river is right
            return "Correct" if "Atlantis" in prompt and "Ostmere" in prompt else "Incorrect"
        return solver(body)

    openai_server.responder = model
    _, kept, rejects = gate(openai_server, tmp_path, records, attempts=2, judge_model="openai:judge",
                            judge_api_base=openai_server.base_url)  # fmt: skip
    assert next(iter(HARD)) in rejects  # its wrong guess, judged right
    assert rejects[next(iter(HARD))]["record"]["meta"]["difficulty"]["judge"].startswith("openai:judge")


def test_agent_attempts_with_tools_count_too(openai_server, tmp_path, qa_run, qa_seeds):
    """Closed-book fails every question; the agent, with search and visit, solves the first seed only."""
    solvable, unsolvable = qa_seeds[0], qa_seeds[1]
    agent = AgentModel(answers={solvable["problem"]: solvable["answer"]}, plans={unsolvable["problem"]: ["wrong"]})

    def model(body):
        if body["messages"][-1]["content"].startswith("Answer the question below"):
            return "I do not know"
        return agent(body)

    openai_server.responder = model
    path = tmp_path / "qa.jsonl"
    write_records([qa(s["problem"], s["answer"]) for s in (solvable, unsolvable)], path, kind="qa")
    cfg = GatesConfig(difficulty=DifficultyConfig(attempts=1, agent_attempts=2))
    b = backends(openai_server, tmp_path, f"bm25:{qa_run / 'index'}")
    summary = run_gates([path], tmp_path / "out", cfg, b, RunOptions(workers=0))
    kept = list(read_records(tmp_path / "out" / "records"))
    rejects = list(read_records(tmp_path / "out" / "rejects"))
    assert [r["question"] for r in kept] == [unsolvable["problem"]] and summary["rejected"] == {"too_easy": 1}
    passed = {k: v for k, v in kept[0]["meta"]["difficulty"].items() if k not in ("solver", "judge")}
    assert passed == {"k": 1, "closed_book_pass": 0.0, "agent_k": 2, "agent_pass": 0.0}
    assert rejects[0]["record"]["meta"]["difficulty"]["agent_pass"] == 1.0
    assert summary["usage"]["agent"]["calls"] >= 8  # two rollouts of search, visit, answer per question


def test_a_rerun_pays_for_no_call_twice(openai_server, tmp_path, records):
    openai_server.responder = solver
    first, _, _ = gate(openai_server, tmp_path, records)
    calls = openai_server.request_count
    second, kept, _ = gate(openai_server, tmp_path, records)
    assert openai_server.request_count == calls and second["partitions"] == 0 and second["resumed_partitions"] >= 1
    assert second["kept"] == first["kept"] == len(kept)
    gate(openai_server, tmp_path, records, out="again")  # a new stage directory: the response cache answers
    assert openai_server.request_count == calls


def test_closed_book_answers_are_read_from_what_models_write():
    assert closed_book_answer("Answer: Dorn Vael") == "Dorn Vael"
    assert closed_book_answer("<think>hmm\nmaybe</think>\n**Tarnholm**.") == "Tarnholm"
    assert closed_book_answer("<answer>1874</answer>") == "1874"
    assert closed_book_answer("\n\nOstmere\nBecause rivers...") == "Ostmere"


def test_sigkilled_filter_with_the_gate_resumes_without_repeating_a_completed_call(openai_server, tmp_path):
    from wdtk.synth.guards import PING  # `wdtk filter --difficulty` checks its model with it before any work

    openai_server.responder = lambda body: "OK" if body["messages"] == PING else solver(body)
    openai_server.latency = 0.1
    rows = [qa(f"Which river did explorer {i} map first?", f"Ostvale{i}") for i in range(12)]
    write_records(rows, tmp_path / "in" / "qa.jsonl", kind="qa")
    out = tmp_path / "run" / "filter"
    cmd = [sys.executable, "-m", "wdtk.cli", "filter", str(tmp_path / "in" / "qa.jsonl"), "-o", str(out),
           "--difficulty", "--attempts", "3", "--model", "openai:solver", "--api-base", openai_server.base_url,
           "--concurrency", "2", "--no-dedup"]  # fmt: skip
    sigkill_after_requests(cmd, openai_server, 10)
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "filter: kept 12 of 12 qa records" in finished.stdout
    bodies = [json.dumps([r["messages"], r.get("seed")], sort_keys=True) for r in openai_server.requests
              if r["messages"] != PING]  # fmt: skip
    assert len(bodies) == 36 + (len(bodies) - len(set(bodies))) and len(bodies) - len(set(bodies)) <= 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kept"] == 12 and summary["gates"]["usage"]["solver"]["calls"] >= 36
    kept = list(read_records(out / "records", kind="qa"))
    assert all(r["meta"]["difficulty"]["closed_book_pass"] == 0.0 for r in kept)
