"""The `wdtk` command: one subcommand per stage. Glue only: the work lives in the stage modules."""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

import click

from . import __version__
from .synth.options import (
    MODEL_HELP,
    STRUCTURED,
    max_groups_option,
    max_questions_option,
    prepare_judge,
    prepare_model,
    rollouts_option,
    run_dir_option,
)

# --help lists the commands in the order a run uses them, not alphabetically
ORDER = ("demo", "site", "crawl", "index", "synth", "filter", "sample", "funnel", "export", "report", "audit", "push",
         "eval", "evolve", "validate")  # fmt: skip


# Stage commands live beside their stages and are imported only when used: several pull in pyarrow, numpy or
# the agent, which `wdtk crawl` or `wdtk --version` should not pay for at start-up.
LAZY = {
    "site": "wdtk.crawler.commands:site",
    "crawl": "wdtk.crawler.commands:crawl_cmd",
    "synth": "wdtk.synth.commands:synth",
    "index": "wdtk.synth.commands:index",
    "sample": "wdtk.synth.commands:sample",
    "filter": "wdtk.filters.commands:filter_cmd",
    "funnel": "wdtk.filters.commands:funnel_cmd",
    "export": "wdtk.filters.commands:export_cmd",
    "report": "wdtk.report.commands:report_cmd",
    "audit": "wdtk.report.commands:audit_cmd",
    "push": "wdtk.training.commands:push_cmd",
    "eval": "wdtk.training.commands:eval_cmd",
    "evolve": "wdtk.training.commands:evolve_cmd",
}


class PipelineGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        names = {*super().list_commands(ctx), *LAZY}
        return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))

    def invoke(self, ctx: click.Context):
        """Run the command; a WdtkError (a mistake the user can fix) becomes one line and exit code 1."""
        from .schemas import WdtkError

        try:
            return super().invoke(ctx)
        except WdtkError as exc:
            raise click.ClickException(str(exc)) from None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY and name not in self.commands:
            module, attr = LAZY[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)


@click.group(cls=PipelineGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="wdtk")
def main() -> None:
    """wdtk builds training data for web-search agents, end to end:
    crawl -> index -> synth -> filter -> sample -> funnel -> report -> push; then train with
    training/sft.py and training/rl.py, and measure with eval (or let evolve loop).

    Start with `wdtk demo`, which runs the pipeline offline on a generated site and writes a report.

    \b
    Environment:
      WDTK_MODEL, WDTK_API_BASE        --model and --api-base of every LLM stage
      WDTK_JUDGE_MODEL, WDTK_JUDGE_API_BASE   --judge and --judge-api-base
      OPENAI_API_KEY                   the key of an OpenAI-compatible endpoint
      ANTHROPIC_API_KEY, GEMINI_API_KEY ...   provider keys, read by litellm
      SERPER_API_KEY                   --search serper:URL
      HF_TOKEN                         wdtk push (or `hf auth login`)
      WDTK_CACHE_DIR                   where the embedded model's checkpoint is cached (~/.cache/wdtk)
    """


# --- records ---------------------------------------------------------------------------------


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--kind",
    required=True,
    type=click.Choice(["page", "qa", "trajectory", "judgement"]),
    help="Which schema the records must follow.",
)
def validate(paths: tuple[Path, ...], kind: str) -> None:
    """Check record files or shard directories (JSONL, JSONL.gz, Parquet) against a schema.

    Stops at the first bad record with its file, line and field.
    """
    from .schemas import read_records

    for path in paths:
        count = sum(1 for _ in read_records(path, kind=kind))
        click.echo(f"{path}: {count} valid {kind} records")


# --- the main job ------------------------------------------------------------------------------


