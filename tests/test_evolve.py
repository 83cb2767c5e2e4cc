"""wdtk evolve: two rounds of sample -> funnel -> SFT set -> train -> eval, killed mid-run and resumed.

Round 0 samples with the scripted agent behind the fake OpenAI server (so trajectories pass the funnel); the SFT
step runs training/sft.py as a subprocess on a tiny local checkpoint; round 1 samples with that checkpoint served
`local:` (a 2-layer random model: its rollouts end in format errors, and nothing new is kept).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from servers.agent_model import AgentModel
from tiny_lm import save_tiny

from wdtk.cli import main
from wdtk.schemas import WdtkError, read_records
from wdtk.synth.text import normalize
from wdtk.training.evolve import STEPS, benchmark_texts, check_served, held_out_count, split

SFT_ARGS = "--max_steps 2 --per_device_train_batch_size 2 --max_length 4096 --logging_steps 1"


def evolve_args(run_dir: Path, base: Path, seeds: Path, api_base: str, *extra: str) -> list[str]:
    return [
        *("--dir", str(run_dir), "--rounds", "2", "--base-model", str(base), "--questions", str(seeds)),
        *("--held-out", "0.25", "--rollouts", "2", "--eval-k", "1", "--model", "agent-model", "--api-base", api_base),
        *(
            "--workers",
            "0",
            "--temperature",
            "0",
            "--max-calls",
            "5",
            "--max-new-tokens",
            "16",
            "--sft-args",
            SFT_ARGS,
        ),
        *extra,
    ]


def state_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "evolve" / "state.json").read_text())


def round_0_trained(state: Path) -> bool:
    rounds = json.loads(state.read_text())["rounds"] if state.exists() else []
    return bool(rounds) and "train" in rounds[0]["steps"]


def work(server) -> list[dict]:
    """The requests that did the run's work: not the test request each `wdtk evolve` sends its model first."""
    from wdtk.synth.guards import PING

    return [r for r in server.requests if r["messages"] != PING]


def wait_for_round_0_training(proc: subprocess.Popen, state: Path, limit: float = 240.0) -> None:
    """Block until round 0's train step is marked done in the state file (or the process ends)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None and not round_0_trained(state):
        time.sleep(0.05)
    assert round_0_trained(state), f"round 0 never finished training (exit {proc.poll()})"


@pytest.fixture(scope="module")
def evolved(qa_run, qa_seeds, tmp_path_factory):
    """A 2-round run, SIGKILLed right after round 0's training step was recorded, then finished by a rerun."""
    from servers import FakeOpenAIServer

    root = tmp_path_factory.mktemp("evolve")
    run_dir = root / "run"
    run_dir.mkdir()
    for name in ("crawl", "index"):
        (run_dir / name).symlink_to(qa_run / name)
    base = save_tiny(root / "base", "qwen2_5")
    with FakeOpenAIServer() as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_DATASETS_CACHE", str(root / "hf-cache"))  # datasets' cache of the SFT set, in the subprocesses
        server.responder = AgentModel({s["problem"]: s["answer"] for s in qa_seeds})
        args = evolve_args(run_dir, base, qa_run / "seeds.jsonl", server.base_url)
        code = "from wdtk.training.commands import evolve_cmd; evolve_cmd()"
        with (root / "killed.log").open("w") as log:
            proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
            try:
                wait_for_round_0_training(proc, run_dir / "evolve" / "state.json")
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: no child outlives the test
                proc.wait()
        checkpoint = run_dir / "evolve" / "round-0" / "model" / "model.safetensors"
        killed = SimpleNamespace(
            state=state_of(run_dir),
            requests=len(work(server)),
            checkpoint_mtime=checkpoint.stat().st_mtime_ns,
            signal=-proc.returncode,
        )
        result = CliRunner().invoke(main, ["evolve", *args])
        assert result.exit_code == 0, result.output + (root / "killed.log").read_text()[-3000:]
        yield SimpleNamespace(run_dir=run_dir, args=args, server=server, killed=killed, result=result, root=root)


