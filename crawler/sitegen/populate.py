"""Fill a world with places, people, organisations, works and events whose dates and relations agree."""

import random
from bisect import bisect_right
from collections import defaultdict
from functools import partial

from .names import NameGen
from .vocab import (
    EVENT_KINDS,
    FORMS,
    INDUSTRIES,
    OCCUPATIONS,
    SETTLEMENT_SUFFIXES,
    TITLE_ADJS,
    TITLE_NOUNS,
    TITLE_PATTERNS,
)
from .world import Entity, Picker, World, finish, random_date, type_counts, window

LAST_YEAR = 2016


def make_world(n_entities: int, seed: int) -> World:
    """Build a deterministic world of roughly `n_entities` entities."""
    rng = random.Random(f"wdtk-sitegen:{seed}:{n_entities}")
    counts = type_counts(n_entities)
    pop = Populator(rng)
    pop.places(counts["place"])
    pop.people(counts["person"])
    pop.organisations(counts["organisation"])
    pop.careers()
    pop.works(counts["work"])
    pop.events(counts["event"])
    pop.marriages()
    return finish(World(pop.entities))


class Populator:
    """Creates entities in dependency order, keeping the pickers later steps draw from."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.names = NameGen(rng)
        self.entities: list[Entity] = []

    def new(self, kind: str, name: str, gender: str = "") -> Entity:
        """Create and register an entity with the next id."""
        entity = Entity(f"e{len(self.entities) + 1:06d}", kind, name, {}, gender)
        self.entities.append(entity)
        return entity

    def places(self, n: int) -> None:
        """Countries contain provinces, provinces contain settlements; populations add up the hierarchy."""
        rng = self.rng
        n_countries = max(1, round(n * 0.03))
        n_provinces = max(1, round(n * 0.15))
        countries = [self.new("place", self.names.fresh()) for _ in range(n_countries)]
        for country in countries:
            country.attrs.update(kind="country", founded=rng.randint(880, 1720))
        provinces = [self.new("place", self.names.fresh()) for _ in range(n_provinces)]
        for i, province in enumerate(provinces):
            province.attrs.update(kind="province", located_in=countries[i % n_countries].id)
            province.attrs["founded"] = rng.randint(900, 1800)
        towns = [self.settlement(provinces[i] if i < n_provinces else rng.choice(provinces))
                 for i in range(max(3, n - n_countries - n_provinces))]  # fmt: skip
        self.aggregate(provinces, towns)
        self.aggregate(countries, provinces)
        largest: dict[str, Entity] = {}
        for town in towns:
            country = self.parent_of(town).attrs["located_in"]
            if country not in largest or town.attrs["population"] > largest[country].attrs["population"]:
                largest[country] = town
        for country in countries:
            if country.id in largest:
                country.attrs["capital"] = largest[country.id].id
        self.towns = Picker(sorted(towns, key=lambda t: -t.attrs["population"]), rng, skew=0.8, ranked=True)

    def settlement(self, province: Entity) -> Entity:
        """One city, town or village in `province`."""
        rng = self.rng
        town = self.new("place", self.names.settlement(SETTLEMENT_SUFFIXES))
        population = int(10 ** rng.uniform(2.2, 6.3))
        kind = "city" if population >= 50_000 else "town" if population >= 2_000 else "village"
        town.attrs.update(kind=kind, located_in=province.id, population=population, founded=rng.randint(800, 1900))
        return town

    def parent_of(self, place: Entity) -> Entity:
        """The place `place` is located in."""
        return self.entities[int(place.attrs["located_in"][1:]) - 1]

    def aggregate(self, parents: list[Entity], children: list[Entity]) -> None:
        """Give each parent a population above its children's sum and its largest child as capital."""
        members = defaultdict(list)
        for child in children:
            members[child.attrs["located_in"]].append(child)
        for parent in parents:
            kids = members[parent.id]
            total = sum(k.attrs["population"] for k in kids)
            parent.attrs["population"] = round(total * self.rng.uniform(1.05, 1.6)) or self.rng.randint(900, 9000)
            if kids and parent.attrs["kind"] == "province":
                parent.attrs["capital"] = max(kids, key=lambda k: k.attrs["population"]).id

    def people(self, n: int) -> None:
        """People with birth and death dates, birthplaces (skewed to big towns) and occupations."""
        rng = self.rng
        occupations = Picker(list(OCCUPATIONS), rng, skew=0.7)
        for _ in range(n):
            gender = rng.choice("mf")
            person = self.new("person", self.names.person(gender), gender)
            born = rng.randint(1700, 1960)
            person.attrs.update(born=random_date(rng, born, born), birthplace=self.towns.pick(rng).id)
            person.attrs["occupation"] = occupations.pick(rng)
            if born < 1930 and rng.random() < 0.92:
                person.attrs["died"] = random_date(rng, born + 30, min(born + 96, LAST_YEAR))
        self.by_birth = sorted((e for e in self.entities if e.type == "person"), key=lambda e: e.attrs["born"])
        self.birth_years = [p.year("born") for p in self.by_birth]

    def organisations(self, n: int) -> None:
        """Organisations with founders of the right age, headquarters and staff counts."""
        rng = self.rng
        industries = Picker(["publishing", "education"] + sorted(INDUSTRIES)[::-1], rng, skew=0.6, ranked=True)
        orgs = []
        for _ in range(n):
            industry, founded, hq = industries.pick(rng), rng.randint(1600, 1950), self.towns.pick(rng)
            org = self.new("organisation", self.names.unique(partial(self.org_name, INDUSTRIES[industry], hq)))
            org.attrs.update(industry=industry, founded=founded, headquarters=hq.id)
            org.attrs["employees"] = round(10 ** rng.uniform(1.2, 4.9))
            lo, hi = window(self.birth_years, founded - 70, founded - 22)
            if hi > lo and rng.random() < 0.85:
                org.attrs["founder"] = self.by_birth[rng.randrange(lo, hi)].id
            orgs.append(org)
        self.employers = self.founded_picker(orgs)
        self.schools = self.founded_picker([o for o in orgs if o.attrs["industry"] == "education"])
        self.publishers = self.founded_picker([o for o in orgs if o.attrs["industry"] == "publishing"])

    def org_name(self, patterns: tuple[str, ...], hq: Entity) -> str:
        """A candidate organisation name, often named after its headquarters town."""
        stem = hq.name if self.rng.random() < 0.5 else self.names.word()
        return self.rng.choice(patterns).format(w=stem)

    def founded_picker(self, orgs: list[Entity]) -> tuple[Picker, list[int]]:
        """A skewed picker over `orgs` sorted by founding year, plus those years for prefix limits."""
        ordered = sorted(orgs, key=lambda o: (o.attrs["founded"], o.id))
        return Picker(ordered, self.rng), [o.attrs["founded"] for o in ordered]

    def pick_founded_by(self, picker: tuple[Picker, list[int]], year: int) -> Entity | None:
        """A skewed pick among organisations founded by `year`."""
        return picker[0].pick(self.rng, bisect_right(picker[1], year))

    def careers(self) -> None:
        """Employers and schools that existed when the person was of age."""
        rng = self.rng
        for person in self.by_birth:
            born = person.year("born")
            employer = self.pick_founded_by(self.employers, born + 30) if rng.random() < 0.8 else None
            school = self.pick_founded_by(self.schools, born + 18) if rng.random() < 0.55 else None
            if employer:
                person.attrs["employer"] = employer.id
            if school:
                person.attrs["educated_at"] = school.id

    def works(self, n: int) -> None:
        """Works by a skewed set of prolific creators, in forms that fit the creator's occupation."""
        rng, names = self.rng, self.names
        creators = Picker(self.by_birth, rng, skew=1.0)
        works_of = defaultdict(list)
        for _ in range(n):
            creator = creators.pick(rng)
            born = creator.year("born")
            last = min(creator.year("died") or born + 80, LAST_YEAR)
            year = rng.randint(min(born + 18, last), last)
            form = rng.choice(OCCUPATIONS[creator.attrs["occupation"]][1])
            genres = FORMS[form][2]
            genre = rng.choices(genres, weights=(4, 2, 1, 1)[: len(genres)])[0]
            title = names.unique(lambda: rng.choice(TITLE_PATTERNS).format(
                a=rng.choice(TITLE_ADJS), n=rng.choice(TITLE_NOUNS), w=names.word()))  # fmt: skip
            work = self.new("work", title)
            work.attrs.update(form=form, creator=creator.id, year=year, genre=genre)
            publisher = self.pick_founded_by(self.publishers, year) if rng.random() < 0.9 else None
            if publisher:
                work.attrs["publisher"] = publisher.id
            works_of[creator.id].append(work)
        for person_id, works in sorted(works_of.items()):
            self.entities[int(person_id[1:]) - 1].attrs["notable_work"] = rng.choice(works).id

    def events(self, n: int) -> None:
        """Events at skewed locations with living adult participants and sometimes an organisation."""
        rng, names = self.rng, self.names
        kinds = Picker(list(EVENT_KINDS), rng, skew=0.6)
        for _ in range(n):
            kind, year, place = kinds.pick(rng), rng.randint(1740, 2010), self.towns.pick(rng)
            event = self.new("event", names.unique(partial(self.event_name, EVENT_KINDS[kind][1], place, year)))
            event.attrs.update(kind=kind, date=random_date(rng, year, year), location=place.id)
            event.attrs["participant"] = self.participants(year)

    def event_name(self, patterns: tuple[str, ...], place: Entity, year: int) -> str:
        """A candidate event name, often naming its location or year."""
        return self.rng.choice(patterns).format(w=self.names.word(), c=place.name, y=year)

    def participants(self, year: int) -> list[str]:
        """Two to four people alive and adult in `year`, sometimes plus an organisation."""
        rng = self.rng
        lo, hi = window(self.birth_years, year - 75, year - 18)
        chosen = []
        for _ in range(rng.randint(2, 4) if hi > lo else 0):
            person = self.by_birth[rng.randrange(lo, hi)]
            died = person.year("died")
            if (died is None or died >= year) and person.id not in chosen:
                chosen.append(person.id)
        org = self.pick_founded_by(self.employers, year) if rng.random() < 0.4 else None
        return chosen + [org.id] if org else chosen

    def marriages(self) -> None:
        """Pair about half the people with someone born around the same time."""
        rng, order, i = self.rng, self.by_birth, 0
        while i < len(order) - 1:
            if rng.random() < 0.5:
                order[i].attrs["spouse"], order[i + 1].attrs["spouse"] = order[i + 1].id, order[i].id
                i += 2
            else:
                i += 1
