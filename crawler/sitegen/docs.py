"""The Handbook: a Sphinx-style documentation section, with the page kinds real documentation sites add.

Contents pages that are mostly nested link lists, topic pages with admonition boxes and definition lists,
API pages made of definition lists, and a module index table; every page wrapped in the old Sphinx layout
(`docs_chrome.py`): no <main>, <article> or role=main, a sidebar with previous/next topic links and a
navigation bar above and below the body.
"""

import posixpath
import random
from dataclasses import dataclass, field

from .names import NameGen

DOCS = "/docs"
TITLE = "Orrery Toolkit Handbook"
CHAPTERS = ("Getting started", "Reading the registers", "Places and maps", "Publishing records",
            "Working offline", "Administration", "Advanced topics", "Troubleshooting")  # fmt: skip
VERBS = ("Reading", "Merging", "Indexing", "Resolving", "Validating", "Exporting", "Rendering", "Fetching",
         "Checking", "Sorting", "Filtering", "Linking", "Matching", "Cleaning", "Annotating", "Comparing")  # fmt: skip
NOUNS = ("registers", "ledgers", "gazetteers", "parish rolls", "census tables", "catalogues", "atlases",
         "chronicles", "surveys", "archives", "index cards", "charters", "deeds", "almanacs", "timetables",
         "map sheets")  # fmt: skip
HEADINGS = ("Overview", "Before you begin", "Options", "Examples", "Limits", "Common problems", "How it works",
            "Performance", "Compatibility", "Next steps")  # fmt: skip
SENTENCES = (
    "The toolkit reads {noun} one entry at a time, so memory use stays flat on large collections.",
    "Each call to {func} returns a new object; the input is never changed in place.",
    "Entries that cannot be parsed are reported with their line number and skipped.",
    "Use {module} when the {noun} come from more than one archive.",
    "The default settings suit collections of up to a few hundred thousand entries.",
    "Dates are normalised to the form used throughout the Compendium before they are compared.",
    "Names are matched case-insensitively, and accents are kept.",
    "The {word} format stores one entry per line with a fixed set of columns.",
    "Results are sorted by the first column unless another order is requested.",
    "A summary of what was read, kept and dropped is printed at the end of every run.",
    "Running {func} twice on the same input gives the same output, byte for byte.",
    "The {word} option changes how gaps between entries are reported.",
    "Older {noun} sometimes repeat an entry under two spellings; both are kept and linked.",
    "Large jobs can be split by letter and merged afterwards with {func}.",
    "Every record carries the name of the archive it came from.",
    "Progress is shown while the job runs and can be turned off for scripts.",
)
ADMONITIONS = (
    ("note", "Note", "The first run builds a local index, which takes longer than later runs."),
    ("note", "Note", "Paths given on the command line are relative to the current directory."),
    ("warning", "Warning", "Writing into a folder that already holds {noun} replaces them without asking."),
    ("warning", "Warning", "Do not edit the index files by hand: {func} checks them and refuses a damaged index."),
    ("tip", "Tip", "Pass a small sample first to check the column layout before a long run."),
    ("seealso", "See also", "The reference pages of {module} list every option with its default."),
)
TERMS = (
    ("entry", "One line of a register: a name, a date and the archive that holds the original."),
    ("parish", "The smallest unit of the old registers; most places belong to exactly one."),
    ("folio", "A numbered leaf of a bound register, cited together with the volume."),
    ("gazetteer", "A list of place names with their kinds and the places that contain them."),
    ("shelfmark", "The code under which an archive keeps a volume."),
    ("transcription", "The typed copy of an entry, checked against the original by a second reader."),
    ("variant", "Another spelling of a name that refers to the same person or place."),
    ("census district", "The area counted by one enumerator in a census year."),
    ("concordance", "A table that maps the numbering of one edition onto another."),
    ("provenance", "Where a record came from and who copied it, kept with every entry."),
)
MODULE_WORDS = ("atlas", "census", "chronicle", "gazetteer", "ledger", "parish", "survey", "archive", "charter",
                "almanac", "deeds", "timetable", "catalogue", "registry", "folio", "concordance")  # fmt: skip
FUNC_VERBS = ("load", "read", "write", "merge", "index", "resolve", "validate", "export", "render", "match")
FUNC_NOUNS = ("entries", "names", "dates", "sheet", "volume", "table", "record", "places", "variants")


@dataclass
class DocPage:
    """One Handbook page; contents pages hold their children, topic pages their section headings."""

    path: str
    kind: str  # contents | docs | modindex
    title: str
    parent: "DocPage | None" = None
    children: list["DocPage"] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    module: str = ""
    summary: str = ""


MIN_DOCS = 6  # index, a chapter with one topic, the API contents with one module, the module index


def docs_page_count(pages: int) -> int:
    """How many Handbook pages a site of `pages` pages has: about 5%, at least 6, at most 400."""
    return min(400, max(6, round(pages * 0.05)))


