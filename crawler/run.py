"""Run the `sublinks` spider in-process with wdtk's settings: what `wdtk crawl` calls."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..schemas import WdtkError
from .extensions import summarize
from .scope import canonical, check_root
from .state import crawl_key, prepare


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
    log_level: str = "INFO"
    settings: dict = field(default_factory=dict)


def scrapy_settings(cfg: CrawlConfig):
    """wdtk's project settings with this crawl's options applied on top."""
    from scrapy.settings import Settings

    settings = Settings()
    settings.setmodule("wdtk.crawler.settings", priority="project")
    overrides = {
        "WDTK_OUTPUT_DIR": str(cfg.out_dir),
        "WDTK_OUTPUT_FORMAT": cfg.fmt,
        "WDTK_FATAL_EXIT": False,  # unusable saved state: the spider closes and crawl() raises WdtkError
        "ROBOTSTXT_OBEY": cfg.robots,
        "LOG_LEVEL": cfg.log_level,
    }
    if not cfg.throttle:  # for sites you run yourself: no AutoThrottle, more requests in flight
        overrides.update(AUTOTHROTTLE_ENABLED=False, CONCURRENT_REQUESTS_PER_DOMAIN=32, CONCURRENT_REQUESTS=64)
    settings.setdict({**overrides, **cfg.settings}, priority="cmdline")
    return settings


def check(cfg: CrawlConfig) -> None:
    """Refuse unusable options with one line each (WdtkError) before any reactor starts."""
    if not cfg.roots:
        raise WdtkError("no roots: give at least one URL to crawl from")
    for root in cfg.roots:
        try:
            check_root(root)
        except ValueError as exc:
            raise WdtkError(str(exc)) from None
    for name, patterns in (("--allow", cfg.allow), ("--deny", cfg.deny)):
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise WdtkError(f"{name} {pattern!r} is not a valid regex: {exc}") from None


def _quiet_scrapy(level: str, handler: logging.Handler | None) -> None:
    """Our progress and summary at `level`; Scrapy's own start-up chatter only at DEBUG."""
    root = logging.getLogger()
    if handler is not None:
        root.addHandler(handler)
        root.setLevel(level)
    if level != "DEBUG":
        logging.getLogger("scrapy").setLevel(max(logging.WARNING, logging.getLevelName(level)))
        # a URL (or robots.txt) that failed every retry is counted in the summary, and named when no page came:
        # no traceback for it
        for name in ("retry", "robotstxt"):
            logging.getLogger(f"scrapy.downloadermiddlewares.{name}").setLevel(logging.CRITICAL)


def crawl(cfg: CrawlConfig, on_page: Callable[[dict], None] | None = None,
          log_handler: logging.Handler | None = None) -> dict:  # fmt: skip
    """Crawl, write shards under cfg.out_dir/pages, and return the summary. Runs the reactor: once per process.

    A crawl of the same roots and limits resumes from what cfg.out_dir holds; a finished one is not repeated
    (its saved summary comes back with "already_complete"). Raises WdtkError when not a single page could be
    fetched, naming the first failure.
    """
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess

    from .spiders.sublinks import SublinksSpider

    check(cfg)
    roots = dict.fromkeys(canonical(check_root(r)) for r in cfg.roots)  # as the spider reads them
    key = crawl_key(roots, cfg.max_depth, cfg.max_pages, cfg.allow, cfg.deny, cfg.same_site, cfg.robots)
    if prepare(cfg.out_dir, key, restart=cfg.restart) == "complete":
        summary_path = cfg.out_dir / "crawl_summary.json"
        saved = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        return {**saved, "already_complete": True}
    settings = scrapy_settings(cfg)
    settings.set("LOG_INSTALL_ROOT_HANDLER", log_handler is None, priority="cmdline")
    if cfg.log_level != "DEBUG":
        settings.set("LOG_VERSIONS", [], priority="cmdline")  # the start-up banner's library versions
    process = CrawlerProcess(settings)
    _quiet_scrapy(cfg.log_level, log_handler)  # after: the process sets Scrapy's loggers to DEBUG
    crawler = process.create_crawler(SublinksSpider)
    if on_page:

        def page_scraped(item, spider, **_) -> None:
            f = spider.frontier
            on_page({"pages": f.pages, "queued": f.queued + f.in_flight, "depth": f.level})

        crawler.signals.connect(page_scraped, signal=signals.item_scraped, weak=False)
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
    if getattr(crawler.spider, "fatal", ""):  # the saved pages could not be read
        raise WdtkError(crawler.spider.fatal)
    summary = summarize(crawler.stats.get_stats(), crawler.spider)
    if summary["new_pages"] == 0 and summary.get("first_failure") and not summary["complete"]:
        raise WdtkError(f"no page could be fetched: {summary['first_failure']}")
    return summary
