"""Recipes without running them: errors name the file, the line and the key; secrets are refused; every stage key is
its command's option; resolution; the shipped recipes and the demo's; the dry run; `import wdtk` stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from wdtk.cli import main
from wdtk.training.recipe import RecipeError, load, parse, resolve, schema
from wdtk.training.stages import STAGES, command_options, defaults

ROOT = Path(__file__).resolve().parents[1]
RECIPE = """\
dir: runs/x
model: openai:m
api_base: http://127.0.0.1:9/v1

synth:
  max_groups: 4
  rewrites: {rewrites}
sample:
  rollouts: 2
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def error(source, overrides=()) -> str:
    with pytest.raises(RecipeError) as caught:
        load(source, overrides)
    return str(caught.value)


def test_a_schema_error_names_the_file_line_and_key(tmp_path):
    path = write(tmp_path, RECIPE.format(rewrites='"three"'))
    assert error(path) == f"{path}:7: synth.rewrites: 'three' is not of type 'integer'"
    result = CliRunner().invoke(main, ["run", str(path), "--dry-run"])
    assert result.exit_code == 1
    assert result.output == f"Error: {path}:7: synth.rewrites: 'three' is not of type 'integer'\n"


def test_unknown_missing_and_repeated_keys_are_named(tmp_path):
    path = write(tmp_path, RECIPE.format(rewrites=1) + "  rolouts: 3\n")
    assert error(path) == f"{path}:10: sample.rolouts: unknown key: did you mean 'rollouts'?"
    path = write(tmp_path, RECIPE.format(rewrites=1) + "push:\n  private: true\n")
    assert error(path) == f"{path}:10: push.license: missing (required)"  # the line of its section
    path = write(tmp_path, RECIPE.format(rewrites=1) + "synth:\n  rewrites: 2\n")
    assert error(path) == f"{path}:10: synth: given twice"
    path = write(tmp_path, "synth:\n  rewrites: [1\n")
    assert error(path).startswith(f"{path}:3: not valid YAML")
    path = write(tmp_path, RECIPE.format(rewrites=-1) + "filter: {threshold: 2}\n")  # two problems: the first, counted
    assert error(path) == f"{path}:7: synth.rewrites: -1 is less than the minimum of 0 (and 1 more problem)"


def test_set_overrides_are_yaml_values_and_named_when_wrong(tmp_path):
    path = write(tmp_path, RECIPE.format(rewrites=1))
    recipe = load(path, ["synth.rewrites=2", "sample.max_questions=null", "crawl.roots=[http://a.example/]"])
    resolved = resolve(recipe)
    assert (resolved["synth"]["rewrites"], resolved["sample"]["max_questions"]) == (2, None)
    assert resolved["crawl"]["roots"] == ["http://a.example/"]
    assert error(path, ["synth.rewrites=three"]) == (
        "--set synth.rewrites=three: synth.rewrites: 'three' is not of type 'integer'"
    )
    assert error(path, ["synth.rewrites"]).startswith("--set synth.rewrites: expected STAGE.OPTION=VALUE")
    assert error(path, ["sample.rollouts.x=1"]) == "--set sample.rollouts.x=1: sample.rollouts is not a section"


@pytest.mark.parametrize(
    ("line", "variable"),
    [
        ("  api_key: abc", "OPENAI_API_KEY"),
        ("  model: anthropic/claude-sonnet-4-5\n  api_key: abc", "ANTHROPIC_API_KEY"),
        ("  hf_token: abc", "HF_TOKEN"),
    ],
)
def test_a_secret_key_is_refused_naming_its_environment_variable(tmp_path, line, variable):
    path = write(tmp_path, RECIPE.format(rewrites=1).replace("  max_groups: 4", line))
    key = line.split("\n")[-1].split(":")[0].strip()
    number = path.read_text().splitlines().index(f"  {key}: abc") + 1
    message = error(path)
    assert message.startswith(f"{path}:{number}: synth.{key}: a secret does not belong in a recipe")
    assert message.endswith(f"set {variable} in the environment")
    assert "abc" not in message


