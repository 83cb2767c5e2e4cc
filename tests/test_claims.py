"""Claims on synthesised QA: CRAWLQA and E2HQA ask for them, check each against its source page, store them."""

from __future__ import annotations

import json
import re

import pytest
from servers.truth_model import TruthModel
from test_synth import backends, index_dir  # noqa: F401  (a fixture and a helper shared with test_synth)

from wdtk.report.truth import World
from wdtk.report.verdicts import audit_qa
from wdtk.schemas import read_records, write_records
from wdtk.synth import claims as claimlib
from wdtk.synth import crawlqa, e2hqa
from wdtk.synth.parallel import RunOptions


def test_the_text_check_binding_and_what_carries_the_answer():
    claim = {"subject": "Dorn Vael", "relation": "birthplace", "object": "Tarnholm"}
    assert claimlib.text_supports(claim, "Dorn Vael grew up in Tarnholm, where he was born.")
    assert not claimlib.text_supports(claim, "Dorn Vael grew up in Karsk.")
    assert claimlib.text_supports({**claim, "subject": "?x"}, "born in Tarnholm")  # a variable need not appear
    assert not claimlib.text_supports({**claim, "subject": "?x", "object": "?y"}, "anything")
    assert claimlib.carries(claim, "tarnholm") and not claimlib.carries(claim, "Karsk")
    bound = claimlib.bind([claim, {**claim, "subject": "?x"}], "?e1", name="dorn vael", old_var="?x")
    assert [c["subject"] for c in bound] == ["?e1", "?e1"]
    assert claimlib.clean([{"subject": " A ", "relation": "r", "object": 3}, {"subject": "", "relation": "r"}]) == [
        {"subject": "A", "relation": "r", "object": "3"}
    ]


def test_crawlqa_records_carry_claims_true_of_the_world(openai_server, truth, site_server, pages_file, tmp_path):  # noqa: F811
    openai_server.responder = TruthModel(truth, site_server)
    summary = crawlqa.run(
        pages_file, tmp_path / "out", crawlqa.CrawlQAConfig(), backends(openai_server, tmp_path),
        RunOptions(workers=0), max_groups=8,
    )  # fmt: skip
    kept = list(read_records(tmp_path / "out" / "records", kind="qa"))
    assert kept and summary["rejected"]["unsupported"] >= 1
    world = World(truth)
    for record in kept:
        assert any(claimlib.carries(c, record["answer"]) for c in record["claims"])
        assert all(
            c["checked"] in ("text", "llm") and c["source_url"].startswith(site_server) for c in record["claims"]
        )
        verdict, _ = audit_qa(record, world)
        assert verdict["correct"] and verdict["unique"], verdict["why"]


def fact_on_a_page(truth, base: str) -> tuple[dict, str, str]:
    """An entity-valued fact stated on its subject's page: (fact, subject name, page URL)."""
    names = {e["id"]: e["name"] for e in truth["entities"]}
    url_of = {e["id"]: e["url"] for e in truth["entities"]}
    fact = next(f for f in truth["facts"] if f["object_type"] == "entity" and url_of[f["subject"]] in f["pages"])
    return fact, names[fact["subject"]], base + url_of[fact["subject"]]