def test_each_round_records_its_steps_and_figures_from_the_funnel_and_eval(evolved):
    ev = evolved.run_dir / "evolve"
    rounds = state_of(evolved.run_dir)["rounds"]
    train_questions = len(list(read_records(ev / "split" / "train.jsonl")))
    for r, rnd in enumerate(rounds[:2]):
        assert list(rnd["steps"]) == list(STEPS) and rnd["figures"]["steps_done"] == list(STEPS)
        funnel = json.loads((ev / f"round-{r}" / "funnel" / "summary.json").read_text())
        results = json.loads((ev / f"round-{r}" / "eval" / "results.json").read_text())
        f = rnd["figures"]
        assert f["trajectories"] == funnel["trajectories"] == 2 * train_questions
        assert f["kept"] == funnel["kept"] and f["yield"] == funnel["kept"] / funnel["trajectories"]
        assert f["questions_solved"] == funnel["questions_kept"]
        assert f["pass@1_held_out"] == results["overall"]["pass@1"]
        assert f["sft_rows"] == len(list(read_records(ev / f"round-{r}" / "sft_set")))
    first, second = rounds[0], rounds[1]
    assert first["policy"] == "agent-model" and first["figures"]["kept"] > 0  # the scripted agent answers right
    model = first["steps"]["train"]["model"]
    assert first["figures"]["trained"] and (Path(model) / "model.safetensors").is_file()
    assert isinstance(first["figures"]["train_loss"], float)  # read from the training log
    assert second["policy"] == f"local:{model}"  # round 1 samples with what round 0 trained
    ends = second["steps"]["sample"]["terminations"]
    assert "answer" not in ends and ends.get("format_error"), ends  # a random 2-layer model cannot use the tools
    assert second["figures"]["kept"] == 0 and second["steps"]["train"]["trained"] is False
    assert second["figures"]["model"] == model  # nothing new to learn from: the last model carries on
    assert second["figures"]["sft_rows"] == first["figures"]["sft_rows"]  # accumulated: round 0's rows stay in
    table = (ev / "rounds.md").read_text()
    assert sum(line.startswith("| ") for line in table.splitlines()) == 1 + len(rounds)  # header + a row each
    assert "| local:round-0 |" in table
    assert table.splitlines()[0] in evolved.result.output


def test_held_out_questions_are_never_trained_on(evolved, qa_seeds):
    ev = evolved.run_dir / "evolve"
    held = {normalize(q["question"]) for q in read_records(ev / "split" / "held_out.jsonl")}
    train = {normalize(q["question"]) for q in read_records(ev / "split" / "train.jsonl")}
    assert len(held) == held_out_count(len(qa_seeds), 0.25) and not held & train
    assert held | train == {normalize(s["problem"]) for s in qa_seeds}
    for r in range(2):
        sampled = {normalize(t["question"]) for t in read_records(ev / f"round-{r}" / "sample" / "records")}
        assert sampled == train
        rows = list(read_records(ev / f"round-{r}" / "sft_set"))
        asked = {normalize(next(m["content"] for m in row["messages"] if m["role"] == "user")) for row in rows}
        assert asked and not asked & held
        evaluated = {normalize(q["question"]) for q in read_records(ev / f"round-{r}" / "eval" / "questions.jsonl")}
        assert evaluated == held


def test_a_killed_run_resumes_without_redoing_finished_steps(evolved):
    state, before = state_of(evolved.run_dir), evolved.killed.state["rounds"][0]["steps"]
    assert evolved.killed.signal == signal.SIGKILL  # a genuine interruption, not a finished run
    assert {"sample", "funnel", "sft_set", "train"} <= set(before)
    for step, record in before.items():
        assert state["rounds"][0]["steps"][step] == record  # not run again: the same record, seconds included
    checkpoint = Path(state["rounds"][0]["steps"]["train"]["model"]) / "model.safetensors"
    assert checkpoint.stat().st_mtime_ns == evolved.killed.checkpoint_mtime  # training did not run again
    assert len(work(evolved.server)) == evolved.killed.requests  # round 0's rollouts were not sampled again
    assert "round 0 train:" not in evolved.result.output


def test_other_core_options_are_refused(evolved):
    before = (evolved.run_dir / "evolve" / "state.json").read_bytes()
    args = [*evolved.args, "--rollouts", "3", "--init", "previous"]
    result = CliRunner().invoke(main, ["evolve", *args])
    assert result.exit_code == 1
    assert "rollouts was 2, now 3" in result.output and "init was 'base', now 'previous'" in result.output
    assert (evolved.run_dir / "evolve" / "state.json").read_bytes() == before


