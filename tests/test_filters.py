"""QA quality and decontamination filters: every drop reason, and evaluation matches recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wdtk.filters.decontam import DecontamConfig, EvalIndex, ngrams
from wdtk.filters.quality import QualityConfig, drop_reason, is_question
from wdtk.schemas import RecordError

QA = json.loads((Path(__file__).parent / "data" / "records" / "qa.json").read_text())


def qa(**changes) -> dict:
    return {**QA, **changes}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"answer": "  "}, "empty_answer"),  # the schema's minLength lets whitespace through; normalising does not
        ({"answer": "..."}, "empty_answer"),
        ({"answer": ""}, "malformed"),
        ({"answer": "a very long answer that goes on and on for many more words than allowed"}, "answer_too_long"),
        (
            {"question": "Is Tarnholm the birthplace of the founder of the Keldra Society?", "answer": "Tarnholm"},
            "answer_in_question",
        ),
        ({"question": "Tell me about the Keldra Society founder."}, "not_a_question"),
        ({"question": "Founder?"}, "not_a_question"),
        ({"id": "not-a-hash"}, "malformed"),
    ],
)
def test_every_quality_reason(changes, reason):
    assert drop_reason(qa(**changes), QualityConfig()) == reason


def test_hops_required_for_difficulty():
    hop = {"entity": "X", "query": "X", "evidence_urls": [], "question_before": "Who is X?", "question_after": "Who?"}
    assert drop_reason(qa(hops=[hop]), QualityConfig(min_hops=2)) == "too_few_hops"
    assert drop_reason(qa(hops=[hop, hop]), QualityConfig(min_hops=2)) is None


def test_is_question():
    assert is_question("Name the river that crosses Tarnholm")
    assert is_question("The river through Tarnholm is called what?")
    assert not is_question("The river through Tarnholm.")


def test_decontamination_finds_long_overlaps_and_records_the_item(tmp_path):
    gaia = tmp_path / "gaia.jsonl"
    rows = [
        {
            "task_id": "g1",
            "Question": "In the year the observatory at Quelathstead opened, which cartographer "
            "published the first complete atlas of the northern coast?",
        },
        {"task_id": "g2", "Question": "Who founded Keldra?"},
    ]
    gaia.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    index = EvalIndex.from_files([gaia], DecontamConfig(ngram=8))
    hit = index.match("Tell me: which cartographer published the first complete atlas of the northern coast, please?")
    assert hit["eval_id"] == "g1" and hit["eval_record"] == 1 and hit["eval_file"] == str(gaia)
    assert hit["ngram"] in ngrams(rows[0]["Question"], 8)
    assert index.match("So, who founded Keldra? Asked in 1901.")["eval_id"] == "g2"  # short question, whole
    assert index.match("Which cartographer drew the southern coast in 1901, and for whom?") is None


def test_eval_file_without_questions_names_the_record(tmp_path):
    bad = tmp_path / "eval.jsonl"
    bad.write_text(json.dumps({"problem": "Fine?"}) + "\n" + json.dumps({"answer": "x"}) + "\n")
    with pytest.raises(RecordError, match=r"eval.jsonl: record 2: no question field"):
        EvalIndex.from_files([bad], DecontamConfig())
