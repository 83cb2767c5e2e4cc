"""The visit tool shared by synthesis and trajectory sampling: read a page, keep what serves a goal.

    visitor = Visitor(client, corpus=BM25Index.load("run/index"), fetcher=Fetcher())
    observation = await visitor.visit("https://example.org/a", goal="When was X founded?")
    observation = await visitor.visit_many([url_a, url_b], goal)   # WebDancer's visit takes a list of URLs

The page text comes from the local corpus (the search index's stored pages, looked up by url or final_url) or,
failing that, from an HTTP fetch guarded against private addresses. An LLM then extracts the passages that bear on
the goal, verbatim, and summarises them; the observation is rendered in WebDancer's wording.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..llm.base import Sampling
from ..prompting import load_prompt
from ..search.bm25 import Page
from .fetch import Fetcher, FetchError

if TYPE_CHECKING:
    from ..llm.client import LLMClient

PROMPT = "visit_extract"
UNREACHABLE = "The provided webpage content could not be accessed. Please check the URL or file format."
SEPARATOR = "\n=======\n"
EXTRACT_SAMPLING = Sampling(max_tokens=2048)  # verbatim evidence from a long page needs room
EXTRACT_SCHEMA = {
    "type": "object",
    "required": ["evidence", "summary"],
    "properties": {
        "rational": {"type": "string"},
        "evidence": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "summary": {"type": "string"},
    },
}


class Corpus(Protocol):
    """Pages available without a network: `BM25Index` is one."""

    def get(self, url: str) -> Page | None: ...


@dataclass(frozen=True)
class VisitResult:
    """One visit: the observation an agent reads, and how it came about."""

    url: str
    goal: str
    observation: str
    evidence: str = ""
    summary: str = ""
    error: str | None = None  # why the page could not be read or the extraction failed
    raw: str = ""  # the model's last answer when it could not be parsed, kept for audit
    source: str = ""  # "corpus" or "http"
    page_chars: int = 0  # characters of page text in the last prompt
    attempts: int = 0  # LLM calls made


def render_visit(url: str, goal: str, evidence: str, summary: str) -> str:
    """WebDancer's visit observation."""
    return (
        f"The useful information in {url} for user goal {goal} as follows: \n\n"
        f"Evidence in page: \n{evidence}\n\nSummary: \n{summary}\n\n"
    )


def unreachable(reason: str) -> str:
    """The observation for a page that could not be read: WebDancer's wording, then what failed."""
    return f"{UNREACHABLE} ({reason[:300]})"


def unparsed(url: str, goal: str) -> str:
    """The observation when the page was read but the model's extraction could not be parsed."""
    return f"The page {url} was read, but the information for user goal {goal} could not be extracted from it."


class Visitor:
    """Goal-conditioned page reading: page text from the corpus or the web, extraction by an LLM.

    `fetcher=None` means `Fetcher()`: public addresses only. Pages longer than `max_chars` are cut; after each
    answer that does not parse, the page is cut to `shrink` of its length and asked about again, `retries` times.
    """

    def __init__(
        self,
        llm_client: LLMClient,
        corpus: Corpus | None = None,
        fetcher: Fetcher | None = None,
        max_chars: int = 60_000,
        retries: int = 3,
        shrink: float = 0.7,
        sampling: Sampling = EXTRACT_SAMPLING,
    ) -> None:
        self.client, self.corpus, self.fetcher = llm_client, corpus, fetcher or Fetcher()
        self.max_chars, self.retries, self.shrink, self.sampling = max_chars, retries, shrink, sampling
        self.prompt = load_prompt(PROMPT)

    async def visit(self, url: str, goal: str) -> str:
        """The observation for one page."""
        return (await self.read(url, goal)).observation

    async def visit_many(self, urls: list[str], goal: str) -> str:
        """The observations for several pages, read concurrently, in the order given."""
        results = await asyncio.gather(*(self.read(url, goal) for url in urls))
        return SEPARATOR.join(r.observation for r in results)

    async def page(self, url: str) -> tuple[Page, str]:
        """(page, source) from the local corpus when it has `url`, else fetched; FetchError if neither works."""
        if self.corpus is not None and (page := self._stored(url)) is not None:
            return page, "corpus"
        return await self.fetcher.fetch(url), "http"

    def _stored(self, url: str) -> Page | None:
        try:
            return self.corpus.get(url)
        except Exception:  # noqa: BLE001 - a URL the corpus cannot even look up (bad IDNA ...) is not in it
            return None

    async def read(self, url: str, goal: str) -> VisitResult:
        """Read `url` for `goal`. Unreachable pages and unparsable answers become the observation (and `error`);
        LLM errors that outlast the client's retries propagate, as they do from every stage."""
        try:
            page, source = await self.page(url)
        except FetchError as e:
            return VisitResult(url, goal, unreachable(str(e)), error=f"unreachable: {e}")
        if not page.text.strip():
            reason = "the page has no text"
            return VisitResult(url, goal, unreachable(reason), error=f"unreachable: {reason}", source=source)
        return await self.extract(url, goal, page.text[: self.max_chars], source)

    async def extract(self, url: str, goal: str, text: str, source: str) -> VisitResult:
        """Ask the model for evidence and summary, shortening the page after each answer it cannot parse."""
        raw, error, shown = "", "", len(text)
        for attempt in range(1, self.retries + 2):
            messages = [{"role": "user", "content": self.prompt.render(goal=goal, url=url, page=text)}]
            result = await self.client.chat_json(
                messages, EXTRACT_SCHEMA, self.sampling, prompt_version=self.prompt.version, stage="visit"
            )
            if result.value is not None:
                evidence, summary = _text(result.value["evidence"]), result.value["summary"].strip()
                observation = render_visit(url, goal, evidence, summary)
                return VisitResult(
                    url, goal, observation, evidence, summary, source=source, page_chars=len(text), attempts=attempt
                )
            raw, error, shown = result.raw, result.error or "no JSON object", len(text)
            text = text[: round(len(text) * self.shrink)]  # long pages are what most often derail the JSON
        failed = f"extraction failed after {attempt} attempts: {error}"
        return VisitResult(
            url, goal, unparsed(url, goal), error=failed, raw=raw, source=source, page_chars=shown, attempts=attempt
        )


def _text(evidence: str | list[str]) -> str:
    return "\n".join(evidence).strip() if isinstance(evidence, list) else evidence.strip()
