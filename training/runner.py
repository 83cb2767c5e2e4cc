"""Running a recipe: the plan (what each stage will do, and why), the run's state, preflight, the run itself.

A run is resumable as its stages are: DIR/recipe_state.json holds, per stage, a fingerprint of its options (less
RUNTIME ones) and of the stages it reads, and whether it finished. On a rerun a finished stage with the same
fingerprint is done; a stopped one resumes (the stage's own resume: no finished LLM call is paid twice); one whose
options changed reruns from scratch, and so does every stage that reads it, each saying why.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__
from ..schemas import WdtkError
from .recipe import Recipe, dump, resolve
from .stages import BY_NAME, DESCRIBE, RUNTIME, STAGES, Skipped

STATE = "recipe_state.json"


@dataclass
class Step:
    """What the run will do with one stage: off, done, run (first time), resume, or rerun (from scratch), and why."""

    name: str
    action: str
    why: str
    fingerprint: str = ""
    options: dict | None = None

    @property
    def todo(self) -> bool:
        return self.action in ("run", "resume", "rerun")


def read_state(run_dir: Path) -> dict:
    """{stage: its record} from DIR/recipe_state.json ({} for a new run)."""
    path = run_dir / STATE
    try:
        return json.loads(path.read_text(encoding="utf-8"))["stages"] if path.is_file() else {}
    except (ValueError, KeyError) as exc:
        raise WdtkError(f"{path} is unreadable ({exc}): delete it to run every stage again") from None


def _write_state(run_dir: Path, state: dict) -> None:
    tmp = run_dir / f".{STATE}.tmp"
    tmp.write_text(json.dumps({"wdtk_version": __version__, "stages": state}, indent=1), encoding="utf-8")
    os.replace(tmp, run_dir / STATE)


def plan(resolved: dict, state: dict, restart: bool = False) -> list[Step]:
    """One Step per stage, in order."""
    run_dir, prints, steps = Path(resolved["dir"]), {}, []
    for spec in STAGES:
        opts = resolved[spec.name]
        if not opts["enabled"]:
            steps.append(Step(spec.name, "off", "off in the recipe"))
            continue
        upstream = [d for d in (*spec.needs, *spec.after) if d in prints]
        kept = {k: v for k, v in opts.items() if k not in RUNTIME and k != "enabled"}
        kept = json.loads(json.dumps(kept).replace(f"{run_dir}/", "DIR/"))  # a moved run directory is the same run
        prints[spec.name] = hashlib.sha256(
            json.dumps([spec.name, kept, [prints[d] for d in upstream]], sort_keys=True).encode()
        ).hexdigest()[:16]
        step = Step(spec.name, *_action(spec, kept, prints[spec.name], state.get(spec.name), run_dir, restart))
        if step.action == "rerun" and not _diff((state.get(spec.name) or {}).get("options", {}), kept) and not restart:
            moved = [d for d in upstream if next(s for s in steps if s.name == d).todo]
            step.why = f"{', '.join(moved)} {'rerun' if len(moved) > 1 else 'reruns'}" if moved else step.why
        step.fingerprint, step.options = prints[spec.name], kept
        steps.append(step)
    return steps


def _action(spec, kept: dict, fingerprint: str, prev: dict | None, run_dir: Path, restart: bool) -> tuple[str, str]:
    if restart:
        return "rerun", "--restart"
    if prev is None:
        return "run", "not run yet"
    if prev["fingerprint"] == fingerprint and prev.get("done"):
        gone = [o for o in spec.outputs if not (run_dir / o).exists()]
        if gone and not prev.get("skipped"):
            return "rerun", f"its output {run_dir / gone[0]} is gone"
        return "done", "done earlier"
    if prev["fingerprint"] == fingerprint:
        return "resume", "stopped before it finished: resuming"
    changed = _diff(prev.get("options", {}), kept)
    return "rerun", (f"changed: {changed}; rerunning it and what depends on it" if changed else
                     "what it reads changed since it ran")  # fmt: skip


def _diff(old: dict, new: dict) -> str:
    """'rewrites 1 -> 2, max_groups 2 -> 4' for the options that differ."""
    keys = [k for k in new if old.get(k) != new[k]] + [k for k in old if k not in new]
    return ", ".join(f"{k} {json.dumps(old.get(k))} -> {json.dumps(new.get(k))}" for k in keys[:4]) + (
        f" and {len(keys) - 4} more" if len(keys) > 4 else ""
    )


# --- running -------------------------------------------------------------------------------------------------------


def run_recipe(recipe: Recipe, *, restart: bool = False, dry_run: bool = False, history: tuple = (), say=print,
               log: Callable[[Path], None] | None = None) -> dict:  # fmt: skip
    """Run (or with dry_run only plan and estimate) a recipe; returns {stage: summary} (dry run: plan, estimate).
    `log(run_dir)` records the command in the run's log once the checks have passed."""
    resolved = resolve(recipe)
    run_dir = Path(resolved["dir"])
    steps = plan(resolved, read_state(run_dir), restart)
    if dry_run:
        from .estimate import describe, estimate

        figures = estimate(resolved, steps, [run_dir, *map(Path, history)])
        for line in describe(steps, figures, recipe.source, run_dir):
            say(line)
        return {"plan": [asdict(s) for s in steps], "estimate": figures}
    preflight(resolved, [s for s in steps if s.todo], say)
    run_dir.mkdir(parents=True, exist_ok=True)
    if log is not None:
        log(run_dir)
    (run_dir / "recipe.yaml").write_text(dump(resolved, recipe.source), encoding="utf-8")
    say(f"{recipe.source} in {run_dir} (every option resolved: {run_dir / 'recipe.yaml'})")
    summaries = _run_steps(resolved, [s for s in steps if s.action != "off"], run_dir, say)
    (run_dir / "run_summary.json").write_text(json.dumps(summaries, indent=2, default=str), encoding="utf-8")
    return summaries


