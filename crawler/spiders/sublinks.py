"""The `sublinks` spider: breadth-first from root URLs, following in-scope links to a depth and page limit.

    scrapy crawl sublinks -a roots=https://example.org/ -a max_depth=2 -a max_pages=500 -O pages.jsonl

Arguments (all `-a NAME=VALUE`): roots (comma-separated URLs, required), max_depth (default 3; 0 crawls
only the roots), max_pages (default 1000; 0 means no limit), allow / deny (comma-separated regexes that
widen or narrow the roots' sites), same_site (default true). Resume an interrupted crawl by running the
same command with `-s JOBDIR=DIR` both times.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime

import scrapy
from scrapy.exceptions import CloseSpider, IgnoreRequest, NotConfigured
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError

from ..items import PageItem
from ..scope import Scope, canonical


def _split(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """`-a` values are comma-separated strings; `wdtk crawl` passes lists, so its regexes may contain commas."""
    if isinstance(value, list | tuple):
        return tuple(value)
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _int_arg(name: str, value: object) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise NotConfigured(f"-a {name}= must be a whole number, got {value!r}") from None
    if number < 0:
        raise NotConfigured(f"-a {name}= must be >= 0, got {number}")
    return number


def is_html(response: Response) -> bool:
    """Whether a response is an HTML document, judged by its Content-Type rather than the URL."""
    ctype = response.headers.get(b"Content-Type", b"").decode("latin-1").lower()
    return "html" in ctype or (not ctype and isinstance(response, scrapy.http.HtmlResponse))


class SublinksSpider(scrapy.Spider):
    """Crawls the roots' sites breadth first and yields one PageItem per HTML page."""

    name = "sublinks"

    def __init__(
        self,
        roots: str = "",
        max_depth: int = 3,
        max_pages: int = 1000,
        allow: str | Sequence[str] = "",
        deny: str | Sequence[str] = "",
        same_site: str = "true",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        root_urls = tuple(canonical(u if "://" in u else f"https://{u}") for u in _split(roots))
        if not root_urls:
            raise NotConfigured("no roots: pass -a roots=URL[,URL...]")
        self.max_depth = _int_arg("max_depth", max_depth)
        self.max_pages = _int_arg("max_pages", max_pages)
        allow_patterns = _split(allow) + ((".",) if str(same_site).lower() in ("0", "false", "no") else ())
        self.scope = Scope(root_urls, allow=allow_patterns, deny=_split(deny))
        self.state: dict = {}  # replaced by the persisted one when JOBDIR is set

    @property
    def pages_done(self) -> int:
        return self.state.get("pages", 0)

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for root in self.scope.roots:
            yield scrapy.Request(root, callback=self.parse, errback=self.on_error, meta={"root": root, "depth": 0})

    def parse(self, response: Response) -> Iterator[PageItem | scrapy.Request]:
        """One page: requests for its in-scope links (while depth allows), then an item for it."""
        stats = self.crawler.stats
        if not is_html(response):
            stats.inc_value("wdtk/skipped/non_html")
            return
        if self.max_pages and self.pages_done >= self.max_pages:
            stats.inc_value("wdtk/skipped/page_limit")
            raise CloseSpider("max_pages")
        depth = response.meta.get("depth", 0)
        page_url = canonical((response.meta.get("redirect_urls") or [response.request.url])[0])
        links = self._links(response, page_url)
        self.state["pages"] = self.pages_done + 1
        # Requests before the item: the frontier grows before the item's extraction is even queued.
        if depth < self.max_depth:
            meta = {"root": response.meta["root"], "parent_url": page_url}
            for url in links:
                yield scrapy.Request(url, callback=self.parse, errback=self.on_error, meta=dict(meta))
        else:
            stats.inc_value("wdtk/links/depth_limit", len(links))
        yield self._item(response, page_url, depth, links)

    def _links(self, response: Response, page_url: str) -> list[str]:
        """In-scope, canonical, de-duplicated out-links in page order; skipped ones counted by reason."""
        seen: dict[str, None] = {}
        stats = self.crawler.stats
        for href in response.css("a::attr(href)").getall():
            url = canonical(response.urljoin(href.strip()))
            reason = self.scope.skip_reason(url)
            if reason:
                stats.inc_value(f"wdtk/links/{reason}")
            elif url != page_url:
                seen.setdefault(url)
        return list(seen)

    def _item(self, response: Response, page_url: str, depth: int, links: list[str]) -> PageItem:
        item = PageItem(
            url=page_url,
            final_url=response.url,
            status=response.status,
            html=response.text,
            links=links,
            depth=depth,
            root=response.meta["root"],
            fetched_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            content_hash=hashlib.sha256(response.body).hexdigest(),
        )
        if ctype := response.headers.get(b"Content-Type", b"").decode("latin-1"):
            item["content_type"] = ctype
        if response.meta.get("parent_url"):
            item["parent_url"] = response.meta["parent_url"]
        return item

    def on_error(self, failure) -> None:
        """Count failed requests by kind; requests refused on purpose were counted where they were refused."""
        if failure.check(IgnoreRequest) and not failure.check(HttpError):
            return
        name = f"http_{failure.value.response.status}" if failure.check(HttpError) else failure.type.__name__
        self.crawler.stats.inc_value(f"wdtk/errors/{name}")
