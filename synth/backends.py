"""What the HTTP backends share (request body, reply parsing, error classification), and the litellm backend."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from dataclasses import replace

import orjson

from wdtk.synth.llm import Completion, PermanentLLMError, Sampling, TransientLLMError, price, response_format

# 408 request timeout, 409 lock contention, 429 rate limit and 5xx are worth retrying (as the openai SDK does).
RETRYABLE_STATUS = frozenset({408, 409, 429})


_REASONING_MODEL = re.compile(r"^(openai/)?(o\d|gpt-5)")


def request_body(model: str, messages: list[dict], sampling: Sampling, json_schema: dict | None) -> dict:
    """The chat completion request body; optional fields only when set, so any compatible server accepts it."""
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
    if json_schema is not None:
        body["response_format"] = response_format(json_schema)
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


class LiteLLM:
    """Any provider litellm knows ("anthropic/claude-...", "gemini/...", "openai/..."), through litellm.acompletion."""

    def __init__(self, model: str, *, api_base: str | None = None, api_key: str | None = None, **options) -> None:
        self.model, self.api_base, self._api_key, self._options = model, api_base, api_key, options
        self.name = f"litellm:{model}" + (f"@{api_base}" if api_base else "")

    async def complete(
        self,
        messages: list[dict],
        sampling: Sampling,
        *,
        json_schema: dict | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """One chat completion."""
        import litellm

        litellm.suppress_debug_info = True  # else every exception prints a "Give Feedback" banner to stdout
        body = request_body(self.model, messages, sampling, json_schema)
        extra = {"api_base": self.api_base, "api_key": self._api_key, **self._options}
        try:
            # drop_params: providers without seed or response_format get the request without them (chat_json still
            # validates); retries are LLMClient's, so litellm's own are off
            response = await litellm.acompletion(
                **body,
                **{k: v for k, v in extra.items() if v is not None},
                timeout=timeout,
                num_retries=0,
                max_retries=0,
                drop_params=True,
            )
        except Exception as e:
            raise map_error(e) from e
        return self._completion(response, litellm)

    def _completion(self, response, litellm) -> Completion:
        choice = response.choices[0]
        usage = getattr(response, "usage", None)
        try:
            cost = litellm.completion_cost(completion_response=response) or 0.0
        except Exception:  # litellm raises for models missing from its map: unknown price, not a failed call
            cost = 0.0
        return Completion(
            text=choice.message.content or "",
            reasoning=getattr(choice.message, "reasoning_content", None) or "",
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            cost=float(cost),
            model=response.model or "",
            finish_reason=choice.finish_reason or "",
        )
