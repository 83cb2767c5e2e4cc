"""Where stage work runs: partitions on Dask (local processes by default, or a cluster), asyncio inside each.

Stage code supplies `fn(item, ctx) -> (kept, rejects)`, an async function over one input record; it never knows
whether it runs in a loop here or on a cluster. This module splits the input into partitions (the unit of
scheduling) and runs several at once per worker process, all their items in flight on the process's one event loop
(the LLM client bounds the concurrency). `synth/worker.py` writes every finished item within seconds, and
`synth/ledger.py` knows which items are finished, so a killed run resumes losing at most the calls in flight (the
response cache answers every call that had completed), and a larger --max-groups, --limit or --rollouts runs only
the new items.

Output of a stage in OUT: records/ and rejects/ (chunks P-C.jsonl.gz), done/ (which items each chunk holds),
manifest.json (what must match to resume), summary.json, and last the `.complete` markers of records/ and rejects/.
The summary's `inputs` add up (total = kept + rejected + failed + duplicates) or the stage fails loudly.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..schemas import WdtkError, batched, clear_complete, mark_complete, read_records, require_complete
from .ledger import Ledger, StageInputChanged
from .worker import _PROCESS, Context, close_connections, loop, one_line, run_items, run_partition, write_atomic

__all__ = ["Backends", "Context", "PartitionsFailed", "RunOptions", "Stage", "StageInputChanged", "TextCaps"]
log = logging.getLogger(__name__)


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
    timeout: float = 120.0  # seconds per LLM request (--timeout, WDTK_TIMEOUT)
    max_retries: int = 6  # per LLM call (--max-retries, WDTK_MAX_RETRIES)
    structured: str = "auto"  # hold replies to their schema or grammar: auto, on, off (--structured, WDTK_STRUCTURED)


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
class TextCaps:
    """Characters of question, answer and page text an item may carry to a model; longer ones are cut and counted."""

    question: int = 4_000
    answer: int = 1_000
    text: int = 200_000


@dataclass(frozen=True)
class RunOptions:
    """How to run: Dask worker processes (0 = in this process), an existing scheduler, partition size and more."""

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    scheduler: str | None = None
    partition_size: int = 16
    partitions_per_worker: int = 4  # run at once on a worker's loop, so a straggler holds up only its own partition
    memory_limit: str | float | None = None  # per local worker (Dask syntax); default: 90% of memory over workers
    allow_incomplete: bool = False  # read input directories whose stage did not finish (--allow-incomplete)
    caps: TextCaps = field(default_factory=TextCaps)
    flush_seconds: float = 5.0  # finished items are on disk within this long


class PartitionsFailed(WdtkError, RuntimeError):
    """Some inputs failed (transient errors outlasted the retries); the rest are saved and a rerun does only those."""


def read_input(path: str | Path, opts: RunOptions | None, kind: str | None = None) -> Iterable[dict]:
    """The records of a stage's input, refused when its own stage did not finish (unless opts.allow_incomplete)."""
    require_complete(path, (opts or RunOptions()).allow_incomplete)
    return read_records(path, kind)


