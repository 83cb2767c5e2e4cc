"""The scripted model's answers to the hard-question prompts, from the generated site's truth (a TruthModel mixin):
graphqa's page extraction and composition, the search-backed uniqueness check, and the difficulty gate's solver.

- extraction: the facts the page states (truth's `pages`), entity-valued ones first;
- composition: the longest chain of facts joining the walk's pages that ends on its last page; the answer is the last
  entity (or, for one walk in three, one of its values); every entity before it is hidden behind a description, dates
  and numbers blurred to decades and ranges; conditions are added to the chain's entities until the world has one
  answer (the audit's solver decides), as a careful writer would;
- the uniqueness check: the page's subject or a name it holds that the question's claims allow, not the gold answer;
- the solver: `known` holds every question the model wrote (or saw rewritten) with its true answers and hops; it
  answers a question of at most `easy_hops` hops right, a harder one right with probability `solve_rate` per try,
  and says it does not know a question it never saw.
"""

from __future__ import annotations

import hashlib
import json
import re

from wdtk.report.truth import World, fits
from wdtk.report.verdicts import audit_qa
from wdtk.synth.text import contains, normalize

# how a description states a relation to the entity before it: ("the X of {d}" forwards, "the T ... {d}" backwards)
FORWARD = {
    "birthplace": "the place where {d} was born",
    "educated_at": "the institution where {d} was educated",
    "employer": "the employer of {d}",
    "spouse": "the spouse of {d}",
    "notable_work": "the best-known work of {d}",
    "located_in": "the place in which {d} lies",
    "capital": "the capital of {d}",
    "founder": "the founder of {d}",
    "headquarters": "the place where {d} has its headquarters",
    "creator": "the creator of {d}",
    "publisher": "the publisher of {d}",
    "location": "the place where {d} took place",
    "participant": "a participant in {d}",
}
BACKWARD = {
    "birthplace": "who was born in {d}",
    "educated_at": "who was educated at {d}",
    "employer": "who worked for {d}",
    "spouse": "who was married to {d}",
    "notable_work": "best known for {d}",
    "located_in": "located in {d}",
    "capital": "whose capital is {d}",
    "founder": "founded by {d}",
    "headquarters": "headquartered in {d}",
    "creator": "created by {d}",
    "publisher": "published by {d}",
    "location": "held in {d}",
    "participant": "in which {d} took part",
}
ATTRIBUTE = {  # how a description states a value; {o} the value as the question gives it
    "occupation": "who worked as {a} {o}",
    "born": "born in {o}",
    "died": "who died in {o}",
    "kind": "that is {a} {o}",
    "population": "with a population {o}",
    "founded": "founded in {o}",
    "industry": "in the {o} industry",
    "employees": "with {o} employees",
    "form": "that is {a} {o}",
    "year": "first published in {o}",
    "genre": "in the genre of {o}",
    "date": "that took place in {o}",
}
VALUE_NOUN = {"born": "date of birth", "died": "date of death", "founded": "founding year", "population": "population",
              "year": "year of first publication", "employees": "number of employees", "date": "date"}  # fmt: skip
RELATION = {"born": "date of birth", "founded": "founding year", "died": "date of death", "creator": "author",
            "notable_work": "best-known work", "year": "year of publication", "educated_at": "educated at",
            "located_in": "located in"}  # fmt: skip
PROSE = "Here is a good question: who wrote the book?"


def blur(fact: dict) -> str | None:
    """How a careful writer blurs a date, year or number: its decade, or the range of its leading digit."""
    kind, value = fact["object_type"], fact["object"]
    if kind in ("date", "year"):
        year = int(str(value)[:4])
        return f"the {year // 10 * 10}s"
    if kind == "number":
        step = 10 ** (len(str(value)) - 1)
        low = value // step * step
        return f"between {low:,} and {low + step:,}"
    return None


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


