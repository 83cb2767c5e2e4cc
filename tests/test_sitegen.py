"""The generated site: determinism, page count, facts stated where the truth says, chrome, links, server."""

import html
import http.client
import json
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from email.message import Message
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from wdtk.crawler.sitegen import build_site, load_truth, start_server

MAIN = re.compile(r"<main[^>]*>(.*)</main>", re.S)
TAG = re.compile(r"<[^>]+>")


def visible(markup: str) -> str:
    """Text of some HTML with tags removed and whitespace collapsed."""
    return " ".join(html.unescape(TAG.sub(" ", markup)).split())


def main_text(site_dir: Path, path: str) -> str:
    """Visible text inside a page's <main>."""
    return visible(MAIN.search((site_dir / path.lstrip("/")).read_text()).group(1))


def files_of(root: Path) -> dict[str, bytes]:
    """Every file under `root`, by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def html_pages(root: Path) -> set[str]:
    """Site paths of every HTML file outside _truth."""
    return {"/" + str(p.relative_to(root)) for p in root.rglob("*.html")}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Let tests see 301s instead of following them."""

    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url: str) -> tuple[int, Message, bytes]:
    """(status, headers, body) without following redirects."""
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


# --- building -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pages", [10, 49, 100_001])
def test_page_counts_outside_the_range_are_refused(tmp_path: Path, pages: int) -> None:
    with pytest.raises(ValueError, match="between 50 and 100000"):
        build_site(tmp_path / "site", pages)


def test_exact_page_count(site_dir: Path, truth: dict) -> None:
    assert html_pages(site_dir) == {p["path"] for p in truth["pages"]}
    assert len(truth["pages"]) == truth["page_count"] == 300
    kinds = truth["page_kinds"]
    assert set(kinds) == {"main", "about", "index", "category", "article", "talk", "contents", "docs", "modindex",
                          "portal"}  # fmt: skip
    assert kinds["article"] == len(truth["entities"])
    assert {p["path"] for p in truth["pages"]} == {t["path"] for t in truth["texts"]}


@pytest.mark.parametrize("pages", [50, 51, 77, 123])
def test_small_sites_hit_the_page_count_exactly(tmp_path: Path, pages: int) -> None:
    calls = []
    summary = build_site(tmp_path, pages, seed=pages, progress=lambda done, total: calls.append((done, total)))
    assert summary["pages"] == pages == len(html_pages(tmp_path))
    assert calls[-1] == (pages, pages) and all(total == pages for _, total in calls)
    assert {"articles", "entities", "facts", "files", "redirects", "broken_links", "seconds"} <= set(summary)


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path, site_dir: Path) -> None:
    build_site(tmp_path / "again", 300, seed=7)
    assert files_of(tmp_path / "again") == files_of(site_dir)
    build_site(tmp_path / "other", 300, seed=8)
    other = files_of(tmp_path / "other")
    assert other["index.html"] != files_of(site_dir)["index.html"]
    assert set(other) != set(files_of(site_dir))


def test_rebuild_replaces_an_old_site_but_refuses_other_folders(tmp_path: Path) -> None:
    build_site(tmp_path / "site", 120, seed=1)
    build_site(tmp_path / "site", 60, seed=1)
    assert len(html_pages(tmp_path / "site")) == 60
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        build_site(tmp_path / "notes", 60)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


# --- content --------------------------------------------------------------------------------------------------------


def test_every_fact_is_visible_on_each_page_said_to_state_it(site_dir: Path, truth: dict) -> None:
    texts: dict[str, str] = {}
    true_text = {t["path"]: " ".join(t["text"].split()) for t in truth["texts"]}
    urls = {e["id"]: e["url"] for e in truth["entities"]}
    for fact in truth["facts"]:
        assert urls[fact["subject"]] in fact["pages"]
        for path in fact["pages"]:
            text = texts.setdefault(path, main_text(site_dir, path))
            assert fact["object_text"] in text and fact["object_text"] in true_text[path], (fact, path)


def test_article_prose_states_each_fact_of_its_subject_in_a_sentence(site_dir: Path, truth: dict) -> None:
    urls = {e["id"]: e["url"] for e in truth["entities"]}
    prose: dict[str, str] = {}
    for fact in truth["facts"]:
        url = urls[fact["subject"]]
        if url not in prose:
            markup = MAIN.search((site_dir / url.lstrip("/")).read_text()).group(1)
            prose[url] = " ".join(visible(p) for p in re.findall(r"<p>(.*?)</p>", markup, re.S))
        assert fact["object_text"] in prose[url], (fact, url)


