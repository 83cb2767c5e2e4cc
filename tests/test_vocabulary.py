"""One vocabulary: the run directory, the output, limits and sample counts are spelled the same in every command;
old spellings still parse (hidden from --help); every environment variable a command reads is in its --help."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from wdtk.cli import main

STAGES = ["demo", "run", "index", "synth", "filter", "sample", "funnel", "export", "report", "push", "eval", "evolve"]
ENV = {  # what each command reads from the environment, beyond its options' envvars
    "demo": ["WDTK_MODEL", "WDTK_API_BASE", "WDTK_JUDGE_MODEL", "WDTK_CACHE_DIR"],
    "run": [
        "WDTK_MODEL",
        "WDTK_API_BASE",
        "WDTK_JUDGE_MODEL",
        "WDTK_JUDGE_API_BASE",
        "WDTK_SOLVER_MODEL",
        "WDTK_SOLVER_API_BASE",
        "OPENAI_API_KEY",
        "HF_TOKEN",
        "SERPER_API_KEY",
    ],
    "synth": ["WDTK_MODEL", "WDTK_API_BASE", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "WDTK_CACHE_DIR"],
    "sample": ["WDTK_MODEL", "WDTK_API_BASE", "SERPER_API_KEY", "OPENAI_API_KEY"],
    "funnel": ["WDTK_JUDGE_MODEL", "WDTK_JUDGE_API_BASE"],
    "eval": ["WDTK_MODEL", "WDTK_API_BASE", "WDTK_JUDGE_MODEL", "WDTK_JUDGE_API_BASE", "SERPER_API_KEY"],
    "evolve": ["WDTK_MODEL", "WDTK_API_BASE", "WDTK_JUDGE_MODEL", "WDTK_JUDGE_API_BASE"],
    "push": ["HF_TOKEN"],
}


def command(name: str) -> click.Command:
    return main.get_command(click.Context(main), name)


def parse(*args: str) -> dict:
    """The parameters a command line gives its command, without running it."""
    cmd = command(args[0])
    return cmd.make_context(args[0], list(args[1:])).params


def help_of(*names: str) -> str:
    result = CliRunner().invoke(main, [*names, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


@pytest.mark.parametrize("name", STAGES)
def test_every_stage_takes_the_run_directory_as_dir(name):
    assert "--dir DIRECTORY" in help_of(name)
    if name not in ("demo", "run", "synth", "evolve"):  # these write several stages under DIR
        assert "-o, --out" in help_of(name)


@pytest.mark.parametrize("name", [*STAGES, "crawl", "validate"])
def test_every_environment_variable_is_in_the_help(name):
    text = help_of(name)
    for param in command(name).params:
        for var in [param.envvar] if isinstance(param.envvar, str) else param.envvar or []:
            assert getattr(param, "show_envvar", False) and f"env var: {var}" in text, (name, var)
    for var in ENV.get(name, []):
        assert var in text, (name, var)
    assert all(var in help_of() for values in ENV.values() for var in values)  # `wdtk --help` lists them all


def test_old_spellings_still_work_and_stay_out_of_the_help():
    assert parse("sample", "--limit", "5")["limit"] == parse("sample", "--max-questions", "5")["limit"] == 5
    assert parse("eval", "b.jsonl", "--k", "2")["rollouts"] == parse("eval", "b.jsonl", "--rollouts", "2")["rollouts"]
    e2hqa = command("synth").get_command(click.Context(main), "e2hqa")
    assert (
        e2hqa.make_context("e2hqa", ["s.jsonl", "-o", "o", "--search", "bm25:i", "--limit", "2"]).params["limit"] == 2
    )
    demo = parse("demo", "--groups", "3", "--questions", "1")
    assert (demo["max_groups"], demo["limit"]) == (3, 1)
    assert parse("push", "--local-dir", "hub", "--license", "mit")["out_dir"] == Path("hub")
    assert parse("evolve", "--base-model", "m", "--eval-k", "4")["eval_k"] == 4
    assert parse("report", "runs/x")["legacy_dir"] == Path("runs/x")  # the old positional run directory
    for name, old in (("sample", "--limit"), ("eval", "--k "), ("push", "--local-dir"), ("demo", "--groups"),
                      ("evolve", "--eval-k"), ("report", "RUN_DIR")):  # fmt: skip
        assert old not in help_of(name), (name, old)
    assert "--max-questions" in help_of("eval") and "--rollouts" in help_of("eval")


def test_the_command_log_records_the_current_spelling(tmp_path):
    from wdtk.schemas.runlog import current_argv

    cmd = command("sample")
    with cmd.make_context("sample", ["--dir", str(tmp_path), "--limit", "2"]) as ctx:
        argv = current_argv()
    assert ctx and "--max-questions=2" in argv and not any(a.startswith("--limit") for a in argv)
