"""The navigation chrome around every page: head, header with search, sidebar, page tabs and footer."""

import re
import zlib

from .plan import Plan

SITE_NAME = "The Orrery Compendium"
LICENCE_LINE = "Text is available under the Orrery Open Licence 2.0; additional terms may apply."
FICTION_LINE = "All people, places and events described on this site are fictional."
# Distinctive strings that appear only in the encyclopedia's chrome, never inside <main>; extraction should drop them.
WIKI_CHROME_STRINGS = (
    "Jump to content",
    "Search the Compendium",
    "Featured articles",
    LICENCE_LINE,
    FICTION_LINE,
    "Privacy policy",
)
STYLE = (
    "body{font-family:sans-serif;margin:0}#page{display:flex}.sidebar{width:11em;padding:1em;font-size:90%}"
    "main{flex:1;padding:1em 2em;max-width:60em}.infobox{float:right;border:1px solid #aaa;margin:0 0 1em 1em}"
    ".wikitable{border-collapse:collapse}.wikitable td,.wikitable th{border:1px solid #aaa;padding:.2em .4em}"
    "a.new{color:#ba0000}footer{border-top:1px solid #aaa;padding:1em;font-size:85%}"
)
ANCHOR_HREF = re.compile(r'<a\s[^>]*?href="([^"]*)"')


class Chrome:
    """Wraps main content in the site's page template; only the random-page link and tabs vary per page."""

    def __init__(self, plan: Plan) -> None:
        self.urls = [e.url for e in plan.articles]
        first_index = plan.index_pages[0].path
        featured = "\n".join(f'<li><a href="{plan.world.by_id[i].url}">{plan.world.by_id[i].name}</a></li>'
                             for i in plan.featured)  # fmt: skip
        self.header = HEADER.format(site=SITE_NAME, index=first_index)
        self.sidebar = SIDEBAR.replace("{index}", first_index).replace("{featured}", featured)
        self.footer = FOOTER.format(licence=LICENCE_LINE, fiction=FICTION_LINE, site=SITE_NAME)

    def page(self, path: str, title: str, kind: str, main: str, tabs: str = "") -> str:
        """A complete HTML document."""
        random_url = self.urls[zlib.crc32(path.encode()) % len(self.urls)]
        return (
            f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{title} - {SITE_NAME}</title>\n"
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<style>{STYLE}</style>\n</head>\n'
            f'<body class="page-{kind}">\n{self.header}\n<div id="page">\n'
            f"{self.sidebar.replace('{random}', random_url)}\n"
            f'<div id="content-wrapper">\n{tabs}<main id="content">\n<article class="page-body">\n{main}\n'
            f"</article>\n</main>\n</div>\n</div>\n{self.footer}\n</body>\n</html>\n"
        )


def tabs(article_url: str, talk_url: str, selected: str) -> str:
    """The Article/Talk tabs shown above pages that have a talk page."""
    items = []
    for label, href in (("Article", article_url), ("Talk", talk_url)):
        css = ' class="selected"' if label == selected else ""
        items.append(f'<li{css}><a href="{href}">{label}</a></li>')
    return f'<nav class="page-tabs" aria-label="Page views"><ul>{"".join(items)}</ul></nav>\n'


def out_links(html: str, path: str) -> list[str]:
    """Distinct anchor hrefs in document order; fragment-only hrefs are made site-absolute."""
    seen: dict[str, None] = {}
    for href in ANCHOR_HREF.findall(html):
        seen[path + href if href.startswith("#") else href] = None
    return list(seen)


HEADER = """<header id="site-header">
<a class="skip-link" href="#content">Jump to content</a>
<a class="site-name" href="/index.html">{site}</a>
<form class="search" action="/search" method="get" role="search">
<label for="search-input">Search the Compendium</label>
<input id="search-input" type="search" name="q" placeholder="Search the Compendium">
<button type="submit">Search</button>
</form>
<nav class="top-nav" aria-label="Top">
<ul><li><a href="/index.html">Main page</a></li><li><a href="{index}">A-Z index</a></li>\
<li><a href="/about.html">About</a></li><li><a href="/about.html#contact">Contact</a></li></ul>
</nav>
</header>"""

SIDEBAR = """<aside id="sidebar" class="sidebar">
<nav aria-label="Navigation">
<h2>Navigation</h2>
<ul>
<li><a href="/index.html">Main page</a></li>
<li><a href="{index}">Index of articles</a></li>
<li><a href="{random}">Random page</a></li>
<li><a href="/about.html">About the site</a></li>
</ul>
</nav>
<nav aria-label="Featured">
<h2>Featured articles</h2>
<ul>
{featured}
</ul>
</nav>
<nav aria-label="Tools">
<h2>Tools</h2>
<ul>
<li><a href="/about.html#statistics">Site statistics</a></li>
<li><a href="/about.html#citing">Cite this page</a></li>
</ul>
</nav>
</aside>"""

FOOTER = """<footer id="footer">
<p class="licence">{licence}</p>
<p class="fiction">{fiction}</p>
<p class="copyright">&copy; {site} contributors.</p>
<ul class="footer-links">
<li><a href="/about.html#privacy">Privacy policy</a></li>
<li><a href="/about.html#disclaimer">Disclaimers</a></li>
<li><a href="/about.html#licence">Licence</a></li>
</ul>
</footer>"""
