"""The worker side of `synth/parallel.py`: one event loop per process, one partition's items run on it, and every
finished item written to disk within seconds, in small chunks.

A partition is only the unit of scheduling. Its items run concurrently on the process's loop (several partitions at
once: one per worker thread), and each item's records and rejects go into the next chunk as soon as it finishes: a
chunk is written every few seconds or every `CHUNK_ITEMS` items, as records/P-C.jsonl.gz, rejects/P-C.jsonl.gz and,
last, done/P-C.json, which names its items and so makes the chunk count. A straggling item therefore delays only
itself, and a killed run loses at most the items finished since the last chunk (whose LLM calls are in the cache).

Whatever an item raises is turned into data here: a transient failure (the LLM client's retries ran out) leaves the
item unfinished, for the next run to retry; anything else (a permanent LLM error, a page that breaks a parser, a bug)
becomes a reject with the reason, so a rerun that replays the same cached replies cannot fail the same way again.
No exception object crosses to Dask: an error that is its own cause would make Dask's error reporting loop forever.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..schemas import RecordError, validate, write_records

CHUNK_ITEMS = 64  # a chunk is written at the latest when this many items have finished since the last one
_PROCESS: dict = {}  # per worker process: the event loop and the backends built from each recipe
_LOCK = threading.Lock()  # several worker threads may ask for the loop at once


@dataclass
class Context:
    """What a stage's item function gets: the LLM client, the search engine, the stage's config."""

    client: object
    search: object
    config: object


class PartitionError(RuntimeError):
    """A partition that could not run at all; built from text only, so it carries no exception chain."""


def loop() -> asyncio.AbstractEventLoop:
    """This process's event loop, running in a daemon thread: LLM clients and their connection pools are bound to
    one loop, so every partition a worker runs shares it."""
    with _LOCK:
        if "loop" not in _PROCESS:
            new = asyncio.new_event_loop()
            threading.Thread(target=new.run_forever, daemon=True, name="wdtk-loop").start()
            _PROCESS["loop"] = new
        return _PROCESS["loop"]


def run_partition(stage, index: int, items: list[dict], out_dir: str, flush_seconds: float = 5.0) -> dict:
    """Run one partition on this process's loop (Dask calls this in a worker thread); its report, never an error
    object: a partition that cannot run raises PartitionError with one line of text."""
    try:
        future = asyncio.run_coroutine_threadsafe(run_items(stage, index, items, out_dir, flush_seconds), loop())
        return future.result()
    except Exception as exc:  # noqa: BLE001 - reduced to text, so no exception chain reaches Dask
        message = one_line(exc)
    raise PartitionError(f"partition {index}: {message}")


def one_line(exc: BaseException) -> str:
    """`Type: message` of an exception, on one line and at most 300 characters."""
    text = " ".join(str(exc).split()) or "no detail"
    return f"{type(exc).__name__}: {text}"[:300]


async def run_items(stage, index: int, items: list[dict], out_dir: str, flush_seconds: float) -> dict:
    """Every item of one partition, concurrently; their outputs written in chunks as they finish."""
    ctx, usage = await context(stage)
    chunks = ChunkWriter(Path(out_dir), index, stage, usage)
    failed: list[list[str]] = []

    async def one(item: dict) -> None:
        try:
            kept, rejects = await run_item(stage, item, ctx)
        except Exception as exc:  # noqa: BLE001 - run_item lets only transient failures and grammar errors through
            failed.append([item["id"], one_line(exc)])
            return
        chunks.add(item["id"], kept, rejects)
        if chunks.due(flush_seconds):
            chunks.flush()

    async def ticker() -> None:  # items that trickle in are written every few seconds, not only with the next one
        while True:
            await asyncio.sleep(flush_seconds)
            chunks.flush()

    tick = asyncio.ensure_future(ticker())
    try:
        await asyncio.gather(*(one(item) for item in items))
    finally:
        tick.cancel()
    chunks.flush(final=True)
    return {"partition": index, "items": len(items), "failed": failed}


async def run_item(stage, item: dict, ctx) -> tuple[list[dict], list[dict]]:
    """(kept, rejects) of one item, every record valid and at least one of either; raises only transient errors and
    GrammarError."""
    from .llm.base import GrammarError, PermanentLLMError

    try:
        kept, rejects = await stage.fn(item, ctx)
    except PermanentLLMError as exc:  # this item can never succeed
        kept, rejects = [], [{"reason": "llm_error", "detail": one_line(exc)}]
    except GrammarError:  # the run's schema or grammar, not this item: it fails unfinished and the run stops with it
        raise
    except Exception as exc:
        if transient(exc):
            raise
        # deterministic given the cached replies: rejected, so a rerun does not fail on it again
        kept, rejects = [], [{"reason": "error", "detail": one_line(exc)}]
    valid = []
    for record in kept:
        try:
            validate(record, stage.kind)
            valid.append(record)
        except RecordError as exc:
            rejects.append({"reason": "invalid_record", "detail": str(exc)[:300]})
    if not valid and not rejects:
        rejects.append({"reason": "empty", "detail": "the item produced no record and no reject"})
    for reject in rejects:
        reject.setdefault("stage", stage.name)
        reject.setdefault("reason", "unspecified")
        reject.setdefault("item", item["id"])
    return valid, rejects


def transient(exc: BaseException) -> bool:
    """Whether a failure may pass on a later run: the LLM client's retries ran out, a search backend was down."""
    from .llm.base import TransientLLMError

    return isinstance(exc, TransientLLMError) or getattr(exc, "transient", False) is True