def plan_docs(total: int, seed: int) -> list[DocPage]:
    """Exactly `total` pages in reading order: index, chapters with their topics, API reference, module index."""
    rng = random.Random(f"wdtk-sitegen-docs:{seed}:{total}")
    names = NameGen(rng)
    modules = max(1, round(total * 0.3))
    chapters = max(1, min(round(total * 0.15), total - modules - 3))
    topics = total - 3 - chapters - modules  # index, API contents, module index
    root = DocPage(f"{DOCS}/index.html", "contents", TITLE)
    order = [root]
    titles = iter(unique_titles(rng, topics))
    for c in range(chapters):
        title = CHAPTERS[c] if c < len(CHAPTERS) else f"{CHAPTERS[c % len(CHAPTERS)]}, part {c // len(CHAPTERS) + 1}"
        slug = title.lower().replace(",", "").replace(" ", "-")
        chapter = DocPage(f"{DOCS}/{slug}/index.html", "contents", title, root, summary=rng.choice(SENTENCES))
        root.children.append(chapter)
        order.append(chapter)
        for _ in range(topics // chapters + (c < topics % chapters)):
            topic_title = next(titles)
            sections = rng.sample(HEADINGS, rng.randint(2, 4))
            page = DocPage(f"{DOCS}/{slug}/{topic_title.lower().replace(' ', '-')}.html", "docs", topic_title,
                           chapter, sections=sections)  # fmt: skip
            chapter.children.append(page)
            order.append(page)
    api = DocPage(f"{DOCS}/api/index.html", "contents", "API reference", root)
    root.children.append(api)
    order.append(api)
    for word in module_names(names, modules):
        page = DocPage(f"{DOCS}/api/orrery.{word}.html", "docs", f"orrery.{word}", api, module=f"orrery.{word}",
                       summary=f"{rng.choice(VERBS)} {rng.choice(NOUNS)} from the {word} collections.")  # fmt: skip
        page.sections = [f"orrery.{word}.{f}" for f in function_names(rng)]
        api.children.append(page)
        order.append(page)
    order.append(DocPage(f"{DOCS}/py-modindex.html", "modindex", "Python Module Index", root))
    return order


def unique_titles(rng: random.Random, n: int) -> list[str]:
    """`n` distinct topic titles such as 'Merging ledgers'."""
    pairs = [f"{v} {o}" for v in VERBS for o in NOUNS]
    rng.shuffle(pairs)
    return [pairs[i % len(pairs)] + (f" {i // len(pairs) + 1}" if i >= len(pairs) else "") for i in range(n)]


def module_names(names: NameGen, n: int) -> list[str]:
    """Distinct module words, the fixed list first and generated words after, in index order."""
    words = list(MODULE_WORDS[:n]) + [names.fresh().lower() for _ in range(n - len(MODULE_WORDS))]
    return sorted(words)


def function_names(rng: random.Random) -> list[str]:
    """Three to five distinct function names of one module."""
    pairs = rng.sample([f"{v}_{n}" for v in FUNC_VERBS for n in FUNC_NOUNS], rng.randint(3, 5))
    return sorted(pairs)


def rel(src: str, dst: str) -> str:
    """The relative href from page `src` to page `dst`, as Sphinx writes them."""
    fragment = ""
    if "#" in dst:
        dst, fragment = dst.split("#", 1)
        fragment = "#" + fragment
    return posixpath.relpath(dst, posixpath.dirname(src)) + fragment


def anchor(heading: str) -> str:
    """Sphinx's id for a section heading."""
    return heading.lower().replace(" ", "-").replace(".", "-")


class DocsWriter:
    """Renders the body (the main text) of each Handbook page."""

    def __init__(self, order: list[DocPage], seed: int) -> None:
        self.order, self.seed = order, seed
        self.modules = [p for p in order if p.module]

    def body(self, page: DocPage) -> str:
        """The page's content, as it sits inside <div class="body">."""
        rng = random.Random(f"wdtk-sitegen-docs-page:{self.seed}:{page.path}")
        if page.kind == "modindex":
            return self.modindex(page)
        if page.kind == "contents":
            return self.contents(page, rng)
        return self.module_page(page, rng) if page.module else self.topic(page, rng)

    def words(self, rng: random.Random) -> dict:
        """Values for the sentence templates."""
        module = rng.choice(self.modules)
        return {"noun": rng.choice(NOUNS), "module": f"<code>{module.module}</code>",
                "func": f"<code>{rng.choice(module.sections).rsplit('.', 1)[1]}()</code>",
                "word": rng.choice(MODULE_WORDS)}  # fmt: skip

    def paragraph(self, rng: random.Random, count: int) -> str:
        """A paragraph of `count` template sentences."""
        return "<p>" + " ".join(s.format(**self.words(rng)) for s in rng.sample(SENTENCES, count)) + "</p>"

    def contents(self, page: DocPage, rng: random.Random) -> str:
        """A contents page: a heading, a short introduction and a nested list of links (two levels)."""
        intro = page.summary.format(**self.words(rng)) or f"This handbook explains how to use the {TITLE[:-9]}."
        items = []
        for child in page.children:
            sub = [f'<li class="toctree-l2"><a class="reference internal" href="{rel(page.path, h)}">{text}</a></li>'
                   for h, text in self.entries(child)]  # fmt: skip
            nested = "<ul>\n" + "\n".join(sub) + "\n</ul>" if sub else ""
            items.append(f'<li class="toctree-l1"><a class="reference internal" href="{rel(page.path, child.path)}">'
                         f"{child.title}</a>{nested}</li>")  # fmt: skip
        toc = '<div class="toctree-wrapper compound">\n<ul>\n' + "\n".join(items) + "\n</ul>\n</div>"
        head = f'<h1>{page.title}<a class="headerlink" href="#" title="Permalink to this headline">¶</a></h1>'
        return f'<div class="section" id="{anchor(page.title)}">\n{head}\n<p>{intro}</p>\n{toc}\n</div>'

    @staticmethod
    def entries(page: DocPage) -> list[tuple[str, str]]:
        """(href, text) of what a contents page lists under `page`: its children, else its sections."""
        if page.children:
            return [(c.path, c.title) for c in page.children]
        if page.module:
            return [(f"{page.path}#{s}", f"{s}()") for s in page.sections]
        return [(f"{page.path}#{anchor(s)}", s) for s in page.sections]

    def topic(self, page: DocPage, rng: random.Random) -> str:
        """A topic: introduction, then sections with paragraphs, an admonition and a definition list."""
        parts = [f"<h1>{page.title}</h1>", self.paragraph(rng, 2)]
        boxes = rng.sample(range(len(page.sections)), 1 + (len(page.sections) > 2))
        glossary = rng.randrange(len(page.sections))
        for i, heading in enumerate(page.sections):
            parts += [f'<div class="section" id="{anchor(heading)}">', f"<h2>{heading}</h2>",
                      self.paragraph(rng, rng.randint(2, 3))]  # fmt: skip
            if i in boxes:
                css, label, text = rng.choice(ADMONITIONS)
                parts.append(f'<div class="admonition {css}">\n<p class="first admonition-title">{label}</p>\n'
                             f'<p class="last">{text.format(**self.words(rng))}</p>\n</div>')  # fmt: skip
            if i == glossary:
                terms = rng.sample(TERMS, rng.randint(3, 5))
                items = "\n".join(f"<dt>{t}</dt>\n<dd><p>{d}</p></dd>" for t, d in terms)
                parts.append(f'<dl class="glossary docutils">\n{items}\n</dl>')
            parts.append("</div>")
        return '<div class="section">\n' + "\n".join(parts) + "\n</div>"

    def module_page(self, page: DocPage, rng: random.Random) -> str:
        """An API page: the module's purpose, then one definition list entry per function."""
        parts = [f'<h1><code class="xref">{page.module}</code> &#8212; {page.summary.rstrip(".")}</h1>',
                 self.paragraph(rng, 2)]  # fmt: skip
        for qualified in page.sections:
            name = qualified.rsplit(".", 1)[1]
            args = ", ".join(f"<em>{a}</em>" for a in rng.sample(("path", "entries", "limit=None", "strict=True",
                                                                   "encoding='utf-8'", "archive"), 2))  # fmt: skip
            doc = SENTENCES[rng.randrange(len(SENTENCES))].format(**self.words(rng))
            parts.append(
                f'<dl class="function">\n<dt id="{qualified}"><code class="descclassname">{page.module}.</code>'
                f'<code class="descname">{name}</code>({args})</dt>\n<dd><p>{doc}</p>\n'
                f"<p>Returns the {rng.choice(NOUNS)} found, in input order.</p></dd>\n</dl>"
            )
        return f'<div class="section" id="module-{page.module}">\n' + "\n".join(parts) + "\n</div>"

    def modindex(self, page: DocPage) -> str:
        """Sphinx's module index: a letter bar and a table of module links with one-line descriptions."""
        letters = sorted({m.module.split(".")[1][0] for m in self.modules})
        bar = " | ".join(f'<a href="#cap-{c}"><strong>{c}</strong></a>' for c in letters)
        rows = ['<tr class="pcap"><td></td><td>&#160;</td><td></td></tr>']
        for letter in letters:
            rows.append(f'<tr class="cap" id="cap-{letter}"><td></td><td><strong>{letter}</strong></td><td></td></tr>')
            for m in (m for m in self.modules if m.module.split(".")[1].startswith(letter)):
                rows.append(f'<tr><td></td><td><a href="{rel(page.path, m.path)}"><code class="xref">{m.module}'
                            f"</code></a></td><td><em>{m.summary}</em></td></tr>")  # fmt: skip
        table = '<table class="indextable modindextable">\n' + "\n".join(rows) + "\n</table>"
        return f'<h1>{page.title}</h1>\n<div class="modindex-jumpbox">{bar}</div>\n{table}'
