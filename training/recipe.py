"""A recipe: a whole run in one YAML file, read with the line of every key, checked against
schemas/recipe.schema.json and for secrets, changed by `--set STAGE.OPTION=VALUE`, then resolved: every stage's every
option written out, defaults included (the defaults are the stage commands' own, see training/stages.py).

    dir: runs/docs
    model: openai:gpt-4o-mini
    crawl: {roots: [https://docs.example.org/], max_pages: 2000}
    synth: {rewrites: 3}

A mistake is one line naming the place and the key: `recipe.yaml:12: synth.rewrites: 'three' is not of type
'integer'`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

from .. import __version__
from ..schemas import WdtkError
from ..schemas.runlog import redact
from .stages import BY_NAME, MAIN_LINE, STAGES, defaults

# a key that holds a secret: api_key, hf_token, password ... (not max_tokens)
_SECRET_KEY = re.compile(r"(^|_)(api_?key|apikey|key|token|secret|password|passwd|credentials?)(_|$)", re.I)
_IN_PROCESS = ("embedded", "local:", "vllm:")


class RecipeError(WdtkError, ValueError):
    """A recipe that cannot run, named by file:line (or the --set that made it) and key."""


@dataclass
class Recipe:
    """A recipe as written, with the line of each key and where each --set override came from."""

    data: dict
    source: str = "<recipe>"
    text: str | None = None
    lines: dict[tuple, int] = field(default_factory=dict)
    spans: dict[tuple, tuple[int, int]] = field(default_factory=dict)  # a scalar value's place in `text`
    overrides: dict[tuple, str] = field(default_factory=dict)

    def where(self, path: tuple) -> str:
        """'file:line' of the key at `path` (or its nearest parent), or the --set that set it."""
        for n in range(len(path), 0, -1):
            if path[:n] in self.overrides:
                return f"--set {self.overrides[path[:n]]}"
            if path[:n] in self.lines:
                return f"{self.source}:{self.lines[path[:n]]}"
        return self.source


# --- reading -------------------------------------------------------------------------------------------------------


def load(source: str | Path | dict, overrides: list[str] | dict = ()) -> Recipe:
    """The recipe in a YAML file (or a dict, for notebooks), with `overrides` applied, checked."""
    if isinstance(source, dict):
        recipe = Recipe(json.loads(json.dumps(source)), "<dict>")
    else:
        path = Path(source)
        if not path.is_file():
            raise RecipeError(f"no recipe at {path}" + (": the shipped ones are in recipes/" if path.parent else ""))
        recipe = parse(path.read_text(encoding="utf-8"), str(path))
    for item in overrides.items() if isinstance(overrides, dict) else overrides:
        set_option(recipe, item if isinstance(item, str) else f"{item[0]}={json.dumps(item[1])}")
    check(recipe)
    return recipe


def parse(text: str, source: str = "<recipe>") -> Recipe:
    """A Recipe from YAML text, the line of every key kept (PyYAML's node marks); duplicate keys are an error."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise RecipeError(f"{source}{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe is a mapping of stages to their options, not {type(data).__name__}")
    recipe = Recipe(data, source, text)
    _walk(node, (), recipe)
    return recipe


def _walk(node, path: tuple, recipe: Recipe) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            here = (*path, key.value)
            if key.value in seen:
                raise RecipeError(f"{recipe.source}:{key.start_mark.line + 1}: {_dotted(here)}: given twice")
            seen.add(key.value)
            recipe.lines[here] = key.start_mark.line + 1
            _walk(value, here, recipe)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            recipe.lines[(*path, i)] = item.start_mark.line + 1
            _walk(item, (*path, i), recipe)
    elif path:
        recipe.spans[path] = (node.start_mark.index, node.end_mark.index)


def set_option(recipe: Recipe, assignment: str) -> None:
    """Apply one `STAGE.OPTION=VALUE` (VALUE read as YAML: 3, true, null, [a, b]) to the recipe."""
    import yaml

    key, sep, raw = assignment.partition("=")
    path = tuple(p for p in key.strip().split("."))
    if not sep or not all(path):
        raise RecipeError(f"--set {assignment}: expected STAGE.OPTION=VALUE, e.g. synth.rewrites=2")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    target = recipe.data
    for i, part in enumerate(path[:-1]):
        if not isinstance(target.setdefault(part, {}), dict):
            raise RecipeError(f"--set {assignment}: {_dotted(path[: i + 1])} is not a section")
        target = target[part]
    target[path[-1]] = value
    recipe.overrides[path] = assignment


# --- checking ------------------------------------------------------------------------------------------------------


def check(recipe: Recipe) -> None:
    """Raise RecipeError for a secret in the recipe, or its first schema error (by line), naming the key."""
    _check_secrets(recipe.data, (), recipe)
    from jsonschema import Draft202012Validator

    errors = list(Draft202012Validator(schema()).iter_errors(recipe.data))
    if not errors:
        _check_values(recipe)
        return
    found = sorted((_explain(e, recipe) for e in errors), key=lambda x: _line_of(x[0], recipe))
    (path, message), more = found[0], len(found) - 1
    extra = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
    raise RecipeError(f"{recipe.where(path)}: {_dotted(path) or 'the recipe'}: {message}{extra}")


def schema() -> dict:
    """schemas/recipe.schema.json."""
    return json.loads(files("wdtk.schemas").joinpath("recipe.schema.json").read_text(encoding="utf-8"))


def _explain(error, recipe: Recipe) -> tuple[tuple, str]:
    """(the key's path, what is wrong with it) of a jsonschema error: unknown and missing keys named."""
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(known), key=lambda k: _line_of((*path, k), recipe))[0]
        close = difflib.get_close_matches(str(extra), known, n=1)
        hint = f": did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
        return (*path, extra), f"unknown key{hint}"
    if error.validator == "required":
        missing = next(n for n in error.validator_value if n not in error.instance)
        return (*path, missing), "missing (required)"
    if error.validator == "enum" and isinstance(error.instance, bool):  # `structured: off`: YAML 1.1 reads a bool
        word = "on" if error.instance else "off"
        return path, f"{error.message} (YAML reads on, off, yes and no as true and false: write '{word}' in quotes)"
    return path, error.message