def test_a_failed_training_names_its_log_and_is_retried_on_rerun(evolved, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(evolved.run_dir, run_dir, symlinks=True)
    state = state_of(run_dir)
    state["rounds"] = state["rounds"][:1]
    del state["rounds"][0]["steps"]["train"], state["rounds"][0]["steps"]["eval"]  # as if killed while training
    (run_dir / "evolve" / "state.json").write_text(json.dumps(state))
    args = [a.replace(str(evolved.run_dir), str(run_dir)) for a in evolved.args]
    args[args.index("--sft-args") + 1] = "--no_such_option 1"  # not a core option: may change on a rerun
    result = CliRunner().invoke(main, ["evolve", *args])
    assert result.exit_code == 1
    log = run_dir / "evolve" / "round-0" / "train.log"
    assert "round 0 training failed" in result.output and str(log) in result.output
    assert "--no_such_option" in log.read_text()
    assert "train" not in state_of(run_dir)["rounds"][0]["steps"]


def test_a_finished_run_does_nothing_and_more_rounds_extend_it(evolved):
    state_file = evolved.run_dir / "evolve" / "state.json"
    before, requests = state_file.read_bytes(), len(work(evolved.server))
    assert CliRunner().invoke(main, ["evolve", *evolved.args]).exit_code == 0
    assert state_file.read_bytes() == before
    args = [*evolved.args, "--rounds", "3"]
    result = CliRunner().invoke(main, ["evolve", *args])
    assert result.exit_code == 0, result.output
    rounds = state_of(evolved.run_dir)["rounds"]
    assert len(rounds) == 3 and list(rounds[2]["steps"]) == list(STEPS)
    assert rounds[2]["policy"] == f"local:{rounds[1]['steps']['train']['model']}"
    assert json.loads(before)["rounds"] == rounds[:2]  # the earlier rounds untouched
    assert len(work(evolved.server)) == requests


# --- pieces ---------------------------------------------------------------------------------------------------------


def qa(i: int, question: str | None = None) -> dict:
    return {"id": f"q{i:03d}", "question": question or f"Question number {i}?", "answer": str(i)}


def test_split_is_fixed_by_question_ids_and_disjoint():
    questions = [qa(i) for i in range(50)]
    train, held = split(questions, 0.2)
    assert len(held) == 10 and len(train) == 40 and not {q["id"] for q in train} & {q["id"] for q in held}
    again_train, again_held = split(list(reversed(questions)), 0.2)
    assert {q["id"] for q in again_held} == {q["id"] for q in held}  # the order of the input does not matter
    twin = qa(99, held[0]["question"].upper())  # another id, the same question: held out too
    assert twin not in split([*questions, twin], 0.2)[0]


def test_a_held_out_file_removes_its_questions_from_training():
    questions = [qa(i) for i in range(5)]
    train, held = split(questions, {normalize("question number 3")})
    assert held == [] and [q["id"] for q in train] == ["q000", "q001", "q002", "q004"]


def test_every_row_of_a_held_out_benchmark_is_held_out_even_those_eval_skips(tmp_path):
    rows = [
        {"task_id": "a", "Question": "Who founded the Keldra Society?", "Final answer": "Ansel Varro", "Level": 1},
        {
            "task_id": "b",
            "Question": "What does the attached sheet sum to?",
            "Final answer": "7",
            "file_name": "x.xlsx",
        },
    ]
    bench = tmp_path / "gaia.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    texts = benchmark_texts(bench)
    questions = [qa(1, "Who founded the Keldra Society?"), qa(2, "What does the attached sheet sum to?"), qa(3)]
    assert [q["id"] for q in split(questions, texts)[0]] == ["q003"]


@pytest.mark.parametrize(("n", "fraction", "count"), [(4, 0.25, 1), (2, 0.9, 1), (10, 0.01, 1), (10, 0.99, 9)])
def test_held_out_count_leaves_both_sides_non_empty(n, fraction, count):
    assert held_out_count(n, fraction) == count


def test_held_out_count_needs_two_questions():
    with pytest.raises(ValueError, match="at least 2"):
        held_out_count(1, 0.5)


def test_an_unserved_checkpoint_stops_the_run_naming_it(openai_server):
    check_served(openai_server.base_url, "fake")  # the fake server lists one model, "fake"
    with pytest.raises(WdtkError, match="vllm serve /runs/x/evolve/round-0/model"):
        check_served(openai_server.base_url, "/runs/x/evolve/round-0/model")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--held-out", "1.5"], "neither a fraction in (0, 1) nor a file"),
        (["--serve", "endpoint"], "--serve endpoint needs --serve-api-base"),
    ],
)
def test_bad_options_fail_with_one_clear_line(qa_run, tmp_path, extra, message):
    seeds, search = qa_run / "seeds.jsonl", f"bm25:{qa_run / 'index'}"
    args = evolve_args(tmp_path, tmp_path / "base", seeds, "http://127.0.0.1:9/v1", "--search", search, *extra)
    result = CliRunner().invoke(main, ["evolve", *args])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_training_subprocess_dies_with_a_killed_evolve(tmp_path):
    """A SIGKILLed evolve must not leave its training running (and a rerun training alongside it)."""
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "from wdtk.training.evolve import _die_with_parent\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],\n"
        "                         preexec_fn=_die_with_parent)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )])  # fmt: skip
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{child}/stat") as f:  # a zombie (dead, not yet reaped by init) counts as gone
            if f.read().split(") ")[1].startswith("Z"):
                return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the training subprocess outlived its parent")
