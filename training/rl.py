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
`max_completion_length` is left out of the loss), no KL term (`beta=0`), and dynamic sampling, which TRL lacks:
`DAPOTrainer` drops the groups whose rewards are all equal (all right or all wrong: zero advantage, no gradient) and
refills the batch with groups of prompts drawn beyond it, up to `--dynamic_sampling_rounds` extra rounds, logging
`dynamic_sampling/dropped_fraction`. `--use_vllm` generates with vLLM (TRL's colocate or server mode).

Rollouts (TRL's `rollout_func`): the model writes WebDancer turns (<think>, one <tool_call> or <answer>); each turn is
read by `synth.agent.format.parse_turn` and its tool call run by `synth.agent.loop.Agent.act`, as sampling
does: `search` on the local index; `visit` returns the page's stored text cut to `--visit_chars` characters (no LLM
in the loop), or, with `--visit_model`, the evidence that model extracts, as in sampling. The tool response is added
as the chat template renders a tool turn, and masked out of the loss. Reward: 0.1 x format + 0.9 x answer
(`wdtk.training.rewards`), the answer judged by `--judge_model` when given, else by exact match.

Every TRL GRPOConfig and ModelConfig option works (`--help` lists them; `--config FILE.yaml` sets them from a file).
`max_completion_length` bounds a whole rollout, tool responses included; `max_tool_calling_iterations` its tool calls.
With several processes, each must hold whole groups (per_device_train_batch_size x steps_per_generation a multiple of
num_generations), and vLLM must run colocated: rollouts take a different number of turns on each process.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from trl import GRPOTrainer

from wdtk.filters.judge import Judge
from wdtk.synth.agent.format import TOOLS, Instructions, assistant_message, parse_turn
from wdtk.synth.agent.loop import Agent, AgentConfig
from wdtk.synth.agent.visit import SEPARATOR, UNREACHABLE
from wdtk.training.rewards import WEIGHTS, answer_reward, format_reward
from wdtk.training.templates import FAMILIES


@dataclass
class RLArguments:
    """The tools, the judge and dynamic sampling."""

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


class PageVisitor:
    """The visit tool without an LLM: each page's stored text from the index, cut to `max_chars`."""

    def __init__(self, corpus, max_chars: int = 4000):
        self.corpus, self.max_chars = corpus, max_chars

    async def visit_many(self, urls: list[str], goal: str) -> str:
        """The pages' texts, in the order given; the visit tool's wording for a page the index lacks."""
        return SEPARATOR.join(self.read(url) for url in urls)

    def read(self, url: str) -> str:
        page = self.corpus.get(url)
        return (
            f"{url}: {UNREACHABLE}"
            if page is None
            else f"{page.title} ({page.final_url}):\n{page.text[: self.max_chars]}"
        )


class ToolRollout:
    """TRL `rollout_func`: multi-turn ReAct rollouts, the model's turns generated by the trainer (transformers or
    vLLM), tool calls run by `agent.act`, tool responses masked out of the loss (`env_mask` 0)."""

    def __init__(self, agent: Agent):
        self.agent, self.loop = agent, asyncio.new_event_loop()  # one loop: tool clients keep their pools

    def __call__(self, prompts: list[list[dict]], trainer) -> dict:
        """prompt_ids, completion_ids (every turn and tool response), logprobs, env_mask and trajectory per prompt."""
        tok, budget, n = trainer.processing_class, trainer.max_completion_length, len(prompts)
        render = {"tools": TOOLS, "add_generation_prompt": True, "return_dict": False, **trainer.chat_template_kwargs}
        prompt_ids = [tok.apply_chat_template(p, tokenize=True, **render) for p in prompts]
        ids, mask, logps = [[] for _ in range(n)], [[] for _ in range(n)], [[] for _ in range(n)]
        runs = [{"messages": list(p), "tools": TOOLS, "termination": "call_budget_exceeded"} for p in prompts]
        live, calls, stop = list(range(n)), 0, {*trainer.eos_token_ids, tok.pad_token_id}
        while live:
            with _turn_limit(trainer, max(budget - len(ids[i]) for i in live)):  # the budget covers every turn
                new, new_logps = trainer._generate_single_turn([prompt_ids[i] + ids[i] for i in live], None, {}, 1)
            called = []
            for k, i in enumerate(live):
                out = new[k][: budget - len(ids[i])]
                ids[i], mask[i] = ids[i] + out, mask[i] + [1] * len(out)
                logps[i] += new_logps[k][: len(out)] if new_logps else [0.0] * len(out)
                text = tok.decode([t for t in out if t not in stop])
                if self.read_turn(runs[i], text, ended=bool(out) and out[-1] in stop, call_id=f"call_{calls}"):
                    if calls < trainer.max_tool_calling_iterations:  # else it ends as call_budget_exceeded
                        called.append(i)
            observations = self.loop.run_until_complete(self.act([runs[i]["messages"][-1] for i in called]))
            for i, observation in zip(list(called), observations, strict=True):
                call = runs[i]["messages"][-1]["tool_calls"][0]
                tool = {"role": "tool", "name": call["function"]["name"], "tool_call_id": call["id"]}
                runs[i]["messages"].append({**tool, "content": observation})
                response = tool_response_ids(tok, observation, trainer.eos_token_ids)[: budget - len(ids[i])]
                ids[i], mask[i] = ids[i] + response, mask[i] + [0] * len(response)
                logps[i] += [0.0] * len(response)
                if len(ids[i]) >= budget:  # cut inside the response: truncated, so overlong filtering drops it
                    runs[i]["termination"] = "token_limit"
                    called.remove(i)
            live, calls = called, calls + 1
        logprobs = logps if trainer.use_vllm else None  # transformers' generate gives none; TRL recomputes them
        return dict(prompt_ids=prompt_ids, completion_ids=ids, logprobs=logprobs, env_mask=mask, trajectory=runs)

    async def act(self, turns: list[dict]) -> list[str]:
        """The responses to the tool calls in `turns` (assistant messages), run concurrently."""
        return await asyncio.gather(*(self.agent.act(t["tool_calls"][0]["function"]) for t in turns))

    @staticmethod
    def read_turn(run: dict, text: str, ended: bool, call_id: str) -> bool:
        """Add the model's turn to `run`; True when it called a tool (whose response is due), else the run ends."""
        turn = parse_turn(text)
        if not ended:
            end = ("token_limit", "cut at max_completion_length")
        elif "<tool_response>" in text:  # it wrote the tool's answer itself; parse_turn would cut that off silently
            end = ("format_error", "invented_tool_response")
        else:
            end = ("format_error", turn.error) if turn.error else None
        if end:
            run["messages"].append({"role": "assistant", "content": text})  # the raw output, as sampling keeps it
            run["termination"], run["termination_detail"] = end
            return False
        run["messages"].append(assistant_message(turn, call_id))
        if turn.answer is not None:
            run["termination"], run["prediction"] = "answer", turn.answer
        return turn.call is not None


@contextmanager
def _turn_limit(trainer, tokens: int):
    """Generate at most `tokens` new tokens (what the rollout's budget has left) rather than max_completion_length."""
    targets = [(trainer.generation_config, "max_new_tokens")]
    targets += [(trainer.vllm_generation, "max_completion_length")] if trainer.use_vllm else []
    saved = [getattr(obj, name) for obj, name in targets]
    for obj, name in targets:
        setattr(obj, name, tokens)
    try:
        yield
    finally:
        for (obj, name), value in zip(targets, saved, strict=True):
            setattr(obj, name, value)


def tool_response_ids(tokenizer, content: str, stop_ids) -> list[int]:
    """Token ids after an assistant turn's stop token (one of `stop_ids`) up to the next assistant turn, the tool's
    response `content` between, as the chat template renders them: a rollout's tokens read as its messages' SFT
    rendering does."""
    head, tail = _tool_turn(tokenizer, tuple(tokenizer.convert_ids_to_tokens(list(stop_ids))))
    return tokenizer(head + content + tail, add_special_tokens=False)["input_ids"]


@functools.lru_cache(maxsize=8)
def _tool_turn(tokenizer, stops: tuple[str, ...]) -> tuple[str, str]:
    turns = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    before = tokenizer.apply_chat_template(turns, tokenize=False)
    tool = {"role": "tool", "name": "search", "content": "\x00"}
    after = tokenizer.apply_chat_template([*turns, tool], tokenize=False, add_generation_prompt=True)
    end = max(before.rfind(s) + len(s) if s in before else -1 for s in stops)  # where generation stopped
    if end < 0 or not after.startswith(before[:end]):
        raise ValueError(f"the chat template ends no assistant turn with a stop token {stops}: set eos_token to it")
    head, _, tail = after[end:].partition("\x00")
    return head, tail


# --- dynamic sampling --------------------------------------------------------------------------------------------


def equal_reward_groups(rewards: torch.Tensor, group: int) -> torch.Tensor:
    """Per group of `group` consecutive rollouts: whether their rewards are all equal (zero advantage, no gradient)."""
    grouped = torch.nan_to_num(rewards.float(), nan=0.0).view(-1, group)
    return grouped.max(dim=1).values - grouped.min(dim=1).values <= 1e-6


def dynamic_sample(score, rows: list, refill, group: int, rounds: int, sync=lambda n: n, pad_id: int = 0):
    """DAPO's dynamic sampling over one generation batch of whole groups: (batch, stats).

    `score(rows)` generates and scores rows: (batch of row-aligned tensors, reward per row). Groups with equal rewards
    are dropped and replaced by `refill(n)`'s rows of n more groups, for up to `rounds` rounds; `sync(n)` is the
    largest n over processes, so every process runs the same rounds. Dropped groups fill in only when rounds run out.
    """
    wanted, parts, kept, dropped = len(rows) // group, [], [], []
    for round_ in range(rounds + 1):
        if round_ and not (missing := sync(max(wanted - len(kept), 0))):
            break
        batch, rewards = score(refill(missing) if round_ else rows)
        parts.append(batch)
        for g, flat in enumerate(equal_reward_groups(rewards, group).tolist()):
            (dropped if flat else kept).append((len(parts) - 1, g))
    chosen = (kept + dropped)[:wanted]
    fields = [k for k in parts[0] if k != "num_items_in_batch"]  # a batch total: the trainer recounts it
    out = {k: _cat([parts[p][k][g * group : (g + 1) * group] for p, g in chosen], k, pad_id) for k in fields}
    stats = {"dropped_fraction": len(dropped) / (len(kept) + len(dropped)), "rounds": len(parts) - 1}
    return out, stats | {"unfilled_fraction": max(wanted - len(kept), 0) / wanted}


def _cat(pieces: list, key: str, pad_id: int):
    """Row blocks of one batch field joined, 2-D ones padded to the widest (prompts on the left, as TRL pads them)."""
    if not isinstance(pieces[0], torch.Tensor) or not 1 <= pieces[0].ndim <= 2:
        raise ValueError(f"dynamic sampling merges text batches only; cannot merge the field {key!r}")
    if pieces[0].ndim == 1:
        return torch.cat(pieces)
    width, value = max(p.shape[1] for p in pieces), pad_id if key.endswith("_ids") else 0
    sides = [(width - p.shape[1], 0) if key.startswith("prompt_") else (0, width - p.shape[1]) for p in pieces]
    return torch.cat([torch.nn.functional.pad(p, side, value=value) for p, side in zip(pieces, sides, strict=True)])


class DAPOTrainer(GRPOTrainer):
    """GRPOTrainer with DAPO's dynamic sampling: each training batch of generations keeps only groups whose rewards
    differ, refilled from prompts drawn at random from the training set (`dynamic_sample`)."""

    def __init__(self, *args, dynamic_sampling_rounds: int = 4, **kwargs):
        super().__init__(*args, **kwargs)
        self.dynamic_sampling_rounds, self._draws = dynamic_sampling_rounds, []
        if (self.args.per_device_train_batch_size * self.args.steps_per_generation) % self.num_generations:
            raise ValueError(
                "dynamic sampling needs whole groups on each process: per_device_train_batch_size x "
                f"steps_per_generation must be a multiple of num_generations ({self.num_generations})"
            )
        if dynamic_sampling_rounds and not hasattr(self.train_dataset, "__getitem__"):
            raise ValueError("dynamic sampling draws extra prompts by index: use a map-style (not streaming) dataset")
        self._rng = random.Random(self.args.seed + 1 + self.accelerator.process_index)  # not the sampler's order

    def _refill(self, groups: int) -> list[dict]:
        rows = []
        for _ in range(groups):
            if not self._draws:
                self._draws = self._rng.sample(range(len(self.train_dataset)), len(self.train_dataset))
            row = self.train_dataset[self._draws.pop()]
            rows += [dict(row) for _ in range(self.num_generations)]  # one dict per rollout: TRL writes into each
        return rows

    def _calculate_rewards(self, *args, **kwargs):
        self._rewards = super()._calculate_rewards(*args, **kwargs)  # every process's, gathered
        return self._rewards

    def _score(self, rows: list[dict]) -> tuple[dict, torch.Tensor]:
        batch = super()._generate_and_score_completions(rows)
        totals = (self._rewards * self.reward_weights.to(self._rewards.device)).nansum(dim=1)
        start = self.accelerator.process_index * len(rows)
        return batch, totals[start : start + len(rows)]

    def _max_over_processes(self, n: int) -> int:
        return int(self.accelerator.gather(torch.tensor([n], device=self.accelerator.device)).max())

    def _generate_and_score_completions(self, inputs: list[dict]) -> dict:
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        rounds, pad_id = self.dynamic_sampling_rounds, self._tokenizer.pad_token_id
        group, sync = self.num_generations, self._max_over_processes
        batch, stats = dynamic_sample(self._score, inputs, self._refill, group, rounds, sync, pad_id)
        mask = batch["completion_mask"] * batch.get("tool_mask", 1)
        batch["num_items_in_batch"] = self.accelerator.gather(mask.sum()).sum()  # the kept rows' loss tokens
        for name, value in stats.items():
            self._metrics["train"][f"dynamic_sampling/{name}"].append(value)
        return batch


# --- the script ----------------------------------------------------------------------------------------------------


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help shows the module docstring as written, and every option's default."""


def parse_args(argv: list[str] | None = None) -> tuple:
    """(ScriptArguments, GRPOConfig, ModelConfig, RLArguments) from the command line (and --config YAML), DAPO's
    settings as defaults."""
    from transformers.utils import is_torch_bf16_gpu_available
    from trl import GRPOConfig, ModelConfig, ScriptArguments, TrlParser

    parser = TrlParser(
        (ScriptArguments, GRPOConfig, ModelConfig, RLArguments), description=__doc__, formatter_class=_Help
    )
    dapo = {"loss_type": "dapo", "epsilon_high": 0.28, "mask_truncated_completions": True, "beta": 0.0}
    defaults = {**dapo, "reward_weights": list(WEIGHTS.values()), "max_completion_length": 4096}
    defaults |= {"max_tool_calling_iterations": 16, "bf16": is_torch_bf16_gpu_available()}
    if not torch.cuda.is_available():  # checkpointing saves GPU memory; on CPU it only costs time
        defaults |= {"gradient_checkpointing": False, "activation_checkpointing": False}
    parser.set_defaults_with_config(**{k: v for k, v in defaults.items() if k in GRPOConfig.__dataclass_fields__})
    return parser.parse_args_and_config(argv)


def to_prompt(row: dict) -> dict:
    """A pool row as a GRPO prompt: the agent's instructions (the chat template lists the tools) and the question."""
    system = {"role": "system", "content": Instructions().text}
    return {"prompt": [system, {"role": "user", "content": row["question"]}]}


def make_trainer(model, tokenizer, train_dataset, training_args, rl_args: RLArguments, peft_config=None):
    """A DAPOTrainer over a dataset of {"question", "answer", ...} rows, its tools on the index `rl_args.index`."""
    from wdtk.synth.agent.visit import Visitor
    from wdtk.synth.llm.client import LLMClient
    from wdtk.synth.llm.factory import make_llm
    from wdtk.synth.search.bm25 import BM25Index

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
    return DAPOTrainer(
        model=model,
        reward_funcs=[format_reward, answer_reward(judge)],
        args=training_args,
        train_dataset=train_dataset.map(to_prompt, remove_columns=extra),
        processing_class=tokenizer,
        rollout_func=ToolRollout(agent),
        peft_config=peft_config,
        dynamic_sampling_rounds=rl_args.dynamic_sampling_rounds,
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, train, and save the model (or LoRA adapter) and tokenizer to --output_dir."""
    from transformers import AutoTokenizer
    from trl import get_peft_config

    from wdtk.training.sft import load_sft_dataset

    script_args, training_args, model_args, rl_args = parse_args(argv)
    if script_args.dataset_name is None or rl_args.index is None:
        sys.exit("--dataset_name (a Hub id or RUN/export/rl) and --index (RUN/index) are required")
    if training_args.use_vllm and training_args.vllm_mode == "server" and training_args.world_size > 1:
        sys.exit("multi-turn rollouts generate per process: with several processes use --vllm_mode colocate")
    hub = {"revision": model_args.model_revision, "trust_remote_code": training_args.trust_remote_code}
    training_args.model_init_kwargs = {**hub, "dtype": model_args.dtype, **(training_args.model_init_kwargs or {})}
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, **hub)
    dataset = load_sft_dataset(script_args.dataset_name, script_args.dataset_config)[script_args.dataset_train_split]
    peft = get_peft_config(model_args)
    trainer = make_trainer(model_args.model_name_or_path, tokenizer, dataset, training_args, rl_args, peft)
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.print(f"Model saved to {training_args.output_dir}")


if __name__ == "__main__":
    main()
