"""The visit tool: the guarded fetcher against local servers (the generated site and a few scripted routes), and
goal-conditioned extraction through the LLM client against the fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from servers.openai_server import FakeOpenAIServer
from servers.search_server import site_page_records

from wdtk.schemas import write_records
from wdtk.synth.agent import visit as tools
from wdtk.synth.agent.fetch import Fetcher, FetchError, non_public
from wdtk.synth.agent.visit import EXTRACT_SCHEMA, UNREACHABLE, Visitor, render_visit, unreachable
from wdtk.synth.llm.client import LLMClient
from wdtk.synth.llm.factory import make_llm
from wdtk.synth.prompting import load_prompt
from wdtk.synth.search.bm25 import BM25Index, build_index

LOCAL = Fetcher(allowed_hosts=("127.0.0.1",))
ROUTES = {  # path -> (status, headers, body); a body without Content-Length ends when the connection closes
    "/to-private": (302, {"Location": "http://192.168.1.10/admin"}, b""),
    "/to-metadata": (301, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
    "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
    "/loop": (302, {"Location": "/loop"}, b""),
    "/big": (200, {"Content-Type": "text/html", "Content-Length": "300000"}, b"<p>" + b"x" * 299_993 + b"</p>"),
    "/big-stream": (200, {"Content-Type": "text/html"}, b"<p>" + b"y" * 299_993 + b"</p>"),
    "/report.pdf": (200, {"Content-Type": "application/pdf"}, b"%PDF-1.4"),
    "/latin1": (
        200,
        {"Content-Type": "text/html"},
        '<meta charset="iso-8859-1"><title>Café</title><p>Crème brûlée à la carte, '.encode("latin-1")
        + b"served daily in the old town.</p>" * 5,
    ),  # fmt: skip
}


class RouteHandler(BaseHTTPRequestHandler):
    """Answers ROUTES over HTTP/1.0 (so bodies without a length are allowed), 404 for anything else."""

    def do_GET(self) -> None:
        status, headers, body = ROUTES.get(self.path, (404, {"Content-Type": "text/html"}, b"<p>not here</p>"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def routes():
    server = ThreadingHTTPServer(("127.0.0.1", 0), RouteHandler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def fetch(url: str, fetcher: Fetcher = LOCAL):
    return asyncio.run(fetcher.fetch(url))


@pytest.mark.parametrize(
    "url, reason",
    [
        ("file:///etc/passwd", "only http"),
        ("ftp://127.0.0.1/x", "only http"),
        ("http:///nohost", "only http|invalid URL"),
        ("http://10.1.2.3/", "private"),
        ("http://192.168.0.1:8080/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://224.0.0.251/", "multicast"),
        ("http://0.0.0.0/", "private|unspecified"),
        ("http://localhost/", "loopback"),
        ("http://127.0.0.1/", "loopback"),  # refused by default: only LOCAL lets 127.0.0.1 through
    ],
)
def test_refused_without_connecting(url, reason):
    with pytest.raises(FetchError, match=reason):
        fetch(url, Fetcher())


def test_allowed_host_is_fetched_and_extracted(site_server, truth):
    entity = next(e for e in truth["entities"] if e["name"] == "Houxol")
    page = fetch(site_server + entity["url"])
    assert page.title.startswith("Houxol") and "Masyrnstead" in page.text and page.final_url == page.url
    with pytest.raises(FetchError, match="refused 127.0.0.1: 127.0.0.1 is a loopback address"):
        fetch(site_server + entity["url"], Fetcher())
    with pytest.raises(FetchError, match="refused localhost"):  # allowing the IP does not allow the name
        fetch(site_server.replace("127.0.0.1", "localhost") + entity["url"])
    assert fetch(site_server + entity["url"], Fetcher(allow_private=True)).text == page.text


def test_redirects_are_followed_and_checked_hop_by_hop(site_server, truth, routes):
    chain = next(r for r in truth["redirects"] if not r["offsite"] and r["to"] != r["final"])  # a two-hop chain
    page = fetch(site_server + chain["from"])
    assert page.url == site_server + chain["from"] and page.final_url == site_server + chain["final"]
    with pytest.raises(FetchError, match="refused 192.168.1.10: 192.168.1.10 is a private address"):
        fetch(routes + "/to-private")
    with pytest.raises(FetchError, match="link-local"):
        fetch(routes + "/to-metadata")
    with pytest.raises(FetchError, match="only http"):
        fetch(routes + "/to-file")
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetch(routes + "/loop")


def test_size_cap_content_type_and_errors(site_server, routes):
    capped = Fetcher(allowed_hosts=("127.0.0.1",), max_bytes=100_000)
    with pytest.raises(FetchError, match="larger than 100000 bytes"):
        fetch(routes + "/big", capped)  # refused on its Content-Length
    with pytest.raises(FetchError, match="larger than 100000 bytes"):
        fetch(routes + "/big-stream", capped)  # no length given: counted while streaming
    assert len(fetch(routes + "/big").text) > 200_000
    with pytest.raises(FetchError, match="is application/pdf, not HTML"):
        fetch(routes + "/report.pdf")
    with pytest.raises(FetchError, match="is text/plain, not HTML"):
        fetch(site_server + "/robots.txt")
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(site_server + "/wiki/No_such_page.html")
    with pytest.raises(FetchError, match="ConnectError"):
        fetch("http://127.0.0.1:9/")


def test_charset_from_meta_tag(routes):
    page = fetch(routes + "/latin1")
    assert page.title == "Café" and "Crème brûlée à la carte" in page.text


def test_public_addresses_are_pinned():
    target, headers, extensions = asyncio.run(Fetcher().pin("https://93.184.215.14:8443/a?b=1"))
    assert str(target) == "https://93.184.215.14:8443/a?b=1" and extensions == {"sni_hostname": "93.184.215.14"}
    assert headers == {"Host": "93.184.215.14:8443", "Connection": "close"}  # no pooled TLS reuse across names
    plain = asyncio.run(Fetcher().pin("http://93.184.215.14/"))
    assert plain[1:] == ({"Host": "93.184.215.14"}, {})
    assert non_public("8.8.8.8") is None and non_public("2001:4860:4860::8888") is None
    assert non_public("100.64.0.1") == "non-global" and non_public("fe80::1%eth0") == "link-local"


# --- goal-conditioned extraction through the LLM client ---------------------------------------------------------

GOAL = "What is the capital of Houxol?"
ANSWER = {"rational": "The infobox and Geography name it.", "evidence": ["Its capital is Masyrnstead."],
          "summary": "Houxol's capital is Masyrnstead."}  # fmt: skip


@pytest.fixture
def llm_server():
    with FakeOpenAIServer() as server:
        yield server


def client_for(server) -> LLMClient:
    return LLMClient(make_llm("openai:fake", api_base=server.base_url), max_retries=0)


def page_in(request: dict) -> str:
    """The page text inside the prompt the fake server received."""
    content = request["messages"][0]["content"]
    return content.split('">\n', 1)[1].rsplit("\n</page>", 1)[0]


def test_visit_renders_evidence_and_summary(llm_server, site_server):
    llm_server.queue(json.dumps(ANSWER))
    client, url = client_for(llm_server), site_server + "/wiki/Houxol.html"
    observation = asyncio.run(Visitor(client, fetcher=LOCAL).visit(url, GOAL))
    assert observation == (
        f"The useful information in {url} for user goal {GOAL} as follows: \n\n"
        "Evidence in page: \nIts capital is Masyrnstead.\n\nSummary: \nHouxol's capital is Masyrnstead.\n\n"
    )
    prompt = load_prompt("visit_extract")
    sent = llm_server.requests[0]
    assert sent["messages"] == [{"role": "user", "content": prompt.render(goal=GOAL, url=url, page=page_in(sent))}]
    assert page_in(sent) == fetch(url).text and sent["response_format"]["json_schema"]["schema"] == EXTRACT_SCHEMA
    file_hash = hashlib.sha256(
        (Path(tools.__file__).parents[1] / "prompts/visit_extract.txt").read_bytes()
    ).hexdigest()
    assert prompt.version == file_hash[:12] and client.usage.summary()["visit"]["calls"] == 1


def test_unparsable_answers_are_retried_with_a_shorter_page(llm_server, site_server):
    llm_server.queue("Sure! Here is what I found: the capital.", json.dumps({"evidence": 5}), json.dumps(ANSWER))
    visitor = Visitor(client_for(llm_server), fetcher=LOCAL, max_chars=1000)
    result = asyncio.run(visitor.read(site_server + "/wiki/Houxol.html", GOAL))
    assert [len(page_in(r)) for r in llm_server.requests] == [1000, 700, 490]
    assert result.summary == ANSWER["summary"] and (result.attempts, result.page_chars, result.source) == (
        3,
        490,
        "http",
    )


def test_extraction_that_never_parses_keeps_the_raw_answer(llm_server, site_server):
    llm_server.queue(*["no json here"] * 3)
    url = site_server + "/wiki/Houxol.html"
    result = asyncio.run(Visitor(client_for(llm_server), fetcher=LOCAL, retries=2).read(url, GOAL))
    assert (
        result.observation
        == f"The page {url} was read, but the information for user goal {GOAL} could not be extracted from it."
    )
    assert result.raw == "no json here" and result.error.startswith("extraction failed after 3 attempts")
    assert len(llm_server.requests) == 3


def test_unreachable_pages_cost_no_llm_call(llm_server, site_server, routes):
    visitor = Visitor(client_for(llm_server), fetcher=LOCAL)
    for url, why in (
        (site_server + "/wiki/No_such_page.html", "HTTP 404"),
        (routes + "/report.pdf", "not HTML"),
        ("http://10.0.0.1/", "private address"),
        ("file:///etc/passwd", "only http(s) URLs"),
    ):
        result = asyncio.run(visitor.read(url, GOAL))
        assert result.observation.startswith(UNREACHABLE) and why in result.observation  # says what failed
        assert result.error.startswith("unreachable: ")
    assert llm_server.requests == []


def test_visit_uses_the_local_corpus_without_fetching(llm_server, fresh_site_server, site_dir, tmp_path):
    server, base = fresh_site_server
    records = site_page_records(site_dir, base, ["/wiki/Houxol.html", "/index.html"])
    build_index(write_records(records, tmp_path / "pages.jsonl", kind="page")[0], tmp_path / "index")
    llm_server.responder = lambda body: json.dumps(ANSWER)
    visitor = Visitor(client_for(llm_server), corpus=BM25Index.load(tmp_path / "index"), fetcher=LOCAL)
    result = asyncio.run(visitor.read(base + "/wiki/Houxol.html#Geography", GOAL))
    assert result.source == "corpus" and result.summary == ANSWER["summary"] and server.request_log == []
    assert page_in(llm_server.requests[0]) == records[0]["text"]
    assert asyncio.run(visitor.read(base + "/about.html", GOAL)).source == "http"  # not in the corpus: fetched
    assert server.request_log == ["/about.html"]


def test_visit_many_keeps_the_order_of_urls(llm_server, site_server):
    def answer(body: dict) -> str:  # concurrent requests: the answer names the page it was asked about
        url = body["messages"][0]["content"].split('<page url="', 1)[1].split('"', 1)[0]
        return json.dumps({"evidence": f"from {url}", "summary": "ok"})

    llm_server.responder = answer
    urls = [site_server + "/wiki/Houxol.html", site_server + "/nope.html", site_server + "/about.html"]
    parts = asyncio.run(Visitor(client_for(llm_server), fetcher=LOCAL).visit_many(urls, GOAL)).split("\n=======\n")
    assert parts == [render_visit(urls[0], GOAL, f"from {urls[0]}", "ok"), unreachable(f"HTTP 404 for {urls[1]}"),
                     render_visit(urls[2], GOAL, f"from {urls[2]}", "ok")]  # fmt: skip
