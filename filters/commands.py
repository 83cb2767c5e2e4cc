"""`wdtk filter`, `wdtk funnel` and `wdtk export`: click glue over the filters (registered by wdtk.cli)."""

from __future__ import annotations

from pathlib import Path

import click

from ..synth.options import (
    ALLOW_INCOMPLETE,
    DIFFICULTY,
    MODEL,
    RUN_DEFAULTS,
    SCHEDULER,
    apply,
    judge_options,
    out_option,
    prepare_judge,
    prepare_model,
    require_records,
    run_dir_option,
    workers_option,
)
from ..synth.parallel import dask_client

# the LLM gates of `wdtk filter` (issue 15): answer uniqueness by search and the difficulty gate (filters/gates.py)
gate_options = apply(
    [
        click.option(
            "--search",
            metavar="ENGINE",
            help="Search ENGINE (bm25:INDEX_DIR, ...) for a second answer to each question; one the LLM (--model) "
            "finds on a page drops it as ambiguous. Also the tools of --agent-attempts.",
        ),
        *DIFFICULTY,
        *MODEL,
        judge_options,
    ]
)


@click.command("filter", context_settings={"show_default": True})
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path))
@run_dir_option("Run directory: default input DIR/synth/*/records, output DIR/filter.")
@out_option("Output: records/ (kept), rejects/ (with reasons), summary.json.  [default: DIR/filter]")
@click.option("--kind", default="qa", type=click.Choice(["qa", "page"]), help="Records to filter (pages: dedup only).")
@click.option(
    "--eval",
    "evals",
    multiple=True,
    type=click.Path(path_type=Path),
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
    "--no-uniqueness", is_flag=True, help="Keep QA whose claims leave the answer open (see filters/uniqueness.py)."
)
@gate_options
@workers_option(0, "Local Dask worker processes for dedup signatures (0: in this process; enough below millions).")
@SCHEDULER
@ALLOW_INCOMPLETE
def filter_cmd(
    sources,
    run_dir,
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
    no_uniqueness,
    workers,
    scheduler,
    allow_incomplete,
    **gate_opts,
) -> None:
    """Filter QA (or page) records: quality, decontamination, exact and near-duplicate removal; then, when asked,
    answer uniqueness by search (--search) and the difficulty gate (--difficulty), resumable in OUT/gates.

    SOURCES default to DIR/synth/*/records (what `wdtk synth --dir DIR` leaves). Malformed records among good ones
    are rejected with their reason; an input with no record of the kind at all is an error.
    """
    from ..schemas import WdtkError
    from ..schemas.runlog import log_command
    from .decontam import DecontamConfig
    from .dedup import DedupConfig
    from .qa_filter import FilterConfig, run
    from .quality import QualityConfig
    from .uniqueness import UniquenessConfig

    cfg = FilterConfig(
        kind=kind,
        quality=QualityConfig(min_hops=min_hops, max_answer_words=max_answer_words),
        decontam=DecontamConfig(ngram=ngram),
        dedup=None
        if no_dedup
        else DedupConfig(threshold=threshold, num_perm=num_perm, shingle=shingle, ngram=shingle_size),
        uniqueness=None if no_uniqueness else UniquenessConfig(),
    )
    sources = sources or tuple(sorted(run_dir.glob("synth/*/records")))
    if not sources:
        raise WdtkError(f"no QA records under {run_dir / 'synth'}: run `wdtk synth --dir {run_dir}` or name them")
    require_records(sources, kind, f"{kind} records", every=False, allow_incomplete=allow_incomplete)
    require_records(evals, None, "evaluation questions")  # decontam reads them, naming a row without a question
    gated = kind == "qa" and (gate_opts["search"] or gate_opts["difficulty"])
    if gated:  # the gates' models, checked before any work, as every command that calls a model does
        gate_opts["model"] = prepare_model(gate_opts["model"], gate_opts["api_base"])
        if gate_opts["difficulty"] and gate_opts["solver_model"]:
            gate_opts["solver_model"] = prepare_model(
                gate_opts["solver_model"], gate_opts["solver_api_base"], "--solver-model"
            )
        gate_opts["judge_model"] = prepare_judge(gate_opts["judge_model"], gate_opts["judge_api_base"])
    out_dir = out_dir or run_dir / "filter"
    log_command(run_dir if out_dir == run_dir / "filter" else out_dir.parent)
    with dask_client(workers, scheduler) as client:
        summary = run(sources, out_dir, cfg, evals, dask_client=client, allow_incomplete=allow_incomplete)
    if gated:
        summary = gates_step(out_dir, workers, scheduler, **gate_opts)
    click.echo(f"filter: kept {summary['kept']} of {summary['in']} {kind} records -> {out_dir / 'records'}")
    if summary["dropped"]:
        click.echo("  dropped: " + ", ".join(f"{k} {v}" for k, v in summary["dropped"].items()))


