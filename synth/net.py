"""HTTP plumbing that the LLM backends, the search backends and the visit tool's fetcher share."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Mapping

import httpx


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


def retry_after(headers: Mapping | None) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date) or retry-after-ms, when the server sent them."""
    if not headers:
        return None
    if isinstance(headers, dict):  # HTTP libraries hand over case-insensitive mappings; a plain dict is not one
        headers = {k.lower(): v for k, v in headers.items()}
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # neither seconds nor a date: back off as if it were absent
    return max(0.0, when.timestamp() - time.time())
