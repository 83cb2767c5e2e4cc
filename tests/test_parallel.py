"""The stage runtime (synth/parallel.py, worker.py, ledger.py): every input accounted for, failures bounded and
retried, items written as they finish, size caps, completion markers, progress, and Dask (a LocalCluster, and the
`dask scheduler` / `dask worker` CLI in subprocesses)."""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from pathlib import Path

import pytest
from servers import FakeOpenAIServer, Reply
from servers.toy_stage import items, toy_item

from wdtk.schemas import IncompleteWarning, is_complete, read_records
from wdtk.synth.parallel import Backends, PartitionsFailed, RunOptions, Stage, TextCaps, run_stage, warn_if_slow
from wdtk.synth.progress import StageProgress


def toy(backends: Backends | None = None, name: str = "toy") -> Stage:
    return Stage(name, toy_item, {"v": 1}, "qa", backends or Backends(model="openai:toy", api_base="http://x/v1"))


HERE = RunOptions(workers=0, partition_size=3, flush_seconds=0.2)


def reasons(out: Path) -> list[str]:
    with warnings.catch_warnings():  # read while incomplete, on purpose
        warnings.simplefilter("ignore", IncompleteWarning)
        return sorted(r["reason"] for r in read_records(out / "rejects"))


def test_every_input_ends_as_a_record_a_reject_or_a_failure(tmp_path):
    """Nothing vanishes: an empty answer is a reject 'empty', a bug or an error that is its own cause is a reject
    'error' (a rerun replaying the same cached replies would only fail the same way), a transient failure leaves the
    input for the next run, and the stage says so in one line and leaves its output visibly incomplete."""
    flag = tmp_path / "service-is-back"
    work = items("keep", "empty", "raise", "self_cause", "permanent", "invalid", "keep") + [
        {"id": "item-flaky", "do": "flaky", "question": str(flag)}
    ]
    out = tmp_path / "out"
    with pytest.raises(PartitionsFailed) as failed:
        run_stage(toy(), work, out, HERE)
    assert "1 of 8 inputs failed (TransientLLMError: HTTP 502: still down)" in str(failed.value)
    assert "\n" not in str(failed.value)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"] == {"total": 8, "kept": 2, "rejected": 5, "failed": 1, "duplicates": 0, "resumed": 0}
    assert reasons(out) == ["empty", "error", "error", "invalid_record", "llm_error"]
    assert not is_complete(out / "records") and not is_complete(out / "rejects")
    with pytest.warns(IncompleteWarning, match="is incomplete"):
        list(read_records(out / "records"))
    flag.touch()  # the service is back: the rerun does the failed input only
    again = run_stage(toy(), work, out, HERE)
    assert again["inputs"] == {"total": 8, "kept": 3, "rejected": 5, "failed": 0, "duplicates": 0, "resumed": 7}
    assert again["partitions"] == 1 and again["kept"] == 3 and reasons(out) == reasons(out)
    assert is_complete(out / "records") and is_complete(out / "rejects")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(read_records(out / "records", kind="qa"))) == 3


def test_items_are_written_as_they_finish_while_one_straggles(tmp_path):
    """One item of a partition hangs; the others are on disk within seconds, and a kill now would lose none."""
    release = tmp_path / "release"
    work = items("keep", "keep", "keep", "keep", "keep") + [
        {"id": "item-slow", "do": "wait", "question": str(release)}
    ]
    out, result = tmp_path / "out", {}
    runner = threading.Thread(
        target=lambda: result.update(
            run_stage(toy(), work, out, RunOptions(workers=0, partition_size=6, flush_seconds=0.2))
        )
    )
    runner.start()
    deadline = time.monotonic() + 30
    finished: list[str] = []
    while len(finished) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
        finished = [i[0] for f in (out / "done").glob("*.json") for i in json.loads(f.read_text())["items"]]
    assert sorted(finished) == [f"item-{i:03d}" for i in range(5)] and runner.is_alive()
    with pytest.warns(IncompleteWarning):
        assert len(list(read_records(out / "records", kind="qa"))) == 5  # written, though the partition is not over
    release.touch()
    runner.join(30)
    assert result["inputs"]["kept"] == 6 and is_complete(out / "records")