def test_a_secret_value_is_refused_and_token_budgets_are_not_secrets(tmp_path):
    for value in ("sk-proj-abcdefghijklmnop", "http://user:pass@10.0.0.1:8000/v1"):
        path = write(tmp_path, RECIPE.format(rewrites=1).replace("http://127.0.0.1:9/v1", value))
        assert error(path).startswith(f"{path}:3: api_base: this looks like a key, token or password")
    fine = RECIPE.format(rewrites=1) + "  max_new_tokens: 64\n  max_context_tokens: 4096\nfunnel: {max_tokens: 9}\n"
    assert resolve(load(write(tmp_path, fine)))["sample"]["max_new_tokens"] == 64


def test_every_stage_key_is_an_option_of_its_command_with_the_same_type():
    """The schema and the commands cannot drift apart: a new command option is a new recipe key (with the type click
    gives it), or an entry in its Spec's skip list; a key the command lacks is in the Spec's extras."""
    defs = schema()["$defs"]
    for spec in STAGES:
        props, options = defs[spec.name]["properties"], command_options(spec)
        missing = sorted(set(options) - set(props))
        assert not missing, f"{spec.name}: `wdtk` options {missing} are not keys of schemas/recipe.schema.json"
        assert set(props) == {"enabled", *options, *spec.extras}, spec.name
        for key, (_, _, param) in options.items():
            assert _schema_type(param) in _types(props[key]), (spec.name, key)
            low = getattr(param.type, "min", None)
            floor = props[key].get("minimum", props[key].get("exclusiveMinimum"))
            assert low is None or floor == low, (spec.name, key)
            if isinstance(param.type, click.Choice):
                assert set(param.type.choices) <= set(props[key]["enum"]), (spec.name, key)


def _schema_type(param) -> str:
    if param.multiple or param.nargs == -1:
        return "array"
    kinds = ((click.types.IntParamType, "integer"), (click.types.FloatParamType, "number"),
             (click.types.BoolParamType, "boolean"))  # fmt: skip
    return next((name for kind, name in kinds if isinstance(param.type, kind)), "string")


def _types(prop: dict) -> set[str]:
    if "$ref" in prop:
        return _types(schema()["$defs"][prop["$ref"].split("/")[-1]])
    if "enum" in prop:
        return {"string"}
    kind = prop.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def test_resolution_takes_each_default_from_its_command(tmp_path, monkeypatch):
    for var in ("WDTK_MODEL", "WDTK_API_BASE", "WDTK_JUDGE_MODEL", "WDTK_JUDGE_API_BASE"):
        monkeypatch.delenv(var, raising=False)
    resolved = resolve(load(write(tmp_path, RECIPE.format(rewrites=1))))
    sample_default = command_options(next(s for s in STAGES if s.name == "sample"))["max_calls"][1]
    assert resolved["sample"]["max_calls"] == sample_default == defaults("sample")["max_calls"]
    assert resolved["sample"]["search"] == "bm25:runs/x/index" and resolved["synth"]["methods"] == ["crawlqa", "e2hqa"]
    assert (resolved["funnel"]["judge"], resolved["funnel"]["judge_api_base"]) == ("openai:m", "http://127.0.0.1:9/v1")
    assert not resolved["site"]["enabled"] and not resolved["push"]["enabled"] and resolved["report"]["enabled"]


def test_models_endpoints_and_the_embedded_section(tmp_path, monkeypatch):
    monkeypatch.setenv("WDTK_API_BASE", "http://127.0.0.1:7/v1")  # exported for other commands
    monkeypatch.delenv("WDTK_MODEL", raising=False)
    text = """\
model: embedded
sample: {model: openai:policy, api_base: http://127.0.0.1:8/v1}
funnel: {judge: none}
embedded:
  synth: {crawlqa: {max_tokens: 99}}
  sample: {max_calls: 2}
until: sample
"""
    resolved = resolve(load(write(tmp_path, text)))
    assert (resolved["model"], resolved["api_base"]) == ("embedded", None)  # an in-process model drops the export
    assert resolved["synth"]["crawlqa"] == {"max_tokens": 99}  # synth runs the embedded model: small budgets
    assert resolved["sample"]["max_calls"] != 2 and resolved["sample"]["api_base"] == "http://127.0.0.1:8/v1"
    assert resolved["funnel"]["judge"] == "none" and not resolved["funnel"]["enabled"]  # until: sample
    assert resolved["sample"]["enabled"] and not resolved["export"]["enabled"] and resolved["report"]["enabled"]
    monkeypatch.setenv("WDTK_MODEL", "openai:served")
    resolved = resolve(load({"sample": {"model": "openai:other"}}))
    assert resolved["synth"]["model"] == "openai:served" and resolved["synth"]["api_base"] == "http://127.0.0.1:7/v1"
    assert resolved["sample"]["api_base"] is None  # another model names its own endpoint


