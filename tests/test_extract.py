"""Main-text extraction on every page kind of the generated site, scored against the site's true main text."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from statistics import mean

import pytest

from wdtk.crawler.extract import block_agrees, extract_page, menu_share
from wdtk.crawler.shingles import shingle_f1


@pytest.fixture(scope="module")
def extracted(site_dir: Path, truth: dict) -> dict[str, tuple[str, str]]:
    """{path: (kind, extracted text)} for every page of the site."""
    return {p["path"]: (p["kind"], extract_page((site_dir / p["path"].lstrip("/")).read_text())[1])
            for p in truth["pages"]}  # fmt: skip


def test_every_page_kind_scores_097_and_no_chrome_reaches_the_text(extracted, truth):
    gold = {t["path"]: t["text"] for t in truth["texts"]}
    scores = defaultdict(list)
    for path, (kind, text) in extracted.items():
        scores[kind].append(shingle_f1(text, gold[path])[2])
        assert not [c for c in truth["chrome_strings"] if c in text], path
    assert {"contents", "docs", "modindex", "portal", "article"} <= set(scores)
    means = {kind: mean(values) for kind, values in scores.items()}
    assert min(means.values()) >= 0.97, means


def bare(line: str) -> str:
    """A line without list bullets, table bars, Sphinx's pilcrow or repeated spaces."""
    return " ".join(re.sub(r"^[-*\s]+|[|¶]", " ", line).split())


def test_contents_pages_keep_entries_and_docs_keep_headings_admonitions_and_terms(site_dir, extracted, truth):
    texts = {t["path"]: t["text"] for t in truth["texts"]}
    for path, (kind, text) in extracted.items():
        if kind in ("contents", "modindex", "docs"):
            flat = " ".join(bare(line) for line in text.splitlines())
            # every heading, list entry, term and admonition line of the true text is in the extraction
            missing = [line for line in texts[path].splitlines() if bare(line) not in flat]
            assert not missing, (path, missing)
            assert bare(text.splitlines()[0]) == bare(texts[path].splitlines()[0])  # it opens with its title


def test_a_mostly_menu_page_gives_its_notice_even_without_a_title_heading(site_dir, truth):
    notice = next(p["path"] for p in truth["pages"] if p["kind"] == "portal")
    html = (site_dir / notice.lstrip("/")).read_text()
    gold = next(t["text"] for t in truth["texts"] if t["path"] == notice)
    untitled = html.replace("<h1>", '<div class="title">').replace("</h1>", "</div>")
    text = extract_page(untitled)[1]
    # without the <h1> no region is found: the whole-page result (the menu) is questioned and replaced
    assert shingle_f1(text, gold)[1] > 0.9 and len(text) < 2 * len(gold), text[:300]


def test_menu_share_counts_link_text_and_link_led_items():
    import lxml.html

    tree = lxml.html.fromstring(
        "<html><body><ul><li><a href='/a'>Bins</a><p>Collection days for every street.</p></li></ul>"
        "<p>A notice about the market.</p></body></html>"
    )
    assert menu_share("Bins\nCollection days for every street.", tree) == 1.0
    assert menu_share("A notice about the market.", tree) == 0.0


# Small news pages with the layouts that broke extraction on real articles (article-extraction benchmark).
STORY = [
    "The harbour board voted on Tuesday to rebuild the north pier before the winter storms arrive.",
    "Engineers found that the timber piles had rotted through in several places along the outer wall.",
    "The work will close the fish market for six weeks, and traders will move to the old rope sheds.",
    "A spokesman said the cost would be shared between the board and the county over three years.",
    "Residents who use the ferry are asked to walk round by the lifeboat station while the pier is shut.",
    "The pier was last rebuilt in 1952, when the herring fleet still landed its catch on the outer berth.",
    "Divers will survey the foundations next week so that the contract can be let before Christmas.",
    "The board also agreed to paint the harbour crane and to replace the rusted rails along the slipway.",
]
HEADLINES = [
    "Council agrees new parking charges for the town centre after long debate",
    "Lifeboat crew rescues two walkers cut off by the tide near the lighthouse",
    "School inspectors praise the reading scheme at the primary on Mill Lane",
    "Bus company withdraws the late service to the villages from next month",
]
H1 = "<h1>Harbour board votes to rebuild north pier</h1>"
TEXT = "<div class='text'>" + "".join(f"<p>{s}</p>" for s in STORY) + "</div>"
MENU = (
    "<ul class='menu'>" + "".join(f"<li><a href='/{w}'>{w}</a></li>" for w in ("News", "Sport", "Weather")) + "</ul>"
)
STRAP = (  # over 200 characters: the block around the <h1> looks like a region
    "By Morag Dunbar, coast and harbours correspondent, with additional reporting by the Gazette newsdesk. "
    "Published on 19 November 2019 at 08:15, updated at 11:40. Share this story on social media or by email."
)


