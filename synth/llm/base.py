"""The LLM seam: a small async protocol and its value types. Backends implement it; `factory.make_llm` picks one.

Backends do one chat completion each, nothing more: retries, caching, rate limits and accounting live in
`wdtk.synth.llm.client.LLMClient`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Sampling:
    """Decoding parameters of one request."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None
    stop: tuple[str, ...] = ()
    sample_index: int = 0  # k-th of several samples with equal params: in the cache key, so rollouts differ


@dataclass
class Completion:
    """One model answer with its accounting."""

    text: str
    reasoning: str = ""  # reasoning_content of reasoning models, when the backend returns it
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0  # USD from litellm's cost map (loaded locally), 0.0 when unknown
    model: str = ""
    finish_reason: str = ""
    cached: bool = False


class LLM(Protocol):
    """A backend: one chat completion, async. No retries, no cache, no rate limits: LLMClient adds those."""

    name: str  # stable id used in cache keys and record meta, e.g. "openai:Qwen2.5-7B@http://host/v1"

    async def complete(
        self,
        messages: list[dict],
        sampling: Sampling,
        *,
        json_schema: dict | None = None,
        timeout: float | None = None,
    ) -> Completion: ...


class TransientLLMError(Exception):
    """A failure worth retrying: 429, 5xx, timeouts, dropped connections, garbled bodies."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentLLMError(Exception):
    """A failure that retrying cannot fix: 4xx other than 429, unknown model, bad key."""


def response_format(json_schema: dict | None) -> dict | None:
    """The OpenAI `response_format` that asks for JSON matching `json_schema`."""
    if json_schema is None:
        return None
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": json_schema, "strict": False}}
