"""Simple question-answer seeds from a generated site's ground truth (SimpleQA-style rows for E2HQA)."""

from __future__ import annotations

import random
from pathlib import Path

from .truth import load_truth

# One question per relation whose object is an entity: the questions E2HQA can make harder.
TEMPLATES = {
    "birthplace": "Where was {s} born?",
    "employer": "Which organisation did {s} work for?",
    "spouse": "Who was the spouse of {s}?",
    "educated_at": "Where was {s} educated?",
    "creator": "Who created {s}?",
    "publisher": "Which organisation published {s}?",
    "headquarters": "Where is {s} headquartered?",
    "located_in": "Where is {s} located?",
    "founder": "Who founded {s}?",
    "notable_work": "What is the best-known work of {s}?",
    "location": "Where did {s} take place?",
    "capital": "What is the capital of {s}?",
}


def simple_seeds(site_dir: Path, n: int, seed: int = 0) -> list[dict]:
    """Up to n rows {"problem", "answer", "fact"} whose answers the site states, sampled reproducibly."""
    truth = load_truth(site_dir)
    names = {e["id"]: e["name"] for e in truth["entities"]}
    facts = [f for f in truth["facts"] if f["relation"] in TEMPLATES and f["object_type"] == "entity"]
    rows = [
        {
            "problem": TEMPLATES[f["relation"]].format(s=names[f["subject"]]),
            "answer": f["object_text"],
            "fact": f["id"],
        }
        for f in facts
    ]
    rows = [r for r in rows if r["answer"].lower() not in r["problem"].lower()]  # "Where did X of Y take place?"
    return random.Random(seed).sample(rows, min(n, len(rows)))
