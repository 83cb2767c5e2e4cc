"""A persistent BM25 index over crawled page records: the offline search engine and the visit tool's corpus.

Built on tantivy rather than bm25s. Measured on the generated site (5,000 pages, 2 cores): tantivy indexes
faster (0.3 s vs 0.45 s), opens in under a millisecond (memory-mapped segments), answers a query 20x faster
(0.1 ms vs 2 ms), keeps memory bounded while indexing (bm25s holds every document's token ids until the end),
and stores the page texts compressed for snippets and visits. Titles are a separate, boosted field: for 300
entity names it ranked the entity's article first every time, bm25s (title prepended to the text) 37% of the time.

Layout of an index directory:

    wdtk_index.json     manifest: format, engine, analyzer, document counts, source, build time
    tantivy/            the tantivy index: segments (postings, positions, compressed stored fields) and meta.json

Stored per page: `title`, `text`, `url`, `final_url`, `content_hash`, and in the indexed `key` field the
canonical url and final_url, so `get(url)` finds a page by either.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import tantivy

from ...crawler.scope import canonical
from ...schemas import read_records
from .base import Hit, SearchError

FORMAT = 1
MANIFEST = "wdtk_index.json"
ANALYZER = "wdtk_en"  # letters and digits, lower case, English stop words dropped, Snowball English stems
TITLE_BOOST = 2.0
SNIPPET_CHARS = 200
WRITER_HEAP = 64_000_000  # bytes tantivy buffers before flushing a segment: bounds memory while building
_TABLE_RULE = re.compile(r"\|(?:\s*:?-{3,}:?\s*\|)+")  # markdown table rules (|---|---|) and empty cells
_EMPTY_CELLS = re.compile(r"\|(?:\s*\|)+")
_NON_WORD = re.compile(r"\W+")  # the query language's syntax characters (: " + - ( ) ^ ...) are all non-word


@dataclass(frozen=True)
class Page:
    """A page's extracted text, from the local corpus or fetched."""

    url: str
    final_url: str
    title: str
    text: str


def _analyzer() -> tantivy.TextAnalyzer:
    builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).filter(tantivy.Filter.remove_long(40))
    builder = builder.filter(tantivy.Filter.lowercase()).filter(tantivy.Filter.stopword("english"))
    return builder.filter(tantivy.Filter.stemmer("english")).build()


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("title", stored=True, tokenizer_name=ANALYZER)
    builder.add_text_field("text", stored=True, tokenizer_name=ANALYZER)
    builder.add_text_field("key", tokenizer_name="raw", index_option="basic")
    for name in ("url", "final_url", "content_hash"):
        builder.add_text_field(name, stored=True, index_option="basic", tokenizer_name="raw")
    return builder.build()


def _open(path: Path, schema: tantivy.Schema | None = None) -> tantivy.Index:
    """A tantivy index with our analyzer registered (tantivy keeps the name in the schema, not the analyzer)."""
    index = tantivy.Index(schema, path=str(path)) if schema is not None else tantivy.Index.open(str(path))
    index.register_tokenizer(ANALYZER, _analyzer())
    return index


def _skip_reason(record: dict) -> str | None:
    if record["status"] >= 400:
        return "http_error"
    if not record["text"].strip():
        return "empty_text"
    return None


