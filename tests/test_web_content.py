"""Web content never crashes a run: a corpus of malformed URLs (as models write them) and malformed responses (as
servers send them, byte for byte) fed to the fetcher, the visit tool and the agent; every one ends as a FetchError
or a tool response that says what failed, and the rollout goes on."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from servers.openai_server import Reply

from wdtk.synth.agent.fetch import Fetcher, FetchError
from wdtk.synth.agent.loop import Agent, AgentConfig
from wdtk.synth.agent.visit import UNREACHABLE, Visitor
from wdtk.synth.llm.client import LLMClient
from wdtk.synth.llm.factory import make_llm

LOCAL = Fetcher(allowed_hosts=("127.0.0.1",), timeout=5.0)
BAD_URLS = [
    "http://a..b/x",  # an empty label: getaddrinfo's IDNA codec raised a bare UnicodeError here
    "http://" + "a" * 64 + ".example.com/",  # a label over 63 characters: the same UnicodeError
    "http://" + "ab." * 90 + "com/",  # a name over 253 characters
    "http:\\\\evil.example\\x",
    "data:text/html,<p>hi</p>",
    "javascript:alert(1)",
    "http://[::1",
    "http://exa mple.com/",
    "http://xn--zz.com/",  # an invalid A-label: idna.IDNAError
    "https://例え..テスト/",
    "",
    "   ",
    "http://:80/",
    "http://host.example:99999/",
    "http://host.example:abc/",
    "//no-scheme.example/x",
    "http://%zz/",
    "http://a\x00b/",
    "http://.com/",
    "http://\u202e.example/",
    "http://user:pw@/x",
    "x" * 100_000,
    "http://" + "a" * 100_000 + ".com/",
]
RAW = {  # path -> the raw bytes a server answers with, then it closes the connection
    "/to-data": b"HTTP/1.1 302 Found\r\nLocation: data:text/html,<p>x</p>\r\nContent-Length: 0\r\n\r\n",
    "/to-backslash": b"HTTP/1.1 301 Moved\r\nLocation: http:\\\\evil.example\\x\r\nContent-Length: 0\r\n\r\n",
    "/to-bad-host": b"HTTP/1.1 302 Found\r\nLocation: http://a..b/x\r\nContent-Length: 0\r\n\r\n",
    "/to-bytes": b"HTTP/1.1 302 Found\r\nLocation: http://\xff\xfe\x00x/\r\nContent-Length: 0\r\n\r\n",
    "/to-long": b"HTTP/1.1 302 Found\r\nLocation: http://" + b"a" * 70 + b".example/\r\nContent-Length: 0\r\n\r\n",
    "/bad-length": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: abc\r\n\r\n<p>hi</p>",
    "/short-body": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5000\r\n\r\n<p>cut",
    "/bad-gzip": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\n"
    b"not gzip!",
    "/idna-charset": b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=idna\r\nContent-Length: 24\r\n\r\n"
    b"<p>Hello \xff\xfe world</p>",
    "/bogus-charset": b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=x-nonsense\r\nContent-Length: 9\r\n\r\n"
    b"<p>hi</p>",
    "/binary": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 12\r\n\r\n"
    b"\x00\x01\x02\xff\xfe\x89PNG\r\n\x1a\n",
    "/xml-decl": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 60\r\n\r\n"
    b'<?xml version="1.0" encoding="utf-16"?><html><p>x</p></html>',
    "/no-colon": b"HTTP/1.1 200 OK\r\nthis header has no colon\r\n\r\n<p>hi</p>",
    "/not-http": b"SSH-2.0-OpenSSH_9.6\r\n",
    "/empty": b"",
    "/nul-html": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 20\r\n\r\n"
    b"<p>\x00\x00\x00 nul \x00</p>\x00\x00",
}


@pytest.fixture(scope="module")
def raw_server():
    """A server on 127.0.0.1 that answers each path in RAW with exactly those bytes; its base URL."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode("latin-1")
            writer.write(RAW.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, IndexError):
            pass
        finally:
            writer.close()

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    server = asyncio.run_coroutine_threadsafe(asyncio.start_server(serve, "127.0.0.1", 0), loop).result()
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    loop.call_soon_threadsafe(server.close)


