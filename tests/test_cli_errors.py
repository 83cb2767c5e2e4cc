"""Every mistake a user can make at the command line ends in one line naming the cause and exit code 1, never a
traceback: hostile input files fed to every command (a fuzz over a corpus of broken files), and the cases the
user-path review hit (a busy port, `--judge none`, a run directory given to `wdtk index`, an offline push ...)."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny_lm import sample_trajectories

from wdtk.cli import main
from wdtk.schemas import write_records

DEAD = ["--model", "openai:x", "--api-base", "http://127.0.0.1:9/v1"]  # never reached: inputs are checked first
BIG = 50 * 2**20


def one_line_error(result) -> str:
    """The output of a command that failed as a user mistake should: one 'Error:' line, exit 1, no traceback."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """Broken inputs, one file (or directory) each, named by what is wrong with them."""
    root = tmp_path_factory.mktemp("corpus")
    good = json.dumps({"question": "Who founded the Keldra Society?", "answer": "Ansel Varro"}) + "\n"
    files = {
        "malformed_json": ("bad.jsonl", b'{"question": "x",\n'),
        "truncated_gzip": ("cut.jsonl.gz", gzip.compress(good.encode() * 200)[:120]),
        "wrong_schema": ("wrong.jsonl", json.dumps({"id": 5, "question": ["x"], "url": 7}).encode() + b"\n"),
        "empty_file": ("empty.jsonl", b""),
        "binary": ("blob.jsonl", bytes(range(256)) * 8),
        "huge_line": ("huge.jsonl", json.dumps({"question": "a" * BIG, "answer": "b", "text": "c"}).encode() + b"\n"),
    }
    paths = {}
    for case, (name, data) in files.items():
        (root / case).mkdir()
        paths[case] = root / case / name
        paths[case].write_bytes(data)
    paths["missing_path"] = root / "nowhere" / "x.jsonl"
    paths["empty_dir"] = root / "empty_dir"
    paths["empty_dir"].mkdir()
    return paths


def argv(command: str, path: Path, tmp: Path) -> list[str] | None:
    """The command line that feeds `path` to `command`, or None for a command whose input is a layout of folders
    (export, push), which gets `path` placed as its records."""
    out = ["-o", str(tmp / "out")]
    return {
        "validate": ["validate", str(path), "--kind", "qa"],
        "index": ["index", str(path), *out],
        "crawlqa": ["synth", "crawlqa", str(path), *out, *DEAD],
        "e2hqa": ["synth", "e2hqa", str(path), *out, "--search", f"bm25:{tmp / 'no-index'}", *DEAD],
        "filter": ["filter", str(path), *out],
        "sample": ["sample", str(path), "--dir", str(tmp), *out, *DEAD],
        "funnel": ["funnel", str(path), "--dir", str(tmp), *out],
        "eval": ["eval", str(path), "--dir", str(tmp), *out, *DEAD],
        "evolve": ["evolve", "--dir", str(tmp), "--questions", str(path), "--base-model", "m", *DEAD],
    }.get(command)


COMMANDS = ["validate", "index", "crawlqa", "e2hqa", "filter", "sample", "funnel", "eval", "evolve", "export", "push"]
CASES = ["malformed_json", "truncated_gzip", "wrong_schema", "empty_file", "missing_path", "empty_dir", "binary",
         "huge_line"]  # fmt: skip
NOT_A_MISTAKE = {  # a 50 MB record is valid data to these: they check records, or copy them, and prompt no model
    ("validate", "huge_line"), ("push", "huge_line"), ("validate", "empty_file"), ("validate", "empty_dir"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", COMMANDS)
def test_hostile_input_is_one_line_and_exit_1(corpus, tmp_path, command, case):
    if (command, case) in NOT_A_MISTAKE:
        pytest.skip("not an error for this command")
    path = corpus[case]
    args = argv(command, path, tmp_path)
    if args is None:  # the records of a funnel (export) or of a run (push), where the command reads them
        run = tmp_path / "run"
        records = run / "funnel" / "records"
        if case != "missing_path":
            records.mkdir(parents=True)
            if path.is_file():
                (records / ("00000" + "".join(path.suffixes))).write_bytes(path.read_bytes())
        args = ["export", str(run / "funnel"), "-o", str(tmp_path / "out")] if command == "export" else (
            ["push", "--dir", str(run), "-o", str(tmp_path / "hub"), "--license", "cc-by-4.0"]
        )  # fmt: skip
    line = one_line_error(CliRunner().invoke(main, args))
    if case in ("malformed_json", "wrong_schema", "binary") and command not in ("export", "push"):
        assert f"{path}:1:" in line  # file:line, and the field when one is to blame
    if case == "wrong_schema" and command not in ("eval", "export", "push"):
        assert "field '" in line
    if case == "huge_line":
        assert "50 MB" in line  # refused, never read whole into a prompt or an index


def test_index_given_a_run_or_a_crawl_directory_says_where_the_pages_are(tmp_path):
    run = tmp_path / "run"
    write_records([], run / "crawl" / "pages")
    (run / "commands.jsonl").write_text('{"argv": ["wdtk"]}\n')
    line = one_line_error(CliRunner().invoke(main, ["index", str(run)]))
    assert f"{run} is a run directory: its page records are in {run / 'crawl' / 'pages'}" in line
    line = one_line_error(CliRunner().invoke(main, ["index", str(run / "crawl")]))
    assert f"its page records are in {run / 'crawl' / 'pages'}" in line
    line = one_line_error(CliRunner().invoke(main, ["index", "--dir", str(run)]))
    assert "no records, where page records were expected" in line  # 0 pages is no index


def test_site_serve_on_a_busy_port(site_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(CliRunner().invoke(main, ["site", "serve", str(site_dir), "--port", str(port)]))
    assert f"cannot serve on 127.0.0.1:{port}" in line and "in use" in line


def test_funnel_judge_none_is_exact_match(tmp_path):
    write_records(sample_trajectories(), tmp_path / "sample" / "records", kind="trajectory")
    result = CliRunner().invoke(main, ["funnel", "--dir", str(tmp_path), "--judge", "none", "--no-export"])
    assert result.exit_code == 0, result.output
    assert "judge: exact match" in result.output


def test_push_offline_is_one_line(tmp_path, monkeypatch):
    import httpx
    import huggingface_hub

    def offline(*args, **kwargs):
        raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("HF_TOKEN", "hf_FakeTokenForTheTestOnly000000")
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", offline)
    write_records(sample_trajectories(), tmp_path / "funnel" / "records", kind="trajectory")
    args = ["push", "--dir", str(tmp_path), "--repo-id", "org/name", "--license", "cc-by-4.0"]
    line = one_line_error(CliRunner().invoke(main, args))
    assert "cannot reach the Hub to push org/name: ConnectError" in line


def test_workers_0_closes_its_http_sessions(openai_server, qa_run, tmp_path):
    """A stage run in this process (--workers 0) ends without aiohttp's 'Unclosed client session' warnings."""
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"question": "Who founded the Keldra Society?", "answer": "Ansel Varro"}) + "\n")
    args = ["sample", str(seeds), "--dir", str(qa_run), "-o", str(tmp_path / "s"), "--model", "openai:m",
            "--api-base", openai_server.base_url, "--workers", "0", "--max-calls", "2", "--rollouts", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    proc = subprocess.run([sys.executable, "-m", "wdtk.cli", *args], capture_output=True, text=True, timeout=120,
                          env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert openai_server.request_count >= 2  # the test request and the rollout's
    assert "Unclosed" not in proc.stderr, proc.stderr[-2000:]
