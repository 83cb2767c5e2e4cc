"""Main-text extraction: the main content of a page, without navigation chrome.

trafilatura does the extraction (it keeps lists and tables that lighter extractors drop; on the generated site
resiliparse kept 80% of the stated facts). Run on a whole page it goes wrong in three ways that real sites show:
it drops content made of links (contents pages, module indexes, "See also" lists) by link density; on pages
without a <main> or <article> it loses headings and lets sidebar text in; and on a page that is mostly menu it
returns the menu. So we first find the page's main region, the one it declares (<main>, role=main, a lone
<article>) or else the block under its title heading, and run trafilatura on that region alone, with its links
unwrapped: inside the main region a list of links is content. Only pages with no such region get trafilatura on
the whole page, and a result there that is short or mostly menu (link text, link-led list items) is questioned:
trafilatura's fallback extractors and trafilatura on the page without its menus are tried too. trafilatura is
CPU-bound pure Python, so the crawler calls this in worker processes.
"""

from __future__ import annotations

import re

import lxml.html
import trafilatura
from lxml import etree

EXTRACTOR = f"trafilatura-{trafilatura.__version__}+region"
# A whole-page result this short, or with more than this share of menu text, is questioned.
FALLBACK_BELOW_CHARS = 100
MENU_SHARE_LIMIT = 0.5
# The title heading's block must hold this much text besides the heading to count as the main region.
REGION_MIN_CHARS = 200
_DECLARED = etree.XPath("//main | //*[@role='main'] | //*[@itemprop='articleBody']")
_ARTICLE = etree.XPath("//article")
_H1 = etree.XPath("//h1[not(ancestor::a)]")
# Page chrome by tag and ARIA role: never part of the main text, so not counted when sizing a region.
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


def title_region(tree: lxml.html.HtmlElement) -> etree._Element | None:
    """The block that the page's title heading opens: the first ancestor of the <h1> holding real text besides it.

    The <h1> that repeats the <title> is the page's own heading (a logo in an <h1> is not); content follows it.
    """
    title = _norm(tree.findtext(".//title") or "")
    headings = [h for h in _H1(tree) if _norm(h.text_content())]
    matching = [h for h in headings if _norm(h.text_content()) in title]
    h1 = (matching or (headings if len(headings) == 1 else [None]))[0]
    if h1 is None:
        return None
    own, node = len(h1.text_content()), h1.getparent()
    while node is not None and node.tag != "body" and _chars(node) - own < REGION_MIN_CHARS:
        node = node.getparent()
    return node if node is not None and node.tag != "body" else None


def main_region(tree: lxml.html.HtmlElement) -> etree._Element | None:
    """The page's main region: declared (<main>, role=main, articleBody, a lone <article>) or under its title."""
    declared = [r for r in _DECLARED(tree) if _chars(r) > 0]
    if declared:
        return declared[0]
    articles = _ARTICLE(tree)
    return articles[0] if len(articles) == 1 else title_region(tree)


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


def _whole_page(html: str, url: str | None) -> str:
    """trafilatura on the whole page; a short result, or one that is mostly menu, is questioned.

    The alternatives are trafilatura's fallback extractors and trafilatura on the page without its menus;
    the least menu-like alternative of some length wins, else the longest.
    """
    reference = _tree(html)  # trafilatura prunes the tree it is given: keep one for measuring
    text = _trafilatura(_tree(html), url, fast=True)
    if len(text) >= FALLBACK_BELOW_CHARS and menu_share(text, reference) <= MENU_SHARE_LIMIT:
        return text
    fallback = _trafilatura(_tree(html), url, fast=False)
    candidates = [text, fallback, _trafilatura(_without_menus(_tree(html)), url, fast=True)]
    long_enough = [c for c in candidates if len(c) >= FALLBACK_BELOW_CHARS]
    if not long_enough:
        return max(candidates, key=len)
    return min(long_enough, key=lambda c: (menu_share(c, reference), -len(c)))


def extract_page(html: str, url: str | None = None) -> tuple[str, str]:
    """(title, main text) of one HTML page; ('', '') for an empty or unparseable document."""
    tree = _tree(html) if html.strip() else None
    if tree is None:
        return "", ""
    title = " ".join((tree.findtext(".//title") or "").split())
    region = main_region(tree)
    if region is not None:
        text = _trafilatura(_isolate(region), url, fast=True)
        if len(text) >= FALLBACK_BELOW_CHARS:
            return title, text
    return title, _whole_page(html, url)