@pytest.mark.parametrize("url", BAD_URLS, ids=lambda u: repr(u)[:40])
def test_a_malformed_url_is_a_fetch_error_that_says_why(url):
    with pytest.raises(FetchError) as failed:
        asyncio.run(LOCAL.fetch(url))
    assert 0 < len(str(failed.value)) < 600  # one readable line, never the whole 100,000-character URL


@pytest.mark.parametrize("path", sorted(RAW))
def test_a_malformed_response_is_a_fetch_error_or_a_page(raw_server, path):
    try:
        page = asyncio.run(LOCAL.fetch(raw_server + path))
    except FetchError as e:
        assert str(e)
    else:
        assert isinstance(page.text, str)


def test_redirects_to_bad_targets_say_what_was_wrong(raw_server):
    expected = {"/to-data": "unusable redirect", "/to-bad-host": "invalid host", "/to-long": "longer than 63"}
    for path, why in expected.items():
        with pytest.raises(FetchError, match=why):
            asyncio.run(LOCAL.fetch(raw_server + path))


def visit_then_answer(urls: list[str]):
    """A scripted model: visits each URL in turn (one per turn), then answers."""

    def respond(body: dict) -> str:
        messages = body["messages"]
        if messages[0]["content"].startswith("You read one web page"):
            return json.dumps({"evidence": "none", "summary": "nothing"})
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if turn < len(urls):
            call = {"name": "visit", "arguments": {"url": [urls[turn]], "goal": "anything"}}
            return f"<think>look</think>\n<tool_call>\n{json.dumps(call)}\n</tool_call>"
        return "<think>done</think>\n<answer>no idea</answer>"

    return respond


def test_the_agent_goes_on_after_every_malformed_url_and_response(openai_server, qa_run, raw_server):
    """The model supplies the URLs; the corpus (a BM25 index, whose URL canonicalisation also choked on bad hosts)
    and the fetcher both see them. Each turn gets a tool response naming the problem, and the rollout answers."""
    from wdtk.synth.search.bm25 import BM25Index

    # the format lets only http(s) URLs through to the tool (others end the rollout as a format error, by design)
    urls = [u for u in BAD_URLS if u.startswith(("http://", "https://")) and len(u) < 1000]
    urls += [raw_server + p for p in sorted(RAW)]
    openai_server.responder = visit_then_answer(urls)
    client = LLMClient(make_llm("agent-model", api_base=openai_server.base_url), max_retries=0)
    index = BM25Index.load(qa_run / "index")
    agent = Agent(client, index, Visitor(client, corpus=index, fetcher=LOCAL), AgentConfig(max_calls=len(urls) + 1))
    rollout = asyncio.run(agent.run("What is at these addresses?"))
    assert rollout.termination == "answer", rollout.detail
    responses = [m["content"] for m in rollout.messages if m["role"] == "tool"]
    assert len(responses) == len(urls)
    failed = [r for r in responses if r.startswith(UNREACHABLE)]
    assert len(failed) >= len(urls) - 4  # a few raw responses are readable pages (binary, NULs ...), and are read
    assert all("(" in r and len(r) > len(UNREACHABLE) + 5 for r in failed)  # each says what failed


def test_an_unexpected_tool_error_is_the_tool_response(openai_server, qa_run):
    """Whatever a tool raises (here a corpus that breaks) becomes the observation; the rollout is not lost."""

    class Broken:
        def get(self, url):
            raise UnicodeError("label empty or too long")

        async def search(self, query, k=5):
            raise ValueError("cannot parse query")

    openai_server.queue(
        Reply(text='<think>s</think><tool_call>{"name": "search", "arguments": {"query": ["x"]}}</tool_call>'),
        Reply(text="<think>d</think><answer>no</answer>"),
    )
    client = LLMClient(make_llm("agent-model", api_base=openai_server.base_url), max_retries=0)
    agent = Agent(client, Broken(), Visitor(client, corpus=Broken(), fetcher=LOCAL))
    rollout = asyncio.run(agent.run("q?"))
    assert rollout.termination == "answer"
    assert rollout.messages[3]["content"].startswith("The search tool failed: ValueError: cannot parse query")
