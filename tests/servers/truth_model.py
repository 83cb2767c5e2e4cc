"""A scripted LLM for synthesis prompts: answers CRAWLQA, E2HQA, claim-check and support-check prompts from the
generated site's ground truth, like a careful model, and mixes in pairs that the checks must reject (see `crawlqa`).

Every pair and description comes with its claims ({subject, relation, object, source_url}); descriptions name the
fewest facts (two or three where it can) that fit the entity alone in the world. The claim check answers truthfully:
a claim is supported when a fact stated on that page joins its two ends. The hard-question prompts (graphqa, the
uniqueness check, the difficulty gate's solver) are answered by servers/hard_model.py.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from itertools import combinations
from urllib.parse import urlsplit

from servers.hard_model import HardModel
from wdtk.synth.text import normalize

# relation -> (how a description says it, the claim's relation, an attribute name); {o}: the object, {a}: its article
PHRASES = {
    "occupation": ("who worked as {a} {o}", "occupation"),
    "born": ("born on {o}", "date of birth"),
    "birthplace": ("born in {o}", "birthplace"),
    "died": ("who died on {o}", "date of death"),
    "educated_at": ("educated at {o}", "educated at"),
    "employer": ("who worked for {o}", "employer"),
    "spouse": ("married to {o}", "spouse"),
    "notable_work": ("best known for {o}", "best-known work"),
    "kind": ("that is {a} {o}", "kind"),
    "located_in": ("located in {o}", "located in"),
    "capital": ("whose capital is {o}", "capital"),
    "population": ("with a population of {o}", "population"),
    "founded": ("founded in {o}", "founded"),
    "industry": ("in the {o} industry", "industry"),
    "founder": ("founded by {o}", "founder"),
    "headquarters": ("headquartered in {o}", "headquarters"),
    "employees": ("with {o} employees", "employees"),
    "form": ("that is {a} {o}", "form"),
    "creator": ("created by {o}", "author"),
    "year": ("first published in {o}", "year of publication"),
    "genre": ("in the genre of {o}", "genre"),
    "publisher": ("published by {o}", "publisher"),
    "date": ("that took place on {o}", "date"),
    "location": ("held in {o}", "location"),
}


class TruthModel(HardModel):
    """Answers wdtk's prompts from the ground truth, like a careful model, plus planted mistakes."""

    named_descriptions = False  # bench/hardness.py: descriptions name an entity where they can

    def __init__(self, truth: dict, base: str | None = None):
        self.base = base  # None: any host (a server whose port is not known in advance)
        self.truth = truth
        self.entities = {e["id"]: e for e in truth["entities"]}
        self.by_name = {normalize(e["name"]): e for e in truth["entities"]}
        self.by_path = {e["url"]: e for e in truth["entities"]}
        self.facts = truth["facts"]
        self.facts_by_page: dict[str, list[dict]] = defaultdict(list)  # entity-valued facts, by their first page
        self.stated_on: dict[str, list[dict]] = defaultdict(list)  # every fact, by every page stating it
        self.facts_of: dict[str, list[dict]] = defaultdict(list)
        self.having: dict[tuple, set[str]] = defaultdict(set)  # (relation, object) -> subjects
        for fact in self.facts:
            if fact["object_type"] == "entity" and fact["pages"]:
                self.facts_by_page[fact["pages"][0]].append(fact)
            for page in fact["pages"]:
                self.stated_on[page].append(fact)
            self.facts_of[fact["subject"]].append(fact)
            self.having[fact["relation"], json.dumps(fact["object"])].add(fact["subject"])

    def __call__(self, body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        if (reply := self.hard_reply(prompt, body)) is not None:
            return reply
        if prompt.startswith("You write question-answer pairs"):
            return as_text(self.crawlqa(prompt))
        if prompt.startswith("Decide whether the evidence"):
            return json.dumps({"supported": False, "reason": "not stated"})
        if prompt.startswith("Decide whether the web page below states a claim"):
            return json.dumps({"supported": self.claim_supported(prompt), "reason": "checked against the page"})
        if prompt.startswith("Pick one entity"):
            return json.dumps(self.pick_entity(prompt))
        if prompt.startswith("List the facts the question below"):
            return json.dumps(self.seed_claims(prompt))
        if prompt.startswith("Write a short description"):
            return as_text(self.describe_prompt(prompt))
        if prompt.startswith("A question was rewritten"):
            return json.dumps({"same_answer": True, "leaks_answer": False, "reason": "fine"})
        return "I do not understand"

    # --- helpers ---------------------------------------------------------------------------------

    def path(self, url: str) -> str:
        return url.removeprefix(self.base) if self.base and url.startswith(self.base) else urlsplit(url).path

    def name(self, entity_id: str) -> str:
        return self.entities[entity_id]["name"]

    def claim(self, subject: str, fact: dict, source_url: str | None) -> dict:
        claim = {"subject": subject, "relation": PHRASES.get(fact["relation"], ("", fact["relation"]))[1]}
        claim["object"] = fact["object_text"]
        return claim | ({"source_url": source_url} if source_url else {})

    # --- CRAWLQA ------------------------------------------------------------------------------------

    def crawlqa(self, prompt: str) -> dict:
        urls = re.findall(r"^URL: (\S+)$", prompt, flags=re.M)
        root = urls[0]
        fact = self.facts_by_page.get(self.path(root), [None])[0]
        if fact is None:
            return {"qa": []}
        subject = self.name(fact["subject"])
        claims = [
            {"subject": subject, "relation": fact["relation"], "object": fact["object_text"], "source_url": root}
        ]
        good = {
            "type": "MULTI-HOP",
            "question": f"Regarding {subject}: what is its {fact['relation']}?",
            "answer": fact["object_text"],
            "evidence_urls": [root],
            "claims": claims,
        }
        made_up = [{**claims[0], "object": "Nowhere Special"}]
        self.remember(good["question"], [good["answer"]], 1)
        return {
            "qa": [
                good,
                {**good, "question": f"Is {fact['object_text']} the {fact['relation']} of {subject}?"},  # leaks answer
                {**good, "type": "SIMPLE"},  # not asked for
                {**good, "type": "COUNT", "answer": "several"},  # a count that is no number
                {**good, "evidence_urls": ["http://elsewhere.example/x"]},  # evidence outside the group
                {**good, "answer": "Nowhere Special", "claims": made_up},  # not in the text; the support check says no
            ]
        }

    def claim_supported(self, prompt: str) -> bool:
        """Truthfully: some fact stated on the page joins the claim's ends (a ?variable joins anything)."""
        subject = re.search(r"^- subject: (.*)$", prompt, flags=re.M).group(1)
        obj = re.search(r"^- object: (.*)$", prompt, flags=re.M).group(1)
        url = re.search(r"^The page \((\S+)\):$", prompt, flags=re.M).group(1)
        for fact in self.stated_on.get(self.path(url), ()):
            ends = (self.name(fact["subject"]), fact["object_text"])
            if self.joins(ends, subject, obj) or self.joins(ends[::-1], subject, obj):
                return True
        return False

    @staticmethod
    def joins(ends: tuple[str, str], subject: str, obj: str) -> bool:
        pairs = zip((subject, obj), ends, strict=True)
        return all(t.startswith("?") or normalize(t) == normalize(e) for t, e in pairs)

    # --- E2HQA --------------------------------------------------------------------------------------

    def pick_entity(self, prompt: str) -> dict:
        question = re.search(r"^Question: (.+)$", prompt, flags=re.M).group(1)
        answer = re.search(r"^Answer \(do not pick this\): (.+)$", prompt, flags=re.M).group(1)
        names = sorted((e["name"] for e in self.entities.values() if e["name"] in question), key=len, reverse=True)
        return {"entity": next((n for n in names if n != answer), answer)}

    def seed_claims(self, prompt: str) -> dict:
        """The fact joining an entity named in the question to the answer."""
        question = re.search(r"^Question: (.+)$", prompt, flags=re.M).group(1)
        answer = re.search(r"^Answer: (.+)$", prompt, flags=re.M).group(1)
        for entity in self.entities.values():
            if entity["name"] in question:
                for fact in self.facts_of[entity["id"]]:
                    if normalize(fact["object_text"]) == normalize(answer):
                        return {"claims": [self.claim(entity["name"], fact, None)]}
        return {"claims": []}

    def describe_prompt(self, prompt: str) -> dict:
        entity = self.by_name.get(normalize(re.search(r'identifies the entity "(.+?)"', prompt).group(1)))
        answer = re.search(r'or the text "(.+?)"', prompt).group(1)
        urls = re.findall(r"^- .* \((\S+)\): ", prompt, flags=re.M)
        source = next((u for u in urls if entity and self.path(u) == entity["url"]), None)
        if entity is None or source is None:
            return {"description": "something the results do not identify", "claims": []}
        facts = self.unique_facts(entity, answer) or self.usable(entity, answer)[:1]
        return self.description(entity, facts, source)

    def usable(self, entity: dict, answer: str) -> list[dict]:
        """The entity's facts a description may use: stated on its page, not giving the answer away (with
        `named_descriptions`, facts naming another entity first, so a later E2HQA round has a name to replace)."""
        facts = [
            f
            for f in self.facts_of[entity["id"]]
            if f["relation"] in PHRASES
            and entity["url"] in f["pages"]
            and normalize(answer) not in normalize(f["object_text"])
        ]
        return sorted(facts, key=lambda f: f["object_type"] != "entity") if self.named_descriptions else facts

    def fitting(self, facts: list[dict]) -> set[str]:
        """Entities with every (relation, object) of `facts`."""
        sets = [self.having[f["relation"], json.dumps(f["object"])] for f in facts]
        return set.intersection(*sets) if sets else set()

    def unique_facts(self, entity: dict, answer: str) -> list[dict] | None:
        """The first two or three facts (else one) that fit this entity alone, as a careful writer picks them."""
        usable = self.usable(entity, answer)
        for size in (2, 3, 1):
            for combo in combinations(usable, size):
                if self.fitting(list(combo)) == {entity["id"]}:
                    return list(combo)
        return None

    def description(self, entity: dict, facts: list[dict], source: str) -> dict:
        clauses = [PHRASES[f["relation"]][0].format(o=f["object_text"], a=article(f["object_text"])) for f in facts]
        text = f"the {entity['type']} " + " and ".join(clauses)
        return {"description": text, "claims": [self.claim("?x", f, source) for f in facts]}


def as_text(reply: dict | str) -> str:
    """A reply object as JSON; a string (prose a planted mistake wrote) as it is."""
    return reply if isinstance(reply, str) else json.dumps(reply)


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
