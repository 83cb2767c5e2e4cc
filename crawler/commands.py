"""`wdtk site` and `wdtk crawl`: click glue over the generated site and the crawler (registered by wdtk.cli)."""

from __future__ import annotations

from pathlib import Path

import click

# --- the generated site ----------------------------------------------------------------------


@click.group()
def site() -> None:
    """A generated, fictional encyclopedia: the offline world for demos, tests and benchmarks."""


@site.command("build")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--pages", default=1000, type=click.IntRange(50, 100_000), help="Number of HTML pages to write.")
@click.option("--seed", default=0, type=int, help="Same seed and page count give byte-identical sites.")
def site_build(directory: Path, pages: int, seed: int) -> None:
    """Write a deterministic fictional encyclopedia to DIRECTORY, its ground truth under _truth/, and eval.jsonl."""
    from rich.progress import Progress

    from .sitegen import build_site

    with Progress(transient=True) as bar:
        task = bar.add_task("building site", total=pages)
        summary = build_site(
            directory, pages=pages, seed=seed, progress=lambda done, total: bar.update(task, completed=done)
        )
    click.echo(
        f"wrote {summary['pages']} pages ({summary['entities']} entities, {summary['facts']} facts) "
        f"to {directory} in {summary['seconds']:.1f}s; questions for `wdtk eval` in {directory / 'eval.jsonl'}"
    )


@site.command("serve")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--port", default=8000, type=click.IntRange(0, 65535), help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--quiet", is_flag=True, help="Do not log each request.")
def site_serve(directory: Path, port: int, quiet: bool) -> None:
    """Serve a built site on 127.0.0.1 until Ctrl-C (redirects, 404s and content types included)."""
    from .sitegen import serve

    if not (directory / "index.html").exists():
        raise click.ClickException(f"{directory} has no index.html: build it first with `wdtk site build {directory}`")
    try:
        serve(directory, port=port, quiet=quiet)
    except OSError as exc:  # the port is taken, or not ours to bind
        raise click.ClickException(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}; pick another --port "
                                   "(0 picks a free one)") from None  # fmt: skip


# --- crawl ------------------------------------------------------------------------------------


def _crawl_options(fn):
    for option in reversed(
        [
            click.option(
                "--max-depth", default=3, type=click.IntRange(0), help="Link hops from a root (0: roots only)."
            ),
            click.option(
                "--max-pages", default=1000, type=click.IntRange(0), help="Stop after this many pages (0: no limit)."
            ),
            click.option(
                "--allow", multiple=True, metavar="REGEX", help="Also crawl off-site URLs matching this (repeatable)."
            ),
            click.option(
                "--deny", multiple=True, metavar="REGEX", help="Never crawl URLs matching this (repeatable)."
            ),
            click.option("--robots/--no-robots", default=True, help="Obey robots.txt."),
            click.option(
                "--throttle/--no-throttle",
                default=True,
                help="AutoThrottle and few requests per site; turn off only for servers you run.",
            ),
            click.option(
                "--format",
                "fmt",
                default="jsonl.gz",
                type=click.Choice(["jsonl.gz", "jsonl", "parquet"]),
                help="Shard format.",
            ),
            click.option("--restart", is_flag=True, help="Forget saved crawl state and earlier shards; start over."),
            click.option(
                "--log-level",
                "-L",
                default="INFO",
                type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
                show_default=True,
                help="INFO: progress and summary; DEBUG adds Scrapy's own log, every request included.",
            ),
            click.option(
                "--set", "settings", multiple=True, metavar="NAME=VALUE", help="Any Scrapy setting (repeatable)."
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _parse_settings(pairs: tuple[str, ...]) -> dict:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--set")
        out[name.strip()] = value
    return out


def run_crawl(roots, out_dir: Path, max_pages: int, **opts) -> dict:
    """Crawl with progress (a bar on a terminal, a line every few seconds otherwise), then print the summary."""
    import sys

    from .run import CrawlConfig, crawl

    opts["settings"] = _parse_settings(opts.get("settings", ()))
    cfg = CrawlConfig(roots=roots, out_dir=out_dir, max_pages=max_pages, **opts)
    if sys.stdout.isatty():
        summary = _crawl_with_bar(cfg, crawl)
    else:  # logs: the progress extension's line every 5 s on stderr
        cfg.settings.setdefault("WDTK_PROGRESS_INTERVAL", "5")
        summary = crawl(cfg)
    _print_summary(summary, out_dir)
    return summary


def _crawl_with_bar(cfg, crawl) -> dict:
    """A rich bar: pages of max-pages with an ETA, rate and queue; log lines print above it."""
    from rich.logging import RichHandler
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("crawling"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TextColumn("{task.fields[queued]} queued"), TimeElapsedColumn(), TimeRemainingColumn()]  # fmt: skip
    cfg.settings.setdefault("WDTK_PROGRESS_INTERVAL", "0")  # the bar says it
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("crawl", total=cfg.max_pages or None, rate="", queued=0)

        def update(progress: dict) -> None:
            speed = bar.tasks[task].speed
            bar.update(task, completed=progress["pages"], queued=progress["queued"],
                       rate=f"{speed:.1f} pages/s" if speed else "")  # fmt: skip

        handler = RichHandler(console=bar.console, show_path=False, show_time=False)
        return crawl(cfg, on_page=update, log_handler=handler)


def _print_summary(summary: dict, out_dir: Path) -> None:
    if summary.get("already_complete"):
        click.echo(
            f"already complete: {summary.get('pages', 0)} pages in {out_dir / 'pages'} (--restart to crawl again)"
        )
        return
    state = "complete" if summary["complete"] else f"not complete, {summary['queued']} queued: run again to resume"
    click.echo(
        f"crawled {summary['new_pages']} pages in {summary['seconds']}s ({summary['pages_per_minute']} pages/min; "
        f"{summary['finish_reason']}); {summary['pages']} in all, {state} -> {out_dir / 'pages'}"
    )
    for group in ("skipped", "links_not_followed", "errors"):
        if summary[group]:
            click.echo(f"  {group.replace('_', ' ')}: " + ", ".join(f"{k} {v}" for k, v in summary[group].items()))


@click.command("crawl")
@click.argument("roots", nargs=-1, required=True)
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output directory: pages/ shards, crawl_summary.json, and resumable state.",
)
@_crawl_options
def crawl_cmd(roots: tuple[str, ...], out_dir: Path, **opts) -> None:
    """Crawl ROOTS (URLs) and their sublinks, breadth first, writing page records to OUT/pages.

    Stays on the roots' sites unless --allow widens it. However it stopped (Ctrl-C, a crash, SIGKILL), run the
    same command again to resume: the written pages are kept and not fetched again.
    """
    for root in roots:
        if not root.startswith(("http://", "https://")):
            raise click.BadParameter(f"{root!r} is not an http(s) URL", param_hint="ROOTS")
    run_crawl(list(roots), out_dir, **opts)
