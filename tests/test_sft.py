"""training/sft.py and its chat templates: labels checked token by token, the loss falls, LoRA, clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_lm import sample_trajectories, save_tiny, tiny_tokenizer

from wdtk.filters.export import run, sft_row
from wdtk.schemas import write_records
from wdtk.synth.agent.format import render_assistant
from wdtk.training import sft
from wdtk.training.templates import FAMILIES, select_template

TRAJECTORIES = sample_trajectories()


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    """Keep `datasets`' cache of loaded files inside the test's temp directory."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


@pytest.fixture(scope="module")
def sft_dir(tmp_path_factory) -> Path:
    """The SFT export of the sample trajectories."""
    root = tmp_path_factory.mktemp("export")
    write_records(TRAJECTORIES, root / "funnel" / "records", "trajectory")
    write_records([], root / "funnel" / "rl_pool")
    run(root / "funnel", root / "export")
    return root / "export" / "sft"


def argv(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        *("--model_name_or_path", str(model), "--dataset_name", str(data), "--output_dir", str(out)),
        *("--report_to", "none", "--save_strategy", "no", "--max_length", "4096", "--logging_steps", "1"),
        *extra,
    ]


def assistant_spans(family: str, trajectory: dict) -> list[str]:
    """What each assistant turn should train on: the turn as the model writes it, end-of-turn token included."""
    end = FAMILIES[family].end_of_turn
    spans = []
    for m in trajectory["messages"]:
        if m["role"] != "assistant":
            continue
        if family == "qwen3":  # Qwen3 writes a blank line after its thought
            rest = render_assistant({**m, "reasoning_content": ""})
            spans.append(f"<think>\n{m['reasoning_content']}\n</think>\n\n{rest}{end}")
        else:
            spans.append(render_assistant(m) + end)
    return spans


@pytest.mark.parametrize(
    ("family", "extra"),
    [
        ("qwen2_5", ()),  # detected from the model type (qwen2)
        ("llama3", ()),  # detected from the Llama 3 header tokens
        ("qwen3", ("--chat_template_family", "qwen3")),
        ("chatml", ("--chat_template_family", "chatml")),
    ],
)
def test_labels_train_assistant_turns_and_mask_everything_else(tmp_path, sft_dir, family, extra):
    model = save_tiny(tmp_path / "lm", family)
    trainer = sft.build_trainer(*sft.parse_args(argv(model, sft_dir, tmp_path / "out", *extra)))
    tokenizer = trainer.processing_class
    assert tokenizer.chat_template == FAMILIES[family].template
    assert trainer.args.eos_token == FAMILIES[family].end_of_turn
    for example, trajectory in zip(trainer.train_dataset, TRAJECTORIES, strict=True):
        row = sft_row(trajectory)
        text = tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False)
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        assert encoding["input_ids"] == example["input_ids"]  # nothing truncated; offsets line up with the labels

        spans, cursor = [], 0  # character ranges of the assistant turns, found in order
        for span in assistant_spans(family, trajectory):
            start = text.index(span, cursor)
            spans.append((start, start + len(span)))
            cursor = start + len(span)
        for token, (start, end), label in zip(
            example["input_ids"], encoding["offset_mapping"], example["labels"], strict=True
        ):
            inside = any(a <= start and end <= b for a, b in spans)
            assert label == (token if inside else -100), (family, repr(text[start:end]), inside)

        trained = tokenizer.decode([t for t in example["labels"] if t != -100])
        masked = tokenizer.decode(
            [t for t, label in zip(example["input_ids"], example["labels"], strict=True) if label == -100]
        )
        assert trained == "".join(assistant_spans(family, trajectory))
        assert '"arguments": {' in trained and f"<answer>{trajectory['answer']}</answer>" in trained
        assert "<tool_response>" not in trained and trajectory["question"] not in trained
        for m in row["messages"]:
            if m["role"] in ("system", "user", "tool"):
                assert m["content"] in masked


def test_loss_falls_over_a_few_steps(tmp_path, sft_dir):
    model = save_tiny(tmp_path / "lm", "qwen2_5")
    args = ("--max_steps", "8", "--learning_rate", "1e-2", "--per_device_train_batch_size", "3")
    trainer = sft.build_trainer(*sft.parse_args(argv(model, sft_dir, tmp_path / "out", *args)))
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 8
    assert sum(losses[-3:]) / 3 < 0.85 * sum(losses[:3]) / 3, losses


def test_main_trains_a_lora_adapter_and_saves_it(tmp_path, sft_dir):
    model = save_tiny(tmp_path / "lm", "qwen2_5")
    out = tmp_path / "out"
    sft.main(argv(model, sft_dir, out, "--max_steps", "2", "--use_peft", "--lora_r", "4", "--lora_alpha", "8"))
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()  # only the adapter, not the whole model
    metrics = json.loads((out / "train_results.json").read_text())
    assert metrics["train_loss"] > 0  # saved for callers such as `wdtk evolve`
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(out).chat_template == FAMILIES["qwen2_5"].template