def test_question_answer_and_page_text_are_capped_and_counted(tmp_path):
    huge = "x" * 50_000_000  # a 50 MB line: sent whole, it was 8.7M tokens
    work = [{"id": "big", "do": "keep", "question": huge, "pages": [{"text": huge}]}, *items("keep")]
    opts = RunOptions(workers=0, caps=TextCaps(question=1000, text=5000))
    summary = run_stage(toy(), work, tmp_path / "out", opts)
    assert summary["truncated"] == {"question": 1, "text": 1}
    seen = {r["meta"]["item"]: r["meta"]["question_chars"] for r in read_records(tmp_path / "out" / "records")}
    assert seen == {"big": 1000, "item-000": 1}


def test_progress_counts_inputs_of_a_known_total_records_and_calls(tmp_path, openai_server, capsys):
    events: list[dict] = []
    stage = toy(Backends(model="openai:toy", api_base=openai_server.base_url, concurrency=4))
    run_stage(stage, items(*["llm"] * 7), tmp_path / "out", HERE, events.append)
    assert events[0]["total"] == 7 and events[-1] | {"stage": "toy"} == {
        "stage": "toy", "total": 7, "done": 7, "records": 7, "calls": 7, "failed": 0,
    }  # fmt: skip
    with StageProgress("toy", every=0) as progress:  # not a terminal: a plain line on stderr
        progress(events[-1])
    assert "toy: 7/7 inputs, 7 records, 7 LLM calls" in capsys.readouterr().err


def test_a_cpu_model_warns_up_front_when_a_stage_will_be_long(caplog):
    stage = Stage("crawlqa", toy_item, {"v": 1}, "qa", Backends(model="embedded"))
    with caplog.at_level(logging.WARNING, logger="wdtk.synth.parallel"):
        assert warn_if_slow(stage, 200, RunOptions(workers=1)) > 180
        assert warn_if_slow(stage, 2, RunOptions(workers=1)) < 180
        assert warn_if_slow(toy(), 200, RunOptions(workers=1)) == 0  # an endpoint: no estimate
    assert len(caplog.records) == 1 and "--max-groups" in caplog.records[0].getMessage()


def test_duplicate_inputs_run_once_and_are_counted(tmp_path):
    work = items("keep", "keep")
    summary = run_stage(toy(), [*work, work[0]], tmp_path / "out", HERE)
    assert summary["inputs"] == {"total": 3, "kept": 2, "rejected": 0, "failed": 0, "duplicates": 1, "resumed": 0}


# --- Dask ----------------------------------------------------------------------------------------------------------


def faulty_server(kind: str) -> Reply:
    return {
        "429": Reply.rate_limited(retry_after=0),
        "500": Reply.error(500),
        "400": Reply.error(400, "bad request"),
        "drop": Reply.dropped(),
        "truncated": Reply.truncated(),
        "garbage": Reply.garbage(),
        "hang": Reply.hang(),
    }[kind]


@pytest.mark.slow
def test_failed_partitions_on_dask_keep_worker_memory_flat(tmp_path):
    """Each LLM error kind fails its inputs on a real LocalCluster; the workers' memory stays flat (an error that
    was its own cause made Dask's error reporting loop, ~45 MB/s, until the worker was killed) and the run ends
    with one line."""
    import psutil
    from dask.distributed import Client, LocalCluster

    kinds = ["429", "500", "400", "drop", "truncated", "garbage", "hang"]
    with (
        FakeOpenAIServer(lambda body: faulty_server(body["messages"][0]["content"])) as server,
        LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None, memory_limit="2GiB"
        ) as cluster,
        Client(cluster) as client,
    ):
        rss = lambda: sum(client.run(lambda: psutil.Process().memory_info().rss).values())  # noqa: E731
        before = rss()
        backends = Backends(model="openai:toy", api_base=server.base_url, timeout=1.0, max_retries=1, concurrency=8)
        work = [{"id": f"llm-{k}", "do": "llm", "question": k} for k in kinds]
        work += items("self_cause", "transient_self_cause")
        opts = RunOptions(workers=2, scheduler=cluster.scheduler_address, partition_size=2, flush_seconds=0.2)
        with pytest.raises(PartitionsFailed) as failed:
            run_stage(toy(backends), work, tmp_path / "out", opts)
        time.sleep(2)  # a looping error report would keep growing now
        grown = rss() - before
    assert "\n" not in str(failed.value) and "of 9 inputs failed" in str(failed.value)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["inputs"]["failed"] == 7 and summary["inputs"]["rejected"] == 2  # 400 and the self-caused bug
    assert grown < 300 * 2**20, f"workers grew by {grown / 2**20:.0f} MiB"


