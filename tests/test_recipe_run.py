"""Recipes run: end to end against the fake LLM server (answering from the generated site's truth), a rerun that does
nothing, a changed option that reruns only what depends on it, a stopped stage that resumes, the dry run's estimate
against the calls a run made, and the stage functions of the Python API."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from servers import FakeOpenAIServer
from servers.stand_in import responder

import wdtk
from wdtk.cli import main
from wdtk.crawler.sitegen import build_site
from wdtk.schemas import read_records
from wdtk.synth.guards import PING

ROOT = Path(__file__).resolve().parents[1]
PAGES, SEED = 80, 3
RECIPE = {
    "model": "openai:scripted",
    "site": {"pages": PAGES, "seed": SEED, "seed_questions": 2},
    "crawl": {"max_pages": 40, "throttle": False},
    "synth": {"max_groups": 3, "rewrites": 1, "workers": 0},
    "sample": {"max_questions": 3, "rollouts": 2, "workers": 0},
    "audit": {},
    "push": {"license": "cc-by-4.0"},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The fake OpenAI server scripted from the truth of the site the recipes build (same pages and seed)."""
    twin = tmp_path_factory.mktemp("twin")
    build_site(twin, PAGES, seed=SEED)
    with FakeOpenAIServer(responder(twin)) as fake:
        yield fake


def calls(server, since: int = 0) -> int:
    """Chat requests the server answered since `since`, the model checks (pings) left out."""
    return sum(1 for body in server.requests[since:] if body["messages"] != PING)


def usage_calls(run: Path) -> int:
    """LLM calls the run's stage summaries count (none of them cache hits in a fresh run directory)."""
    rels = ("synth/crawlqa", "synth/e2hqa", "sample", "funnel")
    summaries = [json.loads((run / r / "summary.json").read_text()) for r in rels]
    return sum(u["calls"] - u["cache_hits"] for s in summaries for u in s["usage"].values())


