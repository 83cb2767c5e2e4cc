"""`make_llm`: the backend for a model string. Backends import the protocol in `base`; only this module knows them all.

Routing:

- None or "embedded": `wdtk.synth.llm.embedded.EmbeddedLLM`, a small local model (no server, no key)
- "local:<dir>": a transformers checkpoint on disk, run the same way (CPU, batched; e.g. a model just fine-tuned)
- "vllm:<model>": vLLM in this process, requests batched (`wdtk.synth.llm.vllm`)
- `api_base` given, or "openai/<model>" or "openai:<model>": an OpenAI-compatible endpoint (`wdtk.synth.llm.openai`)
- anything else ("anthropic/claude-...", "gemini/..."): `litellm.acompletion`, provider keys from their env vars
"""

from __future__ import annotations

from wdtk.synth.llm.base import LLM


def make_llm(model: str | None = None, api_base: str | None = None, **options) -> LLM:
    """The backend for `model` (see the module docstring); `options` go to its constructor.

    `options["backend"]` ("openai" or "litellm") overrides the routing, e.g. to send "openai/x" through litellm.
    """
    backend = options.pop("backend", None)
    if model is None and (api_base or backend):
        raise ValueError("a model name is needed with an api_base or a backend")
    if backend is None and model in (None, "embedded"):
        from wdtk.synth.llm.embedded import EmbeddedLLM

        return EmbeddedLLM(**options)
    if backend is None and model.startswith("local:"):
        from wdtk.synth.llm.embedded import EmbeddedLLM

        return EmbeddedLLM(model_path=model.removeprefix("local:"), **options)
    if backend is None and model.startswith("vllm:"):
        from wdtk.synth.llm.vllm import VLLMBatchLLM

        return VLLMBatchLLM(model.removeprefix("vllm:"), **options)
    if backend == "openai" or (backend is None and (api_base or model.startswith(("openai/", "openai:")))):
        from wdtk.synth.llm.openai import OpenAILLM

        return OpenAILLM(model.removeprefix("openai/").removeprefix("openai:"), api_base=api_base, **options)
    if backend not in (None, "litellm"):
        raise ValueError(f"unknown backend {backend!r}: use 'openai' or 'litellm'")
    from wdtk.synth.llm.litellm import LiteLLM

    return LiteLLM(model, api_base=api_base, **options)
