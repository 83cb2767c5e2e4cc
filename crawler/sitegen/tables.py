"""Lists and tables on an article about the entities that point at it (works by a person, people born in a place)."""

import random

from .plan import Plan
from .prose import bullet_list, entity_link
from .vocab import TITLE_ADJS, TITLE_NOUNS
from .world import Entity, Fact, World

TABLE_ROWS = 25


def inverse_blocks(plan: Plan, entity: Entity, rng: random.Random, stated: list[str]) -> list[str]:
    """The blocks for `entity`'s type; ids of facts they state are appended to `stated`."""
    blocks = Blocks(plan, entity, stated)
    if entity.type == "person":
        return [blocks.works()]
    if entity.type == "place":
        return [blocks.subdivisions(), blocks.natives(), blocks.based_here(), blocks.events("location")]
    if entity.type == "organisation":
        return [blocks.staff("employer", "Notable staff"), blocks.staff("educated_at", "Alumni"),
                blocks.publications(), blocks.events("participant")]  # fmt: skip
    if entity.type == "work":
        titles = [f"{rng.choice(TITLE_ADJS)} {rng.choice(TITLE_NOUNS)}" for _ in range(rng.randint(3, 7))]
        items = [f"Part {i}: {title}" for i, title in enumerate(titles, start=1)]
        return ['<h2 id="Contents">Contents</h2>\n<p>The work is divided into the following parts.</p>\n'
                + bullet_list(items)]  # fmt: skip
    return []