@main.command()
@run_dir_option("Where the site, the crawl and later stages' outputs go.")
@click.option("--pages", default=300, type=click.IntRange(50, 100_000), help="Size of the generated site.")
@click.option("--seed", default=0, type=int, help="Seed of the generated site.")
@click.option("--max-pages", default=200, type=click.IntRange(1), help="Pages to crawl.")
@max_groups_option(default=2)
@click.option("--rewrites", default=1, type=click.IntRange(0), help="E2HQA rounds on CRAWLQA's output.")
@click.option(
    "--model", envvar="WDTK_MODEL", show_envvar=True, default=None,
    help=MODEL_HELP.replace("LLM:", "LLM for every stage:") + " The embedded model is tiny: expect few kept pairs.",
)  # fmt: skip
@click.option(
    "--api-base", envvar="WDTK_API_BASE", show_envvar=True, default=None, help="OpenAI-compatible endpoint of --model."
)
@max_questions_option("questions to sample trajectories for (0: stop after filtering)", default=2, minimum=0)
@rollouts_option(aliases=())
@click.option(
    "--judge", "judge_model", default=None, envvar="WDTK_JUDGE_MODEL", show_envvar=True,
    help="LLM judge for the funnel; 'none': exact match.  [default: --model; exact match for the embedded model, "
    "whose verdicts are at chance]",
)  # fmt: skip
@STRUCTURED
def demo(
    run_dir: Path,
    pages: int,
    seed: int,
    max_pages: int,
    max_groups: int,
    rewrites: int,
    model: str | None,
    api_base: str | None,
    limit: int,
    rollouts: int,
    judge_model: str | None,
    structured: str,
) -> None:
    """Run the whole pipeline offline on a generated site, and write RUN/report.html.

    Builds a site, serves it on 127.0.0.1, crawls and indexes it, synthesises QA (CRAWLQA, E2HQA), filters the
    QA, samples ReAct trajectories, runs the funnel (validity, judge, quality), exports the SFT and RL sets, and
    writes the report. With the embedded model everything runs on the CPU and little survives; point --model at a
    real LLM for real data.
    """
    from .crawler.commands import run_crawl
    from .crawler.sitegen import build_site, start_server
    from .crawler.sitegen.seeds import simple_seeds
    from .schemas.runlog import log_command

    started = time.monotonic()
    groups, questions = max_groups, limit
    if groups:
        model = prepare_model(model, api_base)
        # the embedded model judges no better than chance (bench/structured.py): exact match decides for it
        judge = None if judge_model == "none" else judge_model or (None if model == "embedded" else model)
        if judge != model:
            prepare_judge(judge, None)
    (run_dir / "commands.jsonl").unlink(missing_ok=True)  # the demo starts its run afresh
    log_command(run_dir)
    site_dir = run_dir / "site"
    summary = {"site": build_site(site_dir, pages=pages, seed=seed)}
    click.echo(f"[1/7] built a {summary['site']['pages']}-page site in {site_dir} ({summary['site']['seconds']:.1f}s)")
    server, base_url = start_server(site_dir)
    try:
        click.echo(f"[2/7] crawling {base_url}/ (served from {site_dir})")
        summary["crawl"] = run_crawl(
            [base_url + "/"], run_dir / "crawl", max_pages=max_pages, max_depth=4, throttle=False, restart=True
        )
    finally:
        server.shutdown()
    if groups:
        seeds = simple_seeds(site_dir, 3)
        small = {**_SMALL, "structured": structured}
        summary["synth"] = _demo_synth(run_dir, groups, rewrites, model, api_base, seeds, small)
        summary["filter"] = _demo_filter(run_dir, seeds)
        if questions and summary["filter"]["kept"]:
            summary["sample"] = _demo_sample(run_dir, model, api_base, questions, rollouts, small)
            summary["funnel"] = _demo_funnel(run_dir, judge, api_base if judge == model else None)
    summary["report"] = str(_demo_report(run_dir))
    from .report.audit import demo_lines  # the audit of the demo's data against its site's truth

    click.echo("\n".join(demo_lines(run_dir)))
    (run_dir / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    click.echo(f"done in {time.monotonic() - started:.1f}s; report in {summary['report']}")


_SMALL = {"concurrency": 32, "rpm": None, "tpm": None, "workers": 0, "scheduler": None, "partition_size": 16}


def _demo_synth(
    run_dir: Path, groups: int, rewrites: int, model: str, api_base: str | None, seeds, opts: dict
) -> dict:
    """Synthesis on small budgets (the embedded model runs on the CPU), E2HQA also fed seeds from the site's truth."""
    from .synth.commands import synthesise
    from .synth.crawlqa import CrawlQAConfig
    from .synth.e2hqa import E2HQAConfig

    click.echo(f"[3/7] synthesising QA with {model}: CRAWLQA on {groups} page groups, {rewrites} E2HQA round(s)")
    small = model == "embedded"
    crawlqa_cfg = CrawlQAConfig(max_sublinks=2, max_page_chars=1200, max_tokens=384) if small else CrawlQAConfig()
    e2hqa_cfg = E2HQAConfig(rewrites=rewrites, max_tokens=160 if small else 512)
    return synthesise(
        run_dir,
        rewrites=rewrites,
        max_groups=groups,
        model=model,
        api_base=api_base,
        restart=True,
        crawlqa_cfg=crawlqa_cfg,
        e2hqa_cfg=e2hqa_cfg,
        extra_seeds=seeds,
        **opts,
    )


def _demo_filter(run_dir: Path, seeds: list[dict]) -> dict:
    """Filter the synthesised QA, plus the site's seed questions, so that sampling has questions to work on."""
    from .filters.qa_filter import FilterConfig, run
    from .schemas import mark_complete, write_records
    from .synth.e2hqa import seed_record

    seed_dir = run_dir / "synth" / "seeds" / "records"
    write_records([seed_record(s) for s in seeds], seed_dir / "00000.jsonl.gz", kind="qa")
    mark_complete(seed_dir)  # the whole of this input: the filter refuses directories not marked so
    sources = [
        p for p in (run_dir / "synth" / "crawlqa" / "records", run_dir / "synth" / "e2hqa" / "records", seed_dir)
    ]
    summary = run([p for p in sources if p.exists()], run_dir / "filter", FilterConfig())
    dropped = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items()) or "none dropped"
    click.echo(f"[4/7] filtered QA: kept {summary['kept']} of {summary['in']} ({dropped})")
    return summary


