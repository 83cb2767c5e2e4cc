"""Search: the local BM25 index over the generated site, checked against its ground truth, and the Serper and
SearXNG backends against a fake search server speaking their HTTP APIs on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time

import pytest
from servers.search_server import FakeSearchServer, page_record, site_page_records

from wdtk.synth.search.base import Hit, SearchError, render_search, search_many
from wdtk.synth.search.bm25 import MANIFEST, BM25Index, build_index
from wdtk.synth.search.factory import make_search
from wdtk.synth.search.web import SearxngSearch, SerperSearch

BASE = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def pages(site_dir) -> list[dict]:
    """The site's pages, plus what a crawl also writes: a redirected URL, the / alias of /index.html, a 404."""
    records = site_page_records(site_dir, BASE)
    by_path = {r["url"].removeprefix(BASE): r for r in records}
    moved = page_record(BASE + "/wiki/Old_title.html", "", BASE) | {"final_url": BASE + "/wiki/Houxol.html"}
    moved |= {k: by_path["/wiki/Houxol.html"][k] for k in ("title", "text", "content_hash")}
    home = by_path["/index.html"] | {"url": BASE + "/", "final_url": BASE + "/"}
    missing = page_record(
        BASE + "/wiki/Red_link.html", "<title>Not found</title><p>No such page</p>", BASE, status=404
    )
    return records + [moved, home, missing]


@pytest.fixture(scope="module")
def index_dir(pages, tmp_path_factory):
    from wdtk.schemas import write_records

    src = write_records(pages, tmp_path_factory.mktemp("pages") / "pages.jsonl.gz", kind="page")[0]
    out = tmp_path_factory.mktemp("index") / "bm25"
    build_index(src, out)
    return out


@pytest.fixture(scope="module")
def index(index_dir) -> BM25Index:
    return BM25Index.load(index_dir)


def articles(truth: dict) -> list[tuple[str, str]]:
    """(entity name, article URL) for every entity that has an article page."""
    paths = {p["path"] for p in truth["pages"] if p["kind"] == "article"}
    return [(e["name"], BASE + e["url"]) for e in truth["entities"] if e["url"] in paths]


def test_an_entity_name_finds_its_article(index, truth):
    named = articles(truth)
    ranks = [[h.url for h in index.search_sync(name, 5)] for name, _ in named]
    assert len(named) > 150
    assert all(url in urls for (_, url), urls in zip(named, ranks, strict=True))
    top1 = sum(urls[0] == url for (_, url), urls in zip(named, ranks, strict=True))
    assert top1 >= 0.95 * len(named), top1  # titles are a boosted field: the article outranks pages that mention it


def test_build_summary_and_round_trip(index_dir, index, pages, truth):
    manifest = (index_dir / MANIFEST).read_text()
    assert '"engine": "tantivy"' in manifest and (index_dir / "tantivy" / "meta.json").is_file()
    assert index.manifest["documents"] == len(pages) - 1 == len(index)
    assert index.manifest["skipped"] == {"http_error": 1}
    reloaded = make_search(f"bm25:{index_dir}")
    assert (
        isinstance(reloaded, BM25Index)
        and reloaded is not index
        and isinstance(make_search(str(index_dir)), BM25Index)
    )
    for name, _ in articles(truth)[:20]:
        assert reloaded.search_sync(name, 5) == index.search_sync(name, 5)


def test_rebuilding_replaces_the_index_and_refuses_foreign_folders(pages, tmp_path):
    from wdtk.schemas import write_records

    src = write_records(pages[:10], tmp_path / "few.jsonl", kind="page")[0]
    out = tmp_path / "bm25"
    assert build_index(src, out)["documents"] == 10
    assert build_index(src, out)["documents"] == 10 and not (tmp_path / ".bm25.building").exists()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a wdtk index"):
        build_index(src, tmp_path / "docs")


