"""The link graph of a crawl, and the random walks graph-walk synthesis (synth/graphqa.py) builds questions on.

Pages are nodes; a link from one crawled page to another is an edge (the crawl already kept to its scope, so a
link to a crawled page is in scope). Navigation links, those found on more than `nav_link_share` of all pages, are
left out, as CRAWLQA does; so are hubs, list pages whose out-degree is far above the median (index and category
pages), which would join any two pages without a fact between them. A walk never revisits a page. Of the pages a
walk may step to, it prefers one that shares a fact with the current page: the current page names the next one's
subject (its title) in its text, so a claim can join the two.

    graph = LinkGraph.build(read_records("run/crawl/pages"), WalkConfig(min_hops=3, max_hops=6))
    for walk in graph.walks():        # {"id", "urls", "pages": [{"id", "url", "title", "text"}], "shared"}
        ...
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ..schemas import record_id
from .text import normalize


@dataclass(frozen=True)
class WalkConfig:
    """How walks are sampled."""

    min_hops: int = 3
    max_hops: int = 6
    nav_link_share: float = 0.3  # a link on more than this share of pages is navigation
    hub_factor: float = 3.0  # a page linking to more than this times the median number of pages is a hub
    hub_min_links: int = 20  # ... and to more than this many
    walks_per_page: int = 1
    tries: int = 8  # walks drawn per start; the one sharing most facts is kept
    seed: int = 0
    max_page_chars: int = 20_000  # of each page's text carried in a walk


def parse_hops(text: str) -> tuple[int, int]:
    """Walk hops from "3..6" (or "4") as (min, max); ValueError unless 1 <= MIN <= MAX."""
    low, _, high = str(text).partition("..")
    try:
        low_n, high_n = int(low), int(high or low)
    except ValueError:
        raise ValueError(f"expected MIN..MAX, e.g. 3..6, not {text!r}") from None
    if not 1 <= low_n <= high_n:
        raise ValueError(f"expected 1 <= MIN <= MAX, not {text!r}")
    return low_n, high_n


def _bare(url: str) -> str:
    """A URL without its query and fragment: how a link with a view or language parameter finds its page."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _resolver(pages: list[dict]) -> Callable[[str], str | None]:
    """link -> the id of the page it reaches, or None. Links and page URLs are compared in the crawler's canonical
    form (query sorted, escapes and dot segments normalised; a page's final_url is recorded as fetched). A link no
    page has exactly finds its page without the query (?view=full&lang=en), only where a single page has that bare
    URL: on a site where the query names the page (index.php?title=X) a guess would join unrelated pages."""
    from ..crawler.scope import canonical  # imports scrapy: only when a graph is built

    exact: dict[str, str] = {}
    bare: dict[str, set[str]] = {}
    for p in pages:
        for url in (p["url"], p["final_url"]):
            exact.setdefault(canonical(url), p["id"])
            bare.setdefault(_bare(canonical(url)), set()).add(p["id"])
    unique = {url: next(iter(ids)) for url, ids in bare.items() if len(ids) == 1}

    def find(link: str) -> str | None:
        try:
            url = canonical(link)
        except ValueError:  # a malformed link (a port out of range) reaches no page
            return None
        return exact.get(url) or unique.get(_bare(url))

    return find


def site_suffix(titles: list[str]) -> str:
    """The " - Site name" most titles end with (empty when there is none): it is not part of a page's subject."""
    tails = Counter(t.rsplit(" - ", 1)[1] for t in titles if " - " in t)
    if not tails:
        return ""
    tail, n = tails.most_common(1)[0]
    return f" - {tail}" if n > len(titles) / 2 else ""


