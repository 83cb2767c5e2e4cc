"""The generated world as the audit reads it: names resolved to entities, values normalised, claim patterns solved.

    world = World(load_truth(site_dir))
    world.resolve("Dorn Vael")                      # {("entity", "e000012")}
    claims = world.compile(record["claims"])        # terms and relations, or Unresolved saying why not
    world.solve(claims, "?answer")                  # every value ?answer takes over facts.json

Values are tuples: ("entity", id), ("date", "1874-03-12"), ("year", 1874), ("number", 1204) or ("text", normalised);
a blurred value a question gives as a range ("the 1870s", "before 1900", "between 1,000 and 5,000", "more than 500",
"around 1875") is ("range", low, high), which a date, year or number within it fits.
A claim's relation is a phrase ("born in", "founded by"): it maps to the world's relations through RELATION_WORDS
or by name; an unknown phrase matches any relation, but only where the claim's ends pin it down. A claim may be
written either way round ("X wrote W" for the fact "W creator X"): the way the world's facts allow is taken.
Names the world does not know are never guessed at: `compile` raises Unresolved.
"""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from dataclasses import dataclass

from ..synth.text import normalize

# relation -> the phrases a claim may use for it, '|'-separated (the relation's own name always works)
RELATION_WORDS = {
    "occupation": "profession|job|works as|worked as|is a|was a|occupation",
    "born": "born on|date of birth|birth date|born|birthday|year of birth",
    "birthplace": "born in|place of birth|birth place|birthplace|native of|hometown|born at",
    "died": "died on|date of death|death date|died|death|year of death",
    "educated_at": "educated at|studied at|alma mater|education|attended|alumnus of",
    "employer": "worked for|employed by|works for|employer|worked at|employee of|took a position with",
    "spouse": "married to|married|spouse|wife|husband|spouse of",
    "notable_work": "best known work|best-known work|notable work|known for|remembered for|most widely read work",
    "kind": "kind|type|status|is a|is an",
    "located_in": "located in|lies in|part of|in|situated in|within",
    "capital": "capital|capital city|capital of|seat",
    "population": "population|inhabitants|population of|residents",
    "founded": "founded in|founded|established in|established|founding year|year founded|dates its founding to",
    "industry": "industry|sector|operates in|active in",
    "founder": "founded by|founder|established by|founder of|founded",
    "headquarters": "headquartered in|headquarters|based in|head office|hq|head office in",
    "employees": "employees|number of employees|staff|workforce|employs",
    "form": "form|type|is a|is an",
    "creator": "created by|written by|creator|author|wrote|created|compiled by|authored by|author of|written",
    "year": "year of publication|first published in|published in|year|publication year|first appeared in|"
    "appeared in|first published",
    "genre": "genre|classified as|belongs to the genre",
    "publisher": "published by|publisher|issued by",
    "date": "took place on|date|held on|began on|happened on|occurred on",
    "location": "took place in|location|held in|venue|happened in|occurred in",
    "participant": "participant|participants|took part in|participated in|participant in",
}
_AUX = re.compile(r"^(?:is|was|were|are|has|had|have|its|his|her|the|a|an)\s+")
_PREP = re.compile(r"\s+(?:of|in|by|on|at|for|to|as)$")
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_DAY_MONTH_YEAR = re.compile(r"^(\d{1,2})\s+([a-z]+)\s+(\d{3,4})$")
_MONTH_DAY_YEAR = re.compile(r"^([a-z]+)\s+(\d{1,2}),?\s+(\d{3,4})$")
_NUM = r"(\d[\d,]*(?:\.\d+)?)"
_DECADE = re.compile(r"^(?:the\s+)?(early|mid|late)?[\s-]*(\d{1,3})0s$")
_CENTURY = re.compile(r"^(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)\s+century$")
_BETWEEN = re.compile(rf"^(?:between|from)\s+{_NUM}\s+(?:and|to)\s+{_NUM}$")
_BOUNDS = "before|earlier than|prior to|after|later than|more than|over|above|at least|fewer than|less than|under"
_BOUND = re.compile(rf"^({_BOUNDS}|below|at most)\s+{_NUM}$")
_AROUND = re.compile(rf"^(?:around|about|circa|c\.|roughly|approximately)\s+{_NUM}$")
_BELOW = ("before", "earlier than", "prior to", "fewer than", "less than", "under", "below")
INF = float("inf")


