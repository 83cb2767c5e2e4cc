"""`make_search`: the engine for a spec string; the engines import the protocol in `base`, never this."""

from __future__ import annotations

import os
from pathlib import Path

from .base import SearchEngine, SearchError
from .web import SearxngSearch, SerperSearch


def make_search(spec: str) -> SearchEngine:
    """An engine from 'bm25:PATH' (a local index; a bare path means the same), 'serper:URL' or 'searxng:URL'."""
    kind, sep, target = spec.partition(":")
    if not sep:  # a bare path
        kind, target = "bm25", spec
    if kind == "bm25":
        from .bm25 import BM25Index  # tantivy loads only when a local index is asked for

        return BM25Index.load(Path(target))
    if kind == "serper":
        return SerperSearch(target or "https://google.serper.dev", api_key=os.environ.get("SERPER_API_KEY"))
    if kind == "searxng":
        return SearxngSearch(target)
    raise SearchError(f"unknown search engine {kind!r} in {spec!r}; expected bm25:PATH, serper:URL or searxng:URL")
