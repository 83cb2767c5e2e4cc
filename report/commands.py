"""`wdtk report`: click glue over the report (registered by wdtk.cli)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..schemas import RecordError, WdtkError
from ..synth.options import out_option, pick_run_dir, run_dir_option
from .gather import gather
from .html import render


@click.command("report", context_settings={"show_default": True})
@run_dir_option("Run directory to report on.", legacy_positional=True)
@out_option("HTML file to write.  [default: DIR/report.html]", dir_okay=False)
def report_cmd(run_dir: Path, legacy_dir: Path | None, out_dir: Path | None) -> None:
    """Write one self-contained HTML page about the run in DIR: the funnel from pages to kept trajectories with drop
    reasons, QA types, E2HQA hops, actions and tokens per trajectory, dedup clusters, judge agreement, LLM usage.

    Stages that have not run are shown as such. The page has no scripts and loads nothing from the network.
    """
    run_dir = pick_run_dir(run_dir, legacy_dir)
    if not run_dir.is_dir():
        raise WdtkError(f"no run directory at {run_dir}: run `wdtk demo` or the stages with --dir {run_dir}")
    out = out_dir or run_dir / "report.html"
    try:
        figures = gather(run_dir)
    except (FileNotFoundError, RecordError) as exc:
        raise click.ClickException(str(exc)) from None
    page = render(figures)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    names = {"crawlqa": "CRAWLQA", "e2hqa": "E2HQA", "seeds": "seeds"}
    counts = [
        f"{names.get(s['key'], s['key'])} {s['count']:,}" for s in figures["steps"][:8] if s["count"] is not None
    ]
    click.echo(f"wrote {out} ({len(page.encode()) // 1024 + 1} KB): {', '.join(counts) or 'no counts'}")
    for line in figures["warnings"]:
        click.echo(f"  warning: {line}", err=True)


@click.command("audit", context_settings={"show_default": True})
@run_dir_option("Run directory to audit (made on the generated site).", legacy_positional=True)
@click.option(
    "--truth",
    "truth_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The generated site the run was made on (its _truth/).  [default: DIR/site]",
)
def audit_cmd(run_dir: Path, legacy_dir: Path | None, truth_dir: Path | None) -> None:
    """Judge a run made on the generated site against the site's ground truth: every QA record, kept and
    rejected (correct, unique, hops, leaked, unresolved), and every trajectory (the judge's verdict against the truth).

    Writes DIR/audit/summary.json and DIR/audit/records/ (one verdict per record, with why) and prints the
    table. A crawl of any other site cannot be audited: there is no truth to judge it by.
    """
    from .audit import audit, describe

    run_dir = pick_run_dir(run_dir, legacy_dir)
    if not run_dir.is_dir():
        raise WdtkError(f"no run directory at {run_dir}: run `wdtk demo` or the stages with --dir {run_dir}")
    click.echo("\n".join(describe(audit(run_dir, truth_dir))))
    click.echo(f"verdicts -> {run_dir / 'audit' / 'records'}, figures -> {run_dir / 'audit' / 'summary.json'}")
