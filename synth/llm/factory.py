"""`make_llm`: the backend for a model string. Backends import the protocol in `base`; only this module knows them all.

Routing:

- None or "embedded": `wdtk.synth.llm.embedded.EmbeddedLLM`, a small local model (no server, no key)
- "local:<dir>": a transformers checkpoint on disk, run the same way (CPU, batched; e.g. a model just fine-tuned)
- "vllm:<model>": vLLM in this process, requests batched (`wdtk.synth.llm.vllm`)
- `api_base` given, or "openai/<model>" or "openai:<model>": an OpenAI-compatible endpoint (`wdtk.synth.llm.openai`)
- anything else ("anthropic/claude-...", "gemini/..."): `litellm.acompletion`, provider keys from their env vars
"""

from __future__ import annotations

from .base import LLM


def make_llm(model: str | None = None, api_base: str | None = None, **options) -> LLM:
    """The backend for `model` (see the module docstring); `options` go to its constructor.

    `options["backend"]` ("openai" or "litellm") overrides the routing, e.g. to send "openai/x" through litellm.
    """
    backend = options.pop("backend", None)
    if model is None and (api_base or backend):
        raise ValueError("a model name is needed with an api_base or a backend")
    if backend is None and model in (None, "embedded"):
        from .embedded import EmbeddedLLM

        return EmbeddedLLM(**options)
    if backend is None and model.startswith("local:"):
        from .embedded import EmbeddedLLM

        return EmbeddedLLM(model_path=model.removeprefix("local:"), **options)
    if backend is None and model.startswith("vllm:"):
        from .vllm import VLLMBatchLLM

        return VLLMBatchLLM(model.removeprefix("vllm:"), **options)
    if backend == "openai" or (backend is None and (api_base or model.startswith(("openai/", "openai:")))):
        from .openai import OpenAILLM

        return OpenAILLM(model.removeprefix("openai/").removeprefix("openai:"), api_base=api_base, **options)
    if backend not in (None, "litellm"):
        raise ValueError(f"unknown backend {backend!r}: use 'openai' or 'litellm'")
    from .litellm import LiteLLM

    return LiteLLM(model, api_base=api_base, **options)


def is_local(model: str | None) -> bool:
    """Whether `model` runs on this machine's CPU (the embedded model or a local: checkpoint): slow and batched."""
    return model in (None, "embedded") or model.startswith("local:")


def limits(model: str | None, concurrency: int, timeout: float) -> tuple[int, float]:
    """(concurrency, timeout) for calls to `model`: the CPU models answer in batches of 8 that last minutes, so
    more in flight only queue up and time out."""
    return (min(concurrency, 8), 3600.0) if is_local(model) else (concurrency, timeout)