def build_index(pages_src: str | Path, out_dir: str | Path) -> dict:
    """Index the page records in `pages_src` (file or shard directory) into `out_dir`; returns the manifest.

    Records stream through: tantivy flushes segments as its buffer fills, so memory does not grow with the
    corpus. The index is built beside `out_dir` and renamed into place, so a failed build leaves no index.
    """
    out, start = Path(out_dir), time.perf_counter()
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise FileExistsError(f"{out} exists and is not a wdtk index; refusing to replace it")
    tmp = out.with_name(f".{out.name}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "tantivy").mkdir(parents=True)
    counts = _write_documents(pages_src, _open(tmp / "tantivy", _schema()))
    manifest = {"format": FORMAT, "engine": "tantivy", "analyzer": ANALYZER, "title_boost": TITLE_BOOST, **counts,
                "source": str(pages_src), "seconds": round(time.perf_counter() - start, 3)}  # fmt: skip
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return manifest


def _write_documents(pages_src: str | Path, index: tantivy.Index) -> dict:
    writer = index.writer(heap_size=WRITER_HEAP, num_threads=1)  # one thread: it indexes faster than we parse
    documents, skipped = 0, {}
    for record in read_records(pages_src, kind="page"):
        if reason := _skip_reason(record):
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        doc = tantivy.Document(title=record["title"], text=record["text"], url=record["url"])
        doc.add_text("final_url", record["final_url"])
        doc.add_text("content_hash", record["content_hash"])
        for key in {canonical(record["url"]), canonical(record["final_url"])}:
            doc.add_text("key", key)
        writer.add_document(doc)
        documents += 1
    writer.commit()
    writer.wait_merging_threads()
    return {"documents": documents, "skipped": skipped}


class BM25Index:
    """The local search engine over an index made by `build_index`; also a corpus for the visit tool."""

    name = "bm25"

    def __init__(self, path: Path, index: tantivy.Index, manifest: dict) -> None:
        self.path, self.index, self.manifest = path, index, manifest
        self.searcher = index.searcher()

    @classmethod
    def load(cls, path: str | Path) -> BM25Index:
        """Open the index in `path`; segments are memory-mapped, so this is fast whatever the corpus size."""
        path = Path(path)
        if not (path / MANIFEST).is_file():
            raise SearchError(f"bm25: no index at {path} (expected {MANIFEST}); build one with build_index")
        manifest = json.loads((path / MANIFEST).read_text())
        if manifest.get("format") != FORMAT:
            raise SearchError(f"bm25: {path} has index format {manifest.get('format')}, this wdtk reads {FORMAT}")
        return cls(path, _open(path / "tantivy"), manifest)

    def __len__(self) -> int:
        return self.searcher.num_docs

    async def search(self, query: str, k: int = 5) -> list[Hit]:
        """Top `k` pages for `query`, one per distinct page body, with a snippet around the query terms."""
        return await asyncio.to_thread(self.search_sync, query, k)

    def search_sync(self, query: str, k: int = 5) -> list[Hit]:
        """`search` without the event loop."""
        words = _NON_WORD.sub(" ", query).lower().strip()  # lower case: AND/OR/NOT are operators in upper case
        if not words or k < 1:
            return []
        parsed, _ = self.index.parse_query_lenient(words, ["title", "text"], field_boosts={"title": TITLE_BOOST})
        snippets = tantivy.SnippetGenerator.create(self.searcher, parsed, self.index.schema, "text")
        snippets.set_max_num_chars(SNIPPET_CHARS)
        hits, bodies = [], set()
        for _, address in self.searcher.search(parsed, 3 * k, count=False).hits:  # 3k: room for duplicates
            doc = self.searcher.doc(address)
            if doc["content_hash"][0] in bodies:  # the same page under another URL (/ and /index.html, ?variants)
                continue
            bodies.add(doc["content_hash"][0])
            snippet = _snippet(snippets.snippet_from_doc(doc), doc["text"][0])
            hits.append(Hit(doc["title"][0], doc["final_url"][0], snippet))  # where the text was found: no redirect
            if len(hits) == k:
                break
        return hits

    def get(self, url: str) -> Page | None:
        """The stored page whose url or final_url is `url` (compared canonically), or None."""
        query = tantivy.Query.term_query(self.index.schema, "key", canonical(url))
        found = self.searcher.search(query, 1, count=False).hits
        if not found:
            return None
        doc = self.searcher.doc(found[0][1])
        return Page(doc["url"][0], doc["final_url"][0], doc["title"][0], doc["text"][0])


def _snippet(snippet: tantivy.Snippet, text: str) -> str:
    """The best-matching fragment, or the page's opening words when only the title matched."""
    fragment = snippet.fragment() if snippet.highlighted() else ""
    if not fragment:
        fragment = text[:SNIPPET_CHARS].rsplit(" ", 1)[0] if len(text) > SNIPPET_CHARS else text
    return " ".join(_EMPTY_CELLS.sub("|", _TABLE_RULE.sub("|", fragment)).split())
