"""`wdtk crawl` and `wdtk site` on hostile input: one clear line naming what is wrong, exit code 1, no traceback."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def wdtk(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wdtk.cli", *args], capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and all(w in errors[0] for w in words), output[-3000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["http://127.0.0.1:99999/"], ["invalid port", "99999"]),
        (["http://127.0.0.1:8/", "--allow", "(["], ["--allow", "not a valid regex"]),
        (["http://127.0.0.1:8/", "--deny", "a{2,1}"], ["--deny", "not a valid regex"]),
    ],
)
def test_bad_roots_and_patterns(tmp_path, args, words):
    assert_one_line_error(wdtk("crawl", *args, "-o", str(tmp_path / "out")), *words)


def test_an_unreachable_root_fails_with_the_cause(tmp_path):
    root = f"http://127.0.0.1:{free_port()}/"
    proc = wdtk("crawl", root, "-o", str(tmp_path / "out"), "--no-throttle", "--set", "RETRY_TIMES=0")
    assert_one_line_error(proc, "no page could be fetched: connection refused at", root)
    assert not (tmp_path / "out" / "pages" / ".complete").exists()


def crawl(base: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return wdtk("crawl", base + "/", "-o", str(out), "--max-pages", "20", "--no-throttle", *extra)


def test_resuming_with_other_roots_or_limits_is_refused_and_the_summary_kept(site_server, tmp_path):
    out = tmp_path / "out"
    assert crawl(site_server, out).returncode == 0
    summary = (out / "crawl_summary.json").read_text()
    dead = f"http://127.0.0.1:{free_port()}"  # the demo's case: state from a server that is gone
    assert_one_line_error(crawl(dead, out), "other options", "roots", "--restart")
    assert_one_line_error(crawl(site_server, out, "--max-depth", "1"), "max_depth 3 -> 1")
    assert (out / "crawl_summary.json").read_text() == summary
    restarted = crawl(site_server, out, "--max-depth", "1", "--restart")
    assert restarted.returncode == 0 and "crawled 20 pages" in restarted.stdout


def test_damaged_state_is_reported_not_crawled_over(site_server, tmp_path):
    out = tmp_path / "out"
    assert crawl(site_server, out).returncode == 0
    (out / "pages" / ".complete").unlink()
    shard = sorted((out / "pages").glob("*.jsonl.gz"))[0]
    shard.write_bytes(gzip.compress(b'{"url": "http://x/"}\n{not json\n'))
    assert_one_line_error(crawl(site_server, out), "00000.jsonl.gz:1", "--restart")  # a record that is not a page
    shard.write_bytes(gzip.compress(b"{not json\n"))
    assert_one_line_error(crawl(site_server, out), "invalid JSON", "--restart")
    (out / ".crawl" / "config.json").write_text("{garbage")
    assert_one_line_error(crawl(site_server, out), "config.json is unreadable", "--restart")
    (out / ".crawl").rename(out / ".crawl-old")  # shards with no state: an unknown crawl
    assert_one_line_error(crawl(site_server, out), "unknown crawl")
    assert json.loads((out / "crawl_summary.json").read_text())["pages"] == 20


def test_site_serve_on_a_busy_port(site_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = wdtk("site", "serve", str(site_dir), "--port", str(port), "--quiet", timeout=30)
    assert_one_line_error(proc, f"127.0.0.1:{port}", "--port")


def test_non_tty_progress_prints_lines_with_pages_rate_and_queue(site_server, tmp_path):
    proc = crawl(site_server, tmp_path / "out", "--set", "WDTK_PROGRESS_INTERVAL=0.2", "--set", "DOWNLOAD_DELAY=0.03",
                 "--set", "CONCURRENT_REQUESTS_PER_DOMAIN=1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if "progress:" in line]
    assert len(lines) >= 2 and all("pages/s" in line and "queued" in line for line in lines), proc.stderr
    assert "Enabled downloader middlewares" not in proc.stderr  # Scrapy's start-up chatter only at -L DEBUG


def test_on_a_terminal_progress_is_a_bar_with_the_page_total_rate_queue_and_eta(site_server, tmp_path):
    import os
    import pty
    import re

    leader, follower = pty.openpty()
    cmd = [sys.executable, "-m", "wdtk.cli", "crawl", site_server + "/", "-o", str(tmp_path / "out"), "--max-pages",
           "30", "--no-throttle", "--set", "DOWNLOAD_DELAY=0.1",
           "--set", "CONCURRENT_REQUESTS_PER_DOMAIN=1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=follower, stderr=follower, env={**os.environ, "COLUMNS": "160"})
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command has ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=60) == 0
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    assert re.search(r"\b\d+/30\b.*pages/s.*\d+ queued.*\d:\d\d:\d\d", screen), screen[-2000:]
    assert "crawled 30 pages" in screen