def gates_step(out_dir: Path, workers: int, scheduler: str | None, **o) -> dict:
    """Run the LLM gates on the filter's kept records (filters/gates.py); the updated filter summary. `o`: the gate
    options' values by parameter name; what `wdtk filter` and a recipe's filter run."""
    from ..synth.options import difficulty_config, require_index, stage_backends
    from ..synth.rivals import RivalConfig
    from .gates import GatesConfig, apply

    if o["search"]:
        require_index(o["search"])
    elif o["agent_attempts"]:
        raise click.UsageError("--agent-attempts needs --search (the agent's search engine)")
    difficulty = difficulty_config(o)
    cfg = GatesConfig(rivals=RivalConfig() if o["search"] else None, difficulty=difficulty)
    limits = {k: o[k] for k in RUN_DEFAULTS if k in o}  # the model options given to `wdtk filter`
    backends, opts = stage_backends(out_dir.parent, o["model"], o["api_base"], o["search"], workers=workers,
                                    scheduler=scheduler, **limits)  # fmt: skip
    return apply(out_dir, cfg, backends, opts)


@click.command("funnel", context_settings={"show_default": True})
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path))
@run_dir_option(
    "Run directory: default input DIR/sample/records, QA DIR/filter/records, output DIR/funnel and DIR/export."
)
@out_option("Output directory, the exports in OUT/export.  [default: DIR/funnel, the exports in DIR/export]")
@judge_options
@click.option("--max-actions", default=12, type=click.IntRange(1), help="Drop trajectories with more tool calls.")
@click.option(
    "--max-repeats", default=0, type=click.IntRange(0), help="Identical tool calls allowed beyond the first."
)
@click.option("--max-tokens", default=24000, type=click.IntRange(1), help="Drop longer trajectories (estimated).")
@click.option("--no-support-check", is_flag=True, help="Keep answers that no tool response contains.")
@click.option("--no-export", is_flag=True, help="Do not write the SFT, WebDancer and RL exports.")
@ALLOW_INCOMPLETE
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
    allow_incomplete,
) -> None:
    """Keep the valid, correct, high-quality trajectories; send questions with none to the RL pool.

    SOURCES are trajectory records (default DIR/sample/records, as `wdtk sample` leaves them). Writes
    OUT/records (kept), OUT/rejects (stage and reason), OUT/judgements, OUT/rl_pool and OUT/summary.json, then
    the exports: EXPORT/sft (TRL conversational), EXPORT/webdancer (chatml text), EXPORT/rl, where EXPORT is
    DIR/export (OUT/export with -o).
    """
    from ..schemas.runlog import log_command
    from .funnel import FunnelConfig

    sources = sources or (run_dir / "sample" / "records",)
    hint = "run `wdtk sample --dir DIR` first or name the files"
    require_records(sources, "trajectory", "trajectories", hint, allow_incomplete=allow_incomplete)
    judge_model = prepare_judge(judge_model, judge_api_base)
    log_command(run_dir)
    cfg = FunnelConfig(
        max_actions=max_actions, max_repeats=max_repeats, max_tokens=max_tokens, require_support=not no_support_check
    )
    funnel(run_dir, sources, out_dir, cfg, judge_model, judge_api_base, f1_threshold, not no_export, allow_incomplete)


def funnel(
    run_dir, sources, out_dir, cfg, judge_model, judge_api_base, f1_threshold=0.8, export=True, allow_incomplete=False
) -> dict:
    """The funnel, then the exports, with their summaries printed: what `wdtk funnel` and the demo run."""
    from ..synth.judge import Judge, JudgeConfig, judge_client
    from .funnel import describe_funnel, run

    export_dir = out_dir / "export" if out_dir else run_dir / "export"
    out_dir = out_dir or run_dir / "funnel"
    client = judge_client(judge_model, judge_api_base, run_dir / "llm_cache.sqlite")
    judge = Judge(client, JudgeConfig(f1_threshold=f1_threshold))
    qa = [run_dir / "filter" / "records"]
    summary = run(sources, out_dir, cfg, judge, qa_sources=qa, allow_incomplete=allow_incomplete)
    click.echo(describe_funnel(summary, out_dir))
    if export:
        from .export import describe_export
        from .export import run as export_run

        click.echo(describe_export(export_run(out_dir, export_dir), export_dir))
    return summary


@click.command("export", context_settings={"show_default": True})
@click.argument("funnel_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@run_dir_option("Run directory: default input DIR/funnel, output DIR/export.")
@out_option("Output: sft/, webdancer/ and rl/ Parquet shards.  [default: DIR/export]")
def export_cmd(funnel_dir: Path | None, run_dir: Path, out_dir: Path | None) -> None:
    """Write the training sets from a funnel's output (FUNNEL_DIR: records/ and rl_pool/; default DIR/funnel), as
    `wdtk funnel` does.

    OUT/sft: TRL conversational rows (messages with tool_calls and tool turns, plus tools) that SFTTrainer takes
    as they are; OUT/webdancer: the same trajectories as chatml text; OUT/rl: question, answer, metadata.
    """
    from .export import describe_export, run

    funnel_dir = funnel_dir or run_dir / "funnel"
    hint = "run `wdtk funnel --dir DIR` first"
    require_records([funnel_dir / "records"], "trajectory", "kept trajectories", hint, empty_ok=True)
    out_dir = out_dir or run_dir / "export"
    click.echo(describe_export(run(funnel_dir, out_dir), out_dir))
