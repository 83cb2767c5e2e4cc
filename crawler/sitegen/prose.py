"""Sentence templates that state one fact each, and neutral filler sentences that state none."""

import random

from .fillers import FILLERS
from .world import Entity, Fact, World

# {S} subject (bold full name in the lead), {o} object as linked or written, {a} "a"/"an" for the object,
# {the} "the " before organisations and events, {Pron}/{pron}/{Pos}/{pos} pronouns, {was} tense, {verb} authorship.
TEMPLATES = {
    "occupation": ("{S} {was} {a} {o}.", "{S} {was} {a} {o} by profession.",
                   "By profession, {S} {was} {a} {o}."),
    "born": ("{S} was born on {o}.", "{Pos} date of birth is recorded as {o}.",
             "Parish records give {o} as the date of {pos} birth."),
    "birthplace": ("{Pron} was born in {o}.", "{S} grew up in {o}, where {pron} was born.",
                   "{Pos} birthplace was {o}."),
    "died": ("{S} died on {o}.", "{Pron} died on {o}.", "{S} died on {o}, after a short illness."),
    "educated_at": ("{S} was educated at {the}{o}.", "{Pron} studied at {the}{o}.",
                    "{S} received {pos} education at {the}{o}."),
    "employer": ("{S} worked for {the}{o}.", "{Pron} was employed by {the}{o} for much of {pos} career.",
                 "{S} took a position with {the}{o}."),
    "spouse": ("{S} married {o}.", "{Pron} was married to {o}.", "{Pos} spouse was {o}."),
    "notable_work": ("{Pos} best-known work is {o}.", "{S} is chiefly remembered for {o}.",
                     "{Pos} most widely read work is {o}."),
    "place:kind": ("{S} is {a} {o}.", "{S} has the status of {a} {o}."),
    "located_in": ("It lies in {o}.", "{S} is located in {o}.", "It is part of {o}."),
    "capital": ("The capital of {S} is {o}.", "Its capital is {o}.", "{o} serves as the capital of {S}."),
    "population": ("{S} has a population of {o}.", "At the most recent census {S} had {o} inhabitants.",
                   "The population of {S} is {o}."),
    "place:founded": ("{S} was founded in {o}.", "The founding of {S} is dated to {o}.",
                      "{S} dates its founding to {o}."),
    "industry": ("{S} is an organisation in the {o} industry.", "{S} operates in the {o} industry.",
                 "{S} is active in the {o} industry."),
    "organisation:founded": ("{S} was founded in {o}.", "It was established in {o}.",
                             "{S} traces its origins to {o}."),
    "founder": ("It was founded by {o}.", "Its founder was {o}.", "{o} established the organisation."),
    "headquarters": ("{S} is headquartered in {o}.", "Its headquarters are in {o}.",
                     "The organisation has its head office in {o}."),
    "employees": ("It employs {o} people.", "{S} has {o} employees.", "The workforce numbers {o} employees."),
    "form": ("{S} is {a} {o}.", "{S} is {a} {o} that has remained in print."),
    "creator": ("It was {verb} by {o}.", "The author of {S} is {o}.", "{S} was {verb} by {o}."),
    "year": ("It was first published in {o}.", "{S} first appeared in {o}.", "The first edition appeared in {o}."),
    "genre": ("It belongs to the genre of {o}.", "Critics classify {S} as {o}.",
              "The work is usually classed as {o}."),
    "publisher": ("It was published by {the}{o}.", "The first edition was issued by {the}{o}.",
                  "Its publisher was {the}{o}."),
    "event:kind": ("The {S} was {a} {o}.", "The {S} is remembered as {a} {o}."),
    "date": ("It took place on {o}.", "The {S} took place on {o}.", "It began on {o}."),
    "location": ("It was held in {o}.", "The {S} took place in {o}.", "The events unfolded in {o}."),
}  # fmt: skip


class Voice:
    """Renders template sentences about one subject with consistent names and pronouns."""

    def __init__(self, world: World, subject: Entity, rng: random.Random) -> None:
        self.world, self.subject, self.rng = world, subject, rng
        female = subject.gender == "f"
        self.words = {
            "S": short_name(subject),
            "Pron": "She" if female else "He" if subject.type == "person" else "It",
            "pron": "she" if female else "he" if subject.type == "person" else "it",
            "Pos": "Her" if female else "His" if subject.type == "person" else "Its",
            "pos": "her" if female else "his" if subject.type == "person" else "its",
            "was": "is" if subject.type == "person" and "died" not in subject.attrs else "was",
            "verb": "compiled" if subject.attrs.get("form") == "atlas" else "written",
        }

    def fact(self, fact: Fact, lead: bool = False) -> str:
        """One sentence stating `fact`; in the lead the subject appears in bold under its full name."""
        key = f"{self.subject.type}:{fact.relation}"
        template = self.rng.choice(TEMPLATES.get(key) or TEMPLATES[fact.relation])
        words = dict(self.words, o=self.object_html(fact), a=article(fact.text), the=self.the(fact))
        if lead:
            words["S"] = f"<b>{self.subject.name}</b>"
        return template.format(**words)

    def object_html(self, fact: Fact) -> str:
        """The object as a link to its article (works in italics) or as plain text."""
        if fact.kind != "entity":
            return fact.text
        return entity_link(self.world.by_id[fact.object])

    def the(self, fact: Fact) -> str:
        """'the ' before organisation and event names, which read as common nouns."""
        target = self.world.by_id.get(fact.object) if fact.kind == "entity" else None
        return "the " if target is not None and target.type in ("organisation", "event") else ""

    def fillers(self, section: str, count: int) -> list[str]:
        """Up to `count` neutral sentences for `section`."""
        pool = FILLERS.get(f"{self.subject.type}:{section}", ())
        return [s.format(**self.words) for s in self.rng.sample(pool, min(count, len(pool)))]


def short_name(entity: Entity) -> str:
    """How prose refers back to an entity: family name for people, italic title for works."""
    if entity.type == "person":
        return entity.name.rsplit(" ", 1)[-1]
    return f"<i>{entity.name}</i>" if entity.type == "work" else entity.name


def entity_link(entity: Entity, href: str | None = None) -> str:
    """An anchor to the entity's article; work titles in italics."""
    text = f"<i>{entity.name}</i>" if entity.type == "work" else entity.name
    return f'<a href="{href or entity.url}">{text}</a>'


def article(word: str) -> str:
    """The indefinite article for `word`."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def bullet_list(items) -> str:
    """A <ul> of already-rendered items."""
    return "<ul>\n" + "\n".join(f"<li>{item}</li>" for item in items) + "\n</ul>"
