"""Answer uniqueness by search (synth/rivals.py), through the gates of `wdtk filter` (filters/gates.py): a question
with a planted second answer on the generated site is dropped as ambiguous with the rival recorded, a question with
one answer is kept; the scripted model judges candidates from the site's truth."""

from __future__ import annotations

from collections import defaultdict

from servers.truth_model import TruthModel

from wdtk.filters.gates import GatesConfig
from wdtk.filters.gates import run as run_gates
from wdtk.report.truth import World
from wdtk.report.verdicts import audit_qa
from wdtk.schemas import read_records, record_id, write_records
from wdtk.synth.parallel import Backends, RunOptions
from wdtk.synth.rivals import RivalConfig, candidates, queries
from wdtk.synth.search.base import Hit


def qa(question: str, answer: str, claims: list[dict]) -> dict:
    return {"id": record_id("qa", question, answer), "question": question, "answer": answer, "type": "MULTI-HOP",
            "source": "crawlqa", "evidence_urls": [], "claims": claims, "meta": {}}  # fmt: skip


def born_in(truth: dict) -> tuple[str, list[str]]:
    """A place with several people born there, and their names."""
    names = {e["id"]: e["name"] for e in truth["entities"]}
    people = defaultdict(list)
    for f in truth["facts"]:
        if f["relation"] == "birthplace":
            people[f["object"]].append(names[f["subject"]])
    place = max(sorted(people), key=lambda p: len(people[p]))
    return names[place], sorted(people[place])


def test_a_planted_second_answer_is_dropped_and_a_unique_answer_kept(
    openai_server, truth, site_server, qa_run, tmp_path
):
    openai_server.responder = TruthModel(truth, site_server)
    place, people = born_in(truth)
    assert len(people) >= 3
    ambiguous = qa(f"Which person was born in {place}?", people[0], [
        {"subject": people[0], "relation": "birthplace", "object": place}])  # fmt: skip
    unique = qa(f"Where was {people[1]} born?", place, [
        {"subject": people[1], "relation": "birthplace", "object": place}])  # fmt: skip
    world = World(truth)
    assert audit_qa(ambiguous, world)[0]["unique"] is False and audit_qa(unique, world)[0]["unique"] is True
    path = tmp_path / "qa.jsonl"
    write_records([ambiguous, unique], path)
    b = Backends("openai:truth", openai_server.base_url, str(tmp_path / "c.sqlite"), f"bm25:{qa_run / 'index'}")
    summary = run_gates([path], tmp_path / "out", GatesConfig(rivals=RivalConfig()), b, RunOptions(workers=0))
    assert summary["kept"] == 1 and summary["rejected"] == {"ambiguous": 1}
    (dropped,) = read_records(tmp_path / "out" / "rejects")
    assert dropped["record"]["id"] == ambiguous["id"] and dropped["rival"]["name"] in people[1:]
    assert dropped["rival"]["url"].startswith(site_server)  # the page that names it (here the category page)
    (kept,) = read_records(tmp_path / "out" / "records", kind="qa")
    assert kept["id"] == unique["id"] and kept["meta"]["uniqueness"]["candidates"]
    assert not any(u.endswith(f"/wiki/{place}.html") for u in kept["meta"]["uniqueness"]["candidates"])  # the gold's
    checks = [r["messages"][0]["content"] for r in openai_server.requests]
    assert all(c.startswith("A question was written to have exactly one correct answer") for c in checks)
    assert any(dropped["rival"]["url"] in c and f'"object": "{place}"' in c for c in checks)


def test_queries_and_candidates_come_from_the_question_and_its_claims():
    claims = [
        {"subject": "?e1", "relation": "occupation", "object": "astronomer"},
        {"subject": "?e1", "relation": "date of birth", "object": "2 May 1850", "approx": "the 1850s"},
        {"subject": "?e1", "relation": "employer", "object": "Vael Bank"},
        {"subject": "Vael Bank", "relation": "headquarters", "object": "Tarnholm"},
    ]
    record = qa("Where is the bank that employed an astronomer born in the 1850s based?", "Tarnholm", claims)
    assert queries(record, RivalConfig(max_queries=5)) == [record["question"], "headquarters Vael Bank"]
    record = {**record, "claims": [*claims[:2], {"subject": "?e1", "relation": "birthplace", "object": "Tarnholm"}]}
    assert queries(record, RivalConfig(max_queries=5))[1] == "birthplace astronomer the 1850s"
    hits = [Hit(f"{t} - The Compendium", f"http://x/{t}", "") for t in ("Tarnholm", "Ostvale", "Vael Bank", "Ostvale")]
    pages = candidates(record, hits, RivalConfig())
    assert [c["title"] for c in pages] == ["Ostvale", "Vael Bank"]  # not the gold answer's page, each page once
