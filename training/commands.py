"""`wdtk push`, `wdtk eval` and `wdtk evolve`: click glue over publishing, evaluation and self-evolution."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from ..filters.judge import Judge, JudgeConfig, judge_client
from ..schemas import RecordError
from ..synth.options import (
    agent_config,
    agent_options,
    judge_options,
    llm_options,
    out_option,
    require_index,
    require_inputs,
    run_dir_option,
    run_with_progress,
    stage_backends,
)
from . import evaluate
from .evolve import SERVE, Evolution, EvolveConfig, is_fraction, markdown
from .push import build_repo, push


@click.command("push", context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--repo-id", metavar="ORG/NAME", help="Dataset repo on the Hub to create if needed and upload to.")
@click.option(
    "--local-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write the repo tree here (the very files uploaded); without --repo-id, only write it.",
)
@click.option("--private", is_flag=True, help="Make the repo private (an existing public one too) before uploading.")
@click.option("--shard-size", default=10_000, type=click.IntRange(1), help="Rows per Parquet file.")
@click.option("--license", default="unknown", help="License id for the card, e.g. cc-by-4.0.")
@click.option("--revision", default=None, help="Branch to commit to, created if missing (default: main).")
@click.option("--commit-message", default=None, help="Commit message (default: names the run and wdtk version).")
def push_cmd(run_dir, repo_id, local_dir, private, revision, commit_message, **card) -> None:
    """Publish RUN_DIR as one Hugging Face dataset repo: configs qa, trajectories, sft, rl as Parquet, and a card.

    The token comes from HF_TOKEN or `hf auth login`, never from the command line (shell history), and is written
    nowhere. --local-dir alone writes the same tree to disk and uploads nothing; `datasets.load_dataset(DIR, CONFIG)`
    reads it. Configs with no records are left out with a warning.
    """
    if not repo_id and not local_dir:
        raise click.UsageError("give --repo-id to upload, --local-dir to write the tree to disk, or both")
    try:
        from huggingface_hub.errors import HfHubHTTPError, HFValidationError
    except ImportError:
        raise click.ClickException("wdtk push needs huggingface_hub: pip install 'wdtk[train]'") from None
    try:
        if repo_id:
            summary = push(run_dir, repo_id, None, private, local_dir=local_dir, revision=revision,
                           commit_message=commit_message, **card)  # fmt: skip
        else:
            summary = build_repo(run_dir, local_dir, **card)
    except (RecordError, OSError, HFValidationError) as e:  # OSError: FileNotFound, FileExists, Permission
        raise click.ClickException(str(e)) from None
    except HfHubHTTPError as e:
        raise click.ClickException(f"the Hub refused the push to {repo_id}: {e}") from None
    for warning in summary["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    for name, c in summary["configs"].items():
        json_columns = f"; JSON columns: {', '.join(c['json_columns'])}" if c["json_columns"] else ""
        click.echo(f"  {name}: {c['rows']} rows in {c['files']} Parquet file(s){json_columns}")
    if local_dir:
        click.echo(f"wrote the repo tree to {local_dir}")
    if repo_id:
        click.echo(f"pushed to https://huggingface.co/datasets/{repo_id} ({summary['commit_url'] or 'committed'})")


_OUT = "Output: questions.jsonl, rollouts/, judgements/, results.json, results.md."


@click.command("eval", context_settings={"show_default": True})
@click.argument("benchmark", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@out_option(_OUT)
@click.option("--k", "k", default=3, type=click.IntRange(1), help="Rollouts per question.")
@click.option("--search", required=True, metavar="ENGINE", help="bm25:INDEX_DIR, serper:URL or searxng:URL.")
@judge_options
@agent_options
@click.option("--limit", default=None, type=click.IntRange(1), help="Evaluate at most this many questions.")
@llm_options
def eval_cmd(benchmark: Path, out_dir: Path, k: int, search: str, limit: int | None, restart: bool, **opts) -> None:
    """Evaluate an agent (any --model, e.g. a served fine-tune) on BENCHMARK: K rollouts per question, judged.

    BENCHMARK: GAIA, WebWalkerQA or BrowseComp (rows with a canary are decrypted) as JSONL, Parquet or CSV, or
    plain question/answer JSONL; the layout is detected per row. GAIA tasks with attached files are skipped: files
    are out of scope. Reports Pass@1, Pass@K, Cons@K (majority answer correct), the invalid-action rate, budget
    exhaustion and actions per rollout, overall and by level, type, difficulty or topic, in OUT/results.json and
    OUT/results.md. A killed run resumes its rollouts when started again.
    """
    from ..schemas.runlog import log_command

    require_index(search)
    cfg = evaluate.EvalConfig(k=k, agent=agent_config(opts), limit=limit)
    log_command(out_dir)
    judge_model, judge_api_base, f1_threshold = (
        opts.pop(n) for n in ("judge_model", "judge_api_base", "f1_threshold")
    )
    backends, run_opts = stage_backends(out_dir, opts.pop("model"), opts.pop("api_base"), search, **opts)
    judge = Judge(
        judge_client(judge_model, judge_api_base, out_dir / "llm_cache.sqlite"), JudgeConfig(f1_threshold=f1_threshold)
    )
    run = lambda p: evaluate.run(benchmark, out_dir, cfg, backends, judge, run_opts, p)  # noqa: E731
    results = run_with_progress("eval", out_dir / "rollouts", restart, run, report=lambda *_: None)
    click.echo(f"\n{evaluate.markdown(results)}\nresults -> {out_dir / 'results.json'}, {out_dir / 'results.md'}")


@click.command("evolve", context_settings={"show_default": True})
@run_dir_option("Run directory: search index DIR/index, default questions DIR/filter/records, output DIR/evolve.")
@click.option("--rounds", default=3, type=click.IntRange(1), help="Rounds in all (a rerun may raise it).")
@click.option("--base-model", required=True, help="Checkpoint (path or Hub id) that training starts from.")
@click.option(
    "--questions",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="QA records or SimpleQA-style JSONL (repeatable; default DIR/filter/records).",
)
@click.option(
    "--held-out",
    default="0.2",
    metavar="FRACTION|FILE",
    help="Fraction of the questions held out for Pass@1 (fixed by hash of their ids), or a benchmark file.",
)
@click.option("--rollouts", default=3, type=click.IntRange(1), help="Rollouts per training question per round.")
@click.option("--search", metavar="ENGINE", help="bm25:INDEX_DIR, serper:URL or searxng:URL (default bm25:DIR/index).")
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
@click.option("--eval-k", default=3, type=click.IntRange(1), help="Rollouts per held-out question (Pass@1: mean).")
@agent_options
@llm_options
# fmt: on
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
    require_inputs(questions, "questions", "run `wdtk filter` first or pass --questions")
    require_index(search)
    search = f"bm25:{Path(search[5:]).resolve()}" if search.startswith("bm25:") else search  # the index, wherever
    held_out = o.pop("held_out")
    if not is_fraction(held_out) and not Path(held_out).is_file():
        raise click.ClickException(f"--held-out {held_out}: neither a fraction in (0, 1) nor a file")
    if o["serve"] == "endpoint" and not o["serve_api_base"]:
        raise click.ClickException("--serve endpoint needs --serve-api-base URL (where you serve each checkpoint)")
    agent = agent_config(o)
    endpoints = {k: o.pop(k) for k in ("api_base", "judge_api_base", "serve_api_base")}
    sft = (o.pop("launcher"), o.pop("sft_args"))
    llm_opts = {k: o.pop(k) for k in ("concurrency", "rpm", "tpm", "workers", "scheduler", "partition_size")}
    llm_opts["structured"] = o.pop("structured")
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
