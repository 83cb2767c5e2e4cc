"""The `sublinks` spider: breadth first from root URLs, following in-scope links to a depth and page limit.

    scrapy crawl sublinks -a roots=https://example.org/ -a max_depth=2 -a max_pages=500 -O pages.jsonl

Arguments (all `-a NAME=VALUE`): roots (comma-separated URLs, required), max_depth (default 3; 0 crawls
only the roots), max_pages (default 1000; 0 means no limit), allow / deny (comma-separated regexes that
widen or narrow the roots' sites), same_site (default true). With `-s WDTK_OUTPUT_DIR=DIR` the page shards in
DIR/pages are the checkpoint: run the same command again after any stop, even SIGKILL, and it resumes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import scrapy
from scrapy import signals
from scrapy.exceptions import CloseSpider, DontCloseSpider, IgnoreRequest
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.response import get_base_url

from ..frontier import Frontier
from ..items import PageItem
from ..scope import Scope, canonical, check_root
from ..state import CrawlStateError, Journal, crawl_key, prepare, saved_pages, start_writing

# Network failures in words, for "no page could be fetched: connection refused at URL" (Scrapy 2.19 names them
# DownloadConnectionRefusedError and so on, older versions ConnectionRefusedError).
_FAILURES = {"ConnectionRefused": "connection refused", "DNSLookup": "DNS lookup failed", "Timeout": "timed out",
             "TimedOut": "timed out", "ConnectError": "could not connect"}  # fmt: skip


def _failure_words(name: str) -> str:
    return next((words for key, words in _FAILURES.items() if key in name), name)


class BadArgument(ValueError):
    """A spider argument that cannot be used; its message is the one line the user sees."""


def _split(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """`-a` values are comma-separated strings; `wdtk crawl` passes lists, so its regexes may contain commas."""
    if isinstance(value, list | tuple):
        return tuple(value)
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _int_arg(name: str, value: object) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadArgument(f"-a {name}= must be a whole number, got {value!r}") from None
    if number < 0:
        raise BadArgument(f"-a {name}= must be >= 0, got {number}")
    return number


def _regexes(name: str, patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise BadArgument(f"{name} pattern {pattern!r} is not a valid regex: {exc}") from None
    return patterns


def absolute(base: str, origin: str, href: str) -> str:
    """`href` resolved against the page's `base` URL; site-absolute paths without urljoin (most links are)."""
    if href.startswith("/") and not href.startswith("//"):
        return origin + href
    return href if href.startswith(("http://", "https://")) else urljoin(base, href)


def is_html(response: Response) -> bool:
    """Whether a response is an HTML document, judged by its Content-Type rather than the URL."""
    ctype = response.headers.get(b"Content-Type", b"").decode("latin-1").lower()
    return "html" in ctype or (not ctype and isinstance(response, scrapy.http.HtmlResponse))


