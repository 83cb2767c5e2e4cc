"""Supervised fine-tuning on wdtk's SFT export with TRL, the loss on assistant turns only (as WebDancer trains).

    python -m wdtk.training.sft \\
        --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct \\
        --dataset_name runs/demo/export/sft \\
        --output_dir runs/demo/sft-model

    accelerate launch training/sft.py --model_name_or_path Qwen/Qwen2.5-7B-Instruct \\
        --dataset_name you/wdtk-sft --use_peft --lora_r 16 --lora_alpha 32 --output_dir sft-lora

`--dataset_name` is a Hub dataset id or a local directory (or file) of Parquet/JSONL shards in TRL's conversational
format (`messages` with `tool_calls` and `tool` turns, plus `tools`), as `wdtk export` writes it.

Only what the assistant writes is trained: its thought, text, tool-call JSON, <answer> and end-of-turn token. System,
user and tool turns (the observations) are masked. That takes a chat template with `{% generation %}` markers:
`--chat_template_family` (qwen2_5, qwen3, llama3, chatml; see wdtk.training.templates) names one, otherwise it is
picked from the model type and the tokenizer's special tokens, and an unknown model fails naming the families; or
pass your own with `--chat_template_path FILE.jinja`. Unless `--eos_token` is given, the template's end-of-turn token
becomes the EOS token, so generation stops where the trained turns stop.

Lengths are never cut silently: `--max_length` defaults to the longest conversation as the chat template renders it
(up to `--max_length_cap`), and conversations over the limit stop the run unless `--overlong drop` or
`--overlong truncate` says what to do with them, which is counted in the log (`wdtk.training.lengths`).

Every TRL SFTConfig and ModelConfig option works (`--help` lists them; `--config FILE.yaml` sets them from a file).
On a machine without a GPU, bf16 and gradient checkpointing default to off, and batches to one conversation with
8 steps of gradient accumulation (SmolLM2-135M on 2,200-token conversations then peaks at 6.8 GB, 0.85 of an 8 GB
budget: bench/sft_memory.py; TRL's default batch of 8 took 11.7 GB). `--model_name_or_path embedded` is the
embedded SmolLM2-135M-Instruct checkpoint (converted into the cache on first use).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .lengths import LengthArguments, fit, token_lengths
from .templates import FAMILIES, has_generation_markers, select_template

CPU_BATCH = {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 8}  # the same 8 rows a step, in 8 GB


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the docstring's layout and shows each option's default."""


@dataclass
class TemplateArguments(LengthArguments):
    """Which chat template renders the conversations, and how long one may be."""

    chat_template_family: str | None = field(
        default=None,
        metadata={
            "help": "Chat template family with generation markers (default: detected from the model).",
            "choices": list(FAMILIES),
        },
    )


def parse_args(argv: list[str] | None = None) -> tuple:
    """(ScriptArguments, SFTConfig, ModelConfig, TemplateArguments) from the command line (and --config YAML)."""
    import torch
    from transformers.utils import is_torch_bf16_gpu_available
    from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser

    parser = TrlParser(
        (ScriptArguments, SFTConfig, ModelConfig, TemplateArguments), description=__doc__, formatter_class=_Help
    )
    defaults = {"assistant_only_loss": True, "max_length": None}  # None: from the data (build_trainer)
    if not is_torch_bf16_gpu_available():
        defaults["bf16"] = False
    if not torch.cuda.is_available():  # checkpointing saves GPU memory; on CPU it only costs time
        defaults.update(gradient_checkpointing=False, activation_checkpointing=False, **CPU_BATCH)
    fields = set(SFTConfig.__dataclass_fields__)
    parser.set_defaults_with_config(**{k: v for k, v in defaults.items() if k in fields})
    return parser.parse_args_and_config(argv)


def load_sft_dataset(name: str, config: str | None = None, streaming: bool = False):
    """A DatasetDict from a local directory or file of shards, or from the Hub."""
    from datasets import load_dataset

    path = Path(name).expanduser()
    if path.is_dir():
        if not any(p.suffix in (".parquet", ".jsonl", ".json", ".gz") for p in path.rglob("*") if p.is_file()):
            raise FileNotFoundError(
                f"--dataset_name {name}: no shards in this directory (an empty export: the funnel kept nothing)"
            )
        return load_dataset(str(path), streaming=streaming)
    if path.is_file():
        builder = "parquet" if path.suffix == ".parquet" else "json"
        return load_dataset(builder, data_files=str(path), streaming=streaming)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise FileNotFoundError(f"--dataset_name {name}: no such file or directory (nor a Hub id)")
    return load_dataset(name, name=config, streaming=streaming)