def _demo_sample(run_dir: Path, model: str, api_base: str | None, questions: int, rollouts: int, opts: dict) -> dict:
    """A few rollouts on short budgets: the embedded model writes a turn in seconds, not milliseconds."""
    from .synth.agent.loop import AgentConfig
    from .synth.options import run_with_progress, stage_backends
    from .synth.sample import SampleConfig, run

    click.echo(f"[5/7] sampling {rollouts} trajectories for each of up to {questions} questions with {model}")
    small = model == "embedded"
    if small:  # valid turns go on to read results and pages: prompts and replies are held short (the CPU's time)
        agent = AgentConfig(
            max_calls=3, max_new_tokens=160, max_context_tokens=3072, search_k=3, max_observation_chars=2000
        )
        cfg = SampleConfig(rollouts=rollouts, agent=agent, visit_max_tokens=192, visit_max_chars=2000)
    else:
        cfg = SampleConfig(rollouts=rollouts)
    backends, run_opts = stage_backends(run_dir, model, api_base, f"bm25:{run_dir / 'index'}", **opts)
    out = run_dir / "sample"
    sources = [run_dir / "filter" / "records"]
    return run_with_progress("sample", out, True, lambda p: run(sources, out, cfg, backends, run_opts, questions, p))


def _demo_funnel(run_dir: Path, judge: str | None, api_base: str | None) -> dict:
    from .filters.commands import funnel
    from .filters.funnel import FunnelConfig

    click.echo(f"[6/7] funnel: validity, correctness (judge: {judge or 'exact match'}), quality; then the exports")
    return funnel(run_dir, [run_dir / "sample" / "records"], None, FunnelConfig(), judge, api_base)


def _demo_report(run_dir: Path) -> Path:
    from .report.gather import gather
    from .report.html import render

    out = run_dir / "report.html"
    out.write_text(render(gather(run_dir)), encoding="utf-8")
    click.echo(f"[7/7] report -> {out}")
    return out


if __name__ == "__main__":
    main()
