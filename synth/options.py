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
    "timeout": 120.0,
    "max_retries": 6,
    "allow_incomplete": False,
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


class Aliased(click.Option):
    """An option that also answers to old spellings, which --help leaves out: old command lines keep working, and
    the run's command log (which takes the longest visible name) records the current one."""

    def __init__(self, *args, aliases: tuple[str, ...] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.aliases = tuple(aliases)

    def add_to_parser(self, parser, ctx: click.Context) -> None:
        visible = self.opts
        self.opts = [*visible, *self.aliases]
        try:
            super().add_to_parser(parser, ctx)
        finally:
            self.opts = visible


class Legacy(click.Argument):
    """A positional argument kept for old command lines (`wdtk report RUN`): it works, and --help shows --dir."""

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        return []


def option(*decls: str, aliases: tuple[str, ...] = (), **attrs) -> Callable:
    """click.option, plus hidden old spellings in `aliases`."""
    return click.option(*decls, cls=Aliased, aliases=aliases, **attrs)


DEFAULT_RUN = Path("runs/demo")


def run_dir_option(help: str, legacy_positional: bool = False):
    """--dir DIR: the run directory a command reads its inputs from and writes its stage into, in every command.

    `legacy_positional` also accepts it as a positional argument (hidden), as `report` and `push` once took it; the
    command gets it as `legacy_dir` and passes both to `pick_run_dir`."""
    opt = click.option("--dir", "run_dir", default=DEFAULT_RUN, type=click.Path(file_okay=False, path_type=Path),
                       help=help)  # fmt: skip
    if not legacy_positional:
        return opt
    arg = click.argument("legacy_dir", required=False, cls=Legacy, type=click.Path(file_okay=False, path_type=Path))
    return apply([arg, opt])


def pick_run_dir(run_dir: Path, legacy_dir: Path | None) -> Path:
    """The run directory of a command that also takes it positionally."""
    return legacy_dir or run_dir


def out_option(help: str, required: bool = False, aliases: tuple[str, ...] = (), dir_okay: bool = True):
    """-o/--out PATH: where a command writes its output (each command names its default under --dir)."""
    kind = click.Path(file_okay=not dir_okay, dir_okay=dir_okay, path_type=Path)
    return option("-o", "--out", "out_dir", aliases=aliases, required=required, type=kind, help=help)


def max_groups_option(default: int | None = None):
    """--max-groups N: at most N page groups for CRAWLQA (old spellings --groups)."""
    return option("--max-groups", aliases=("--groups",), default=default, type=click.IntRange(0),
                  help="Use at most this many page groups for CRAWLQA (0: none).")  # fmt: skip


def max_questions_option(what: str = "questions", default: int | None = None, minimum: int = 1):
    """--max-questions N: at most N questions (seeds, benchmark rows) in, for every command (old: --limit)."""
    return option("--max-questions", "limit", aliases=("--limit", "--questions"), default=default,
                  type=click.IntRange(minimum), help=f"Use at most this many {what}.")  # fmt: skip


def rollouts_option(default: int = 3, name: str = "--rollouts", aliases: tuple[str, ...] = ("--k",), help=None):
    """--rollouts N: trajectories per question, in every command that samples (old: eval's --k)."""
    dest = name.lstrip("-").replace("-", "_")
    return option(name, dest, aliases=aliases, default=default, type=click.IntRange(1),
                  help=help or "Trajectories per question.")  # fmt: skip


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

MODEL_HELP = (
    "LLM: 'embedded' (offline SmolLM2-135M, weak; cached under WDTK_CACHE_DIR), 'openai:NAME' with --api-base, "
    "a litellm PROVIDER/MODEL (its key from the provider's variable, e.g. ANTHROPIC_API_KEY), 'local:DIR' or "
    "'vllm:NAME'.  [default: embedded; with --api-base, the one model it serves]"
)
SEARCH_HELP = "bm25:INDEX_DIR (from `wdtk index`), serper:URL (key from SERPER_API_KEY) or searxng:URL."
STRUCTURED = click.option(
    "--structured",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    envvar="WDTK_STRUCTURED",
    show_envvar=True,
    help="Hold replies to their JSON schema and agent turns to the ReAct grammar while decoding: auto (where the "
    "backend can; a server that refuses gets plain prompts), on (always; a refusal is an error), off.",
)
MODEL = [
    click.option("--model", envvar="WDTK_MODEL", show_envvar=True, default=None, help=MODEL_HELP),
    click.option(
        "--api-base",
        envvar="WDTK_API_BASE",
        show_envvar=True,
        default=None,
        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (vLLM, SGLang, llama.cpp); its key from "
        "OPENAI_API_KEY.",
    ),
    click.option("--concurrency", default=32, type=click.IntRange(1), help="LLM requests in flight per worker."),
    click.option("--rpm", type=click.FloatRange(0, min_open=True), help="Requests-per-minute limit per worker."),
    click.option("--tpm", type=click.FloatRange(0, min_open=True), help="Tokens-per-minute limit per worker."),
    click.option(
        "--timeout",
        envvar="WDTK_TIMEOUT",
        show_envvar=True,
        default=120.0,
        type=click.FloatRange(0, min_open=True),
        help="Seconds an LLM request may take (a straggler is raced by a second copy well before).",
    ),
    click.option(
        "--max-retries",
        envvar="WDTK_MAX_RETRIES",
        show_envvar=True,
        default=6,
        type=click.IntRange(0),
        help="Retries of an LLM call after 429s, 5xx, timeouts and dropped connections.",
    ),
    STRUCTURED,
]
ALLOW_INCOMPLETE = click.option(
    "--allow-incomplete",
    is_flag=True,
    help="Read input directories whose stage did not finish (no completion marker): killed runs, on purpose.",
)
STAGE = [
    workers_option(),
    SCHEDULER,
    click.option("--partition-size", default=16, type=click.IntRange(1), help="Items per Dask task."),
    click.option("--restart", is_flag=True, help="Discard this stage's earlier output instead of resuming."),
    ALLOW_INCOMPLETE,
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


def _no_judge(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value in (None, "", "none") else value


judge_options = apply(
    [
        click.option(
            "--judge",
            "judge_model",
            default=None,
            envvar="WDTK_JUDGE_MODEL",
            show_envvar=True,
            callback=_no_judge,
            help="LLM judge (a model string as for --model); without one, or 'none': normalised exact match, then F1.",
        ),
        click.option(
            "--judge-api-base",
            envvar="WDTK_JUDGE_API_BASE",
            show_envvar=True,
            help="OpenAI-compatible endpoint of the judge.",
        ),
        click.option(
            "--f1-threshold", default=0.8, type=click.FloatRange(0, 1), help="F1 that counts as correct (no judge)."
        ),
    ]
)
"""--judge, --judge-api-base and --f1-threshold: what the funnel, `wdtk eval` and `wdtk evolve` judge answers with."""

DIFFICULTY = [
    click.option("--difficulty", is_flag=True, help="Drop questions the solver answers (too_easy)."),
    click.option(
        "--solver-model",
        envvar="WDTK_SOLVER_MODEL",
        show_envvar=True,
        help="Solver of the difficulty gate (default: --model).",
    ),
    click.option(
        "--solver-api-base",
        envvar="WDTK_SOLVER_API_BASE",
        show_envvar=True,
        help="OpenAI-compatible endpoint of the solver.",
    ),
    click.option("--attempts", default=3, type=click.IntRange(1), help="Closed-book tries per question (k)."),
    click.option("--agent-attempts", default=0, type=click.IntRange(0), help="Tries with the agent and tools."),
    click.option(
        "--max-pass", default=0.0, type=click.FloatRange(0, 1), help="Pass rate above which a question is too easy."
    ),
]
"""The difficulty gate's options (synth/difficulty.py): `wdtk synth` runs it inside each method, `wdtk filter` after
its checks."""


difficulty_options = apply(DIFFICULTY)


def difficulty_config(opts: dict):
    """The DifficultyConfig of DIFFICULTY's values, taken out of `opts` (with the judge's, where the command has
    judge_options: otherwise answers are judged by exact match, then F1); None without --difficulty."""
    from .difficulty import DifficultyConfig

    values = {k: opts.pop(k) for k in ("difficulty", "solver_model", "solver_api_base", "attempts", "agent_attempts",
                                       "max_pass")}  # fmt: skip
    if not values.pop("difficulty"):
        return None
    judge = {k: opts[k] for k in ("judge_model", "judge_api_base", "f1_threshold") if k in opts}
    return DifficultyConfig(**values, **judge)


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

    index = Path(search[5:])
    if search.startswith("bm25:") and not (index / "wdtk_index.json").exists():
        what = "no search index" if not index.exists() else "no BM25 index (no wdtk_index.json)"
        raise WdtkError(f"{what} at {index}: run `wdtk index PAGES -o {index}`")


def require_records(paths: Iterable[Path], kind: str, what: str, hint: str = "", **how) -> int:
    """Read every input record before the work starts: a wrong, empty or missing input is one line naming
    file:line:field (see `guards.check_records` for `how`)."""
    from .guards import check_records

    return check_records(paths, kind, what, hint, **how)


def prepare_model(model: str | None, api_base: str | None, option: str = "--model") -> str:
    """The model a command runs, checked before any work (see `guards`): says which model when it picked one."""
    from .guards import check_model, resolve_model
    from .llm.factory import route

    # the option's endpoint parameter: --model's api_base, --judge's judge_api_base, --solver-model's solver_api_base
    param = "api_base" if option == "--model" else option[2:].replace("-", "_").removesuffix("_model") + "_api_base"
    ctx = click.get_current_context(silent=True)
    if model and api_base and ctx and ctx.get_parameter_source(param) == click.core.ParameterSource.ENVIRONMENT:
        if route(model) in ("embedded", "local", "vllm"):  # a WDTK_API_BASE exported for other commands
            api_base = None
    model, note = resolve_model(model, api_base, option)
    if note:
        click.echo(note, err=True)
    timeout = (ctx.params.get("timeout") if ctx else None) or RUN_DEFAULTS["timeout"]  # the run's own --timeout
    check_model(model, api_base, option, timeout)
    return model


def prepare_judge(judge_model: str | None, judge_api_base: str | None) -> str | None:
    """The judge model, checked like --model; None (exact match) stays None."""
    if judge_model is None:
        return None
    return prepare_model(judge_model, judge_api_base, "--judge")


def prepare_solver(gate):
    """The difficulty gate's config with its solver checked like --model (None, the stage's model, stays None)."""
    if gate is None or not gate.solver_model:
        return gate
    from dataclasses import replace

    return replace(gate, solver_model=prepare_model(gate.solver_model, gate.solver_api_base, "--solver-model"))


# --- running a stage -----------------------------------------------------------------------------


def stage_backends(run_dir: Path, model: str, api_base: str | None, search: str | None, **opts):
    """The (Backends, RunOptions) of a stage from its command's options; options not given take RUN_DEFAULTS."""
    from .llm.factory import limits
    from .parallel import Backends, RunOptions

    opts = {**RUN_DEFAULTS, **opts}
    concurrency, timeout = limits(model, opts["concurrency"], opts["timeout"])
    backends = Backends(
        model=model,
        api_base=api_base,
        cache_path=str(run_dir / "llm_cache.sqlite"),
        search=search,
        concurrency=concurrency,
        rpm=opts["rpm"],
        tpm=opts["tpm"],
        timeout=timeout,
        max_retries=opts["max_retries"],
        structured=opts["structured"],
    )
    workers = opts["workers"]
    run_opts = RunOptions(
        partition_size=opts["partition_size"],
        scheduler=opts["scheduler"],
        allow_incomplete=opts["allow_incomplete"],
        **({} if workers is None else {"workers": workers}),
    )
    return backends, run_opts


def run_with_progress(name: str, out_dir: Path, restart: bool, call, report: Callable | None = None) -> dict:
    """Run one stage with a progress bar; `call(progress)` returns its summary, which `report` prints (default: the
    stage summary's counts and LLM usage). `progress` takes run_stage's events (inputs done of a known total,
    records, LLM calls): a bar with an ETA on a terminal, a line every few seconds on stderr otherwise. A run whose
    every item failed with one LLM error fails with it."""
    from .guards import check_outcome
    from .progress import StageProgress

    if restart:
        shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    with StageProgress(name) as progress:
        try:
            summary = call(progress)
        except ValueError as exc:  # a config the stage refuses
            raise click.ClickException(str(exc)) from None
    (report or print_stage_summary)(summary, out_dir)
    check_outcome(summary, out_dir)
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
