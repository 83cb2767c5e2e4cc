"""Where stage work runs: partitions on Dask (local processes by default, or a cluster), asyncio inside each.

Stage code supplies `fn(item, ctx) -> (kept, rejects)`, an async function over one input record; it
never knows whether it runs in a loop here or on a cluster. This module splits the input into fixed
partitions and runs each with many items in flight on one event loop per worker process (the LLM
client bounds the concurrency). Nothing is lost when a run is killed: a partition's records and
rejects are written atomically and then marked done; a rerun skips done partitions, and LLM calls
that completed inside an unfinished partition are answered by the persistent response cache.

Output of a stage in OUT: records/00000.jsonl.gz ... (one shard per partition), rejects/, done/
(one JSON summary per finished partition), manifest.json (which input the partitions came from).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..schemas import WdtkError, batched, write_records


@dataclass(frozen=True)
class Backends:
    """A picklable recipe for the LLM client and search engine; each worker process builds it once."""

    model: str | None = None
    api_base: str | None = None
    cache_path: str | None = None
    search: str | None = None
    concurrency: int = 32
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 120.0
    structured: str = "auto"  # hold replies to their schema or grammar: auto, on, off (wdtk.synth.llm.base)


@dataclass
class Context:
    """What a stage's item function gets: the LLM client, the search engine, the stage's config."""

    client: object
    search: object
    config: object


@dataclass(frozen=True)
class Stage:
    """One synthesis stage: its item function, config, output record kind and backends."""

    name: str
    fn: Callable[[dict, Context], Awaitable[tuple[list[dict], list[dict]]]]
    config: object
    kind: str
    backends: Backends
    tally: Callable[[dict], str] | None = None  # a label per kept record, counted into the summary ("tally")
    needs_search: bool = False


@dataclass(frozen=True)
class RunOptions:
    """How to run: Dask worker processes (0 = in this process), an existing scheduler, partition size."""

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    scheduler: str | None = None
    partition_size: int = 16


class StageInputChanged(WdtkError, RuntimeError):
    """The output directory holds partitions of different input: resuming would mix two runs."""


class PartitionsFailed(WdtkError, RuntimeError):
    """Some partitions raised; the others are done and a rerun retries only the failed ones."""


# --- one worker process ------------------------------------------------------------------------

_PROCESS: dict = {}  # per worker process: the event loop and the backends built from each recipe


def _loop() -> asyncio.AbstractEventLoop:
    """This process's event loop, running in a daemon thread: LLM clients and their connection pools
    are bound to one loop, so every partition a worker runs shares it."""
    if "loop" not in _PROCESS:
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True, name="wdtk-loop").start()
        _PROCESS["loop"] = loop
    return _PROCESS["loop"]


async def _context(stage: Stage):
    """(Context, Usage) for one partition: backends built once per process, usage counted per partition."""
    from .llm.client import LLMClient, ResponseCache, Usage
    from .llm.factory import make_llm

    b = stage.backends
    if ("llm", b) not in _PROCESS:
        _PROCESS["llm", b] = make_llm(b.model, b.api_base)
        _PROCESS["cache", b] = ResponseCache(b.cache_path) if b.cache_path else None
        _PROCESS["search", b] = _make_search(b.search) if b.search else None
    usage = Usage()
    client = LLMClient(
        _PROCESS["llm", b],
        concurrency=b.concurrency,
        rpm=b.rpm,
        tpm=b.tpm,
        timeout=b.timeout,
        cache=_PROCESS["cache", b],
        usage=usage,
        structured=b.structured,
    )
    return Context(client, _PROCESS["search", b], stage.config), usage


def _make_search(spec: str):
    from .search.factory import make_search

    return make_search(spec)


async def _run_items(stage: Stage, items: list[dict]) -> tuple[list[dict], list[dict], dict]:
    from .llm.base import PermanentLLMError

    ctx, usage = await _context(stage)

    async def one(item: dict) -> tuple[list[dict], list[dict]]:
        try:
            return await stage.fn(item, ctx)
        except PermanentLLMError as exc:  # this item can never succeed; transient errors fail the partition
            return [], [{"stage": stage.name, "reason": "llm_error", "item": item.get("id"), "detail": str(exc)}]

    results = await asyncio.gather(*(one(item) for item in items))
    kept = [r for k, _ in results for r in k]
    rejects = [r for _, rj in results for r in rj]
    return kept, rejects, usage.summary()


def run_partition(stage: Stage, index: int, items: list[dict], out_dir: str) -> dict:
    """Run one partition to completion and mark it done; a partition already done is only read back."""
    out, name = Path(out_dir), f"{index:05d}"
    done = out / "done" / f"{name}.json"
    if done.exists():
        return json.loads(done.read_text()) | {"skipped": True}
    kept, rejects, usage = asyncio.run_coroutine_threadsafe(_run_items(stage, items), _loop()).result()
    write_records(kept, out / "records" / f"{name}.jsonl.gz", kind=stage.kind)
    write_records(rejects, out / "rejects" / f"{name}.jsonl.gz")
    summary = {
        "partition": index,
        "items": len(items),
        "kept": len(kept),
        "rejected": dict(Counter(r["reason"] for r in rejects)),
        "usage": usage,
    }
    if stage.tally is not None:
        summary["tally"] = dict(Counter(stage.tally(r) for r in kept))
    _write_atomic(done, json.dumps(summary))
    return summary


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- the driver ----------------------------------------------------------------------------------


def plan(stage: Stage, items: Iterable[dict], out_dir: Path, size: int) -> list[list[dict]]:
    """Fixed partitions of the input, checked against an earlier run's manifest so a resume is safe."""
    parts = list(batched(items, size))
    digest = hashlib.sha256("\n".join(str(i.get("id")) for p in parts for i in p).encode()).hexdigest()[:16]
    # what was asked of the stage too: resuming with another model or other options would mix two runs' records
    asked = hashlib.sha256(repr((stage.config, stage.backends.model, stage.backends.search)).encode()).hexdigest()
    manifest = {
        "stage": stage.name,
        "partitions": len(parts),
        "partition_size": size,
        "input": digest,
        "config": asked[:16],
    }
    path = out_dir / "manifest.json"
    if path.exists() and json.loads(path.read_text()) != manifest:
        raise StageInputChanged(
            f"{out_dir} holds a {stage.name} run over other input, partitioning, model or options; "
            "use a new output directory or --restart"
        )
    _write_atomic(path, json.dumps(manifest))
    return parts