def _check_values(recipe: Recipe) -> None:
    """What the schema cannot say: walk hops MIN..MAX in order; the filter's agent attempts need its search engine."""
    from ..synth.linkgraph import parse_hops

    for path in (("synth", "hops"), ("embedded", "synth", "hops")):
        if (hops := _get(recipe.data, path)) is None:
            continue
        try:
            parse_hops(hops)
        except ValueError as exc:
            raise RecipeError(f"{recipe.where(path)}: {_dotted(path)}: {exc}") from None
    if _get(recipe.data, ("filter", "agent_attempts")) and not _get(recipe.data, ("filter", "search")):
        where = recipe.where(("filter", "agent_attempts"))
        raise RecipeError(f"{where}: filter.agent_attempts: needs filter.search (the agent's search engine)")


def _get(data: dict, path: tuple):
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _line_of(path: tuple, recipe: Recipe) -> int:
    return next((recipe.lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in recipe.lines), 0)


def _check_secrets(value, path: tuple, recipe: Recipe) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if path[:2] != ("crawl", "settings") and _SECRET_KEY.search(str(key)):
                raise RecipeError(f"{recipe.where((*path, key))}: {_dotted((*path, key))}: a secret does not belong "
                                  f"in a recipe (it is copied into the run and its dataset card): set "
                                  f"{_secret_env((*path, key), recipe.data)} in the environment")  # fmt: skip
            _check_secrets(inner, (*path, key), recipe)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            _check_secrets(inner, (*path, i), recipe)
    elif isinstance(value, str) and redact([value]) != [value]:
        raise RecipeError(f"{recipe.where(path)}: {_dotted(path)}: this looks like a key, token or password; "
                          "secrets come from the environment only")  # fmt: skip


