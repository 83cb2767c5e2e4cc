"""`make_llm`: the backend for a model string. Backends import the protocol in `base`; only this module knows them all.

Routing:

- None or "embedded": `wdtk.synth.llm.embedded.EmbeddedLLM`, a small local model (no server, no key)
- "local:<dir>": a transformers checkpoint on disk, run the same way (CPU, batched; e.g. a model just fine-tuned)
- "vllm:<model>": vLLM in this process, requests batched (`wdtk.synth.llm.vllm`)
- `api_base` given, or "openai/<model>" or "openai:<model>": an OpenAI-compatible endpoint (`wdtk.synth.llm.openai`),
  sent the model name without litellm's prefix for such endpoints ("hosted_vllm/", "openai/" ...), as litellm sends it
- anything else ("anthropic/claude-...", "gemini/..."): `litellm.acompletion`, provider keys from their env vars
"""

from __future__ import annotations

from .base import LLM

# litellm's prefixes for providers that speak the OpenAI wire format to whatever api_base they are given: litellm
# strips them before sending the model name, so `vllm serve X` is asked for "X", never "hosted_vllm/X"
OPENAI_PREFIXES = ("openai:", "openai/", "hosted_vllm/", "custom_openai/", "openai_like/", "lm_studio/", "llamafile/",
                   "text-completion-openai/")  # fmt: skip
ROUTES = ("embedded", "local", "vllm", "openai", "litellm")


def route(model: str | None, api_base: str | None = None, backend: str | None = None) -> str:
    """Which backend serves `model`: one of ROUTES (see the module docstring)."""
    if backend not in (None, "openai", "litellm"):
        raise ValueError(f"unknown backend {backend!r}: use 'openai' or 'litellm'")
    if model is None and (api_base or backend):
        raise ValueError("a model name is needed with an api_base or a backend")
    if backend is not None:
        return backend
    if model in (None, "embedded"):
        return "embedded"
    if model.startswith(("local:", "vllm:")):
        return model.split(":", 1)[0]
    if api_base or model.startswith(("openai/", "openai:")):
        return "openai"
    return "litellm"


def served_name(model: str) -> str:
    """The name an OpenAI-compatible endpoint knows `model` by: without a litellm prefix, as litellm would send it
    ("hosted_vllm/X", "openai/X", "groq/X" ... -> "X"; "Qwen/Qwen2.5-7B-Instruct", a served model's name, stays)."""
    prefix = next((p for p in OPENAI_PREFIXES if model.startswith(p)), "")
    if not prefix and "/" in model:
        import litellm  # only here: its import takes a second

        provider = model.split("/", 1)[0]
        prefix = f"{provider}/" if provider in litellm.openai_compatible_providers else ""
    return model[len(prefix) :]


def make_llm(model: str | None = None, api_base: str | None = None, **options) -> LLM:
    """The backend for `model` (see the module docstring); `options` go to its constructor.

    `options["backend"]` ("openai" or "litellm") overrides the routing, e.g. to send "openai/x" through litellm.
    """
    kind = route(model, api_base, options.pop("backend", None))
    if kind in ("embedded", "local"):
        from .embedded import EmbeddedLLM

        path = {"model_path": model.removeprefix("local:")} if kind == "local" else {}
        return EmbeddedLLM(**path, **options)
    if kind == "vllm":
        from .vllm import VLLMBatchLLM

        return VLLMBatchLLM(model.removeprefix("vllm:"), **options)
    if kind == "openai":
        from .openai import OpenAILLM

        return OpenAILLM(served_name(model), api_base=api_base, **options)
    from .litellm import LiteLLM

    return LiteLLM(model, api_base=api_base, **options)


def is_local(model: str | None) -> bool:
    """Whether `model` runs on this machine's CPU (the embedded model or a local: checkpoint): slow and batched."""
    return model in (None, "embedded") or model.startswith("local:")


def limits(model: str | None, concurrency: int, timeout: float) -> tuple[int, float]:
    """(concurrency, timeout) for calls to `model`: the CPU models answer in batches of 8 that last minutes, so
    more in flight only queue up and time out."""
    return (min(concurrency, 8), 3600.0) if is_local(model) else (concurrency, timeout)
