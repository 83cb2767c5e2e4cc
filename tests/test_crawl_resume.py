"""Kill-safe crawls: `wdtk crawl` SIGKILLed at several points, then run again with the same command, ends with every
in-scope page exactly once and never fetches again a page whose record was written; its workers die with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from wdtk.crawler.scope import canonical
from wdtk.schemas import is_complete, read_records

# Slow enough that the kills land mid-crawl; shards closed every 0.2 s so that there is progress to keep.
SLOW = ["--set", "DOWNLOAD_DELAY=0.02", "--set", "CONCURRENT_REQUESTS_PER_DOMAIN=2", "--set", "WDTK_SHARD_SECONDS=0.2"]


def crawl_cmd(base: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "wdtk.cli", "crawl", base + "/", "-o", str(out), "--max-pages", "0",
            "--max-depth", "50", "--no-throttle", *SLOW]  # fmt: skip


def path_of(url: str) -> str:
    path = urlsplit(url).path
    return "/index.html" if path == "/" else path


def fetched_as(records: list[dict]) -> set[str]:
    """The URLs under which these pages were fetched (an alias that redirected to a page counts too)."""
    return {r["url"] for r in records} | {canonical(r["final_url"]) for r in records}


def written(out: Path) -> list[dict]:
    return list(read_records(out / "pages", kind="page")) if (out / "pages").is_dir() else []


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_sigkilled_crawl_resumes_with_every_page_once_and_no_written_page_fetched_again(fresh_site_server, truth,
                                                                                     tmp_path):  # fmt: skip
    server, base = fresh_site_server
    out = tmp_path / "crawl"
    kept, worker_counts = [], []  # pages written before each kill; extraction workers alive at each kill
    # kill points: during start-up (before any page), after 30 and 90 requests in all, and once more pages are
    # written than before it started
    for kill_after in (0, 30, 90, "progress"):
        before = len(server.request_log)
        proc = subprocess.Popen(crawl_cmd(base, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kill_after == "progress":
            had = len(kept[-1])
            assert wait_for(lambda: len(written(out)) > had, 60)  # noqa: B023 - called before `had` changes
        elif kill_after:
            assert wait_for(lambda k=kill_after: len(server.request_log) >= k, 60)
        else:
            time.sleep(0.5)
        workers = psutil.Process(proc.pid).children(recursive=True)
        worker_counts.append(len(workers))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        # the extraction workers die with the crawl (PR_SET_PDEATHSIG), not left behind holding memory
        assert wait_for(lambda w=workers: not any(p.is_running() and p.status() != "zombie" for p in w), 5)
        refetched = {canonical(base + p) for p in list(server.request_log)[before:]}
        done_before = fetched_as(kept[-1]) if kept else set()
        assert not refetched & done_before, refetched & done_before
        kept.append(written(out))
        assert not is_complete(out / "pages") or not (out / "pages").is_dir()
    assert max(worker_counts) >= 1  # the kills did catch workers, and they died
    assert len(kept[0]) <= len(kept[1]) <= len(kept[2]) < len(kept[3]) < 286  # what was written survives each kill

    before = len(server.request_log)
    final = subprocess.run(crawl_cmd(base, out), capture_output=True, text=True, timeout=180)
    assert final.returncode == 0, final.stderr[-3000:]
    refetched = {canonical(base + p) for p in list(server.request_log)[before:]}
    assert not refetched & fetched_as(kept[-1])
    records = written(out)
    public = {p["path"] for p in truth["pages"] if p["kind"] != "talk"}
    assert sorted(path_of(r["final_url"]) for r in records) == sorted(public)  # every page, each exactly once
    assert len({r["url"] for r in records}) == len({r["id"] for r in records}) == len(records)
    summary = json.loads((out / "crawl_summary.json").read_text())
    assert summary["pages"] == len(records) and summary["complete"] and is_complete(out / "pages")
    assert "complete" in final.stdout


@pytest.mark.slow
def test_scrapy_crawl_resumes_from_its_output_dir_after_sigkill(fresh_site_server, truth, tmp_path):
    server, base = fresh_site_server
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "scrapy", "crawl", "sublinks", "-a", f"roots={base}/", "-a", "max_depth=50",
           "-a", "max_pages=0", "-s", f"WDTK_OUTPUT_DIR={out}", "-s", "AUTOTHROTTLE_ENABLED=False",
           "-s", "DOWNLOAD_DELAY=0.02", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2",
           "-s", "WDTK_SHARD_SECONDS=0.2"]  # fmt: skip
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(cmd, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: len(server.request_log) >= 100, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert written(out)
    again = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr[-3000:]
    records = written(out)
    public = {p["path"] for p in truth["pages"] if p["kind"] != "talk"}
    assert sorted(path_of(r["final_url"]) for r in records) == sorted(public)
