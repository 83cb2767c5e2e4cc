"""Which URLs a crawl may visit: the roots' sites, widened by allow patterns, narrowed by deny ones."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

from scrapy.linkextractors import IGNORED_EXTENSIONS
from w3lib.url import canonicalize_url

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SKIP_EXT = frozenset("." + e for e in IGNORED_EXTENSIONS)


@lru_cache(maxsize=1 << 16)  # pages repeat the same chrome links; canonicalize_url costs ~20 us a call
def canonical(url: str) -> str:
    """The form a URL is crawled and recorded under: fragment dropped, query sorted, escapes normalised."""
    return canonicalize_url(url, keep_fragments=False)


def site_of(url: str) -> str:
    """host:port of a URL, with the scheme's default port filled in; http and https count as one site."""
    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    return f"{(parts.hostname or '').lower()}:{port if port not in (80, 443) else 'default'}"


def check_root(url: str) -> str:
    """`url`, made absolute (https:// by default), if a crawl can start there; else ValueError saying why."""
    url = url if "://" in url else f"https://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"root {url!r} is not an http(s) URL")
    try:
        parts.port  # noqa: B018 - raises for a port out of range
    except ValueError:
        raise ValueError(f"root {url!r} has an invalid port (0 to 65535)") from None
    if not parts.hostname:
        raise ValueError(f"root {url!r} has no host")
    return url


@dataclass(frozen=True)
class Scope:
    """The crawl's boundary. `allow` admits off-site URLs that match; `deny` excludes any that match."""

    roots: tuple[str, ...]
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    _sites: frozenset[str] = field(init=False, repr=False)
    _allow: tuple[re.Pattern, ...] = field(init=False, repr=False)
    _deny: tuple[re.Pattern, ...] = field(init=False, repr=False)
    _reasons: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sites", frozenset(site_of(r) for r in self.roots))
        object.__setattr__(self, "_allow", tuple(re.compile(p) for p in self.allow))
        object.__setattr__(self, "_deny", tuple(re.compile(p) for p in self.deny))
        object.__setattr__(self, "_reasons", {})

    def skip_reason(self, url: str) -> str | None:
        """Why `url` is outside the crawl ('scheme', 'extension', 'offsite', 'denied'), or None if it is in."""
        cache = self._reasons
        if url not in cache:
            if len(cache) > 1 << 16:  # pages repeat the same chrome links: a bounded memo of recent answers
                cache.clear()
            cache[url] = self._reason(url)
        return cache[url]

    def _reason(self, url: str) -> str | None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return "scheme"
        path = parts.path.lower()
        if path[path.rfind(".") :] in _SKIP_EXT and "." in path.rsplit("/", 1)[-1]:
            return "extension"
        if any(p.search(url) for p in self._deny):
            return "denied"
        if site_of(url) not in self._sites and not any(p.search(url) for p in self._allow):
            return "offsite"
        return None
