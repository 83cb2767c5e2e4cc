"""LLMClient over the real openai SDK backend and real HTTP: retries, limits, timeouts, cache, usage, JSON."""

from __future__ import annotations

import asyncio
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import Reply

from wdtk.synth.llm.base import Completion, PermanentLLMError, Sampling, TransientLLMError
from wdtk.synth.llm.client import JSONResult, LLMClient, ResponseCache, Usage, cache_key
from wdtk.synth.llm.factory import make_llm
from wdtk.synth.llm.jsonout import parse_json

SCHEMA = {
    "type": "object",
    "properties": {
        "question": {"type": "string"},
        "answer": {"type": "string"},
        "hops": {"type": "integer", "minimum": 1},
    },
    "required": ["question", "answer"],
}


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def client_for(server, **options) -> LLMClient:
    """A client of the fake server with near-zero backoff, so retry tests take milliseconds."""
    client = LLMClient(make_llm("m", api_base=server.base_url), **options)
    client.backoff_base = 0.001
    return client


def run(coro):
    return asyncio.run(coro)


async def together(*coros) -> list:
    return await asyncio.gather(*coros)


def test_retries_a_429_after_its_retry_after(openai_server):
    openai_server.queue(Reply.rate_limited(retry_after=0.5), "fine")
    client = client_for(openai_server)
    assert run(client.chat(ask("hi"), stage="s")).text == "fine"
    first, second = openai_server.arrivals
    assert 0.45 <= second - first < 2.0
    assert client.usage.summary()["s"]["retries"] == 1


def test_a_429_holds_back_other_requests_too(openai_server):
    openai_server.queue(Reply.rate_limited(retry_after=0.5))
    client = client_for(openai_server)

    async def later():
        await asyncio.sleep(0.15)  # after the 429 came back
        return await client.chat(ask("b"))

    run(together(client.chat(ask("a")), later()))
    assert all(t - openai_server.arrivals[0] >= 0.45 for t in openai_server.arrivals[1:])


def test_retries_server_errors_drops_truncation_and_garbage(openai_server):
    openai_server.queue(Reply.error(500), Reply.error(503), Reply.dropped(), Reply.truncated(), Reply.garbage(), "ok")
    client = client_for(openai_server)
    assert run(client.chat(ask("hi"))).text == "ok"
    assert openai_server.request_count == 6 and client.usage.summary()["default"]["retries"] == 5


def test_a_slow_reply_times_out_and_is_retried(openai_server):
    openai_server.queue(Reply.slow(3), "quick")
    client = client_for(openai_server, timeout=0.3)
    start = time.monotonic()
    assert run(client.chat(ask("hi"))).text == "quick"
    assert time.monotonic() - start < 2.0 and openai_server.request_count == 2


def test_permanent_errors_are_not_retried(openai_server):
    openai_server.queue(Reply.error(400, "bad param"))
    client = client_for(openai_server)
    with pytest.raises(PermanentLLMError, match="bad param"):
        run(client.chat(ask("hi"), stage="s"))
    assert openai_server.request_count == 1
    assert client.usage.summary()["s"] | {} == {
        "calls": 1,
        "cache_hits": 0,
        "retries": 0,
        "errors": 1,
        "hedges": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost": 0,
    }


def test_retries_run_out(openai_server):
    openai_server.queue(*[Reply.error(502)] * 3)
    client = client_for(openai_server, max_retries=2)
    with pytest.raises(TransientLLMError):
        run(client.chat(ask("hi")))
    assert openai_server.request_count == 3 and client.usage.summary()["default"]["errors"] == 1