def run_cli(path: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["run", str(path), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def finished(server, tmp_path_factory) -> tuple[Path, Path, str, int]:
    """(recipe file, run directory, output, LLM calls) of RECIPE run once with `wdtk run`."""
    root = tmp_path_factory.mktemp("recipe")
    run_dir = root / "run"
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump({"dir": str(run_dir), "api_base": server.base_url, **RECIPE}))
    before = len(server.requests)
    output = run_cli(path)
    return path, run_dir, output, calls(server, before)


def test_a_recipe_runs_every_stage_end_to_end(finished):
    path, run, output, made = finished
    names = ["site", "crawl", "synth", "filter", "sample", "funnel", "export", "report", "audit", "push"]
    for n, name in enumerate(names, 1):
        assert f"[{n}/10] {name}: not run yet" in output
    summary = json.loads((run / "run_summary.json").read_text())
    assert summary["filter"]["kept"] >= 3 and summary["sample"]["kept"] == 2 * 3
    assert summary["funnel"]["kept"] >= 1 and summary["funnel"]["judge"]["method"] == "llm"
    assert len(list(read_records(run / "export" / "sft"))) == summary["funnel"]["kept"]
    assert "Funnel" in (run / "report.html").read_text() and (run / "audit" / "summary.json").is_file()
    assert made == usage_calls(run) > 0  # every call the server answered is counted in a stage summary
    resolved = yaml.safe_load((run / "recipe.yaml").read_text())  # every option, defaults included
    assert resolved["sample"]["max_calls"] == 16 and resolved["synth"]["model"] == "openai:scripted"
    card = (run / "hub" / "README.md").read_text()
    assert "## Recipe" in card and "rollouts: 2" in card and "api_base: ENDPOINT" in card
    assert "127.0.0.1" not in card.split("## Recipe")[1]  # the endpoint stays out of the card
    logged = [json.loads(line)["argv"] for line in (run / "commands.jsonl").read_text().splitlines()]
    assert logged[0][:3] == ["wdtk", "run", str(path)]


def test_a_rerun_does_nothing_and_a_changed_option_reruns_only_what_depends_on_it(finished, server):
    path, run, _, _ = finished
    before = len(server.requests)
    output = run_cli(path)
    assert output.count("done earlier") == 10 and len(server.requests) == before  # not even a model check
    synth_summary = (run / "synth" / "crawlqa" / "summary.json").stat().st_mtime_ns
    dry = run_cli(path, "--dry-run", "--set", "sample.rollouts=1").splitlines()[1:11]
    planned = {line.split()[0]: line.split()[1] for line in dry}
    assert [planned[n] for n in ("site", "crawl", "synth", "filter")] == ["done"] * 4
    assert [planned[n] for n in ("sample", "funnel", "export", "report", "audit", "push")] == ["rerun"] * 6
    output = run_cli(path, "--set", "sample.rollouts=1")
    for name in ("site", "crawl", "synth", "filter"):
        assert f"] {name}: done earlier" in output
    assert "] sample: changed: rollouts 2 -> 1; rerunning it and what depends on it" in output
    assert "] funnel: sample reruns" in output and "] push: sample, funnel, export rerun" in output
    assert (run / "synth" / "crawlqa" / "summary.json").stat().st_mtime_ns == synth_summary
    assert json.loads((run / "run_summary.json").read_text())["sample"]["kept"] == 3
    sampled = json.loads((run / "sample" / "summary.json").read_text())["usage"]
    assert all(u["cache_hits"] == u["calls"] > 0 for u in sampled.values())  # rollout 0 again: from the cache
    assert calls(server, before) == 0
    output = run_cli(path)  # back to the file's rollouts
    assert "] sample: changed: rollouts 1 -> 2" in output and "] filter: done earlier" in output
    assert json.loads((run / "run_summary.json").read_text())["sample"]["kept"] == 6


def test_a_stopped_stage_resumes(finished, server):
    path, run, _, _ = finished
    state = json.loads((run / "recipe_state.json").read_text())
    state["stages"]["sample"]["done"] = False  # as if the run was killed inside sample: its partitions are saved
    (run / "recipe_state.json").write_text(json.dumps(state))
    before = len(server.requests)
    output = run_cli(path)
    assert "] sample: stopped before it finished: resuming" in output and "] synth: done earlier" in output
    assert json.loads((run / "sample" / "summary.json").read_text())["resumed_partitions"] >= 1
    agent = [b for b in server.requests[before:] if b["messages"] != PING and "tool" in json.dumps(b["messages"])]
    assert not agent  # no rollout was sampled again


def test_the_dry_run_estimate_is_within_a_factor_of_two_of_the_calls_made(finished, server, tmp_path):
    """Averages measured on the finished run, applied to a recipe twice its size in a new directory; then that
    recipe runs, and its calls are counted. The defaults, with no history, are an upper bound."""
    _, small, _, _ = finished
    bigger = {**RECIPE, "dir": str(tmp_path / "big"), "api_base": server.base_url}
    bigger |= {"synth": {**RECIPE["synth"], "max_groups": 6}, "sample": {**RECIPE["sample"], "max_questions": 6}}
    planned = wdtk.plan(bigger, history=[small])
    assert not (tmp_path / "big").exists()  # a dry run writes nothing
    assert all(r["basis"].startswith("measured") for r in planned["estimate"]["rows"])
    expected = planned["estimate"]["to_spend"]["calls"]
    before = len(server.requests)
    wdtk.run(bigger)
    made = calls(server, before)
    assert made == usage_calls(tmp_path / "big")
    assert expected / 2 <= made <= expected * 2, (expected, made)
    after = wdtk.plan(bigger)  # the finished run: nothing to spend, the whole run from its own averages
    assert after["estimate"]["to_spend"]["calls"] == 0
    assert made / 2 <= after["estimate"]["whole_run"]["calls"] <= made * 2
    blind = wdtk.plan({**bigger, "dir": str(tmp_path / "new")})["estimate"]["to_spend"]["calls"]
    assert blind >= made  # conservative: no run to learn from, so every budget is assumed spent
    print(f"estimated {expected} LLM calls from the smaller run's averages, {blind} with none; the run made {made}")


def test_graphqa_and_the_filters_gates_run_from_a_recipe(server, tmp_path):
    """synth.methods names graphqa, filter.search and filter.difficulty turn the LLM gates on (the scripted solver
    answers one-hop questions); a changed gate option reruns the filter, not the synthesis before it."""
    run = tmp_path / "run"
    recipe = {"dir": str(run), "model": "openai:scripted", "api_base": server.base_url, "until": "filter",
              "site": {"pages": PAGES, "seed": SEED},
              "crawl": {"max_pages": PAGES, "throttle": False},
              "synth": {"methods": ["crawlqa", "graphqa"], "max_groups": 2, "hops": "3..4", "max_walks": 6,
                        "workers": 0},
              "filter": {"search": f"bm25:{run / 'index'}", "difficulty": True, "attempts": 1}}  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    output = run_cli(path)
    assert "] synth: not run yet" in output and "graphqa kept" in output
    graph = list(read_records(run / "synth" / "graphqa" / "records", kind="qa"))
    assert graph and all(3 <= len(r["hops"]) <= 4 for r in graph)
    gates = json.loads((run / "filter" / "summary.json").read_text())["gates"]
    assert gates["usage"]["solver"]["calls"] == gates["items"] > 0  # one closed-book try a question
    kept = list(read_records(run / "filter" / "records", kind="qa"))
    assert kept and all("difficulty" in r["meta"] and "uniqueness" in r["meta"] for r in kept)
    output = run_cli(path, "--set", "filter.attempts=2")
    assert "] synth: done earlier" in output and "] filter: changed: attempts 1 -> 2" in output
    output = run_cli(path, "--set", "filter.attempts=2", "--set", "filter.timeout=30")
    assert "] filter: done earlier" in output  # how a stage runs, not what it makes


def test_each_stage_is_a_python_function_returning_its_summary(finished, tmp_path):
    _, run, _, _ = finished
    funnel = wdtk.stages.funnel(run, judge="none", max_actions=2)
    assert funnel["judge"]["method"] == "exact" and funnel["stage"] == "funnel"
    assert json.loads((run / "funnel" / "summary.json").read_text())["kept"] == funnel["kept"]
    exports = wdtk.stages.export(run)
    assert exports["sft"] == funnel["kept"]
    page = wdtk.stages.report(run)
    assert Path(page["path"]).is_file() and page["kb"] > 1
    tree = wdtk.stages.push(run, license="cc-by-4.0", out=str(tmp_path / "hub"))
    assert set(tree["configs"]) >= {"qa", "trajectories"}


def test_the_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    """The README's Python block, as written, on recipes/demo.yaml; the model comes from the environment (the demo
    recipe names none), here the fake server scripted from the truth of the site the demo builds."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", readme.split("## Recipes and the Python API")[1], flags=re.S).group(1)
    shipped = yaml.safe_load((ROOT / "recipes" / "demo.yaml").read_text())["site"]
    twin = tmp_path / "twin"
    build_site(twin, shipped["pages"], seed=shipped["seed"])
    monkeypatch.chdir(tmp_path)
    with FakeOpenAIServer(responder(twin)) as fake:
        monkeypatch.setenv("WDTK_MODEL", "openai:scripted")
        monkeypatch.setenv("WDTK_API_BASE", fake.base_url)
        code = block.replace('"recipes/demo.yaml"', repr(str(ROOT / "recipes" / "demo.yaml")))
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "'calls'" in out and "trajectories kept" in out and "kept by exact match" in out
    assert (tmp_path / "runs" / "demo" / "report.html").is_file()
    funnel = json.loads((tmp_path / "runs" / "demo" / "funnel" / "summary.json").read_text())
    assert funnel["judge"]["method"] == "exact"
    logged = json.loads((tmp_path / "runs" / "demo" / "commands.jsonl").read_text().splitlines()[0])["argv"]
    assert logged[:2] == ["wdtk", "run"] and logged[-1] == "--set=sample.rollouts=2"  # the call, as a command line
