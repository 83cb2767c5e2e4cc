"""LLM backends over real HTTP to the fake OpenAI server: the request sent, the reply parsed, errors classified."""

from __future__ import annotations

import asyncio
import sys
import types

import openai
import pytest
from servers import FakeOpenAIServer, Reply

from wdtk.synth.llm.base import Completion, PermanentLLMError, Sampling, TransientLLMError
from wdtk.synth.llm.factory import make_llm
from wdtk.synth.llm.litellm import LiteLLM
from wdtk.synth.llm.openai import OpenAILLM
from wdtk.synth.llm.pricing import price
from wdtk.synth.net import retry_after

USER = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


@pytest.fixture(params=["aiohttp", "sdk"])
def transport(request) -> str:
    """Each OpenAI backend test runs over both transports."""
    return request.param


def complete(llm, sampling: Sampling | None = None, **kwargs) -> Completion:
    """One completion from a fresh event loop."""
    return asyncio.run(llm.complete(USER, sampling or Sampling(), **kwargs))


def outcomes(llm, n: int, timeout: float = 5.0) -> list:
    """`n` sequential completions in one loop, each the Completion or the exception raised."""

    async def run():
        results = []
        for _ in range(n):
            try:
                results.append(await llm.complete(USER, Sampling(), timeout=timeout))
            except Exception as e:  # the test inspects which
                results.append(e)
        return results

    return asyncio.run(run())


def test_openai_backend_sends_the_request_and_parses_the_reply(openai_server, transport):
    openai_server.queue(
        Reply(
            text="Paris",
            reasoning="France's capital is Paris.",
            finish_reason="length",
            usage={"prompt_tokens": 12, "completion_tokens": 3},
        )
    )
    llm = make_llm("qwen-7b", api_base=openai_server.base_url, transport=transport)
    sampling = Sampling(temperature=0.7, top_p=0.9, max_tokens=50, seed=11, stop=("END",), sample_index=2)
    got = complete(llm, sampling, json_schema=SCHEMA)
    assert got == Completion(
        text="Paris",
        reasoning="France's capital is Paris.",
        prompt_tokens=12,
        completion_tokens=3,
        cost=0.0,
        model="qwen-7b",
        finish_reason="length",
        constrained=True,  # the request asked the server to hold the reply to the schema
    )
    sent = openai_server.requests[0]
    assert sent["model"] == "qwen-7b" and sent["messages"] == USER
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["stop"]) == (0.7, 0.9, 50, ["END"])
    assert sent["seed"] == 13  # seed + sample_index: k samples with one seed must differ
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA, "strict": False},
    }
    assert "stream" not in sent
    assert llm.name == "openai:qwen-7b"  # never the address: ids must not change with the endpoint


