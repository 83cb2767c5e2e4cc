"""Item pipelines: extract main text off the reactor thread, then validate and write page records."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from scrapy.exceptions import DropItem, NotConfigured

from .. import __version__
from ..schemas import RecordError, ShardWriter, record_id, validate
from .extract import EXTRACTOR, extract_page


def page_record(item: dict, title: str, text: str) -> dict:
    """The schema's page record for a fetched item and its extracted title and text."""
    record = {k: v for k, v in item.items() if k != "html"}
    record.update(title=title, text=text)
    record["id"] = record_id("page", record["url"], record["content_hash"])
    record["meta"] = {"crawler": "sublinks", "extractor": EXTRACTOR, "wdtk_version": __version__}
    return record


def build_record(item: dict) -> tuple[dict, str | None]:
    """(validated page record, extraction error or None) for a fetched item: the work done in worker processes.

    A page the extractor chokes on is still a page: it is kept with empty text and the error reported.
    A record that fails its schema raises RecordError.
    """
    try:
        (title, text), error = extract_page(item["html"], item["url"]), None
    except Exception as exc:
        title, text, error = "", "", repr(exc)
    record = page_record(item, title, text)
    validate(record, "page")
    return record, error


def worker_init(parent: int) -> None:
    """Run in each extraction worker: leave Ctrl-C to the crawl, and die with it, even by SIGKILL (Linux).

    Ctrl-C reaches the whole process group: a worker that took it would break the pool under the crawl's graceful
    stop. A SIGKILLed crawl would leave its workers running, holding memory and the output directory.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class ExtractPipeline:
    """Turns PageItems into validated page records, extracting text in worker processes.

    trafilatura and schema validation cost milliseconds of pure Python per page; run inline they would
    stall the reactor and with it every download. WDTK_EXTRACT_WORKERS=0 works inline (debugging).
    """

    def __init__(self, crawler) -> None:
        self.crawler = crawler
        workers = crawler.settings.getint("WDTK_EXTRACT_WORKERS", -1)
        # default: leave one core to the reactor (on 2 cores, 1 worker crawled faster than 2: bench/crawl.py)
        self.workers = max(1, (os.cpu_count() or 1) - 1) if workers < 0 else workers
        self.pool: ProcessPoolExecutor | None = None

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def open_spider(self) -> None:
        if self.workers:
            self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the reactor process has threads, and forking those can deadlock a child.
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=worker_init, initargs=(os.getpid(),))

    async def _extract(self, item: dict) -> tuple[dict, str | None]:
        """build_record in a worker; a pool broken by a dead worker (OOM killer) is replaced and the item retried."""
        try:
            return await asyncio.wrap_future(self.pool.submit(build_record, item))
        except BrokenProcessPool:
            self.crawler.spider.logger.warning("an extraction worker died; starting new ones")
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()
            return await asyncio.wrap_future(self.pool.submit(build_record, item))

    def close_spider(self) -> None:
        if self.pool:
            self.pool.shutdown(wait=True, cancel_futures=True)

    async def process_item(self, item) -> dict:
        item, stats = dict(item), self.crawler.stats
        try:
            if self.pool:
                record, error = await self._extract(item)
            else:
                record, error = build_record(item)
        except RecordError as exc:
            stats.inc_value("wdtk/errors/invalid_record")
            raise DropItem(f"invalid page record for {item['url']}: {exc}") from None
        if error:
            stats.inc_value("wdtk/errors/extract")
            self.crawler.spider.logger.warning("extraction failed for %s: %s", item["url"], error)
        if not record["text"]:
            stats.inc_value("wdtk/pages/empty_text")
        return record


class ShardPipeline:
    """Writes page records as shards under WDTK_OUTPUT_DIR/pages (set by `wdtk crawl -o DIR`).

    A shard is closed every WDTK_SHARD_SIZE records or WDTK_SHARD_SECONDS seconds, whichever comes first: the
    shards are the crawl's checkpoint, so a kill loses (and a restart refetches) at most that much.
    """

    def __init__(self, out_dir: str, fmt: str, shard_size: int, shard_seconds: float = 5.0) -> None:
        self.dir = Path(out_dir) / "pages"
        self.fmt, self.shard_size, self.shard_seconds = fmt, shard_size, shard_seconds
        self.writer: ShardWriter | None = None
        self.in_shard, self.opened = 0, time.monotonic()  # records in the open shard; when it got its first

    @classmethod
    def from_crawler(cls, crawler):
        out = crawler.settings.get("WDTK_OUTPUT_DIR")
        if not out:
            raise NotConfigured("WDTK_OUTPUT_DIR not set: records go to feed exports (-o/-O) only")
        s = crawler.settings
        fmt, size = s.get("WDTK_OUTPUT_FORMAT", "jsonl.gz"), s.getint("WDTK_SHARD_SIZE", 1000)
        return cls(out, fmt, size, s.getfloat("WDTK_SHARD_SECONDS", 5.0))

    def open_spider(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        # records arrive validated by ExtractPipeline; no second check here
        self.writer = ShardWriter(self.dir, fmt=self.fmt, shard_size=self.shard_size, complete_on_close=False)

    def close_spider(self) -> None:
        if self.writer:
            self.writer.close()

    def process_item(self, item: dict) -> dict:
        if not self.in_shard:
            self.opened = time.monotonic()  # a new shard starts with this record
        self.writer.write(item)
        self.in_shard = (self.in_shard + 1) % self.shard_size  # the writer closes a full shard itself
        if self.in_shard and time.monotonic() - self.opened >= self.shard_seconds:
            self.writer.flush()
            self.in_shard = 0
        return item