class SublinksSpider(scrapy.Spider):
    """Crawls the roots' sites breadth first, level by level, and yields one PageItem per distinct HTML page."""

    name = "sublinks"

    def __init__(self, roots: str = "", max_depth: int = 3, max_pages: int = 1000, allow: str | Sequence[str] = "",
                 deny: str | Sequence[str] = "", same_site: str = "true", **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        try:
            root_urls = tuple(dict.fromkeys(canonical(check_root(u)) for u in _split(roots)))
        except ValueError as exc:
            raise BadArgument(str(exc)) from None
        if not root_urls:
            raise BadArgument("no roots: pass -a roots=URL[,URL...]")
        self.max_depth = _int_arg("max_depth", max_depth)
        self.max_pages = _int_arg("max_pages", max_pages)
        self.allow, self.deny = _regexes("allow", _split(allow)), _regexes("deny", _split(deny))
        self.same_site = str(same_site).lower() not in ("0", "false", "no")
        self.scope = Scope(root_urls, allow=self.allow + (() if self.same_site else (".",)), deny=self.deny)
        self.hashes: dict[str, str] = {}  # content hash -> URL of the page recorded with it
        self.duplicates: dict[str, str] = {}  # URL -> the URL whose content it repeats
        self.root_of: dict[str, str] = {root: root for root in root_urls}
        self.journal: Journal | None = None
        self.frontier = Frontier.restore((), 0, 0, (), ())  # replaced by restore()
        self.fatal, self.restored_pages = "", 0

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        """The spider, its saved state restored; a bad argument or unusable state ends `scrapy crawl` in one line."""
        try:
            spider = super().from_crawler(crawler, *args, **kwargs)
        except BadArgument as exc:
            raise SystemExit(f"sublinks: {exc}") from None  # an exception here would print a traceback
        try:
            spider.restore()
        except CrawlStateError as exc:
            if crawler.settings.getbool("WDTK_FATAL_EXIT", True):
                raise SystemExit(f"sublinks: {exc}") from None
            spider.fatal = str(exc)  # in-process (`wdtk crawl`): close at once, and run.crawl raises it
        crawler.signals.connect(spider.on_idle, signal=signals.spider_idle)
        return spider

    def restore(self) -> None:
        """Build the frontier: from the shards and journal in WDTK_OUTPUT_DIR when set, else from the roots."""
        settings = self.crawler.settings
        self.window = 2 * settings.getint("CONCURRENT_REQUESTS", 16)
        pages, done, out = [], {}, settings.get("WDTK_OUTPUT_DIR")
        if out:
            out = Path(out)
            key = crawl_key(self.scope.roots, self.max_depth, self.max_pages, self.allow, self.deny, self.same_site,
                            settings.getbool("ROBOTSTXT_OBEY"))  # fmt: skip
            prepare(out, key)
            done = Journal.read(out)
            for record in saved_pages(out):
                page = {k: record[k] for k in ("url", "depth", "links")}
                pages.append({**page, "final_url": canonical(record["final_url"])})  # as the crawl saw it
                self.hashes[record["content_hash"]] = record["url"]
                self.root_of[record["url"]] = record["root"]
            self.duplicates = {u: e["of"] for u, e in done.items() if e["outcome"] == "duplicate_content"}
            start_writing(out)
            self.journal = Journal(out)
        self.frontier = Frontier.restore(self.scope.roots, self.max_depth, self.max_pages, pages, done)
        self.restored_pages = len(pages)

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for request in self._requests():
            yield request

    def _requests(self) -> list[scrapy.Request]:
        """Requests for what the frontier hands out now. dont_filter: the frontier already fetches each URL once."""
        out = []
        for url, depth, parent in self.frontier.take(self.window):
            root = self.root_of.get(parent, url) if parent else url
            meta = {"url": url, "depth": depth, "root": root, **({"parent_url": parent} if parent else {})}
            out.append(scrapy.Request(url, self.parse, errback=self.on_error, dont_filter=True, meta=meta))
        return out

    def _pump(self) -> None:
        """Hand out what the frontier allows; the moment a level's last response is in, start the next level.

        Not at spider_idle: that waits for the level's items to leave the extraction workers too, and the
        downloader would sit idle meanwhile."""
        if not self.frontier.queue and not self.frontier.in_flight:
            self.frontier.advance()
        for request in self._requests():
            self.crawler.engine.crawl(request)

    def on_idle(self) -> None:
        """Nothing in flight: go on with the next level if there is one (_pump usually has already), else close."""
        if self.fatal:
            raise CloseSpider("unusable_state")
        self.frontier.in_flight = 0  # the engine is idle: nothing handed out is still coming back
        self.crawler.stats.set_value("wdtk/skipped/duplicate_url", self.frontier.duplicates)
        if self.frontier.limit_reached:
            raise CloseSpider("max_pages")
        self._pump()
        if self.frontier.in_flight:
            raise DontCloseSpider

    def parse(self, response: Response) -> list[PageItem]:
        """One fetched URL: a page item, unless it is not HTML or repeats a page already recorded."""
        url = response.meta["url"]
        if not is_html(response):
            self._failed(url, "not HTML")
            return self._no_page(url, "non_html")
        digest = hashlib.sha256(response.body).hexdigest()
        if digest in self.hashes:  # an alias (/ and /index.html, ?variants): the bytes of a page already recorded
            self.duplicates[url] = self.hashes[digest]
            return self._no_page(url, "duplicate_content", of=self.hashes[digest])
        self.hashes[digest] = url
        links = self._links(response, url)
        if response.meta["depth"] >= self.max_depth:
            self.crawler.stats.inc_value("wdtk/links/depth_limit", len(links))
        self.frontier.page(url, links, canonical(response.url))
        self.root_of[url] = response.meta["root"]
        item = self._item(response, url, links, digest)
        self._pump()
        return [item]

    def _no_page(self, url: str, outcome: str, **extra: str) -> list:
        self.crawler.stats.inc_value(f"wdtk/skipped/{outcome}")
        self._done(url, outcome, **extra)
        return []

    def _done(self, url: str, outcome: str, **extra: str) -> None:
        if self.journal:
            self.journal.add(url, outcome, **extra)
        self.frontier.other(url)
        self._pump()

    def _links(self, response: Response, page_url: str) -> list[str]:
        """In-scope, canonical, de-duplicated out-links in page order; skipped ones counted by reason."""
        seen: dict[str, None] = {}
        stats = self.crawler.stats
        base = get_base_url(response)
        parts = urlsplit(base)
        origin = f"{parts.scheme}://{parts.netloc}"
        for href in response.css("a::attr(href)").getall():
            try:
                url = canonical(absolute(base, origin, href.strip()))
            except ValueError:  # a malformed href (a port out of range, a bad IPv6 host)
                stats.inc_value("wdtk/links/malformed")
                continue
            reason = self.scope.skip_reason(url)
            if reason:
                stats.inc_value(f"wdtk/links/{reason}")
            elif url != page_url:
                seen.setdefault(url)
        return list(seen)

    def _item(self, response: Response, page_url: str, links: list[str], digest: str) -> PageItem:
        item = PageItem(
            url=page_url,
            final_url=response.url,
            status=response.status,
            html=response.text,
            links=links,
            depth=response.meta["depth"],
            root=response.meta["root"],
            fetched_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            content_hash=digest,
        )
        if ctype := response.headers.get(b"Content-Type", b"").decode("latin-1"):
            item["content_type"] = ctype
        if response.meta.get("parent_url"):
            item["parent_url"] = response.meta["parent_url"]
        return item

    def on_error(self, failure) -> None:
        """Count failed requests by kind. Refusals and HTTP errors are final; network failures are tried again on
        resume."""
        url = failure.request.meta["url"]
        if failure.check(HttpError):
            name = f"http_{failure.value.response.status}"
            self._failed(url, f"HTTP {failure.value.response.status}")
        elif failure.check(IgnoreRequest):  # refused on purpose (robots.txt, scope), counted where refused
            self._failed(url, f"refused ({failure.value})")
            return self._done(url, "refused")
        else:
            name = failure.type.__name__
            self._failed(url, _failure_words(name))
            self.crawler.stats.inc_value(f"wdtk/errors/{name}")
            self.frontier.other(url)  # not journaled: a later run tries it again
            return self._pump()
        self.crawler.stats.inc_value(f"wdtk/errors/{name}")
        self._done(url, name)

    def _failed(self, url: str, what: str) -> None:
        """Remember the first failure, for a crawl that gets no page at all."""
        if not self.crawler.stats.get_value("wdtk/first_failure"):
            self.crawler.stats.set_value("wdtk/first_failure", f"{what} at {url}")

    def closed(self, reason: str) -> None:
        """Stop appending to the journal."""
        if self.journal:
            self.journal.close()