def test_facts_chain_and_share_objects(truth: dict) -> None:
    facts = truth["facts"]
    births = [f["object"] for f in facts if f["relation"] == "birthplace"]
    assert max(births.count(place) for place in set(births)) >= 3
    genres = [f["object"] for f in facts if f["relation"] == "genre"]
    assert max(genres.count(g) for g in set(genres)) >= 3
    located = {f["subject"]: f["object"] for f in facts if f["relation"] == "located_in"}
    hq = {f["subject"]: f["object"] for f in facts if f["relation"] == "headquarters"}
    chains = [f for f in facts if f["relation"] == "employer" and located.get(located.get(hq[f["object"]]))]
    assert chains, "no person -> employer -> HQ -> province -> country chain"


def test_chrome_strings_frame_every_page_but_never_the_main_content(site_dir: Path, truth: dict) -> None:
    assert len(truth["chrome_strings"]) >= 12
    texts = {t["path"]: t["text"] for t in truth["texts"]}
    for page in truth["pages"]:
        markup = (site_dir / page["path"].lstrip("/")).read_text()
        page_text = visible(markup)
        for chrome in truth["template_chrome"][page["template"]]:
            assert chrome in page_text, (chrome, page["path"])
        assert not any(chrome in texts[page["path"]] for chrome in truth["chrome_strings"]), page["path"]
        if page["template"] == "wiki":
            assert "<header" in markup and "<footer" in markup and 'class="sidebar"' in markup
            words = re.findall(r"\w+", texts[page["path"]])
            assert words == re.findall(r"\w+", main_text(site_dir, page["path"]))  # the truth is <main>'s text
        else:  # the pages that make extraction hard: no <main> or <article> says where the content is
            assert "<main" not in markup and "<article" not in markup and 'role="main"' not in markup


def test_handbook_has_contents_pages_admonitions_definitions_and_a_module_index(site_dir: Path, truth: dict) -> None:
    texts = {t["path"]: t["text"] for t in truth["texts"]}
    kinds = {p["path"]: p["kind"] for p in truth["pages"]}
    contents = [p for p, k in kinds.items() if k == "contents"]
    assert "/docs/index.html" in contents and len(contents) >= 3
    for path in contents:  # mostly a nested list of links, under a short introduction
        markup = (site_dir / path.lstrip("/")).read_text()
        body = markup.split('<div class="body">', 1)[1].split('<div class="sphinxsidebar">', 1)[0]
        assert body.count('class="toctree-l2"') >= 2
        links = sum(len(visible(a)) for a in re.findall(r"<a [^>]*>(.*?)</a>", body))
        assert links > 0.5 * len(visible(body))
    topics = [p for p, k in kinds.items() if k == "docs" and "/api/" not in p]
    for path in topics:
        markup = (site_dir / path.lstrip("/")).read_text()
        assert 'class="admonition' in markup and "<dt>" in markup and "<h2>" in markup
        term = re.search(r"<dt>(.*?)</dt>", markup).group(1)
        assert term in texts[path]
    first = (site_dir / topics[0].lstrip("/")).read_text()
    sidebar_titles = re.findall(r'<p class="topless"><a [^>]*>(.*?)</a>', first)
    assert sidebar_titles and not any(t in texts[topics[0]].splitlines()[0] for t in sidebar_titles)
    modindex = texts["/docs/py-modindex.html"]
    assert modindex.startswith("Python Module Index") and modindex.count("orrery.") >= 3


def test_notices_are_short_articles_inside_a_page_that_is_mostly_menu(site_dir: Path, truth: dict) -> None:
    texts = {t["path"]: t["text"] for t in truth["texts"]}
    notices = [p["path"] for p in truth["pages"] if p["kind"] == "portal"]
    assert notices
    for path in notices:
        page = visible((site_dir / path.lstrip("/")).read_text())
        assert 200 < len(texts[path]) < 0.15 * len(page), path