class LinkGraph:
    """Crawled pages with text as nodes, their in-scope non-navigation links as edges, hubs marked."""

    def __init__(self, pages: list[dict], links: dict[str, list[str]], hubs: set[str], cfg: WalkConfig):
        self.pages = {p["id"]: p for p in pages}
        self.order = [p["id"] for p in pages]  # crawl order: walks start in it
        self.links, self.hubs, self.cfg = links, hubs, cfg
        suffix = site_suffix([p["title"] for p in pages])
        self.subject = {p["id"]: p["title"].removesuffix(suffix).strip() for p in pages}
        # normalised once: a walk asks whether a page names another's subject many times
        self._text = {p["id"]: f" {normalize(p['text'])} " for p in pages}
        self._name = {i: f" {normalize(s)} " for i, s in self.subject.items()}

    @classmethod
    def build(cls, pages: Iterable[dict], cfg: WalkConfig = WalkConfig()) -> LinkGraph:
        """The graph of `pages` (page records), navigation links and hubs found from the pages themselves."""
        pages = [p for p in pages if p.get("text")]
        find = _resolver(pages)
        targets = {p["id"]: [t for t in dict.fromkeys(map(find, p["links"])) if t and t != p["id"]] for p in pages}
        # navigation: pages linked from more than nav_link_share of all pages, whatever form the links take
        counts = Counter(t for out in targets.values() for t in out)
        nav = {t for t, n in counts.items() if n > cfg.nav_link_share * len(pages)}
        links = {pid: [t for t in out if t not in nav] for pid, out in targets.items()}
        median = statistics.median(len(v) for v in links.values()) if links else 0
        limit = max(cfg.hub_min_links, cfg.hub_factor * median)
        hubs = {pid for pid, out in links.items() if len(out) > limit}
        return cls(pages, links, hubs, cfg)

    def shares(self, a: str, b: str) -> bool:
        """Whether a step from page a to page b follows a fact: a names b's subject in its text (a member list
        names its members too, but a member seldom names its list: walks go into lists rarely)."""
        return self._name[b].strip() != "" and self._name[b] in self._text[a]  # text.contains, normalised once

    def steps(self, node: str, path: list[str]) -> list[str]:
        """Where a walk at `node` may go: linked pages, neither hubs nor already on the walk."""
        return [n for n in self.links.get(node, ()) if n not in self.hubs and n not in path]

    def walk(self, start: str, hops: int, rng: random.Random) -> list[str]:
        """One random walk of up to `hops` steps from `start`, preferring steps to pages that share a fact."""
        path = [start]
        while len(path) <= hops:
            options = self.steps(path[-1], path)
            shared = [n for n in options if self.shares(path[-1], n)]
            if not options:
                break
            path.append(rng.choice(shared or options))
        return path

    def shared_steps(self, path: list[str]) -> int:
        return sum(self.shares(a, b) for a, b in zip(path, path[1:], strict=False))

    def walks(self) -> Iterator[dict]:
        """Walks of min_hops..max_hops steps from every non-hub page in crawl order, reproducibly (cfg.seed)."""
        cfg = self.cfg
        for start in self.order:
            if start in self.hubs:
                continue
            for n in range(cfg.walks_per_page):
                rng = random.Random(f"{cfg.seed}:{start}:{n}")
                hops = rng.randint(cfg.min_hops, cfg.max_hops)
                drawn = [self.walk(start, hops, rng) for _ in range(cfg.tries)]
                drawn = [p for p in drawn if len(p) - 1 >= cfg.min_hops]
                if drawn:  # the longest walk, then the one sharing most facts: the first such wins
                    yield self.item(max(drawn, key=lambda p: (len(p), self.shared_steps(p))))

    def item(self, path: list[str]) -> dict:
        """A walk as a stage input: its pages in order, with their text, and how many steps share a fact."""
        pages = [self.pages[i] for i in path]
        return {
            "id": record_id("walk", [p["id"] for p in pages]),
            "urls": [p["final_url"] for p in pages],
            "pages": [
                {
                    "id": p["id"],
                    "url": p["final_url"],
                    "title": self.subject[p["id"]],
                    "text": p["text"][: self.cfg.max_page_chars],
                }
                for p in pages
            ],
            "shared": self.shared_steps(path),
        }
