"""What a crawler must cope with: redirects, broken links, query-string variants, off-site links, non-HTML files."""

import random

from .names import NameGen, slugify
from .plan import FileSpec, Plan
from .world import Entity

OFFSITE = "http://offsite.invalid"
RECORDS = "https://records.offsite.invalid"
MIRROR_PATH = "/out/mirror"  # linked from the about page
MISSING_FILE = "/files/Missing_scan.pdf"
# kind -> (types of entity it belongs to, path pattern, content type, link text)
FILE_KINDS = {
    "csv": (("place",), "/files/{slug}_census.csv", "text/csv", "Census data (CSV)"),
    "png": (("place",), "/files/{slug}_map.png", "image/png", "Map (PNG)"),
    "pdf": (("organisation",), "/files/{slug}_annual_report.pdf", "application/pdf", "Annual report (PDF)"),
    "export": (("person", "place", "organisation", "work", "event"), "/data/export-{n}", "application/json",
               "Machine-readable record"),
}  # fmt: skip


def add_traps(plan: Plan) -> None:
    """Decorate `plan` with featured articles and every deliberate trap, scaled with the page count."""
    n = plan.pages
    plan.featured = pick_featured(plan)
    add_aliases(plan, max(3, n // 100))
    add_broken(plan, max(3, n // 100))
    add_variants(plan, max(2, n // 500))
    add_offsite(plan, max(2, n // 200))
    add_files(plan, max(1, n // 400))


def pick_featured(plan: Plan) -> list[str]:
    """A few well-connected people for the sidebar, sorted by name."""
    people = [e for e in plan.articles if e.type == "person" and "notable_work" in e.attrs] or plan.articles
    chosen = plan.rng.sample(people, min(len(people), 5))
    return [e.id for e in sorted(chosen, key=lambda e: e.name)]


def other_article(rng: random.Random, articles: list[Entity], not_this: Entity) -> Entity:
    """A random article other than `not_this`."""
    while True:
        source = rng.choice(articles)
        if source is not not_this:
            return source


def alias_path(entity: Entity) -> str:
    """An old or alternative title: 'Family,_Given' for people, 'Name_(kind)' for everything else."""
    if entity.type == "person":
        given, family = entity.name.split(" ", 1)
        return f"/wiki/{slugify(family)},_{slugify(given)}.html"
    qualifier = entity.attrs.get("kind") or entity.attrs.get("form") or entity.type
    return f"/wiki/{entity.slug}_({slugify(qualifier)}).html"


def add_aliases(plan: Plan, count: int) -> None:
    """On-site 301s from alternative titles, each linked from another article; the first is a two-hop chain."""
    rng, articles = plan.rng, plan.articles
    for i, target in enumerate(rng.sample(articles, min(count, len(articles)))):
        alias = alias_path(target)
        plan.redirects[alias] = target.url
        plan.extra_links[other_article(rng, articles, target).id].append((alias, target.name, "redirect"))
        if i == 0:
            older = f"/wiki/{target.slug}_(old_title).html"
            plan.redirects[older] = alias
            plan.extra_links[other_article(rng, articles, target).id].append((older, target.name, "redirect"))


def add_broken(plan: Plan, count: int) -> None:
    """Red links to articles that were never written, plus one link to a missing file."""
    rng, articles = plan.rng, plan.articles
    names = NameGen(rng)
    names.used = {e.name.lower() for e in articles}
    for _ in range(count):
        name = names.person(rng.choice("mf"))
        path = f"/wiki/{slugify(name)}.html"
        source = rng.choice(articles)
        plan.extra_links[source.id].append((path, name, "new"))
        plan.broken[path].append(source.url)
    source = rng.choice(articles)
    plan.external[source.id].append((MISSING_FILE, "Scanned register page (PDF)"))
    plan.broken[MISSING_FILE].append(source.url)


def add_variants(plan: Plan, count: int) -> None:
    """Articles linked twice with the same query parameters in different orders."""
    rng, articles = plan.rng, plan.articles
    for target in rng.sample(articles, min(count, len(articles))):
        hrefs = [f"{target.url}?lang=en&view=full", f"{target.url}?view=full&lang=en"]
        plan.variants[target.url] = hrefs
        for href in hrefs:
            plan.extra_links[other_article(rng, articles, target).id].append((href, target.name, "variant"))


def add_offsite(plan: Plan, count: int) -> None:
    """Links off the site: direct absolute URLs and on-site paths that 301 to another host."""
    rng, articles = plan.rng, plan.articles
    plan.redirects[MIRROR_PATH] = f"{OFFSITE}/mirror/"
    for i in range(count):
        target = rng.choice(articles)
        path = f"/out/archive-{i + 1}"
        plan.redirects[path] = f"{OFFSITE}/archive/{target.slug}"
        plan.external[target.id].append((path, "Archived catalogue entry"))
        other = rng.choice(articles)
        plan.external[other.id].append((f"{RECORDS}/entry/{other.id}", "Entry in the regional register"))


def add_files(plan: Plan, count: int) -> None:
    """Non-HTML files linked from articles; data exports have no extension, so only Content-Type tells."""
    rng = plan.rng
    for kind, (types, pattern, content_type, text) in FILE_KINDS.items():
        owners = [e for e in plan.articles if e.type in types]
        for n, owner in enumerate(rng.sample(owners, min(count, len(owners))), start=1):
            spec = FileSpec(pattern.format(slug=owner.slug, n=n), kind, content_type, owner.id)
            plan.files.append(spec)
            plan.external[owner.id].append((spec.path, text))
