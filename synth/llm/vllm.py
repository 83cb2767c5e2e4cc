"""vLLM in this process: concurrent `complete` calls are gathered into `vllm.LLM.chat` batches on a worker thread.

Offline vLLM is fastest when fed many prompts at once, while stage code awaits one completion at a time; so
requests wait in a queue while a batch runs, and the next batch takes all of them. vLLM is imported only here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .base import Completion, PermanentLLMError, Sampling, Structured, checkpoint_id
from .batching import MicroBatcher

INSTALL_HINT = "the 'vllm:' backend needs vLLM in this environment (pip install vllm; Linux with a CUDA GPU)"


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise ImportError(f"{INSTALL_HINT}: {e}") from e
    return vllm


class VLLMBatchLLM:
    """An LLM backed by `vllm.LLM`; `engine_options` go to it (tensor_parallel_size, max_model_len ...)."""

    def __init__(self, model: str, *, batch_window: float = 0.005, max_batch: int = 1024, **engine_options) -> None:
        self._vllm = _import_vllm()
        # a checkpoint on disk is named by content, never by its path on this machine
        self.name = f"vllm:{checkpoint_id(model) if Path(model).is_dir() else model}"
        self.model = model
        self._engine = self._vllm.LLM(model=model, **engine_options)
        # the engine is not thread-safe: one worker thread runs every batch
        self._batcher = MicroBatcher(self._run_batch, max_batch, batch_window, name="wdtk-vllm")

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
        """One chat completion, run in the next batch (`timeout` is enforced by the caller's cancellation); the schema
        or grammar is enforced by vLLM's guided decoding unless structured is "off"."""
        if structured == "off":
            json_schema = grammar = None
        completion = await self._batcher.submit((messages, self.sampling_params(sampling, json_schema, grammar)))
        return replace(completion, constrained=json_schema is not None or grammar is not None)

    def sampling_params(self, sampling: Sampling, json_schema: dict | None, grammar: str | None = None):
        """vLLM SamplingParams for `sampling`, with structured output when a schema or a (Lark) grammar is given."""
        seed = None if sampling.seed is None else sampling.seed + sampling.sample_index
        params = {
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": seed,
            "stop": list(sampling.stop) or None,
        }
        if json_schema is not None:
            params.update(self._structured(json=json_schema))
        elif grammar is not None:
            params.update(self._structured(grammar=grammar))
        return self._vllm.SamplingParams(**params)

    def _structured(self, **constraint) -> dict:
        from vllm import sampling_params as sp

        if hasattr(sp, "StructuredOutputsParams"):  # vLLM >= 0.10.2; guided_decoding was removed in 0.12
            return {"structured_outputs": sp.StructuredOutputsParams(**constraint)}
        return {"guided_decoding": sp.GuidedDecodingParams(**constraint)}

    def _run_batch(self, items: list[tuple[list[dict], object]]) -> list[Completion]:
        """Worker thread: one `chat` call for the whole batch."""
        try:
            outputs = self._engine.chat([m for m, _ in items], [p for _, p in items], use_tqdm=False)
        except Exception as e:  # the engine's own failure: the same batch would fail again
            raise PermanentLLMError(f"vLLM failed on a batch: {e!r}") from None
        return [self._completion(o) for o in outputs]

    def _completion(self, output) -> Completion:
        out = output.outputs[0]
        return Completion(
            text=out.text,
            prompt_tokens=len(output.prompt_token_ids or ()),
            completion_tokens=len(out.token_ids),
            model=self.model,
            finish_reason=out.finish_reason or "",
        )
