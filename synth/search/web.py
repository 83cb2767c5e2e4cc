"""Web search backends over HTTP: Serper (Google results) and SearXNG, with retries and backoff."""

from __future__ import annotations

import asyncio

import httpx

from ..net import LoopClient, retry_after
from .base import Hit, SearchError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


MAX_RETRY_AFTER = 30.0  # seconds; a server asking for longer is treated as down rather than waited on


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
    """Seconds to wait before retrying: the server's Retry-After when it sends a usable one, capped."""
    asked = retry_after(response.headers)
    return default if asked is None else min(asked, MAX_RETRY_AFTER)


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
