"""A generated, fictional, offline encyclopedia and a local server for it, for crawler and QA tests.

    from wdtk.crawler.sitegen import build_site, start_server, load_truth
    summary = build_site(Path("site"), pages=10_000, seed=0)   # same (pages, seed) -> byte-identical files
    server, base_url = start_server(Path("site"))              # port 0 = any free port
    ...
    server.shutdown()

Site layout (every .html page has the same chrome: <header> with search form and top nav, <aside class="sidebar">
with Navigation / Featured articles / Tools, optional Article/Talk tabs, <footer> with licence and privacy links;
the page's own content is inside <main id="content"><article>):

    /index.html                      main page: counts, A-Z bar, selected article, largest categories
    /about.html                      about page; links an off-site redirect (/out/mirror)
    /index/<L>.html, /index/<L>-<k>.html   alphabetical index, 200 entries a page
    /category/<Title>.html           members sharing one (relation, object), e.g. "People born in X"
    /wiki/<Slug>.html                one article per entity: h1, infobox, prose, lists and tables, See also,
                                     External links, categories
    /private/talk/<Slug>.html        talk pages (robots.txt disallows /private/)
    /files/*.csv|*.png|*.pdf         census tables, maps, annual reports
    /data/export-<n>                 JSON exports without an extension (served as application/json)
    /robots.txt, /_redirects.json    robots rules; redirect map {path: target} the server answers with 301

Traps: on-site 301s from alternative titles (one a two-hop chain), 301s to http://offsite.invalid, absolute links
to https://records.offsite.invalid, red links that 404, a missing PDF, #fragment links, and articles linked as
X.html?lang=en&view=full and X.html?view=full&lang=en. The server ignores query strings.

Ground truth, under /_truth/ (disallowed by robots.txt); `load_truth(dir)` returns site.json's keys plus the five
lists below:

    site.json        seed, page_count, page_kinds {kind: n}, site_name, chrome_strings, template_chrome, featured,
                     robots_disallow, redirects [{from, to, final, offsite}], broken_links [{path, linked_from}],
                     files [{path, kind, content_type, entity, linked_from}], url_variants [{target, hrefs}],
                     offsite_links [{href, linked_from}]
    entities.json    [{id, type, name, url, attributes {relation: value}, talk_url?, categories [paths]}];
                     entity-valued attributes hold entity ids, dates are ISO strings, participant is a list
    facts.json       [{id, subject, relation, object, object_type (entity|date|year|number|text), object_text,
                     pages}]; object_text is the object exactly as written on each page in `pages`
    pages.json       [{path, kind (main|about|index|category|article|talk|contents|docs|modindex|portal), template,
                     title, entity?, links}]; links are the page's distinct <a href> values in document order,
                     exactly as written (the Handbook's are relative; fragment-only hrefs get the page path)
    categories.json  [{path, title, subject_type, relation, object, object_text, members [entity ids]}]
    texts.json       [{path, text}]: each page's true main text, a line per block (what extraction should give)

Beside the encyclopedia: the Handbook under /docs/ (Sphinx-style documentation without <main>: contents pages,
topics with admonitions and definition lists, API pages, a module index) and borough notices under /notices/
(a short notice inside a page that is mostly menu); pages.json gives every page's kind and template, site.json
the chrome strings of each template. eval.jsonl holds 30 GAIA-style questions {task_id, Question, Final answer,
Level} with one answer each, for `wdtk eval` (robots.txt keeps crawlers off it).
"""

from .build import build_site
from .serve import serve, start_server
from .truth import CHROME_STRINGS, load_truth

__all__ = ["CHROME_STRINGS", "build_site", "load_truth", "serve", "start_server"]
