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
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()]
    assert listed[:4] == ["demo", "run", "site", "crawl"]  # the whole runs, then the stages in the order a run uses
    assert set(listed) >= {"synth", "filter", "sample", "funnel", "export", "report", "push", "eval", "evolve"}
    for command in listed:  # every command explains itself
        assert len(invoke(command, "--help").output.split("\n")) > 5
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


def test_demo_runs_every_stage_and_writes_the_report(tmp_path, openai_server):
    """The whole main job against a scripted LLM server: synthesis answers from the site's truth, the agent
    searches, visits and answers, the judge compares; so records flow all the way to the exports and the report."""
    from servers.stand_in import responder

    from wdtk.crawler.sitegen import build_site

    twin = tmp_path / "twin"  # the demo builds this same site (same size and seed): read its truth beforehand
    build_site(twin, 80, seed=3)
    openai_server.responder = responder(twin)
    run_dir = tmp_path / "demo"
    args = ["demo", "--dir", str(run_dir), "--pages", "80", "--seed", "3", "--max-pages", "60", "--groups", "4",
            "--rewrites", "1", "--questions", "5", "--model", "openai:scripted",
            "--api-base", openai_server.base_url]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "wdtk.cli", *args], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for step, name in enumerate(["site", "crawl", "synth", "filter", "sample", "funnel", "export", "report", "audit"]):
        assert f"[{step + 1}/9] {name}: not run yet" in proc.stdout  # recipes/demo.yaml, stage by stage
    summary = json.loads((run_dir / "demo_summary.json").read_text())
    assert summary["filter"]["kept"] >= 3
    assert summary["sample"]["kept"] == 3 * min(5, summary["filter"]["kept"])
    funnel = summary["funnel"]
    assert funnel["kept"] >= 3 and funnel["judge"]["method"] == "llm"
    sft = list(read_records(run_dir / "export" / "sft"))
    assert len(sft) == funnel["kept"] and all(row["tools"] for row in sft)
    assert len(list(read_records(run_dir / "export" / "rl"))) == funnel["rl_pool"]
    html = (run_dir / "report.html").read_text()
    assert "Funnel" in html and "Judge vs exact match" in html and "<script" not in html
    audit = json.loads((run_dir / "audit" / "summary.json").read_text())  # the demo ends with its data's audit
    assert "audit against the ground truth" in proc.stdout and audit["qa"]["all"]["n"] >= summary["filter"]["kept"]
    assert audit["trajectories"]["kept"] == funnel["kept"] and 'id="precision"' in html
    logged = [json.loads(line) for line in (run_dir / "commands.jsonl").read_text().splitlines()]
    assert logged[0]["argv"][:2] == ["wdtk", "demo"]


def test_start_up_imports_no_stage_until_it_is_used():
    """`wdtk crawl` or `wdtk --version` should not pay for pyarrow, numpy or the agent: stages load on use."""
    heavy = ("pyarrow", "numpy", "torch", "wdtk.synth.agent.loop", "wdtk.training.evaluate", "wdtk.report.gather")
    code = f"import sys, wdtk.cli; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    assert invoke("sample", "--help").exit_code == 0  # and a lazy command still loads when asked for
