"""`wdtk push`: the repo tree loads back config by config with `datasets`, the card, and the upload at HfApi."""

from __future__ import annotations

import json
import math
from pathlib import Path

import datasets
import huggingface_hub
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from wdtk.cli import main
from wdtk.schemas import read_records, record_id, write_records
from wdtk.synth.agent.format import TOOLS, Instructions

SECRETS = ["sk-live-abcdefghijklmnop", "hf_SecretTokenValue1234567890", "hunter2-password"]
FAKE_TOKEN = "hf_FakeTokenForTheTestOnly000000"


def qa_record(n: int, **extra) -> dict:
    question, answer = f"In which year was the Keldra Society number {n} founded?", str(1800 + n)
    meta = {"wdtk_version": "0.1.0", "model": "qwen3-32b", "prompt_version": f"crawlqa-{n % 2}"}
    meta |= {"parent_ids": [record_id("page", n)], "extractor": "trafilatura"} if n % 2 else {"rounds": n}
    record = {"id": record_id("qa", question, answer), "question": question, "answer": answer, "type": "SIMPLE"}
    record |= {"source": "crawlqa", "evidence_urls": [f"https://site.test/{n}"] * (n % 3), "meta": meta}
    return record | extra


def call(name: str, arguments: dict, k: int) -> dict:
    return {"type": "function", "id": f"call_{k}", "function": {"name": name, "arguments": arguments}}


def trajectory(qa: dict, rollout: int) -> dict:
    """A rollout as synth.react writes it: search, visit, answer; meta and stats keys vary as they do in runs."""
    search = call("search", {"query": [qa["question"], "Keldra"]}, 0)
    visit = call("visit", {"url": ["https://site.test/1"], "goal": "the founding year"}, 1)
    messages = [
        {"role": "system", "content": Instructions().system_prompt()},
        {"role": "user", "content": qa["question"]},
        {"role": "assistant", "content": "", "reasoning_content": "Search.", "tool_calls": [search]},
        {"role": "tool", "name": "search", "tool_call_id": "call_0", "content": "A search found 2 results: ..."},
        {"role": "assistant", "content": "", "reasoning_content": "Read it.", "tool_calls": [visit]},
        {"role": "tool", "name": "visit", "tool_call_id": "call_1", "content": "The useful information: founded ..."},
        {"role": "assistant", "content": f"<answer>{qa['answer']}</answer>", "reasoning_content": "Done."},
    ]
    meta = {"wdtk_version": "0.1.0", "model": "qwen3-8b", "prompt_version": "react-1", "parent_ids": [qa["id"]]}
    meta |= {"temperature": 0.7} if rollout else {"temperature": 1.0, "seed": 3}
    stats = {"llm_calls": 3, "actions": 2} | ({"tokens": 2048, "seconds": 12.5} if rollout else {})
    record = {"id": record_id("trajectory", qa["id"], rollout), "question_id": qa["id"], "question": qa["question"]}
    record |= {"answer": qa["answer"], "rollout": rollout, "messages": messages, "tools": TOOLS, "stats": stats}
    return record | {"termination": "answer", "prediction": qa["answer"], "meta": meta}