def test_the_embedded_model_judges_by_exact_match_unless_a_judge_is_named(monkeypatch):
    """Its verdicts are at chance (bench/structured.py): as in main's demo, a judge left to default is exact match."""
    for var in ("WDTK_MODEL", "WDTK_API_BASE", "WDTK_JUDGE_MODEL", "WDTK_JUDGE_API_BASE"):
        monkeypatch.delenv(var, raising=False)
    resolved = resolve(load({"filter": {"difficulty": True}}))
    assert resolved["sample"]["model"] == "embedded"
    assert resolved["funnel"]["judge"] == resolved["filter"]["judge"] == "none"
    assert resolved["filter"]["solver_model"] == "embedded"
    assert resolve(load({"funnel": {"judge": "embedded"}}))["funnel"]["judge"] == "embedded"  # named: kept
    monkeypatch.setenv("WDTK_JUDGE_MODEL", "embedded")
    assert resolve(load({}))["funnel"]["judge"] == "embedded"
    monkeypatch.delenv("WDTK_JUDGE_MODEL")
    assert resolve(load({"model": "openai:m", "api_base": "http://127.0.0.1:9/v1"}))["funnel"]["judge"] == "openai:m"


def test_the_filter_calls_models_only_through_its_gates():
    filter_spec = next(s for s in STAGES if s.name == "filter")
    off = resolve(load({}))["filter"]
    assert filter_spec.called(off) == ()  # no model check for a filter without gates
    searched = resolve(load({"filter": {"search": "bm25:runs/x/index"}}))["filter"]
    assert [key for key, _ in filter_spec.called(searched)] == ["model"]
    hard = resolve(load({"filter": {"difficulty": True, "solver_model": "openai:s"}}))["filter"]
    assert [key for key, _ in filter_spec.called(hard)] == ["model", "solver_model", "judge"]
    assert hard["solver_model"] == "openai:s"


def test_graphqa_is_a_method_off_by_default_and_values_the_schema_cannot_check_are_named(tmp_path):
    from wdtk.training.stages import METHODS

    assert schema()["$defs"]["synth"]["properties"]["methods"]["items"]["enum"] == list(METHODS)
    assert "graphqa" not in resolve(load({}))["synth"]["methods"]
    path = write(tmp_path, RECIPE.format(rewrites=1).replace("  max_groups: 4", "  max_groups: 4\n  hops: 5..3"))
    assert error(path) == f"{path}:7: synth.hops: expected 1 <= MIN <= MAX, not '5..3'"
    assert error({"filter": {"agent_attempts": 1}}).endswith("filter.agent_attempts: needs filter.search (the agent's "
                                                             "search engine)")  # fmt: skip
    assert "write 'off' in quotes" in error(path, ["synth.hops=3..6", "synth.structured=off"])


def test_timeouts_never_rerun_a_stage_and_structured_generation_does(tmp_path):
    from wdtk.training.runner import plan

    path = write(tmp_path, RECIPE.format(rewrites=1))
    steps = plan(resolve(load(path)), {})
    state = {s.name: {"fingerprint": s.fingerprint, "options": s.options, "done": True, "skipped": "-"} for s in steps
             if s.todo}  # fmt: skip
    changed = ["synth.timeout=30", "synth.max_retries=1", "sample.allow_incomplete=true", "filter.timeout=9"]
    assert all(s.action in ("done", "off") for s in plan(resolve(load(path, changed)), state))
    again = {s.name: s for s in plan(resolve(load(path, ["synth.structured='off'"])), state)}
    assert again["synth"].action == "rerun" and again["synth"].why.startswith("changed: structured")
    assert again["sample"].action == "rerun" and again["crawl"].action == "done"


