"""A scripted LLM for synthesis prompts: answers CRAWLQA, E2HQA and support-check prompts from the generated
site's ground truth, like a careful model, and mixes in pairs that the checks must reject (see `crawlqa`)."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit


class TruthModel:
    """Answers wdtk's prompts from the ground truth, like a careful model, plus planted mistakes."""

    def __init__(self, truth: dict, base: str | None = None):
        self.base = base  # None: any host (a server whose port is not known in advance)
        self.entities = {e["id"]: e for e in truth["entities"]}
        self.facts_by_page: dict[str, list[dict]] = {}
        for fact in truth["facts"]:
            if fact["object_type"] == "entity" and fact["pages"]:
                self.facts_by_page.setdefault(fact["pages"][0], []).append(fact)

    def __call__(self, body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        if prompt.startswith("You write question-answer pairs"):
            return json.dumps(self.crawlqa(prompt))
        if prompt.startswith("Decide whether the evidence"):
            return json.dumps({"supported": False, "reason": "not stated"})
        if prompt.startswith("Pick one entity"):
            return json.dumps(self.pick_entity(prompt))
        if prompt.startswith("Write a short description"):
            entity = re.search(r'identifies the entity "(.+?)"', prompt).group(1)
            return json.dumps({"description": f"the subject of an article with {len(entity)} letters in its title"})
        if prompt.startswith("A question was rewritten"):
            return json.dumps({"same_answer": True, "leaks_answer": False, "reason": "fine"})
        return "I do not understand"

    def crawlqa(self, prompt: str) -> dict:
        urls = re.findall(r"^URL: (\S+)$", prompt, flags=re.M)
        root = urls[0]
        path = root.removeprefix(self.base) if self.base else urlsplit(root).path
        fact = self.facts_by_page.get(path, [None])[0]
        if fact is None:
            return {"qa": []}
        subject = self.entities[fact["subject"]]["name"]
        good = {
            "type": "MULTI-HOP",
            "question": f"Regarding {subject}: what is its {fact['relation']}?",
            "answer": fact["object_text"],
            "evidence_urls": [root],
        }
        return {
            "qa": [
                good,
                {**good, "question": f"Is {fact['object_text']} the {fact['relation']} of {subject}?"},  # leaks answer
                {**good, "type": "SIMPLE"},  # not asked for
                {**good, "type": "COUNT", "answer": "several"},  # a count that is no number
                {**good, "evidence_urls": ["http://elsewhere.example/x"]},  # evidence outside the group
                {**good, "answer": "Nowhere Special"},  # not in the text; the support check says no
            ]
        }

    def pick_entity(self, prompt: str) -> dict:
        question = re.search(r"^Question: (.+)$", prompt, flags=re.M).group(1)
        answer = re.search(r"^Answer \(do not pick this\): (.+)$", prompt, flags=re.M).group(1)
        names = sorted((e["name"] for e in self.entities.values() if e["name"] in question), key=len, reverse=True)
        return {"entity": next((n for n in names if n != answer), answer)}
