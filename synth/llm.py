"""The LLM seam: a small async protocol, its value types, and `make_llm` that picks a backend from a model string.

Backends do one chat completion each, nothing more: retries, caching, rate limits and accounting live in
`wdtk.synth.client.LLMClient`. Routing (`make_llm`):

- None or "embedded": `wdtk.synth.embedded.EmbeddedLLM`, a small local model (no server, no key)
- "local:<dir>": a transformers checkpoint on disk, run the same way (CPU, batched; e.g. a model just fine-tuned)
- "vllm:<model>": vLLM in this process, requests batched (`wdtk.synth.vllm_backend`)
- `api_base` given, or "openai/<model>" or "openai:<model>": an OpenAI-compatible endpoint (`synth/openai_backend.py`)
- anything else ("anthropic/claude-...", "gemini/..."): `litellm.acompletion`, provider keys from their env vars
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

import orjson

# litellm fetches its price map from GitHub at import unless told otherwise; the copy it ships is enough.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


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


def make_llm(model: str | None = None, api_base: str | None = None, **options) -> LLM:
    """The backend for `model` (see the module docstring); `options` go to its constructor.

    `options["backend"]` ("openai" or "litellm") overrides the routing, e.g. to send "openai/x" through litellm.
    """
    backend = options.pop("backend", None)
    if model is None and (api_base or backend):
        raise ValueError("a model name is needed with an api_base or a backend")
    if backend is None and model in (None, "embedded"):
        from wdtk.synth.embedded import EmbeddedLLM

        return EmbeddedLLM(**options)
    if backend is None and model.startswith("local:"):
        from wdtk.synth.embedded import EmbeddedLLM

        return EmbeddedLLM(model_path=model.removeprefix("local:"), **options)
    if backend is None and model.startswith("vllm:"):
        from wdtk.synth.vllm_backend import VLLMBatchLLM

        return VLLMBatchLLM(model.removeprefix("vllm:"), **options)
    if backend == "openai" or (backend is None and (api_base or model.startswith(("openai/", "openai:")))):
        from wdtk.synth.openai_backend import OpenAILLM

        return OpenAILLM(model.removeprefix("openai/").removeprefix("openai:"), api_base=api_base, **options)
    if backend not in (None, "litellm"):
        raise ValueError(f"unknown backend {backend!r}: use 'openai' or 'litellm'")
    from wdtk.synth.backends import LiteLLM

    return LiteLLM(model, api_base=api_base, **options)


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for a call to `model` from litellm's bundled cost map; 0.0 for models it does not list."""
    rates = _rates(model)
    return prompt_tokens * rates[0] + completion_tokens * rates[1] if rates else 0.0


@cache
def _rates(model: str) -> tuple[float, float] | None:
    entry = _cost_map().get(model) or _cost_map().get(model.removeprefix("openai/"))
    if not entry or "input_cost_per_token" not in entry:
        return None
    return float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token") or 0.0)


@cache
def _cost_map() -> dict:
    """litellm's bundled model price map, read as JSON: importing litellm would cost seconds."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(spec.submodule_search_locations[0]) / "model_prices_and_context_window_backup.json"
    return orjson.loads(path.read_bytes()) if path.exists() else {}


def response_format(json_schema: dict | None) -> dict | None:
    """The OpenAI `response_format` that asks for JSON matching `json_schema`."""
    if json_schema is None:
        return None
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": json_schema, "strict": False}}
