"""A fake web-search server on 127.0.0.1 that speaks the Serper and SearXNG HTTP APIs, for tests and benchmarks.

    with FakeSearchServer(api_key="k") as server:
        engine = SerperSearch(server.base_url, api_key="k")      # POST /search {"q", "num"}, X-API-KEY header
        engine = SearxngSearch(server.base_url)                  # GET /search?q=...&format=json
        server.queue(429, 500)     # the next two search requests fail with these statuses, then answers resume
        server.requests            # [{"method", "path", "query", "headers", "body"}, ...] in arrival order

Answers are deterministic: result i (1-based) for query q has title "q - result i", link/url
"https://example.org/<slug of q>/i" and snippet "Snippet i for q.". Serper returns `num` results (default 10),
SearXNG always 10 (it has no count parameter). A wrong or missing X-API-KEY gets Serper's 401; SearXNG answers
403 to format=json when built with `json_enabled=False`, as an instance does by default. `latency` delays every
search answer; `in_flight` and `max_in_flight` count concurrent searches. `empty_for` lists queries with no results.

`site_page_records(site_dir, base_url)` gives the page records a crawl of the generated site would write, made
straight from its HTML files (1 s for 300 pages, against several for a real crawl): what a local index is built from.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from wdtk.crawler.extract import extract_page
from wdtk.schemas import record_id

RESULTS = 10


def site_page_records(site_dir: Path, base_url: str, paths: list[str] | None = None) -> list[dict]:
    """Valid page records for the site's public HTML pages (or `paths`), as if crawled from `base_url`."""
    paths = paths or sorted("/" + p.relative_to(site_dir).as_posix() for p in site_dir.rglob("*.html"))
    return [page_record(base_url + path, (site_dir / path.lstrip("/")).read_text(encoding="utf-8"), base_url)
            for path in paths if not path.startswith(("/private/", "/_truth/"))]  # fmt: skip


def page_record(url: str, html: str, base_url: str, final_url: str | None = None, status: int = 200) -> dict:
    """One page record for `html` fetched from `url` (ending at `final_url`)."""
    title, text = extract_page(html, final_url or url)
    return {"id": record_id("page", url), "url": url, "final_url": final_url or url, "status": status,
            "title": title, "text": text, "links": [], "depth": 1, "root": base_url + "/",
            "fetched_at": "2025-01-01T00:00:00Z", "content_hash": hashlib.sha256(html.encode()).hexdigest(),
            "meta": {"extractor": "trafilatura"}}  # fmt: skip


def fake_results(query: str, n: int) -> list[dict]:
    """The `n` deterministic results for `query`, as (title, url, snippet) dicts."""
    slug = re.sub(r"\W+", "-", query.lower()).strip("-") or "empty"
    return [
        {
            "title": f"{query} - result {i}",
            "url": f"https://example.org/{slug}/{i}",
            "snippet": f"Snippet {i} for {query}.",
        }
        for i in range(1, n + 1)
    ]


class FakeSearchServer(ThreadingHTTPServer):
    """Serper's `POST /search` and SearXNG's `GET /search?format=json` in one threaded server."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, api_key: str = "test-key", *, latency: float = 0.0, json_enabled: bool = True,
                 empty_for: tuple[str, ...] = ()) -> None:  # fmt: skip
        super().__init__(("127.0.0.1", 0), SearchHandler)
        self.api_key, self.latency, self.json_enabled, self.empty_for = api_key, latency, json_enabled, empty_for
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """'http://127.0.0.1:PORT'."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def queue(self, *statuses: int) -> None:
        """Fail the next search requests with these HTTP statuses (429 ones carry `Retry-After: 0`)."""
        with self.lock:
            self.statuses.extend(statuses)

    def __enter__(self) -> FakeSearchServer:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class SearchHandler(BaseHTTPRequestHandler):
    """One request: record it, then answer as Serper (POST) or SearXNG (GET)."""

    protocol_version = "HTTP/1.1"
    server: FakeSearchServer

    def do_POST(self) -> None:
        """Serper: JSON body {"q", "num"}, key in X-API-KEY."""
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.begin(body) and self.path == "/search":
            if self.headers.get("X-API-KEY") != self.server.api_key:
                return self.send_json(401, {"message": "Unauthorized.", "statusCode": 401})
            results = self.results(body.get("q", ""), int(body.get("num", RESULTS)))
            organic = [{"title": r["title"], "link": r["url"], "snippet": r["snippet"], "position": i}
                       for i, r in enumerate(results, 1)]  # fmt: skip
            self.send_json(200, {"searchParameters": body, "organic": organic})
        elif self.path != "/search":
            self.send_json(404, {"message": "not found"})

    def do_GET(self) -> None:
        """SearXNG: q and format=json in the query string."""
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if self.begin(None) and parts.path == "/search":
            if params.get("format") != "json" or not self.server.json_enabled:
                return self.send_json(403, {"error": "format not allowed"})
            results = [{"title": r["title"], "url": r["url"], "content": r["snippet"], "engine": "fake"}
                       for r in self.results(params.get("q", ""), RESULTS)]  # fmt: skip
            self.send_json(200, {"query": params.get("q", ""), "number_of_results": len(results), "results": results})
        elif parts.path != "/search":
            self.send_json(404, {"error": "not found"})

    def begin(self, body: dict | None) -> bool:
        """Record the request, wait `latency`; False when a queued status was sent instead."""
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        record = {
            "method": self.command,
            "path": parts.path,
            "query": query,
            "headers": dict(self.headers),
            "body": body,
        }
        with self.server.lock:
            self.server.requests.append(record)
            status = self.server.statuses.pop(0) if self.server.statuses else None
            self.server.in_flight += 1
            self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
        try:
            time.sleep(self.server.latency)
        finally:
            with self.server.lock:
                self.server.in_flight -= 1
        if status is not None:
            headers = {"Retry-After": "0"} if status == 429 else {}
            self.send_json(status, {"message": f"scripted {status}"}, headers)
            return False
        return True

    def results(self, query: str, n: int) -> list[dict]:
        """The answer to `query`: none for queries in `empty_for`."""
        return [] if query in self.server.empty_for else fake_results(query, n)

    def send_json(self, status: int, body: dict, headers: dict | None = None) -> None:
        """A JSON response with Content-Length, so the connection stays open for the next request."""
        raw = json.dumps(body).encode()
        self.send_response(status)
        headers = {"Content-Type": "application/json", "Content-Length": str(len(raw)), **(headers or {})}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args) -> None:
        """Quiet: tests read `server.requests` instead."""