def judgement(t: dict) -> dict:
    return {
        "id": record_id("judgement", t["id"]), "item_id": t["id"], "question": t["question"], "gold": t["answer"],
        "prediction": t["prediction"], "correct": True, "method": "llm", "score": 1.0,
        "judge": {"model": "judge-70b", "prompt_version": "judge-v2"}, "meta": {"parent_ids": [t["id"]]},
    }  # fmt: skip


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run directory as the pipeline leaves it: synth, filter, funnel (records, judgements), export, commands."""
    run = tmp_path / "run"
    qas = [qa_record(n) for n in range(3)] + [qa_record(3, hops=[], source="e2hqa")]
    write_records(qas, run / "synth" / "crawlqa" / "records", kind="qa")
    write_records(qas[:3], run / "filter" / "records", kind="qa", fmt="parquet")
    trajectories = [trajectory(qas[i], k) for i in range(2) for k in range(2)]
    trajectories[3] = {k: v for k, v in trajectories[3].items() if k != "prediction"} | {"termination": "format_error"}
    write_records(trajectories, run / "funnel" / "records", kind="trajectory")
    write_records([judgement(t) for t in trajectories[:3]], run / "funnel" / "judgements", kind="judgement")
    sft = [{"id": t["id"], "messages": t["messages"], "tools": t["tools"]} for t in trajectories]
    write_records(sft, run / "export" / "sft", fmt="parquet", shard_size=3)  # wdtk's own Parquet, two shards
    # the same metadata keys, but an int in one row and a float in the other: Arrow would make both floats
    difficulty = {0: 1, 2: 0.35}
    rl = [
        {k: qas[i][k] for k in ("id", "question", "answer")} | {"metadata": {"difficulty": d}}
        for i, d in difficulty.items()
    ]
    write_records(rl, run / "funnel" / "rl_pool")
    write_records(rl, run / "export" / "rl")
    summaries = {
        "synth/crawlqa": {"stage": "crawlqa", "items": 9, "kept": 4, "rejected": {"not_grounded": 5}},
        "filter": {"stage": "filter", "kind": "qa", "in": 4, "kept": 3, "dropped": {"near_duplicate": 1}},
        "funnel": {
            "stage": "funnel", "trajectories": 6, "questions": 3, "kept": 4, "questions_kept": 2, "rl_pool": 1,
            "stages": [{"name": "validity", "in": 6, "kept": 5, "dropped": {"format_error": 1}},
                       {"name": "correctness", "in": 5, "kept": 4, "dropped": {"wrong_answer": 1}},
                       {"name": "quality", "in": 4, "kept": 4, "dropped": {}}],
            "judge": {"method": "llm", "model": "judge-70b", "prompt_version": "judge-v2"},
            "judge_agreement": {"judged": 5, "agree_with_exact": 4},
        },
    }  # fmt: skip
    for stage, summary in summaries.items():
        (run / stage / "summary.json").write_text(json.dumps(summary))
    commands = [
        ["/home/me/.venv/bin/wdtk", "synth", "run", "--model", "qwen3-32b", "--api-key", SECRETS[0]],
        ["wdtk", "sample", "run", f"--token={SECRETS[1]}", "--max-tokens", "512", f"HF_TOKEN={SECRETS[1]}"],
        ["wdtk", "funnel", "run", "--api-base", f"https://me:{SECRETS[2]}@llm.test/v1"],
    ]
    lines = [json.dumps({"argv": a, "started": "2026-01-02T03:04:05Z", "wdtk_version": "0.1.0"}) for a in commands]
    (run / "commands.jsonl").write_text("\n".join(lines) + "\n")
    return run


def invoke(*args: str) -> object:
    license = () if "--license" in args else ("--license", "cc-by-4.0")
    return CliRunner().invoke(main, ["push", *args, *license], catch_exceptions=False)


def drop_absent(row: dict) -> dict:
    """A table has every column in every row: a field a record lacks reads back as None at the top level only."""
    return {k: v for k, v in row.items() if v is not None}


def same(loaded: object, source: object) -> bool:
    """Exactly equal, key sets and int/float/bool types included; floats to 1e-15 (the card says why)."""
    if isinstance(source, dict):
        return (
            isinstance(loaded, dict)
            and loaded.keys() == source.keys()
            and all(same(loaded[k], v) for k, v in source.items())
        )
    if isinstance(source, list):
        return isinstance(loaded, list) and len(loaded) == len(source) and all(map(same, loaded, source))
    if isinstance(source, float):
        return type(loaded) is float and math.isclose(loaded, source, rel_tol=1e-15)
    return type(loaded) is type(source) and loaded == source


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("shard_size", [1, 3])  # 1: columns that are uniform in each chunk but differ between them
def test_local_dir_loads_back_every_config_exactly(run_dir, tmp_path, shard_size):
    out = tmp_path / "repo"
    result = invoke(str(run_dir), "--local-dir", str(out), "--shard-size", str(shard_size))
    assert result.exit_code == 0, result.output
    sources = {"qa": "filter/records", "trajectories": "funnel/records", "sft": "export/sft", "rl": "export/rl"}
    for name, source in sources.items():
        expected = list(read_records(run_dir / source))
        files = sorted((out / "data" / name).iterdir())
        assert [f.name for f in files] == [f"train-{i:05d}-of-{len(files):05d}.parquet" for i in range(len(files))]
        assert len(files) == -(-len(expected) // shard_size)
        loaded = datasets.load_dataset(str(out), name, split="train", cache_dir=str(tmp_path / "cache"))
        assert loaded.num_rows == len(expected)
        for row, record in zip(loaded, expected, strict=True):
            assert same(drop_absent(row), record), (name, row, record)
    features = datasets.load_dataset(
        str(out), "trajectories", split="train", cache_dir=str(tmp_path / "cache")
    ).features
    # keys that differ by row (messages, tool schemas, meta) are JSON; homogeneous columns stay native
    assert isinstance(features["messages"], datasets.List) and isinstance(features["messages"].feature, datasets.Json)
    assert isinstance(features["meta"], datasets.Json)
    assert features["question"] == datasets.Value("string") and features["prediction"] == datasets.Value("string")
    assert features["rollout"] == datasets.Value("int64")  # one row lacks prediction: it reads back as None
    # JSON text is exact, floats included, for readers other than datasets
    meta = pq.read_table(out / "data" / "trajectories").column("meta").to_pylist()
    assert [json.loads(m) for m in meta] == [t["meta"] for t in read_records(run_dir / "funnel" / "records")]


def test_card_lists_every_config_and_the_provenance_without_secrets(run_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    out = tmp_path / "repo"
    assert invoke(str(run_dir), "--local-dir", str(out), "--license", "cc-by-4.0").exit_code == 0
    text = (out / "README.md").read_text()
    _, header, body = text.split("---\n", 2)
    card = yaml.safe_load(header)
    assert card["license"] == "cc-by-4.0" and {"web-agent", "synthetic"} <= set(card["tags"])
    configs = {c["config_name"]: c for c in card["configs"]}
    assert list(configs) == ["qa", "trajectories", "sft", "rl"]
    assert [c["data_files"] for c in configs.values()] == [
        [{"split": "train", "path": f"data/{n}/train-*"}] for n in configs
    ]
    assert [n for n, c in configs.items() if c.get("default")] == ["sft"]
    assert "| qa | 3 | 1 | filter/records |" in body and "| trajectories | 4 | 1 |" in body and "| rl | 2 |" in body
    assert (
        "| funnel/validity | 6 | 5 | format_error 1 |" in body and "| synth/crawlqa | 9 | 4 | not_grounded 5 |" in body
    )
    for fact in ("`qwen3-32b`", "`qwen3-8b`", "`judge-70b`", "`judge-v2`", "`react-1`", "`crawlqa-0`", "4 of 5"):
        assert fact in body
    assert "`wdtk synth run --model qwen3-32b --api-key REDACTED`" in body  # no local path to the executable either
    assert "--token=REDACTED --max-tokens 512 HF_TOKEN=REDACTED" in body and "--api-base ENDPOINT" in body
    for secret in [*SECRETS, FAKE_TOKEN, "/home/me", "llm.test"]:
        assert secret not in text


def test_missing_sources_are_left_out_and_qa_falls_back_to_synth(run_dir, tmp_path):
    for stage in ("filter", "export"):
        for path in sorted((run_dir / stage).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (run_dir / stage).rmdir()
    out = tmp_path / "repo"
    result = invoke(str(run_dir), "--local-dir", str(out))
    assert result.exit_code == 0, result.output
    assert "sft: left out" in result.output and "rl: left out" in result.output and "unfiltered" in result.output
    assert sorted(p.name for p in (out / "data").iterdir()) == ["qa", "trajectories"]
    card = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    assert [c["config_name"] for c in card["configs"]] == ["qa", "trajectories"]
    assert card["configs"][0].get("default")
    body = (out / "README.md").read_text()
    assert "Not in this repo: `sft` (no records in export/sft: the funnel kept no trajectory)" in body
    qa = datasets.load_dataset(str(out), "qa", split="train", cache_dir=str(tmp_path / "cache"))
    assert qa["id"] == [r["id"] for r in read_records(run_dir / "synth" / "crawlqa" / "records")]


def test_exports_written_by_filters_export_load_back_exactly(run_dir, tmp_path):
    """filters/export.py stores messages, tools and metadata as Arrow JSON, which read_records returns as text."""
    export = pytest.importorskip("wdtk.filters.export")
    export.run(run_dir / "funnel", run_dir / "export")
    out = tmp_path / "repo"
    assert invoke(str(run_dir), "--local-dir", str(out), "--shard-size", "3").exit_code == 0
    trajectories = list(read_records(run_dir / "funnel" / "records"))
    expected = {
        "sft": [export.sft_row(t) for t in trajectories],
        "rl": [export.rl_row(r) for r in read_records(run_dir / "funnel" / "rl_pool")],
    }
    for name, rows in expected.items():
        loaded = datasets.load_dataset(str(out), name, split="train", cache_dir=str(tmp_path / "cache"))
        assert loaded.num_rows == len(rows)
        assert all(same(drop_absent(row), source) for row, source in zip(loaded, rows, strict=True))
    assert isinstance(loaded.features["metadata"], datasets.Json)


@pytest.fixture
def hub_calls(monkeypatch) -> list:
    """HfApi's network methods replaced by recorders: the Hub cannot be reached from the tests."""
    calls = []

    def recorder(method):
        def record(self, *args, **kwargs):
            if method == "upload_folder":  # the folder is gone after push() returns: keep what it held
                kwargs["files"] = tree(Path(kwargs["folder_path"]))
            calls.append((method, args, kwargs, self.token))
            if method == "upload_folder":
                url = "https://huggingface.co/datasets/org/name/commit/abc"
                return huggingface_hub.CommitInfo(commit_url=url, commit_message="", commit_description="", oid="abc")

        return record

    for method in ("create_repo", "update_repo_settings", "create_branch", "upload_folder", "create_commit"):
        monkeypatch.setattr(huggingface_hub.HfApi, method, recorder(method))
    return calls