def test_articles_read_like_encyclopedia_entries(site_dir: Path, truth: dict) -> None:
    names = {e["url"]: e["name"] for e in truth["entities"]}
    words, tables = [], 0
    for url, name in names.items():
        markup = MAIN.search((site_dir / url.lstrip("/")).read_text()).group(1)
        assert f'<h1 id="firstHeading">{name}</h1>' in markup
        assert 'class="infobox"' in markup and "<ul>" in markup and "<p>" in markup
        tables += 'class="wikitable"' in markup
        words.append(len(visible(markup).split()))
    assert min(words) >= 120 and statistics.median(words) >= 180
    assert tables >= len(names) // 5


def test_categories_list_members_sharing_the_value(site_dir: Path, truth: dict) -> None:
    entities = {e["id"]: e for e in truth["entities"]}
    for cat in truth["categories"]:
        text = main_text(site_dir, cat["path"])
        assert cat["object_text"] in text
        for member in cat["members"]:
            value = entities[member]["attributes"][cat["relation"]]
            assert value == cat["object"] and entities[member]["name"] in text
            assert cat["path"] in entities[member]["categories"]


def test_robots_txt_disallows_talk_pages_and_truth(site_dir: Path, truth: dict) -> None:
    robots = (site_dir / "robots.txt").read_text().splitlines()
    assert robots[0] == "User-agent: *"
    assert {"Disallow: /private/", "Disallow: /_truth/"} <= set(robots)
    talk = [p["path"] for p in truth["pages"] if p["kind"] == "talk"]
    assert talk and all(p.startswith("/private/talk/") for p in talk)


# --- links ----------------------------------------------------------------------------------------------------------


def test_every_page_is_reachable_from_the_main_page_without_disallowed_pages(truth: dict) -> None:
    links = {p["path"]: p["links"] for p in truth["pages"]}
    redirects = {r["from"]: r["final"] for r in truth["redirects"]}
    depth, queue = {"/index.html": 0}, deque(["/index.html"])
    while queue:
        path = queue.popleft()
        if path.startswith("/private/"):
            continue
        for href in links[path]:
            href = urljoin(path, href)  # the Handbook's links are relative, as Sphinx writes them
            target = redirects.get(urlsplit(href).path, urlsplit(href).path)
            if target in links and target not in depth:
                depth[target] = depth[path] + 1
                queue.append(target)
    assert set(depth) == set(links)
    assert all(
        depth[p["path"]] == 1 for p in truth["pages"] if p["path"].startswith("/index/") and "-" not in p["path"]
    )


def test_traps_are_linked_and_described(site_dir: Path, truth: dict) -> None:
    linked = {href for p in truth["pages"] for href in p["links"]}
    onsite = [r for r in truth["redirects"] if not r["offsite"]]
    assert onsite and any(r["to"] != r["final"] for r in onsite)
    assert any(r["offsite"] and r["from"] in linked for r in truth["redirects"])
    assert not any(href.startswith("#") for href in linked)  # fragment-only links are recorded with the page path
    for broken in truth["broken_links"]:
        assert broken["path"] in linked and not (site_dir / broken["path"].lstrip("/")).exists()
    for variant in truth["url_variants"]:
        first, second = variant["hrefs"]
        assert {first, second} <= linked and first != second
        assert sorted(urlsplit(first).query.split("&")) == sorted(urlsplit(second).query.split("&"))
    assert any("#" in href and href.startswith("/wiki/") for href in linked)
    assert any(h.startswith("https://") for h in linked)
    for spec in truth["files"]:
        assert spec["path"] in linked and (site_dir / spec["path"].lstrip("/")).is_file()
    assert any("." not in spec["path"].rsplit("/", 1)[1] for spec in truth["files"])


# --- server ---------------------------------------------------------------------------------------------------------


def test_server_serves_pages_files_redirects_and_404s(site_server: str, truth: dict) -> None:
    article = truth["entities"][0]
    status, headers, body = fetch(site_server + article["url"])
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert f">{article['name']}</h1>".encode() in body
    assert fetch(site_server + "/")[2] == fetch(site_server + "/index.html")[2]
    redirect = next(r for r in truth["redirects"] if not r["offsite"])
    status, headers, _ = fetch(site_server + redirect["from"])
    assert status == 301 and headers["Location"] == redirect["to"]
    offsite = next(r for r in truth["redirects"] if r["offsite"])
    assert fetch(site_server + offsite["from"])[1]["Location"].startswith("http://offsite.invalid/")
    assert fetch(site_server + truth["broken_links"][0]["path"])[0] == 404
    assert fetch(site_server + "/wiki/")[0] == 404


