"""`wdtk filter`: click glue over the filter stage (registered by wdtk.cli)."""

from __future__ import annotations

from pathlib import Path

import click


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
) -> None:
    """Filter QA (or page) records: quality, decontamination, exact and near-duplicate removal."""
    from ..schemas import RecordError
    from .decontam import DecontamConfig
    from .dedup import DedupConfig
    from .qa import FilterConfig, run
    from .quality import QualityConfig

    cfg = FilterConfig(
        kind=kind,
        quality=QualityConfig(min_hops=min_hops, max_answer_words=max_answer_words),
        decontam=DecontamConfig(ngram=ngram),
        dedup=None
        if no_dedup
        else DedupConfig(threshold=threshold, num_perm=num_perm, shingle=shingle, ngram=shingle_size),
    )
    try:
        summary = run(sources, out_dir, cfg, evals)
    except RecordError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"filter: kept {summary['kept']} of {summary['in']} {kind} records -> {out_dir / 'records'}")
    if summary["dropped"]:
        click.echo("  dropped: " + ", ".join(f"{k} {v}" for k, v in summary["dropped"].items()))
