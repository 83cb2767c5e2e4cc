"""A fake OpenAI-compatible server on 127.0.0.1 that speaks real HTTP/1.1, for tests and benchmarks.

Start it as a context manager (or with the `openai_server` fixture in tests/conftest.py):

    with FakeOpenAIServer() as server:
        llm = make_llm("my-model", api_base=server.base_url)   # "http://127.0.0.1:PORT/v1"
        server.queue(Reply.rate_limited(retry_after=1), Reply(text="hello"))
        ...
        server.requests[0]["messages"]   # the JSON bodies it received, in order

Routes: `POST /v1/chat/completions` and `GET /v1/models`; anything else is a 404. What a chat request gets:
1. the next `Reply` from the FIFO filled by `queue(...)`, if any; else
2. `responder(body) -> Reply | str | dict` when one was given (a str is the reply text, a dict the whole JSON body);
3. else a deterministic echo: `"echo: <last user message>"` with word-count usage.

A `Reply` scripts one answer: `text`, `reasoning` (sent as `message.reasoning_content`), `usage`, `finish_reason`,
`status` and `headers`, `delay` seconds before answering (timeouts), `body` to send verbatim (non-JSON bodies),
`drop=True` to close the connection without answering, `truncate=True` to send half the body under a full
Content-Length. Shortcuts: `Reply.rate_limited(retry_after)`, `Reply.error(status)`, `Reply.dropped()`,
`Reply.truncated()`, `Reply.garbage()`, `Reply.slow(seconds)`, `Reply.hang()` (no answer until the client gives up
or the server stops). `FaultyResponder(inner, rate)` wraps a responder so a share of calls get a random fault.

What the server records, per chat request: `requests` (JSON bodies), `request_headers` (lower-cased names),
`arrivals` (time.monotonic()); and `request_count`, `in_flight`, `max_in_flight` (concurrent chat requests being
answered). `latency` delays every chat reply (bench); `responder` may be set after start. `reset()` clears the
records and the FIFO. Run it alone (`python tests/servers/openai_server.py --latency 0.1`) to
serve from another process: it prints its base URL on the first line of stdout, then serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class Reply:
    """One scripted answer to a chat request."""

    text: str = "ok"
    reasoning: str | None = None
    usage: dict | None = None
    finish_reason: str = "stop"
    status: int = 200
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    body: bytes | str | dict | None = None
    drop: bool = False
    truncate: bool = False

    @classmethod
    def rate_limited(cls, retry_after: float | None = None) -> Reply:
        """A 429, with a Retry-After header when `retry_after` is given."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return cls(status=429, headers=headers, body={"error": {"message": "rate limited", "type": "rate_limit"}})

    @classmethod
    def error(cls, status: int = 500, message: str = "boom") -> Reply:
        """An HTTP error with an OpenAI-style error body."""
        return cls(status=status, body={"error": {"message": message, "type": "fake_error", "code": status}})

    @classmethod
    def dropped(cls) -> Reply:
        """Close the connection without answering."""
        return cls(drop=True)

    @classmethod
    def truncated(cls) -> Reply:
        """Send half of a normal body, then close."""
        return cls(truncate=True)

    @classmethod
    def garbage(cls) -> Reply:
        """A 200 whose body is not JSON."""
        return cls(body=b"<html>upstream hiccup</html>", headers={"Content-Type": "text/html"})

    @classmethod
    def slow(cls, seconds: float, text: str = "slow") -> Reply:
        """A normal answer after `seconds`."""
        return cls(text=text, delay=seconds)

    @classmethod
    def hang(cls) -> Reply:
        """Accept the request and never answer (an hour, in practice: until the client gives up)."""
        return cls(delay=3600.0)


FAULTS = {  # what a flaky endpoint does, by how often (of the faulty calls)
    "429": 3,
    "500": 2,
    "503": 2,
    "hang": 2,
    "drop": 2,
    "truncated": 2,
    "garbage": 2,
    "slow": 1,
}


def fault(kind: str) -> Reply:
    """One scripted fault by name (the keys of FAULTS)."""
    return {
        "429": lambda: Reply.rate_limited(retry_after=1),
        "500": lambda: Reply.error(500),
        "503": lambda: Reply.error(503, "overloaded"),
        "hang": Reply.hang,
        "drop": Reply.dropped,
        "truncated": Reply.truncated,
        "garbage": Reply.garbage,
        "slow": lambda: Reply.slow(3.0),
    }[kind]()


class FaultyResponder:
    """Answers like `inner`, except that a `rate` share of calls get a fault drawn from FAULTS (seeded); the slow
    fault still answers, after a delay. `counts` says how many of each were served."""

    def __init__(self, inner: Callable[[dict], Reply | str | dict], rate: float = 0.2, seed: int = 0) -> None:
        self.inner, self.rate = inner, rate
        self.random = random.Random(seed)
        self.kinds = [k for k, n in FAULTS.items() for _ in range(n)]
        self.counts: collections.Counter = collections.Counter()

    def __call__(self, body: dict) -> Reply | str | dict:
        if self.random.random() >= self.rate:
            return self.inner(body)
        kind = self.random.choice(self.kinds)
        self.counts[kind] += 1
        if kind == "slow":
            answer = self.inner(body)
            if isinstance(answer, Reply):
                return dataclasses.replace(answer, delay=3.0)
            return Reply(text=answer, delay=3.0) if isinstance(answer, str) else Reply(body=answer, delay=3.0)
        return fault(kind)


