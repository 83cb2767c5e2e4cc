"""The `wdtk` command line: help, version, the site commands, validation errors, and the demo end to end."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from wdtk import __version__
from wdtk.cli import main
from wdtk.schemas import read_records

DATA = Path(__file__).parent / "data" / "records"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_version_and_help():
    assert invoke("--version").output.strip() == f"wdtk, version {__version__}"
    out = invoke("--help").output
    for command in ("crawl", "demo", "site", "validate"):
        assert command in out
    crawl_help = invoke("crawl", "--help").output
    assert "--max-depth" in crawl_help and "[default: 3; x>=0]" in crawl_help and "--no-robots" in crawl_help


def test_site_build_writes_the_requested_pages(tmp_path):
    result = invoke("site", "build", str(tmp_path / "s"), "--pages", "60", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "wrote 60 pages" in result.output
    assert len(list((tmp_path / "s").rglob("*.html"))) == 60


def test_site_build_rejects_a_page_count_out_of_range(tmp_path):
    result = CliRunner().invoke(main, ["site", "build", str(tmp_path / "s"), "--pages", "10"])
    assert result.exit_code == 2 and "10 is not in the range 50<=x<=100000" in result.output


def test_site_serve_needs_a_built_site(tmp_path):
    result = CliRunner().invoke(main, ["site", "serve", str(tmp_path)])
    assert result.exit_code == 1
    assert "has no index.html: build it first" in result.output


def test_validate_counts_good_records_and_names_the_bad_line(tmp_path):
    good = tmp_path / "pages.jsonl"
    page = json.loads((DATA / "page.json").read_text())
    good.write_text(json.dumps(page) + "\n" + json.dumps(page) + "\n")
    assert "2 valid page records" in invoke("validate", str(good), "--kind", "page").output

    bad = tmp_path / "bad.jsonl.gz"
    broken = dict(page, status="ok")
    with gzip.open(bad, "wt") as f:
        f.write(json.dumps(page) + "\n" + json.dumps(page) + "\n" + json.dumps(broken) + "\n")
    result = CliRunner().invoke(main, ["validate", str(bad), "--kind", "page"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "bad.jsonl.gz:3:" in result.output and "'status'" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_crawl_rejects_bad_input_before_starting(tmp_path):
    result = CliRunner().invoke(main, ["crawl", "example.org", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "'example.org' is not an http(s) URL" in result.output
    result = CliRunner().invoke(main, ["crawl", "http://127.0.0.1:1/", "-o", str(tmp_path), "--set", "NOEQUALS"])
    assert result.exit_code == 2 and "expected NAME=VALUE" in result.output


def test_demo_crawls_offline_end_to_end(tmp_path):
    run_dir = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wdtk.cli",
            "demo",
            "--dir",
            str(run_dir),
            "--pages",
            "80",
            "--max-pages",
            "30",
            "--groups",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "crawled 30 pages" in proc.stdout
    summary = json.loads((run_dir / "demo_summary.json").read_text())
    assert summary["site"]["pages"] == 80 and summary["crawl"]["pages"] == 30
    assert len(list(read_records(run_dir / "crawl" / "pages", kind="page"))) == 30
