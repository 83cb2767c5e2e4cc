"""The main content of an entity's article: infobox, prose sections, lists and tables, links, categories."""

import random

from .plan import Plan
from .prose import Voice, bullet_list, entity_link
from .tables import inverse_blocks
from .world import Entity, Fact

LEAD = {"person": ("occupation",), "place": ("kind", "located_in"), "organisation": ("industry",),
        "work": ("form", "creator"), "event": ("kind", "date")}  # fmt: skip
SECTIONS = {
    "person": (("Early life", ("born", "birthplace", "educated_at")), ("Career", ("employer", "notable_work")),
               ("Personal life", ("spouse", "died")), ("Legacy", ())),
    "place": (("Geography", ("capital",)), ("History", ("founded",)), ("Economy", ()),
              ("Demographics", ("population",)), ("Culture", ())),
    "organisation": (("History", ("founded", "founder")), ("Operations", ("headquarters", "employees")),
                     ("Governance", ()), ("Reputation", ())),
    "work": (("Background", ()), ("Publication", ("year", "publisher")), ("Themes", ("genre",)),
             ("Reception", ())),
    "event": (("Background", ()), ("Location", ("location",)), ("Course of events", ()),
              ("Participants", ("participant",)), ("Aftermath", ())),
}  # fmt: skip
# A section every article of the type has, for links with a #fragment.
ANCHORS = {"person": "Early_life", "place": "History", "organisation": "History", "work": "Publication",
           "event": "Location"}  # fmt: skip
LABELS = {
    "occupation": "Occupation", "born": "Born", "birthplace": "Birthplace", "died": "Died",
    "educated_at": "Education", "employer": "Employer", "spouse": "Spouse", "notable_work": "Notable work",
    "kind": "Type", "located_in": "Located in", "capital": "Capital", "population": "Population",
    "founded": "Founded", "industry": "Industry", "founder": "Founder", "headquarters": "Headquarters",
    "employees": "Employees", "form": "Form", "creator": "Author", "year": "First published", "genre": "Genre",
    "publisher": "Publisher", "date": "Date", "location": "Location", "participant": "Participants",
}  # fmt: skip


class ArticleWriter:
    """Writes one article; `stated` collects ids of other subjects' facts that the page also states."""

    def __init__(self, plan: Plan, entity: Entity, rng: random.Random) -> None:
        self.plan, self.world, self.entity, self.rng = plan, plan.world, entity, rng
        self.voice = Voice(self.world, entity, rng)
        self.facts = self.world.facts_of[entity.id]
        self.stated: list[str] = []

    def html(self) -> str:
        """The article's main content."""
        parts = [f'<h1 id="firstHeading">{self.entity.name}</h1>', self.infobox(), self.lead()]
        for heading, relations in SECTIONS[self.entity.type]:
            parts.append(self.section(heading, relations))
        parts += self.inverse_blocks()
        parts += [self.see_also(), self.external(), self.catlinks()]
        return "\n".join(p for p in parts if p)

    def of(self, relations: tuple[str, ...]) -> list[Fact]:
        """The subject's facts for `relations`, in relation order."""
        return [f for r in relations for f in self.facts if f.relation == r]

    def infobox(self) -> str:
        """A table of every attribute, one row per relation."""
        rows, seen = [], []
        for fact in self.facts:
            if fact.relation in seen:
                continue
            seen.append(fact.relation)
            values = "<br>".join(self.voice.object_html(f) for f in self.of((fact.relation,)))
            rows.append(f"<tr><th>{LABELS[fact.relation]}</th><td>{values}</td></tr>")
        return f'<table class="infobox"><caption>{self.entity.name}</caption>\n' + "\n".join(rows) + "\n</table>"

    def lead(self) -> str:
        """The opening paragraph; the first sentence names the subject in bold."""
        facts = self.of(LEAD[self.entity.type])
        sentences = [self.voice.fact(f, lead=i == 0) for i, f in enumerate(facts)]
        return f"<p>{' '.join(sentences)}</p>"

    def section(self, heading: str, relations: tuple[str, ...]) -> str:
        """A heading and a paragraph mixing fact sentences with neutral ones."""
        facts = self.of(relations)
        if facts and facts[0].relation == "participant":
            sentences = [self.participants(facts)]
        else:
            sentences = [self.voice.fact(f) for f in facts]
        sentences += self.voice.fillers(heading, self.rng.randint(2, 3) if facts else self.rng.randint(3, 4))
        if heading == "Career":
            sentences += self.founded_and_events()
        body = f"<p>{' '.join(sentences)}</p>"
        if facts and facts[0].relation == "participant":
            body += "\n" + bullet_list(entity_link(self.world.by_id[f.object]) for f in facts)
        return f'<h2 id="{heading.replace(" ", "_")}">{heading}</h2>\n{body}'

    def participants(self, facts: list[Fact]) -> str:
        """One sentence naming every participant."""
        names = [entity_link(self.world.by_id[f.object]) for f in facts]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"Participants included {listed}."

    def founded_and_events(self) -> list[str]:
        """Career sentences about organisations the person founded and events they took part in."""
        sentences, name = [], self.voice.words["S"]
        for fact in self.world.incoming(self.entity.id, "founder"):
            org = self.world.by_id[fact.subject]
            year = next(f for f in self.world.facts_of[org.id] if f.relation == "founded")
            sentences.append(f"In {year.text} {name} founded the {entity_link(org)}.")
            self.stated += [fact.id, year.id]
        for fact in self.world.incoming(self.entity.id, "participant")[:6]:
            sentences.append(f"{name} took part in the {entity_link(self.world.by_id[fact.subject])}.")
            self.stated.append(fact.id)
        return sentences

    def inverse_blocks(self) -> list[str]:
        """Lists and tables of other entities that point at this one."""
        return inverse_blocks(self.plan, self.entity, self.rng, self.stated)

    def see_also(self) -> str:
        """Related articles (sometimes with a #fragment) plus the plan's redirect, variant and red links."""
        outgoing = [f.object for f in self.facts if f.kind == "entity"]
        incoming = [f.subject for f in self.world.pointing_at.get(self.entity.id, ())]
        neighbours = list(dict.fromkeys(outgoing + incoming))
        items = []
        for other in self.rng.sample(neighbours, min(len(neighbours), self.rng.randint(2, 4))):
            target = self.world.by_id[other]
            fragment = f"#{ANCHORS[target.type]}" if self.rng.random() < 0.15 else ""
            items.append(entity_link(target, target.url + fragment))
        for href, text, css in self.plan.extra_links.get(self.entity.id, ()):
            title = ' title="(page does not exist)"' if css == "new" else ""
            items.append(f'<a href="{href}" class="{css}"{title}>{text}</a>')
        return '<h2 id="See_also">See also</h2>\n' + bullet_list(items)

    def external(self) -> str:
        """Files, off-site links and off-site redirects planned for this article."""
        links = self.plan.external.get(self.entity.id)
        if not links:
            return ""
        items = [f'<a class="external" rel="nofollow" href="{href}">{text}</a>' for href, text in links]
        return '<h2 id="External_links">External links</h2>\n' + bullet_list(items)

    def catlinks(self) -> str:
        """The category box at the foot of the article."""
        cats = self.plan.categories_of.get(self.entity.id)
        if not cats:
            return ""
        items = bullet_list(f'<a href="{c.path}">{c.title}</a>' for c in cats)
        return f'<div id="catlinks" class="catlinks"><span>Categories:</span>\n{items}\n</div>'