def _run_steps(resolved: dict, steps: list[Step], run_dir: Path, say) -> dict:
    state, summaries, skipped = read_state(run_dir), {}, {}
    for n, step in enumerate(steps, 1):
        spec, head = BY_NAME[step.name], f"[{n}/{len(steps)}] {step.name}"
        blocked = [d for d in spec.needs if d in skipped]
        record = {"fingerprint": step.fingerprint, "options": step.options}
        if blocked:
            skipped[step.name] = f"{blocked[0]} was skipped"
            say(f"{head}: skipped: {skipped[step.name]}")
            continue
        if step.action == "done":
            summaries[step.name] = state[step.name].get("summary", {})
            if state[step.name].get("skipped"):
                skipped[step.name] = state[step.name]["skipped"]
            say(f"{head}: done earlier ({skipped.get(step.name) or _describe(step.name, summaries[step.name])})")
            continue
        say(f"{head}: {step.why}")
        state[step.name] = record | {"done": False, "started": _now()}
        _write_state(run_dir, state)
        started, options = time.monotonic(), {k: v for k, v in resolved[step.name].items() if k != "enabled"}
        try:
            summaries[step.name] = spec.run(run_dir, step.action == "rerun", **options)
        except Skipped as exc:
            skipped[step.name] = str(exc)
            state[step.name] |= {"done": True, "skipped": str(exc), "finished": _now()}
            _write_state(run_dir, state)
            say(f"  skipped: {exc}")
            continue
        seconds = round(time.monotonic() - started, 1)
        state[step.name] |= {"done": True, "summary": summaries[step.name], "seconds": seconds, "finished": _now()}
        _write_state(run_dir, state)
        say(f"  {step.name}: {_describe(step.name, summaries[step.name])} ({seconds}s)")
    return summaries


def _describe(name: str, summary: dict) -> str:
    try:
        return DESCRIBE[name](summary)
    except (KeyError, TypeError):
        return "done"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def preflight(resolved: dict, todo: list[Step], say=print) -> None:
    """Before anything runs: every model the run will call answers (a served model's name filled in), the files the
    recipe names are there, and a push has its token."""
    from ..synth.guards import check_model, resolve_model
    from ..synth.options import RUN_DEFAULTS

    checked: dict[tuple, str] = {}
    for step in todo:
        section = resolved[step.name]
        for key, endpoint in BY_NAME[step.name].called(section):
            model, api_base = section[key], section[endpoint]
            if model == "none":
                continue
            if (model, api_base) not in checked:
                name, note = resolve_model(model, api_base, f"{step.name}.{key}")
                if note:
                    say(note)
                timeout = section.get("timeout") or RUN_DEFAULTS["timeout"]  # the stage's own, as its command's ping
                check_model(name, api_base, f"{step.name}.{key}", timeout)
                checked[model, api_base] = name
            section[key] = checked[model, api_base]
    _check_files(resolved, {s.name for s in todo})


def _check_files(resolved: dict, todo: set[str]) -> None:
    run_dir = Path(resolved["dir"])
    named = [("synth", "seeds"), ("filter", "eval")]
    for stage, key in named:
        for path in resolved[stage][key] if stage in todo else []:
            if not Path(path).exists() and not Path(path).is_relative_to(run_dir):
                raise WdtkError(f"{stage}.{key}: no such file {path}")
    push = resolved["push"]
    if "push" in todo and push["repo_id"]:
        from huggingface_hub import get_token

        if not get_token():
            raise WdtkError("push.repo_id: no Hugging Face token: set HF_TOKEN (or run `hf auth login`)")