def test_each_claim_check_rejects_with_its_reason(openai_server, truth, site_server, pages_file, tmp_path):  # noqa: F811
    fact, subject, root = fact_on_a_page(truth, site_server)
    answer = fact["object_text"]
    good = {"subject": subject, "relation": fact["relation"], "object": answer, "source_url": root}
    pair = {"type": "MULTI-HOP", "question": f"What is the {fact['relation']} of {subject}?", "answer": answer,
            "evidence_urls": [root]}  # fmt: skip
    pairs = [
        {**pair, "question": "Q1, without claims?"},
        {**pair, "question": "Q2, claims without the answer?", "claims": [{**good, "object": "?x"}]},
        {**pair, "question": "Q3, a page outside the group?", "claims": [{**good, "source_url": "http://else.where/"}]},
        {**pair, "question": "Q4, the page does not say so?", "claims": [good, {**good, "object": "Karsk Moor"}]},
        {**pair, "question": "Q5, the LLM confirms it?", "claims": [
            {**good, "relation": "r", "object": "?y"}, good, {**good, "subject": "?z", "object": "a reworded fact"}]},
    ]  # fmt: skip
    asked = []

    def responder(body):
        prompt = body["messages"][-1]["content"]
        if prompt.startswith("You write question-answer pairs"):
            return json.dumps({"qa": pairs})
        if prompt.startswith("Decide whether the web page below states a claim"):
            obj = re.search(r"^- object: (.*)$", prompt, flags=re.M).group(1)
            asked.append(obj)
            return json.dumps({"supported": obj == "a reworded fact"})
        return json.dumps({"supported": True})

    openai_server.responder = responder
    [group] = [g for g in crawlqa.page_groups(read_records(pages_file), crawlqa.CrawlQAConfig()) if g["root"] == root]
    members = {m["url"] for m in group["pages"][1:]}
    pages = [p for p in read_records(pages_file) if p["url"] == root]  # the root first, its links its group's pages
    pages += [{**p, "links": []} for p in read_records(pages_file) if p["url"] in members]
    path = tmp_path / "group.jsonl"
    write_records(pages, path, kind="page")
    summary = crawlqa.run(path, tmp_path / "out", crawlqa.CrawlQAConfig(), backends(openai_server, tmp_path),
                          RunOptions(workers=0), max_groups=1)  # fmt: skip
    rejects = {r["candidate"]["question"][:2]: r["reason"] for r in read_records(tmp_path / "out" / "rejects")}
    assert rejects == {"Q1": "no_claims", "Q2": "answer_not_in_claims", "Q3": "claim_source_unknown",
                       "Q4": "claim_unsupported"}  # fmt: skip
    [kept] = read_records(tmp_path / "out" / "records", kind="qa")
    assert [c["checked"] for c in kept["claims"]] == ["text", "text", "llm"] and summary["kept"] == 1
    assert asked == ["Karsk Moor", "a reworded fact"]  # the LLM sees only what the text check missed


@pytest.fixture
def seeds(truth, tmp_path) -> list[dict]:
    """SimpleQA-style rows, without claims: "Where was P born?"."""
    names = {e["id"]: e["name"] for e in truth["entities"]}
    people = [e for e in truth["entities"] if e["type"] == "person" and e["attributes"].get("birthplace")][:3]
    return [
        {"problem": f"Where was {p['name']} born?", "answer": names[p["attributes"]["birthplace"]]} for p in people
    ]


def run_e2hqa(server, seeds: list[dict], index, tmp_path) -> tuple[list[dict], list[dict]]:
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in seeds))
    e2hqa.run(path, tmp_path / "out", e2hqa.E2HQAConfig(rewrites=1), backends(server, tmp_path, f"bm25:{index}"),
              RunOptions(workers=0))  # fmt: skip
    rejects = tmp_path / "out" / "rejects"
    return list(read_records(tmp_path / "out" / "records", kind="qa")), list(read_records(rejects))


def test_e2hqa_hops_carry_their_descriptions_claims(openai_server, truth, site_server, index_dir, seeds, tmp_path):  # noqa: F811
    openai_server.responder = TruthModel(truth, site_server)
    kept, _ = run_e2hqa(openai_server, seeds, index_dir, tmp_path)
    assert len(kept) == len(seeds)
    asked = [r["messages"][-1]["content"] for r in openai_server.requests]
    assert sum(p.startswith("List the facts the question below") for p in asked) == len(seeds)  # claimless seeds
    world = World(truth)
    for record in kept:
        [hop] = record["hops"]
        assert hop["claims"] and all(c["subject"] == "?e1" and c["source_url"] for c in hop["claims"])
        seed_claim = record["claims"][0]  # the seed's fact, its subject now the described entity
        assert seed_claim["subject"] == "?e1" and "source_url" not in seed_claim
        assert record["claims"][1:] == hop["claims"]
        verdict, _ = audit_qa(record, world)
        assert (verdict["correct"], verdict["unique"], verdict["hops"]) == (True, True, 2), verdict["why"]


def test_an_unstated_description_is_rejected(openai_server, truth, site_server, index_dir, seeds, tmp_path):  # noqa: F811
    careful = TruthModel(truth, site_server)

    def responder(body):
        reply = careful(body)
        if body["messages"][-1]["content"].startswith("Write a short description"):
            described = json.loads(reply)
            described["claims"][0]["object"] = "Karsk Moor"  # a fact no page states
            return json.dumps(described)
        return reply

    openai_server.responder = responder
    kept, rejects = run_e2hqa(openai_server, seeds, index_dir, tmp_path)
    assert kept == [] and {r["reason"] for r in rejects} == {"claim_unsupported"}
    candidate = rejects[0]["candidate"]
    assert candidate["question"] == rejects[0]["question_after"] and any(
        c["object"] == "Karsk Moor" for c in candidate["claims"]
    )
