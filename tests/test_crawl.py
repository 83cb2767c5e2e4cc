"""The crawler, run the way users run it (`scrapy crawl` from the repo root, `wdtk crawl` from anywhere),
against the generated site served on 127.0.0.1, checked against the site's ground truth."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from statistics import mean
from urllib.parse import urljoin, urlsplit

import pytest

from wdtk.crawler.scope import Scope, canonical, check_root
from wdtk.crawler.shingles import shingle_f1
from wdtk.schemas import is_complete, read_records

REPO = Path(__file__).resolve().parents[1]
FAST = ["-s", "AUTOTHROTTLE_ENABLED=False", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=16", "-s", "LOG_LEVEL=WARNING"]


def scrapy_crawl(base: str, tmp: Path, *args: str) -> tuple[list[dict], dict]:
    """Run `scrapy crawl sublinks` from the repo root; return the -O feed's records and the crawl summary."""
    feed, out = tmp / "pages.jsonl", tmp / "out"
    cmd = [
        sys.executable,
        "-m",
        "scrapy",
        "crawl",
        "sublinks",
        "-a",
        f"roots={base}/",
        "-O",
        str(feed),
        "-s",
        f"WDTK_OUTPUT_DIR={out}",
        *FAST,
        *args,
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return list(read_records(feed, kind="page")), json.loads((out / "crawl_summary.json").read_text())


def path_of(url: str) -> str:
    """Site path of a crawled URL, '/' read as the main page the server answers it with."""
    path = urlsplit(url).path
    return "/index.html" if path == "/" else path


@pytest.fixture(scope="module")
def full_crawl(site_server: str, tmp_path_factory) -> tuple[list[dict], dict]:
    return scrapy_crawl(site_server, tmp_path_factory.mktemp("full"), "-a", "max_depth=50", "-a", "max_pages=0")


def test_full_crawl_covers_every_public_html_page_once(full_crawl, truth, site_server):
    records, summary = full_crawl
    public = {p["path"] for p in truth["pages"] if p["kind"] != "talk"}
    crawled = [path_of(r["final_url"]) for r in records]
    assert set(crawled) == public
    # one record per page: aliases serving the same bytes (/ and /index.html, ?query variants) are not pages again
    assert len(crawled) == len(set(crawled)) == len({r["url"] for r in records}) == len({r["id"] for r in records})
    recorded = {r["url"] for r in records}
    duplicates = summary["duplicate_content"]
    assert duplicates[canonical(site_server + "/index.html")] == canonical(site_server + "/")
    assert all(of in recorded and url not in recorded for url, of in duplicates.items())
    assert summary["skipped"]["duplicate_content"] == len(duplicates) >= 1 + len(truth["url_variants"])
    assert summary["pages"] == len(records) and summary["finish_reason"] == "finished" and summary["complete"]


def test_query_order_and_fragment_variants_are_fetched_once(full_crawl, truth, site_server):
    records, summary = full_crawl
    urls = {r["url"] for r in records} | set(summary["duplicate_content"])
    for variant in truth["url_variants"]:
        canon = {canonical(site_server + href) for href in variant["hrefs"]}
        assert len(canon) == 1 and canon <= urls, canon  # both orders are one URL, fetched once
        assert not any("#" in u for u in urls)
    assert summary["skipped"]["duplicate_url"] > 0


def test_robots_offsite_non_html_and_broken_links_are_skipped(full_crawl, truth):
    records, summary = full_crawl
    hosts = {urlsplit(r["final_url"]).netloc for r in records}
    assert len(hosts) == 1 and "127.0.0.1" in hosts.pop()
    assert not any("/private/" in r["url"] or "/_truth/" in r["url"] for r in records)
    assert summary["skipped"]["robots_txt"] >= 1
    assert summary["skipped"]["redirect_offsite"] == len({r["from"] for r in truth["redirects"] if r["offsite"]})
    assert summary["links_not_followed"]["offsite"] >= len(truth["offsite_links"])
    # files with a telltale extension are never requested; /data/export-N is fetched, seen as JSON, dropped
    assert summary["links_not_followed"]["extension"] >= 1
    assert summary["skipped"]["non_html"] >= 1
    assert not any(path_of(r["url"]).startswith(("/files/", "/data/")) for r in records)
    assert summary["errors"]["http_404"] >= len(truth["broken_links"]) - 1


def test_extracted_text_holds_the_articles_facts_and_not_the_chrome(full_crawl, truth):
    records, _ = full_crawl
    by_path = {path_of(r["final_url"]): r for r in records if not urlsplit(r["url"]).query}
    checked = 0
    for fact in truth["facts"]:
        for page in fact["pages"]:
            if page in by_path:
                assert fact["object_text"] in by_path[page]["text"], (page, fact)
                checked += 1
    assert checked > 500
    for record in by_path.values():
        for chrome in truth["chrome_strings"]:
            assert chrome not in record["text"], (record["url"], chrome)
    articles = {p["path"]: p["title"] for p in truth["pages"] if p["kind"] == "article"}
    assert all(articles[p] in by_path[p]["title"] for p in articles)
    gold = {t["path"]: t["text"] for t in truth["texts"]}
    scores = [shingle_f1(r["text"], gold[p])[2] for p, r in by_path.items()]
    assert mean(scores) >= 0.97


def test_records_carry_provenance_and_links_in_scope(full_crawl, site_server):
    records, _ = full_crawl
    root = canonical(site_server + "/")
    for r in records:
        assert r["root"] == root
        assert (r["depth"] == 0) == ("parent_url" not in r)
        assert r["meta"]["extractor"].startswith("trafilatura")
        assert all(link.startswith(site_server) and "#" not in link for link in r["links"])
    parents = {r["url"]: r["depth"] for r in records}
    assert all(parents[r["parent_url"]] == r["depth"] - 1 for r in records if r["depth"])


def hop_distances(truth: dict, base: str) -> dict[str, int]:
    """{page path: fewest link hops from the main page}, from the site's link graph in _truth/: hrefs resolved and
    canonicalised as a crawler must, redirects followed, robots.txt obeyed, files and off-site links left out."""
    pages = {p["path"]: p["links"] for p in truth["pages"]}
    redirects = {r["from"]: r for r in truth["redirects"]}
    scope = Scope((base + "/",))
    root = canonical(base + "/")
    hops, seen, queue = {}, {root}, deque([(root, 0)])
    while queue:
        url, depth = queue.popleft()
        path = path_of(url)
        if path in redirects:
            if redirects[path]["offsite"]:
                continue
            path = redirects[path]["final"]
        if path not in pages or path.startswith("/private/") or path in hops:
            continue  # 404, non-HTML, disallowed, or content already reached at fewer hops
        hops[path] = depth
        for href in pages[path]:
            link = canonical(urljoin(base + path, href))
            if scope.skip_reason(link) is None and link not in seen:
                seen.add(link)
                queue.append((link, depth + 1))
    return hops


def test_depth_is_the_shortest_link_distance_and_the_same_on_every_run(full_crawl, truth, site_server, tmp_path):
    records, _ = full_crawl
    hops = hop_distances(truth, site_server)
    assert {path_of(r["final_url"]): r["depth"] for r in records} == hops
    assert max(hops.values()) >= 3
    again, _ = scrapy_crawl(site_server, tmp_path, "-a", "max_depth=50", "-a", "max_pages=0",
                            "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=3")  # fmt: skip
    assert {r["url"]: (r["depth"], r.get("parent_url")) for r in again} == {
        r["url"]: (r["depth"], r.get("parent_url")) for r in records
    }


@pytest.mark.parametrize("max_depth", [1, 2])
def test_max_depth_admits_exactly_the_pages_within_that_many_hops(site_server, truth, tmp_path, max_depth):
    records, summary = scrapy_crawl(site_server, tmp_path, "-a", f"max_depth={max_depth}", "-a", "max_pages=0")
    within = {path for path, hops in hop_distances(truth, site_server).items() if hops <= max_depth}
    assert sorted(path_of(r["final_url"]) for r in records) == sorted(within)
    assert summary["links_not_followed"]["depth_limit"] > 0 and summary["complete"]


def test_page_limit_keeps_the_pages_nearest_the_root_and_the_same_ones_each_run(site_server, tmp_path):
    first, summary = scrapy_crawl(site_server, tmp_path / "a", "-a", "max_depth=50", "-a", "max_pages=25")
    second, _ = scrapy_crawl(site_server, tmp_path / "b", "-a", "max_depth=50", "-a", "max_pages=25",
                             "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2")  # fmt: skip
    assert len(first) == 25 and {r["url"] for r in first} == {r["url"] for r in second}
    assert max(r["depth"] for r in first) <= 1  # breadth first: the main page links to more than 25
    assert summary["finish_reason"] == "max_pages" and summary["complete"]


def test_deny_narrows_and_robots_can_be_turned_off(site_server, truth, tmp_path):
    records, _ = scrapy_crawl(
        site_server,
        tmp_path,
        "-a",
        "max_depth=50",
        "-a",
        "max_pages=0",
        "-a",
        "deny=/category/",
        "-s",
        "ROBOTSTXT_OBEY=False",
    )
    paths = {path_of(r["final_url"]) for r in records}
    assert not any(p.startswith("/category/") for p in paths)
    talk = {p["path"] for p in truth["pages"] if p["kind"] == "talk"}
    assert talk and talk <= paths  # without robots.txt the disallowed talk pages are crawled


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-a", "max_depth=two", "-a", "roots=http://127.0.0.1:1/"], "max_depth= must be a whole number, got 'two'"),
        ([], "no roots: pass -a roots=URL[,URL...]"),
        (["-a", "roots=http://127.0.0.1:99999/"], "has an invalid port"),
        (["-a", "roots=http://127.0.0.1:1/", "-a", "deny=(["], "deny pattern '([' is not a valid regex"),
    ],
)
def test_bad_spider_arguments_fail_in_one_line(args, message):
    proc = subprocess.run([sys.executable, "-m", "scrapy", "crawl", "sublinks", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_scrapy_logs_progress_at_info_not_every_item(site_server, tmp_path):
    cmd = [sys.executable, "-m", "scrapy", "crawl", "sublinks", "-a", f"roots={site_server}/", "-a", "max_pages=60",
           "-s", "WDTK_PROGRESS_INTERVAL=0.2",
           "-s", "DOWNLOAD_DELAY=0.02", "-s", "AUTOTHROTTLE_ENABLED=False",
           "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1"]  # fmt: skip
    info = subprocess.run(cmd + ["-s", f"WDTK_OUTPUT_DIR={tmp_path / 'a'}"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert info.returncode == 0, info.stderr[-3000:]
    assert re.search(r"progress: \d+ pages \([\d.]+ pages/s\), \d+ queued, depth \d", info.stderr)
    assert "Scraped" not in info.stderr and "<!DOCTYPE" not in info.stderr and len(info.stderr) < 20_000
    debug = subprocess.run(cmd + ["-s", f"WDTK_OUTPUT_DIR={tmp_path / 'b'}", "-L", "DEBUG"], cwd=REPO,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "Crawled (200)" in debug.stderr and "Scraped http" in debug.stderr  # -L DEBUG still works ...
    assert "<!DOCTYPE" not in debug.stderr and "'html':" not in debug.stderr  # ... without whole pages in it


def wdtk(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wdtk.cli", *args], capture_output=True, text=True, **kwargs)


def test_wdtk_crawl_from_any_directory_writes_shards_and_a_summary(site_server, truth, tmp_path):
    out = tmp_path / "crawl"
    proc = wdtk(
        "crawl", site_server + "/", "-o", str(out), "--max-pages", "40", "--no-throttle", cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "crawled 40 pages" in proc.stdout
    assert "skipped:" in proc.stdout
    assert len(list(read_records(out / "pages", kind="page"))) == 40
    assert json.loads((out / "crawl_summary.json").read_text())["pages"] == 40
    assert is_complete(out / "pages")
    again = wdtk(
        "crawl", site_server + "/", "-o", str(out), "--max-pages", "40", "--no-throttle", cwd=tmp_path, timeout=120
    )
    assert again.returncode == 0 and "already complete: 40 pages" in again.stdout
    assert json.loads((out / "crawl_summary.json").read_text())["pages"] == 40  # the summary is kept


def test_wdtk_crawl_takes_patterns_with_commas(site_server, tmp_path):
    """Each --deny is one regex: `{1,2}` must not be split at its comma (the spider's -a form is comma-joined)."""
    out = tmp_path / "crawl"
    proc = wdtk("crawl", site_server + "/", "-o", str(out), "--max-pages", "60", "--no-throttle",
                "--deny", r"/categor(y){1,2}/", cwd=tmp_path, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = list(read_records(out / "pages", kind="page"))
    assert len(records) == 60 and not any(path_of(r["final_url"]).startswith("/category/") for r in records)


def test_interrupted_crawl_resumes_without_refetching(fresh_site_server, full_crawl, tmp_path):
    server, base = fresh_site_server
    out = tmp_path / "crawl"
    cmd = [
        sys.executable,
        "-m",
        "wdtk.cli",
        "crawl",
        base + "/",
        "-o",
        str(out),
        "--max-pages",
        "0",
        "--max-depth",
        "50",
        "--no-throttle",
    ]
    slow = ["--set", "DOWNLOAD_DELAY=0.05", "--set", "CONCURRENT_REQUESTS_PER_DOMAIN=2"]
    first = subprocess.Popen(cmd + slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(server.request_log) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)  # what Ctrl-C does: Scrapy shuts down gracefully and saves its state
    first.communicate(timeout=60)
    done = list(read_records(out / "pages", kind="page"))
    assert 0 < len(done) < len(full_crawl[0])
    seen_before = len(server.request_log)

    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr[-3000:]
    refetched = {path_of(base + p) for p in list(server.request_log)[seen_before:]}
    assert not refetched & {path_of(r["final_url"]) for r in done}
    records = list(read_records(out / "pages", kind="page"))
    assert sorted(urlsplit(r["url"])[2:] for r in records) == sorted(urlsplit(r["url"])[2:] for r in full_crawl[0])
    assert "complete" in second.stdout and is_complete(out / "pages")


def test_scope_rules():
    scope = Scope(("http://127.0.0.1:8000/",), allow=(r"^https://docs\.example\.org/",), deny=(r"/private/",))
    assert scope.skip_reason("http://127.0.0.1:8000/wiki/A.html") is None
    assert scope.skip_reason("https://127.0.0.1:8000/wiki/A.html") is None  # http and https are one site
    assert scope.skip_reason("http://127.0.0.1:8001/") == "offsite"  # another port is another site
    assert scope.skip_reason("https://docs.example.org/x") is None  # widened by allow
    assert scope.skip_reason("http://127.0.0.1:8000/private/x.html") == "denied"
    assert scope.skip_reason("http://127.0.0.1:8000/files/a.PDF") == "extension"
    assert scope.skip_reason("mailto:someone@example.org") == "scheme"
    assert canonical("http://h/x.html?b=2&a=1#top") == canonical("http://h/x.html?a=1&b=2")
    assert check_root("example.org/docs") == "https://example.org/docs"
    for bad in ("http://127.0.0.1:99999/", "ftp://example.org/", "http:///x"):
        with pytest.raises(ValueError, match="root"):
            check_root(bad)
