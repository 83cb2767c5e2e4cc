"""Exports: loaded back by `datasets` exactly as written, rendered by chat templates as expected, trained on by TRL."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from tiny_lm import sample_trajectories, tiny_model, tiny_tokenizer

from wdtk.filters.export import SCHEMAS, rl_row, run, sft_row, webdancer_row, write_parquet
from wdtk.schemas import RecordError, read_records, write_records
from wdtk.synth.agent.format import TOOLS, Instructions, chatml

TRAJECTORIES = sample_trajectories()
POOL = [
    {
        "id": "0123456789abcdef",
        "question": "Who built the Vell bridge?",
        "answer": "Ilse Varn",
        "metadata": {"hops": 2},
    },
    {"id": "fedcba9876543210", "question": "When did Tarnholm flood?", "answer": "1911", "metadata": {"src": ["x"]}},
]


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    """Keep `datasets`' cache of loaded files inside the test's temp directory."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


def make_funnel(root: Path, trajectories=TRAJECTORIES, pool=POOL) -> Path:
    write_records(trajectories, root / "funnel" / "records", "trajectory")
    write_records(pool, root / "funnel" / "rl_pool")
    return root / "funnel"


def load(path: Path):
    from datasets import load_dataset

    return load_dataset(str(path), split="train")


def test_sft_row_keeps_thoughts_and_calls_and_cuts_the_tool_list_from_the_system_turn():
    trajectory = TRAJECTORIES[0]
    row = sft_row(trajectory)
    assert row["id"] == trajectory["id"] and row["tools"] == TOOLS
    system, user, call, result, *_ = row["messages"]
    assert system == {"role": "system", "content": Instructions().text}
    assert user == trajectory["messages"][1]
    assert call["content"] == "<think>\nI should look this up.\n</think>"
    assert "reasoning_content" not in call  # folded into content, never both (Qwen3 would render it twice)
    assert call["tool_calls"] == trajectory["messages"][2]["tool_calls"]
    assert result == {"role": "tool", "name": "search", "tool_call_id": "call_0", "content": "1. Halvard Institute"}
    assert row["messages"][-1] == {
        "role": "assistant",
        "content": "<think>\nSo the answer is 1872.\n</think>\n<answer>1872</answer>",
    }
    assert webdancer_row(trajectory) == {"id": trajectory["id"], "text": chatml(trajectory["messages"])}


def test_run_writes_exports_that_datasets_loads_back_exactly(tmp_path):
    from datasets import Json, load_dataset

    summary = run(make_funnel(tmp_path), tmp_path / "export")
    assert {k: summary[k] for k in ("sft", "webdancer", "rl")} == {"sft": 3, "webdancer": 3, "rl": 2}
    assert json.loads((tmp_path / "export" / "summary.json").read_text())["sft"] == 3

    sft = load(tmp_path / "export" / "sft")
    assert sft.features["messages"].feature == Json() and sft.features["tools"].feature == Json()
    assert list(sft) == [sft_row(t) for t in TRAJECTORIES]  # no key added, none lost, order kept
    search = sft[0]["messages"][2]["tool_calls"][0]["function"]
    assert search["arguments"] == {"query": ["Halvard Institute founded"]}  # a struct union would add url/goal: None
    assert "tool_calls" not in sft[0]["messages"][1]  # ... and tool_calls: None on the user turn

    files = sorted(str(p) for p in (tmp_path / "export" / "webdancer").glob("*.parquet"))
    webdancer = load_dataset("parquet", data_files=files, split="train")
    assert list(webdancer) == [webdancer_row(t) for t in TRAJECTORIES]
    assert list(load(tmp_path / "export" / "rl")) == [rl_row(r) for r in POOL]
    # wdtk's own reader decodes the JSON columns too
    assert list(read_records(tmp_path / "export" / "sft")) == [sft_row(t) for t in TRAJECTORIES]
    assert list(read_records(tmp_path / "export" / "rl")) == [rl_row(r) for r in POOL]


