"""CRAWLQA and E2HQA against a real local OpenAI-compatible server whose replies come from the site's truth.

The scripted "model" reads the rendered prompt the way an LLM would (page URLs, question, entity) and
answers from the generated site's ground truth, mixing in pairs that must be rejected, so the tests
check the prompts we send, the parsing, every check and its reject reason, and the kept answers
against the truth.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from servers.kill import sigkill_after_requests
from servers.truth_model import TruthModel

from wdtk.schemas import read_records, write_records
from wdtk.synth import crawlqa, e2hqa
from wdtk.synth.parallel import Backends, RunOptions, StageInputChanged

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def truth_server(openai_server, truth, site_server):
    openai_server.responder = TruthModel(truth, site_server)
    return openai_server


def backends(server, tmp_path, search=None) -> Backends:
    return Backends(
        model="openai:truth-model",
        api_base=server.base_url,
        cache_path=str(tmp_path / "cache.sqlite"),
        search=search,
        concurrency=8,
    )


def test_crawlqa_keeps_grounded_pairs_and_rejects_the_rest_by_reason(truth_server, pages_file, truth, tmp_path):
    cfg = crawlqa.CrawlQAConfig()
    summary = crawlqa.run(
        pages_file,
        tmp_path / "out",
        cfg,
        backends(truth_server, tmp_path),
        RunOptions(workers=0, partition_size=4),
        max_groups=12,
    )
    kept = list(read_records(tmp_path / "out" / "records", kind="qa"))
    assert kept and summary["kept"] == len(kept)
    objects = {f["object_text"] for f in truth["facts"]}
    assert all(r["answer"] in objects and r["type"] == "MULTI-HOP" and r["source"] == "crawlqa" for r in kept)
    for reason in (
        "answer_in_question",
        "type_not_requested",
        "count_not_a_number",
        "evidence_not_in_group",
        "unsupported",
    ):
        assert summary["rejected"][reason] >= 1, reason
    rejects = list(read_records(tmp_path / "out" / "rejects"))
    assert {r["reason"] for r in rejects} >= {"unsupported", "answer_in_question"}
    # the prompt carried the group's pages and only the requested types
    prompt = truth_server.requests[0]["messages"][0]["content"]
    assert "[Page 1]" in prompt and "URL: " in prompt and "- COUNT:" in prompt and "- SIMPLE:" not in prompt
    assert kept[0]["meta"]["prompt_version"] == crawlqa.load_prompt("crawlqa").version


def test_unparseable_output_is_rejected_with_the_raw_text(openai_server, pages_file, tmp_path):
    openai_server.responder = lambda body: "Sure! Here are some questions: 1. What is ..."
    summary = crawlqa.run(
        pages_file,
        tmp_path / "out",
        crawlqa.CrawlQAConfig(),
        backends(openai_server, tmp_path),
        RunOptions(workers=0),
        max_groups=2,
    )
    assert summary["kept"] == 0 and summary["rejected"] == {"unparseable": 2}
    rejects = list(read_records(tmp_path / "out" / "rejects"))
    assert rejects[0]["raw"].startswith("Sure! Here are")


def test_a_rerun_resumes_and_pays_no_call_twice(truth_server, pages_file, tmp_path):
    def run(groups=6, size=2, cfg=None):
        cfg, opts = cfg or crawlqa.CrawlQAConfig(), RunOptions(workers=0, partition_size=size)
        return crawlqa.run(pages_file, tmp_path / "out", cfg, backends(truth_server, tmp_path), opts, groups)

    first = run()
    calls = truth_server.request_count
    second = run(size=3)  # partitions only schedule work: another size resumes just as well
    assert truth_server.request_count == calls and second["partitions"] == 0 and second["resumed_partitions"] == 3
    assert second["kept"] == first["kept"] and second["inputs"]["resumed"] == 6
    # extended without --restart: only the 3 new groups run, nothing finished is redone or lost
    truth_server.reset()
    third = run(groups=9)
    inputs = third["inputs"]
    assert inputs["total"] == 9 and inputs["resumed"] == 6 and inputs["kept"] + inputs["rejected"] == 9
    assert third["kept"] >= first["kept"] and third["partitions"] == 2
    prompts = [r for r in truth_server.requests if r["messages"][0]["content"].startswith("You write question")]
    assert len(prompts) == 3
    ids = [r["id"] for r in read_records(tmp_path / "out" / "records", kind="qa")]
    assert len(ids) == len(set(ids)) == third["kept"]
    with pytest.raises(StageInputChanged, match="options"):  # a truly different run is still refused
        run(groups=9, cfg=crawlqa.CrawlQAConfig(per_type=2))
    with pytest.raises(StageInputChanged, match="lacks"):  # and so is one that would drop finished inputs
        run(groups=4)


@pytest.fixture(scope="module")
def index_dir(pages_file, tmp_path_factory) -> Path:
    from wdtk.synth.search.bm25 import build_index

    out = tmp_path_factory.mktemp("index")
    build_index(pages_file, out)
    return out


def test_e2hqa_records_every_hop_and_keeps_the_answer(truth_server, index_dir, truth, tmp_path):
    people = [e for e in truth["entities"] if e["type"] == "person" and e["attributes"].get("birthplace")]
    names = {e["id"]: e["name"] for e in truth["entities"]}
    seeds = tmp_path / "seeds.jsonl"
    rows = [
        {"problem": f"Where was {p['name']} born?", "answer": names[p["attributes"]["birthplace"]]} for p in people[:4]
    ]
    seeds.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    summary = e2hqa.run(
        seeds,
        tmp_path / "out",
        e2hqa.E2HQAConfig(rewrites=2),
        backends(truth_server, tmp_path, search=f"bm25:{index_dir}"),
        RunOptions(workers=0),
    )
    kept = list(read_records(tmp_path / "out" / "records", kind="qa"))
    assert summary["kept"] == len(kept) == 4
    by_seed = {r["hops"][0]["question_before"]: r for r in kept}  # records come in the order they finished
    for row in rows:
        record = by_seed[row["problem"]]
        assert record["answer"] == row["answer"] and record["source"] == "e2hqa"
        first = record["hops"][0]
        assert first["question_before"] == row["problem"] and first["entity"] in row["problem"]
        assert first["entity"] not in first["question_after"] and first["evidence_urls"]
        assert record["question"] == record["hops"][-1]["question_after"]
    # round 2 finds no named entity left but the answer's: rejected, previous question kept
    assert summary["rejected"].get("entity_is_answer", 0) + summary["rejected"].get("entity_not_in_question", 0) >= 1


def test_seed_rows_without_an_answer_fail_with_the_record_number(tmp_path):
    with pytest.raises(ValueError, match=r"seeds.jsonl: record 2: seed has no answer"):
        e2hqa.seed_record({"problem": "Who?"}, "seeds.jsonl", 1)  # the second row, counted from 0


def test_dask_local_cluster_gives_the_same_records(truth_server, pages_file, tmp_path):
    here = crawlqa.run(
        pages_file,
        tmp_path / "here",
        crawlqa.CrawlQAConfig(),
        backends(truth_server, tmp_path),
        RunOptions(workers=0, partition_size=3),
        max_groups=6,
    )
    dask = crawlqa.run(
        pages_file,
        tmp_path / "dask",
        crawlqa.CrawlQAConfig(),
        backends(truth_server, tmp_path),
        RunOptions(workers=2, partition_size=3),
        max_groups=6,
    )
    assert dask["kept"] == here["kept"] and dask["partitions"] == 2
    ids = lambda d: sorted(r["id"] for r in read_records(d / "records"))  # noqa: E731
    assert ids(tmp_path / "dask") == ids(tmp_path / "here")


def test_sigkilled_run_finishes_with_every_record_once_and_no_repeated_call(
    openai_server, truth, site_server, pages_file, tmp_path
):
    openai_server.responder = TruthModel(truth, site_server)
    openai_server.latency = 0.15
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "wdtk.cli",
        "synth",
        "crawlqa",
        str(pages_file),
        "-o",
        str(out),
        "--model",
        "openai:truth-model",
        "--api-base",
        openai_server.base_url,
        "--workers",
        "0",
        "--partition-size",
        "2",
        "--max-groups",
        "10",
        "--concurrency",
        "2",
    ]
    sigkill_after_requests(cmd, openai_server, 9)
    assert not (out / "summary.json").exists()
    first = openai_server.request_count
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    records = list(read_records(out / "records", kind="qa"))
    assert len({r["id"] for r in records}) == len(records) > 0
    from wdtk.synth.guards import PING  # each run's test request before any work

    bodies = [json.dumps(r["messages"], sort_keys=True) for r in openai_server.requests if r["messages"] != PING]
    repeated = len(bodies) - len(set(bodies))
    assert repeated <= 2  # at most the calls in flight when it was killed (concurrency 2)
    assert openai_server.request_count > first


def test_wdtk_index_and_wdtk_synth_with_rewrites(truth_server, pages_file, tmp_path):
    run_dir = tmp_path / "run"
    write_records(read_records(pages_file), run_dir / "crawl" / "pages", kind="page")
    env_free = [sys.executable, "-m", "wdtk.cli"]
    index = subprocess.run(
        [*env_free, "index", str(run_dir / "crawl" / "pages"), "-o", str(tmp_path / "idx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert index.returncode == 0 and "indexed" in index.stdout, index.stderr[-2000:]
    cmd = [
        *env_free,
        "synth",
        "--dir",
        str(run_dir),
        "--rewrites",
        "1",
        "--max-groups",
        "4",
        "--workers",
        "0",
        "--model",
        "openai:truth-model",
        "--api-base",
        truth_server.base_url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "crawlqa:" in proc.stdout and "e2hqa:" in proc.stdout and "LLM:" in proc.stdout
    crawl_qa = list(read_records(run_dir / "synth" / "crawlqa" / "records", kind="qa"))
    hard = list(read_records(run_dir / "synth" / "e2hqa" / "records", kind="qa"))
    assert crawl_qa and hard and {r["meta"]["parent_ids"][0] for r in hard} <= {r["id"] for r in crawl_qa}
    assert all(len(r["hops"]) == 1 for r in hard)
    summary = json.loads((run_dir / "synth" / "crawlqa" / "summary.json").read_text())
    assert summary["usage"]["crawlqa"]["calls"] >= 4


def test_synth_without_a_crawl_says_what_to_do(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "wdtk.cli", "synth", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and "no crawled pages at" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_embedded_model_runs_crawlqa_for_real_on_a_few_pages(pages_file, tmp_path):
    """The offline default, no server at all: every group yields kept records or rejects with the raw text."""
    cfg = crawlqa.CrawlQAConfig(max_sublinks=1, max_page_chars=600, max_tokens=96, verify_with_llm=False)
    b = Backends(model="embedded", cache_path=str(tmp_path / "cache.sqlite"), concurrency=2)
    summary = crawlqa.run(pages_file, tmp_path / "out", cfg, b, RunOptions(workers=0), max_groups=2)
    assert summary["items"] == 2 and summary["usage"]["crawlqa"]["calls"] == 2
    assert summary["usage"]["crawlqa"]["completion_tokens"] > 0
    kept = list(read_records(tmp_path / "out" / "records", kind="qa"))
    rejects = list(read_records(tmp_path / "out" / "rejects"))
    assert kept or rejects
    assert all(r["meta"]["model"].startswith("embedded:") for r in kept)
    assert all(r.get("raw") for r in rejects if r["reason"] == "unparseable")