def prepare_tokenizer(model_args, training_args, template_args):
    """The tokenizer with a training chat template set, and `training_args.eos_token` defaulted to its end of turn."""
    from transformers import AutoConfig, AutoTokenizer

    kwargs = {"revision": model_args.model_revision, "trust_remote_code": training_args.trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, **kwargs)
    template_path = training_args.chat_template_path
    if template_path is not None:  # TRL reads the file (or clones a tokenizer's template) itself
        if template_path.endswith((".jinja", ".j2")) and training_args.assistant_only_loss:
            if not has_generation_markers(Path(template_path).read_text(encoding="utf-8")):
                raise ValueError(
                    f"{template_path}: no {{% generation %}} markers; assistant-only loss needs them around what "
                    "the assistant writes (see wdtk/training/templates.py for examples)"
                )
        return tokenizer
    model_type = AutoConfig.from_pretrained(model_args.model_name_or_path, **kwargs).model_type
    tokenizer.chat_template, end_of_turn = select_template(tokenizer, model_type, template_args.chat_template_family)
    if training_args.eos_token is None and end_of_turn is not None:
        training_args.eos_token = end_of_turn
    return tokenizer


def fit_max_length(train, tokenizer, training_args, length_args):
    """The training rows, `training_args.max_length` set from them when not given (see `wdtk.training.lengths`)."""
    if not hasattr(train, "__len__") or "messages" not in (train.column_names or ()):
        if training_args.max_length is None:  # a stream cannot be measured beforehand; text rows are not chats
            raise ValueError("--max_length is needed here: the lengths cannot be read from this dataset beforehand")
        return train
    lengths = token_lengths(train, tokenizer)
    train, training_args.max_length = fit(train, lengths, training_args.max_length, length_args, "conversation", log)
    return train


def log(message: str) -> None:
    """A line for the user, from the first process only."""
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        print(f"[wdtk] {message}", file=sys.stderr, flush=True)


def resolve_model(name: str) -> str:
    """`embedded` is the embedded SmolLM2 checkpoint (written to the cache on first use); other names stay."""
    if name != "embedded":
        return name
    from ..synth.llm.embedded import CACHE_FORMAT, convert_gguf, default_cache_root, gguf_digest, gguf_path

    gguf = gguf_path()  # as EmbeddedLLM finds it, without loading the model into this process
    path = default_cache_root() / "embedded" / f"{gguf_digest(gguf)}-{CACHE_FORMAT}"
    if not (path / "config.json").exists():
        convert_gguf(gguf, path)
    return str(path)


def build_trainer(script_args, training_args, model_args, template_args):
    """An SFTTrainer for the dataset and model the arguments name, ready to train()."""
    from trl import SFTTrainer, get_peft_config, get_quantization_config

    model_args.model_name_or_path = resolve_model(model_args.model_name_or_path)
    training_args.model_init_kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
        **(training_args.model_init_kwargs or {}),
    }
    tokenizer = prepare_tokenizer(model_args, training_args, template_args)
    dataset = load_sft_dataset(script_args.dataset_name, script_args.dataset_config, script_args.dataset_streaming)
    train = fit_max_length(dataset[script_args.dataset_train_split], tokenizer, training_args, template_args)
    test_split = script_args.dataset_test_split
    evaluate = training_args.eval_strategy != "no" and test_split in dataset
    return SFTTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train,
        eval_dataset=dataset[test_split] if evaluate else None,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, train, and save the model (or LoRA adapter) and tokenizer to --output_dir."""
    script_args, training_args, model_args, template_args = parse_args(argv)
    if script_args.dataset_name is None:
        sys.exit("--dataset_name is required: a Hub dataset id or a directory written by `wdtk export` (its sft/)")
    try:
        trainer = build_trainer(script_args, training_args, model_args, template_args)
    except (FileNotFoundError, ValueError) as e:  # bad input (an overlong row too): one clear line, no traceback
        sys.exit(f"error: {e}")
    if hasattr(trainer.train_dataset, "__len__") and len(trainer.train_dataset) == 0:
        sys.exit(  # TRL drops examples that truncation left with nothing to train on; torch then fails obscurely
            f"error: no example of {script_args.dataset_name} has an assistant token left within --max_length "
            f"{training_args.max_length}: raise it (the instructions and the tool list alone take hundreds of tokens)"
        )
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.save_metrics("train", result.metrics)  # OUTPUT_DIR/train_results.json: train_loss etc. for callers
    trainer.accelerator.print(f"Model saved to {training_args.output_dir}")
    if hasattr(trainer, "end"):  # transformers >= 5.18: finish trackers, destroy the process group
        trainer.end()


if __name__ == "__main__":
    main()
