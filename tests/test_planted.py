"""The quality benchmark's generator (tests/servers/planted_model.py) plants each kind of mistake it claims to, and
bench/quality.py runs end to end on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from servers.planted_model import DESCRIPTION_KINDS, PAIR_KINDS, PlantedModel

from wdtk.filters.quality import QualityConfig, drop_reason
from wdtk.report.truth import World
from wdtk.report.verdicts import audit_qa
from wdtk.schemas import read_records
from wdtk.synth import crawlqa
from wdtk.synth.llm.jsonout import parse_json
from wdtk.synth.prompting import load_prompt
from wdtk.synth.text import contains

REPO = Path(__file__).resolve().parents[1]


def ask(model: PlantedModel, prompt: str) -> dict | str:
    """The model's reply: the JSON object it holds, or the text when it holds none."""
    text = model({"messages": [{"role": "user", "content": prompt}]})
    value, _ = parse_json(text)
    return text if value is None else value


def as_record(pair: dict) -> dict:
    return {**pair, "id": "0" * 16, "source": "crawlqa", "meta": {}}


def test_every_planted_pair_is_the_mistake_it_names(truth, site_server, pages_file):  # noqa: F811
    groups = [
        g for g in crawlqa.page_groups(read_records(pages_file), crawlqa.CrawlQAConfig()) if "/wiki/" in g["root"]
    ]
    groups = groups[:60]  # articles: a category page asks no question of this model
    world, seen = World(truth), set()
    for seed in range(3):
        model = PlantedModel(truth, rate=1.0, seed=seed, base=site_server)
        for group in groups:
            prompt = crawlqa.render_messages(group, crawlqa.CrawlQAConfig())[0]["content"]
            reply = ask(model, prompt)
            if not isinstance(reply, dict):  # prose, not JSON
                seen.add("unparseable")
                continue
            for pair in reply["qa"]:
                kind = model.planted.get(pair["question"])
                verdict, _ = audit_qa(as_record(pair), world)
                root_text = group["pages"][0]["text"]
                if kind == "wrong_answer":
                    assert verdict["correct"] is False and contains(root_text, pair["answer"])
                elif kind == "unstated_claim":
                    assert verdict["correct"] is False and not contains(root_text, pair["answer"])
                elif kind == "ambiguous":
                    assert verdict["correct"] is True and verdict["solutions"] >= 3
                elif kind == "leaked_answer":
                    assert drop_reason(as_record(pair), QualityConfig()) in (
                        "answer_in_question",
                        "answer_words_in_question",
                    )
                else:
                    assert verdict["correct"] and verdict["unique"] and not verdict["leak"]
                seen.add(kind)
    assert seen >= set(PAIR_KINDS)


def test_every_planted_description_and_the_lying_judge(truth, site_server):
    world = World(truth)
    people = [e for e in truth["entities"] if e["type"] == "person" and "spouse" in e["attributes"]][:40]
    names = {e["id"]: e["name"] for e in truth["entities"]}
    seen = set()
    for seed in range(4):
        model = PlantedModel(truth, rate=1.0, seed=seed, base=site_server)
        for person in people:
            answer = names[person["attributes"]["spouse"]]
            results = f"- {person['name']} ({site_server}{person['url']}): {person['name']} was ..."
            prompt = load_prompt("e2hqa_describe").render(entity=person["name"], answer=answer, results=results)
            reply = ask(model, prompt)
            if not isinstance(reply, dict):
                seen.add("unparseable")
                continue
            kind = model.planted.get(reply["description"])
            claims = [
                {**c, "subject": person["name"] if c["subject"] == "?x" else c["subject"]} for c in reply["claims"]
            ]
            record = {"id": "0" * 16, "question": "?", "answer": person["name"], "type": "X", "claims": claims}
            verdict, _ = audit_qa(record, world)  # does the description pick out this person, and only them?
            if kind == "ambiguous":
                assert len(claims) == 1 and verdict["solutions"] >= 3
            elif kind == "leaked_answer":
                assert contains(reply["description"], answer)
            elif kind == "unstated_claim":
                assert verdict["correct"] is False
            else:
                assert verdict["correct"] and verdict["unique"], verdict["why"]
            seen.add(kind)
    assert seen >= set(DESCRIPTION_KINDS)
    judge = load_prompt("judge").render(question="Who?", gold="Dorn Vael", prediction="Ava Lund")
    assert ask(PlantedModel(truth, rate=1.0), judge) == "Correct"  # the judge's reply is a word, not JSON
    assert ask(PlantedModel(truth, rate=0.0), judge) == "Incorrect"
    assert ask(PlantedModel(truth, rate=0.0), judge.replace("Ava Lund", "dorn vael")) == "Correct"


def test_the_quality_benchmark_runs_and_reports_every_kind(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "quality.py"), "--groups", "80", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for kind in (*PAIR_KINDS, "judge_yes"):
        assert f"  {kind} " in proc.stdout
    lines = {line.split(":")[0].strip(): line for line in proc.stdout.splitlines() if "recall of good records" in line}
    assert set(lines) == {"checks off (baseline)", "checks on"}
    checked = json.loads((tmp_path / "checked" / "audit" / "summary.json").read_text())
    baseline = json.loads((tmp_path / "baseline" / "audit" / "summary.json").read_text())
    assert checked["qa"]["final"]["n"] > 0 and checked["precision"]["final"] > baseline["precision"]["final"]