def news_page(body: str) -> str:
    title = "Harbour board votes to rebuild north pier | The Coast Gazette"
    return f"<html><head><title>{title}</title></head><body>{MENU}{body}</body></html>"


def most_read(attrs: str = "") -> str:
    items = "".join(f"<li><a href='/news/{i}'>{h}</a></li>" for i, h in enumerate(HEADLINES))
    return f"<div{attrs}><h2>Most read</h2><ul>{items}</ul></div>"


@pytest.mark.parametrize(
    "body",
    [
        f"<div class='story'><div class='head'>{H1}<div class='byline'>{STRAP}</div></div>{TEXT}</div>",
        f"<div class='wrap'><div class='sidebar'>{H1}{most_read()}</div>{TEXT}</div>",
        f"<div class='top'><h1>The Coast Gazette</h1><div class='strap'>{STRAP}</div></div><h2>Pier</h2>{TEXT}",
    ],
    ids=["headline-block-with-byline", "h1-in-a-sidebar", "logo-h1-named-like-the-site"],
)
def test_a_title_block_without_the_pages_prose_gives_way_to_the_whole_page(body):
    # the block the <h1> opens holds a byline, a related list or the masthead, and none of the story's paragraphs
    text = extract_page(news_page(body))[1]
    assert all(s in text for s in STORY) and not [h for h in HEADLINES if h in text], text[:300]


@pytest.mark.parametrize(
    "main",
    [
        f"<main><div class='column'>{H1}{TEXT}</div><div class='column'>{most_read()}</div></main>",
        f"<div role='main'>{H1}{TEXT}{most_read(' role=complementary')}<p>{STORY[0]}</p></div>",
    ],
    ids=["related-column-inside-main", "complementary-block-inside-main"],
)
def test_related_stories_inside_a_declared_region_stay_out(main):
    # with the region's links unwrapped, the headlines would read as content
    text = extract_page(news_page(main))[1]
    assert all(s in text for s in STORY) and not [h for h in HEADLINES if h in text], text[:300]


def test_a_contents_list_beside_its_intro_in_main_stays():
    entries = ["Getting started", "Reading the registers", "Comparing census tables", "Fetching gazetteers"]
    toc = "<ul>" + "".join(f"<li><a href='/docs/{i}.html'>{e}</a></li>" for i, e in enumerate(entries)) + "</ul>"
    intro = "<p>This handbook explains how to use the Orrery Toolkit: how to fetch catalogues and read registers.</p>"
    html = f"<html><head><title>Handbook</title></head><body><main><div><h1>Handbook</h1>{intro}</div>{toc}</main>"
    text = extract_page(html + "</body></html>")[1]
    # the <h1>'s block holds all the prose, but leaves out more than half as much list text: no narrowing
    assert all(e in text for e in entries), text


def test_a_title_block_agrees_with_the_whole_page_when_it_holds_most_of_it_or_the_page_is_menu():
    story, other = " ".join(STORY), " ".join(HEADLINES)
    assert block_agrees(story, story + "\n" + HEADLINES[0], news_page(TEXT))
    assert not block_agrees(STORY[0], story, news_page(TEXT))
    menu = news_page(most_read() + TEXT)  # the whole-page text is the list of headlines: a menu
    assert block_agrees(STORY[0], "\n".join(HEADLINES), menu) and not block_agrees(STORY[0], other, news_page(""))


@pytest.mark.parametrize("html", ["", "   ", "<html></html>", "\x00\x01", "<p>" * 5000])
def test_empty_or_odd_documents_do_not_raise(html):
    title, text = extract_page(html)
    assert isinstance(title, str) and isinstance(text, str)


def test_shingle_f1():
    assert shingle_f1("a b c d", "a b c d") == (1.0, 1.0, 1.0)
    assert shingle_f1("", "") == (1.0, 1.0, 1.0)
    assert shingle_f1("x y z", "a b c")[2] == 0.0
    precision, recall, f1 = shingle_f1("a b c d e", "a b c")
    assert recall == 1.0 and precision == pytest.approx(1 / 3) and f1 == pytest.approx(0.5)


def test_the_benchmark_reads_both_gold_layouts(tmp_path):
    import gzip
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("bench_extract", Path(__file__).parents[1] / "bench" / "extract.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    aeb = tmp_path / "aeb"
    (aeb / "html").mkdir(parents=True)
    (aeb / "html" / "a1.html.gz").write_bytes(gzip.compress(b"<html><body><p>Body one.</p></body></html>"))
    (aeb / "ground-truth.json").write_text(json.dumps({"a1": {"articleBody": "Body one.", "url": "http://x/"}}))
    assert bench.gold_cases(aeb) == [("gold", "<html><body><p>Body one.</p></body></html>", "Body one.")]
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    (pairs / "b.html").write_text("<p>Two</p>")
    (pairs / "b.txt").write_text("Two")
    (pairs / "lonely.html").write_text("<p>no gold</p>")
    assert bench.gold_cases(pairs) == [("gold", "<p>Two</p>", "Two")]
