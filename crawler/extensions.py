"""Crawl summary: pages written, what was skipped and why, errors; logged at the end and saved as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

from scrapy import signals

# Scrapy's own stat names for things skipped on purpose, under the names users see.
_SKIPPED = {
    "robotstxt/forbidden": "robots_txt",
    "dupefilter/filtered": "duplicate_url",
    "wdtk/skipped/non_html": "non_html",
    "wdtk/skipped/page_limit": "page_limit",
}


def summarize(stats: dict) -> dict:
    """A user-facing summary of a crawl's Scrapy stats."""
    skipped = {name: stats[key] for key, name in _SKIPPED.items() if stats.get(key)}
    for key, value in stats.items():
        if key.startswith("wdtk/skipped/redirect_"):
            skipped[key.removeprefix("wdtk/skipped/")] = value
    links = {k.removeprefix("wdtk/links/"): v for k, v in stats.items() if k.startswith("wdtk/links/")}
    errors = {k.removeprefix("wdtk/errors/"): v for k, v in stats.items() if k.startswith("wdtk/errors/")}
    elapsed = stats.get("elapsed_time_seconds") or 0.0
    pages = stats.get("item_scraped_count", 0)
    return {
        "pages": pages,
        "requests": stats.get("downloader/request_count", 0),
        "skipped": dict(sorted(skipped.items())),
        "links_not_followed": dict(sorted(links.items())),
        "errors": dict(sorted(errors.items())),
        "empty_text": stats.get("wdtk/pages/empty_text", 0),
        "seconds": round(elapsed, 2),
        "pages_per_minute": round(pages / elapsed * 60, 1) if elapsed else 0.0,
        "finish_reason": stats.get("finish_reason", ""),
    }


class CrawlSummary:
    """Logs the summary when the spider closes and writes it to WDTK_OUTPUT_DIR/crawl_summary.json."""

    def __init__(self, crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        ext = cls(crawler)
        # CoreStats (extension order 0) connects first, so elapsed time and finish reason are set by now
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_closed(self, spider, reason: str) -> None:
        summary = summarize(self.crawler.stats.get_stats())
        spider.logger.info("crawl summary: %s", json.dumps(summary))
        out = self.crawler.settings.get("WDTK_OUTPUT_DIR")
        if out:
            path = Path(out) / "crawl_summary.json"
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
            os.replace(tmp, path)