@pytest.mark.parametrize("family", ["qwen2_5", "chatml"])
def test_loaded_export_renders_to_the_expected_text(tmp_path, family):
    run(make_funnel(tmp_path), tmp_path / "export")
    tokenizer = tiny_tokenizer(family)
    for row, trajectory in zip(load(tmp_path / "export" / "sft"), TRAJECTORIES, strict=True):
        text = tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False)
        if family == "chatml":  # WebDancer's text, exactly what the agent saw while sampling
            assert text == webdancer_row(trajectory)["text"] + "\n"
            continue
        tools = "".join("\n" + json.dumps(t, ensure_ascii=False) for t in TOOLS)
        system = (
            f"<|im_start|>system\n{Instructions().text}\n\n# Tools\n\nYou may call one or more functions to assist "
            "with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n"
            f"<tools>{tools}\n</tools>\n\nFor each function call, return a json object with function name and "
            "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        )
        assert text == system + chatml(trajectory["messages"][1:]) + "\n"
        assert "null" not in text


def test_sft_trainer_accepts_the_export_as_it_is(tmp_path):
    from trl import SFTConfig, SFTTrainer
    from trl.data_utils import is_conversational

    run(make_funnel(tmp_path), tmp_path / "export")
    dataset = load(tmp_path / "export" / "sft")
    assert is_conversational(dataset[0])
    tokenizer = tiny_tokenizer("qwen2_5")
    args = SFTConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=2,
        logging_steps=1,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        max_length=None,
    )
    trainer = SFTTrainer(model=tiny_model(tokenizer), args=args, train_dataset=dataset, processing_class=tokenizer)
    first = trainer.train_dataset[0]
    rendered = tokenizer.apply_chat_template(dataset[0]["messages"], tools=dataset[0]["tools"], tokenize=False)
    assert tokenizer.decode(first["input_ids"]) == rendered  # TRL tokenised the rendered conversation, whole
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert trainer.state.global_step == 2 and len(losses) == 2 and all(math.isfinite(x) for x in losses)


def test_rerun_replaces_the_exports_and_shards_load_in_order(tmp_path):
    funnel = make_funnel(tmp_path)
    run(funnel, tmp_path / "export")
    (tmp_path / "rerun").mkdir()
    run(make_funnel(tmp_path / "rerun", TRAJECTORIES[:1], POOL[:1]), tmp_path / "export")
    assert [r["id"] for r in load(tmp_path / "export" / "sft")] == [TRAJECTORIES[0]["id"]]
    assert len(load(tmp_path / "export" / "rl")) == 1
    assert not list(tmp_path.joinpath("export").glob(".*"))  # no temp directories left behind

    rows = [webdancer_row(t) for t in TRAJECTORIES]
    assert write_parquet(rows, tmp_path / "sharded", SCHEMAS["webdancer"], shard_rows=2) == 3
    assert sorted(p.name for p in (tmp_path / "sharded").iterdir()) == [".complete", "00000.parquet", "00001.parquet"]
    assert list(load(tmp_path / "sharded")) == rows


def test_empty_funnel_gives_empty_export_directories(tmp_path):
    summary = run(make_funnel(tmp_path, [], []), tmp_path / "export")
    assert [summary[k] for k in ("sft", "webdancer", "rl")] == [0, 0, 0]
    assert all(
        [p.name for p in (tmp_path / "export" / k).iterdir()] == [".complete"] for k in ("sft", "webdancer", "rl")
    )


def test_bad_input_names_the_file_and_field(tmp_path):
    with pytest.raises(RecordError, match="rl_pool: no such directory"):
        write_records(TRAJECTORIES, tmp_path / "funnel" / "records", "trajectory")
        run(tmp_path / "funnel", tmp_path / "export")
    bad = [POOL[0], {k: v for k, v in POOL[1].items() if k != "answer"}]
    with pytest.raises(RecordError, match=r"rl_pool: record 2: field 'answer': expected a non-empty string"):
        run(make_funnel(tmp_path / "bad", pool=bad), tmp_path / "export")
    with pytest.raises(RecordError, match="field 'metadata'"):
        rl_row({**POOL[0], "metadata": ["not", "an", "object"]})