def test_upload_sends_the_local_dir_tree_in_one_commit(run_dir, tmp_path, monkeypatch, hub_calls):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    out = tmp_path / "repo"
    result = invoke(str(run_dir), "--repo-id", "org/name", "--private", "--local-dir", str(out))
    assert result.exit_code == 0, result.output
    assert [c[0] for c in hub_calls] == ["create_repo", "update_repo_settings", "upload_folder"]
    (_, args, kwargs, token), (_, args2, kwargs2, _), (_, _, upload, _) = hub_calls
    assert token == FAKE_TOKEN and args == ("org/name",) and args2 == ("org/name",)
    assert kwargs == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert kwargs2 == {"private": True, "repo_type": "dataset"}
    assert upload["repo_id"] == "org/name" and upload["repo_type"] == "dataset" and upload["revision"] is None
    assert upload["files"] == tree(out) and "README.md" in upload["files"] and len(upload["files"]) == 5
    assert upload["delete_patterns"] == ["data/**"]
    assert "commit/abc" in result.output
    # without --local-dir it builds in a temp dir: the same bytes; no --private leaves visibility to the Hub
    hub_calls.clear()
    assert invoke(str(run_dir), "--repo-id", "org/name", "--revision", "v2").exit_code == 0
    assert [c[0] for c in hub_calls] == ["create_repo", "create_branch", "upload_folder"]
    assert hub_calls[0][2]["private"] is None and hub_calls[1][2]["branch"] == "v2"
    assert hub_calls[2][2]["files"] == tree(out) and hub_calls[2][2]["revision"] == "v2"
    assert not Path(hub_calls[2][2]["folder_path"]).exists()


