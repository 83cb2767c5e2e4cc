"""`wdtk audit`: hand-made records whose answers are known, judged against the generated site's ground truth."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from servers.search_server import site_page_records

from wdtk.cli import main
from wdtk.report.audit import audit, describe, report_figures
from wdtk.report.gather import gather, render
from wdtk.report.truth import World, literal_values
from wdtk.report.verdicts import audit_qa, audit_trajectory
from wdtk.schemas import read_records, record_id, write_records
from wdtk.synth.agent.format import TOOLS

BASE = "http://127.0.0.1:9"  # page records need a base URL; nothing is fetched


@pytest.fixture(scope="module")
def world(truth) -> World:
    return World(truth)


@pytest.fixture(scope="module")
def facts(truth) -> dict:
    """A person born in a town many were born in, a second town, and a person with a notable work."""
    names = {e["id"]: e["name"] for e in truth["entities"]}
    people = [e for e in truth["entities"] if e["type"] == "person"]
    town, born_there = Counter(
        p["attributes"].get("birthplace") for p in people if "birthplace" in p["attributes"]
    ).most_common(1)[0]
    person = next(p for p in people if p["attributes"].get("birthplace") == town)
    other = next(e for e in truth["entities"] if e["type"] == "place" and e["id"] != town)
    author = next(p for p in people if "notable_work" in p["attributes"] and "occupation" in p["attributes"])
    return {
        "person": person["name"],
        "town": names[town],
        "born_there": born_there,
        "other_town": other["name"],
        "url": BASE + person["url"],
        "author": author,
        "work": names[author["attributes"]["notable_work"]],
    }


def qa(question: str, answer: str, claims: list[dict], qtype: str = "MULTI-HOP", source: str = "crawlqa") -> dict:
    return {
        "id": record_id("qa", question, answer),
        "question": question,
        "answer": answer,
        "type": qtype,
        "source": source,
        "evidence_urls": [],
        "claims": claims,
        "meta": {"model": "hand"},
    }


def claim(subject: str, relation: str, obj: str) -> dict:
    return {"subject": subject, "relation": relation, "object": obj}


@pytest.fixture(scope="module")
def records(facts) -> dict[str, dict]:
    p, t, a = facts["person"], facts["town"], facts["author"]
    born = a["attributes"]["born"]  # an ISO date; pages write "12 March 1874"
    return {
        "correct": qa(f"Where was {p} born?", t, [claim(p, "birthplace", t)]),
        "wrong": qa(f"Where was {p} born?", facts["other_town"], [claim(p, "born in", facts["other_town"])]),
        "ambiguous": qa(f"Which person was born in {t}?", p, [claim(p, "birthplace", t)]),
        "leaked": qa(f"Was {t} the birthplace of {p}?", t, [claim(p, "birthplace", t)]),
        "unresolved": qa(f"Where did {p} drink?", "Blue Moon Tavern", [claim(p, "favourite inn", "Blue Moon Tavern")]),
        "chain": qa(
            "What is the best-known work of the person with that occupation born on that day?",
            facts["work"],
            [
                claim("?e1", "occupation", a["attributes"]["occupation"]),
                claim("?e1", "date of birth", born),
                claim("?e1", "best-known work", facts["work"]),
            ],
            source="e2hqa",
        ),
        "count": qa(
            f"How many people were born in {t}?", str(facts["born_there"]), [claim("?x", "birthplace", t)], "COUNT"
        ),
    }


def test_every_verdict_on_records_whose_answer_is_known(records, world, facts):
    v = {name: audit_qa(r, world)[0] for name, r in records.items()}
    good = v["correct"]
    assert (good["correct"], good["unique"], good["hops"], good["leak"]) == (True, True, 1, False)
    assert v["wrong"]["correct"] is False and v["wrong"]["unique"] is True
    assert any(facts["town"] in why for why in v["wrong"]["why"])  # the claims' true answer is named
    assert v["ambiguous"]["correct"] is True and v["ambiguous"]["unique"] is False
    assert v["ambiguous"]["solutions"] == facts["born_there"] >= 3
    assert v["leaked"]["leak"] is True and v["leaked"]["correct"] is True
    assert v["unresolved"]["unresolved"] and v["unresolved"]["correct"] is None and v["unresolved"]["unique"] is None
    assert "names nothing in" in v["unresolved"]["unresolved"]  # neither the inn nor the relation is the world's
    named = audit_qa({**records["correct"], "claims": [claim("Blue Moon Tavern", "birthplace", facts["town"])]}, world)
    assert named[0]["unresolved"] == "'Blue Moon Tavern' names nothing in the world"
    assert (v["chain"]["correct"], v["chain"]["unique"], v["chain"]["hops"]) == (True, True, 2)
    assert v["count"]["correct"] is True and v["count"]["unique"] is True
    off_by_one = {**records["count"], "answer": str(facts["born_there"] + 1)}
    assert audit_qa(off_by_one, world)[0]["correct"] is False
    no_claims = {k: val for k, val in records["correct"].items() if k != "claims"}
    assert audit_qa(no_claims, world)[0]["unresolved"] == "the record has no claims"


def test_claims_written_either_way_round_and_values_as_pages_write_them(facts, world):
    a = facts["author"]
    reversed_claim = qa(f"Who wrote {facts['work']}?", a["name"], [claim(a["name"], "best-known work", facts["work"])])
    assert audit_qa(reversed_claim, world)[0]["correct"] is True
    assert literal_values("12 March 1874") == literal_values("1874-03-12") == {("date", "1874-03-12")}
    assert literal_values("1,204") == {("number", 1204)}
    family = {**reversed_claim, "question": f"Which work is {a['name'].split()[-1]} best known for?"}
    family |= {"answer": facts["work"], "claims": [claim(a["name"].split()[-1], "notable work", facts["work"])]}
    assert audit_qa(family, world)[0]["correct"] is True  # "Vael" resolves like prose refers to people


def trajectory(q: dict, rollout: int, prediction: str, tool_text: str) -> dict:
    messages = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": q["question"]},
        {"role": "tool", "name": "search", "tool_call_id": "c", "content": tool_text},
        {"role": "assistant", "content": f"<answer>{prediction}</answer>"},
    ]
    return {
        "id": record_id("trajectory", q["id"], rollout),
        "question_id": q["id"],
        "question": q["question"],
        "answer": q["answer"],
        "rollout": rollout,
        "messages": messages,
        "tools": TOOLS,
        "termination": "answer",
        "prediction": prediction,
        "stats": {"llm_calls": 1, "actions": 1, "tokens": 9},
        "meta": {"model": "hand"},
    }


@pytest.fixture(scope="module")
def run(records, facts, site_dir, tmp_path_factory) -> Path:
    """A run directory: a crawl of the site, QA kept and dropped at each stage, trajectories and their fates."""
    run = tmp_path_factory.mktemp("audited") / "run"
    (run / "site").parent.mkdir(parents=True, exist_ok=True)
    (run / "site").symlink_to(site_dir)
    write_records(site_page_records(site_dir, BASE), run / "crawl" / "pages" / "00000.jsonl.gz", kind="page")
    kept = [records[k] for k in ("correct", "wrong", "chain")]
    write_records(kept, run / "filter" / "records" / "00000.jsonl.gz", kind="qa")
    dropped = [{"stage": "filter", "reason": "ambiguous_answer", "record": records["ambiguous"]}]
    write_records(dropped, run / "filter" / "rejects" / "00000.jsonl.gz")
    leak = records["leaked"]
    candidate = {"stage": "crawlqa", "reason": "answer_in_question", "candidate": {**leak, "id": None}}
    unparseable = {"stage": "crawlqa", "reason": "unparseable", "raw": "Sure!"}
    write_records([candidate, unparseable], run / "synth" / "crawlqa" / "rejects" / "00000.jsonl.gz")
    good, wrong = records["correct"], records["wrong"]
    ts = [
        trajectory(good, 0, facts["town"], f"{facts['person']} was born in {facts['town']}."),
        trajectory(good, 1, facts["other_town"], "nothing useful"),
        trajectory(wrong, 0, facts["town"], f"born in {facts['town']}"),
    ]
    write_records(ts, run / "sample" / "records" / "00000.jsonl.gz", kind="trajectory")
    write_records(ts[:2], run / "funnel" / "records" / "00000.jsonl.gz", kind="trajectory")
    write_records(
        [{"stage": "correctness", "reason": "incorrect", "record": ts[2]}], run / "funnel" / "rejects" / "0.jsonl"
    )
    judged = [
        {"item_id": ts[0]["id"], "correct": True},
        {"item_id": ts[1]["id"], "correct": True},
        {"item_id": ts[2]["id"], "correct": False},
    ]
    write_records(judged, run / "funnel" / "judgements" / "00000.jsonl.gz")
    return run


def test_audit_writes_verdicts_and_figures(run, records):
    summary = audit(run)
    verdicts = {v["id"]: v for v in read_records(run / "audit" / "records")}
    assert json.loads((run / "audit" / "summary.json").read_text()) == summary
    assert verdicts[records["ambiguous"]["id"]]["status"] == "rejected"
    assert verdicts[records["ambiguous"]["id"]]["reason"] == "filter:ambiguous_answer"
    assert verdicts[records["leaked"]["id"]]["reason"] == "crawlqa:answer_in_question"
    assert verdicts[records["correct"]["id"]]["status"] == "final"  # it has a kept trajectory
    qa = summary["qa"]
    assert qa["all"]["n"] == 5 and qa["kept"] == {**qa["kept"], "n": 3, "correct": 2, "good": 2}
    assert qa["final"]["n"] == 1 and summary["precision"] == {"kept": round(2 / 3, 4), "final": 1.0}
    assert summary["hops"] == {"crawlqa": {"0": {"n": 4, "mean": 1.0}}, "e2hqa": {"0": {"n": 1, "mean": 2.0}}}
    t = summary["trajectories"]
    # the judge accepted a wrong answer once, and rejected the true answer to a question whose gold is wrong
    assert (t["n"], t["judged"], t["agree"], t["false_accepts"], t["false_rejects"]) == (3, 3, 1, 1, 1)
    assert t["false_rejects_wrong_gold"] == 1 and t["in_tool_response"] == 2
    assert t["kept"] == 2 and t["precision"] == 0.5
    lines = describe(summary)
    assert lines[0].startswith("audit against the ground truth") and "precision" in "\n".join(lines)


def test_trajectory_verdict_needs_a_resolved_question(records, world):
    t = trajectory(records["unresolved"], 0, "Blue Moon Tavern", "")
    assert audit_trajectory(t, None, world, True, "kept")["truth"] is None


def test_wdtk_audit_and_the_report_section(run, site_dir):
    result = CliRunner().invoke(main, ["audit", str(run), "--truth", str(site_dir)], catch_exceptions=False)
    assert result.exit_code == 0 and "kept by the checks" in result.output and "audit/summary.json" in result.output
    figures = gather(run)
    assert figures["audit"]["precision"]["final"] == 1.0
    assert 'id="precision">100.0%' in render(figures)


def test_audit_of_a_crawl_of_another_site_fails_with_one_line(tmp_path, site_dir):
    page = {**site_page_records(site_dir, "https://halvard.example")[0], "url": "https://halvard.example/x"}
    page["final_url"] = page["url"]
    write_records([page], tmp_path / "crawl" / "pages" / "00000.jsonl.gz", kind="page")
    result = CliRunner().invoke(main, ["audit", str(tmp_path)])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "has no ground truth" in result.output
    result = CliRunner().invoke(main, ["audit", str(tmp_path), "--truth", str(site_dir)])
    assert result.exit_code == 1 and "is not of the generated site" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "has no ground truth" in report_figures(tmp_path)["unavailable"]


def test_names_the_site_lists_resolve_and_count_as_leaks():
    person = {"id": "e1", "type": "person", "name": "Dorn Vael", "url": "/wiki/Dorn_Vael.html", "aliases": ["D. Vael"]}
    redirect = {"from": "/wiki/Vael,_Dorn.html", "final": "/wiki/Dorn_Vael.html"}
    world = World({"entities": [person], "facts": [], "redirects": [redirect]})
    for name in ("Dorn Vael", "Vael, Dorn", "D. Vael", "Vael", "'Dorn Vael'"):
        assert ("entity", "e1") in world.resolve(name), name
    assert world.leak_names("e1") == ["Dorn Vael", "D. Vael", "Vael, Dorn", "Vael"]
