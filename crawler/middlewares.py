"""Downloader middleware that keeps redirects in scope and stops non-HTML downloads at their headers."""

from __future__ import annotations

from scrapy import Request, signals
from scrapy.exceptions import IgnoreRequest, StopDownload


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
        """Redirected requests pass through here again; an off-scope target is dropped, not fetched."""
        scope = getattr(self.crawler.spider, "scope", None)
        if scope is None or not request.meta.get("redirect_urls"):
            return None
        reason = scope.skip_reason(request.url)
        if reason:
            self.crawler.stats.inc_value(f"wdtk/skipped/redirect_{reason}")
            raise IgnoreRequest(f"redirect out of scope ({reason}): {request.url}")
        return None

    def headers_received(self, headers, body_length, request: Request, spider) -> None:
        """Skip downloading a body we would throw away: the spider then sees an empty non-HTML response.

        Only the spider's own page requests (they carry `root`): robots.txt is text/plain and must arrive whole.
        """
        ctype = headers.get(b"Content-Type", b"").decode("latin-1").lower()
        if "root" in request.meta and ctype and "html" not in ctype:
            raise StopDownload(fail=False)
