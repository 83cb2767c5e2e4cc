"""Run the `sublinks` spider in-process with wdtk's settings: what `wdtk crawl` calls."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .extensions import summarize

STATE_DIR = ".jobdir"  # Scrapy's JOBDIR inside the output dir: re-running the same command resumes


@dataclass
class CrawlConfig:
    """Options of one crawl; the fields mirror `wdtk crawl`'s flags."""

    roots: Sequence[str]
    out_dir: Path
    max_depth: int = 3
    max_pages: int = 1000
    allow: Sequence[str] = ()
    deny: Sequence[str] = ()
    same_site: bool = True
    robots: bool = True
    throttle: bool = True
    fmt: str = "jsonl.gz"
    restart: bool = False
    log_level: str = "WARNING"
    settings: dict = field(default_factory=dict)


def scrapy_settings(cfg: CrawlConfig):
    """wdtk's project settings with this crawl's options applied on top."""
    from scrapy.settings import Settings

    settings = Settings()
    settings.setmodule("wdtk.crawler.settings", priority="project")
    overrides = {
        "WDTK_OUTPUT_DIR": str(cfg.out_dir),
        "WDTK_OUTPUT_FORMAT": cfg.fmt,
        "JOBDIR": str(cfg.out_dir / STATE_DIR),
        "ROBOTSTXT_OBEY": cfg.robots,
        "LOG_LEVEL": cfg.log_level,
    }
    if not cfg.throttle:  # for sites you run yourself: no AutoThrottle, more requests in flight
        overrides.update(AUTOTHROTTLE_ENABLED=False, CONCURRENT_REQUESTS_PER_DOMAIN=32, CONCURRENT_REQUESTS=64)
    settings.setdict({**overrides, **cfg.settings}, priority="cmdline")
    return settings


def crawl(cfg: CrawlConfig, on_page: Callable[[dict], None] | None = None) -> dict:
    """Crawl, write shards under cfg.out_dir/pages, and return the summary. Runs the reactor: once per process."""
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess

    from .spiders.sublinks import SublinksSpider

    if cfg.restart:
        shutil.rmtree(cfg.out_dir / STATE_DIR, ignore_errors=True)
        shutil.rmtree(cfg.out_dir / "pages", ignore_errors=True)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    process = CrawlerProcess(scrapy_settings(cfg))
    crawler = process.create_crawler(SublinksSpider)
    if on_page:
        crawler.signals.connect(lambda item, **_: on_page(item), signal=signals.item_scraped, weak=False)
    process.crawl(
        crawler,
        roots=",".join(cfg.roots),
        max_depth=cfg.max_depth,
        max_pages=cfg.max_pages,
        allow=tuple(cfg.allow),  # a list, not a joined string: regexes may contain commas ({2,3})
        deny=tuple(cfg.deny),
        same_site=str(cfg.same_site),
    )
    process.start()
    return summarize(crawler.stats.get_stats())
