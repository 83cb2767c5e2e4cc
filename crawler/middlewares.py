"""Downloader middlewares: redirects kept in scope, non-HTML downloads stopped at their headers, robots.txt obeyed
by every request."""

from __future__ import annotations

from scrapy import Request, signals
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest, StopDownload
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred

from .scope import canonical


class ScopeMiddleware:
    """Refuses requests that left the crawl's scope through a redirect, and stops non-HTML bodies early."""

    def __init__(self, crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        mw = cls(crawler)
        crawler.signals.connect(mw.headers_received, signal=signals.headers_received)
        return mw

    def process_request(self, request: Request) -> None:
        """Redirected requests pass through here again: an off-scope target, or one the crawl has already seen (an
        alias redirecting to its page), is dropped, not fetched; a new target counts as seen from now on."""
        spider = self.crawler.spider
        scope, frontier = getattr(spider, "scope", None), getattr(spider, "frontier", None)
        if scope is None or not request.meta.get("redirect_urls"):
            return None
        reason = scope.skip_reason(request.url)
        target = canonical(request.url)
        if not reason and frontier is not None and target != request.meta.get("url"):
            reason = "duplicate" if target in frontier.seen else None
            frontier.seen.add(target)
        if reason:
            self.crawler.stats.inc_value(f"wdtk/skipped/redirect_{reason}")
            raise IgnoreRequest(f"redirect {'to a URL already seen' if reason == 'duplicate' else 'out of scope'} "
                                f"({reason}): {request.url}")  # fmt: skip
        return None

    def headers_received(self, headers, body_length, request: Request, spider) -> None:
        """Skip downloading a body we would throw away: the spider then sees an empty non-HTML response.

        Only the spider's own page requests (they carry `root`): robots.txt is text/plain and must arrive whole.
        """
        ctype = headers.get(b"Content-Type", b"").decode("latin-1").lower()
        if "root" in request.meta and ctype and "html" not in ctype:
            raise StopDownload(fail=False)


class RobotsMiddleware(RobotsTxtMiddleware):
    """Scrapy's RobotsTxtMiddleware, with every request that waited for robots.txt checked against it.

    In Scrapy 2.19 the requests that wait on a site's robots.txt share one Deferred; the first gets the parser and
    the rest get None, and go out unchecked. A resumed crawl starts with many requests at once, and fetched
    pages that robots.txt disallows. Once robots.txt is in, read its parser again.
    """

    async def robot_parser(self, request: Request):
        """The site's robots.txt parser, or None when robots.txt could not be had."""
        parser = await super().robot_parser(request)
        stored = self._parsers.get(urlparse_cached(request).netloc, parser)
        return parser if isinstance(stored, Deferred) else stored
