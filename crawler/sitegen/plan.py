"""Decide every page of the site before rendering: categories, indices, talk pages and the deliberate traps."""

import random
from collections import defaultdict
from dataclasses import dataclass, field

from .docs import MIN_DOCS, DocPage, docs_page_count, plan_docs
from .names import slugify
from .populate import make_world
from .portal import notice_titles, portal_page_count
from .vocab import EVENT_KINDS, FORMS, OCCUPATIONS
from .world import Entity, World

INDEX_PAGE_SIZE = 200
FEATURED = 5
PLACE_KIND_PLURALS = {"country": "Countries", "province": "Provinces", "city": "Cities", "town": "Towns",
                      "village": "Villages"}  # fmt: skip
# (subject type, relation) -> (title, intro sentence, fewest members); "{o}" is the object as written.
CATEGORY_SPECS = {
    ("person", "birthplace"): ("People born in {o}", "This category lists people born in {o}.", 3),
    ("person", "occupation"): (None, "This category lists people whose occupation is {o}.", 2),
    ("person", "employer"): ("Employees of {o}", "This category lists people employed by {o}.", 3),
    ("person", "educated_at"): ("Alumni of {o}", "This category lists people educated at {o}.", 3),
    ("organisation", "industry"): ("Organisations in the {o} industry",
                                   "This category lists organisations in the {o} industry.", 2),
    ("organisation", "headquarters"): ("Organisations based in {o}",
                                       "This category lists organisations headquartered in {o}.", 3),
    ("work", "form"): (None, "This category lists works whose form is given as {o}.", 2),
    ("work", "genre"): ("{O} works", "This category lists works in the genre {o}.", 2),
    ("work", "publisher"): ("Works published by {o}", "This category lists works published by {o}.", 3),
    ("place", "kind"): (None, "This category lists places whose kind is {o}.", 2),
    ("place", "located_in"): ("Places in {o}", "This category lists places located in {o}.", 3),
    ("event", "kind"): (None, "This category lists events of the kind {o}.", 2),
    ("event", "location"): ("Events in {o}", "This category lists events that took place in {o}.", 3),
}  # fmt: skip
PLURALS = {
    "occupation": {k: v[0] for k, v in OCCUPATIONS.items()},
    "form": {k: v[0] for k, v in FORMS.items()},
    "kind": {**PLACE_KIND_PLURALS, **{k: v[0] for k, v in EVENT_KINDS.items()}},
}


@dataclass
class Category:
    """A category page listing the subjects that share one (relation, object)."""

    path: str
    title: str
    intro: str
    subject_type: str
    relation: str
    object: object
    object_text: str
    members: list[str]
    fact_ids: list[str]


@dataclass
class IndexPage:
    """One page of the alphabetical index."""

    letter: str
    number: int
    pages_for_letter: int
    members: list[str]

    @property
    def path(self) -> str:
        """'/index/A.html' for the first page of a letter, '/index/A-2.html' after."""
        return f"/index/{self.letter}.html" if self.number == 1 else f"/index/{self.letter}-{self.number}.html"


@dataclass
class FileSpec:
    """A non-HTML file linked from one article."""

    path: str
    kind: str
    content_type: str
    entity: str


@dataclass
class Plan:
    """Everything the renderer needs; built deterministically from (pages, seed)."""

    pages: int
    seed: int
    world: World
    categories: list[Category]
    index_pages: list[IndexPage]
    talk: set[str]
    rng: random.Random
    featured: list[str] = field(default_factory=list)
    categories_of: dict[str, list[Category]] = field(default_factory=lambda: defaultdict(list))
    category_for: dict[tuple[str, object], Category] = field(default_factory=dict)  # (relation, object) -> category
    redirects: dict[str, str] = field(default_factory=dict)
    # entity id -> (href, text, css class) shown under "See also"; entity id -> (href, text) under "External links"
    extra_links: dict[str, list[tuple[str, str, str]]] = field(default_factory=lambda: defaultdict(list))
    broken: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # path -> linking pages
    variants: dict[str, list[str]] = field(default_factory=dict)  # article path -> query-string variants linked
    external: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    files: list[FileSpec] = field(default_factory=list)
    docs: list[DocPage] = field(default_factory=list)  # the Handbook, in reading order
    notices: list[tuple[str, Entity]] = field(default_factory=list)  # (title, place) of each borough notice

    @property
    def articles(self) -> list[Entity]:
        """Every entity has exactly one article."""
        return self.world.entities


def build_categories(world: World) -> list[Category]:
    """All categories with enough members, largest first (the order in which they are kept when trimming)."""
    groups: dict[tuple, list] = defaultdict(list)
    for fact in world.facts:
        key = (world.by_id[fact.subject].type, fact.relation)
        if key in CATEGORY_SPECS:
            groups[key + (fact.object,)].append(fact)
    cats = []
    for (subject_type, relation, obj), facts in groups.items():
        title, intro, fewest = CATEGORY_SPECS[(subject_type, relation)]
        if len(facts) >= fewest:
            cats.append(make_category(world, subject_type, relation, obj, title, intro, facts))
    return sorted(cats, key=lambda c: (-len(c.members), c.path))


