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


def _qa(question: str, answer: str, **extra) -> dict:
    from wdtk.schemas import record_id

    return {**QA, "id": record_id("qa", question, answer), "question": question, "answer": answer, **extra}


def test_filter_stage_drops_with_reasons_and_points_duplicates_to_the_first(tmp_path):
    from wdtk.filters.dedup import DedupConfig
    from wdtk.filters.qa_filter import FilterConfig, run
    from wdtk.schemas import read_records, write_records

    base = "Which cartographer, born in the river town of Tarnholm, drew the first atlas of the northern coast?"
    records = [
        _qa("What is the river called?", "Aln"),  # short but fine: kept
        _qa(base, "Arlen Voss"),
        _qa(base.upper(), "Arlen Voss"),  # exact duplicate once normalised
        _qa(base.replace("coast?", "shore?"), "Arlen Voss"),  # near duplicate: Jaccard 14/16 on word 3-grams
        _qa("Is Arlen Voss the cartographer from Tarnholm who drew the atlas?", "Arlen Voss"),  # leaks the answer
        _qa(
            "Which society published the treatise on tidal clocks that Orvan Press later reprinted in 1902?",
            "Keldra Society",
        ),  # matches the evaluation set
        {**QA, "id": "bad"},  # malformed
    ]
    write_records(records, tmp_path / "in.jsonl")
    evals = tmp_path / "eval.jsonl"
    evals.write_text(
        json.dumps(
            {
                "id": "w7",
                "question": "Which society published the treatise on tidal clocks that Orvan Press later reprinted?",
            }
        )
        + "\n"
    )
    cfg = FilterConfig(decontam=DecontamConfig(ngram=8), dedup=DedupConfig(threshold=0.5))
    summary = run([tmp_path / "in.jsonl"], tmp_path / "out", cfg, [evals])
    kept = list(read_records(tmp_path / "out" / "records", kind="qa"))
    assert [r["question"] for r in kept] == ["What is the river called?", base]
    assert summary["in"] == 7 and summary["kept"] == 2
    assert summary["dropped"] == {
        "duplicate_exact": 1,
        "duplicate_near": 1,
        "answer_in_question": 1,
        "contaminated": 1,
        "malformed": 1,
    }
    rejects = {r["reason"]: r for r in read_records(tmp_path / "out" / "rejects")}
    assert rejects["duplicate_exact"]["duplicate_of"] == rejects["duplicate_near"]["duplicate_of"] == records[1]["id"]
    assert rejects["contaminated"]["eval_match"]["eval_id"] == "w7"
    again = run([tmp_path / "in.jsonl"], tmp_path / "out", cfg, [evals])
    assert again == {**summary, "seconds": again["seconds"]}  # a rerun replaces, not appends
    assert len(list(read_records(tmp_path / "out" / "records"))) == 2


def test_wdtk_filter_command(tmp_path):
    from click.testing import CliRunner

    from wdtk.cli import main
    from wdtk.schemas import write_records

    question = "Which cartographer drew the first atlas of the northern coast of Tarnholm?"
    write_records([_qa(question, "Arlen Voss"), _qa(question.lower(), "Arlen Voss")], tmp_path / "qa.jsonl")
    result = CliRunner().invoke(main, ["filter", str(tmp_path / "qa.jsonl"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "kept 1 of 2 qa records" in result.output and "duplicate_exact 1" in result.output
    (tmp_path / "eval.jsonl").write_text('{"answer": "x"}\n')
    bad = CliRunner().invoke(
        main,
        ["filter", str(tmp_path / "qa.jsonl"), "-o", str(tmp_path / "o2"), "--eval", str(tmp_path / "eval.jsonl")],
    )
    assert bad.exit_code == 1 and "eval.jsonl: record 1: no question field" in bad.output
