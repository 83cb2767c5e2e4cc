"""Preflight: a stage checks its model (provider, key, one tiny request) and inputs before any work; model mistakes
are one line and a non-zero exit, never retried when no retry can help, never hidden in the rejects file."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner
from servers import Reply

from wdtk.cli import main
from wdtk.schemas import WdtkError
from wdtk.synth import guards
from wdtk.synth.guards import PING
from wdtk.synth.llm.base import PermanentLLMError, TransientLLMError
from wdtk.synth.llm.wire import map_error
from wdtk.synth.options import prepare_model


@pytest.fixture
def seeds(tmp_path):
    path = tmp_path / "seeds.jsonl"
    rows = [{"question": "Who founded the Keldra Society?", "answer": "Ansel Varro"},
            {"question": "Where is Tarnholm located?", "answer": "the Vell valley"}]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def e2hqa(seeds, qa_run, tmp_path, *model: str):
    args = ["synth", "e2hqa", str(seeds), "-o", str(tmp_path / "out"), "--search", f"bm25:{qa_run / 'index'}",
            "--workers", "0", *model]  # fmt: skip
    return CliRunner().invoke(main, args)


def failed_with(result, text: str) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and lines[-1].startswith("Error: ") and text in lines[-1], result.output
    return lines[-1]


def test_an_unknown_model_or_a_missing_key_stops_before_any_work(seeds, qa_run, tmp_path, monkeypatch):
    failed_with(e2hqa(seeds, qa_run, tmp_path, "--model", "fake"), "--model fake: no provider known for it")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = e2hqa(seeds, qa_run, tmp_path, "--model", "anthropic/claude-3-5-haiku-latest")
    failed_with(result, "needs ANTHROPIC_API_KEY in the environment")
    assert not (tmp_path / "out").exists()  # nothing started


def test_the_difficulty_gates_solver_is_checked_before_any_work(openai_server, seeds, qa_run, tmp_path):
    """`--difficulty --solver-model fake` stops `wdtk synth` and `wdtk filter` before they start, naming the option."""
    openai_server.responder = lambda body: "OK"
    model = ["--model", "openai:m", "--api-base", openai_server.base_url]
    result = e2hqa(seeds, qa_run, tmp_path, *model, "--difficulty", "--solver-model", "fake")
    failed_with(result, "--solver-model fake: no provider known for it")
    assert not (tmp_path / "out").exists()
    from wdtk.schemas import mark_complete, record_id, write_records

    records, question = tmp_path / "qa", "Who wrote The Grey Harbour?"
    write_records([{"id": record_id("qa", question, "Dorn Vael"), "question": question, "answer": "Dorn Vael",
                    "type": "MULTI-HOP", "source": "e2hqa", "evidence_urls": [], "meta": {"wdtk_version": "test"}}],
                  records / "00000.jsonl.gz", kind="qa")  # fmt: skip
    mark_complete(records)
    args = ["filter", str(records), "-o", str(tmp_path / "filtered"), *model, "--difficulty", "--solver-model", "fake"]
    failed_with(CliRunner().invoke(main, args), "--solver-model fake: no provider known for it")
    assert not (tmp_path / "filtered").exists()


def test_api_base_alone_runs_the_one_model_it_serves_and_says_so(openai_server, seeds, qa_run, tmp_path):
    result = e2hqa(seeds, qa_run, tmp_path, "--api-base", openai_server.base_url, "--max-questions", "1")
    assert result.exit_code == 0, result.output
    assert f"--model not given: using fake, the one model {openai_server.base_url} serves" in result.output
    assert {r["model"] for r in openai_server.requests} == {"fake"}


def test_several_served_models_need_a_name(monkeypatch):
    monkeypatch.setattr(guards, "served_models", lambda api_base, option: ["a", "b"])
    with pytest.raises(WdtkError, match=r"serves 2 models \(a, b\): name one with --model"):
        guards.resolve_model(None, "http://127.0.0.1:8000/v1")


def test_litellm_prefixes_are_stripped_as_litellm_does(openai_server, seeds, qa_run, tmp_path):
    result = e2hqa(seeds, qa_run, tmp_path, "--model", "hosted_vllm/Qwen/Qwen2.5-7B-Instruct", "--api-base",
                   openai_server.base_url, "--max-questions", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert {r["model"] for r in openai_server.requests} == {"Qwen/Qwen2.5-7B-Instruct"}


def test_credentials_in_the_endpoint_url_are_refused_without_repeating_them(seeds, qa_run, tmp_path):
    result = e2hqa(seeds, qa_run, tmp_path, "--model", "openai:m", "--api-base", "http://me:sk-secret@127.0.0.1/v1")
    line = failed_with(result, "--api-base has credentials in it (user:key@host): set OPENAI_API_KEY instead")
    assert "sk-secret" not in line


def test_a_bad_key_is_one_request_and_one_line(openai_server, seeds, qa_run, tmp_path):
    openai_server.queue(Reply.error(401, "Incorrect API key provided"))
    result = e2hqa(seeds, qa_run, tmp_path, "--model", "openai:m", "--api-base", openai_server.base_url)
    failed_with(result, "refused a test request: HTTP 401: Incorrect API key provided")
    assert openai_server.request_count == 1  # permanent: not retried


def test_a_dead_endpoint_is_one_line(seeds, qa_run, tmp_path):
    result = e2hqa(seeds, qa_run, tmp_path, "--model", "openai:m", "--api-base", "http://127.0.0.1:9/v1")
    failed_with(result, "--model openai:m at http://127.0.0.1:9/v1 did not answer a test request")


def test_every_item_failing_alike_fails_the_run_with_that_error(openai_server, seeds, qa_run, tmp_path):
    openai_server.queue(Reply("OK"))  # the test request passes; every real one then hits the same wall
    openai_server.responder = lambda body: Reply.error(400, "This model's maximum context length is 8 tokens")
    result = e2hqa(seeds, qa_run, tmp_path, "--model", "openai:m", "--api-base", openai_server.base_url)
    failed_with(result, "every one of the 2 items failed with the same LLM error: HTTP 400: This model's maximum")
    assert [r["messages"] for r in openai_server.requests][0] == PING


def test_missing_credentials_are_permanent_whatever_status_litellm_gives():
    class InternalServerError(Exception):  # how litellm reports a missing OpenAI key: a 500
        status_code = 500

    error = map_error(InternalServerError("OpenAIException - Missing credentials. Please pass an `api_key`"))
    assert isinstance(error, PermanentLLMError)
    assert isinstance(map_error(InternalServerError("upstream overloaded")), TransientLLMError)


def test_an_exported_endpoint_does_not_stop_an_in_process_model():
    """WDTK_API_BASE exported for the served model's commands is no mistake for `--model local:DIR` or embedded."""
    command = click.Command("x", params=[click.Option(["--api-base"])])
    for source, fails in (
        (click.core.ParameterSource.ENVIRONMENT, False),
        (click.core.ParameterSource.COMMANDLINE, True),
    ):
        ctx = click.Context(command)
        ctx.set_parameter_source("api_base", source)
        with ctx:
            if fails:
                with pytest.raises(WdtkError, match="runs in this process"):
                    prepare_model("embedded", "http://127.0.0.1:8001/v1")
            else:
                assert prepare_model("embedded", "http://127.0.0.1:8001/v1") == "embedded"
