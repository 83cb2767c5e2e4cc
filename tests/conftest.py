"""Shared fixtures: a generated 300-page fictional site, its ground truth, and local servers for it."""

import json
from pathlib import Path

import pytest
from servers.search_server import site_page_records

from wdtk.crawler.sitegen import build_site, load_truth, start_server
from wdtk.crawler.sitegen.seeds import simple_seeds
from wdtk.schemas import mark_complete, write_records

SITE_PAGES = 300
SITE_SEED = 7


@pytest.fixture(scope="session")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 300-page site (seed 7), built once per test session."""
    path = tmp_path_factory.mktemp("site")
    build_site(path, SITE_PAGES, seed=SITE_SEED)
    return path


@pytest.fixture(scope="session")
def site_server(site_dir: Path):
    """Base URL ('http://127.0.0.1:PORT') of a server for `site_dir`, shared by the session."""
    server, base_url = start_server(site_dir)
    yield base_url
    server.shutdown()


@pytest.fixture
def fresh_site_server(site_dir: Path):
    """(server, base URL) of a server with an empty `server.request_log`, for one test."""
    server, base_url = start_server(site_dir)
    yield server, base_url
    server.shutdown()


@pytest.fixture(scope="session")
def truth(site_dir: Path) -> dict:
    """The site's ground truth (see `wdtk.crawler.sitegen` for the keys)."""
    return load_truth(site_dir)


@pytest.fixture
def openai_server():
    """A started `FakeOpenAIServer` (tests/servers/openai_server.py documents it): `.base_url`, `.queue(...)`,
    `.requests`; stopped after the test."""
    from servers import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="session")
def qa_run(site_dir, site_server, tmp_path_factory) -> Path:
    """A run directory with the site's pages as a crawl would write them, their BM25 index, and seeds.jsonl: four
    SimpleQA-style rows {"problem", "answer"} whose answers the site states."""
    from wdtk.synth.search.bm25 import build_index

    root = tmp_path_factory.mktemp("run")
    pages = root / "crawl" / "pages" / "00000.jsonl.gz"
    write_records(site_page_records(site_dir, site_server), pages, kind="page")
    mark_complete(pages.parent)  # as a finished crawl leaves it
    build_index(pages.parent, root / "index")
    seeds = simple_seeds(site_dir, 4)
    (root / "seeds.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seeds))
    return root


@pytest.fixture(scope="session")
def pages_file(site_dir, site_server, truth, tmp_path_factory) -> Path:
    """Page records for the site's articles and categories, with their links, as the crawler would write them."""
    from servers.search_server import page_record

    records = []
    for page in truth["pages"]:
        if page["kind"] not in ("article", "category"):
            continue
        html = (site_dir / page["path"].lstrip("/")).read_text()
        links = [site_server + href.split("#")[0] for href in page["links"] if href.startswith("/wiki/")]
        records.append({**page_record(site_server + page["path"], html, site_server), "links": links})
    path = tmp_path_factory.mktemp("pages") / "pages.jsonl"
    write_records(records, path, kind="page")
    return path


@pytest.fixture(scope="session")
def qa_seeds(qa_run) -> list[dict]:
    """The rows of qa_run/seeds.jsonl."""
    return [json.loads(line) for line in (qa_run / "seeds.jsonl").read_text().splitlines()]