def echo(body: dict) -> Reply:
    """The default answer: echo the last user message."""
    users = [m.get("content") for m in body.get("messages", []) if m.get("role") == "user"]
    return Reply(text=f"echo: {users[-1] if users else ''}")


def completion_body(request: dict, reply: Reply) -> dict:
    """The JSON body of a chat completion answering `request` with `reply`."""
    message = {"role": "assistant", "content": reply.text}
    if reply.reasoning is not None:
        message["reasoning_content"] = reply.reasoning
    prompt_words = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
    usage = (
        dict(reply.usage)
        if reply.usage
        else {"prompt_tokens": prompt_words, "completion_tokens": len(reply.text.split())}
    )
    usage.setdefault("total_tokens", usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": request.get("model", "fake"),
        "usage": usage,
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}],
    }


def http_response(status: int, body: bytes, headers: dict) -> bytes:
    """An HTTP/1.1 keep-alive response."""
    head = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"] + [f"{k}: {v}" for k, v in head.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class FakeOpenAIServer:
    """An OpenAI-compatible HTTP server in a background thread with its own asyncio loop (see module docstring)."""

    def __init__(
        self, responder: Callable[[dict], Reply | str | dict] | None = None, *, latency: float = 0.0, port: int = 0
    ) -> None:
        self.responder, self.latency, self.port = responder, latency, port
        self.replies: collections.deque[Reply] = collections.deque()
        self.requests: list[dict] = []
        self.request_headers: list[dict] = []
        self.arrivals: list[float] = []
        self.in_flight = self.max_in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, 'http://127.0.0.1:PORT/v1'."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def request_count(self) -> int:
        """How many chat requests arrived."""
        return len(self.requests)

    def queue(self, *replies: Reply | str) -> None:
        """Answer the next chat requests with `replies`, in order (a str is a reply text)."""
        self.replies.extend(Reply(text=r) if isinstance(r, str) else r for r in replies)

    def reset(self) -> None:
        """Forget recorded requests and queued replies."""
        self.replies.clear()
        self.requests.clear()
        self.request_headers.clear()
        self.arrivals.clear()
        self.max_in_flight = self.in_flight

    def start(self) -> FakeOpenAIServer:
        """Bind and serve in a daemon thread; returns self."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-openai", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._bind(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Close the listener and every open connection, then end the thread."""
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _bind(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        """Stop listening and end every connection task, mid-reply ones included (slow replies)."""
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests on one keep-alive connection until the client closes it."""
        self._connections.add(asyncio.current_task())
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass  # the client went away mid-request, or stop() ended the connection: nothing to answer
        finally:
            self._connections.discard(asyncio.current_task())
            writer.transport.abort()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; False when the connection should close."""
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
        body = await reader.readexactly(int(headers.get("content-length", 0)))
        path = path.split("?", 1)[0]
        if method == "POST" and path.endswith("/chat/completions"):
            self.request_headers.append(headers)
            return await self._chat(orjson.loads(body), writer)
        if method == "GET" and path.endswith("/models"):
            models = {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "wdtk"}]}
            writer.write(http_response(200, orjson.dumps(models), {}))
        else:
            writer.write(http_response(404, b'{"error": {"message": "not found"}}', {}))
        await writer.drain()
        return True

    async def _chat(self, request: dict, writer: asyncio.StreamWriter) -> bool:
        """Answer one chat completion request as scripted."""
        self.requests.append(request)
        self.arrivals.append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply = self._next_reply(request)
            if self.latency or reply.delay:
                await asyncio.sleep(self.latency + reply.delay)
            return await self._send(request, reply, writer)
        finally:
            self.in_flight -= 1

    def _next_reply(self, request: dict) -> Reply:
        if self.replies:
            return self.replies.popleft()
        if self.responder is None:
            return echo(request)
        reply = self.responder(request)
        if isinstance(reply, str):
            return Reply(text=reply)
        return Reply(body=reply) if isinstance(reply, dict) else reply

    async def _send(self, request: dict, reply: Reply, writer: asyncio.StreamWriter) -> bool:
        if reply.drop:
            writer.transport.abort()
            return False
        if request.get("stream") and reply.body is None:
            reply = Reply.error(400, "the fake server does not stream")
        body = reply.body if reply.body is not None else completion_body(request, reply)
        raw = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else orjson.dumps(body)
        data = http_response(reply.status, raw, reply.headers)
        writer.write(data[: len(data) - len(raw) // 2] if reply.truncate else data)
        await writer.drain()
        return not reply.truncate


def main() -> None:
    """Serve from this process until killed; print the base URL first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every chat reply")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = FakeOpenAIServer(latency=args.latency, port=args.port).start()
    print(server.base_url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
