"""Main-text extraction: the main content of a page, without navigation chrome.

trafilatura does the extraction (it keeps lists and tables that lighter extractors drop; on the generated site
resiliparse kept 80% of the stated facts). Run on a whole page it goes wrong in three ways that real sites show:
it drops content made of links (contents pages, module indexes, "See also" lists) by link density; on pages
without a <main> or <article> it loses headings and lets sidebar text in; and on a page that is mostly menu it
returns the menu. So we first find the page's main region and run trafilatura on that region alone, with its
links unwrapped: inside the main region a list of links is content. Each kind of region is checked, because
real news pages (the public article-extraction benchmark) break each in its own way:

- A declared region (<main>, role=main, articleBody, a lone <article>) is trusted, but chrome inside it (an
  <aside>, a role=complementary column) is dropped, and when its title heading sits in a block that holds
  most of its prose (paragraph text outside links) and little else, the region is narrowed to that block:
  news sites put columns of related and most-read stories inside <main>, and with their links unwrapped
  those read as content. "Little else" (at most half as much text as that prose) keeps a contents page's
  list, set beside its intro, in.
- Else the block under the page's title heading: the first ancestor of the <h1> with real text besides it.
  That guess misfires (a headline block with its byline, an <h1> in a sidebar, a logo in an <h1> named like
  the site), so it is trusted only if it holds most of the page's prose (outside chrome and menus); if not,
  it must hold most of what trafilatura finds on the whole page, or that must be mostly menu (then the block
  is the page's notice and trafilatura's result the menu around it). Else the whole page wins.

Pages with neither get trafilatura on the whole page, and a result there that is short or mostly menu (link
text, link-led list items) is questioned: trafilatura's fallback extractors and trafilatura on the page
without its menus are tried too. trafilatura is CPU-bound pure Python, so the crawler calls this in worker
processes.
"""

from __future__ import annotations

import re

import lxml.html
import trafilatura
from lxml import etree

from .shingles import shingles

EXTRACTOR = f"trafilatura-{trafilatura.__version__}+region"
# A whole-page result this short, or with more than this share of menu text, is questioned.
FALLBACK_BELOW_CHARS = 100
MENU_SHARE_LIMIT = 0.5
# The title heading's block must hold this much text besides the heading to count as the main region,
# and this share of the page's prose, or of the word 3-grams of trafilatura's whole-page text, to be kept.
REGION_MIN_CHARS = 200
TITLE_BLOCK_SHARE = 0.5
# A declared region is narrowed to the block its title heading opens if that block holds this share of the
# region's prose, and this many times as much prose as the text it leaves out.
PROSE_SHARE = 0.8
PROSE_OVER_LEFT_OUT = 2
_DECLARED = etree.XPath("//main | //*[@role='main'] | //*[@itemprop='articleBody']")
_ARTICLE = etree.XPath("//article")
_H1 = etree.XPath("//h1[not(ancestor::a)]")
# Page chrome by tag and ARIA role: never part of the main text, so dropped from a region and not counted.
_CHROME = etree.XPath(
    ".//nav | .//aside | .//footer | .//form | .//header[not(.//h1)] | .//script | .//style"
    " | .//*[@role='navigation' or @role='complementary' or @role='contentinfo' or @role='search']"
)
_PARSER = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True)
_WORDS = re.compile(r"\w+")


def _tree(html: str) -> lxml.html.HtmlElement | None:
    try:
        return lxml.html.document_fromstring(html.encode("utf-8", "surrogatepass"), parser=_PARSER)
    except (etree.ParserError, ValueError):
        return None


def _chars(element: etree._Element) -> int:
    """Characters of text in `element` outside chrome."""
    chrome = sum(len(c.text_content()) for c in _CHROME(element))
    return len(element.text_content()) - chrome


def _norm(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))


def title_heading(tree: lxml.html.HtmlElement) -> etree._Element | None:
    """The page's own <h1>: the one that repeats the <title> (a logo in an <h1> does not), else a lone one."""
    title = _norm(tree.findtext(".//title") or "")
    headings = [h for h in _H1(tree) if _norm(h.text_content())]
    matching = [h for h in headings if _norm(h.text_content()) in title]
    return (matching or (headings if len(headings) == 1 else [None]))[0]


def title_region(h1: etree._Element | None) -> etree._Element | None:
    """The block that the title heading opens: the first ancestor of `h1` holding real text besides it."""
    if h1 is None:
        return None
    own, node = len(h1.text_content()), h1.getparent()
    while node is not None and node.tag != "body" and _chars(node) - own < REGION_MIN_CHARS:
        node = node.getparent()
    return node if node is not None and node.tag != "body" else None


def declared_region(tree: lxml.html.HtmlElement) -> etree._Element | None:
    """The region the page declares main: <main>, role=main or articleBody with text, else a lone <article>."""
    declared = [r for r in _DECLARED(tree) if _chars(r) > 0]
    if declared:
        return declared[0]
    articles = _ARTICLE(tree)
    return articles[0] if len(articles) == 1 else None


def _drop_chrome(region: etree._Element) -> etree._Element:
    """`region` without the chrome inside it (a related-stories <aside>, a share bar's <nav>)."""
    for element in _CHROME(region):
        if element.getparent() is not None:  # not inside chrome dropped already
            element.drop_tree()
    return region


def _prose(root: etree._Element, skip: frozenset = frozenset()) -> dict[etree._Element, int]:
    """{element: characters of paragraph text outside links in it} over `root`, not counting <p>s inside `skip`."""
    prose: dict[etree._Element, int] = {}
    for p in root.iter("p"):
        chars = len(p.text_content()) - sum(len(a.text_content()) for a in p.iter("a"))
        path = [p]
        while chars > 0 and path[-1] is not root:
            path.append(path[-1].getparent())
        if chars > 0 and skip.isdisjoint(path):
            for element in path:
                prose[element] = prose.get(element, 0) + chars
    return prose


