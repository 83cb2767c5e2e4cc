"""Web search for synthesis and trajectory sampling: one small protocol, a local index and two HTTP backends.

engine = make_search("bm25:data/index")            # offline default: a BM25 index over crawled pages
engine = make_search("serper:https://google.serper.dev")   # X-API-KEY from $SERPER_API_KEY
engine = make_search("searxng:http://localhost:8888")
results = await search_many(engine, ["first query", "second query"], k=5)
observation = render_search(results)                # the tool response an agent reads, as in WebDancer
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Hit:
    """One search result."""

    title: str
    url: str
    snippet: str


class SearchEngine(Protocol):
    """Anything that answers a query with ranked hits."""

    name: str

    async def search(self, query: str, k: int = 5) -> list[Hit]: ...


class SearchError(RuntimeError):
    """A search backend failed in a way retrying will not fix (bad key, bad URL, malformed answer)."""


async def search_many(engine: SearchEngine, queries: list[str], k: int = 5) -> dict[str, list[Hit]]:
    """Run `queries` concurrently; results keyed by query in the order given (duplicates searched once)."""
    unique = list(dict.fromkeys(queries))
    hits = await asyncio.gather(*(engine.search(q, k) for q in unique))
    return dict(zip(unique, hits, strict=True))


def render_search(results: dict[str, list[Hit]]) -> str:
    """WebDancer's search observation: per query a header and a numbered markdown list, queries split by =======."""
    return "\n=======\n".join(_render_one(query, hits) for query, hits in results.items())


def _render_one(query: str, hits: list[Hit]) -> str:
    if not hits:
        return f"No results found for '{query}'. Try with a more general query."
    lines = [f"{i}. [{h.title}]({h.url})\n{h.snippet}" for i, h in enumerate(hits, 1)]
    return f"A search for '{query}' found {len(hits)} results:\n\n## Web Results\n" + "\n\n".join(lines)