def test_default_sampling_sends_only_the_usual_fields_and_the_key(openai_server, transport, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    complete(make_llm("m", api_base=openai_server.base_url, transport=transport))
    complete(make_llm("m", api_base=openai_server.base_url, transport=transport, api_key="sk-test"))
    assert set(openai_server.requests[0]) == {"model", "messages", "temperature", "max_tokens"}
    assert [h["authorization"] for h in openai_server.request_headers] == ["Bearer EMPTY", "Bearer sk-test"]
    assert openai_server.request_headers[0]["content-type"] == "application/json"


@pytest.mark.parametrize("model", ["o3-mini", "gpt-5-mini"])
def test_openai_reasoning_models_get_max_completion_tokens_and_no_sampling_fields(openai_server, transport, model):
    llm = make_llm(f"openai:{model}", api_base=openai_server.base_url, transport=transport)
    complete(llm, Sampling(temperature=0.6, top_p=0.9, max_tokens=77, stop=("<tool_response>",)))
    sent = openai_server.requests[0]
    assert sent["max_completion_tokens"] == 77
    assert not {"max_tokens", "temperature", "top_p", "stop"} & set(sent)


def test_cost_comes_from_the_local_price_map(openai_server):
    openai_server.queue(Reply(text="x", usage={"prompt_tokens": 1000, "completion_tokens": 1000}))
    got = complete(make_llm("openai/gpt-4o-mini", api_base=openai_server.base_url))
    assert got.cost == pytest.approx(price("gpt-4o-mini", 1000, 1000)) and got.cost > 0
    assert price("no-such-model-anywhere", 1000, 1000) == 0.0


def test_http_failures_are_classified(openai_server, transport):
    openai_server.queue(
        Reply.rate_limited(retry_after=2),
        Reply.error(503),
        Reply.error(500),
        Reply.dropped(),
        Reply.truncated(),
        Reply.garbage(),
        Reply.slow(3),
        Reply.error(400),
        Reply.error(404),
        Reply(body={"no": "choices"}),
    )
    got = outcomes(make_llm("m", api_base=openai_server.base_url, transport=transport), 10, timeout=0.3)
    assert [type(e).__name__ for e in got] == ["TransientLLMError"] * 7 + ["PermanentLLMError"] * 2 + [
        "TransientLLMError"
    ]
    assert got[0].retry_after == 2.0 and got[1].retry_after is None
    assert "400" in str(got[7])


def test_retry_after_headers():
    assert retry_after({"retry-after": "1.5"}) == 1.5 and retry_after({"Retry-After": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert 50 < retry_after({"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"})
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({}) is None and retry_after(None) is None and retry_after({"retry-after": "soon"}) is None


def test_one_backend_serves_several_event_loops_and_closes_each_session(openai_server, transport):
    llm = make_llm("m", api_base=openai_server.base_url, transport=transport)
    assert complete(llm).text.startswith("echo: ")
    first = llm._http
    # closed when asyncio.run() shut its loop down, without aclose()
    assert first.is_closed() if transport == "sdk" else first.closed
    assert complete(llm).text.startswith("echo: ") and llm._http is not first


def test_litellm_backend_against_the_fake_server(openai_server):
    openai_server.queue(
        Reply(
            text='{"answer": "Paris"}', reasoning="thinking", usage={"prompt_tokens": 1000, "completion_tokens": 500}
        ),
        Reply.rate_limited(retry_after=3),
        Reply.error(400),
    )
    llm = make_llm("openai/gpt-4o-mini", api_base=openai_server.base_url, backend="litellm", api_key="EMPTY")
    assert isinstance(llm, LiteLLM) and llm.name == "litellm:openai/gpt-4o-mini"
    got = complete(llm, Sampling(max_tokens=20, seed=5), json_schema=SCHEMA)
    assert (got.text, got.reasoning, got.prompt_tokens, got.completion_tokens) == (
        '{"answer": "Paris"}',
        "thinking",
        1000,
        500,
    )
    assert got.cost == pytest.approx(price("gpt-4o-mini", 1000, 500)) and got.cost > 0
    sent = openai_server.requests[0]
    assert sent["messages"] == USER and sent["max_tokens"] == 20 and sent["seed"] == 5
    assert sent["response_format"]["json_schema"]["schema"] == SCHEMA
    rate_limited, bad = outcomes(llm, 2)
    assert isinstance(rate_limited, TransientLLMError) and rate_limited.retry_after == 3.0
    assert isinstance(bad, PermanentLLMError)


def test_make_llm_routing(monkeypatch):
    openai_default = make_llm("openai/gpt-4o-mini")
    assert isinstance(openai_default, OpenAILLM) and openai_default.name == "openai:gpt-4o-mini"
    assert make_llm("m", api_base="http://10.0.0.1:8000/v1").name == make_llm("m", api_base="http://h:1/v1").name
    assert make_llm("openai:qwen").model == "qwen"
    assert isinstance(make_llm("Qwen/Qwen2.5-7B", api_base="http://h/v1"), OpenAILLM)
    assert isinstance(make_llm("anthropic/claude-3-5-haiku-latest"), LiteLLM)
    assert isinstance(make_llm("openai/x", backend="litellm"), LiteLLM)
    embedded = types.ModuleType("wdtk.synth.llm.embedded")
    embedded.EmbeddedLLM = lambda **options: ("embedded", options)
    monkeypatch.setitem(sys.modules, "wdtk.synth.llm.embedded", embedded)
    assert make_llm() == ("embedded", {}) and make_llm("embedded", size="tiny") == ("embedded", {"size": "tiny"})
    with pytest.raises(ValueError, match="model name"):
        make_llm(None, api_base="http://h/v1")
    with pytest.raises(ValueError, match="unknown backend"):
        make_llm("x", backend="grpc")


def test_vllm_without_vllm_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # importing it now raises ImportError, installed or not
    with pytest.raises(ImportError, match="pip install vllm"):
        make_llm("vllm:Qwen/Qwen2.5-0.5B-Instruct")


def reply(conversation: list[dict]) -> types.SimpleNamespace:
    """A vLLM CompletionOutput-alike: the last message upper-cased."""
    return types.SimpleNamespace(text=conversation[-1]["content"].upper(), token_ids=[1, 2], finish_reason="stop")


def fake_vllm(batches: list) -> types.ModuleType:
    """A stand-in `vllm` module whose LLM.chat records its batches and echoes the last message."""
    vllm = types.ModuleType("vllm")
    vllm.sampling_params = types.ModuleType("vllm.sampling_params")
    vllm.SamplingParams = lambda **params: params
    vllm.sampling_params.StructuredOutputsParams = lambda **constraint: constraint

    class LLM:
        def __init__(self, model: str, **options):
            self.model = model

        def chat(self, conversations, params, use_tqdm=True):
            batches.append((conversations, params))
            return [types.SimpleNamespace(prompt_token_ids=[0] * 5, outputs=[reply(c)]) for c in conversations]

    vllm.LLM = LLM
    return vllm


def test_vllm_backend_batches_concurrent_requests(monkeypatch):
    batches: list = []
    vllm = fake_vllm(batches)
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", vllm.sampling_params)
    llm = make_llm("vllm:tiny", batch_window=0.01)

    async def run():
        calls = [
            llm.complete(
                [{"role": "user", "content": f"q{i}"}],
                Sampling(seed=1, sample_index=i),
                json_schema=SCHEMA if i == 0 else None,
            )
            for i in range(10)
        ]
        return await asyncio.gather(*calls)

    got = asyncio.run(run())
    assert [c.text for c in got] == [f"Q{i}" for i in range(10)]
    assert (got[0].prompt_tokens, got[0].completion_tokens, got[0].model) == (5, 2, "tiny")
    assert len(batches) == 1 and len(batches[0][0]) == 10
    params = batches[0][1]
    assert params[0]["structured_outputs"] == {"json": SCHEMA} and "structured_outputs" not in params[1]
    assert [p["seed"] for p in params] == list(range(1, 11))


def test_fake_server_models_route_responder_and_reset():
    replies = iter(["first", {"id": "x", "choices": [{"message": {"content": "raw body"}}]}])
    with FakeOpenAIServer(responder=lambda body: next(replies)) as server:
        sdk = openai.OpenAI(base_url=server.base_url, api_key="EMPTY", max_retries=0)
        assert [m.id for m in sdk.models.list()] == ["fake"]
        llm = make_llm("m", api_base=server.base_url)
        assert [c.text for c in outcomes(llm, 2)] == ["first", "raw body"]
        assert server.request_count == 2 and server.max_in_flight == 1
        server.reset()
        assert server.request_count == 0 and server.arrivals == []


def chain(error: BaseException) -> list[BaseException]:
    """`error` and its causes and contexts, in order, stopping (and failing) at the first loop."""
    seen, out, current = set(), [], error
    while current is not None:
        assert id(current) not in seen, f"{type(current).__name__} is its own cause or context: {out}"
        seen.add(id(current))
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


FAULT_REPLIES = {
    "429": Reply.rate_limited(retry_after=0),
    "500": Reply.error(500),
    "400": Reply.error(400, "bad"),
    "drop": Reply.dropped(),
    "truncated": Reply.truncated(),
    "garbage": Reply.garbage(),
    "not a completion": Reply(body={"choices": []}),
    "hang": Reply.hang(),
}


@pytest.mark.parametrize("backend", ["aiohttp", "sdk", "litellm"])
def test_no_error_is_its_own_cause(openai_server, backend):
    """Every kind of failed reply ends as an error whose cause chain ends; a chain that loops made Dask's error
    reporting (which walks __cause__) loop forever and eat a worker's memory."""
    openai_server.queue(*FAULT_REPLIES.values())
    if backend == "litellm":
        llm = make_llm("openai/m", api_base=openai_server.base_url, backend="litellm", api_key="EMPTY")
    else:
        llm = make_llm("m", api_base=openai_server.base_url, transport=backend)
    errors = outcomes(llm, len(FAULT_REPLIES), timeout=1.0)
    for kind, error in zip(FAULT_REPLIES, errors, strict=True):
        assert isinstance(error, TransientLLMError | PermanentLLMError), (kind, error)
        chain(error)


def test_an_unknown_error_is_raised_as_it_is_not_as_its_own_cause(openai_server, monkeypatch):
    """map_error passes errors it does not know through unchanged: they must not be chained to themselves."""
    llm = make_llm("m", api_base=openai_server.base_url)

    async def boom(body, timeout):
        raise ValueError("something no backend expected")

    monkeypatch.setattr(llm, "_post", boom)
    [error] = outcomes(llm, 1)
    assert isinstance(error, ValueError) and error.__cause__ is None and len(chain(error)) == 1
