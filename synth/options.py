"""Command-line options and guards that several stage commands share, each defined once.

They live here, at the lowest floor whose commands use them (synth), so that filters' and training's commands take
them from below. Options are click decorators; guards raise `WdtkError`, which the `wdtk` group prints as one line.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import click

# What a stage runs with when a caller (the demo, a test, another stage) names no worker or rate options.
RUN_DEFAULTS = {
    "concurrency": 32,
    "rpm": None,
    "tpm": None,
    "workers": None,
    "scheduler": None,
    "partition_size": 16,
    "structured": "auto",
}
AGENT_OPTIONS = ("temperature", "max_calls", "max_context_tokens", "max_new_tokens", "max_seconds")


def apply(options: Iterable[Callable]) -> Callable:
    """One decorator made of several click options, listed in the order --help shows them."""

    def decorate(fn):
        for option in reversed(list(options)):
            fn = option(fn)
        return fn

    return decorate


def run_dir_option(help: str):
    """--dir RUN: the run directory a command reads its inputs from and writes its stage into."""
    return click.option(
        "--dir", "run_dir", default=Path("runs/demo"), type=click.Path(file_okay=False, path_type=Path), help=help
    )


def out_option(help: str, required: bool = True):
    """-o/--out DIR: where a command writes its output."""
    return click.option(
        "-o", "--out", "out_dir", required=required, type=click.Path(file_okay=False, path_type=Path), help=help
    )


WORKERS_HELP = "Local Dask worker processes (default: one per core; 0: run in this process)."


def workers_option(default: int | None = None, help: str = WORKERS_HELP):
    """--workers N: local Dask worker processes."""
    return click.option("--workers", default=default, type=click.IntRange(0), help=help)


SCHEDULER = click.option(
    "--scheduler",
    default=None,
    metavar="tcp://HOST:PORT",
    help="Run on an existing Dask cluster (its workers must see the working directory).",
)

MODEL = [
    click.option(
        "--model",
        envvar="WDTK_MODEL",
        show_envvar=True,
        default="embedded",
        help="LLM: 'embedded' (offline SmolLM2-135M, weak), a litellm model string, "
        "'openai:NAME' with --api-base, or 'vllm:NAME'.",
    ),
    click.option(
        "--api-base",
        envvar="WDTK_API_BASE",
        show_envvar=True,
        default=None,
        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (vLLM, SGLang, llama.cpp).",
    ),
    click.option("--concurrency", default=32, type=click.IntRange(1), help="LLM requests in flight per worker."),
    click.option("--rpm", type=click.FloatRange(0, min_open=True), help="Requests-per-minute limit per worker."),
    click.option("--tpm", type=click.FloatRange(0, min_open=True), help="Tokens-per-minute limit per worker."),
    click.option(
        "--structured",
        type=click.Choice(["auto", "on", "off"]),
        default="auto",
        envvar="WDTK_STRUCTURED",
        show_envvar=True,
        help="Hold replies to their JSON schema and agent turns to the ReAct grammar while decoding: auto (where the "
        "backend can; a server that refuses gets plain prompts), on (always; a refusal is an error), off.",
    ),
]
STAGE = [
    workers_option(),
    SCHEDULER,
    click.option("--partition-size", default=16, type=click.IntRange(1), help="Items per Dask task."),
    click.option("--restart", is_flag=True, help="Discard this stage's earlier output instead of resuming."),
]
llm_options = apply(MODEL + STAGE)
"""The model, its endpoint and limits, and where the stage runs: every command that calls an LLM per item."""

agent_options = apply(
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
)
"""The agent's decoding and budgets, for every command that runs it (sample, eval, evolve)."""

judge_options = apply(
    [
        click.option(
            "--judge",
            "judge_model",
            default=None,
            envvar="WDTK_JUDGE_MODEL",
            show_envvar=True,
            help="LLM judge (a model string as for --model); without one: normalised exact match, then F1.",
        ),
        click.option(
            "--judge-api-base", envvar="WDTK_JUDGE_API_BASE", show_envvar=True, help="OpenAI-compatible endpoint."
        ),
        click.option(
            "--f1-threshold", default=0.8, type=click.FloatRange(0, 1), help="F1 that counts as correct (no judge)."
        ),
    ]
)
"""--judge, --judge-api-base and --f1-threshold: what the funnel, `wdtk eval` and `wdtk evolve` judge answers with."""


def agent_config(opts: dict):
    """The AgentConfig of `agent_options`' values, taken out of `opts`."""
    from .agent.loop import AgentConfig

    return AgentConfig(**{name: opts.pop(name) for name in AGENT_OPTIONS})


# --- guards ------------------------------------------------------------------------------------


def require_inputs(paths: Iterable[Path], what: str, hint: str) -> None:
    """Stop with one line when an input a stage reads is missing."""
    from ..schemas import WdtkError  # here, not at the top: `wdtk --help` should not load pyarrow

    for path in paths:
        if not Path(path).exists():
            raise WdtkError(f"no {what} at {path}: {hint}")


def require_index(search: str) -> None:
    """Stop with one line when a bm25: search names an index that was never built."""
    from ..schemas import WdtkError

    if search.startswith("bm25:") and not Path(search[5:]).exists():
        raise WdtkError(f"no search index at {search[5:]}: run `wdtk index PAGES -o {search[5:]}`")


# --- running a stage -----------------------------------------------------------------------------


def stage_backends(run_dir: Path, model: str, api_base: str | None, search: str | None, **opts):
    """The (Backends, RunOptions) of a stage from its command's options; options not given take RUN_DEFAULTS."""
    from .llm.factory import limits
    from .parallel import Backends, RunOptions

    opts = {**RUN_DEFAULTS, **opts}
    concurrency, timeout = limits(model, opts["concurrency"], 120.0)
    backends = Backends(
        model=model,
        api_base=api_base,
        cache_path=str(run_dir / "llm_cache.sqlite"),
        search=search,
        concurrency=concurrency,
        rpm=opts["rpm"],
        tpm=opts["tpm"],
        timeout=timeout,
        structured=opts["structured"],
    )
    workers = opts["workers"]
    run_opts = RunOptions(
        partition_size=opts["partition_size"],
        scheduler=opts["scheduler"],
        **({} if workers is None else {"workers": workers}),
    )
    return backends, run_opts


def run_with_progress(name: str, out_dir: Path, restart: bool, call, report: Callable | None = None) -> dict:
    """Run one stage with a progress bar; `call(progress)` returns its summary, which `report` prints (default: the
    stage summary's counts and LLM usage)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if restart:
        shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    with Progress(TextColumn(name), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(name, total=None)
        try:
            summary = call(lambda s: bar.advance(task))
        except ValueError as exc:  # a config the stage refuses
            raise click.ClickException(str(exc)) from None
    (report or print_stage_summary)(summary, out_dir)
    return summary


def print_stage_summary(summary: dict, out_dir: Path) -> None:
    """Kept, rejected by reason, how rollouts ended, and LLM usage, in a few lines."""
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