@pytest.mark.parametrize("name", ["demo", "openai-site", "dask-vllm"])
def test_the_shipped_recipes_check_and_dry_run_without_writing(tmp_path, name):
    run_dir = tmp_path / "run"
    recipe = ROOT / "recipes" / f"{name}.yaml"
    result = CliRunner().invoke(main, ["run", str(recipe), "--dry-run", "--dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("plan of") and any(line.split()[:2] == ["crawl", "run"] for line in lines)
    assert any(line.strip().startswith("synth/crawlqa  to spend") for line in lines)
    assert "whole run" in result.output and not run_dir.exists()
    if name == "openai-site":  # gpt-4o-mini and gpt-4o are in litellm's price map: the bill is in dollars
        assert "$" in result.output.split("whole run")[1] and "unpriced" not in result.output


def test_the_demo_is_its_recipe_and_prints_it(tmp_path):
    args = ["demo", "--dir", str(tmp_path / "d"), "--max-groups", "3", "--model", "openai:x", "--structured", "off",
            "--print-recipe"]  # fmt: skip
    printed = CliRunner().invoke(main, args)
    assert printed.exit_code == 0, printed.output
    shipped = (ROOT / "recipes" / "demo.yaml").read_text()
    assert printed.output.count("\n") == shipped.count("\n")  # the file, comments kept, values written in
    recipe = parse(printed.output, "printed.yaml")
    resolved = resolve(recipe)
    assert resolved["synth"]["max_groups"] == 3 and resolved["model"] == "openai:x"
    assert resolved["synth"]["structured"] == resolved["sample"]["structured"] == "off"  # both stages that ask
    demo_params = {p.name for p in main.get_command(click.Context(main), "demo").params} - {"print_recipe"}
    assert resolved["site"]["pages"] == _default("pages") and resolved["sample"]["rollouts"] == _default("rollouts")
    crawl_only = CliRunner().invoke(main, ["demo", "--max-groups", "0", "--print-recipe"]).output
    stopped = resolve(parse(crawl_only, "d.yaml"))
    assert stopped["crawl"]["enabled"] and not stopped["synth"]["enabled"] and stopped["report"]["enabled"]
    from wdtk.training.recipe import DEMO_OPTIONS

    assert demo_params == set(DEMO_OPTIONS), "every `wdtk demo` option sets a key of recipes/demo.yaml"


def _default(name: str):
    command = main.get_command(click.Context(main), "demo")
    return next(p.default for p in command.params if p.name == name)


def test_import_wdtk_stays_light_and_the_api_loads_on_use():
    code = "import sys, wdtk; print(sorted(m for m in sys.modules if m.startswith('wdtk.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    import wdtk

    assert wdtk.stages.sample.__doc__ and callable(wdtk.run) and callable(wdtk.plan)
    with pytest.raises(RecipeError, match=r"<dict>: sample.rollouts: 'two' is not of type 'integer'"):
        wdtk.stages.sample("runs/none", rollouts="two")


def test_the_resolved_recipe_loads_again(tmp_path):
    from wdtk.training.recipe import dump

    resolved = resolve(load(write(tmp_path, RECIPE.format(rewrites=1))))
    (tmp_path / "resolved.yaml").write_text(dump(resolved, "recipe.yaml"))
    again = resolve(load(tmp_path / "resolved.yaml"))  # checked too: it runs as it is
    optional = {"site", "audit", "push"}  # off, so written as off, their options left out
    assert {k: v for k, v in again.items() if k not in optional} == {
        k: v for k, v in resolved.items() if k not in optional
    }
    assert all(again[k] == resolved[k] for k in optional)
    assert yaml.safe_load(dump(resolved, "x"))["sample"]["rollouts"] == 2
