"""The Python API, for notebooks: a whole recipe (`wdtk.run`, `wdtk.plan`) or one stage at a time (`wdtk.stages`).

    import wdtk
    summaries = wdtk.run("recipes/openai-site.yaml", overrides={"synth.max_groups": 50})
    wdtk.plan("recipes/openai-site.yaml")["estimate"]["to_spend"]      # calls, tokens, cost; nothing spent
    wdtk.stages.sample("runs/x", rollouts=2, model="openai:policy", api_base="http://127.0.0.1:8000/v1")

A stage function takes the run directory and the options of the recipe's section for that stage (the stage
command's options, underscored), checks them as a recipe would, checks the models, runs what the command runs, and
returns the stage's summary.
"""

from __future__ import annotations

from pathlib import Path

from .recipe import load, resolve
from .runner import Step, preflight, run_recipe
from .stages import BY_NAME

__all__ = ["audit", "crawl", "export", "filter", "funnel", "plan", "push", "report", "run", "sample", "site", "synth"]


def run(recipe: str | Path | dict, *, dir: str | Path | None = None, overrides: dict | list[str] = (),
        restart: bool = False, dry_run: bool = False, history: tuple = ()) -> dict:  # fmt: skip
    """Run a recipe (a YAML file or a dict): {stage: summary}. `overrides` as --set: {"sample.rollouts": 2} or
    ["sample.rollouts=2"]; `dir` as --dir. A rerun resumes; a changed option reruns what it changes. The run's
    command log (and so its dataset card) records the call as the `wdtk run` command line that does the same."""
    from ..schemas.runlog import log_command

    loaded = _load(recipe, dir, overrides)
    argv = ["wdtk", "run", loaded.source, *(f"--set={v}" for v in loaded.overrides.values())]

    def log(run_dir: Path) -> None:
        log_command(run_dir, argv)

    return run_recipe(loaded, restart=restart, dry_run=dry_run, history=history, log=log)


def plan(recipe: str | Path | dict, *, dir: str | Path | None = None, overrides: dict | list[str] = (),
         history: tuple = ()) -> dict:  # fmt: skip
    """The dry run, printing nothing: {"plan": [a step per stage], "estimate": {"rows", "to_spend", "whole_run"}}."""
    return run_recipe(_load(recipe, dir, overrides), dry_run=True, history=history, say=lambda line: None)


def _load(recipe, dir, overrides):
    items = list(overrides.items()) if isinstance(overrides, dict) else list(overrides)
    return load(recipe, items + ([("dir", str(dir))] if dir else []))


def _call(name: str, run_dir: str | Path, restart: bool, options: dict) -> dict:
    resolved = resolve(load({"dir": str(run_dir), name: {**options, "enabled": True}}))
    preflight(resolved, [Step(name, "run", "")])
    options = {k: v for k, v in resolved[name].items() if k != "enabled"}
    return BY_NAME[name].run(Path(run_dir), restart, **options)


def site(run_dir: str | Path, *, restart: bool = False, **options) -> dict:
    """Build the generated site in DIR/site (pages, seed, seed_questions)."""
    return _call("site", run_dir, restart, options)


def crawl(run_dir: str | Path, *, restart: bool = False, **options) -> dict:
    """Crawl roots (none: DIR/site, served) into DIR/crawl, as `wdtk crawl`."""
    return _call("crawl", run_dir, restart, options)


def synth(run_dir: str | Path, *, restart: bool = False, **options) -> dict:
    """CRAWLQA and E2HQA (GRAPHQA too when `methods` names it) into DIR/synth, as `wdtk synth`."""
    return _call("synth", run_dir, restart, options)


def filter(run_dir: str | Path, *, restart: bool = False, **options) -> dict:  # noqa: A001 (the stage's name)
    """Filter DIR/synth's QA into DIR/filter, as `wdtk filter` (with search or difficulty: its LLM gates too)."""
    return _call("filter", run_dir, restart, options)


def sample(run_dir: str | Path, *, restart: bool = False, **options) -> dict:
    """Rollouts for DIR/filter's QA into DIR/sample, as `wdtk sample`."""
    return _call("sample", run_dir, restart, options)


def funnel(run_dir: str | Path, *, restart: bool = False, **options) -> dict:
    """The funnel over DIR/sample into DIR/funnel, as `wdtk funnel` (judge: a model, or 'none')."""
    return _call("funnel", run_dir, restart, options)


def export(run_dir: str | Path, *, restart: bool = False) -> dict:
    """The training sets from DIR/funnel into DIR/export, as `wdtk export`."""
    return _call("export", run_dir, restart, {})


def report(run_dir: str | Path, *, restart: bool = False) -> dict:
    """DIR/report.html, as `wdtk report`."""
    return _call("report", run_dir, restart, {})


def audit(run_dir: str | Path, *, restart: bool = False, **options) -> dict:
    """The run against the generated site's truth into DIR/audit, as `wdtk audit`."""
    return _call("audit", run_dir, restart, options)


def push(run_dir: str | Path, *, restart: bool = False, **options) -> dict:
    """The run as a dataset repo (license required; repo_id uploads, else out or DIR/hub), as `wdtk push`."""
    return _call("push", run_dir, restart, options)