class HardModel:
    """The mixin: needs TruthModel's entities, facts_of, stated_on, by_path and path()."""

    easy_hops = 1
    solve_rate = 0.0

    def hard_reply(self, prompt: str, body: dict) -> str | None:
        """The reply to a hard-question prompt, or None for another prompt."""
        if prompt.startswith("List the facts the web page below states"):
            return json.dumps(self.extract(prompt))
        if prompt.startswith("You write one hard question"):
            reply = self.compose_prompt(prompt)
            return reply if isinstance(reply, str) else json.dumps(reply)
        if prompt.startswith("A question was written to have exactly one correct answer"):
            return json.dumps({"rival": self.rival(prompt), "reason": "checked against the world"})
        if prompt.startswith("Answer the question below from what you know"):
            return self.solve(prompt, body.get("seed", 0))
        if prompt.startswith("A question was rewritten"):  # E2HQA's check: remember the harder question
            self.remember_rewrite(prompt)
        return None

    @property
    def world(self) -> World:
        if "_world" not in self.__dict__:
            self._world = World(self.truth)
        return self._world

    @property
    def known(self) -> dict:
        """Question -> {"answers": its true answers, "hops": how many hops it takes}: what the solver knows."""
        return self.__dict__.setdefault("_known", {})

    def remember(self, question: str, answers: list[str], hops: int) -> None:
        self.known.setdefault(question, {"answers": answers, "hops": hops})

    # --- graphqa ----------------------------------------------------------------------------------------------

    def extract(self, prompt: str) -> dict:
        url = re.search(r"^The page \((\S+)\):$", prompt, flags=re.M).group(1)
        most = int(re.search(r"At most (\d+) claims", prompt).group(1))
        facts = sorted(self.stated_on.get(self.path(url), ()), key=lambda f: f["object_type"] != "entity")
        return {"claims": [self.fact_claim(f) for f in facts[:most]]}

    def fact_claim(self, fact: dict, url: str | None = None) -> dict:
        claim = {"subject": self.name(fact["subject"]), "relation": RELATION.get(fact["relation"], fact["relation"])}
        return claim | {"object": fact["object_text"]} | ({"source_url": url} if url else {})

    def walk_of(self, prompt: str) -> list[tuple[str, dict | None]]:
        """The walk's (URL, entity or None) in order."""
        urls = re.findall(r"^\[Page \d+\] .*\nURL: (\S+)$", prompt, flags=re.M)
        return [(u, self.by_path.get(self.path(u))) for u in urls]

    def chain(self, walk: list[tuple[str, dict | None]]) -> list[tuple[dict, dict | None]]:
        """[(entity, the fact joining it to the next)], the longest run of joined pages ending on the last one."""
        out = [(walk[-1][1], None)] if walk[-1][1] else []
        for i in range(len(walk) - 2, -1, -1):
            (url, e), (next_url, nxt) = walk[i], walk[i + 1]
            if not (e and nxt and out):
                break
            pages = {self.path(url), self.path(next_url)}
            joining = [f for f in self.facts_of[e["id"]] + self.facts_of[nxt["id"]] if pages & set(f["pages"])]
            fact = next((f for f in joining if {f["subject"], f["object"]} == {e["id"], nxt["id"]}), None)
            if fact is None or any(e["id"] == o["id"] for o, _ in out):
                break
            out.insert(0, (e, fact))
        return out

    def compose_prompt(self, prompt: str) -> dict | str:
        return self.compose(self.walk_of(prompt), self.draw_value(prompt))

    def draw_value(self, prompt: str) -> bool:
        key = "|".join(self.path(u) for u, _ in self.walk_of(prompt))
        return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 3 == 0

    def compose(self, walk, value_answer: bool, extra: int = 10, loose: bool = False) -> dict:
        """A careful question on the walk: the chain, its end as the answer, conditions until it has one answer
        (`loose`: one condition on the start, however many answers that leaves)."""
        chain = self.chain(walk)
        if len(chain) < 2:
            return {"question": "", "answer": "", "claims": []}
        url_of = {e["id"]: u for u, e in walk if e}
        last, claims, hidden = chain[-1][0], [], [e["name"] for e, _ in chain[:-1]]
        for _, fact in chain[:-1]:
            urls = (url_of[fact["subject"]], url_of.get(fact["object"]))
            claims.append(self.fact_claim(fact, next(u for u in urls if u and self.path(u) in fact["pages"])))
        answer, tail = last["name"], None
        here = self.path(url_of[last["id"]])
        values = [f for f in self.facts_of[last["id"]] if f["relation"] in VALUE_NOUN and here in f["pages"]]
        if value_answer and values:
            tail = values[0]
            answer, hidden = tail["object_text"], [*hidden, last["name"]]
            claims.append(self.fact_claim(tail, url_of[last["id"]]))
        chosen = self.conditions(chain, url_of, answer, claims, hidden, extra)
        if loose:
            chosen = [c for c in self.attributes(chain, url_of, answer) if c[0] == chain[0][0]["id"]][:1]
        question = self.render(chain, chosen, tail)
        self.remember(question, [answer], len(chain) + (tail is not None))
        return {"question": question, "answer": answer, "claims": claims + [c for _, _, c in chosen], "hidden": hidden}

    def conditions(self, chain, url_of, answer, claims, hidden, extra) -> list[tuple]:
        """(entity id, fact, claim) conditions: two on the start, one on each entity reached as a fact's subject, the
        answer too (what pins a description), then, the start's first, any that leaves fewer answers, until one is
        left."""
        options = self.attributes(chain, url_of, answer)
        need = {chain[0][0]["id"]: 2} | {
            e["id"]: 1 for (e, _), (_, fact) in zip(chain[1:], chain[:-1], strict=False) if fact["subject"] == e["id"]
        }
        chosen = []
        for eid, n in need.items():
            chosen += [o for o in options if o[0] == eid][:n]
        order = {e["id"]: i for i, (e, _) in enumerate(chain)}
        rest = sorted((o for o in options if o not in chosen), key=lambda o: order[o[0]])
        solutions = self.solutions(answer, claims, chosen, hidden)
        for option in rest:
            if solutions <= 1 or extra == 0:
                break
            fewer = self.solutions(answer, claims, [*chosen, option], hidden)
            if fewer < solutions:
                chosen, solutions, extra = [*chosen, option], fewer, extra - 1
        return chosen

    def solutions(self, answer, claims, chosen, hidden) -> int:
        verdict, _ = audit_qa(self.as_record(answer, claims + [c for _, _, c in chosen], hidden), self.world)
        return verdict["solutions"] or 0

    def attributes(self, chain, url_of: dict, answer: str) -> list[tuple]:
        """(entity id, fact, claim) conditions a description may add (blurred when a date or number), start first."""
        on_chain = {e["id"] for e, _ in chain}
        out = []
        for e, _ in chain:
            url = url_of[e["id"]]
            for f in self.facts_of[e["id"]]:
                usable = f["relation"] in ATTRIBUTE or (f["object_type"] == "entity" and f["relation"] in BACKWARD)
                if not usable or f["object"] in on_chain or self.path(url) not in f["pages"]:
                    continue
                if normalize(f["object_text"]) == normalize(answer):
                    continue
                out.append((e["id"], f, self.fact_claim(f, url) | ({"approx": blur(f)} if blur(f) else {})))
        return out

    def as_record(self, answer: str, claims: list[dict], hidden: list[str]) -> dict:
        """A record of the claims with the hidden names as variables, for the audit's solver."""
        names = {normalize(n): f"?e{i}" for i, n in enumerate(hidden, 1)}
        bound = [{**c, **{k: names[normalize(c[k])] for k in ("subject", "object") if normalize(c[k]) in names}}
                 for c in claims]  # fmt: skip
        return {"id": "0" * 16, "question": "?", "answer": answer, "type": "GRAPH", "claims": bound}

    def render(self, chain, chosen, tail) -> str:
        """The question's text: the start described by its conditions, each next entity through the one before."""
        text = ""
        for i, (e, _) in enumerate(chain):
            clauses = [self.clause(f, c) for eid, f, c in chosen if eid == e["id"]]
            if i and chain[i - 1][1]["subject"] == chain[i - 1][0]["id"]:  # "the employer of ..."
                text = FORWARD[chain[i - 1][1]["relation"]].format(d=text)
                text += ", " + " and ".join(clauses) if clauses else ""
                continue
            if i:  # "the organisation founded by ..."
                clauses.insert(0, BACKWARD[chain[i - 1][1]["relation"]].format(d=text))
            text = f"the {e['type']} " + " and ".join(clauses)
        if tail is not None:
            return f"What is the {VALUE_NOUN[tail['relation']]} of {text}?"
        return f"What is the name of {text}?"

    def clause(self, fact: dict, claim: dict) -> str:
        value = claim.get("approx", claim["object"])
        pattern = ATTRIBUTE.get(fact["relation"]) or BACKWARD[fact["relation"]].replace("{d}", "{o}")
        return pattern.format(o=value, a=article(value))

    # --- the uniqueness check and the solver -------------------------------------------------------------------

    def rival(self, prompt: str) -> str:
        """What on the page (its subject first, then the names and values it holds) the question's claims allow
        besides the gold answer: the first such one, or ""."""
        answer = re.search(r"^Its answer: (.*)$", prompt, flags=re.M).group(1).strip()
        title = re.search(r"^The page: (.*) \(\S+\)$", prompt, flags=re.M).group(1).strip()
        page = prompt.split("\nThe page: ", 1)[1].split("\n\nDoes this page show", 1)[0]
        claims = [json.loads(line[2:]) for line in prompt.splitlines() if line.startswith("- {")]
        if not claims:
            return ""
        record = {"id": "0" * 16, "question": "?", "answer": answer, "type": "X", "claims": claims}
        _, values = audit_qa(record, self.world)
        gold = frozenset(self.world.resolve(answer))
        names = [title, *(e["name"] for e in self.entities.values() if contains(page, e["name"]))]
        names += re.findall(r"\b\d{1,2} [A-Z][a-z]+ \d{3,4}\b|\b\d[\d,]*\b", page)  # dates, years, numbers it states
        for name in names:
            named = frozenset(self.world.resolve(name))
            if any(fits(v, named) and not fits(v, gold) for v in values or ()):
                return name
        return ""

    def solve(self, prompt: str, seed: int) -> str:
        question = re.search(r"^Question: (.*)$", prompt, flags=re.M).group(1).strip()
        known = self.known.get(question)
        if known is None:
            return "I do not know."
        draw = int(hashlib.sha256(f"solve:{question}:{seed}".encode()).hexdigest(), 16) % 1000 / 1000
        if known["hops"] <= self.easy_hops or draw < self.solve_rate:
            return known["answers"][0]
        return "I do not know."

    def remember_rewrite(self, prompt: str) -> None:
        before = re.search(r"^Original question: (.*)$", prompt, flags=re.M).group(1).strip()
        after = re.search(r"^Rewritten question: (.*)$", prompt, flags=re.M).group(1).strip()
        answer = re.search(r"^Answer to the original question: (.*)$", prompt, flags=re.M).group(1).strip()
        seen = self.known.get(before, {"answers": [answer], "hops": 1})
        self.remember(after, seen["answers"], seen["hops"] + 1)