def test_cache_hits_cost_no_request_and_persist(openai_server, tmp_path):
    path = tmp_path / "cache.sqlite"
    client = client_for(openai_server, cache=ResponseCache(path))
    first = run(client.chat(ask("hi"), prompt_version="v1", stage="s"))
    again = run(client.chat(ask("hi"), prompt_version="v1", stage="s"))
    assert openai_server.request_count == 1 and not first.cached and again.cached
    assert again.text == first.text and again.prompt_tokens == first.prompt_tokens
    reopened = client_for(openai_server, cache=ResponseCache(path))
    assert run(reopened.chat(ask("hi"), prompt_version="v1")).cached and openai_server.request_count == 1
    run(reopened.chat(ask("hi"), prompt_version="v2"))
    run(reopened.chat(ask("hi"), Sampling(sample_index=1), prompt_version="v1"))
    assert openai_server.request_count == 3
    stats = client.usage.summary()["s"]
    assert (stats["calls"], stats["cache_hits"], stats["prompt_tokens"]) == (2, 1, first.prompt_tokens)


KILLED_WRITER = """
import os, signal, sys
from wdtk.synth.llm.client import ResponseCache
from wdtk.synth.llm.base import Completion
ResponseCache(sys.argv[1]).put("k", Completion(text="kept", prompt_tokens=3, cost=0.5, model="m"))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_cache_survives_sigkill_right_after_put(tmp_path):
    path = tmp_path / "cache.sqlite"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert ResponseCache(path).get("k") == Completion(text="kept", prompt_tokens=3, cost=0.5, model="m", cached=True)


PARALLEL_WRITER = """
import sys
from wdtk.synth.llm.client import ResponseCache
from wdtk.synth.llm.base import Completion
cache = ResponseCache(sys.argv[1])
for i in range(100):
    cache.put(f"{sys.argv[2]}-{i}", Completion(text=str(i)))
    assert cache.get(f"{sys.argv[2]}-{i}").text == str(i)
"""


def test_cache_is_shared_by_processes_writing_at_once(tmp_path):
    path = tmp_path / "cache.sqlite"
    procs = [subprocess.Popen([sys.executable, "-c", PARALLEL_WRITER, str(path), name]) for name in "abc"]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    cache = pickle.loads(pickle.dumps(ResponseCache(path)))  # pickles by path: workers reopen it
    assert len(cache) == 300 and cache.get("b-99").text == "99"


def _open_at_once(path, name, barrier, errors) -> None:
    try:
        barrier.wait()
        cache = ResponseCache(path)  # both processes turn the new file to WAL at the same moment
        for i in range(20):
            cache.put(f"{name}-{i}", Completion(text=str(i)))
    except Exception as exc:  # reported to the test, which fails on it
        errors.put(f"{type(exc).__name__}: {exc}")


def test_workers_opening_a_new_cache_at_once_do_not_fail(tmp_path):
    """Two Dask workers create the cache file together: switching it to WAL must wait, not fail as 'locked'."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    errors = ctx.Queue()
    for trial in range(15):
        path, barrier = tmp_path / f"c{trial}.sqlite", ctx.Barrier(2)
        procs = [ctx.Process(target=_open_at_once, args=(path, n, barrier, errors)) for n in "ab"]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert errors.empty(), errors.get()
        assert len(ResponseCache(path)) == 40


def test_cache_key_covers_every_input():
    base = ("llm", ask("q"), Sampling(), "v1", SCHEMA)
    key = cache_key(*base)
    assert key == cache_key(
        "llm", [{"content": "q", "role": "user"}], Sampling(), "v1", dict(reversed(SCHEMA.items()))
    )
    variants = [
        ("other", *base[1:]),
        (base[0], ask("Q"), *base[2:]),
        (*base[:2], Sampling(temperature=1), *base[3:]),
        (*base[:2], Sampling(sample_index=1), *base[3:]),
        (*base[:3], "v2", SCHEMA),
        (*base[:4], None),
    ]
    assert len({key, *(cache_key(*v) for v in variants)}) == 7 and len(key) == 64


def test_requests_per_minute_are_spaced(openai_server):
    client = client_for(openai_server, rpm=300)  # one request per 0.2 s

    async def paced() -> None:
        await client.chat(ask("warm-up"))  # opens the session (and imports the SDK): that lag is not pacing
        openai_server.reset()
        await together(*(client.chat(ask(f"q{i}")) for i in range(5)))

    run(paced())
    gaps = [b - a for a, b in zip(openai_server.arrivals, openai_server.arrivals[1:], strict=False)]
    assert len(gaps) == 4 and all(gap >= 0.12 for gap in gaps) and 0.7 <= sum(gaps) < 2.0, gaps