def test_snippet_is_the_window_around_the_query_term(index, pages):
    page = next(p for p in pages if p["url"] == BASE + "/wiki/Houxol.html")
    words = {w.strip(".,()") for w in page["text"][len(page["text"]) // 2 :].split() if w.isalpha() and len(w) > 5}
    word = min(sorted(words), key=lambda w: sum(w in p["text"] for p in pages))  # the rarest word deep in the page
    hit = next(h for h in index.search_sync(word, 10) if h.url == page["url"])
    assert word in hit.snippet and len(hit.snippet) <= 220 and not page["text"].startswith(hit.snippet[:50])
    assert "|---|" not in hit.snippet and "\n" not in hit.snippet


def test_one_hit_per_page_body_and_lookup_by_url_or_final_url(index, pages):
    urls = [h.url for h in index.search_sync("Main page", 10)]
    assert (BASE + "/") in urls or (BASE + "/index.html") in urls
    assert not {BASE + "/", BASE + "/index.html"} <= set(urls)  # the same page under two URLs shows once
    houxol = index.get(BASE + "/wiki/Houxol.html#History")  # canonical form: fragment dropped
    assert houxol is not None and houxol.title.startswith("Houxol") and "Masyrnstead" in houxol.text
    assert index.get(BASE + "/wiki/Old_title.html").final_url == BASE + "/wiki/Houxol.html"
    assert index.get(BASE + "/wiki/Red_link.html") is None and index.get("https://elsewhere.org/") is None


@pytest.mark.parametrize("query", ['title:"Houxol', "Houxol AND (capital", "-Houxol +capital^2", "Houxol OR NOT"])
def test_query_syntax_is_read_as_words(index, query):
    assert index.search_sync(query, 3)[0].url == BASE + "/wiki/Houxol.html"


def test_nothing_found(index):
    assert index.search_sync("zzxqv qqwzz", 5) == [] and index.search_sync("?!", 5) == []


def test_render_search_matches_webdancer_format():
    results = {
        "first query": [Hit("Alpha", "https://a.org/1", "About alpha."), Hit("Beta", "https://b.org/2", "Beta text.")],
        "nothing": [],
    }
    assert render_search(results) == (
        "A search for 'first query' found 2 results:\n\n## Web Results\n"
        "1. [Alpha](https://a.org/1)\nAbout alpha.\n\n"
        "2. [Beta](https://b.org/2)\nBeta text."
        "\n=======\n"
        "No results found for 'nothing'. Try with a more general query."
    )


def test_make_search_errors():
    with pytest.raises(SearchError, match="unknown search engine 'bing'"):
        make_search("bing:https://x")
    with pytest.raises(SearchError, match="unknown search engine 'https'"):
        make_search("https://searx.example.org")  # the backend must be named
    with pytest.raises(SearchError, match="no index at"):
        make_search("bm25:/nonexistent/index")
    with pytest.raises(SearchError, match="SERPER_API_KEY"):
        SerperSearch("http://127.0.0.1:9", api_key=None)


def test_serper_backend(monkeypatch):
    monkeypatch.setenv("SERPER_API_KEY", "secret")
    with FakeSearchServer(api_key="secret") as server:
        engine = make_search(f"serper:{server.base_url}")
        hits = asyncio.run(engine.search("tallest tower", 3))
        assert hits[0] == Hit(
            "tallest tower - result 1", "https://example.org/tallest-tower/1", "Snippet 1 for tallest tower."
        )
        assert len(hits) == 3
        request = server.requests[0]
        assert (request["method"], request["path"], request["body"]) == (
            "POST",
            "/search",
            {"q": "tallest tower", "num": 3},
        )
        assert request["headers"]["X-API-KEY"] == "secret"


def test_serper_retries_429_and_5xx_then_gives_a_clear_error(monkeypatch):
    with FakeSearchServer(api_key="k") as server:
        engine = SerperSearch(server.base_url, api_key="k", backoff=0.01)
        server.queue(429, 503)
        assert len(asyncio.run(engine.search("q", 5))) == 5 and len(server.requests) == 3
        server.queue(500, 500, 500, 500)
        with pytest.raises(SearchError, match=r"serper: POST .*/search failed with HTTP 500"):
            asyncio.run(engine.search("q", 5))
        before = len(server.requests)
        with pytest.raises(SearchError, match=r"refused \(401\): check SERPER_API_KEY"):
            asyncio.run(SerperSearch(server.base_url, api_key="wrong").search("q"))
        assert len(server.requests) == before + 1  # a refusal is not retried


def test_searxng_backend():
    with FakeSearchServer(empty_for=("nothing here",)) as server:
        engine = make_search(f"searxng:{server.base_url}")
        results = asyncio.run(search_many(engine, ["red fox", "nothing here"], k=4))
        assert [h.url for h in results["red fox"]] == [f"https://example.org/red-fox/{i}" for i in range(1, 5)]
        assert results["red fox"][1].snippet == "Snippet 2 for red fox." and results["nothing here"] == []
        assert {r["query"]["format"] for r in server.requests} == {"json"}
    with FakeSearchServer(json_enabled=False) as server, pytest.raises(SearchError, match="enable the json format"):
        asyncio.run(SearxngSearch(server.base_url).search("q"))


def test_unreachable_backend_is_a_clear_error():
    engine = SearxngSearch("http://127.0.0.1:9", retries=1, backoff=0.01)
    with pytest.raises(SearchError, match=r"searxng: ConnectError reaching http://127.0.0.1:9/search"):
        asyncio.run(engine.search("q"))


def test_search_many_runs_queries_concurrently(index):
    queries = [f"query {i}" for i in range(8)] + ["query 0"]
    with FakeSearchServer(latency=0.25) as server:
        start = time.perf_counter()
        results = asyncio.run(search_many(SearxngSearch(server.base_url), queries, k=2))
        elapsed = time.perf_counter() - start
    assert list(results) == queries[:8] and len(server.requests) == 8  # a repeated query is searched once
    assert server.max_in_flight >= 4 and elapsed < 1.0, (server.max_in_flight, elapsed)
    local = asyncio.run(search_many(index, ["Houxol", "Main page"], k=2))
    assert local["Houxol"][0].url == BASE + "/wiki/Houxol.html"