async def context(stage):
    """(Context, Usage) for one partition: backends built once per process and shared, usage counted per partition."""
    from .llm.cache import ResponseCache
    from .llm.client import Gate, LLMClient, Usage
    from .llm.factory import limits, make_llm

    b = stage.backends
    # a CPU model answers in batches that last minutes: more in flight only queue up, and time out
    concurrency, timeout = limits(b.model, b.concurrency, b.timeout)
    if ("llm", b) not in _PROCESS:
        _PROCESS["llm", b] = make_llm(b.model, b.api_base)
        _PROCESS["cache", b] = ResponseCache(b.cache_path) if b.cache_path else None
        _PROCESS["search", b] = _make_search(b.search) if b.search else None
        _PROCESS["gate", b] = Gate(concurrency, b.rpm, b.tpm)  # one limit for all partitions of this process
    usage = Usage()
    client = LLMClient(
        _PROCESS["llm", b],
        timeout=timeout,
        max_retries=b.max_retries,
        cache=_PROCESS["cache", b],
        usage=usage,
        gate=_PROCESS["gate", b],
        structured=b.structured,
    )
    return Context(client, _PROCESS["search", b], stage.config), usage


async def close_connections() -> None:
    """Close the HTTP sessions of every backend this process built (they reopen on next use)."""
    for key, backend in list(_PROCESS.items()):
        close = getattr(backend, "aclose", None) if isinstance(key, tuple) and key[0] in ("llm", "search") else None
        if close is not None:
            try:
                await close()
            except Exception:  # noqa: BLE001 - a session that cannot close cleanly is dropped all the same
                pass


def _make_search(spec: str):
    from .search.factory import make_search

    return make_search(spec)


class ChunkWriter:
    """Collects finished items of one partition and writes them as numbered chunks (records, rejects, then done)."""

    def __init__(self, out: Path, partition: int, stage, usage) -> None:
        self.out, self.partition, self.stage, self.usage = out, partition, stage, usage
        self.number = 0
        self.items: list[list] = []
        self.kept: list[dict] = []
        self.rejects: list[dict] = []
        self.last = time.monotonic()

    def add(self, item_id: str, kept: list[dict], rejects: list[dict]) -> None:
        """One finished item's output."""
        self.items.append([item_id, len(kept), len(rejects)])
        self.kept.extend(kept)
        self.rejects.extend(rejects)

    def due(self, seconds: float) -> bool:
        """Whether enough has finished, or enough time passed, to write a chunk now."""
        return len(self.items) >= CHUNK_ITEMS or (self.items and time.monotonic() - self.last >= seconds)

    def flush(self, final: bool = False) -> None:
        """Write what has finished since the last chunk; the last flush also writes usage of calls that failed."""
        self.last = time.monotonic()
        if not self.items and not (final and self.usage.stages):
            return
        name = f"{self.partition:05d}-{self.number:04d}"
        if self.kept:
            write_records(self.kept, self.out / "records" / f"{name}.jsonl.gz", kind=self.stage.kind)
        if self.rejects:
            write_records(self.rejects, self.out / "rejects" / f"{name}.jsonl.gz")
        usage, self.usage.stages = self.usage.summary(), {}
        done = {
            "items": self.items,
            "kept": len(self.kept),
            "rejected": dict(Counter(r["reason"] for r in self.rejects)),
            "usage": usage,
        }
        if self.stage.tally is not None:
            done["tally"] = dict(Counter(self.stage.tally(r) for r in self.kept))
        write_atomic(self.out / "done" / f"{name}.json", json.dumps(done))  # last: the chunk counts from now on
        self.number += 1
        self.items, self.kept, self.rejects = [], [], []


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` under a temp name and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
