"""Breadth first by whole levels: what to fetch next, and each URL's depth as its shortest link distance.

Scrapy's scheduler interleaves depths as responses come back, so the depth it labels a page with depends on
timing. Here a level is fetched completely (concurrently, in any order) before the next one is built, in a
fixed order, from the links of the level's pages: every URL first seen at level d+1 is exactly d+1 hops from a
root, and the same site and limits give the same labels and, under a page limit, the same pages on every run.
Pure bookkeeping: the spider does the fetching.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Frontier:
    """The crawl's frontier: the current level's queue, later levels' URLs, and everything seen."""

    max_depth: int
    max_pages: int = 0  # 0: no limit
    pages: int = 0  # page records written, earlier runs included
    level: int = 0
    in_flight: int = 0
    seen: set[str] = field(default_factory=set)
    queue: deque = field(default_factory=deque)  # (url, parent) of the current level, not yet handed out
    later: dict[str, tuple[int, str | None]] = field(default_factory=dict)  # url -> (depth, parent)
    _order: list[str] = field(default_factory=list)  # the current level's URLs, in order
    _links: dict[str, list[str]] = field(default_factory=dict)  # the current level's pages' out-links
    duplicates: int = 0  # links to URLs already seen, when levels are built

    @classmethod
    def restore(cls, roots, max_depth: int, max_pages: int, pages: Iterable[dict], done: Iterable[str]) -> Frontier:
        """The frontier of a crawl from `roots`: new (no pages, nothing done), or resumed from its written page records
        and the URLs that gave no page (`done`).

        Recorded depths are true hop counts, so a link of a page at depth d is at most d+1 hops away; URLs the
        killed run had reached but not recorded are found again through the pages that link them.
        """
        frontier = cls(max_depth, max_pages)
        frontier.seen.update(done)
        records = []
        for page in pages:
            frontier.pages += 1
            frontier.seen.update((page["url"], page.get("final_url", page["url"])))
            records.append((page["depth"], page["url"], page["links"]))
        for root in dict.fromkeys(roots):
            frontier._offer(root, 0, None)
        for depth, url, links in sorted(records, key=lambda r: r[0]):
            if depth < max_depth:
                for link in links:
                    frontier._offer(link, depth + 1, url)
        frontier.seen.update(frontier.later)
        frontier._next_level(min((d for d, _ in frontier.later.values()), default=0))
        return frontier

    def _offer(self, url: str, depth: int, parent: str | None) -> None:
        """Queue `url` for a later level, or move it nearer when a shorter path to it turns up."""
        if url in self.later:
            if self.later[url][0] > depth:
                self.later[url] = (depth, parent)
        elif url not in self.seen:
            self.later[url] = (depth, parent)

    def _next_level(self, level: int) -> None:
        self.level = level
        members = [(url, parent) for url, (depth, parent) in self.later.items() if depth == level]
        for url, _ in members:
            del self.later[url]
        self.queue = deque(members)
        self._order = [url for url, _ in members]
        self._links = {}

    @property
    def limit_reached(self) -> bool:
        """Whether the page limit is reached."""
        return bool(self.max_pages) and self.pages >= self.max_pages

    def take(self, window: int) -> list[tuple[str, int, str | None]]:
        """(url, depth, parent) to fetch now: at most `window` in flight, and no more than the page limit allows."""
        out = []
        while self.queue and self.in_flight < window:
            if self.max_pages and self.pages + self.in_flight >= self.max_pages:
                break  # a request in flight may still become a page: never overshoot the limit
            url, parent = self.queue.popleft()
            self.in_flight += 1
            out.append((url, self.level, parent))
        return out

    def page(self, url: str, links: list[str], final_url: str | None = None) -> None:
        """A fetched URL became a page record with these in-scope out-links."""
        self.in_flight -= 1
        self.pages += 1
        if final_url:
            self.seen.add(final_url)
        if self.level < self.max_depth:
            self._links[url] = links

    def other(self, url: str) -> None:
        """A fetched URL gave no page (error, duplicate, non-HTML, refused)."""
        self.in_flight -= 1

    def advance(self) -> bool:
        """When the level is done, build the next one from its pages' links, in level order; False if none."""
        if self.queue or self.in_flight or self.limit_reached:
            return False
        for url in self._order:
            for link in self._links.get(url, ()):
                if link in self.seen and link not in self.later:
                    self.duplicates += 1
                self._offer(link, self.level + 1, url)
        self.seen.update(self.later)
        if not self.later:
            return False
        self._next_level(min(d for d, _ in self.later.values()))
        return True

    @property
    def queued(self) -> int:
        """URLs waiting: the current level's and later levels'."""
        return len(self.queue) + len(self.later)

    @property
    def exhausted(self) -> bool:
        """Nothing left to fetch or waiting on: the crawl is complete."""
        return not (self.queue or self.later or self.in_flight)
