"""Web search for synthesis and trajectory sampling: one small protocol, a local index and two HTTP backends.

engine = make_search("bm25:data/index")            # offline default: a BM25 index over crawled pages
engine = make_search("serper:https://google.serper.dev")   # X-API-KEY from $SERPER_API_KEY
engine = make_search("searxng:http://localhost:8888")
results = await search_many(engine, ["first query", "second query"], k=5)
observation = render_search(results)                # the tool response an agent reads, as in WebDancer
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0  # seconds; a server asking for longer is treated as down rather than waited on


@dataclass(frozen=True)
class Hit:
    """One search result."""

    title: str
    url: str
    snippet: str


class SearchEngine(Protocol):
    """Anything that answers a query with ranked hits."""

    name: str

    async def search(self, query: str, k: int = 5) -> list[Hit]: ...


class SearchError(RuntimeError):
    """A search backend failed in a way retrying will not fix (bad key, bad URL, malformed answer)."""


async def search_many(engine: SearchEngine, queries: list[str], k: int = 5) -> dict[str, list[Hit]]:
    """Run `queries` concurrently; results keyed by query in the order given (duplicates searched once)."""
    unique = list(dict.fromkeys(queries))
    hits = await asyncio.gather(*(engine.search(q, k) for q in unique))
    return dict(zip(unique, hits, strict=True))


def render_search(results: dict[str, list[Hit]]) -> str:
    """WebDancer's search observation: per query a header and a numbered markdown list, queries split by =======."""
    return "\n=======\n".join(_render_one(query, hits) for query, hits in results.items())


def _render_one(query: str, hits: list[Hit]) -> str:
    if not hits:
        return f"No results found for '{query}'. Try with a more general query."
    lines = [f"{i}. [{h.title}]({h.url})\n{h.snippet}" for i, h in enumerate(hits, 1)]
    return f"A search for '{query}' found {len(hits)} results:\n\n## Web Results\n" + "\n\n".join(lines)


def make_search(spec: str) -> SearchEngine:
    """An engine from 'bm25:PATH' (a local index; a bare path means the same), 'serper:URL' or 'searxng:URL'."""
    kind, sep, target = spec.partition(":")
    if not sep:  # a bare path
        kind, target = "bm25", spec
    if kind == "bm25":
        from wdtk.synth.index import BM25Index  # tantivy loads only when a local index is asked for

        return BM25Index.load(Path(target))
    if kind == "serper":
        return SerperSearch(target or "https://google.serper.dev", api_key=os.environ.get("SERPER_API_KEY"))
    if kind == "searxng":
        return SearxngSearch(target)
    raise SearchError(f"unknown search engine {kind!r} in {spec!r}; expected bm25:PATH, serper:URL or searxng:URL")


class LoopClient:
    """An httpx.AsyncClient per event loop, made on first use: a client's pool cannot move between loops."""

    def __init__(self, **options) -> None:
        self.options = options
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            self._http, self._loop = httpx.AsyncClient(**self.options), loop
        return self._http

    async def aclose(self) -> None:
        """Close the pooled connections (when they belong to the running loop; a dead loop's are gone)."""
        if self._http is not None and self._loop is asyncio.get_running_loop():
            await self._http.aclose()
        self._http = None


class HTTPSearch:
    """Shared plumbing of the HTTP backends: one pooled client per event loop, retries with backoff."""

    name = "http"

    def __init__(self, url: str, *, timeout: float = 20.0, retries: int = 3, backoff: float = 1.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise SearchError(f"{self.name}: expected an http(s) URL, got {url!r}")
        self.url, self.retries, self.backoff = url.rstrip("/"), retries, backoff
        self.client = LoopClient(timeout=timeout)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.client.aclose()

    async def request(self, method: str, path: str, **kwargs) -> dict:
        """The JSON answer to one request, retrying 429, 5xx and network errors; SearchError when it gives up."""
        url = self.url + path
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = await self.client().request(method, url, **kwargs)
            except httpx.TransportError as e:
                if last:
                    raise SearchError(f"{self.name}: {type(e).__name__} reaching {url}: {e}") from e
                await asyncio.sleep(self.backoff * 2**attempt)
                continue
            if response.status_code not in RETRY_STATUSES or last:
                return self.decode(response)
            await asyncio.sleep(retry_delay(response, self.backoff * 2**attempt))
        raise AssertionError("unreachable")

    def decode(self, response: httpx.Response) -> dict:
        """The body as a JSON object, or a SearchError that says what went wrong."""
        where = f"{self.name}: {response.request.method} {response.request.url}"
        if response.status_code in (401, 403):
            raise SearchError(f"{where} was refused ({response.status_code}): {self.refusal_hint()}")
        if response.status_code >= 400:
            raise SearchError(f"{where} failed with HTTP {response.status_code}: {response.text[:200]!r}")
        try:
            body = response.json()
        except ValueError:
            raise SearchError(f"{where} answered non-JSON: {response.text[:200]!r}") from None
        if not isinstance(body, dict):
            raise SearchError(f"{where} answered {type(body).__name__}, expected a JSON object")
        return body

    def refusal_hint(self) -> str:
        """What a user should check when the server says 401/403."""
        return "check the credentials"


def retry_delay(response: httpx.Response, default: float) -> float:
    """Seconds to wait before retrying: the server's Retry-After when it sends a usable one."""
    try:
        asked = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return default
    return min(max(asked, 0.0), MAX_RETRY_AFTER)


class SerperSearch(HTTPSearch):
    """Google results through the Serper API, or any server that speaks it (`POST /search`)."""

    name = "serper"

    def __init__(self, url: str = "https://google.serper.dev", *, api_key: str | None = None, **options) -> None:
        super().__init__(url, **options)
        if not api_key:
            raise SearchError("serper: no API key; set SERPER_API_KEY")
        self.api_key = api_key

    async def search(self, query: str, k: int = 5) -> list[Hit]:
        """Top `k` organic results for `query`."""
        body = await self.request("POST", "/search", json={"q": query, "num": k}, headers={"X-API-KEY": self.api_key})
        return [Hit(r.get("title", ""), r["link"], r.get("snippet", "")) for r in _items(body, "organic", "link")][:k]

    def refusal_hint(self) -> str:
        """Serper refuses a missing or wrong key."""
        return "check SERPER_API_KEY"


class SearxngSearch(HTTPSearch):
    """A SearXNG instance's JSON API (`GET /search?format=json`)."""

    name = "searxng"

    async def search(self, query: str, k: int = 5) -> list[Hit]:
        """Top `k` results for `query`."""
        body = await self.request("GET", "/search", params={"q": query, "format": "json"})
        return [Hit(r.get("title", ""), r["url"], r.get("content") or "") for r in _items(body, "results", "url")][:k]

    def refusal_hint(self) -> str:
        """SearXNG answers 403 when its settings do not enable the JSON format."""
        return "enable the json format under search.formats in the instance's settings.yml"


def _items(body: dict, key: str, url_key: str) -> list[dict]:
    """The result objects under `key` that have a URL; a missing list means no results."""
    items = body.get(key) or []
    if not isinstance(items, list):
        raise SearchError(f"expected a list under {key!r}, got {type(items).__name__}")
    return [r for r in items if isinstance(r, dict) and isinstance(r.get(url_key), str)]
