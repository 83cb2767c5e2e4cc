"""The fictional world: entities, their attributes and relations, and the facts they imply."""

import random
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass, field

from .names import slugify
from .vocab import MONTHS

# Relation order per entity type; it fixes fact order, infobox order and prose order.
RELATIONS = {
    "person": ("occupation", "born", "birthplace", "died", "educated_at", "employer", "spouse", "notable_work"),
    "place": ("kind", "located_in", "capital", "population", "founded"),
    "organisation": ("industry", "founded", "founder", "headquarters", "employees"),
    "work": ("form", "creator", "year", "genre", "publisher"),
    "event": ("kind", "date", "location", "participant"),
}
LITERAL_KINDS = {
    "born": "date", "died": "date", "date": "date",
    "founded": "year", "year": "year",
    "population": "number", "employees": "number",
    "occupation": "text", "kind": "text", "industry": "text", "form": "text", "genre": "text",
}  # fmt: skip
TYPE_SHARES = {"place": 0.15, "organisation": 0.13, "work": 0.22, "event": 0.10}
TYPE_MINIMUM = {"place": 6, "organisation": 5, "work": 5, "event": 3, "person": 8}


@dataclass(slots=True)
class Entity:
    """One thing with an article: a person, place, organisation, work or event."""

    id: str
    type: str
    name: str
    attrs: dict = field(default_factory=dict)
    gender: str = ""

    @property
    def slug(self) -> str:
        """The article's file stem."""
        return slugify(self.name)

    @property
    def url(self) -> str:
        """Site-absolute path of the entity's article."""
        return f"/wiki/{self.slug}.html"

    def year(self, relation: str) -> int | None:
        """The year of a date or year attribute, or None when it is missing."""
        value = self.attrs.get(relation)
        return int(value[:4]) if isinstance(value, str) else value


@dataclass(slots=True)
class Fact:
    """A (subject, relation, object) triple; `text` is the object exactly as pages write it."""

    id: str
    subject: str
    relation: str
    object: object
    kind: str
    text: str


@dataclass
class World:
    """All entities and facts plus lookups by subject and by entity-valued object."""

    entities: list[Entity]
    facts: list[Fact] = field(default_factory=list)
    by_id: dict[str, Entity] = field(default_factory=dict)
    facts_of: dict[str, list[Fact]] = field(default_factory=lambda: defaultdict(list))
    pointing_at: dict[str, list[Fact]] = field(default_factory=lambda: defaultdict(list))

    def of_type(self, kind: str) -> list[Entity]:
        """Entities of one type, in id order."""
        return [e for e in self.entities if e.type == kind]

    def incoming(self, entity_id: str, relation: str) -> list[Fact]:
        """Facts whose object is `entity_id` via `relation`."""
        return [f for f in self.pointing_at.get(entity_id, ()) if f.relation == relation]


def random_date(rng: random.Random, first_year: int, last_year: int) -> str:
    """A random ISO date between the two years (inclusive); days stop at 28 so every month works."""
    return f"{rng.randint(first_year, last_year):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def date_text(iso: str) -> str:
    """'1874-03-12' -> '12 March 1874'."""
    year, month, day = iso.split("-")
    return f"{int(day)} {MONTHS[int(month) - 1]} {int(year)}"


def literal_text(kind: str, value: object) -> str:
    """How pages write a literal value."""
    if kind == "date":
        return date_text(value)
    if kind == "number":
        return f"{value:,}"
    return str(value)


class Picker:
    """Skewed weighted choice (Zipf-like) so a few items are popular and attributes are shared."""

    def __init__(self, items: list, rng: random.Random, skew: float = 0.9, ranked: bool = False) -> None:
        ranks = list(range(len(items)))
        if not ranked:
            rng.shuffle(ranks)
        self.items = items
        self.cum: list[float] = []
        total = 0.0
        for rank in ranks:
            total += 1.0 / (rank + 1) ** skew
            self.cum.append(total)

    def pick(self, rng: random.Random, limit: int | None = None):
        """One item, drawn from the first `limit` items only when given."""
        k = len(self.items) if limit is None else limit
        if k <= 0:
            return None
        return self.items[min(bisect_right(self.cum, rng.random() * self.cum[k - 1]), k - 1)]


def type_counts(n: int) -> dict[str, int]:
    """How many entities of each type a world of about `n` entities gets."""
    counts = {kind: max(TYPE_MINIMUM[kind], round(n * share)) for kind, share in TYPE_SHARES.items()}
    counts["person"] = max(TYPE_MINIMUM["person"], n - sum(counts.values()))
    return counts


def window(sorted_years: list[int], low: int, high: int) -> tuple[int, int]:
    """Index range of `sorted_years` falling within [low, high]."""
    return bisect_left(sorted_years, low), bisect_right(sorted_years, high)


def finish(world: World) -> World:
    """Derive facts and lookups from the entities' attributes."""
    for entity in world.entities:
        world.by_id[entity.id] = entity
    for entity in world.entities:
        for relation in RELATIONS[entity.type]:
            value = entity.attrs.get(relation)
            for obj in value if isinstance(value, list) else [value]:
                if obj is not None:
                    add_fact(world, entity, relation, obj)
    return world


def add_fact(world: World, subject: Entity, relation: str, obj: object) -> None:
    """Append one fact and index it."""
    kind = LITERAL_KINDS.get(relation, "entity")
    text = world.by_id[obj].name if kind == "entity" else literal_text(kind, obj)
    fact = Fact(f"f{len(world.facts) + 1:07d}", subject.id, relation, obj, kind, text)
    world.facts.append(fact)
    world.facts_of[subject.id].append(fact)
    if kind == "entity":
        world.pointing_at[obj].append(fact)