@pytest.mark.slow
def test_local_workers_get_a_memory_limit():
    """Two local workers share 90% of the machine's memory: past it Dask restarts the worker, not the machine."""
    import psutil

    from wdtk.synth.parallel import dask_client

    with dask_client(2, None, threads=3) as client:
        workers = client.scheduler_info()["workers"].values()
        assert {w["nthreads"] for w in workers} == {3}
        assert {w["memory_limit"] for w in workers} == {int(0.9 * psutil.virtual_memory().total / 2)}


OWNER = """
import sys, time
import psutil
from wdtk.synth.parallel import dask_client
if __name__ == "__main__":
    with dask_client(2, None) as client:
        busy = [client.submit(time.sleep, 600, pure=False) for _ in range(2)]  # the workers are mid-task
        time.sleep(1)
        print(" ".join(str(p.pid) for p in psutil.Process().children(recursive=True)), flush=True)
        time.sleep(600)
"""


@pytest.mark.slow
def test_local_workers_die_with_a_sigkilled_run(tmp_path):
    """A SIGKILLed run leaves none of its local cluster's processes behind, even mid-task: orphans would keep
    their memory, and a test suite that kills runs would fill the machine with them."""
    import signal
    import subprocess
    import sys

    import psutil

    (tmp_path / "owner.py").write_text(OWNER)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "owner.py")], stdout=subprocess.PIPE, text=True)
    children = [psutil.Process(int(pid)) for pid in proc.stdout.readline().split()]
    assert len(children) >= 2  # the two workers, and any helper process multiprocessing started
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(c.is_running() and c.status() != "zombie" for c in children):
        time.sleep(0.2)
    left = [c.pid for c in children if c.is_running() and c.status() != "zombie"]
    for pid in left:
        psutil.Process(pid).kill()
    assert not left


def test_a_stage_refuses_an_input_its_stage_did_not_finish(tmp_path):
    from wdtk.schemas import IncompleteInput, write_records
    from wdtk.synth.parallel import read_input

    write_records([{"a": 1}], tmp_path / "d")
    (tmp_path / "d" / ".complete").unlink()
    with pytest.raises(IncompleteInput, match="--allow-incomplete"):
        read_input(tmp_path / "d", RunOptions())
    with pytest.warns(IncompleteWarning):
        assert list(read_input(tmp_path / "d", RunOptions(allow_incomplete=True))) == [{"a": 1}]


