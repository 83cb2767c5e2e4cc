"""DAPO for the search agent with TRL's GRPOTrainer: multi-turn rollouts that call the local search and visit tools.

    python -m wdtk.training.rl \\
        --model_name_or_path runs/demo/sft-model \\
        --dataset_name runs/demo/export/rl \\
        --index runs/demo/index \\
        --output_dir runs/demo/rl-model

    accelerate launch training/rl.py --model_name_or_path runs/demo/sft-model --dataset_name you/wdtk-rl \\
        --index runs/demo/index --use_vllm --vllm_mode colocate --judge_model gpt-4o-mini --output_dir rl-model

`--dataset_name` is a Hub dataset id or a local directory of RL pool shards ({"id", "question", "answer",
"metadata"}, as `wdtk export` writes RUN/export/rl). `--index` is the BM25 index of the crawled pages (RUN/index).

DAPO (Yu et al., 2025) on GRPOTrainer: `loss_type="dapo"` (token-level loss over the batch's active tokens),
clip-higher (`epsilon_high=0.28`), overlong filtering (`mask_truncated_completions`: a rollout cut short by
`max_completion_length` is left out of the loss), no KL term (`beta=0`), and dynamic sampling, which TRL lacks
(`wdtk.training.dapo`: groups whose rewards are all equal are dropped and refilled, up to
`--dynamic_sampling_rounds` extra rounds). `--use_vllm` generates with vLLM (TRL's colocate or server mode).

Rollouts (`wdtk.training.rollout`): the model writes WebDancer turns; their tool calls run as sampling runs them:
`search` on the local index, `visit` the page's stored text cut to `--visit_chars` characters (or, with
`--visit_model`, the evidence that model extracts). Tool responses are masked out of the loss. Reward: 0.1 x format
+ 0.9 x answer (`wdtk.training.rewards`), the answer judged by `--judge_model` when given, else by exact match.

Every TRL GRPOConfig and ModelConfig option works (`--help` lists them; `--config FILE.yaml` sets them from a file).
`max_completion_length` bounds a whole rollout, tool responses included (default 4,096, or what the model's context
leaves beside the longest prompt); `max_tool_calling_iterations` its tool calls. Prompts are never cut: one longer
than `--max_length_cap` (or the context) stops the run unless `--overlong drop` leaves it out, counted in the log.
With several processes, each must hold whole groups (per_device_train_batch_size x steps_per_generation a multiple of
num_generations), and vLLM must run colocated: rollouts take a different number of turns on each process.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from ..synth.agent.format import Instructions
from ..synth.judge import Judge
from .lengths import LengthArguments, fit_rl
from .rewards import WEIGHTS, answer_reward, format_reward
from .sft import log, resolve_model
from .templates import FAMILIES


@dataclass
class RLArguments(LengthArguments):
    """The tools, the judge, dynamic sampling, and how long a prompt may be."""

    index: str | None = field(default=None, metadata={"help": "BM25 index of the pages (RUN/index)."})
    search_k: int = field(default=5, metadata={"help": "Results per search query."})
    visit_chars: int = field(default=4000, metadata={"help": "Characters of page text a visit returns."})
    visit_model: str | None = field(default=None, metadata={"help": "LLM extracting evidence on visits."})
    visit_api_base: str | None = field(default=None, metadata={"help": "OpenAI-compatible endpoint of visit_model."})
    judge_model: str | None = field(default=None, metadata={"help": "LLM judge of answers (default: exact match)."})
    judge_api_base: str | None = field(default=None, metadata={"help": "OpenAI-compatible endpoint of judge_model."})
    dynamic_sampling_rounds: int = field(default=4, metadata={"help": "Refill rounds per batch (0: no refill)."})
    chat_template_family: str | None = field(
        default=None, metadata={"help": "Chat template (default: the tokenizer's own).", "choices": list(FAMILIES)}
    )


# --- dynamic sampling --------------------------------------------------------------------------------------------


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help shows the module docstring as written, and every option's default."""


def parse_args(argv: list[str] | None = None) -> tuple:
    """(ScriptArguments, GRPOConfig, ModelConfig, RLArguments) from the command line (and --config YAML), DAPO's
    settings as defaults."""
    import torch
    from transformers.utils import is_torch_bf16_gpu_available
    from trl import GRPOConfig, ModelConfig, ScriptArguments, TrlParser

    parser = TrlParser(
        (ScriptArguments, GRPOConfig, ModelConfig, RLArguments), description=__doc__, formatter_class=_Help
    )
    dapo = {"loss_type": "dapo", "epsilon_high": 0.28, "mask_truncated_completions": True, "beta": 0.0}
    defaults = {**dapo, "reward_weights": list(WEIGHTS.values()), "max_completion_length": None}  # None: fit_rl
    defaults |= {"max_tool_calling_iterations": 16, "bf16": is_torch_bf16_gpu_available()}
    if not torch.cuda.is_available():  # checkpointing saves GPU memory; on CPU it only costs time
        defaults |= {"gradient_checkpointing": False, "activation_checkpointing": False}
    parser.set_defaults_with_config(**{k: v for k, v in defaults.items() if k in GRPOConfig.__dataclass_fields__})
    return parser.parse_args_and_config(argv)


