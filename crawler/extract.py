"""Main-text extraction: the article text of a page, without navigation chrome.

trafilatura is the default because it keeps lists and tables that lighter extractors drop as
boilerplate. It is CPU-bound pure Python, so the crawler calls it in worker processes (see
pipelines.ExtractPipeline) to keep it off the reactor thread.
"""

from __future__ import annotations

import re

import trafilatura

EXTRACTOR = f"trafilatura-{trafilatura.__version__}"
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)


def extract_title(html: str) -> str:
    """The document's <title>, whitespace folded; '' when there is none."""
    m = _TITLE.search(html, 0, 20_000)
    return " ".join(m.group(1).split()) if m else ""


def extract_main_text(html: str, url: str | None = None) -> str:
    """The page's main text (paragraphs, lists and tables as plain text); '' when nothing is found."""
    text = trafilatura.extract(
        html, url=url, include_tables=True, include_comments=False, include_links=False, deduplicate=False
    )
    return text or ""


def extract_page(html: str, url: str | None = None) -> tuple[str, str]:
    """(title, main text) of one HTML page: the unit of work shipped to extraction workers."""
    return extract_title(html), extract_main_text(html, url)