class Unresolved(Exception):
    """Claims that cannot be matched to the world; str() says why."""


@dataclass(frozen=True)
class Term:
    """A claim's subject or object: a variable, or the world values a name or value may stand for."""

    text: str
    values: frozenset = frozenset()

    @property
    def var(self) -> bool:
        return self.text.startswith("?")


@dataclass(frozen=True)
class Claim:
    """A compiled claim: its ends and the (relation, reversed) readings the world's facts allow."""

    s: Term
    o: Term
    readings: tuple[tuple[str, bool], ...]
    open_relation: bool = False  # its phrase named no relation: the readings come from the facts between its ends


def range_value(text: str) -> tuple | None:
    """("range", low, high) for a blurred date or number ("the 1870s", "between 1,000 and 5,000"), else None."""
    t = " ".join(text.lower().replace("–", "-").split()).rstrip(".")
    if m := _DECADE.match(t):
        start, part = int(m.group(2)) * 10, m.group(1)
        low, high = {"early": (0, 3), "mid": (3, 6), "late": (6, 9)}.get(part, (0, 9))
        return ("range", start + low, start + high)
    if m := _CENTURY.match(t):
        return ("range", (int(m.group(1)) - 1) * 100, int(m.group(1)) * 100 - 1)
    if m := _BETWEEN.match(t):
        low, high = sorted(_number(g) for g in m.groups())
        return ("range", low, high)
    if m := _BOUND.match(t):
        n, word = _number(m.group(2)), m.group(1)
        strict = word not in ("at least", "at most")
        if word in _BELOW or word == "at most":
            return ("range", -INF, n - 1 if strict and n == int(n) else n)
        return ("range", n + 1 if strict and n == int(n) else n, INF)
    if m := _AROUND.match(t):
        n = _number(m.group(1))
        spread = 5 if "," not in m.group(1) and 100 <= n <= 9999 and n == int(n) else abs(n) * 0.1
        return ("range", n - spread, n + spread)
    return None


def _number(text: str) -> float:
    value = float(text.replace(",", ""))
    return int(value) if value == int(value) else value


def literal_values(text: str) -> set[tuple]:
    """The literal values `text` may write: a date, a year, a number, a range, else normalised text."""
    if blurred := range_value(text):
        return {blurred}
    t = " ".join(text.lower().split())
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
        return {("date", t)}
    for pattern, (d, m, y) in ((_DAY_MONTH_YEAR, (1, 2, 3)), (_MONTH_DAY_YEAR, (2, 1, 3))):
        if (match := pattern.fullmatch(t.replace(",", ""))) and match.group(m) in _MONTHS:
            day, month, year = int(match.group(d)), _MONTHS[match.group(m)], int(match.group(y))
            return {("date", f"{year:04d}-{month:02d}-{day:02d}")}
    digits = t.replace(",", "")
    if re.fullmatch(r"-?\d+", digits):
        n = int(digits)
        return {("number", n)} | ({("year", n)} if "," not in t and 100 <= n <= 9999 else set())
    if re.fullmatch(r"-?\d+\.\d+", digits):
        return {("number", float(digits))}
    return {("text", normalize(text))}


def fits(value: tuple, allowed: frozenset | set) -> bool:
    """Whether a fact's value is one of `allowed`; a date also fits its year (a claim may be coarser), and a date,
    year or number fits a range that holds it."""
    if value in allowed or (value[0] == "date" and ("year", int(value[1][:4])) in allowed):
        return True
    if value[0] not in ("date", "year", "number"):
        return False
    n = int(value[1][:4]) if value[0] == "date" else value[1]
    return any(a[0] == "range" and a[1] <= n <= a[2] for a in allowed)


def fact_value(fact: dict) -> tuple:
    """A fact's object as a value; object types the audit does not know count as text."""
    kind, obj = fact.get("object_type"), fact["object"]
    if kind in ("entity", "date", "number"):
        return (kind, obj)
    if kind == "year":
        return ("year", int(obj))
    return ("text", normalize(str(fact.get("object_text", obj))))


