"""A generator model that plants known mistakes at set rates: the quality benchmark's model (bench/quality.py).

    model = PlantedModel(truth, rate=0.3, seed=0)
    server.responder = model                      # behind tests/servers/openai_server.py
    ... synth, filter ...
    model.agent.candidates = {question: [true answers]}    # what its agent answers, one per rollout in turn
    ... sample, funnel ...
    model.planted, model.events                    # what it planted where, and how often per kind

Every reply a careful model would give (TruthModel) is, with probability `rate`, replaced by one with a planted
mistake; the choice is a hash of the prompt's key, so retries and reruns plant the same. Kinds:
- wrong_answer: a pair whose answer (and claim) is another entity named on the same page: false, but on the page;
- ambiguous: a pair asking which entity has an attribute many share, or a description with one shared attribute;
- leaked_answer: the question (or description) names the answer, for people sometimes as "Family, Given";
- unstated_claim: a pair citing a page for a claim it does not state, or a description with a false fact;
- unparseable: prose instead of JSON;
- judge_yes: the funnel's judge says Correct to a wrong prediction.
graphqa questions (servers/hard_model.py writes the careful ones) carry the same kinds: an answer swapped for another
entity its page names, one condition where several were needed, the answer in the question, a condition with a
false value, prose.
Its agent searches for its answer, visits the top hit and answers; the visit extraction quotes the page's sentence.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter

from servers.agent_model import AgentModel
from servers.hard_model import audit_qa
from servers.truth_model import PHRASES, TruthModel
from wdtk.crawler.sitegen.seeds import TEMPLATES
from wdtk.synth.text import contains, normalize

KINDS = ("wrong_answer", "ambiguous", "leaked_answer", "unstated_claim", "unparseable", "judge_yes")
PAIR_KINDS = ("wrong_answer", "ambiguous", "leaked_answer", "unstated_claim", "unparseable")
GRAPH_KINDS = PAIR_KINDS
DESCRIPTION_KINDS = ("ambiguous", "leaked_answer", "unstated_claim", "unparseable")
PROSE = "Sure! Here are a few good questions about these pages:\n1. Who is mentioned first?"


class PlantedAgent(AgentModel):
    """The agent of AgentModel's "good" plan, answering the question's true answers in turn, one per rollout."""

    def __init__(self) -> None:
        super().__init__(answers={})
        self.candidates: dict[str, list[str]] = {}

    def agent_turn(self, messages: list[dict]):
        question = messages[1]["content"]
        assistant = [m["content"] for m in messages if m["role"] == "assistant"]
        options = self.candidates.get(question) or [self.answers.get(question, "unknown")]
        if not assistant:
            k = self.started[question] % len(options)
            self.started[question] += 1
            return self.say("good", f"Candidate {k}: look it up.", self.search_call(options[k]))
        pick = options[int(re.search(r"Candidate (\d+)", assistant[0]).group(1)) % len(options)]
        urls = re.findall(r"\]\((https?://[^)\s]+)\)", messages[-1]["content"])
        if len(assistant) == 1 and urls:
            call = {"name": "visit", "arguments": {"url": [urls[0]], "goal": question}}
            return self.say("good", "Read the top hit.", f"<tool_call>\n{json.dumps(call)}\n</tool_call>")
        return self.say("good", "The page states it.", f"<answer>{pick}</answer>")

    def extract(self, prompt: str) -> str:
        goal = re.search(r"goal:\n(.*)\n", prompt).group(1).strip()
        page = prompt.split("<page url=", 1)[1]
        hits = [s for s in re.split(r"(?<=[.!?])\s+", page) for a in self.candidates.get(goal, []) if contains(s, a)]
        evidence = hits[0].strip() if hits else "The page says nothing about the goal."
        return json.dumps({"rational": "the sentence names it", "evidence": evidence, "summary": evidence})


class PlantedModel(TruthModel):
    """TruthModel's careful replies, each replaced at `rate` by one carrying a planted mistake (module docstring)."""

    def __init__(self, truth: dict, rate: float = 0.3, seed: int = 0, base: str | None = None):
        super().__init__(truth, base)
        self.rate, self.seed = rate, seed
        self.agent = PlantedAgent()
        self.planted: dict[str, str] = {}  # question (pairs) or description (E2HQA) -> kind
        self.events: Counter = Counter()  # kind -> times planted
        self.false_yes: set[tuple[str, str]] = set()  # (question, prediction) the judge wrongly accepted
        self.entities_of_type: dict[str, list[dict]] = {}
        for e in truth["entities"]:
            self.entities_of_type.setdefault(e["type"], []).append(e)

    def __call__(self, body: dict):
        first = body["messages"][0]["content"]
        if "# Tools" in first and "<tools>" in first:
            return self.agent.agent_turn(body["messages"])
        if first.startswith("You read one web page"):
            return self.agent.extract(first)
        if "Labeled answer:" in first and "Predicted answer:" in first:
            return self.judge(first)
        return super().__call__(body)

    def draw(self, key: str, kinds: tuple[str, ...]) -> str | None:
        """The planted kind for this prompt key, or None for a careful reply: the same key always draws the same."""
        digest = hashlib.sha256(f"{self.seed}:{key}".encode()).hexdigest()
        rng = random.Random(digest)
        return rng.choice(kinds) if rng.random() < self.rate else None

    def plant(self, kind: str, where: str) -> None:
        self.planted[where] = kind
        self.events[kind] += 1

    # --- CRAWLQA ------------------------------------------------------------------------------------

    def crawlqa(self, prompt: str):
        pages = dict(re.findall(r"^URL: (\S+)\n(.*?)(?=\n\n\[Page \d+\]|\Z)", prompt, flags=re.M | re.S))
        root = next(iter(pages))
        subject = self.by_path.get(self.path(root))
        facts = [f for f in self.facts_of[subject["id"]] if f["relation"] in TEMPLATES] if subject else []
        facts = [f for f in facts if f["object_type"] == "entity" and self.path(root) in f["pages"]]
        if not facts:
            return {"qa": []}
        key = self.path(root)  # not the URL: the server's port changes from run to run
        fact = facts[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(facts)]
        pair = self.pair(subject, fact, root)
        kind = self.draw(f"crawlqa:{key}", PAIR_KINDS)
        planted = getattr(self, f"plant_{kind}")(subject, fact, root, pages, pair) if kind else None
        if kind == "unparseable":
            self.events[kind] += 1
            return PROSE
        if planted is not None:
            self.plant(kind, planted["question"])
        made = planted or pair
        self.remember(made["question"], [fact["object_text"] if kind != "ambiguous" else made["answer"]], 1)
        return {"qa": [made]}

    def pair(self, subject: dict, fact: dict, root: str, answer: str | None = None) -> dict:
        answer = answer or fact["object_text"]
        claim = {**self.claim(subject["name"], fact, root), "object": answer}
        question = TEMPLATES[fact["relation"]].format(s=subject["name"])
        return {
            "type": "MULTI-HOP",
            "question": question,
            "answer": answer,
            "evidence_urls": [root],
            "claims": [claim],
        }

    def named_on(self, text: str, kind: str, not_ids: set[str]) -> list[dict]:
        """Entities of type `kind` whose names the text contains, apart from `not_ids`."""
        return [e for e in self.entities_of_type.get(kind, ()) if e["id"] not in not_ids and contains(text, e["name"])]

    def plant_wrong_answer(self, subject, fact, root, pages, pair) -> dict | None:
        """Another entity the page names, of the answer's type when there is one."""
        kind = self.entities[fact["object"]]["type"]
        avoid = {fact["object"], subject["id"]}
        wrong = self.named_on(pages[root], kind, avoid) or [
            e for t in sorted(self.entities_of_type) for e in self.named_on(pages[root], t, avoid)
        ]
        return self.pair(subject, fact, root, wrong[0]["name"]) if wrong else None

    def plant_unstated_claim(self, subject, fact, root, pages, pair) -> dict | None:
        kind = self.entities[fact["object"]]["type"]
        for url, text in list(pages.items())[1:]:
            named = self.named_on(text, kind, {fact["object"], subject["id"]})
            elsewhere = [e for e in named if not contains(pages[root], e["name"])]
            if elsewhere:
                return {**self.pair(subject, fact, root, elsewhere[0]["name"]), "evidence_urls": [root, url]}
        return None

    def plant_ambiguous(self, subject, fact, root, pages, pair) -> dict | None:
        for f in self.facts_of[subject["id"]]:
            shared = self.having[f["relation"], json.dumps(f["object"])]
            if f["relation"] in PHRASES and len(shared) >= 3 and self.path(root) in f["pages"]:
                clause = PHRASES[f["relation"]][0].format(o=f["object_text"], a=_article(f["object_text"]))
                return {**pair, "question": f"Which {subject['type']} {clause}?", "answer": subject["name"],
                        "claims": [self.claim(subject["name"], f, root)]}  # fmt: skip
        return None

    def plant_leaked_answer(self, subject, fact, root, pages, pair) -> dict:
        target = self.entities[fact["object"]]
        shown = target["name"]
        if target["type"] == "person" and " " in shown:  # "Family, Given", as registers list people
            given, family = shown.split(" ", 1)
            shown = f"{family}, {given}"
        return {**pair, "question": f"{pair['question'][:-1]} (listed as {shown})?"}

    def plant_unparseable(self, *args) -> None:
        return None

    # --- E2HQA descriptions ----------------------------------------------------------------------------

    def describe_prompt(self, prompt: str):
        careful = super().describe_prompt(prompt)
        entity = self.by_name.get(normalize(re.search(r'identifies the entity "(.+?)"', prompt).group(1)))
        answer = re.search(r'or the text "(.+?)"', prompt).group(1)
        key = f"describe:{entity and entity['id']}:{answer}"
        kind = self.draw(key, DESCRIPTION_KINDS) if entity and careful["claims"] else None
        if kind == "unparseable":
            self.events[kind] += 1
            return PROSE
        source = careful["claims"][0]["source_url"] if kind else None
        planted = getattr(self, f"describe_{kind}")(entity, answer, source) if kind else None
        if planted is None:
            return careful
        self.plant(kind, planted["description"])
        return planted

    def describe_ambiguous(self, entity: dict, answer: str, source: str) -> dict | None:
        usable = [f for f in self.usable(entity, answer) if len(self.fitting([f])) >= 3]
        return self.description(entity, usable[:1], source) if usable else None

    def describe_leaked_answer(self, entity: dict, answer: str, source: str) -> dict | None:
        facts = [f for f in self.facts_of[entity["id"]] if normalize(f["object_text"]) == normalize(answer)]
        return self.description(entity, facts[:1], source) if facts and facts[0]["relation"] in PHRASES else None

    def describe_unstated_claim(self, entity: dict, answer: str, source: str) -> dict | None:
        for f in self.unique_facts(entity, answer) or []:
            other = next(
                (g for g in self.facts if g["relation"] == f["relation"] and g["object"] != f["object"]), None
            )
            if other:
                false = {**f, "object": other["object"], "object_text": other["object_text"]}
                return self.description(entity, [false], source)
        return None

    # --- graphqa --------------------------------------------------------------------------------------------

    def compose_prompt(self, prompt: str):
        walk = self.walk_of(prompt)
        kind = self.draw("graph:" + "|".join(self.path(u) for u, _ in walk), GRAPH_KINDS)
        if kind == "unparseable":
            self.events[kind] += 1
            return PROSE
        careful = self.compose(walk, self.draw_value(prompt))
        planted = getattr(self, f"graph_{kind}")(walk, careful, prompt) if kind and careful["question"] else None
        if planted is None:
            return careful
        self.plant(kind, planted["question"])
        self.remember(planted["question"], self.known[careful["question"]]["answers"], 2)
        return planted

    def graph_wrong_answer(self, walk, careful: dict, prompt: str) -> dict | None:
        """Another entity of the answer's type that the page stating the answer names (not one the question hides)."""
        target = self.by_name.get(normalize(careful["answer"]))
        ends = [(c, k) for c in careful["claims"] for k in ("object", "subject")]
        claim, end = next(((c, k) for c, k in ends if normalize(c[k]) == normalize(careful["answer"])), (None, None))
        if target is None or claim is None:
            return None
        named = {i for f in self.stated_on[self.path(claim["source_url"])] for i in (f["subject"], f["object"])}
        hidden = {normalize(h) for h in careful["hidden"]}
        wrong = sorted(
            i
            for i in named - {target["id"]}
            if i in self.entities
            and self.entities[i]["type"] == target["type"]
            and normalize(self.name(i)) not in hidden
        )
        if not wrong:
            return None
        name = self.name(wrong[0])
        claims = [{**c, end: name} if c is claim else c for c in careful["claims"]]
        return {
            **careful,
            "question": careful["question"].replace("?", " (as listed)?"),
            "answer": name,
            "claims": claims,
        }

    def graph_ambiguous(self, walk, careful: dict, prompt: str) -> dict | None:
        loose = self.compose(walk, self.draw_value(prompt), loose=True)
        verdict, _ = audit_qa(self.as_record(loose["answer"], loose["claims"], loose["hidden"]), self.world)
        return (
            loose
            if verdict["solutions"] and verdict["solutions"] > 1 and loose["question"] != careful["question"]
            else None
        )

    def graph_leaked_answer(self, walk, careful: dict, prompt: str) -> dict:
        return {**careful, "question": f"{careful['question'][:-1]} (listed as {careful['answer']})?"}

    def graph_unstated_claim(self, walk, careful: dict, prompt: str) -> dict | None:
        """A condition whose value is moved forty years (or its number doubled): its page does not state it."""
        for i, c in enumerate(careful["claims"]):
            if "approx" in c and c["object"][-4:].isdigit():
                year = int(c["object"][-4:]) + 40
                false = {**c, "object": c["object"][:-4] + str(year), "approx": f"the {year // 10 * 10}s"}
                claims = careful["claims"][:i] + [false] + careful["claims"][i + 1 :]
                question = careful["question"].replace(c["approx"], false["approx"])
                return {**careful, "question": question, "claims": claims}
        return None

    # --- the judge ---------------------------------------------------------------------------------

    def judge(self, prompt: str) -> str:
        question = re.search(r"Question: (.*)", prompt).group(1).strip()
        gold = re.search(r"Labeled answer: (.*)", prompt).group(1).strip()
        pred = re.search(r"Predicted answer: (.*)", prompt).group(1).strip()
        if normalize(gold) == normalize(pred):
            return "Correct"
        if self.draw(f"judge:{question}:{pred}", ("judge_yes",)):
            self.events["judge_yes"] += 1
            self.false_yes.add((question, pred))
            return "Correct"
        return "Incorrect"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
