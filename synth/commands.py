"""`wdtk synth` and `wdtk index`: click glue over the synthesis stages (registered by wdtk.cli)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click


def run_dir_option(help: str):
    """--dir RUN: the run directory a command reads its inputs from and writes its stage into."""
    return click.option(
        "--dir", "run_dir", default=Path("runs/demo"), type=click.Path(file_okay=False, path_type=Path), help=help
    )


def llm_options(fn):
    for option in reversed(
        [
            click.option(
                "--model",
                envvar="WDTK_MODEL",
                default="embedded",
                help="LLM: 'embedded' (offline SmolLM2-135M, weak), a litellm model string, "
                "'openai:NAME' with --api-base, or 'vllm:NAME'.",
            ),
            click.option(
                "--api-base",
                envvar="WDTK_API_BASE",
                default=None,
                help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (vLLM, SGLang, llama.cpp).",
            ),
            click.option(
                "--concurrency", default=32, type=click.IntRange(1), help="LLM requests in flight per worker."
            ),
            click.option(
                "--rpm", type=click.FloatRange(0, min_open=True), help="Requests-per-minute limit per worker."
            ),
            click.option("--tpm", type=click.FloatRange(0, min_open=True), help="Tokens-per-minute limit per worker."),
            click.option(
                "--workers",
                default=None,
                type=click.IntRange(0),
                help="Local Dask worker processes (default: one per core; 0: run in this process).",
            ),
            click.option(
                "--scheduler",
                default=None,
                metavar="tcp://HOST:PORT",
                help="Run on an existing Dask cluster (its workers must see the working directory).",
            ),
            click.option("--partition-size", default=16, type=click.IntRange(1), help="Items per Dask task."),
            click.option("--restart", is_flag=True, help="Discard this stage's earlier output instead of resuming."),
        ]
    ):
        fn = option(fn)
    return fn


def stage_backends(run_dir: Path, model: str, api_base: str | None, search: str | None, **opts):
    from wdtk.synth.parallel import Backends, RunOptions

    concurrency, timeout = opts["concurrency"], 120.0
    if model in (None, "embedded") or model.startswith("local:"):
        # the CPU model answers in batches of 8 that last minutes: more in flight only queue up and time out
        concurrency, timeout = min(concurrency, 8), 3600.0
    backends = Backends(
        model=model,
        api_base=api_base,
        cache_path=str(run_dir / "llm_cache.sqlite"),
        search=search,
        concurrency=concurrency,
        rpm=opts["rpm"],
        tpm=opts["tpm"],
        timeout=timeout,
    )
    workers = opts["workers"]
    run_opts = RunOptions(
        partition_size=opts["partition_size"],
        scheduler=opts["scheduler"],
        **({} if workers is None else {"workers": workers}),
    )
    return backends, run_opts


def run_with_progress(name: str, out_dir: Path, restart: bool, call) -> dict:
    """Run one stage with a progress bar, turning resumable failures into one clear line."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from wdtk.synth.parallel import PartitionsFailed, StageInputChanged

    if restart:
        shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    with Progress(TextColumn(name), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(name, total=None)
        try:
            summary = call(lambda s: bar.advance(task))
        except (PartitionsFailed, StageInputChanged, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
    _print_stage_summary(summary, out_dir)
    return summary


def _print_stage_summary(summary: dict, out_dir: Path) -> None:
    usage = summary["usage"]
    calls = sum(u.get("calls", 0) for u in usage.values())
    hits = sum(u.get("cache_hits", 0) for u in usage.values())
    tokens = sum(u.get("prompt_tokens", 0) + u.get("completion_tokens", 0) for u in usage.values())
    cost = sum(u.get("cost", 0.0) for u in usage.values())
    resumed = f", {summary['resumed_partitions']} partitions resumed" if summary["resumed_partitions"] else ""
    click.echo(
        f"{summary['stage']}: {summary['kept']} records kept from {summary['items']} inputs{resumed} "
        f"-> {out_dir / 'records'}"
    )
    if summary["rejected"]:
        click.echo("  rejected: " + ", ".join(f"{k} {v}" for k, v in summary["rejected"].items()))
    if summary.get("terminations"):
        click.echo("  ended by: " + ", ".join(f"{k} {v}" for k, v in summary["terminations"].items()))
    click.echo(f"  LLM: {calls} calls, {hits} cache hits, {tokens} tokens, ${cost:.4f}")


@click.group(invoke_without_command=True, context_settings={"show_default": True})
@run_dir_option("Working directory: reads crawl/pages and index/, writes synth/.")
@click.option("--rewrites", default=3, type=click.IntRange(0), help="E2HQA rounds on top of CRAWLQA (0: none).")
@click.option("--max-groups", default=None, type=click.IntRange(1), help="Use at most this many page groups.")
@llm_options
@click.pass_context
def synth(
    ctx: click.Context,
    run_dir: Path,
    rewrites: int,
    max_groups: int | None,
    model: str,
    api_base: str | None,
    restart: bool,
    **opts,
) -> None:
    """Synthesise QA: CRAWLQA on the crawled pages, then E2HQA rounds on its output.

    `wdtk synth --rewrites 3` runs both on DIR (default runs/demo, as `wdtk demo` leaves it);
    `wdtk synth crawlqa ...` and `wdtk synth e2hqa ...` run one method on any input. A killed
    run resumes where it stopped when started again; no completed LLM call is paid twice.
    """
    if ctx.invoked_subcommand:
        return
    from wdtk.synth.runlog import log_command

    log_command(run_dir)
    synthesise(run_dir, rewrites, max_groups, model, api_base, restart=restart, **opts)


def synthesise(
    run_dir: Path,
    rewrites: int,
    max_groups: int | None,
    model: str,
    api_base: str | None,
    restart: bool = False,
    crawlqa_cfg=None,
    e2hqa_cfg=None,
    extra_seeds: list[dict] = (),
    **opts,
) -> dict:
    """CRAWLQA on run_dir/crawl/pages, then E2HQA rounds on its records plus `extra_seeds` (SimpleQA-style rows).

    What `wdtk synth` and the demo run; outputs under run_dir/synth/.
    """
    from wdtk.schemas import read_records, write_records
    from wdtk.synth import crawlqa, e2hqa

    defaults = {"concurrency": 32, "rpm": None, "tpm": None, "workers": None, "scheduler": None, "partition_size": 16}
    opts = {**defaults, **opts}
    pages = run_dir / "crawl" / "pages"
    if not pages.exists():
        hint = f"run `wdtk demo` or `wdtk crawl URL -o {run_dir / 'crawl'}`"
        raise click.ClickException(f"no crawled pages in {pages}: {hint}")
    index = _ensure_index(pages, run_dir / "index")
    backends, run_opts = stage_backends(run_dir, model, api_base, f"bm25:{index}", **opts)
    out = run_dir / "synth"
    cfg = crawlqa_cfg or crawlqa.CrawlQAConfig()
    summaries = {
        "crawlqa": run_with_progress(
            "crawlqa",
            out / "crawlqa",
            restart,
            lambda p: crawlqa.run(pages, out / "crawlqa", cfg, backends, run_opts, max_groups, p),
        )
    }
    if rewrites:
        seeds = out / "e2hqa_seeds.jsonl"
        write_records([*read_records(out / "crawlqa" / "records"), *extra_seeds], seeds)
        e2cfg = e2hqa_cfg or e2hqa.E2HQAConfig(rewrites=rewrites)
        summaries["e2hqa"] = run_with_progress(
            "e2hqa",
            out / "e2hqa",
            restart,
            lambda p: e2hqa.run(seeds, out / "e2hqa", e2cfg, backends, run_opts, None, p),
        )
    return summaries


_stage_out = click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output: records/, rejects/, summary.json, resumable state.",
)


@synth.command("crawlqa")
@click.argument("pages", type=click.Path(exists=True, path_type=Path))
@_stage_out
@click.option("--types", default="COUNT,MULTI-HOP,INTERSECTION", help="Comma-separated question types to ask for.")
@click.option("--per-type", default=1, type=click.IntRange(1), help="Questions per type per page group.")
@click.option("--max-groups", default=None, type=click.IntRange(1), help="Use at most this many page groups.")
@llm_options
def crawlqa_cmd(
    pages: Path,
    out_dir: Path,
    types: str,
    per_type: int,
    max_groups: int | None,
    model: str,
    api_base: str | None,
    restart: bool,
    **opts,
) -> None:
    """CRAWLQA: QA pairs written by the LLM from each crawled page and its sublinks (PAGES: page records)."""
    from wdtk.synth import crawlqa

    wanted = tuple(t.strip().upper() for t in types.split(",") if t.strip())
    cfg = crawlqa.CrawlQAConfig(types=wanted, per_type=per_type)
    backends, run_opts = stage_backends(out_dir, model, api_base, None, **opts)
    run_with_progress(
        "crawlqa", out_dir, restart, lambda p: crawlqa.run(pages, out_dir, cfg, backends, run_opts, max_groups, p)
    )


@synth.command("e2hqa")
@click.argument("seeds", type=click.Path(exists=True, path_type=Path))
@_stage_out
@click.option(
    "--search",
    "search",
    required=True,
    metavar="ENGINE",
    help="bm25:INDEX_DIR (from `wdtk index`), serper:URL or searxng:URL.",
)
@click.option("--rewrites", default=3, type=click.IntRange(1), help="Rounds of entity rewriting per question.")
@click.option("--limit", default=None, type=click.IntRange(1), help="Use at most this many seeds.")
@llm_options
def e2hqa_cmd(
    seeds: Path,
    out_dir: Path,
    search: str,
    rewrites: int,
    limit: int | None,
    model: str,
    api_base: str | None,
    restart: bool,
    **opts,
) -> None:
    """E2HQA: make SEEDS (JSONL of question/answer, SimpleQA-style rows accepted) harder, round by round."""
    from wdtk.synth import e2hqa

    backends, run_opts = stage_backends(out_dir, model, api_base, search, **opts)
    run_with_progress(
        "e2hqa",
        out_dir,
        restart,
        lambda p: e2hqa.run(seeds, out_dir, e2hqa.E2HQAConfig(rewrites=rewrites), backends, run_opts, limit, p),
    )


def _ensure_index(pages: Path, index_dir: Path) -> Path:
    """The BM25 index of `pages`, (re)built when missing or when the page shards changed since it was built."""
    import hashlib
    import json

    files = sorted(pages.rglob("*")) if pages.is_dir() else [pages]
    fingerprint = hashlib.sha256(json.dumps([(f.name, f.stat().st_size) for f in files if f.is_file()]).encode())
    stamp = index_dir / ".built_from"
    if not stamp.exists() or stamp.read_text() != fingerprint.hexdigest():
        from wdtk.synth.index import build_index

        click.echo(f"indexing {pages} -> {index_dir}")
        shutil.rmtree(index_dir, ignore_errors=True)
        build_index(pages, index_dir)
        stamp.write_text(fingerprint.hexdigest())
    return index_dir


@click.command()
@click.argument("pages", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Index directory (the offline search engine for E2HQA, visit and sampling).",
)
def index(pages: Path, out_dir: Path) -> None:
    """Build a persistent local BM25 index over page records (PAGES: a shard directory or file)."""
    from wdtk.synth.index import build_index

    summary = build_index(pages, out_dir)
    click.echo(f"indexed {summary.get('documents', summary)} pages -> {out_dir}")


AGENT_OPTIONS = ("temperature", "max_calls", "max_context_tokens", "max_new_tokens", "max_seconds")


def agent_options(fn):
    """The agent's decoding and budgets, for every command that runs it (sample, eval, evolve)."""
    for option in reversed(
        [
            click.option("--temperature", default=0.6, type=click.FloatRange(0), help="Sampling temperature."),
            click.option("--max-calls", default=16, type=click.IntRange(1), help="LLM calls per rollout."),
            click.option(
                "--max-context-tokens", default=32768, type=click.IntRange(256), help="Context budget per rollout."
            ),
            click.option("--max-new-tokens", default=2048, type=click.IntRange(16), help="Tokens per model turn."),
            click.option(
                "--max-seconds", default=900.0, type=click.FloatRange(0, min_open=True), help="Wall time per rollout."
            ),
        ]
    ):
        fn = option(fn)
    return fn


def agent_config(opts: dict):
    """The AgentConfig of `agent_options`' values, taken out of `opts`."""
    from wdtk.synth.agent import AgentConfig

    return AgentConfig(**{name: opts.pop(name) for name in AGENT_OPTIONS})


@click.command("sample", context_settings={"show_default": True})
@click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path))
@run_dir_option("Run directory: default input DIR/filter/records, search DIR/index, output DIR/sample.")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Default: DIR/sample.")
@click.option(
    "--search", metavar="ENGINE", help="bm25:INDEX_DIR, serper:URL or searxng:URL (default: bm25:DIR/index)."
)
@click.option("--rollouts", default=3, type=click.IntRange(1), help="Trajectories per question.")
@agent_options
@click.option("--limit", default=None, type=click.IntRange(1), help="Use at most this many questions.")
@llm_options
def sample(
    sources: tuple[Path, ...],
    run_dir: Path,
    out_dir: Path | None,
    search: str | None,
    rollouts: int,
    limit: int | None,
    model: str,
    api_base: str | None,
    restart: bool,
    **opts,
) -> None:
    """Sample ReAct trajectories (WebDancer format) for QA records: ROLLOUTS per question, all kept, none judged.

    SOURCES are qa records or SimpleQA-style JSONL (default: DIR/filter/records, as `wdtk filter` leaves it).
    Every rollout ends with a label: answer, call_budget_exceeded, token_limit, time_limit or format_error.
    A killed run resumes where it stopped when started again. Next: `wdtk funnel`.
    """
    from wdtk.synth.runlog import log_command
    from wdtk.synth.trajectories import SampleConfig, run

    sources = sources or (run_dir / "filter" / "records",)
    for source in sources:
        if not source.exists():
            raise click.ClickException(f"no QA records at {source}: run `wdtk filter` first or name the QA files")
    search = search or f"bm25:{run_dir / 'index'}"
    if search.startswith("bm25:") and not Path(search[5:]).exists():
        raise click.ClickException(f"no search index at {search[5:]}: run `wdtk index PAGES -o {search[5:]}`")
    out_dir = out_dir or run_dir / "sample"
    log_command(run_dir)
    agent = agent_config(opts)
    backends, run_opts = stage_backends(run_dir, model, api_base, search, **opts)
    cfg = SampleConfig(rollouts=rollouts, agent=agent)
    run_with_progress("sample", out_dir, restart, lambda p: run(sources, out_dir, cfg, backends, run_opts, limit, p))
