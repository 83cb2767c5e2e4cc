"""What the HTTP backends share (request body, reply parsing, error classification), and the litellm backend."""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from dataclasses import replace

import orjson

from ..net import retry_after
from .base import Completion, PermanentLLMError, Sampling, Structured, TransientLLMError, response_format
from .pricing import price
from .structured import grammar_fields

# 408 request timeout, 409 lock contention, 429 rate limit and 5xx are worth retrying (as the openai SDK does).
RETRYABLE_STATUS = frozenset({408, 409, 429})


_REASONING_MODEL = re.compile(r"^(openai/)?(o\d|gpt-5)")
_NO_CREDENTIALS = re.compile(
    r"missing [\w ]{0,30}(api[ _-]?key|credentials)|no (api )?key (is )?set|(invalid|incorrect) api[ _-]?key", re.I
)


def request_body(
    model: str,
    messages: list[dict],
    sampling: Sampling,
    json_schema: dict | None,
    grammar: str | None = None,
    structured: Structured = "auto",
) -> dict:
    """The chat completion request body; optional fields only when set, so any compatible server accepts it.
    The schema goes as `response_format` unless structured is "off"; a grammar only when it is "on"."""
    if _REASONING_MODEL.match(model):
        # OpenAI's o-series and gpt-5 take max_completion_tokens and reject temperature, top_p and stop;
        # the agent does not rely on stop: parse_turn cuts a turn at an invented <tool_response> anyway
        body = {"model": model, "messages": messages, "max_completion_tokens": sampling.max_tokens}
        sampling = replace(sampling, stop=())
    else:
        body = {
            "model": model,
            "messages": messages,
            "temperature": sampling.temperature,
            "max_tokens": sampling.max_tokens,
        }
        if sampling.top_p != 1.0:
            body["top_p"] = sampling.top_p
    if sampling.seed is not None:
        # equal params with equal seeds would repeat one sample; the index keeps the k samples apart
        body["seed"] = sampling.seed + sampling.sample_index
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if json_schema is not None and structured != "off":
        body["response_format"] = response_format(json_schema)
    if grammar is not None and structured == "on":
        body.update(grammar_fields(grammar))
    return body


def parse_completion(data: dict) -> Completion:
    """A Completion from an OpenAI chat completion body (a dict, not the SDK's pydantic model: that costs ~0.3 ms)."""
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as e:
        raise TransientLLMError(f"malformed completion body: {str(data)[:200]}") from e
    usage = data.get("usage") or {}
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    model = data.get("model") or ""
    return Completion(
        text=message.get("content") or "",
        reasoning=message.get("reasoning_content") or message.get("reasoning") or "",
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=price(model, prompt, completion) if model else 0.0,
        model=model,
        finish_reason=choice.get("finish_reason") or "",
    )


def map_error(error: Exception) -> Exception:
    """The Transient/Permanent error for an SDK or transport exception; other exceptions come back unchanged."""
    import aiohttp
    import httpx
    import openai

    if isinstance(error, TransientLLMError | PermanentLLMError):
        return error
    detail = str(error) or ("timed out" if isinstance(error, TimeoutError) else "no detail")
    message = f"{type(error).__name__}: {detail}"[:500]
    if _NO_CREDENTIALS.search(detail):  # litellm says so with a 500 or a connection error: no retry can fix it
        return PermanentLLMError(message)
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and status >= 400 and not isinstance(error, openai.APIConnectionError):
        return status_error(status, message.encode(), _headers(error))
    if isinstance(error, aiohttp.InvalidURL):
        return PermanentLLMError(message)
    if isinstance(
        error, openai.APIConnectionError | httpx.TransportError | aiohttp.ClientError | TimeoutError | OSError
    ):
        return TransientLLMError(message)  # dropped or refused connections, timeouts, cut-off bodies
    return error


def raise_mapped(error: Exception) -> typing.NoReturn:
    """Raise the Transient/Permanent error for `error` (from an `except` block), chained to it; `error` itself when
    it needs no mapping, never chained to itself (an error that is its own cause loops whatever walks the chain)."""
    mapped = map_error(error)
    if mapped is error:
        raise error
    raise mapped from error


def status_error(status: int, body: bytes, headers: Mapping | None) -> TransientLLMError | PermanentLLMError:
    """The error for an HTTP error status: 408, 409, 429 and 5xx are transient (with Retry-After), other 4xx not."""
    try:
        detail = orjson.loads(body)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        detail = body[:300].decode(errors="replace")
    message = f"HTTP {status}: {detail}"
    if status in RETRYABLE_STATUS or status >= 500:
        return TransientLLMError(message, retry_after=retry_after(headers))
    return PermanentLLMError(message)


def _headers(error: Exception) -> Mapping | None:
    headers = getattr(error, "litellm_response_headers", None)
    return headers if headers is not None else getattr(getattr(error, "response", None), "headers", None)
