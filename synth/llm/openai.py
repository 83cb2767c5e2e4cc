"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, SGLang, llama.cpp, DeepSeek ...), configured by the `openai` SDK.

The SDK's `AsyncOpenAI` resolves the configuration: base URL (`OPENAI_BASE_URL`), key (`OPENAI_API_KEY`, "EMPTY" for
local servers), organization, project and default headers. Requests then go out one of two ways:

- transport="aiohttp" (default): the body is posted with those headers on a shared aiohttp session: ~0.15 ms of
  client CPU a call, against ~0.5 ms through the SDK, which builds every request through its options models and
  httpx. With 64 requests in flight and 100 ms replies (bench/llm_fanout.py) that is ~90% of the ideal rate against
  ~77%, and at 256 in flight ~1900 against ~1200 requests/s.
- transport="sdk": `AsyncOpenAI.post` over the SDK's aiohttp transport (`DefaultAioHttpClient`; httpx's own pool
  scans every connection per request, ~10 ms of CPU a call at 64 in flight). For endpoints that need the SDK's
  machinery (custom `http_client`, auth hooks).

Both skip the SDK's pydantic response models (the body is read as a dict) and its retries (LLMClient retries).
"""

from __future__ import annotations

import asyncio
import os
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator

import aiohttp
import httpx
import orjson

from .base import Completion, Sampling, Structured, TransientLLMError
from .structured import Fallback, asks_for_structure, with_fallback
from .wire import parse_completion, raise_mapped, request_body, status_error

TRANSPORTS = ("aiohttp", "sdk")


class OpenAILLM:
    """An LLM behind an OpenAI-compatible /chat/completions endpoint; `sdk_options` go to `openai.AsyncOpenAI`."""

    hedge = True  # a straggling request may be raced by a second one (LLMClient)

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        transport: str = "aiohttp",
        max_connections: int = 1024,
        **sdk_options,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r}: use one of {TRANSPORTS}")
        self.model, self.transport, self.max_connections = model, transport, max_connections
        self.api_base = (api_base or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.name = f"openai:{model}"  # not the address: the same model behind another port writes the same ids
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._sdk_options = sdk_options
        self._url = self.api_base + "/chat/completions"
        self._headers: dict[str, str] | None = None
        self._http = self._loop = self._closer = None
        self._fallback = Fallback(self.name)

    async def complete(
        self,
        messages: list[dict],
        sampling: Sampling,
        *,
        json_schema: dict | None = None,
        grammar: str | None = None,
        structured: Structured = "auto",
        timeout: float | None = None,
    ) -> Completion:
        """One chat completion; in auto mode, asked again in words if the server refuses structured outputs."""

        def call(mode: Structured):
            return self._complete(request_body(self.model, messages, sampling, json_schema, grammar, mode), timeout)

        return await with_fallback(self._fallback, structured, call)

    async def _complete(self, body: dict, timeout: float | None) -> Completion:
        if self._loop is not asyncio.get_running_loop():
            await self._open()
        try:
            if self.transport == "aiohttp":
                data = await self._post(body, timeout)
            else:
                data = await self._post_sdk(body, timeout)
        except orjson.JSONDecodeError as e:
            raise TransientLLMError(f"not a JSON body: {e}") from e
        except Exception as e:
            raise_mapped(e)
        completion = parse_completion(data)
        completion.constrained = asks_for_structure(body)
        return completion

    async def _post(self, body: dict, timeout: float | None) -> dict:
        options = {} if timeout is None else {"timeout": aiohttp.ClientTimeout(total=timeout)}
        async with self._http.post(self._url, data=orjson.dumps(body), headers=self._headers, **options) as response:
            raw = await response.read()
            if response.status >= 400:
                raise status_error(response.status, raw, response.headers)
        return orjson.loads(raw)

    async def _post_sdk(self, body: dict, timeout: float | None) -> dict:
        options = {} if timeout is None else {"timeout": timeout}
        response = await self._http.post("/chat/completions", body=body, cast_to=httpx.Response, options=options)
        return orjson.loads(response.content)

    async def aclose(self) -> None:
        """Close the HTTP session of the current event loop."""
        if self._http is not None:
            await self._http.close()
            self._http = self._loop = self._closer = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_http": None, "_loop": None, "_closer": None}  # sessions stay in their process

    async def _open(self) -> None:
        """A session for the running loop: an aiohttp session can neither outlive nor change its loop."""
        import openai

        limits = httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections)
        sdk = openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=self.api_base,
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(limits=limits),
            **self._sdk_options,
        )
        if self.transport == "sdk":
            self._http = sdk
        else:
            await sdk.close()  # only its configuration is wanted
            headers = {**sdk.default_headers, **sdk.auth_headers}
            self._headers = {k: v for k, v in headers.items() if isinstance(v, str)}  # drops the SDK's Omit markers
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),  # LLMClient passes one per call
                proxy=env_proxy(self._url),
                cookie_jar=aiohttp.DummyCookieJar(),
                # trust_env would look up netrc and proxies in a worker thread on every request (2 thread hops)
                trust_env=False,
            )
        self._loop = asyncio.get_running_loop()
        self._closer = _close_with_loop(self._http)
        await anext(self._closer)


def env_proxy(url: str) -> str | None:
    """The proxy the environment (HTTPS_PROXY, NO_PROXY ...) sets for `url`, looked up once, not per request."""
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


async def _close_with_loop(http) -> AsyncIterator[None]:
    """Close `http` when its loop ends: asyncio.run() closes every suspended async generator before closing the loop,
    so callers who never call aclose() get no 'Unclosed client session' warnings."""
    try:
        yield
    finally:
        await http.close()