class Blocks:
    """Builds the inverse-relation blocks of one article."""

    def __init__(self, plan: Plan, entity: Entity, stated: list[str]) -> None:
        self.plan, self.world, self.entity, self.stated = plan, plan.world, entity, stated

    def incoming(self, relation: str) -> list[tuple[Entity, Fact]]:
        """(subject, fact) pairs pointing here via `relation`, sorted by subject name."""
        pairs = [(self.world.by_id[f.subject], f) for f in self.world.incoming(self.entity.id, relation)]
        return sorted(pairs, key=lambda p: p[0].name.casefold())

    def attr(self, entity: Entity, relation: str) -> Fact | None:
        """`entity`'s first fact for `relation`, recorded as stated on this page."""
        fact = first_fact(self.world, entity, relation)
        if fact is not None:
            self.stated.append(fact.id)
        return fact

    def more(self, relation: str, shown: int, total: int) -> str:
        """A pointer to the category listing every member, saying how many are not shown here."""
        cat = self.plan.category_for.get((relation, self.entity.id))
        rest = f" ({total - shown} more)" if total > shown else ""
        if cat:
            return f'<p>See also <a href="{cat.path}">{cat.title}</a>{rest}.</p>'
        return f"<p>And {total - shown} more.</p>" if rest else ""

    def section(self, heading: str, intro: str, body: str, relation: str, shown: int, total: int) -> str:
        """A titled block with an intro sentence and a trailing pointer when truncated."""
        anchor = heading.replace(" ", "_")
        tail = self.more(relation, shown, total)
        return f'<h2 id="{anchor}">{heading}</h2>\n<p>{intro}</p>\n{body}' + (f"\n{tail}" if tail else "")

    def works(self) -> str:
        """A table of the person's works by year of first publication."""
        pairs = sorted(self.incoming("creator"), key=lambda p: (p[0].attrs["year"], p[0].name))
        if not pairs:
            return ""
        rows = []
        for work, fact in pairs[:TABLE_ROWS]:
            self.stated.append(fact.id)
            cells = [entity_link(work)] + [self.attr(work, r).text for r in ("year", "form", "genre")]
            rows.append(cells)
        intro = f"The following table lists works by {self.entity.name} in order of first publication."
        return self.section("Works", intro, table(("Title", "Year", "Form", "Genre"), rows), "creator",
                            len(rows), len(pairs))  # fmt: skip

    def subdivisions(self) -> str:
        """The places located in this one, with their kind."""
        pairs = self.incoming("located_in")
        if not pairs:
            return ""
        items = []
        for place, fact in pairs[:TABLE_ROWS]:
            self.stated.append(fact.id)
            items.append(f"{entity_link(place)}, a {self.attr(place, 'kind').text}")
        heading = "Subdivisions" if self.entity.attrs["kind"] == "country" else "Settlements"
        intro = f"The following places are located in {self.entity.name}."
        return self.section(heading, intro, bullet_list(items), "located_in", len(items), len(pairs))

    def natives(self) -> str:
        """A table of people born here, with birth date and occupation."""
        pairs = self.incoming("birthplace")
        if not pairs:
            return ""
        rows = []
        for person, fact in pairs[:TABLE_ROWS]:
            self.stated.append(fact.id)
            rows.append([entity_link(person), self.attr(person, "born").text, self.attr(person, "occupation").text])
        intro = f"Notable people born in {self.entity.name} include the following."
        return self.section("Notable people", intro, table(("Name", "Born", "Occupation"), rows), "birthplace",
                            len(rows), len(pairs))  # fmt: skip

    def based_here(self) -> str:
        """Organisations headquartered here, with their industry."""
        pairs = self.incoming("headquarters")
        if not pairs:
            return ""
        items = []
        for org, fact in pairs[:TABLE_ROWS]:
            self.stated.append(fact.id)
            items.append(f"{entity_link(org)} ({self.attr(org, 'industry').text} industry)")
        intro = f"Organisations headquartered in {self.entity.name} include:"
        return self.section("Organisations", intro, bullet_list(items), "headquarters", len(items), len(pairs))

    def events(self, relation: str) -> str:
        """Events held here (places) or taken part in (organisations), with their dates."""
        pairs = sorted(self.incoming(relation), key=lambda p: p[0].attrs["date"])
        if not pairs:
            return ""
        items = []
        for event, fact in pairs[:TABLE_ROWS]:
            self.stated.append(fact.id)
            items.append(f"{entity_link(event)}, {self.attr(event, 'date').text}")
        verb = "took place in" if relation == "location" else "involved"
        intro = f"Events that {verb} {self.entity.name} include:"
        return self.section("Events", intro, bullet_list(items), relation, len(items), len(pairs))

    def staff(self, relation: str, heading: str) -> str:
        """People employed by or educated at this organisation."""
        pairs = self.incoming(relation)
        if not pairs:
            return ""
        items = []
        for person, fact in pairs[:TABLE_ROWS]:
            self.stated.append(fact.id)
            items.append(f"{entity_link(person)}, {self.attr(person, 'occupation').text}")
        verb = "worked for" if relation == "employer" else "were educated at"
        intro = f"People who {verb} the {self.entity.name} include:"
        return self.section(heading, intro, bullet_list(items), relation, len(items), len(pairs))

    def publications(self) -> str:
        """A table of works this organisation published."""
        pairs = sorted(self.incoming("publisher"), key=lambda p: (p[0].attrs["year"], p[0].name))
        if not pairs:
            return ""
        rows = []
        for work, fact in pairs[:TABLE_ROWS]:
            self.stated.append(fact.id)
            creator = self.attr(work, "creator")
            rows.append(
                [entity_link(work), entity_link(self.world.by_id[creator.object]), self.attr(work, "year").text]
            )
        intro = f"Works published by the {self.entity.name} include the following."
        return self.section("Publications", intro, table(("Title", "Author", "Year"), rows), "publisher",
                            len(rows), len(pairs))  # fmt: skip


def first_fact(world: World, entity: Entity, relation: str) -> Fact | None:
    """`entity`'s first fact for `relation`."""
    return next((f for f in world.facts_of[entity.id] if f.relation == relation), None)


def table(headers: tuple[str, ...], rows: list[list[str]]) -> str:
    """A wikitable with a header row."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="wikitable">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>'