@pytest.mark.slow
def test_a_stage_runs_on_a_cluster_started_with_dasks_own_cli(tmp_path, openai_server, pages_file, truth, site_server):
    """`dask scheduler` and `dask worker` in subprocesses (the worker started in another directory), then `wdtk synth
    crawlqa --scheduler` with relative paths: paths are made absolute before tasks ship, tasks are named by stage,
    and the dashboard is served (bokeh is installed with wdtk)."""
    import shutil
    import subprocess
    import sys
    import urllib.request

    from dask.distributed import Client
    from servers.truth_model import TruthModel

    openai_server.responder = TruthModel(truth, site_server)
    dask = Path(sys.executable).with_name("dask")
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    shutil.copy(pages_file, work / "pages.jsonl")
    file, quiet = tmp_path / "scheduler.json", {"cwd": elsewhere, "stderr": subprocess.DEVNULL}
    scheduler = ["--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0", "--scheduler-file", file]
    procs = [subprocess.Popen([dask, "scheduler", *map(str, scheduler)], **quiet)]
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        worker = [address, "--nworkers", "1", "--nthreads", "4", "--memory-limit", "2GiB", "--no-dashboard"]
        procs.append(subprocess.Popen([dask, "worker", *worker], **quiet))
        with Client(address) as client:
            client.wait_for_workers(1, timeout=60)
            cmd = [sys.executable, "-m", "wdtk.cli", "synth", "crawlqa", "pages.jsonl", "-o", "out",
                   "--scheduler", address, "--model", "openai:truth-model", "--api-base", openai_server.base_url,
                   "--max-groups", "6", "--partition-size", "2"]  # fmt: skip
            done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stderr[-3000:]
            prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
            port = client.scheduler_info()["services"]["dashboard"]
        assert "crawlqa" in prefixes and "run_partition" not in prefixes
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=30) as page:
            assert page.status == 200
        summary = json.loads((work / "out" / "summary.json").read_text())
        assert summary["inputs"]["total"] == 6 and summary["partitions"] == 3 and is_complete(work / "out" / "records")
        assert not (elsewhere / "out").exists() and not (elsewhere / "llm_cache.sqlite").exists()
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)


