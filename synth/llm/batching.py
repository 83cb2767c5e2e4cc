"""Micro-batching for the in-process backends (embedded, local, vLLM): concurrent calls gathered into batches."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor


class MicroBatcher:
    """Runs `run(items) -> results` on one worker thread for batches of concurrent `submit` calls.

    A batch starts `window` seconds after its first item (so the callers of one gather() join in), or at once when
    `max_batch` items wait; items that arrive while a batch runs form the next one. `run` returns one result per
    item; an Exception in its place is raised to that caller alone.
    """

    def __init__(self, run, max_batch: int = 8, window: float = 0.005, name: str = "wdtk-embedded") -> None:
        self.run, self.max_batch, self.window = run, max_batch, window
        # one worker thread: torch already uses every core, and vLLM's engine is not thread-safe
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: list[tuple[object, asyncio.Future]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = self._scheduled = False

    async def submit(self, item):
        """The result of `item`, computed in some batch."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (another asyncio.run): nothing of the old one can finish
            self._loop, self._pending, self._busy, self._scheduled = loop, [], False, False
        future = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_later(self.window, self._flush)
        return await future

    def _flush(self) -> None:
        """Start a batch of what is pending, unless one runs (it flushes again when it ends)."""
        self._scheduled = False
        self._pending = [(item, f) for item, f in self._pending if not f.done()]  # drop cancelled callers
        if self._busy or not self._pending:
            return
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        self._busy = True
        task = self._loop.run_in_executor(self._worker, self.run, [item for item, _ in batch])
        task.add_done_callback(lambda done: self._finish(batch, done))

    def _finish(self, batch: list[tuple[object, asyncio.Future]], done: asyncio.Future) -> None:
        self._busy = False
        error = done.exception()
        for i, (_, future) in enumerate(batch):
            if future.done():
                continue
            result = error if error is not None else done.result()[i]
            future.set_exception(result) if isinstance(result, BaseException) else future.set_result(result)
        self._flush()