def make_category(world: World, subject_type: str, relation: str, obj: object, title: str | None, intro: str,
                  facts: list) -> Category:  # fmt: skip
    """One category; members are sorted by name like a wiki category listing."""
    text = facts[0].text
    title = PLURALS[relation][text] if title is None else title.format(o=text, O=text[:1].upper() + text[1:])
    facts = sorted(facts, key=lambda f: world.by_id[f.subject].name.casefold())
    return Category(f"/category/{slugify(title)}.html", title, intro, subject_type, relation, obj, text,
                    [f.subject for f in facts], [f.id for f in facts])  # fmt: skip


def build_index(world: World) -> list[IndexPage]:
    """Alphabetical index pages, INDEX_PAGE_SIZE entries each."""
    by_letter: dict[str, list[Entity]] = defaultdict(list)
    for entity in world.entities:
        by_letter[entity.name[0].upper()].append(entity)
    pages = []
    for letter in sorted(by_letter):
        members = sorted(by_letter[letter], key=lambda e: e.name.casefold())
        chunks = [members[i : i + INDEX_PAGE_SIZE] for i in range(0, len(members), INDEX_PAGE_SIZE)]
        pages += [IndexPage(letter, i + 1, len(chunks), [e.id for e in chunk]) for i, chunk in enumerate(chunks)]
    return pages


def make_room(pages: int, talk: int, categories: int) -> tuple[int, int, int, int]:
    """(Handbook pages, notices, talk pages given up, categories given up) for a site whose encyclopedia was fitted
    to all `pages`: the sections replace talk pages (keeping 1% of the site) and then the smallest categories,
    so the world, its facts and its articles stay what they were before the sections existed."""
    notices = portal_page_count(pages)
    from_talk = min(docs_page_count(pages) + notices, max(0, talk - max(1, round(pages * 0.01))))
    room = from_talk + categories
    docs = min(docs_page_count(pages), room - notices)
    docs = docs if docs >= MIN_DOCS else 0  # a site too small for a Handbook keeps its categories
    notices = min(notices, room - docs)
    from_talk = min(from_talk, docs + notices)
    return docs, notices, from_talk, docs + notices - from_talk


def fit(pages: int, seed: int) -> tuple[World, list[Category], list[IndexPage], int]:
    """Pick a world size whose pages (articles, categories, indices, main, about) plus talk pages fill `pages`."""
    talk_low, talk_high = max(1, round(pages * 0.02)), max(3, round(pages * 0.10))
    n = max(1, round(pages * (0.835 - 3.3 / pages**0.5)))  # empirical share of pages that are articles
    best = None
    for _ in range(8):
        world = make_world(n, seed)
        cats, index = build_categories(world), build_index(world)
        fixed = 2 + len(index) + len(world.entities)
        talk = pages - fixed - len(cats)
        if talk_low <= talk <= talk_high:
            return world, cats, index, talk
        if best is None or abs(talk - talk_low) < abs(best[3] - talk_low):
            best = (world, cats, index, talk)
        wanted = pages - (talk_low + talk_high) // 2
        n = max(1, n + round((wanted - fixed - len(cats)) * len(world.entities) / (fixed + len(cats))))
    world, cats, index, talk = best
    kept = max(0, min(len(cats), pages - 2 - len(index) - len(world.entities) - talk_low))
    talk = pages - 2 - len(index) - len(world.entities) - kept
    if not 0 <= talk <= len(world.entities):
        raise RuntimeError(f"cannot fit a site of exactly {pages} pages")
    return world, cats[:kept], index, talk


def new_plan(pages: int, seed: int) -> Plan:
    """The page plan for a site of exactly `pages` HTML pages (traps are added by `traps.add_traps`)."""
    world, cats, index, n_talk = fit(pages, seed)
    rng = random.Random(f"wdtk-sitegen-plan:{seed}:{pages}")
    drawn = rng.sample(world.entities, n_talk)  # drawn in full: the traps after it draw from the same stream
    docs, notices, from_talk, from_cats = make_room(pages, n_talk, len(cats))
    talk = set(e.id for e in drawn[: n_talk - from_talk])
    cats = cats[: len(cats) - from_cats]  # largest first: the smallest give way
    plan = Plan(pages, seed, world, sorted(cats, key=lambda c: c.path), index, talk, rng)
    plan.docs = plan_docs(docs, seed) if docs else []
    places = [e for e in world.entities if e.type == "place"] or world.entities
    plan.notices = notice_titles(places, notices, random.Random(f"wdtk-sitegen-notices:{seed}"))
    for cat in plan.categories:
        plan.category_for[(cat.relation, cat.object)] = cat
        for member in cat.members:
            plan.categories_of[member].append(cat)
    return plan
