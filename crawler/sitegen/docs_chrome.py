"""The old Sphinx "classic" layout around Handbook pages: related bars, a sidebar, a footer, and no <main>.

Sphinx themes before role="main" wrapped the body in plain divs (document > documentwrapper > bodywrapper >
body) and put the sidebar, with the previous and next topics' titles, after it in the same document div:
what extractors meet on older documentation sites.
"""

from .docs import DOCS, TITLE, DocPage, DocsWriter, rel

DOCS_FOOTER = "Built with the Orrery documentation generator 4.2."
# Strings only the docs chrome holds; extraction must drop them.
DOCS_CHROME_STRINGS = ("Handbook navigation", "Previous topic", "Next topic", "Quick search",
                       "Report a problem with this page", DOCS_FOOTER)  # fmt: skip


def docs_html(page: DocPage, body: str, prev: DocPage | None, nxt: DocPage | None) -> str:
    """A complete Handbook document."""
    related = related_bar(page, prev, nxt)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{page.title} &#8212; {TITLE}</title>\n</head>\n<body>\n{related}\n"
        f'<div class="document">\n<div class="documentwrapper">\n<div class="bodywrapper">\n<div class="body">\n'
        f"{body}\n</div>\n</div>\n</div>\n{sidebar(page, prev, nxt)}\n"
        f'<div class="clearer"></div>\n</div>\n{related}\n'
        f'<div class="footer">&#169; Copyright The Orrery Compendium contributors. {DOCS_FOOTER}</div>\n'
        "</body>\n</html>\n"
    )


def related_bar(page: DocPage, prev: DocPage | None, nxt: DocPage | None) -> str:
    """The navigation bar: modules, next and previous on the right; the breadcrumb trail on the left."""
    items = [f'<li class="right" style="margin-right: 10px"><a href="{rel(page.path, f"{DOCS}/py-modindex.html")}" '
             'title="Python Module Index">modules</a></li>']  # fmt: skip
    for label, other in (("next", nxt), ("previous", prev)):
        if other:
            items.append(f'<li class="right"><a href="{rel(page.path, other.path)}" title="{other.title}">{label}</a>'
                         " |</li>")  # fmt: skip
    items.append('<li><a href="/index.html">Orrery Compendium</a> &#187;</li>')
    trail, up = [], page.parent
    while up:
        trail.insert(0, f'<li><a href="{rel(page.path, up.path)}">{up.title}</a> &#187;</li>')
        up = up.parent
    items += trail
    return '<div class="related">\n<h3>Handbook navigation</h3>\n<ul>\n' + "\n".join(items) + "\n</ul>\n</div>"


def sidebar(page: DocPage, prev: DocPage | None, nxt: DocPage | None) -> str:
    """The sidebar: this page's table of contents, previous and next topic, a problem link, quick search."""
    local = "".join(f'<li><a class="reference internal" href="{href.split(page.path, 1)[-1] or "#"}">{text}</a></li>'
                    for href, text in DocsWriter.entries(page) if href.startswith(page.path + "#"))  # fmt: skip
    toc = f'<ul>\n<li><a class="reference internal" href="#">{page.title}</a>'
    toc += f"<ul>\n{local}\n</ul></li>\n</ul>" if local else "</li>\n</ul>"
    parts = [f'<h3><a href="{rel(page.path, f"{DOCS}/index.html")}">Table of Contents</a></h3>', toc]
    for label, other in (("Previous topic", prev), ("Next topic", nxt)):
        if other:
            parts += [f"<h4>{label}</h4>", f'<p class="topless"><a href="{rel(page.path, other.path)}" '
                      f'title="{label.split()[0].lower()} chapter">{other.title}</a></p>']  # fmt: skip
    parts += ["<h3>This Page</h3>", '<ul class="this-page-menu"><li><a href="/about.html#contact" rel="nofollow">'
              "Report a problem with this page</a></li></ul>"]  # fmt: skip
    parts.append('<div id="searchbox">\n<h3>Quick search</h3>\n<form class="search" action="/search" method="get">'
                 '<input type="text" name="q"><input type="submit" value="Go"></form>\n</div>')  # fmt: skip
    return '<div class="sphinxsidebar">\n<div class="sphinxsidebarwrapper">\n' + "\n".join(parts) + "\n</div>\n</div>"