def run_stage(
    stage: Stage,
    items: Iterable[dict],
    out_dir: Path,
    opts: RunOptions | None = None,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """Run a stage over `items` into `out_dir`, resuming where an earlier run stopped; return its summary."""
    opts = opts or RunOptions()
    if stage.needs_search and not stage.backends.search:
        raise ValueError(f"{stage.name} needs a search engine (Backends.search), e.g. 'bm25:runs/demo/index'")
    parts = plan(stage, items, out_dir, opts.partition_size)
    tasks = [(i, p) for i, p in enumerate(parts)]
    if opts.workers == 0 and not opts.scheduler:
        summaries, failures = _run_here(stage, tasks, out_dir, progress)
    else:
        summaries, failures = _run_dask(stage, tasks, out_dir, opts, progress)
    summary = merge_summaries(stage.name, summaries)
    _write_atomic(out_dir / "summary.json", json.dumps(summary, indent=2))
    if failures:
        raise PartitionsFailed(
            f"{len(failures)} of {len(parts)} partitions failed ({failures[0]}); "
            "the others are saved: run the same command again to retry"
        )
    return summary


def _run_here(stage, tasks, out_dir, progress) -> tuple[list[dict], list[str]]:
    summaries, failures = [], []
    for i, part in tasks:
        try:
            summaries.append(run_partition(stage, i, part, str(out_dir)))
        except Exception as exc:  # keep going: every finished partition is saved, failed ones rerun later
            failures.append(f"partition {i}: {type(exc).__name__}: {exc}")
            continue
        if progress:
            progress(summaries[-1])
    return summaries, failures


@contextmanager
def dask_client(workers: int, scheduler: str | None):
    """A Dask client for `scheduler`, or for a local cluster of `workers` processes made here; None for neither."""
    if not workers and not scheduler:
        yield None
        return
    from dask.distributed import Client, LocalCluster

    cluster = None
    if not scheduler:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(scheduler or cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_dask(stage, tasks, out_dir, opts, progress) -> tuple[list[dict], list[str]]:
    from dask.distributed import as_completed

    summaries, failures = [], []
    with dask_client(opts.workers, opts.scheduler) as client:
        futures = [client.submit(run_partition, stage, i, part, str(out_dir), pure=False) for i, part in tasks]
        for future in as_completed(futures):
            if future.status == "error":
                failures.append(f"{type(future.exception()).__name__}: {future.exception()}")
                continue
            summaries.append(future.result())
            if progress:
                progress(summaries[-1])
    return summaries, failures


def merge_summaries(name: str, summaries: list[dict]) -> dict:
    """One stage summary from its partitions': counts, reject reasons, LLM usage by sub-stage."""
    rejected, tally = Counter(), Counter()
    usage: dict[str, Counter] = {}
    for s in summaries:
        rejected.update(s["rejected"])
        tally.update(s.get("tally", {}))
        for sub, numbers in s["usage"].items():
            usage.setdefault(sub, Counter()).update(numbers)
    return {
        "stage": name,
        "partitions": len(summaries),
        "resumed_partitions": sum(1 for s in summaries if s.get("skipped")),
        "items": sum(s["items"] for s in summaries),
        "kept": sum(s["kept"] for s in summaries),
        "rejected": dict(rejected.most_common()),
        "usage": {sub: dict(c) for sub, c in usage.items()},
        **({"tally": dict(tally.most_common())} if tally else {}),
    }
