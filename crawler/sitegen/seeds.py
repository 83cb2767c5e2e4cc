"""Questions from a generated site's ground truth: SimpleQA-style seeds for E2HQA, and a GAIA-style eval split."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
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


# Two hops: (first relation, second relation, question about the first relation's object).
CHAINS = {
    ("employer", "headquarters"): "Where is the organisation that {s} worked for headquartered?",
    ("birthplace", "located_in"): "In which place does the birthplace of {s} lie?",
    ("creator", "birthplace"): "Where was the author of {s} born?",
    ("publisher", "headquarters"): "Where is the publisher of {s} headquartered?",
    ("founder", "birthplace"): "Where was the founder of {s} born?",
}


def eval_split(site_dir: Path, n: int = 30, seed: int = 0) -> list[dict]:
    """Up to n GAIA-style rows {task_id, Question, Final answer, Level}: two thirds one-hop (Level 1), a third
    two-hop (Level 2); every question has exactly one answer on the site (single-valued relations only)."""
    truth = load_truth(site_dir)
    names = {e["id"]: e["name"] for e in truth["entities"]}
    counts = Counter((f["subject"], f["relation"]) for f in truth["facts"])
    single = {(f["subject"], f["relation"]): f for f in truth["facts"] if counts[(f["subject"], f["relation"])] == 1}
    one_hop = [(TEMPLATES[r].format(s=names[s]), f["object_text"], 1) for (s, r), f in single.items()
               if r in TEMPLATES and f["object_type"] == "entity"]  # fmt: skip
    two_hop = []
    for (first, second), question in CHAINS.items():
        for (subject, relation), fact in single.items():
            hop = single.get((fact["object"], second)) if relation == first else None
            if hop and hop["object_type"] == "entity":
                two_hop.append((question.format(s=names[subject]), hop["object_text"], 2))
    rng = random.Random(seed)
    rows = [r for r in one_hop if r[1].lower() not in r[0].lower()]
    picked = rng.sample(rows, min(len(rows), n - n // 3))
    picked += rng.sample(two_hop, min(len(two_hop), n - len(picked)))
    return [{"task_id": hashlib.sha256(f"{seed}:{q}".encode()).hexdigest()[:16], "Question": q, "Final answer": a,
             "Level": level} for q, a, level in picked]  # fmt: skip


def write_eval_split(site_dir: Path, n: int = 30, seed: int = 0) -> Path:
    """Write eval_split() to site_dir/eval.jsonl (the file `wdtk eval` reads); returns its path."""
    path = Path(site_dir) / "eval.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in eval_split(site_dir, n, seed)))
    return path
