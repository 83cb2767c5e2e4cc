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
    rollouts_option,
    run_dir_option,
)

# --help lists the commands in the order a run uses them, not alphabetically
ORDER = ("demo", "run", "site", "crawl", "index", "synth", "filter", "sample", "funnel", "export", "report", "audit",
         "push", "eval", "evolve", "validate")  # fmt: skip


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
      WDTK_SOLVER_MODEL, WDTK_SOLVER_API_BASE   the difficulty gate's solver (wdtk filter --difficulty)
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
@click.option("--print-recipe", is_flag=True, help="Print the recipe these options make (recipes/demo.yaml) and stop.")
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
    print_recipe: bool,
) -> None:
    """Run the whole pipeline offline on a generated site, and write RUN/report.html.

    Builds a site, serves it on 127.0.0.1, crawls and indexes it, synthesises QA (CRAWLQA, E2HQA), filters the
    QA, samples ReAct trajectories, runs the funnel (validity, judge, quality), exports the SFT and RL sets, and
    writes the report. With the embedded model everything runs on the CPU and little survives; point --model at a
    real LLM for real data. It is the recipe recipes/demo.yaml with these options' values (--print-recipe shows
    it): a rerun resumes, and a changed option reruns only what it changes.
    """
    from .schemas.runlog import log_command
    from .training.recipe import demo_recipe
    from .training.runner import run_recipe

    params = dict(click.get_current_context().params)
    params.pop("print_recipe")
    recipe = demo_recipe(params)
    if print_recipe:
        click.echo(recipe.text, nl=False)
        return
    started = time.monotonic()
    log_command(run_dir)
    summaries = run_recipe(recipe, say=click.echo)
    (run_dir / "demo_summary.json").write_text(json.dumps(summaries, indent=2, default=str))
    report = summaries.get("report", {}).get("path", run_dir / "report.html")
    click.echo(f"done in {time.monotonic() - started:.1f}s; report in {report}")


@main.command("run")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dir", "run_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="The run directory.  [default: the recipe's `dir`, else runs/RECIPE_NAME]")  # fmt: skip
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="STAGE.OPTION=VALUE",
    help="Override one option of the recipe, VALUE read as YAML (repeatable): --set sample.rollouts=2.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and the LLM estimate: run nothing.")
@click.option(
    "--history",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Earlier run directories whose measured averages the estimate uses (repeatable).",
)
@click.option("--restart", is_flag=True, help="Run every stage from scratch instead of resuming.")
def run_cmd(recipe: Path, run_dir: Path | None, overrides: tuple[str, ...], dry_run: bool, history: tuple[Path, ...],
            restart: bool) -> None:  # fmt: skip
    """Run a whole recipe: crawl, synth, filter, sample, funnel, export, report (audit, push) from one YAML file.

    Each stage's options sit under its name, spelled as its command's (`wdtk sample --max-questions` is
    sample.max_questions); see recipes/ and schemas/recipe.schema.json. Secrets only from the environment:
    OPENAI_API_KEY and other provider keys, SERPER_API_KEY, HF_TOKEN. Models not in the recipe come from
    WDTK_MODEL, WDTK_API_BASE, WDTK_JUDGE_MODEL, WDTK_JUDGE_API_BASE, WDTK_SOLVER_MODEL and WDTK_SOLVER_API_BASE,
    as for the stage commands (a judge left to the embedded model is exact match: its verdicts are at chance).
    A rerun resumes; a changed option reruns its stage and what depends on it, and says so. The resolved recipe
    (every option, defaults included) is written to DIR/recipe.yaml and goes into the dataset card.
    """
    from .schemas.runlog import log_command
    from .training.recipe import load
    from .training.runner import run_recipe

    started = time.monotonic()
    loaded = load(recipe, [*overrides, *([f"dir={json.dumps(str(run_dir))}"] if run_dir else [])])
    run_recipe(loaded, restart=restart, dry_run=dry_run, history=history, say=click.echo, log=log_command)
    if not dry_run:
        click.echo(f"done in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