def test_tokens_per_minute_charge_the_real_usage(openai_server):
    # 200 chars are estimated at 50 tokens (0.5 s at 100 tokens/s); the server reports 20, so calls go 0.2 s apart
    openai_server.responder = lambda body: Reply(text="ok", usage={"prompt_tokens": 15, "completion_tokens": 5})
    client = client_for(openai_server, tpm=6000)

    async def calls():
        for i in range(4):
            await client.chat(ask(f"{i}" * 200))

    start = time.monotonic()
    run(calls())
    assert 0.5 <= time.monotonic() - start < 1.3


def test_concurrency_is_bounded(openai_server):
    openai_server.latency = 0.05
    client = client_for(openai_server, concurrency=3)
    run(together(*(client.chat(ask(f"q{i}")) for i in range(12))))
    assert openai_server.request_count == 12 and openai_server.max_in_flight == 3


def test_one_client_serves_several_event_loops_and_pickles(openai_server, tmp_path):
    client = client_for(openai_server, concurrency=2, cache=ResponseCache(tmp_path / "c.sqlite"))
    for loop_round in range(2):
        run(together(*(client.chat(ask(f"q{i}"), Sampling(sample_index=loop_round)) for i in range(4))))
    assert openai_server.request_count == 8
    copy = pickle.loads(pickle.dumps(client))  # e.g. to a worker process
    assert run(copy.chat(ask("q0"))).cached and run(copy.chat(ask("new"))).text == "echo: new"
    assert copy.usage.summary()["default"]["calls"] == 10


@pytest.mark.parametrize(
    "text",
    [
        '{"question": "Q?", "answer": "A"}',
        'Here it is:\n```json\n{"question": "Q?", "answer": "A"}\n```\nHope that helps.',
        'Sure! The pair is {"question": "Q?", "answer": "A"} as asked.',
        '<think>maybe {"question": 1}?</think>\n{"question": "Q?", "answer": "A"}',
    ],
)
def test_chat_json_finds_the_object(openai_server, text):
    openai_server.queue(text)
    got = run(client_for(openai_server).chat_json(ask("make a QA pair"), SCHEMA, stage="qa"))
    assert got == JSONResult(value={"question": "Q?", "answer": "A"}, raw=text, error=None, completion=got.completion)
    assert openai_server.requests[0]["response_format"]["json_schema"]["schema"] == SCHEMA


def test_chat_json_reports_bad_output_without_raising(openai_server):
    bad = [
        '{"question": "Q?", "answer": ',
        '{"question": "Q?"}',
        '{"question": "Q?", "answer": "A", "hops": 0}',
        "[1, 2]",
        "",
    ]
    openai_server.queue(*bad)
    client = client_for(openai_server)
    got = [run(client.chat_json(ask(f"q{i}"), SCHEMA)) for i in range(len(bad))]
    assert all(r.value is None for r in got) and [r.raw for r in got] == bad
    assert got[0].error.startswith("not JSON: ")
    assert got[1].error == "schema: field 'answer' is required"
    assert got[2].error.startswith("schema: field 'hops': 0 is less than the minimum")
    assert got[3].error == "not JSON: expected an object, got list" and got[4].error.startswith("not JSON")


def test_parse_json_without_schema():
    assert parse_json('```\n{"a": [1, {"b": 2}]}\n```') == ({"a": [1, {"b": 2}]}, None)
    assert parse_json("no braces here")[0] is None
    assert parse_json('set {x} first, then {"a": "}{"}') == ({"a": "}{"}, None)
    assert parse_json('a stray { and then {"a": 1}') == ({"a": 1}, None)
    # the inner object of a broken outer one is not the answer
    assert parse_json('{"qa": {"q": 1} "b": 2}')[1].startswith("not JSON")


