"""`wdtk synth`, `wdtk index` and `wdtk sample`: click glue over the synthesis stages (registered by wdtk.cli)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from .options import (
    SEARCH_HELP,
    agent_config,
    agent_options,
    difficulty_config,
    difficulty_options,
    llm_options,
    max_groups_option,
    max_questions_option,
    out_option,
    prepare_model,
    prepare_solver,
    require_index,
    require_inputs,
    require_records,
    rollouts_option,
    run_dir_option,
    run_with_progress,
    stage_backends,
)

PAGES_HINT = "run `wdtk crawl URL -o DIR/crawl` (or `wdtk demo`) first"


@click.group(invoke_without_command=True, context_settings={"show_default": True})
@run_dir_option("Working directory: reads crawl/pages and index/, writes synth/.")
@click.option("--rewrites", default=3, type=click.IntRange(0), help="E2HQA rounds on top of CRAWLQA (0: none).")
@max_groups_option()
@click.option("--graphqa", is_flag=True, help="Also run graph-walk synthesis (see `wdtk synth graphqa`).")
@click.option(
    "--hops", default="3..6", callback=lambda c, p, v: hops_range(v), metavar="MIN..MAX", help="graphqa walks."
)
@click.option("--max-walks", default=None, type=click.IntRange(1), help="Use at most this many graphqa walks.")
@difficulty_options
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
    graphqa: bool,
    hops: tuple[int, int],
    max_walks: int | None,
    **opts,
) -> None:
    """Synthesise QA: CRAWLQA on the crawled pages, then E2HQA rounds on its output.

    `wdtk synth --rewrites 3` runs both on DIR (default runs/demo, as `wdtk demo` leaves it);
    `wdtk synth crawlqa ...` and `wdtk synth e2hqa ...` run one method on any input. A killed
    run resumes where it stopped when started again; no completed LLM call is paid twice.

    With --difficulty, a solver tries every question each method would keep, closed-book (and with the agent
    for --agent-attempts); one it answers is rejected as too_easy. CRAWLQA's too-easy questions still go to
    E2HQA as seeds: making them harder is what E2HQA is for.
    """
    if ctx.invoked_subcommand:
        return
    from ..schemas.runlog import log_command

    require_records(
        [run_dir / "crawl" / "pages"],
        "page",
        "crawled pages",
        PAGES_HINT,
        allow_incomplete=opts.get("allow_incomplete", False),
    )
    gate = difficulty_config(opts)
    model = prepare_model(model, api_base)
    gate = prepare_solver(gate)
    log_command(run_dir)
    synthesise(run_dir, rewrites, max_groups, model, api_base, restart=restart, difficulty=gate, **opts)
    if graphqa:
        graphqa_step(run_dir, hops, max_walks, model, api_base, restart, difficulty=gate, **opts)


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
    difficulty=None,
    **opts,
) -> dict:
    """CRAWLQA on run_dir/crawl/pages, then E2HQA rounds on its records plus `extra_seeds` (SimpleQA-style rows).

    What `wdtk synth` and the demo run; outputs under run_dir/synth/.
    """
    from ..schemas import read_records, write_records
    from . import crawlqa, e2hqa

    pages = run_dir / "crawl" / "pages"
    require_inputs([pages], "crawled pages", f"run `wdtk demo` or `wdtk crawl URL -o {run_dir / 'crawl'}`")
    index = _ensure_index(pages, run_dir / "index")
    backends, run_opts = stage_backends(run_dir, model, api_base, f"bm25:{index}", **opts)
    out = run_dir / "synth"
    cfg = crawlqa_cfg or crawlqa.CrawlQAConfig()
    summaries = {
        "crawlqa": run_with_progress(
            "crawlqa",
            out / "crawlqa",
            restart,
            lambda p: crawlqa.run(pages, out / "crawlqa", cfg, backends, run_opts, max_groups, p, difficulty),
        )
    }
    if rewrites:
        seeds = out / "e2hqa_seeds.jsonl"
        easy = (r["record"] for r in read_records(out / "crawlqa" / "rejects") if r.get("reason") == "too_easy")
        write_records([*read_records(out / "crawlqa" / "records"), *easy, *extra_seeds], seeds)
        e2cfg = e2hqa_cfg or e2hqa.E2HQAConfig(rewrites=rewrites)
        summaries["e2hqa"] = run_with_progress(
            "e2hqa",
            out / "e2hqa",
            restart,
            lambda p: e2hqa.run(seeds, out / "e2hqa", e2cfg, backends, run_opts, None, p, difficulty),
        )
    return summaries


_stage_out = out_option("Output: records/, rejects/, summary.json, resumable state.", required=True)


@synth.command("crawlqa")
@click.argument("pages", type=click.Path(path_type=Path))
@_stage_out
@click.option("--types", default="COUNT,MULTI-HOP,INTERSECTION", help="Comma-separated question types to ask for.")
@click.option("--per-type", default=1, type=click.IntRange(1), help="Questions per type per page group.")
@max_groups_option()
@difficulty_options
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
    from . import crawlqa

    require_records([pages], "page", "page records", PAGES_HINT, allow_incomplete=opts["allow_incomplete"])
    gate = difficulty_config(opts)
    if gate and gate.agent_attempts:
        raise click.UsageError("--agent-attempts needs a search engine: use `wdtk synth` (its index) or wdtk filter")
    model = prepare_model(model, api_base)
    gate = prepare_solver(gate)
    wanted = tuple(t.strip().upper() for t in types.split(",") if t.strip())
    cfg = crawlqa.CrawlQAConfig(types=wanted, per_type=per_type)
    backends, run_opts = stage_backends(out_dir, model, api_base, None, **opts)
    run_with_progress(
        "crawlqa",
        out_dir,
        restart,
        lambda p: crawlqa.run(pages, out_dir, cfg, backends, run_opts, max_groups, p, gate),
    )


@synth.command("e2hqa")
@click.argument("seeds", type=click.Path(path_type=Path))
@_stage_out
@click.option(
    "--search",
    "search",
    required=True,
    metavar="ENGINE",
    help=SEARCH_HELP,
)
@click.option("--rewrites", default=3, type=click.IntRange(1), help="Rounds of entity rewriting per question.")
@max_questions_option("seeds")
@difficulty_options
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
    from . import e2hqa

    require_records(
        [seeds],
        "question",
        "seed questions",
        "JSONL rows with a question and an answer",
        allow_incomplete=opts["allow_incomplete"],
    )
    require_index(search)
    gate = difficulty_config(opts)
    model = prepare_model(model, api_base)
    gate = prepare_solver(gate)
    backends, run_opts = stage_backends(out_dir, model, api_base, search, **opts)
    run_with_progress(
        "e2hqa",
        out_dir,
        restart,
        lambda p: e2hqa.run(seeds, out_dir, e2hqa.E2HQAConfig(rewrites=rewrites), backends, run_opts, limit, p, gate),
    )


# --- graph-walk synthesis (issue 15) -------------------------------------------------------------------------------


def hops_range(text: str) -> tuple[int, int]:
    """Walk hops from "3..6" (or "4") as (min, max)."""
    from .linkgraph import parse_hops

    try:
        return parse_hops(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def graphqa_step(
    run_dir: Path,
    hops: tuple[int, int],
    max_walks,
    model,
    api_base,
    restart=False,
    cfg=None,
    difficulty=None,
    **opts,
) -> dict:
    """graphqa on run_dir/crawl/pages into run_dir/synth/graphqa, its uniqueness check searching run_dir/index;
    `cfg` (a GraphQAConfig, default the stage's) walks `hops` links; `difficulty` gates what it keeps."""
    from dataclasses import replace

    from . import graphqa

    pages = run_dir / "crawl" / "pages"
    index = _ensure_index(pages, run_dir / "index")
    backends, run_opts = stage_backends(run_dir, model, api_base, f"bm25:{index}", **opts)
    cfg = cfg or graphqa.GraphQAConfig()
    cfg = replace(cfg, walk=replace(cfg.walk, min_hops=hops[0], max_hops=hops[1]))
    out = run_dir / "synth" / "graphqa"
    return run_with_progress(
        "graphqa", out, restart, lambda p: graphqa.run(pages, out, cfg, backends, run_opts, max_walks, p, difficulty)
    )


@synth.command("graphqa")
@click.argument("pages", type=click.Path(exists=True, path_type=Path))
@_stage_out
@click.option(
    "--hops", default="3..6", callback=lambda c, p, v: hops_range(v), metavar="MIN..MAX", help="Links a walk follows."
)
@click.option("--max-walks", default=None, type=click.IntRange(1), help="Use at most this many walks.")
@click.option("--walks-per-page", default=1, type=click.IntRange(1), help="Walks started from each page.")
@click.option("--seed", default=0, type=int, help="Seed of the walks.")
@click.option(
    "--search",
    metavar="ENGINE",
    help="Engine the uniqueness check searches (default: a BM25 index of PAGES in OUT/index).",
)
@click.option("--no-uniqueness", is_flag=True, help="Keep questions without searching for a second answer.")
@difficulty_options
@llm_options
def graphqa_cmd(
    pages: Path,
    out_dir: Path,
    hops: tuple[int, int],
    max_walks: int | None,
    walks_per_page: int,
    seed: int,
    search: str | None,
    no_uniqueness: bool,
    model: str,
    api_base: str | None,
    restart: bool,
    **opts,
) -> None:
    """Graph-walk synthesis: hard questions composed along random walks over the crawl's links (PAGES: page records).

    Each walk's pages have their facts extracted as claims; the LLM composes one question whose answer is on the
    walk's last page, names and numbers blurred; it is kept when every claim is on its page, the answer is not in
    the question, search finds no second answer, and (with --difficulty) the solver fails it. A killed run resumes
    where it stopped when started again.
    """
    from . import graphqa
    from .linkgraph import WalkConfig

    require_records([pages], "page", "page records", PAGES_HINT, allow_incomplete=opts["allow_incomplete"])
    gate = difficulty_config(opts)
    # the uniqueness check and the gate's agent search the same engine: --search, else an index of PAGES
    engine = search or (None if no_uniqueness and not (gate and gate.agent_attempts) else f"bm25:{out_dir / 'index'}")
    if search:
        require_index(search)
    model = prepare_model(model, api_base)
    gate = prepare_solver(gate)
    walk = WalkConfig(min_hops=hops[0], max_hops=hops[1], walks_per_page=walks_per_page, seed=seed)
    cfg = graphqa.GraphQAConfig(walk=walk, rivals=None if no_uniqueness else graphqa.RivalConfig())
    backends, run_opts = stage_backends(out_dir, model, api_base, engine, **opts)

    def call(progress):
        if engine and not search:  # built here: --restart empties OUT first
            _ensure_index(pages, out_dir / "index")
        return graphqa.run(pages, out_dir, cfg, backends, run_opts, max_walks, progress, gate)

    run_with_progress("graphqa", out_dir, restart, call)


def _ensure_index(pages: Path, index_dir: Path) -> Path:
    """The BM25 index of `pages`, (re)built when missing or when the page shards changed since it was built."""
    import hashlib
    import json

    files = sorted(pages.rglob("*")) if pages.is_dir() else [pages]
    fingerprint = hashlib.sha256(json.dumps([(f.name, f.stat().st_size) for f in files if f.is_file()]).encode())
    stamp = index_dir / ".built_from"
    if not stamp.exists() or stamp.read_text() != fingerprint.hexdigest():
        from .search.bm25 import build_index

        click.echo(f"indexing {pages} -> {index_dir}")
        shutil.rmtree(index_dir, ignore_errors=True)
        build_index(pages, index_dir)
        stamp.write_text(fingerprint.hexdigest())
    return index_dir


@click.command(context_settings={"show_default": True})
@click.argument("pages", required=False, type=click.Path(path_type=Path))
@run_dir_option("Run directory: default input DIR/crawl/pages, output DIR/index.")
@out_option("Index directory (the offline search engine for E2HQA, visit and sampling).  [default: DIR/index]")
def index(pages: Path | None, run_dir: Path, out_dir: Path | None) -> None:
    """Build a persistent local BM25 index over page records (PAGES: a shard directory or file; default
    DIR/crawl/pages, as `wdtk crawl -o DIR/crawl` leaves them)."""
    from ..schemas import WdtkError
    from .search.bm25 import build_index

    pages = pages or run_dir / "crawl" / "pages"
    for inner, what in ((pages / "crawl" / "pages", "a run directory"), (pages / "pages", "a crawl's output")):
        if inner.is_dir():  # its JSON files (commands.jsonl, crawl_summary.json) are not pages
            raise WdtkError(f"{pages} is {what}: its page records are in {inner}; name that, or use --dir")
    require_records([pages], "page", "page records", PAGES_HINT)
    out_dir = out_dir or run_dir / "index"
    try:
        summary = build_index(pages, out_dir)
    except FileExistsError as e:
        raise WdtkError(str(e)) from None
    click.echo(f"indexed {summary.get('documents', summary)} pages -> {out_dir}")


@click.command("sample", context_settings={"show_default": True})
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path))
@run_dir_option("Run directory: default input DIR/filter/records, search DIR/index, output DIR/sample.")
@out_option("Output directory.  [default: DIR/sample]")
@click.option("--search", metavar="ENGINE", help=SEARCH_HELP + "  [default: bm25:DIR/index]")
@rollouts_option(aliases=())
@agent_options
@max_questions_option()
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
    from ..schemas.runlog import log_command
    from .sample import SampleConfig, run

    sources = sources or (run_dir / "filter" / "records",)
    hint = "run `wdtk filter --dir DIR` first or name the QA files"
    require_records(sources, "question", "QA records", hint, allow_incomplete=opts["allow_incomplete"])
    search = search or f"bm25:{run_dir / 'index'}"
    require_index(search)
    model = prepare_model(model, api_base)
    out_dir = out_dir or run_dir / "sample"
    log_command(run_dir)
    agent = agent_config(opts)
    backends, run_opts = stage_backends(run_dir, model, api_base, search, **opts)
    cfg = SampleConfig(rollouts=rollouts, agent=agent)
    run_with_progress("sample", out_dir, restart, lambda p: run(sources, out_dir, cfg, backends, run_opts, limit, p))