@pytest.mark.slow
def test_a_sigkilled_filter_leaves_records_that_read_as_incomplete_and_the_next_stage_refuses(tmp_path):
    """A real SIGKILL in the middle of `wdtk filter`: shards are on disk but the marker is not, so reading them warns
    and `wdtk sample` refuses them in one line instead of sampling a part as if it were the whole."""
    import signal
    import subprocess
    import sys

    rows = (
        json.dumps(
            {
                "problem": f"Which river flows through the town of Testville number {i} in the north?",
                "answer": f"Avon{i}",  # no word of the answer in the question: the quality filter keeps it
            }
        )  # fmt: skip
        for i in range(150_000)
    )
    (tmp_path / "qa.jsonl").write_text("\n".join(rows) + "\n")
    qa = tmp_path / "qa_records"
    from wdtk.schemas import write_records
    from wdtk.synth.e2hqa import seed_record

    write_records((seed_record(json.loads(line)) for line in (tmp_path / "qa.jsonl").open()), qa, kind="qa")
    out = tmp_path / "filter"
    proc = subprocess.Popen([sys.executable, "-m", "wdtk.cli", "filter", str(qa), "-o", str(out), "--no-dedup"])
    deadline = time.monotonic() + 120
    while not list((out / "records").glob("0*.jsonl.gz")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "the filter finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list((out / "records").glob("0*.jsonl.gz")) and not is_complete(out / "records")
    with pytest.warns(IncompleteWarning, match="is incomplete"):
        assert sum(1 for _ in read_records(out / "records")) >= 10_000
    sample = subprocess.run([sys.executable, "-m", "wdtk.cli", "sample", str(out / "records"), "--dir", str(tmp_path),
                             "--search", f"bm25:{tmp_path}"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert sample.returncode == 1 and "Traceback" not in sample.stderr
    assert "is incomplete" in sample.stderr and "--allow-incomplete" in sample.stderr


CTRL_C_RUN = """
import sys
from pathlib import Path
from wdtk.synth import crawlqa
from wdtk.synth.parallel import Backends, RunOptions
pages, out, cache, workers = sys.argv[1:5]
cfg = crawlqa.CrawlQAConfig(max_sublinks=1, max_page_chars=300, max_tokens=32, verify_with_llm=False)
backends = Backends(model="embedded", cache_path=cache, concurrency=1)
print(crawlqa.run(Path(pages), Path(out), cfg, backends, RunOptions(workers=int(workers), flush_seconds=0.5), 4))
"""


def cached_calls(path: Path) -> int:
    import sqlite3

    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=30) as db:
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


@pytest.mark.slow
def test_ctrl_c_on_the_embedded_model_keeps_every_finished_call(tmp_path, pages_file):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) during embedded-model synthesis on a
    Dask worker: every call that had returned is in the cache, and the rerun pays only for the rest."""
    import os
    import signal
    import subprocess
    import sys

    out, cache = tmp_path / "out", tmp_path / "cache.sqlite"
    cmd = [sys.executable, "-c", CTRL_C_RUN, str(pages_file), str(out), str(cache)]
    proc = subprocess.Popen([*cmd, "1"], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while cached_calls(cache) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(60)
    finally:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    kept = cached_calls(cache)
    assert kept >= 2  # every call that returned before Ctrl-C is on disk
    rerun = subprocess.run([*cmd, "0"], capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    usage = summary["usage"]["crawlqa"]
    assert summary["inputs"]["total"] == 4 and summary["inputs"]["failed"] == 0
    paid = usage["calls"] - usage["cache_hits"]  # over both runs: each of the 4 groups makes one call
    assert paid <= 4 + 1  # at most the one call in flight at Ctrl-C was paid twice
    assert cached_calls(cache) == 4


def test_timeout_and_max_retries_from_the_environment_and_options(tmp_path, openai_server, pages_file):
    """WDTK_TIMEOUT and --max-retries reach every call: a server that never answers fails each input after one
    request, its one hedged copy and the timeout, and the command ends with one line."""
    import os
    import subprocess
    import sys

    openai_server.responder = lambda body: Reply.hang()
    cmd = [sys.executable, "-m", "wdtk.cli", "synth", "crawlqa", str(pages_file), "-o", str(tmp_path / "out"),
           "--model", "openai:m", "--api-base", openai_server.base_url, "--workers", "0", "--max-groups", "2",
           "--max-retries", "0"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "WDTK_TIMEOUT": "2"})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    # the preflight's test request meets the hang first, given the same 2 s, and stops the run before any input
    assert len(errors) == 1 and "did not answer a test request: no answer within 2s" in errors[0], errors
    assert openai_server.request_count == 3  # the preflight's tries, each cut at WDTK_TIMEOUT; no input was sent


def test_every_input_fails_after_its_timeout_when_the_server_hangs(tmp_path, openai_server, pages_file):
    """--timeout and --max-retries reach every call of the run itself: against a server that hangs, each input fails
    after one request and at most one hedged copy, never a retry, and the stage ends with one line."""
    from wdtk.synth import crawlqa
    from wdtk.synth.parallel import Backends, PartitionsFailed, RunOptions

    openai_server.responder = lambda body: Reply.hang()
    backends = Backends(model="openai:m", api_base=openai_server.base_url, timeout=2.0, max_retries=0)
    cfg = crawlqa.CrawlQAConfig(verify_with_llm=False)
    with pytest.raises(PartitionsFailed, match=r"2 of 2 inputs failed \(TransientLLMError: no answer within 2.0s\)"):
        crawlqa.run(pages_file, tmp_path / "out", cfg, backends, RunOptions(workers=0), 2)
    assert 2 <= openai_server.request_count <= 4  # each input: the request and at most one hedged copy


def test_an_output_directory_holding_other_records_is_refused_not_emptied(tmp_path):
    from wdtk.schemas import write_records
    from wdtk.synth.parallel import StageInputChanged

    write_records([{"a": 1}], tmp_path / "filter" / "records")  # e.g. `-o` pointed at another stage's output
    with pytest.raises(StageInputChanged, match="which no toy run wrote"):
        run_stage(toy(), items("keep"), tmp_path / "filter", HERE)
    assert (tmp_path / "filter" / "records" / "00000.jsonl.gz").exists()


def test_on_a_terminal_the_bar_has_a_known_total():
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    with StageProgress("crawlqa", console=console) as progress:
        progress({"stage": "crawlqa", "total": 40, "done": 10, "records": 25, "calls": 31, "failed": 0})
        task = progress.bar.tasks[0]
        assert (task.total, task.completed) == (40, 10) and task.fields["detail"] == "25 records, 31 LLM calls"
        progress.bar.refresh()
    assert "10/40" in console.file.getvalue()