def test_usage_merges_and_pickles():
    a, b = Usage(), Usage()
    a.record("qa", Completion("x", prompt_tokens=10, completion_tokens=2, cost=0.01))
    b.record("qa", Completion("x", prompt_tokens=5, completion_tokens=1, cost=0.02), retries=2)
    b.record("qa", Completion("x", prompt_tokens=5, cached=True))
    b.record("judge", Completion(""), error=True)
    a.merge(pickle.loads(pickle.dumps(b)))
    assert a.summary() == {
        "qa": {
            "calls": 3,
            "cache_hits": 1,
            "retries": 2,
            "errors": 0,
            "hedges": 0,
            "prompt_tokens": 15,
            "completion_tokens": 3,
            "cost": pytest.approx(0.03),
        },
        "judge": {
            "calls": 1,
            "cache_hits": 0,
            "retries": 0,
            "errors": 1,
            "hedges": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost": 0,
        },
    }
    assert a.total()["calls"] == 4


def test_cache_file_lives_where_asked(tmp_path):
    cache = ResponseCache(tmp_path / "deep" / "dir" / "c.sqlite")
    cache.put("k", Completion("v"))
    assert Path(cache.path).exists() and cache.get("missing") is None


def test_a_hung_request_is_raced_by_a_second_copy(openai_server):
    """The first request never gets an answer; once the others show what a normal latency is, it is sent again and
    the copy's answer is taken, long before the 120 s timeout (which would hold up its whole partition)."""
    openai_server.queue(Reply.hang())
    client = client_for(openai_server, timeout=120.0)

    async def go() -> Completion:
        hung = asyncio.ensure_future(client.chat(ask("first"), stage="s"))
        await asyncio.sleep(0.05)
        await together(*(client.chat(ask(f"q{i}")) for i in range(12)))  # what a normal latency is
        return await asyncio.wait_for(hung, 30)  # fails the test instead of waiting out the timeout

    assert run(go()).text == "echo: first"
    stats = client.usage.summary()["s"]
    assert stats["hedges"] == 1 and stats["retries"] == 0 and stats["errors"] == 0
    assert openai_server.request_count == 14  # the hung request, 12 others, and one copy


def test_a_request_waiting_for_a_slot_is_no_straggler(openai_server):
    """Six calls through one slot: the last ones wait over a second for it, past the hedge delay, yet each is sent
    once: the hedge clock starts when a request goes out, so queueing adds no copies to an already full endpoint."""
    openai_server.latency = 0.25
    client = client_for(openai_server, concurrency=1)
    client.gate.latencies.extend([0.05] * 20)  # a known p95: hedge after the 1 s floor
    run(together(*(client.chat(ask(f"q{i}"), stage="s") for i in range(6))))
    assert client.usage.summary()["s"]["hedges"] == 0 and openai_server.request_count == 6


def test_hedges_are_few_and_off_for_in_process_backends(openai_server):
    from wdtk.synth.llm.gate import HEDGE_BURST, HEDGE_SHARE, Gate

    gate = Gate()
    gate.latencies.extend([0.1] * 20)
    assert gate.hedge_delay(120.0) == 1.0  # 2 x p95 (0.2 s), but never sooner than the floor
    gate.sent, gate.hedged = 100, int(HEDGE_SHARE * 100 + HEDGE_BURST)
    assert gate.hedge_delay(120.0) is None  # the budget is spent: an endpoint slow for everyone is not loaded twice
    assert client_for(openai_server).hedge and not LLMClient(make_llm("embedded")).hedge


def test_views_share_the_limits_and_count_their_own_usage(openai_server):
    openai_server.latency = 0.05
    client = client_for(openai_server, concurrency=2)
    a, b = client.view(), client.view()
    run(together(*(v.chat(ask(f"{name}{i}"), stage="s") for name, v in (("a", a), ("b", b)) for i in range(4))))
    assert openai_server.max_in_flight == 2  # one semaphore for both views
    assert a.usage.summary()["s"]["calls"] == b.usage.summary()["s"]["calls"] == 4
