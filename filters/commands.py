"""`wdtk filter`: click glue over the filter stage (registered by wdtk.cli)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import click

from wdtk.synth.commands import run_dir_option


@click.command("filter", context_settings={"show_default": True})
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output: records/ (kept), rejects/ (with reasons), summary.json.",
)
@click.option("--kind", default="qa", type=click.Choice(["qa", "page"]), help="Records to filter (pages: dedup only).")
@click.option(
    "--eval",
    "evals",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Evaluation-set JSONL to decontaminate against (GAIA, WebWalkerQA, BrowseComp...; repeatable).",
)
@click.option("--ngram", default=13, type=click.IntRange(1), help="Word n-gram length for decontamination.")
@click.option("--threshold", default=0.8, type=click.FloatRange(0, 1), help="Jaccard similarity of near-duplicates.")
@click.option("--num-perm", default=128, type=click.IntRange(16), help="MinHash permutations.")
@click.option("--shingle", default="word", type=click.Choice(["word", "char"]), help="Shingles for MinHash.")
@click.option("--shingle-size", default=3, type=click.IntRange(1), help="Words or characters per shingle.")
@click.option("--no-dedup", is_flag=True, help="Keep duplicates.")
@click.option("--min-hops", default=0, type=click.IntRange(0), help="Drop QA with fewer E2HQA rewrite hops.")
@click.option("--max-answer-words", default=10, type=click.IntRange(1), help="Drop QA with longer answers.")
@click.option(
    "--workers",
    default=0,
    type=click.IntRange(0),
    help="Local Dask worker processes for dedup signatures (0: in this process; enough below a few million).",
)
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT", help="Compute signatures on a Dask cluster.")
def filter_cmd(
    sources,
    out_dir,
    kind,
    evals,
    ngram,
    threshold,
    num_perm,
    shingle,
    shingle_size,
    no_dedup,
    min_hops,
    max_answer_words,
    workers,
    scheduler,
) -> None:
    """Filter QA (or page) records: quality, decontamination, exact and near-duplicate removal."""
    from wdtk.filters.decontam import DecontamConfig
    from wdtk.filters.dedup import DedupConfig
    from wdtk.filters.qa import FilterConfig, run
    from wdtk.filters.quality import QualityConfig
    from wdtk.schemas import RecordError
    from wdtk.synth.runlog import log_command

    cfg = FilterConfig(
        kind=kind,
        quality=QualityConfig(min_hops=min_hops, max_answer_words=max_answer_words),
        decontam=DecontamConfig(ngram=ngram),
        dedup=None
        if no_dedup
        else DedupConfig(threshold=threshold, num_perm=num_perm, shingle=shingle, ngram=shingle_size),
    )
    log_command(out_dir.parent)
    try:
        with _dask(workers, scheduler) as client:
            summary = run(sources, out_dir, cfg, evals, dask_client=client)
    except RecordError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"filter: kept {summary['kept']} of {summary['in']} {kind} records -> {out_dir / 'records'}")
    if summary["dropped"]:
        click.echo("  dropped: " + ", ".join(f"{k} {v}" for k, v in summary["dropped"].items()))


@contextmanager
def _dask(workers: int, scheduler: str | None):
    """A Dask client for a scheduler or a local cluster of `workers` processes; None for neither."""
    if not workers and not scheduler:
        yield None
        return
    from dask.distributed import Client, LocalCluster

    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None)
    client = Client(scheduler or cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def judge_options(fn):
    """--judge, --judge-api-base and --f1-threshold: what the funnel and `wdtk eval` judge answers with."""
    for option in reversed(
        [
            click.option(
                "--judge",
                "judge_model",
                default=None,
                envvar="WDTK_JUDGE_MODEL",
                help="LLM judge (a model string as for --model); without one: normalised exact match, then F1.",
            ),
            click.option("--judge-api-base", envvar="WDTK_JUDGE_API_BASE", help="OpenAI-compatible endpoint."),
            click.option(
                "--f1-threshold",
                default=0.8,
                type=click.FloatRange(0, 1),
                help="F1 that counts as correct (no judge).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


@click.command("funnel", context_settings={"show_default": True})
@click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path))
@run_dir_option(
    "Run directory: default input DIR/sample/records, QA DIR/filter/records, output DIR/funnel and DIR/export."
)
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Default: DIR/funnel.")
@judge_options
@click.option("--max-actions", default=12, type=click.IntRange(1), help="Drop trajectories with more tool calls.")
@click.option(
    "--max-repeats", default=0, type=click.IntRange(0), help="Identical tool calls allowed beyond the first."
)
@click.option("--max-tokens", default=24000, type=click.IntRange(1), help="Drop longer trajectories (estimated).")
@click.option("--no-support-check", is_flag=True, help="Keep answers that no tool response contains.")
@click.option("--no-export", is_flag=True, help="Do not write the SFT, WebDancer and RL exports.")
def funnel_cmd(
    sources,
    run_dir,
    out_dir,
    judge_model,
    judge_api_base,
    f1_threshold,
    max_actions,
    max_repeats,
    max_tokens,
    no_support_check,
    no_export,
) -> None:
    """Keep the valid, correct, high-quality trajectories; send questions with none to the RL pool.

    SOURCES are trajectory records (default DIR/sample/records, as `wdtk sample` leaves them). Writes
    OUT/records (kept), OUT/rejects (stage and reason), OUT/judgements, OUT/rl_pool and OUT/summary.json, then
    the exports: DIR/export/sft (TRL conversational), DIR/export/webdancer (chatml text), DIR/export/rl.
    """
    from wdtk.filters.trajectory import FunnelConfig
    from wdtk.synth.runlog import log_command

    sources = sources or (run_dir / "sample" / "records",)
    for source in sources:
        if not source.exists():
            raise click.ClickException(f"no trajectories at {source}: run `wdtk sample` first or name the files")
    log_command(run_dir)
    cfg = FunnelConfig(
        max_actions=max_actions, max_repeats=max_repeats, max_tokens=max_tokens, require_support=not no_support_check
    )
    funnel(run_dir, sources, out_dir, cfg, judge_model, judge_api_base, f1_threshold, export=not no_export)


def funnel(run_dir, sources, out_dir, cfg, judge_model, judge_api_base, f1_threshold=0.8, export=True) -> dict:
    """The funnel, then the exports, with their summaries printed: what `wdtk funnel` and the demo run."""
    from wdtk.filters.judge import Judge, JudgeConfig, judge_client
    from wdtk.filters.trajectory import run
    from wdtk.schemas import RecordError

    out_dir = out_dir or run_dir / "funnel"
    client = judge_client(judge_model, judge_api_base, run_dir / "llm_cache.sqlite")
    judge = Judge(client, JudgeConfig(f1_threshold=f1_threshold))
    try:
        summary = run(sources, out_dir, cfg, judge, qa_sources=[run_dir / "filter" / "records"])
    except RecordError as exc:
        raise click.ClickException(str(exc)) from None
    print_funnel(summary, out_dir)
    if export:
        from wdtk.filters.export import run as export_run

        print_export(export_run(out_dir, run_dir / "export"), run_dir / "export")
    return summary


def print_export(counts: dict, out_dir: Path) -> None:
    rows = ", ".join(f"{k} {counts[k]}" for k in ("sft", "webdancer", "rl"))
    click.echo(f"  exports -> {out_dir}: {rows} rows (sft: TRL messages + tools; webdancer: chatml text; rl: pool)")


@click.command("export", context_settings={"show_default": True})
@click.argument("funnel_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def export_cmd(funnel_dir: Path, out_dir: Path) -> None:
    """Write the training sets from a funnel's output (FUNNEL_DIR: records/ and rl_pool/), as `wdtk funnel` does.

    OUT/sft: TRL conversational rows (messages with tool_calls and tool turns, plus tools) that SFTTrainer takes
    as they are; OUT/webdancer: the same trajectories as chatml text; OUT/rl: question, answer, metadata.
    """
    from wdtk.filters.export import run
    from wdtk.schemas import RecordError

    try:
        counts = run(funnel_dir, out_dir)
    except RecordError as exc:
        raise click.ClickException(str(exc)) from None
    print_export(counts, out_dir)


def print_funnel(summary: dict, out_dir: Path) -> None:
    click.echo(f"funnel: {summary['trajectories']} trajectories of {summary['questions']} questions")
    for stage in summary["stages"]:
        dropped = ", ".join(f"{k} {v}" for k, v in stage["dropped"].items()) or "none dropped"
        click.echo(f"  {stage['name']:<12} {stage['in']:>6} -> {stage['kept']:<6} ({dropped})")
    if summary.get("format_errors"):
        click.echo("  format errors: " + ", ".join(f"{k} {v}" for k, v in summary["format_errors"].items()))
    click.echo(
        f"  kept {summary['kept']} trajectories for {summary['questions_kept']} questions -> {out_dir / 'records'}; "
        f"{summary['rl_pool']} questions to the RL pool -> {out_dir / 'rl_pool'}"
    )
    judge = summary["judge"]
    click.echo(f"  judge: {judge.get('model', 'exact match / F1')}")