def test_cpu_defaults_and_assistant_only_loss(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("the CPU defaults apply without a GPU")
    _, training_args, _, _ = sft.parse_args(["--output_dir", str(tmp_path)])
    assert training_args.bf16 is False and training_args.gradient_checkpointing is False
    assert training_args.assistant_only_loss is True
    # one conversation a step, 8 accumulated: TRL's batch of 8 took 11.7 GB for SmolLM2-135M on CPU
    assert (training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps) == (1, 8)
    assert training_args.max_length is None  # taken from the data
    _, training_args, _, _ = sft.parse_args(["--output_dir", str(tmp_path), "--assistant_only_loss", "false"])
    assert training_args.assistant_only_loss is False


def test_help_explains_the_script(capsys):
    with pytest.raises(SystemExit) as exit_:
        sft.parse_args(["--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    assert "python -m wdtk.training.sft" in help_text and "the loss on assistant turns only" in help_text
    assert "--chat_template_family" in help_text and "--dataset_name" in help_text and "--use_peft" in help_text


def test_unknown_template_fails_naming_the_families(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    bare = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    bare.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bare, name_or_path="bare")
    with pytest.raises(ValueError, match="model type 'gpt2'") as error:
        select_template(tokenizer, "gpt2")
    assert all(name in str(error.value) for name in FAMILIES) and "--chat_template_path" in str(error.value)
    with pytest.raises(ValueError, match=r"'qwen2_5' needs tokens the tokenizer lacks: \['<\|im_start\|>'"):
        select_template(tiny_tokenizer("llama3"), "llama", "qwen2_5")
    with pytest.raises(ValueError, match="unknown chat template family 'mistral'; known: qwen2_5"):
        select_template(tokenizer, None, "mistral")

    model = save_tiny(tmp_path / "lm", "qwen2_5")
    template = tmp_path / "plain.jinja"
    template.write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    args = sft.parse_args(argv(model, tmp_path, tmp_path / "out", "--chat_template_path", str(template)))
    with pytest.raises(ValueError, match=f"{template}: no {{% generation %}} markers"):
        sft.build_trainer(*args)
    with pytest.raises(FileNotFoundError, match="runs/nowhere/sft: no such file or directory"):
        sft.load_sft_dataset("runs/nowhere/sft")


def test_a_template_that_already_has_markers_is_kept():
    tokenizer = tiny_tokenizer("chatml")
    tokenizer.chat_template = FAMILIES["chatml"].template.replace("<|im_start|>user", "<|im_start|>human")
    assert select_template(tokenizer, "qwen2") == (tokenizer.chat_template, None)


@pytest.mark.parametrize(("family", "official"), [("qwen2_5", "qwen2_5.jinja"), ("qwen3", "qwen3.jinja")])
def test_qwen_templates_render_what_the_official_ones_render(family, official):
    import trl

    path = Path(trl.__file__).parent / "chat_templates" / official
    if not path.is_file():
        pytest.skip(f"this TRL ships no {official}")
    tokenizer = tiny_tokenizer(family)
    for trajectory in TRAJECTORIES:
        row = sft_row(trajectory)
        ours = tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False)
        theirs = tokenizer.apply_chat_template(
            row["messages"], tools=row["tools"], tokenize=False, chat_template=path.read_text(encoding="utf-8")
        )
        assert ours == theirs


def test_an_empty_export_fails_with_one_clear_line(tmp_path):
    model = save_tiny(tmp_path / "model", "chatml")
    (tmp_path / "empty").mkdir()
    argv = ["--model_name_or_path", str(model), "--dataset_name", str(tmp_path / "empty"),
            "--output_dir", str(tmp_path / "out")]  # fmt: skip
    with pytest.raises(SystemExit, match="no shards in this directory"):
        sft.main(argv)


def test_a_max_length_that_truncates_every_answer_away_fails_clearly(tmp_path, sft_dir):
    model = save_tiny(tmp_path / "lm", "chatml")
    args = ("--max_length", "32", "--max_steps", "1", "--overlong", "truncate")
    with pytest.raises(SystemExit, match="no example of .* has an assistant token left within --max_length 32"):
        sft.main(argv(model, sft_dir, tmp_path / "out", *args))


def lengths_of(model) -> list[int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = FAMILIES["chatml"].template
    rows = [sft_row(t) for t in TRAJECTORIES]
    return [len(tokenizer(tokenizer.apply_chat_template(r["messages"], tools=r["tools"], tokenize=False),
                          add_special_tokens=False)["input_ids"]) for r in rows]  # fmt: skip


def test_max_length_comes_from_the_data_and_nothing_is_cut_silently(tmp_path, sft_dir, capsys):
    model = save_tiny(tmp_path / "lm", "chatml")
    lengths = lengths_of(model)
    base = ["--model_name_or_path", str(model), "--dataset_name", str(sft_dir), "--output_dir", str(tmp_path / "o"),
            "--report_to", "none", "--chat_template_family", "chatml"]  # fmt: skip
    trainer = sft.build_trainer(*sft.parse_args(base))
    assert trainer.args.max_length == max(lengths) and len(trainer.train_dataset) == len(lengths)
    assert [len(ids) for ids in trainer.train_dataset["input_ids"]] == lengths  # every row whole
    assert f"conversation length {max(lengths)} tokens (the longest conversation)" in capsys.readouterr().err

    cap = sorted(lengths)[len(lengths) // 2]  # about half the rows are longer
    over = sum(n > cap for n in lengths)
    with pytest.raises(ValueError, match=f"{over} of {len(lengths)} conversations are longer than {cap} tokens"):
        sft.build_trainer(*sft.parse_args([*base, "--max_length_cap", str(cap)]))
    with pytest.raises(ValueError, match="--overlong drop"):
        sft.build_trainer(*sft.parse_args([*base, "--max_length", str(cap)]))  # a limit given is no licence to cut
    dropped = sft.build_trainer(*sft.parse_args([*base, "--max_length_cap", str(cap), "--overlong", "drop"]))
    assert len(dropped.train_dataset) == len(lengths) - over and dropped.args.max_length == cap
    assert f"{over} of {len(lengths)} conversations are longer than {cap} tokens" in capsys.readouterr().err
    cut = sft.build_trainer(*sft.parse_args([*base, "--max_length", str(cap), "--overlong", "truncate"]))
    assert len(cut.train_dataset) == len(lengths) and max(len(i) for i in cut.train_dataset["input_ids"]) == cap
    assert "cut to" in capsys.readouterr().err
