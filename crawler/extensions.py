"""Crawl summary, periodic progress, the completion marker, and quiet item logging."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from scrapy import signals
from scrapy.logformatter import LogFormatter
from scrapy.utils.asyncio import create_looping_call

from ..schemas import mark_complete

logger = logging.getLogger("wdtk.crawler")
# Scrapy's own stat names for things skipped on purpose, under the names users see.
_SKIPPED = {
    "robotstxt/forbidden": "robots_txt",
    "wdtk/skipped/duplicate_url": "duplicate_url",
    "wdtk/skipped/duplicate_content": "duplicate_content",
    "wdtk/skipped/non_html": "non_html",
}


def summarize(stats: dict, spider=None) -> dict:
    """A user-facing summary of a crawl: this run's Scrapy stats, and the whole crawl's totals from `spider`."""
    skipped = {name: stats[key] for key, name in _SKIPPED.items() if stats.get(key)}
    for key, value in stats.items():
        if key.startswith("wdtk/skipped/redirect_"):
            skipped[key.removeprefix("wdtk/skipped/")] = value
    links = {k.removeprefix("wdtk/links/"): v for k, v in stats.items() if k.startswith("wdtk/links/")}
    errors = {k.removeprefix("wdtk/errors/"): v for k, v in stats.items() if k.startswith("wdtk/errors/")}
    elapsed = stats.get("elapsed_time_seconds") or 0.0
    new = stats.get("item_scraped_count", 0)
    frontier = getattr(spider, "frontier", None)
    finished = stats.get("finish_reason") in ("finished", "max_pages")  # not "shutdown" (Ctrl-C) or a failure
    done = bool(frontier) and frontier.pages > 0 and (frontier.exhausted or frontier.limit_reached)
    summary = {
        "pages": getattr(spider, "restored_pages", 0) + new,  # earlier runs' pages too: a resume never reports 0
        "new_pages": new,
        "requests": stats.get("downloader/request_count", 0),
        "skipped": dict(sorted(skipped.items())),
        "links_not_followed": dict(sorted(links.items())),
        "errors": dict(sorted(errors.items())),
        "empty_text": stats.get("wdtk/pages/empty_text", 0),
        "seconds": round(elapsed, 2),
        "pages_per_minute": round(new / elapsed * 60, 1) if elapsed else 0.0,
        "finish_reason": stats.get("finish_reason", ""),
        "queued": frontier.queued + frontier.in_flight if frontier else 0,
        "complete": finished and done,
        "duplicate_content": dict(sorted(getattr(spider, "duplicates", {}).items())),
    }
    if stats.get("wdtk/first_failure"):
        summary["first_failure"] = stats["wdtk/first_failure"]
    return summary


class CrawlSummary:
    """Logs the summary when the spider closes, writes it to WDTK_OUTPUT_DIR/crawl_summary.json, and marks the pages
    complete when the frontier is empty or the page limit was reached (never after an interrupted run)."""

    def __init__(self, crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        ext = cls(crawler)
        # CoreStats (extension order 0) connects first, so elapsed time and finish reason are set by now; the item
        # pipelines have closed (their last shard is written) before spider_closed is sent
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_closed(self, spider, reason: str) -> None:
        summary = summarize(self.crawler.stats.get_stats(), spider)
        logger.info("crawl summary: %s", json.dumps({k: v for k, v in summary.items() if k != "duplicate_content"}))
        out = self.crawler.settings.get("WDTK_OUTPUT_DIR")
        if out and not getattr(spider, "fatal", "") and not _keeps_better(Path(out), summary):
            path = Path(out) / "crawl_summary.json"
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
            os.replace(tmp, path)
            if summary["complete"]:
                mark_complete(Path(out) / "pages", pages=summary["pages"], finish_reason=reason)


def _keeps_better(out: Path, summary: dict) -> bool:
    """Whether out/crawl_summary.json describes pages that `summary` (with none) would wipe out."""
    try:
        return not summary["pages"] and json.loads((out / "crawl_summary.json").read_text()).get("pages", 0) > 0
    except (OSError, ValueError, AttributeError):
        return False


class CrawlProgress:
    """Logs a progress line every WDTK_PROGRESS_INTERVAL seconds (0: never): pages, rate, queue, level."""

    def __init__(self, crawler, interval: float) -> None:
        self.crawler, self.interval = crawler, interval
        self.task = None
        self.started, self.last = time.monotonic(), (time.monotonic(), 0)

    @classmethod
    def from_crawler(cls, crawler):
        ext = cls(crawler, crawler.settings.getfloat("WDTK_PROGRESS_INTERVAL", 10.0))
        if ext.interval > 0:
            crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
            crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider) -> None:
        self.task = create_looping_call(self.log, spider)
        self.task.start(self.interval, now=False)

    def log(self, spider) -> None:
        """One progress line."""
        frontier = getattr(spider, "frontier", None)
        now, pages = time.monotonic(), self.crawler.stats.get_value("item_scraped_count", 0)
        rate = (pages - self.last[1]) / max(now - self.last[0], 1e-9)
        self.last = (now, pages)
        queued = frontier.queued + frontier.in_flight if frontier else 0
        level = frontier.level if frontier else 0
        logger.info("progress: %d pages (%.1f pages/s), %d queued, depth %d", pages, rate, queued, level)

    def spider_closed(self, spider, reason: str) -> None:
        if self.task and self.task.running:
            self.task.stop()


class QuietLogFormatter(LogFormatter):
    """Scraped items are logged by URL at DEBUG, never in full: an item carries the page's whole HTML."""

    def scraped(self, item, response, spider):
        """The log entry for a scraped item."""
        entry = super().scraped(item, response, spider)
        entry.update(msg="Scraped %(url)s", args={"url": item.get("url", "")})
        return entry