def test_no_token_fails_before_building(run_dir, tmp_path, monkeypatch, hub_calls):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    out = tmp_path / "repo"
    result = invoke(str(run_dir), "--repo-id", "org/name", "--local-dir", str(out))
    assert result.exit_code == 1 and "HF_TOKEN" in result.output and "hf auth login" in result.output
    assert hub_calls == [] and not out.exists()


def test_bad_invocations_fail_with_one_clear_line(run_dir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["push", "--dir", str(run_dir), "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "Missing option '--license'" in result.output
    license = ["--license", "cc-by-4.0"]
    result = runner.invoke(main, ["push", "--dir", str(tmp_path / "nope"), "-o", str(tmp_path / "x"), *license])
    assert result.exit_code == 1 and "no such run directory" in result.output
    result = runner.invoke(main, ["push", str(run_dir), *license])
    assert result.exit_code == 2 and "--repo-id" in result.output and "-o DIR" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(main, ["push", str(empty), "--local-dir", str(tmp_path / "x"), *license])
    assert result.exit_code == 1 and "nothing to push" in result.output
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    result = runner.invoke(main, ["push", str(run_dir), "--local-dir", str(taken), *license])
    assert result.exit_code == 1 and "not empty" in result.output and (taken / "notes.txt").read_text() == "mine"
    (run_dir / "funnel" / "records" / "00000.jsonl.gz").write_bytes(b"not gzip")
    result = runner.invoke(main, ["push", str(run_dir), "--local-dir", str(tmp_path / "y"), *license])
    assert result.exit_code == 1 and "00000.jsonl.gz" in result.output and "Traceback" not in result.output


def test_card_says_what_a_hub_user_checks_first(run_dir, tmp_path):
    """License, a title, language and size tags, the crawled sites; no endpoint or private host anywhere."""
    pages = [{"url": f"https://{host}/p{i}", "final_url": f"https://{host}/p{i}"} for i, host in
             enumerate(["www.site.test", "site.test", "docs.other.test", "127.0.0.1:8000", "10.1.2.3"])]  # fmt: skip
    write_records(pages, run_dir / "crawl" / "pages")
    meta = {"wdtk_version": "0.1.0", "model": "openai:qwen3-8b@http://10.0.0.7:8000/v1", "prompt_version": "react-1"}
    write_records([trajectory(qa_record(9), 0) | {"meta": meta}], run_dir / "funnel" / "records", kind="trajectory")
    with (run_dir / "commands.jsonl").open("a") as f:
        argv = [
            "wdtk",
            "crawl",
            "http://127.0.0.1:8000/",
            "--scheduler",
            "tcp://10.0.0.9:8786",
            "--api-base=http://gpu.corp.test/v1",
        ]
        f.write(json.dumps({"argv": argv}) + "\n")
    out = tmp_path / "repo"
    result = invoke("--dir", str(run_dir), "-o", str(out), "--license", "odc-by", "--pretty-name", "Keldra QA")
    assert result.exit_code == 0, result.output
    text = (out / "README.md").read_text()
    card = yaml.safe_load(text.split("---\n")[1])
    assert card["license"] == "odc-by" and card["pretty_name"] == "Keldra QA" and card["language"] == ["en"]
    assert card["size_categories"] == ["n<1K"]
    assert (
        "Crawled from 3 site(s): site.test (2 pages), a local server" in text and "docs.other.test (1 pages)" in text
    )
    assert "`openai:qwen3-8b`" in text and "wdtk crawl http://LOCAL/ --scheduler ENDPOINT --api-base=ENDPOINT" in text
    for leak in ("10.0.0.7", "10.0.0.9", "127.0.0.1", "10.1.2.3", "gpu.corp.test"):
        assert leak not in text, leak
    default = invoke("--dir", str(run_dir), "-o", str(tmp_path / "repo2"), "--license", "mit")
    assert default.exit_code == 0
    assert yaml.safe_load((tmp_path / "repo2" / "README.md").read_text().split("---\n")[1])["pretty_name"] == (
        "run: web-search agent training data"
    )


def test_size_categories_follow_the_hub_thresholds():
    from wdtk.report.card import size_category

    assert [size_category(n) for n in (0, 999, 1000, 54_321, 2_000_000)] == [
        "n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "1M<n<10M"
    ]  # fmt: skip