def run_stage(
    stage: Stage,
    items: Iterable[dict],
    out_dir: Path,
    opts: RunOptions | None = None,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """Run a stage over `items` into `out_dir`, resuming or extending an earlier run there; return its summary.

    `progress` gets {"stage", "total", "done", "records", "calls", "failed"} every second or so."""
    started, opts = time.monotonic(), opts or RunOptions()
    if stage.needs_search and not stage.backends.search:
        raise ValueError(f"{stage.name} needs a search engine (Backends.search), e.g. 'bm25:runs/demo/index'")
    out_dir, stage = Path(out_dir).resolve(), replace(stage, backends=absolute(stage.backends))  # for a cluster
    ledger = Ledger(out_dir, stage)
    plan = ledger.plan(items, opts.caps)
    for sub in ("records", "rejects"):
        clear_complete(out_dir / sub)
    warn_if_slow(stage, len(plan.todo), opts)
    first = ledger.next_partition()
    parts = {first + i: part for i, part in enumerate(batched(plan.todo, opts.partition_size))}
    tracker = Tracker(stage.name, len(plan.ids), ledger, progress)
    runner = _run_here if opts.workers == 0 and not opts.scheduler else _run_dask
    failed = runner(stage, parts, out_dir, opts, tracker)
    summary = ledger.summary(plan, failed, len(parts), time.monotonic() - started)
    write_atomic(out_dir / "summary.json", json.dumps(summary, indent=2))
    if failed:
        raise PartitionsFailed(
            f"{stage.name}: {len(failed)} of {plan.inputs} inputs failed ({failed[0][1]}); "
            "the others are saved: run the same command again to retry the failed ones"
        )
    for sub in ("records", "rejects"):
        mark_complete(out_dir / sub, stage=stage.name, records=summary["kept"])
    return summary


def release(backends: Backends) -> None:
    """Drop what this process built for `backends` (an in-process model, its cache and search engine)."""
    for key in [k for k in _PROCESS if isinstance(k, tuple) and k[1] in (backends, absolute(backends))]:
        _PROCESS.pop(key)


def absolute(backends: Backends) -> Backends:
    """`backends` with its cache and bm25 index paths made absolute: workers on a cluster start elsewhere."""
    search = backends.search
    if search and search.startswith("bm25:"):
        search = "bm25:" + str(Path(search[5:]).resolve())
    cache = str(Path(backends.cache_path).resolve()) if backends.cache_path else None
    return replace(backends, cache_path=cache, search=search)


class Tracker:
    """Progress from the done files: items finished, records kept, LLM calls made, inputs failed."""

    def __init__(self, name: str, total: int, ledger: Ledger, progress: Callable[[dict], None] | None) -> None:
        self.name, self.total, self.ledger, self.progress = name, total, ledger, progress
        self.failed: list[list[str]] = []

    def update(self) -> None:
        """Read new done files and report."""
        self.ledger.poll()
        if self.progress is not None:
            done = len(self.ledger.finished)
            self.progress(
                {
                    "stage": self.name,
                    "total": self.total,
                    "done": min(done, self.total),
                    "records": self.ledger.totals["kept"],
                    "calls": self.ledger.calls(),
                    "failed": len(self.failed),
                }
            )

    def partition_done(self, items: list[dict], report: dict | None, error: str | None) -> None:
        """Count a partition's failed items: those it reported, or all it did not finish when it could not run."""
        self.ledger.poll()
        if report is not None:
            self.failed.extend(report["failed"])
        else:
            self.failed.extend([i["id"], error] for i in items if i["id"] not in self.ledger.finished)


def _run_here(stage: Stage, parts: dict[int, list[dict]], out_dir: Path, opts: RunOptions, tracker: Tracker):
    """Every partition on this process's event loop, `partitions_per_worker` at once."""
    import asyncio

    limit = asyncio.Semaphore(opts.partitions_per_worker)

    async def bounded(index: int, items: list[dict]) -> dict:
        async with limit:
            return await run_items(stage, index, items, str(out_dir), opts.flush_seconds)

    futures = {asyncio.run_coroutine_threadsafe(bounded(i, p), loop()): i for i, p in parts.items()}
    try:
        _wait_all(futures, parts, tracker, lambda f: f.result())
    finally:
        for future in futures:
            future.cancel()  # Ctrl-C: stop the partitions still running on the loop
    close_backends()  # the loop outlives the run: close its connections now, or they are reported unclosed at exit
    return tracker.failed


def close_backends() -> None:
    """Close the HTTP sessions of this process's backends (on its event loop), as a run here or a worker ends."""
    import asyncio

    asyncio.run_coroutine_threadsafe(close_connections(), loop()).result(timeout=30)


def _wait_all(futures: dict, parts: dict, tracker: Tracker, result: Callable) -> None:
    """Wait for every future (index by future), reporting progress every second."""
    pending = set(futures)
    tracker.update()
    while pending:
        done, pending = concurrent.futures.wait(pending, timeout=1.0, return_when="FIRST_COMPLETED")
        for future in done:
            index = futures[future]
            try:
                tracker.partition_done(parts[index], result(future), None)
            except Exception as exc:  # noqa: BLE001 - a partition that could not run: its items failed
                tracker.partition_done(parts[index], None, one_line(exc))
        tracker.update()


@contextmanager
def dask_client(workers: int, scheduler: str | None, threads: int = 1, memory_limit: str | float | None = None):
    """A Dask client for `scheduler`, or for a local cluster of `workers` processes made here; None for neither.

    Local workers get `threads` threads each and a memory limit (default: 90% of this machine's memory shared out),
    past which Dask restarts the worker: a runaway task is killed, not the machine."""
    if not workers and not scheduler:
        yield None
        return
    from dask.distributed import Client, LocalCluster

    cluster = None
    if not scheduler:
        limit = memory_limit or _memory_share(workers)
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=threads,
            processes=True,
            dashboard_address=None,
            memory_limit=limit,
        )
    client = Client(scheduler or cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _memory_share(workers: int) -> int:
    import psutil

    return int(0.9 * psutil.virtual_memory().total / max(1, workers))


def _run_dask(stage: Stage, parts: dict[int, list[dict]], out_dir: Path, opts: RunOptions, tracker: Tracker):
    """Every partition as a Dask task named by stage (`crawlqa-00012`), so the dashboard says what runs."""
    with dask_client(opts.workers, opts.scheduler, opts.partitions_per_worker, opts.memory_limit) as client:
        futures = {
            client.submit(
                run_partition, stage, i, part, str(out_dir), opts.flush_seconds, key=f"{stage.name}-{i:05d}"
            ): i
            for i, part in parts.items()
        }
        _wait_dask(futures, parts, tracker)
        client.run(close_backends)  # each worker's HTTP sessions, before its process ends: no 'Unclosed' warnings
    return tracker.failed


def _wait_dask(futures: dict, parts: dict, tracker: Tracker) -> None:
    from distributed import wait

    pending = set(futures)
    tracker.update()
    while pending:
        try:
            wait(list(pending), timeout=1.0, return_when="FIRST_COMPLETED")
        except TimeoutError:
            pass
        for future in [f for f in pending if f.done()]:
            pending.discard(future)
            index = futures[future]
            if future.status == "finished":
                tracker.partition_done(parts[index], future.result(), None)
            else:  # the worker died (memory limit) or the task raised: only text is kept, never the object
                tracker.partition_done(parts[index], None, _error_text(future))
        tracker.update()


def _error_text(future) -> str:
    try:
        return one_line(future.exception())
    except Exception as exc:  # noqa: BLE001 - a cancelled future has no exception to fetch
        return one_line(exc)


LOCAL_SECONDS_PER_CALL = 20.0  # the embedded model on 2 cores: a batch of 8 calls of a few hundred tokens takes ~160 s
SLOW = 180.0  # seconds: a stage expected to take longer than this is announced, with how to make it smaller
LIMIT_FLAGS = {"crawlqa": "--max-groups", "e2hqa": "--max-questions", "sample": "--max-questions"}


def calls_per_item(stage: Stage) -> float:
    """A rough count of LLM calls one item of `stage` makes (for the up-front time estimate)."""
    config = stage.config
    if hasattr(config, "rewrites"):
        return 3.0 * config.rewrites
    if hasattr(config, "max_calls"):
        return config.max_calls / 2 + 2  # half the turn budget, and a visit extraction or two
    return 1.0 + bool(getattr(config, "verify_with_llm", False))


def warn_if_slow(stage: Stage, todo: int, opts: RunOptions) -> float:
    """Warn up front when a CPU model will take more than a few minutes; returns the estimate in seconds."""
    from .llm.factory import is_local

    if not todo or not is_local(stage.backends.model):
        return 0.0
    seconds = todo * calls_per_item(stage) * LOCAL_SECONDS_PER_CALL / max(1, opts.workers)
    if seconds > SLOW:
        flag = LIMIT_FLAGS.get(stage.name, "--limit")
        log.warning(
            "wdtk: %s will take about %d minutes with the CPU model %s (%d inputs); "
            "for a quick look, run fewer with %s N (raise it later: finished work is kept)",
            stage.name,
            round(seconds / 60),
            stage.backends.model or "embedded",
            todo,
            flag,
        )
    return seconds