def test_server_content_types_follow_the_file_not_the_url(site_server: str, truth: dict) -> None:
    expected = {"export": "application/json", "png": "image/png", "pdf": "application/pdf", "csv": "text/csv"}
    for spec in truth["files"]:
        status, headers, body = fetch(site_server + spec["path"])
        assert status == 200 and headers["Content-Type"].startswith(expected[spec["kind"]])
        if spec["kind"] == "png":
            assert body.startswith(b"\x89PNG\r\n\x1a\n")


def test_server_ignores_query_strings(site_server: str, truth: dict) -> None:
    variant = truth["url_variants"][0]
    plain = fetch(site_server + variant["target"])
    for href in variant["hrefs"]:
        assert fetch(site_server + href)[2] == plain[2]


def test_request_log_and_keep_alive(fresh_site_server) -> None:
    server, base_url = fresh_site_server
    connection = http.client.HTTPConnection(urlsplit(base_url).hostname, urlsplit(base_url).port, timeout=5)
    for path in ("/index.html", "/about.html?x=1", "/robots.txt"):
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200 and response.read()
    connection.close()
    assert list(server.request_log) == ["/index.html", "/about.html?x=1", "/robots.txt"]


def test_keep_alive_requests_are_fast(fresh_site_server, truth: dict) -> None:
    server, base_url = fresh_site_server
    connection = http.client.HTTPConnection(urlsplit(base_url).hostname, urlsplit(base_url).port, timeout=5)
    started = time.perf_counter()
    for page in truth["pages"]:
        connection.request("GET", page["path"])
        assert connection.getresponse().read()
    # A few hundred requests a second at least; Nagle plus delayed ACKs would cap this near 25 a second.
    assert time.perf_counter() - started < 3.0
    connection.close()
    assert len(server.request_log) == len(truth["pages"])


def test_started_servers_are_independent(site_dir: Path) -> None:
    first, first_url = start_server(site_dir)
    second, second_url = start_server(site_dir)
    try:
        assert first_url != second_url
        fetch(first_url + "/about.html")
        assert list(first.request_log) == ["/about.html"] and list(second.request_log) == []
    finally:
        first.shutdown()
        second.shutdown()


def test_wdtk_site_serve_blocks_until_ctrl_c(site_dir: Path) -> None:
    cmd = [sys.executable, "-m", "wdtk.cli", "site", "serve", str(site_dir), "--port", "0", "--quiet"]
    process = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stderr.readline()
        base_url = re.search(r"http://127\.0\.0\.1:\d+", banner).group(0)
        assert fetch(base_url + "/robots.txt")[0] == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()


def test_truth_loads_as_one_dict(site_dir: Path) -> None:
    truth = load_truth(site_dir)
    assert {"entities", "facts", "pages", "categories", "chrome_strings", "redirects", "files"} <= set(truth)


def test_build_writes_a_gaia_style_eval_split_with_one_answer_per_question(site_dir: Path, truth: dict) -> None:
    from wdtk.training.benchmarks import load_benchmark

    rows = [json.loads(line) for line in (site_dir / "eval.jsonl").read_text().splitlines()]
    assert 20 <= len(rows) <= 50 and {1, 2} <= {r["Level"] for r in rows}
    assert all(set(r) == {"task_id", "Question", "Final answer", "Level"} for r in rows)
    assert len({r["task_id"] for r in rows}) == len({r["Question"] for r in rows}) == len(rows)
    names = {e["name"]: e["id"] for e in truth["entities"]}
    objects = {}
    for fact in truth["facts"]:
        objects.setdefault((fact["subject"], fact["relation"]), []).append(fact)
    for row in rows:
        assert row["Final answer"] in names and row["Final answer"] not in row["Question"]
        subject = next(names[n] for n in sorted(names, key=len, reverse=True) if n in row["Question"])
        answers = {f["object_text"] for (s, _), facts in objects.items() if s == subject for f in facts}
        if row["Level"] == 1:  # a one-hop answer is a fact of the subject, and the only one of its relation
            assert row["Final answer"] in answers
    questions, skipped = load_benchmark(site_dir / "eval.jsonl")  # what `wdtk eval` reads
    assert len(questions) == len(rows) and not skipped and questions[0].layout == "gaia"
    assert "Disallow: /eval.jsonl" in (site_dir / "robots.txt").read_text()  # crawlers keep off the answers
