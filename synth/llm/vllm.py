"""vLLM in this process: concurrent `complete` calls are gathered into `vllm.LLM.chat` batches on a worker thread.

Offline vLLM is fastest when fed many prompts at once, while stage code awaits one completion at a time; so
requests wait in a queue while a batch runs, and the next batch takes all of them. vLLM is imported only here.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from wdtk.synth.llm.base import Completion, PermanentLLMError, Sampling

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
        self.name = f"vllm:{model}"
        self.model = model
        self.batch_window, self.max_batch = batch_window, max_batch
        self._engine = self._vllm.LLM(model=model, **engine_options)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vllm")  # the engine is not thread-safe
        self._pending: list[tuple[list[dict], object, asyncio.Future]] = []
        self._busy = self._scheduled = False

    async def complete(
        self,
        messages: list[dict],
        sampling: Sampling,
        *,
        json_schema: dict | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """One chat completion, run in the next batch (`timeout` is enforced by the caller's cancellation)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((messages, self.sampling_params(sampling, json_schema), future))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_later(self.batch_window, self._flush)  # a short wait lets the callers of one gather() join in
        return await future

    def sampling_params(self, sampling: Sampling, json_schema: dict | None):
        """vLLM SamplingParams for `sampling`, with structured output when a schema is given."""
        seed = None if sampling.seed is None else sampling.seed + sampling.sample_index
        params = {
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": seed,
            "stop": list(sampling.stop) or None,
        }
        if json_schema is not None:
            params.update(self._structured(json_schema))
        return self._vllm.SamplingParams(**params)

    def _structured(self, json_schema: dict) -> dict:
        from vllm import sampling_params as sp

        if hasattr(sp, "StructuredOutputsParams"):  # vLLM >= 0.10.2; guided_decoding was removed in 0.12
            return {"structured_outputs": sp.StructuredOutputsParams(json=json_schema)}
        return {"guided_decoding": sp.GuidedDecodingParams(json=json_schema)}

    def _flush(self) -> None:
        """Start a batch with everything pending, unless one is running (it flushes again when it ends)."""
        self._scheduled = False
        if self._busy or not self._pending:
            return
        batch = [item for item in self._pending[: self.max_batch] if not item[2].done()]
        del self._pending[: self.max_batch]
        if not batch:
            return self._flush()
        self._busy = True
        loop = asyncio.get_running_loop()
        task = loop.run_in_executor(self._worker, self._generate, [m for m, _, _ in batch], [p for _, p, _ in batch])
        task.add_done_callback(lambda done: self._finish(batch, done))

    def _generate(self, conversations: list[list[dict]], params: list) -> list:
        return self._engine.chat(conversations, params, use_tqdm=False)

    def _finish(self, batch: list, done: asyncio.Future) -> None:
        self._busy = False
        error = done.exception()
        for i, (_, _, future) in enumerate(batch):
            if future.done():
                continue  # cancelled by a timeout meanwhile
            if error is not None:
                future.set_exception(PermanentLLMError(f"vLLM failed on a batch: {error!r}"))
            else:
                future.set_result(self._completion(done.result()[i]))
        self._flush()

    def _completion(self, output) -> Completion:
        out = output.outputs[0]
        return Completion(
            text=out.text,
            prompt_tokens=len(output.prompt_token_ids or ()),
            completion_tokens=len(out.token_ids),
            model=self.model,
            finish_reason=out.finish_reason or "",
        )
