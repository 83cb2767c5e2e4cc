"""`wdtk push`, `wdtk eval` and `wdtk evolve`: click glue over publishing, evaluation and self-evolution."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from ..filters.judge import Judge, JudgeConfig, judge_client
from ..schemas import RecordError
from ..synth.options import (
    RUN_DEFAULTS,
    SEARCH_HELP,
    agent_config,
    agent_options,
    judge_options,
    llm_options,
    max_questions_option,
    option,
    out_option,
    pick_run_dir,
    prepare_judge,
    prepare_model,
    require_index,
    require_records,
    rollouts_option,
    run_dir_option,
    run_with_progress,
    stage_backends,
)
from . import evaluate
from .evolve import SERVE, Evolution, EvolveConfig, is_fraction, markdown
from .push import build_repo, push


@click.command("push", context_settings={"show_default": True})
@run_dir_option("Run directory to publish.", legacy_positional=True)
@click.option("--repo-id", metavar="ORG/NAME", help="Dataset repo on the Hub to create if needed and upload to.")
@out_option(
    "Also write the repo tree here (the very files uploaded); without --repo-id, only write it.",
    aliases=("--local-dir",),
)
@click.option(
    "--license",
    required=True,
    metavar="ID",
    help="License of the data, as the Hub names it (e.g. cc-by-4.0, apache-2.0, odc-by; 'other' for your own); "
    "mind the licenses of the crawled sites.",
)
@click.option("--pretty-name", default=None, help="Title of the dataset card.  [default: from --repo-id or DIR]")
@click.option("--language", "languages", multiple=True, default=("en",), help="Language of the data (repeatable).")
@click.option("--private", is_flag=True, help="Make the repo private (an existing public one too) before uploading.")
@click.option("--shard-size", default=10_000, type=click.IntRange(1), help="Rows per Parquet file.")
@click.option("--revision", default=None, help="Branch to commit to, created if missing (default: main).")
@click.option("--commit-message", default=None, help="Commit message (default: names the run and wdtk version).")
def push_cmd(run_dir, legacy_dir, repo_id, out_dir, private, revision, commit_message, **card) -> None:
    """Publish the run in DIR as one Hugging Face dataset repo: configs qa, trajectories, sft, rl as Parquet, and a
    dataset card.

    The token comes from HF_TOKEN (or `hf auth login`), never from the command line (shell history), and is
    written nowhere. -o alone writes the same tree to disk and uploads nothing; `datasets.load_dataset(DIR, CONFIG)`
    reads it. A config with no records is pushed as an empty split with its columns, so every config the card names
    loads.
    """
    run_dir = pick_run_dir(run_dir, legacy_dir)
    if not repo_id and not out_dir:
        raise click.UsageError("give --repo-id to upload, -o DIR to write the tree to disk, or both")
    try:
        from huggingface_hub.errors import HfHubHTTPError, HFValidationError
    except ImportError:
        raise click.ClickException("wdtk push needs huggingface_hub: pip install 'wdtk[train]'") from None
    try:
        if repo_id:
            summary = push(run_dir, repo_id, None, private, local_dir=out_dir, revision=revision,
                           commit_message=commit_message, **card)  # fmt: skip
        else:
            summary = build_repo(run_dir, out_dir, **card)
    except (RecordError, OSError, HFValidationError) as e:  # OSError: FileNotFound, FileExists, Permission
        raise click.ClickException(str(e)) from None
    except HfHubHTTPError as e:
        raise click.ClickException(f"the Hub refused the push to {repo_id}: {_line(e)}") from None
    except Exception as e:  # httpx's transport errors (offline, DNS, TLS) are not OSErrors
        if type(e).__module__.split(".")[0] not in ("httpx", "httpcore", "requests", "urllib3"):
            raise
        raise click.ClickException(f"cannot reach the Hub to push {repo_id}: {type(e).__name__}: {_line(e)}") from None
    for warning in summary["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    for name, c in summary["configs"].items():
        json_columns = f"; JSON columns: {', '.join(c['json_columns'])}" if c["json_columns"] else ""
        click.echo(f"  {name}: {c['rows']} rows in {c['files']} Parquet file(s){json_columns}")
    if out_dir:
        click.echo(f"wrote the repo tree to {out_dir}")
    if repo_id:
        click.echo(f"pushed to https://huggingface.co/datasets/{repo_id} ({summary['commit_url'] or 'committed'})")


def _line(error: Exception) -> str:
    return " ".join(str(error).split())[:300]


_OUT = "Output: questions.jsonl, rollouts/, judgements/, results.json, results.md."


@click.command("eval", context_settings={"show_default": True})
@click.argument("benchmark", type=click.Path(path_type=Path))
@run_dir_option("Run directory: default search bm25:DIR/index, output DIR/eval.")
@out_option(_OUT + "  [default: DIR/eval]")
@rollouts_option(help="Rollouts per question (K of Pass@K and Cons@K).")
@click.option("--search", metavar="ENGINE", help=SEARCH_HELP + "  [default: bm25:DIR/index]")
@judge_options
@agent_options
@max_questions_option()
@llm_options
def eval_cmd(
    benchmark: Path, run_dir: Path, out_dir: Path | None, rollouts: int, search: str | None, limit: int | None,
    restart: bool, **opts,
) -> None:  # fmt: skip
    """Evaluate an agent (any --model, e.g. a served fine-tune) on BENCHMARK: K rollouts per question, judged.

    BENCHMARK: GAIA, WebWalkerQA or BrowseComp (rows with a canary are decrypted) as JSONL, Parquet or CSV, or
    plain question/answer JSONL (`wdtk site build DIR` writes DIR/eval.jsonl for its site); the layout is detected
    per row. GAIA tasks with attached files are skipped: files are out of scope. Reports Pass@1, Pass@K, Cons@K
    (majority answer correct), the invalid-action rate, budget exhaustion and actions per rollout, overall and by
    level, type, difficulty or topic, in OUT/results.json and OUT/results.md. A killed run resumes its rollouts when
    started again.
    """
    from ..schemas.runlog import log_command

    check_benchmark(benchmark)
    search = search or f"bm25:{run_dir / 'index'}"
    require_index(search)
    out_dir = out_dir or run_dir / "eval"
    api_base = opts.pop("api_base")
    model = prepare_model(opts.pop("model"), api_base)
    judge_model, judge_api_base, f1_threshold = (
        opts.pop(n) for n in ("judge_model", "judge_api_base", "f1_threshold")
    )
    judge_model = prepare_judge(judge_model, judge_api_base)
    cfg = evaluate.EvalConfig(k=rollouts, agent=agent_config(opts), limit=limit)
    log_command(out_dir)
    backends, run_opts = stage_backends(out_dir, model, api_base, search, **opts)
    judge = Judge(
        judge_client(judge_model, judge_api_base, out_dir / "llm_cache.sqlite"), JudgeConfig(f1_threshold=f1_threshold)
    )
    run = lambda p: evaluate.run(benchmark, out_dir, cfg, backends, judge, run_opts, p)  # noqa: E731
    results = run_with_progress("eval", out_dir / "rollouts", restart, run, report=lambda *_: None)
    click.echo(f"\n{evaluate.markdown(results)}\nresults -> {out_dir / 'results.json'}, {out_dir / 'results.md'}")


def check_benchmark(path: Path) -> None:
    """Stop with one line unless `path` is a benchmark file with questions, no row over the size of a record."""
    import csv

    from ..schemas import WdtkError
    from ..schemas.formats import format_of
    from ..synth.guards import check_records
    from .benchmarks import load_benchmark

    if not path.is_file():
        raise WdtkError(f"no benchmark file at {path}" + (" (it is a directory)" if path.is_dir() else ""))
    if format_of(path) is not None:
        check_records([path], None, "benchmark rows")
    try:
        load_benchmark(path)
    except (UnicodeDecodeError, csv.Error) as e:
        raise WdtkError(f"{path}: not a readable CSV file: {_line(e)}") from None


@click.command("evolve", context_settings={"show_default": True})
@run_dir_option("Run directory: search index DIR/index, default questions DIR/filter/records, output DIR/evolve.")
@click.option("--rounds", default=3, type=click.IntRange(1), help="Rounds in all (a rerun may raise it).")
@click.option("--base-model", required=True, help="Checkpoint (path or Hub id) that training starts from.")
@click.option(
    "--questions",
    multiple=True,
    type=click.Path(path_type=Path),
    help="QA records or SimpleQA-style JSONL (repeatable; default DIR/filter/records).",
)
@click.option(
    "--held-out",
    default="0.2",
    metavar="FRACTION|FILE",
    help="Fraction of the questions held out for Pass@1 (fixed by hash of their ids), or a benchmark file.",
)
@rollouts_option(aliases=(), help="Rollouts per training question per round.")
@click.option("--search", metavar="ENGINE", help=SEARCH_HELP + "  [default: bm25:DIR/index]")
@judge_options
@click.option(
    "--serve",
    default="local",
    type=click.Choice(list(SERVE)),
    help="How rounds >= 1 reach the trained model: local (CPU, in process), vllm (in process, GPU), "
    "endpoint (a server you start on each checkpoint, at --serve-api-base).",
)
@click.option("--serve-api-base", default=None, help="Endpoint serving the checkpoints (--serve endpoint).")
@click.option(
    "--init",
    default="base",
    type=click.Choice(["base", "previous"]),
    help="Train each round from --base-model, or from the last round's checkpoint.",
)
@click.option("--accumulate/--no-accumulate", default=True, help="Train on all rounds' kept rows, or this one's.")
@click.option("--sft-args", default="", help='Extra TRL arguments for training/sft.py, e.g. "--num_train_epochs 2".')
@click.option(
    "--launcher",
    default="",
    help='Runs the SFT module, e.g. "accelerate launch --num_processes 8" (default: this Python).',
)
@option(
    "--eval-rollouts", "eval_k", aliases=("--eval-k",), default=3, type=click.IntRange(1),
    help="Rollouts per held-out question (Pass@1: their mean).",
)  # fmt: skip
@agent_options
@llm_options
def evolve_cmd(run_dir: Path, rounds: int, restart: bool, **o) -> None:
    """Self-evolution: each round samples with the current model, keeps what the funnel passes, fine-tunes on it
    and measures Pass@1 on held-out questions; round 0 samples with --model (the starting policy or a teacher).

    A killed run resumes at its first unfinished step when started again with the same options (--rounds may
    grow; --sft-args, --launcher, endpoints and worker options may change). The state is in DIR/evolve/state.json,
    the per-round table in DIR/evolve/rounds.md. With --serve endpoint, evolve stops when a new checkpoint is not
    served yet, naming it: serve it at --serve-api-base and rerun. --restart discards DIR/evolve.
    """
    from ..schemas import RecordError
    from ..schemas.runlog import log_command

    questions = o.pop("questions") or (run_dir / "filter" / "records",)
    search = o.pop("search") or f"bm25:{run_dir / 'index'}"
    require_records(questions, "question", "questions", "run `wdtk filter --dir DIR` first or pass --questions")
    require_index(search)
    search = f"bm25:{Path(search[5:]).resolve()}" if search.startswith("bm25:") else search  # the index, wherever
    held_out = o.pop("held_out")
    if not is_fraction(held_out):
        if not Path(held_out).is_file():
            raise click.ClickException(f"--held-out {held_out}: neither a fraction in (0, 1) nor a file")
        check_benchmark(Path(held_out))
    if o["serve"] == "endpoint" and not o["serve_api_base"]:
        raise click.ClickException("--serve endpoint needs --serve-api-base URL (where you serve each checkpoint)")
    o["model"] = prepare_model(o["model"], o["api_base"])
    o["judge_model"] = prepare_judge(o["judge_model"], o["judge_api_base"])
    agent = agent_config(o)
    endpoints = {k: o.pop(k) for k in ("api_base", "judge_api_base", "serve_api_base")}
    sft = (o.pop("launcher"), o.pop("sft_args"))
    llm_opts = {k: o.pop(k) for k in RUN_DEFAULTS}  # how each step's stage runs, not what the run is
    held_out = held_out if is_fraction(held_out) else str(Path(held_out).resolve())
    questions = tuple(str(Path(q).resolve()) for q in questions)
    o |= {"questions": questions, "held_out": held_out, "search": search, "agent": agent}
    cfg = EvolveConfig(judge=o.pop("judge_model"), **o)
    if restart:
        shutil.rmtree(run_dir / "evolve", ignore_errors=True)
    evolution = Evolution(run_dir, cfg, endpoints, llm_opts, sft, echo=click.echo)
    log_command(run_dir)
    try:
        evolution.run(rounds)
    except (RecordError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"\n{markdown(evolution.state)}\nstate -> {evolution.path}; table -> {evolution.root / 'rounds.md'}")
