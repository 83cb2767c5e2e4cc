"""Write the whole site: every HTML page, the non-HTML files, robots.txt, redirects and the ground truth."""

import json
import random
import shutil
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from time import perf_counter

from . import pages
from .article import ArticleWriter
from .assets import ROBOTS, file_bytes
from .chrome import Chrome, out_links, tabs
from .docs import DocPage, DocsWriter
from .docs_chrome import docs_html
from .plan import Plan, new_plan
from .portal import notice_body, notice_path, portal_html
from .seeds import write_eval_split
from .traps import add_traps
from .truth import fragment_text, template_of, write_truth

MIN_PAGES, MAX_PAGES = 50, 100_000
GENERATED = ("index.html", "about.html", "robots.txt", "_redirects.json", "eval.jsonl", "wiki", "category", "index",
             "private", "files", "data", "docs", "notices", "_truth")  # fmt: skip


def build_site(out_dir: Path, pages: int, seed: int = 0, progress: Callable[[int, int], None] | None = None) -> dict:
    """Write a deterministic fictional encyclopedia of exactly `pages` HTML pages into `out_dir`; return a summary."""
    if not MIN_PAGES <= pages <= MAX_PAGES:
        raise ValueError(f"pages must be between {MIN_PAGES} and {MAX_PAGES}, got {pages}")
    started = perf_counter()
    out = Path(out_dir)
    prepare(out)
    plan = new_plan(pages, seed)
    add_traps(plan)
    writer = SiteWriter(out, plan, progress)
    writer.write_pages()
    writer.write_extras()
    write_truth(out, plan, writer.records, writer.fact_pages, writer.texts)
    write_eval_split(out, seed=seed)
    if len(writer.records) != pages:
        raise RuntimeError(f"wrote {len(writer.records)} pages, expected {pages}")
    return summary(plan, writer, round(perf_counter() - started, 3))


def prepare(out: Path) -> None:
    """Create `out`, clearing an earlier generated site there but refusing to touch anything else."""
    if out.exists() and any(out.iterdir()):
        if not (out / "_truth" / "site.json").exists():
            raise ValueError(f"{out} is not empty and does not hold a generated site")
        for name in GENERATED:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def summary(plan: Plan, writer: "SiteWriter", seconds: float) -> dict:
    """Counts describing what was written."""
    kinds = defaultdict(int)
    for record in writer.records:
        kinds[record["kind"]] += 1
    return {
        "pages": len(writer.records), "articles": kinds["article"], "categories": kinds["category"],
        "index_pages": kinds["index"], "talk_pages": kinds["talk"], "entities": len(plan.world.entities),
        "facts": len(plan.world.facts), "files": len(plan.files), "redirects": len(plan.redirects),
        "broken_links": len(plan.broken), "docs_pages": len(plan.docs), "notices": len(plan.notices),
        "bytes": writer.bytes, "seconds": seconds,
    }  # fmt: skip


class SiteWriter:
    """Renders and writes pages in a fixed order, recording links and which pages state which facts."""

    def __init__(self, out: Path, plan: Plan, progress: Callable[[int, int], None] | None) -> None:
        self.out, self.plan, self.progress = out, plan, progress
        self.chrome = Chrome(plan)
        self.records: list[dict] = []
        self.texts: list[dict] = []  # {path, text}: each page's true main text
        self.written: set[str] = set()
        self.fact_pages: dict[str, list[str]] = defaultdict(list)
        self.bytes = 0
        self.step = max(1, plan.pages // 100)
        for folder in ("wiki", "category", "index", "private/talk", "files", "data", "docs", "notices", "_truth"):
            (out / folder).mkdir(parents=True, exist_ok=True)

    def emit(self, path: str, kind: str, title: str, main: str, entity: str | None = None, tab_bar: str = "",
             facts: list[str] = (), html: str = "") -> None:  # fmt: skip
        """Wrap (unless `html` is the whole document already), write and record one page; `main` is its content."""
        if path in self.written:
            raise RuntimeError(f"two pages planned at {path}")
        self.written.add(path)
        html = html or self.chrome.page(path, title, kind, main, tab_bar)
        data = html.encode()
        target = self.out / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self.bytes += len(data)
        self.texts.append({"path": path, "text": fragment_text(main)})
        record = {"path": path, "kind": kind, "template": template_of(kind), "title": title}
        if entity:
            record["entity"] = entity
        record["links"] = out_links(html, path)
        self.records.append(record)
        for fact_id in facts:
            self.fact_pages[fact_id].append(path)
        done = len(self.records)
        if self.progress and (done % self.step == 0 or done == self.plan.pages):
            self.progress(done, self.plan.pages)

    def write_pages(self) -> None:
        """Main page, about page, indices, categories, articles, then talk pages."""
        plan = self.plan
        self.emit("/index.html", "main", "Main page", pages.main_page(plan))
        self.emit("/about.html", "about", "About", pages.about_page(plan))
        for page in plan.index_pages:
            self.emit(page.path, "index", f"Index: {page.letter}", pages.index_page(plan, page))
        for cat in plan.categories:
            self.emit(
                cat.path, "category", f"Category:{cat.title}", pages.category_page(plan, cat), facts=cat.fact_ids
            )
        for entity in plan.articles:
            self.write_article(entity)
        self.write_docs()
        for title, place in plan.notices:
            rng = random.Random(f"notice:{plan.seed}:{title}")
            body = notice_body(title, place, rng)
            self.emit(notice_path(title), "portal", title, body, html=portal_html(title, body))
        for entity in plan.articles:
            if entity.id in plan.talk:
                rng = random.Random(f"talk:{plan.seed}:{entity.id}")
                bar = tabs(entity.url, talk_url(entity), "Talk")
                self.emit(
                    talk_url(entity), "talk", f"Talk:{entity.name}", pages.talk_page(entity, rng), entity.id, bar
                )

    def write_article(self, entity) -> None:
        """One entity article; it states all the entity's facts and some facts of its neighbours."""
        writer = ArticleWriter(self.plan, entity, random.Random(f"article:{self.plan.seed}:{entity.id}"))
        main = writer.html()
        facts = [f.id for f in writer.facts] + writer.stated
        bar = tabs(entity.url, talk_url(entity), "Article") if entity.id in self.plan.talk else ""
        self.emit(entity.url, "article", entity.name, main, entity.id, bar, list(dict.fromkeys(facts)))

    def write_docs(self) -> None:
        """The Handbook, each page between its previous and next one in reading order (from the main page, and
        back to the Handbook's start at its end, so every page's sidebar has both)."""
        order, writer = self.plan.docs, DocsWriter(self.plan.docs, self.plan.seed)
        home = DocPage("/index.html", "main", "Orrery Compendium")
        for i, page in enumerate(order):
            prev, nxt = order[i - 1] if i else home, order[(i + 1) % len(order)]
            body = writer.body(page)
            self.emit(page.path, page.kind, page.title, body, html=docs_html(page, body, prev, nxt))

    def write_extras(self) -> None:
        """Non-HTML files, robots.txt and the redirect map the server reads."""
        for spec in self.plan.files:
            (self.out / spec.path.lstrip("/")).write_bytes(file_bytes(spec, self.plan.world))
        (self.out / "robots.txt").write_text(ROBOTS)
        redirects = dict(sorted(self.plan.redirects.items()))
        (self.out / "_redirects.json").write_text(json.dumps(redirects, indent=1) + "\n")


def talk_url(entity) -> str:
    """Where an entity's talk page lives (disallowed by robots.txt)."""
    return f"/private/talk/{entity.slug}.html"