def relation_key(phrase: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", phrase.lower()).split())


class World:
    """Entities, facts and their indexes, from `load_truth(site_dir)` (see wdtk.crawler.sitegen)."""

    def __init__(self, truth: dict) -> None:
        self.entities = {e["id"]: e for e in truth["entities"]}
        self.names: dict[str, set[str]] = defaultdict(set)
        self.family: dict[str, set[str]] = defaultdict(set)
        for e in truth["entities"]:
            self.names[normalize(e["name"])].add(e["id"])
            if e.get("type") == "person" and " " in e["name"]:
                self.family[normalize(e["name"].rsplit(" ", 1)[1])].add(e["id"])
        self.aliases: dict[str, set[str]] = defaultdict(set)  # entity id -> alternative names the site lists
        for e in truth["entities"]:
            for alias in e.get("aliases", ()):  # should entities.json list aliases, they count like redirects
                self.aliases[e["id"]].add(alias)
                self.names[normalize(alias)].add(e["id"])
        by_url = {e.get("url"): e["id"] for e in truth["entities"]}
        for r in truth.get("redirects", []):
            if r.get("final") in by_url and r["from"].startswith("/wiki/"):
                title = r["from"].removeprefix("/wiki/").removesuffix(".html").replace("_", " ")
                self.aliases[by_url[r["final"]]].add(title)
                self.names[normalize(title)].add(by_url[r["final"]])
        self.facts = [(("entity", f["subject"]), f["relation"], fact_value(f), f) for f in truth["facts"]]
        self.by_rel: dict[str, list] = defaultdict(list)
        self.of_subject: dict[tuple, list] = defaultdict(list)
        self.of_object: dict[tuple, list] = defaultdict(list)
        for fact in self.facts:
            self.by_rel[fact[1]].append(fact)
            self.of_subject[fact[1], fact[0]].append(fact)
            self.of_object[fact[1], fact[2]].append(fact)
        self.texts = {f[2] for f in self.facts if f[2][0] == "text"}
        self.phrases: dict[str, set[str]] = defaultdict(set)
        for rel in self.by_rel:
            self.phrases[relation_key(rel)].add(rel)
        for rel, words in RELATION_WORDS.items():
            for w in words.split("|") if rel in self.by_rel else ():
                self.phrases[relation_key(w)].add(rel)

    # --- names and values -----------------------------------------------------------------------

    def resolve(self, text: str) -> set[tuple]:
        """The world values `text` may name: entities by name or listed alias (else by family name), or literals."""
        key = normalize(text.strip("\"'“”‘’*_ "))
        ids = self.names.get(key) or self.family.get(key) or set()
        return {("entity", i) for i in ids} | literal_values(text)

    def known(self, values: set[tuple]) -> bool:
        """Whether some value is in the world: an entity, a date, year or number, or a text some fact holds."""
        return any(v[0] != "text" or v in self.texts for v in values)

    def label(self, value: tuple) -> str:
        """How a value reads: the entity's name, else the value."""
        return self.entities[value[1]]["name"] if value[0] == "entity" else str(value[1])

    def leak_names(self, entity_id: str) -> list[str]:
        """The answer's names a question must not contain: its name, the titles the site redirects from, and for
        people the family name the pages use for them."""
        e = self.entities[entity_id]
        names = [e["name"], *sorted(self.aliases.get(entity_id, ()))]
        return names + ([e["name"].rsplit(" ", 1)[1]] if e.get("type") == "person" and " " in e["name"] else [])

    def relations(self, phrase: str) -> set[str] | None:
        """The world relations a claim's relation phrase names; None when it names none (any relation may do)."""
        key = relation_key(phrase)
        for candidate in (key, _AUX.sub("", key), _PREP.sub("", _AUX.sub("", key))):
            if candidate in self.phrases:
                return self.phrases[candidate]
        return None

    # --- claims ---------------------------------------------------------------------------------

    def term(self, text: str) -> Term:
        """A claim end: a variable, or the values it may name; Unresolved when they are all unknown to the world."""
        text = " ".join(str(text).split())
        if text.startswith("?"):
            return Term(text)
        values = self.resolve(text)
        if not self.known(values):
            raise Unresolved(f"'{text}' names nothing in the world")
        return Term(text, frozenset(values))

    def compile(self, claims: list[dict], hint: dict[str, frozenset] | None = None) -> list[Claim]:
        """Claims as terms and readings. `hint` gives values for variables (the gold answer for ?answer): it lets a
        claim whose relation phrase is unknown be pinned to the relations the world has between its ends."""
        out = []
        for c in claims:
            s, o = self.term(c["subject"]), self.term(c["object"])
            rels = self.relations(c["relation"])
            out.append(Claim(s, o, self.readings(s, rels, o, hint or {}, c["relation"]), rels is None))
        return out

    def readings(self, s: Term, rels: set[str] | None, o: Term, hint: dict, phrase: str) -> tuple:
        """(relation, reversed) pairs for one claim: forwards when the world has such a fact, else reversed."""
        sv, ov = (t.values or hint.get(t.text) for t in (s, o))
        if rels is None:
            if sv is None or ov is None:
                raise Unresolved(f"relation '{phrase}' is not one the world has, and an end of its claim is open")
            for term, values in ((s, sv), (o, ov)):
                if not self.known(values):  # only the hint (the gold answer) can be unknown here
                    raise Unresolved(
                        f"relation '{phrase}' is not one the world has, and {term.text} names nothing in it"
                    )
            return tuple(
                (r, rev)
                for r in self.by_rel
                for rev in (False, True)
                if self._any(r, *((ov, sv) if rev else (sv, ov)))
            )
        out = []
        for r in sorted(rels):
            forwards = self._any(r, s.values or None, o.values or None)
            out.append((r, not forwards and self._any(r, o.values or None, s.values or None)))
        return tuple(out)

    def _candidates(self, rel: str, sv, ov) -> list:
        if sv is not None and any(v[0] == "entity" for v in sv):
            return [f for v in sv if v[0] == "entity" for f in self.of_subject.get((rel, v), ())]
        if ov is not None and any(v[0] == "entity" for v in ov):
            return [f for v in ov if v[0] == "entity" for f in self.of_object.get((rel, v), ())]
        return self.by_rel.get(rel, [])

    def _any(self, rel: str, sv, ov) -> bool:
        """Whether some fact of `rel` has a subject in sv and an object in ov (None: any)."""
        return any(
            (sv is None or fits(f[0], sv)) and (ov is None or fits(f[2], ov)) for f in self._candidates(rel, sv, ov)
        )

    def _matches(self, claim: Claim, binding: dict):
        """(subject value, object value) of every fact that satisfies `claim` under `binding`."""
        sv, ov = (
            frozenset({binding[t.text]}) if t.var and t.text in binding else t.values or None
            for t in (claim.s, claim.o)
        )
        for rel, rev in claim.readings:
            fs, fo = (ov, sv) if rev else (sv, ov)
            for f in self._candidates(rel, fs, fo):
                if (fs is None or fits(f[0], fs)) and (fo is None or fits(f[2], fo)):
                    yield (f[2], f[0]) if rev else (f[0], f[2])

    def solve(self, claims: list[Claim], target: str, limit: int = 1000) -> set[tuple]:
        """Every value `target` takes in an assignment of the variables that satisfies all claims (at most `limit`)."""
        found: set[tuple] = set()

        def bound(c: Claim, b: dict) -> int:
            return sum(not t.var or t.text in b for t in (c.s, c.o))

        def search(todo: list[Claim], binding: dict) -> None:
            if len(found) >= limit:
                return
            if not todo:
                found.add(binding[target])
                return
            claim = max(todo, key=lambda c: bound(c, binding))
            rest = [c for c in todo if c is not claim]
            for s, o in self._matches(claim, binding):
                new = dict(binding)
                if all(new.setdefault(t.text, v) == v for t, v in ((claim.s, s), (claim.o, o)) if t.var):
                    search(rest, new)

        if not any(t.text == target for c in claims for t in (c.s, c.o)):
            raise Unresolved(f"no claim holds {target}")
        search(list(claims), {})
        return found
