"""Item pipelines: extract main text off the reactor thread, then validate and write page records."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
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
            # spawn, not fork: the reactor process has threads, and forking those can deadlock a child.
            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def close_spider(self) -> None:
        if self.pool:
            self.pool.shutdown(wait=True, cancel_futures=True)

    async def process_item(self, item) -> dict:
        item, stats = dict(item), self.crawler.stats
        try:
            if self.pool:
                record, error = await asyncio.wrap_future(self.pool.submit(build_record, item))
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
    """Writes page records as shards under WDTK_OUTPUT_DIR/pages (set by `wdtk crawl -o DIR`)."""

    def __init__(self, out_dir: str, fmt: str, shard_size: int) -> None:
        self.dir = Path(out_dir) / "pages"
        self.fmt, self.shard_size = fmt, shard_size
        self.writer: ShardWriter | None = None

    @classmethod
    def from_crawler(cls, crawler):
        out = crawler.settings.get("WDTK_OUTPUT_DIR")
        if not out:
            raise NotConfigured("WDTK_OUTPUT_DIR not set: records go to feed exports (-o/-O) only")
        s = crawler.settings
        return cls(out, s.get("WDTK_OUTPUT_FORMAT", "jsonl.gz"), s.getint("WDTK_SHARD_SIZE", 1000))

    def open_spider(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        # records arrive validated by ExtractPipeline; no second check here
        self.writer = ShardWriter(self.dir, fmt=self.fmt, shard_size=self.shard_size)

    def close_spider(self) -> None:
        if self.writer:
            self.writer.close()

    def process_item(self, item: dict) -> dict:
        self.writer.write(item)
        return item
