"""Answer uniqueness from a record's claims (filters/uniqueness.py), alone and inside `wdtk filter`."""

from __future__ import annotations

from wdtk.filters.qa_filter import FilterConfig, run
from wdtk.filters.quality import QualityConfig, drop_reason
from wdtk.filters.uniqueness import UniquenessConfig, open_variables
from wdtk.filters.uniqueness import drop_reason as ambiguity
from wdtk.schemas import read_records, record_id, write_records

CFG = UniquenessConfig()


def qa(question: str, answer: str, claims: list[tuple[str, str, str]], qtype: str = "MULTI-HOP") -> dict:
    return {
        "id": record_id("qa", question, answer),
        "question": question,
        "answer": answer,
        "type": qtype,
        "source": "e2hqa",
        "evidence_urls": [],
        "claims": [{"subject": s, "relation": r, "object": o} for s, r, o in claims],
        "meta": {},
    }


def test_what_pins_an_answer_and_what_leaves_it_open():
    birthplace = qa("Where was Dorn Vael born?", "Tarnholm", [("Dorn Vael", "birthplace", "Tarnholm")])
    who = qa("Who was born in Tarnholm?", "Dorn Vael", [("Dorn Vael", "birthplace", "Tarnholm")])
    two = qa("Which poet was born in Tarnholm?", "Dorn Vael",
             [("Dorn Vael", "birthplace", "Tarnholm"), ("Dorn Vael", "occupation", "poet")])  # fmt: skip
    chain = qa("Where was the author of The Grey Harbour born?", "Tarnholm",
               [("The Grey Harbour", "author", "?e1"), ("?e1", "birthplace", "Tarnholm")])  # fmt: skip
    vague = qa("What is the best-known work of the poet?", "The Grey Harbour",
               [("?e1", "occupation", "poet"), ("?e1", "notable work", "The Grey Harbour")])  # fmt: skip
    count = qa("How many people were born in Tarnholm?", "7", [("?x", "birthplace", "Tarnholm")], "COUNT")
    assert [ambiguity(r, CFG) for r in (birthplace, who, two, chain, vague, count)] == [
        None, "ambiguous_answer", None, None, "ambiguous_description", None]  # fmt: skip
    assert ambiguity(two, UniquenessConfig(min_constraints=3)) == "ambiguous_answer"
    assert open_variables([{"subject": "?a", "relation": "r", "object": "?b"}], CFG) == ["?a", "?b"]
    assert ambiguity({**birthplace, "claims": []}, CFG) is None  # nothing to judge by: left to the audit


def test_the_filter_drops_open_answers_and_answer_words_in_the_question(tmp_path):
    keep = qa("Where was Dorn Vael born?", "Tarnholm", [("Dorn Vael", "birthplace", "Tarnholm")])
    who = qa("Who was born in Tarnholm?", "Dorn Vael", [("Dorn Vael", "birthplace", "Tarnholm")])
    leak = qa("Who married Ava Lund (listed as Vael, Dorn)?", "Dorn Vael", [("Ava Lund", "spouse", "Dorn Vael")])
    assert drop_reason(leak, QualityConfig()) == "answer_words_in_question"
    write_records([keep, who, leak], tmp_path / "qa.jsonl", kind="qa")
    summary = run([tmp_path / "qa.jsonl"], tmp_path / "out", FilterConfig())
    assert summary["kept"] == 1 and summary["dropped"] == {"ambiguous_answer": 1, "answer_words_in_question": 1}
    assert [r["id"] for r in read_records(tmp_path / "out" / "records")] == [keep["id"]]
    assert run([tmp_path / "qa.jsonl"], tmp_path / "off", FilterConfig(uniqueness=None))["kept"] == 2