def holds_prose(region: etree._Element, tree: lxml.html.HtmlElement) -> bool:
    """Whether `region` holds most of the page's prose (paragraph text outside links, chrome and menus)."""
    body = tree.find("body")
    prose = _prose(body, frozenset(_CHROME(body)) | frozenset(_menu_items(tree))) if body is not None else {}
    return prose.get(region, 0) >= TITLE_BLOCK_SHARE * prose.get(body, 0)


def narrowed(region: etree._Element, h1: etree._Element | None) -> etree._Element:
    """The block of `region` that its title heading opens: the heading's first ancestor with most of the prose.

    It must leave out little text besides its prose, so that a contents page's list beside its intro stays.
    """
    if h1 is None or region not in h1.iterancestors():
        return region
    prose = _prose(region)
    total, node = prose.get(region, 0), h1.getparent()
    if not total:
        return region
    while node is not region and prose.get(node, 0) < PROSE_SHARE * total:
        node = node.getparent()
    left_out = len(region.text_content()) - len(node.text_content())  # chrome is gone: all text counts
    return node if PROSE_OVER_LEFT_OUT * left_out <= prose.get(node, 0) else region


def main_region(tree: lxml.html.HtmlElement) -> tuple[etree._Element | None, bool]:
    """(the page's main region or None, whether it is trusted), with chrome inside the region dropped.

    A declared region is trusted, and so is a title block that holds most of the page's prose; any other
    title block is checked against trafilatura's whole-page text.
    """
    h1 = title_heading(tree)
    declared = declared_region(tree)
    if declared is not None:
        return narrowed(_drop_chrome(declared), h1), True
    region = title_region(h1)
    if region is None:
        return None, False
    trusted = holds_prose(region, tree)
    return _drop_chrome(region), trusted


def _isolate(region: etree._Element) -> lxml.html.HtmlElement:
    """A new document holding only `region`, as an <article> with its links unwrapped (so lists of links stay)."""
    region.tag = "article"
    etree.strip_tags(region, "a")
    doc = lxml.html.Element("html")
    etree.SubElement(doc, "body").append(region)
    return doc


def _trafilatura(tree: lxml.html.HtmlElement, url: str | None, fast: bool) -> str:
    options = dict(url=url, include_tables=True, include_comments=False, include_links=False, deduplicate=False)
    return trafilatura.extract(tree, fast=fast, **options) or ""


def _menu_items(tree: lxml.html.HtmlElement) -> list[etree._Element]:
    """List items that open with a link: the stuff of menus (and of contents pages, which have a region)."""
    return [li for li in tree.iter("li") if len(li) and li[0].tag == "a" and not (li.text or "").strip()]


def menu_share(text: str, tree: lxml.html.HtmlElement) -> float:
    """The share of `text`'s lines, by characters, that are link text or the text of a link-led list item."""
    pieces = {_norm(a.text_content()) for a in tree.iter("a")}
    for li in _menu_items(tree):
        pieces.update(_norm(part.text_content()) for part in (li, *li))
    lines = [_norm(line) for line in text.splitlines()]
    total = sum(len(line) for line in lines)
    return sum(len(line) for line in lines if line in pieces) / total if total else 0.0


def _without_menus(tree: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    for li in _menu_items(tree):
        li.drop_tree()
    return tree


def _whole_page(html: str, url: str | None, text: str) -> str:
    """`text`, trafilatura's result on the whole page, unless it is short or mostly menu.

    The alternatives are trafilatura's fallback extractors and trafilatura on the page without its menus;
    the least menu-like alternative of some length wins, else the longest.
    """
    reference = _tree(html)  # trafilatura prunes the tree it is given: keep one for measuring
    if len(text) >= FALLBACK_BELOW_CHARS and menu_share(text, reference) <= MENU_SHARE_LIMIT:
        return text
    fallback = _trafilatura(_tree(html), url, fast=False)
    candidates = [text, fallback, _trafilatura(_without_menus(_tree(html)), url, fast=True)]
    long_enough = [c for c in candidates if len(c) >= FALLBACK_BELOW_CHARS]
    if not long_enough:
        return max(candidates, key=len)
    return min(long_enough, key=lambda c: (menu_share(c, reference), -len(c)))


def block_agrees(text: str, page: str, html: str) -> bool:
    """Whether a title block's `text` holds most of `page`, trafilatura's whole-page text, or that is a menu."""
    whole = shingles(page)
    held = sum((shingles(text) & whole).values()) / sum(whole.values()) if whole else 1.0
    return held >= TITLE_BLOCK_SHARE or menu_share(page, _tree(html)) > MENU_SHARE_LIMIT


def extract_page(html: str, url: str | None = None) -> tuple[str, str]:
    """(title, main text) of one HTML page; ('', '') for an empty or unparseable document."""
    tree = _tree(html) if html.strip() else None
    if tree is None:
        return "", ""
    title = " ".join((tree.findtext(".//title") or "").split())
    region, trusted = main_region(tree)
    text = _trafilatura(_isolate(region), url, fast=True) if region is not None else ""
    if trusted and len(text) >= FALLBACK_BELOW_CHARS:
        return title, text
    page = _trafilatura(_tree(html), url, fast=True)
    if len(text) >= FALLBACK_BELOW_CHARS and block_agrees(text, page, html):
        return title, text
    return title, _whole_page(html, url, page)
