"""A scripted web agent behind the fake OpenAI server: plays WebDancer's format, well or badly on purpose.

    openai_server.responder = AgentModel(answers={question: gold}, plans={question: ["good", "wrong", "broken"]})

Each rollout of a question takes the next plan in its list (in the order first turns arrive) and writes the plan's
number into its first thought, so later turns of the same conversation follow the same plan. Plans:
good (search, visit the top hit, answer from the page), reasoning (good, with the thought sent as
reasoning_content), wrong (answers "Atlantis"), broken (tool call that is not JSON), loop (searches forever),
repeat (the same search twice), invented_url (visits a URL no search returned), chatty (answers from the
search results without visiting). It also answers the visit tool's extraction prompt, quoting the sentence of the
page that holds the answer, and the judge prompt ("Correct" when the normalised answers are equal).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

from servers.openai_server import Reply

PLANS = ("good", "reasoning", "wrong", "broken", "loop", "repeat", "invented_url", "chatty")


class AgentModel:
    def __init__(self, answers: dict[str, str], plans: dict[str, list[str]] | None = None, default="good"):
        self.answers, self.plans, self.default = answers, plans or {}, default
        self.started: dict[str, int] = defaultdict(int)

    def __call__(self, body: dict):
        messages = body["messages"]
        first = messages[0]["content"]
        if "# Tools" in first and "<tools>" in first:
            return self.agent_turn(messages)
        if first.startswith("You read one web page"):
            return self.extract(first)
        if "Labeled answer:" in first and "Predicted answer:" in first:
            return self.judge(first)
        return "I do not understand"

    # --- the agent --------------------------------------------------------------------------------

    def agent_turn(self, messages: list[dict]):
        question = messages[1]["content"]
        assistant = [m["content"] for m in messages if m["role"] == "assistant"]
        if not assistant:
            plans = self.plans.get(question, [self.default])
            n = self.started[question]
            self.started[question] += 1
            plan = plans[n % len(plans)]
            return self.say(plan, f"Plan {PLANS.index(plan)}: look up the question.", self.search_call(question))
        plan = PLANS[int(re.search(r"Plan (\d+)", assistant[0]).group(1))]
        step, last = len(assistant), messages[-1]["content"]
        urls = re.findall(r"\]\((https?://[^)\s]+)\)", last)
        gold = self.answers.get(question, "unknown")
        if plan == "loop":
            return self.say(plan, "Not sure yet.", self.search_call(f"{question} {step}"))
        if plan == "repeat" and step == 1:
            return self.say(plan, "Again.", self.search_call(question))
        if plan == "chatty" and step >= 1:
            return self.say(plan, "The snippets will do.", f"<answer>{gold}</answer>")
        if step == 1 or (plan == "repeat" and step == 2):
            url = urls[0] if urls else "https://nowhere.invalid/"
            if plan == "invented_url":
                url = re.sub(r"/[^/]*$", "/never-linked-page.html", url)
            call = {"name": "visit", "arguments": {"url": [url], "goal": question}}
            return self.say(plan, "Read the top hit.", f"<tool_call>\n{json.dumps(call)}\n</tool_call>")
        answer = "Atlantis" if plan == "wrong" else gold
        return self.say(plan, "The page states it.", f"<answer>{answer}</answer>")

    def search_call(self, query: str) -> str:
        return f'<tool_call>\n{{"name": "search", "arguments": {{"query": [{json.dumps(query)}]}}}}\n</tool_call>'

    def say(self, plan: str, thought: str, action: str):
        if plan == "broken":
            return (
                f'<think>{thought}</think>\n<tool_call>\n{{"name": "search", "arguments": {{"query": [}}\n</tool_call>'
            )
        if plan == "reasoning":
            return Reply(text=action, reasoning=thought)
        return f"<think>{thought}</think>\n{action}"

    # --- the visit tool's extraction, and the judge ------------------------------------------------

    def extract(self, prompt: str) -> str:
        goal = re.search(r"goal:\n(.*)\n", prompt).group(1).strip()
        answers = [self.answers[goal]] if goal in self.answers else self.answers.values()
        page = prompt.split("<page url=", 1)[1]
        sentences = re.split(r"(?<=[.!?])\s+", page)
        hits = [s for s in sentences if any(a.lower() in s.lower() for a in answers)]
        evidence = hits[0].strip() if hits else "The page says nothing about the goal."
        return json.dumps({"rational": "the sentence names it", "evidence": evidence, "summary": evidence})

    def judge(self, prompt: str) -> str:
        gold = re.search(r"Labeled answer: (.*)", prompt).group(1).strip().lower()
        pred = re.search(r"Predicted answer: (.*)", prompt).group(1).strip().lower()
        return "Correct" if gold == pred else "Incorrect"