def _secret_env(path: tuple, data: dict) -> str:
    """The environment variable that holds the secret a recipe key at `path` tried to hold."""
    key = str(path[-1]).lower()
    if path[0] == "push" or "hf" in key:
        return "HF_TOKEN"
    if "serper" in key or "search" in key:
        return "SERPER_API_KEY"
    section = data.get(path[0]) if isinstance(data.get(path[0]), dict) else {}
    model = str(section.get("judge" if path[0] == "funnel" else "model") or data.get("model") or "")
    provider = model.split("/", 1)[0] if "/" in model and not model.startswith("openai") else "openai"
    return f"{provider.upper()}_API_KEY"


def _dotted(path: tuple) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")


# --- resolving -----------------------------------------------------------------------------------------------------


def resolve(recipe: Recipe) -> dict:
    """Every stage's every option: the recipe's, else (for a stage whose model is `embedded`) its `embedded`
    section's, else the stage command's default. A stage's model is its own, else the recipe's, else WDTK_MODEL
    (a judge: its stage's, else WDTK_JUDGE_MODEL, else the model, but exact match for the embedded one; the
    filter's solver: its own, else WDTK_SOLVER_MODEL, else the model); an endpoint goes with its model, so a stage
    that names another model names its endpoint too; neither model nor endpoint: `embedded`."""
    data = recipe.data
    stem = Path(recipe.source).stem if recipe.source.endswith((".yaml", ".yml")) else "recipe"
    top = (
        data.get("model") or os.environ.get("WDTK_MODEL") or None,
        data.get("api_base") or os.environ.get("WDTK_API_BASE") or None,
        data.get("api_base") is not None,
    )
    model, api_base = _pick(*top)
    out = {"version": 1, "dir": str(data.get("dir") or f"runs/{stem}"), "model": model, "api_base": api_base,
           "until": data.get("until")}  # fmt: skip
    if data.get("description"):
        out["description"] = data["description"]
    cut = MAIN_LINE[MAIN_LINE.index(out["until"]) + 1 :] if out["until"] else ()
    for spec in STAGES:
        given = data.get(spec.name) or {}
        section = defaults(spec.name) | {"enabled": not spec.optional or spec.name in data}
        for key, endpoint in spec.models:
            section[key], section[endpoint] = _stage_model(key, endpoint, given, top)
        if spec.models and section[spec.models[0][0]] == "embedded":
            section |= (data.get("embedded") or {}).get(spec.name, {})
        section |= {k: v for k, v in given.items() if not any(k in pair for pair in spec.models)}
        if spec.name in cut:
            section["enabled"] = False
        out[spec.name] = section
    return _paths(out)


def _pick(model: str | None, api_base: str | None, explicit: bool) -> tuple[str | None, str | None]:
    """(model, endpoint): an endpoint not given for this model (exported for other commands) is dropped when the
    model runs in this process, as the commands drop it; neither: the embedded model."""
    if model and model.startswith(_IN_PROCESS) and not explicit:
        api_base = None
    return (model or ("embedded" if api_base is None else None)), api_base


# the environment variables of a stage's other models (their commands' --judge, --solver-model and endpoints)
_ENV = {"judge": ("WDTK_JUDGE_MODEL", "WDTK_JUDGE_API_BASE"),
        "solver_model": ("WDTK_SOLVER_MODEL", "WDTK_SOLVER_API_BASE")}  # fmt: skip


def _stage_model(key: str, endpoint: str, given: dict, top: tuple) -> tuple[str | None, str | None]:
    env_model, env_base = (os.environ.get(name) for name in _ENV[key]) if key in _ENV else (None, None)
    model = given.get(key) or env_model or top[0]
    if key == "judge" and model == "none":
        return "none", None
    if given.get(endpoint):
        pair = _pick(model, given[endpoint], True)
    elif env_base:
        pair = _pick(model, env_base, False)
    else:
        pair = _pick(model, *top[1:]) if model == top[0] else _pick(model, None, False)
    if key == "judge" and pair[0] == "embedded" and not (given.get(key) or env_model):
        return "none", None  # the embedded model judges no better than chance (bench/structured.py): exact match
    return pair