def to_prompt(row: dict) -> dict:
    """A pool row as a GRPO prompt: the agent's instructions (the chat template lists the tools) and the question."""
    system = {"role": "system", "content": Instructions().text}
    return {"prompt": [system, {"role": "user", "content": row["question"]}]}


def prompt_lengths(prompts, tokenizer) -> list[int]:
    """Tokens of each prompt as the rollouts render it: the chat template with the tools and the generation prompt."""
    from ..synth.agent.format import TOOLS

    render = {"tools": TOOLS, "add_generation_prompt": True, "tokenize": False}
    return [len(tokenizer(tokenizer.apply_chat_template(p, **render), add_special_tokens=False)["input_ids"])
            for p in prompts["prompt"]]  # fmt: skip


def context_of(model) -> int | None:
    """The model's context length (max_position_embeddings), when its config says."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model) if isinstance(model, str) else getattr(model, "config", None)
    return getattr(config, "max_position_embeddings", None)


def make_trainer(model, tokenizer, train_dataset, training_args, rl_args: RLArguments, peft_config=None):
    """A DAPOTrainer over a dataset of {"question", "answer", ...} rows, its tools on the index `rl_args.index`."""
    from ..synth.agent.loop import Agent, AgentConfig
    from ..synth.agent.visit import Visitor
    from ..synth.llm.client import LLMClient
    from ..synth.llm.factory import make_llm
    from ..synth.search.bm25 import BM25Index
    from .dapo import DAPOTrainer
    from .rollout import PageVisitor, ToolRollout

    if rl_args.chat_template_family:
        tokenizer.chat_template = FAMILIES[rl_args.chat_template_family].template
    tokenizer.response_template = tokenizer.response_schema = None  # rollouts parse turns themselves, in wdtk's format
    index = BM25Index.load(rl_args.index)
    visitor = PageVisitor(index, rl_args.visit_chars)
    if rl_args.visit_model:
        visitor = Visitor(LLMClient(make_llm(rl_args.visit_model, rl_args.visit_api_base)), corpus=index)
    judge = Judge(LLMClient(make_llm(rl_args.judge_model, rl_args.judge_api_base))) if rl_args.judge_model else None
    agent = Agent(None, index, visitor, AgentConfig(search_k=rl_args.search_k))
    extra = [c for c in train_dataset.column_names if c not in ("id", "question", "answer")]
    prompts = train_dataset.map(to_prompt, remove_columns=extra)
    prompts = fit_rl(prompts, prompt_lengths(prompts, tokenizer), training_args, rl_args, context_of(model), log)
    return DAPOTrainer(
        model=model,
        reward_funcs=[format_reward, answer_reward(judge)],
        args=training_args,
        train_dataset=prompts,
        processing_class=tokenizer,
        rollout_func=ToolRollout(agent),
        peft_config=peft_config,
        dynamic_sampling_rounds=rl_args.dynamic_sampling_rounds,
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, train, and save the model (or LoRA adapter) and tokenizer to --output_dir."""
    from transformers import AutoTokenizer
    from trl import get_peft_config

    from .sft import load_sft_dataset

    script_args, training_args, model_args, rl_args = parse_args(argv)
    if script_args.dataset_name is None or rl_args.index is None:
        sys.exit("--dataset_name (a Hub id or RUN/export/rl) and --index (RUN/index) are required")
    if training_args.use_vllm and training_args.vllm_mode == "server" and training_args.world_size > 1:
        sys.exit("multi-turn rollouts generate per process: with several processes use --vllm_mode colocate")
    model_args.model_name_or_path = resolve_model(model_args.model_name_or_path)
    hub = {"revision": model_args.model_revision, "trust_remote_code": training_args.trust_remote_code}
    training_args.model_init_kwargs = {**hub, "dtype": model_args.dtype, **(training_args.model_init_kwargs or {})}
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, **hub)
    dataset = load_sft_dataset(script_args.dataset_name, script_args.dataset_config)[script_args.dataset_train_split]
    peft = get_peft_config(model_args)
    try:
        trainer = make_trainer(model_args.model_name_or_path, tokenizer, dataset, training_args, rl_args, peft)
    except ValueError as e:  # an overlong prompt, a completion budget past the context: one line, no traceback
        sys.exit(f"error: {e}")
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.print(f"Model saved to {training_args.output_dir}")


if __name__ == "__main__":
    main()