def _paths(out: dict) -> dict:
    """The options whose default depends on the run directory."""
    run = Path(out["dir"])
    if out["sample"]["search"] is None:
        out["sample"]["search"] = f"bm25:{run / 'index'}"
    site_seeds = str(run / "site" / "_truth" / "seeds.jsonl")
    if out["site"]["enabled"] and out["site"]["seed_questions"] and site_seeds not in out["synth"]["seeds"]:
        out["synth"]["seeds"] = [*out["synth"]["seeds"], site_seeds]
    if out["push"]["enabled"] and not out["push"]["repo_id"] and not out["push"]["out"]:
        out["push"]["out"] = str(run / "hub")
    return out


def section(name: str, run_dir: str | Path, options: dict) -> dict:
    """Stage `name`'s options resolved as a recipe holding only them would be (for `wdtk.stages`)."""
    recipe = load({"dir": str(run_dir), name: {**options, "enabled": True}})
    return {k: v for k, v in resolve(recipe)[name].items() if k != "enabled"}


def dump(resolved: dict, source: str) -> str:
    """The resolved recipe as YAML, headed by where it came from: it runs again as it is."""
    import yaml

    resolved = {k: {"enabled": False} if k in BY_NAME and BY_NAME[k].optional and not v["enabled"] else v
                for k, v in resolved.items()}  # fmt: skip
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    head = f"# resolved from {source} by wdtk {__version__} on {stamp}: every option, defaults included\n"
    return head + yaml.safe_dump(resolved, sort_keys=False, width=119)


# --- the demo ------------------------------------------------------------------------------------------------------

DEMO = "recipes/demo.yaml"
# `wdtk demo`'s options (click parameter names) -> the recipe key (or keys) each sets; None (not given) leaves the
# file's value
DEMO_OPTIONS = {
    "run_dir": "dir", "pages": "site.pages", "seed": "site.seed", "max_pages": "crawl.max_pages",
    "max_groups": "synth.max_groups", "rewrites": "synth.rewrites", "model": "model", "api_base": "api_base",
    "limit": "sample.max_questions", "rollouts": "sample.rollouts", "judge_model": "funnel.judge",
    "structured": ("synth.structured", "sample.structured"),  # the stages that call the model, as their commands
}  # fmt: skip


def demo_recipe(options: dict) -> Recipe:
    """recipes/demo.yaml with `wdtk demo`'s option values written in (its text too, comments kept, for printing);
    --max-groups 0 stops after the crawl and --max-questions 0 after the filter, as they always did."""
    unknown = sorted(set(options) - set(DEMO_OPTIONS))
    if unknown:
        raise RecipeError(f"wdtk demo options with no key in {DEMO}: {', '.join(unknown)} (add them to DEMO_OPTIONS)")
    keys = {k: (v,) if isinstance(v, str) else v for k, v in DEMO_OPTIONS.items()}
    values = {key: v for k, v in options.items() if v is not None for key in keys[k]}
    if values.get("synth.max_groups") == 0:
        values["until"] = "crawl"
    elif values.get("sample.max_questions") == 0:
        values["until"] = "filter"
        del values["sample.max_questions"]
    shipped = parse(files("wdtk").joinpath(DEMO).read_text(encoding="utf-8"), DEMO)
    missing = [p for p in values if tuple(p.split(".")) not in shipped.spans]
    if missing:
        raise RecipeError(f"{DEMO} has no value for {', '.join(missing)}, which wdtk demo's options set")
    text = shipped.text
    for path, value in sorted(values.items(), key=lambda kv: -shipped.spans[tuple(kv[0].split("."))][0]):
        start, end = shipped.spans[tuple(path.split("."))]
        gap = len(text[end:]) - len(text[end:].lstrip(" "))
        if text[end + gap : end + gap + 1] == "#":  # keep the comment where it was, when there is room
            end, width = end + gap, end - start + gap
            text = text[:start] + _scalar(value).ljust(width - 1) + " " + text[end:]
        else:
            text = text[:start] + _scalar(value) + text[end:]
    recipe = parse(text, DEMO)
    check(recipe)
    return recipe


def _scalar(value) -> str:
    import yaml

    return yaml.safe_dump(str(value) if isinstance(value, Path) else value, default_flow_style=True).split("\n")[0]


__all__ = ["BY_NAME", "Recipe", "RecipeError", "check", "demo_recipe", "dump", "load", "parse", "resolve", "section"]
