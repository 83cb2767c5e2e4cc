"""The RL script (wdtk.training.rl): tool rollouts, dynamic sampling, and DAPO steps, on CPU with a tiny model.

Nothing is downloaded: the model is a random 2-layer Qwen2 and the tokenizer is trained in memory (tests/tiny_lm.py),
with WebDancer's chatml template. A random model never writes a valid tool call, so the tests that need one script
the policy at the generation boundary: `ScriptedPolicy` replaces the trainer's `_generate_single_turn` (the one call
through which the rollout asks transformers or vLLM for a turn) and returns the token ids of the turns a competent
agent would write; for one question it hands the turn to the real model instead. Everything else is real: the chat
template, parsing the turn, the search on the local BM25 index (the `qa_run` fixture's), the tool-response tokens
and their mask, the rewards, dynamic sampling, and the DAPO loss and optimizer steps.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import torch
from tiny_lm import save_tiny, tiny_model, tiny_tokenizer
from trl import GRPOTrainer

from wdtk.synth.agent.format import TOOLS, Turn, assistant_message, render_assistant
from wdtk.synth.search.base import render_search, search_many
from wdtk.synth.search.bm25 import BM25Index
from wdtk.training.dapo import dynamic_sample, equal_reward_groups
from wdtk.training.rewards import exact_score, format_score
from wdtk.training.rl import RLArguments, make_trainer, parse_args
from wdtk.training.rollout import ToolRollout

G = 2  # rollouts per question
SEARCH_K = 2


class ScriptedPolicy:
    """Turns for the rollout, by question: search for the question first, then answer. "alternate" questions are
    answered right and wrong in turn (their groups' rewards differ), "right" ones always right (equal rewards),
    "model" ones get the real model's second turn (random text: equal, zero rewards)."""

    def __init__(self, trainer, seeds: list[dict], modes: list[str]):
        self.tok, self.real = trainer.processing_class, trainer._generate_single_turn
        self.seeds, self.modes = seeds, dict(zip((s["problem"] for s in seeds), modes, strict=True))
        self.first_turns: list[str] = []  # the question of every rollout started
        self.answers = 0

    def __call__(self, prompt_ids, images, fields, num_generations):
        out, real = [None] * len(prompt_ids), []
        for k, ids in enumerate(prompt_ids):
            text = self.tok.decode(ids)
            question = next(q for q in self.modes if q in text)
            if text.count("<|im_start|>assistant") == 1:  # no turn written yet
                self.first_turns.append(question)
                out[k] = self.encode(Turn(think="Look it up.", call=search_call(question)))
            elif self.modes[question] == "model":
                real.append(k)
            else:
                self.answers += 1
                wrong = self.modes[question] == "alternate" and self.answers % 2
                answer = "nobody knows" if wrong else next(s["answer"] for s in self.seeds if s["problem"] == question)
                out[k] = self.encode(Turn(think="Found it.", answer=answer))
        if real:
            generated, _ = self.real([prompt_ids[k] for k in real], images, fields, num_generations)
            for k, ids in zip(real, generated, strict=True):
                out[k] = ids
        return out, None

    def encode(self, turn: Turn) -> list[int]:
        text = render_assistant(assistant_message(turn))
        return self.tok(text, add_special_tokens=False)["input_ids"] + [self.tok.eos_token_id]


def search_call(question: str) -> dict:
    return {"name": "search", "arguments": {"query": [question]}}


def rows(seeds: list[dict]) -> list[dict]:
    return [
        {"id": f"q{i}", "question": s["problem"], "answer": s["answer"], "metadata": {}} for i, s in enumerate(seeds)
    ]


@pytest.fixture
def setup(qa_run, qa_seeds, tmp_path):
    """A DAPOTrainer made by the script's make_trainer on the four seed questions, with a scripted policy."""
    from datasets import Dataset
    from trl import GRPOConfig

    tok = tiny_tokenizer("chatml")
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=G,
        max_completion_length=768,
        max_steps=2,
        learning_rate=1e-2,
        loss_type="dapo",
        epsilon_high=0.28,
        mask_truncated_completions=True,
        reward_weights=[0.1, 0.9],
        bf16=False,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=3,
    )
    rl_args = RLArguments(index=str(qa_run / "index"), search_k=SEARCH_K, dynamic_sampling_rounds=8)
    rl_args.chat_template_family = "chatml"
    trainer = make_trainer(tiny_model(tok), tok, Dataset.from_list(rows(qa_seeds)), args, rl_args)
    policy = ScriptedPolicy(trainer, qa_seeds, ["alternate", "right", "alternate", "model"])
    trainer._generate_single_turn = policy
    return trainer, policy, qa_run, qa_seeds


def runs_of(mask: list[int]) -> list[tuple[int, int, int]]:
    """(value, start, end) of each run of equal values in `mask`."""
    runs, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            runs.append((mask[start], start, i))
            start = i
    return runs


def test_rollout_runs_the_local_search_and_masks_its_response(setup):
    trainer, _, qa_run, seeds = setup
    tok, question = trainer.processing_class, seeds[0]["problem"]
    prompt = trainer.train_dataset[0]["prompt"]
    out = trainer.rollout_func([prompt, prompt], trainer)

    expected = render_search(asyncio.run(search_many(BM25Index.load(qa_run / "index"), [question], SEARCH_K)))
    assert "## Web Results" in expected  # the index found pages for the question
    for ids, mask, trajectory in zip(out["completion_ids"], out["env_mask"], out["trajectory"], strict=True):
        roles = [m["role"] for m in trajectory["messages"]]
        assert roles == ["system", "user", "assistant", "tool", "assistant"], trajectory["messages"][2:]
        call = trajectory["messages"][2]["tool_calls"][0]
        assert call["function"] == search_call(question)
        assert trajectory["messages"][3] == {"role": "tool", "name": "search", "tool_call_id": call["id"],
                                             "content": expected}  # fmt: skip
        assert trajectory["termination"] == "answer" and trajectory["tools"] == TOOLS
        # model turn, tool response (masked), model turn: exactly what the chat template renders for the messages
        (one, a, b), (zero, c, d), (one_again, e, f) = runs_of(mask)
        assert (one, zero, one_again) == (1, 0, 1) and f == len(ids)
        rendered = tok.apply_chat_template(trajectory["messages"], tools=TOOLS, tokenize=False)
        assert tok.decode(out["prompt_ids"][0]) + tok.decode(ids) + "\n" == rendered
        assert tok.decode(ids[a:b]) == render_assistant(trajectory["messages"][2]) + tok.eos_token
        assert expected in tok.decode(ids[c:d]) and "<tool_response>" in tok.decode(ids[c:d])
        assert tok.decode(ids[e:f]).endswith("</answer>" + tok.eos_token)
    predictions = [t["prediction"] for t in out["trajectory"]]
    assert sorted(predictions) == sorted([seeds[0]["answer"], "nobody knows"])
    scores = [(format_score(t), exact_score(t, seeds[0]["answer"])) for t in out["trajectory"]]
    assert sorted(scores) == [(1.0, 0.0), (1.0, 1.0)]  # the rollouts are well formed; one answer is right


def test_a_call_past_the_call_budget_ends_the_rollout_unanswered(setup):
    trainer, _, _, _ = setup
    trainer.max_tool_calling_iterations = 0
    out = trainer.rollout_func([trainer.train_dataset[0]["prompt"]], trainer)
    [t], [ids], [mask] = out["trajectory"], out["completion_ids"], out["env_mask"]
    assert t["termination"] == "call_budget_exceeded" and [m["role"] for m in t["messages"]][-1] == "assistant"
    assert ids[-1] == trainer.processing_class.eos_token_id and set(mask) == {1}  # no tool response was added
    assert format_score(t) == 0.0


def test_a_rollout_cut_inside_a_tool_response_is_left_out_of_the_loss(setup):
    trainer, _, _, seeds = setup
    trainer.max_completion_length = 100  # the search results do not fit
    batch_rows = [dict(rows(seeds)[0], prompt=trainer.train_dataset[0]["prompt"]) for _ in range(G)]
    batch = GRPOTrainer._generate_and_score_completions(trainer, batch_rows)  # TRL's own, without dynamic sampling
    for row, completion_mask in zip(batch_rows, batch["completion_mask"], strict=True):
        assert row["trajectory"]["termination"] == "token_limit"
        assert row["trajectory"]["messages"][-1]["role"] == "tool"
        assert completion_mask.sum() == 0  # overlong filtering (mask_truncated_completions)
    assert batch["completion_ids"].shape[1] == 100


def test_a_turn_that_writes_the_tool_response_itself_or_is_cut_ends_the_rollout():
    call = render_assistant(assistant_message(Turn(call=search_call("x"))))
    run = {"messages": [], "termination": "call_budget_exceeded"}
    assert not ToolRollout.read_turn(run, call + "\n<tool_response>\ninvented\n</tool_response>", True, "call_0")
    assert run["termination"] == "format_error" and run["termination_detail"] == "invented_tool_response"
    assert run["messages"][-1]["content"].endswith("</tool_response>")  # the raw output is kept
    run = {"messages": [], "termination": "call_budget_exceeded"}
    assert not ToolRollout.read_turn(run, call, False, "call_0")  # no end-of-turn token: cut by the budget
    assert run["termination"] == "token_limit"
    run = {"messages": [], "termination": "call_budget_exceeded"}
    assert ToolRollout.read_turn(run, call, True, "call_3")
    assert run["messages"][-1]["tool_calls"][0]["id"] == "call_3"


def batch_of(widths: list[int], rewards: list[float], tag: int) -> tuple[dict, torch.Tensor]:
    """A fake scored batch: row r's prompt has widths[r] real ids (left-padded), its completion tag*100 + r."""
    n, width = len(widths), max(widths)
    prompt_ids = torch.zeros(n, width, dtype=torch.long)
    for r, w in enumerate(widths):
        prompt_ids[r, width - w :] = tag * 100 + r
    completion = torch.tensor([[tag * 100 + r] * (r % 2 + 1) + [0] * (1 - r % 2) for r in range(n)])
    batch = {"prompt_ids": prompt_ids, "prompt_mask": (prompt_ids != 0).long(), "completion_ids": completion,
             "completion_mask": (completion != 0).long(), "advantages": torch.tensor(rewards) - 0.5,
             "num_items_in_batch": torch.tensor(99)}  # fmt: skip
    return batch, torch.tensor(rewards)


def test_equal_reward_groups_are_the_ones_with_no_spread():
    flat = equal_reward_groups(torch.tensor([1.0, 0.0, 0.1, 0.1, 1.0, 1.0, 0.1, 1.0]), 2)
    assert flat.tolist() == [False, True, True, False]


def test_dynamic_sampling_drops_equal_groups_and_refills_the_batch():
    first = batch_of([3, 3, 1, 1, 2, 2], [1.0, 0.0, 0.0, 0.0, 1.0, 1.0], tag=1)  # groups: kept, dropped, dropped
    refills = iter([batch_of([4, 4, 1, 1], [0.0, 0.0, 0.1, 1.0], tag=2), batch_of([2, 2], [1.0, 0.0], tag=3)])
    asked, rows = [], ["row"] * 6

    def score(batch_rows):
        return first if batch_rows is rows else next(refills)

    def refill(n):
        asked.append(n)
        return ["more"] * n * G

    out, stats = dynamic_sample(score, rows, refill, G, rounds=5, pad_id=0)
    assert asked == [2, 1]  # two groups missing, then one
    assert stats == {"dropped_fraction": 3 / 6, "rounds": 2, "unfilled_fraction": 0.0}
    assert out["completion_ids"][:, 0].tolist() == [100, 101, 202, 203, 300, 301]  # kept groups, in order
    assert out["advantages"].tolist() == pytest.approx([0.5, -0.5, -0.4, 0.5, 0.5, -0.5])
    # prompts stay left-padded and completions right-padded to the widest row
    assert out["prompt_ids"].shape == (6, 4) and out["prompt_ids"][2].tolist() == [0, 0, 0, 202]
    assert out["prompt_mask"][0].tolist() == [0, 1, 1, 1] and out["prompt_mask"][4].tolist() == [0, 0, 1, 1]
    assert out["completion_mask"].tolist() == [[1, 0], [1, 1], [1, 0], [1, 1], [1, 0], [1, 1]]


def test_dynamic_sampling_fills_with_dropped_groups_when_rounds_run_out():
    first = batch_of([1, 1, 1, 1], [0.0, 0.0, 1.0, 0.0], tag=1)
    out, stats = dynamic_sample(lambda rows: first if rows else batch_of([1, 1], [1.0, 1.0], 2), ["x"] * 4,
                                lambda n: [], G, rounds=1)  # fmt: skip
    assert stats == {"dropped_fraction": 2 / 3, "rounds": 1, "unfilled_fraction": 0.5}
    assert out["completion_ids"][:, 0].tolist() == [102, 103, 100, 101]  # the kept group, then the first dropped


def test_dynamic_sampling_runs_the_rounds_another_process_needs():
    first = batch_of([1, 1], [0.0, 1.0], tag=1)  # this process is full, another one is not
    calls = []
    out, stats = dynamic_sample(lambda rows: calls.append(rows) or first, ["x"] * 2, lambda n: [f"refill {n}"], G,
                                rounds=1, sync=lambda n: 1)  # fmt: skip
    assert calls == [["x", "x"], ["refill 1"]] and stats["rounds"] == 1 and out["completion_ids"].shape[0] == 2


def test_training_batch_keeps_only_groups_whose_rewards_differ(setup):
    trainer, policy, _, seeds = setup
    trainer.model.train()
    right, alternate = seeds[1]["problem"], seeds[0]["problem"]
    first = [dict(r) for r in rows(seeds)[:2] for _ in range(G)]  # one dict per rollout, as the sampler gives
    for row in first:
        row["prompt"] = trainer.train_dataset[0 if row["question"] == alternate else 1]["prompt"]
    batch = trainer._generate_and_score_completions(first)

    generated = [policy.first_turns[i] for i in range(0, len(policy.first_turns), G)]  # one per group
    assert generated[:2] == [alternate, right] and len(generated) > 2  # the "right" group was refilled
    dropped = sum(policy.modes[q] != "alternate" for q in generated)
    [fraction] = trainer._metrics["train"]["dynamic_sampling/dropped_fraction"]
    assert fraction == dropped / len(generated)
    tok = trainer.processing_class
    questions = [next(q for q in policy.modes if q in tok.decode(ids)) for ids in batch["prompt_ids"]]
    assert len(questions) == 4 and all(policy.modes[q] == "alternate" for q in questions)
    assert (batch["advantages"].view(-1, G).abs().sum(dim=1) > 0).all()
    mask = batch["completion_mask"] * batch["tool_mask"]
    assert batch["num_items_in_batch"] == mask.sum()
    for ids, loss_mask in zip(batch["completion_ids"], mask, strict=True):  # tool responses are out of the loss
        masked = tok.decode(ids[(loss_mask == 0) & (ids != tok.pad_token_id)])
        trained = tok.decode(ids[loss_mask == 1])
        assert "## Web Results" in masked and "<tool_response>" in masked
        assert "<tool_response>" not in trained and "<tool_call>" in trained and "<answer>" in trained


def test_two_dapo_steps_with_tool_calls(setup):
    trainer, policy, _, _ = setup
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.state.global_step == 2
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2 and all(0.0 <= e["dynamic_sampling/dropped_fraction"] <= 1.0 for e in logs)
    assert all(e["rewards/format_reward/mean"] > 0 for e in logs)
    assert policy.answers > 0 and len(policy.first_turns) >= 8  # every rollout searched before its answer
    assert all("## Web Results" in c[0]["content"] for c in trainer._logs["completion"])  # the search's response
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
    assert changed  # the kept groups' advantages moved the policy


def test_parse_args_sets_dapo_defaults_and_accepts_use_vllm(tmp_path):
    script_args, args, model_args, rl_args = parse_args(
        [
            "--model_name_or_path",
            "m",
            "--dataset_name",
            "d",
            "--index",
            "i",
            "--output_dir",
            str(tmp_path),
            "--use_vllm",
        ]
    )
    assert args.use_vllm is True  # vLLM itself is not installed here: generation with it is not tested
    assert (args.loss_type, args.epsilon_high, args.mask_truncated_completions, args.beta) == ("dapo", 0.28, True, 0.0)
    assert args.reward_weights == [0.1, 0.9] and rl_args.index == "i" and rl_args.dynamic_sampling_rounds == 4
    assert json.loads(json.dumps(rl_args.__dict__))["judge_model"] is None


def test_the_script_trains_and_saves(qa_run, qa_seeds, tmp_path):
    """`python -m wdtk.training.rl` end to end on a saved tiny model and an RL pool directory; the random model's
    rollouts are text without tool calls, which is all it takes for one step."""
    from wdtk.training.rl import main

    pool = tmp_path / "rl"
    pool.mkdir()
    lines = [json.dumps(r | {"metadata": {"rollouts": 3}}) for r in rows(qa_seeds)]
    (pool / "00000.jsonl").write_text("\n".join(lines) + "\n")
    model = save_tiny(tmp_path / "tiny", "chatml")
    out = tmp_path / "out"
    main(["--model_name_or_path", str(model), "--dataset_name", str(pool), "--index", str(qa_run / "index"),
          "--output_dir", str(out), "--max_steps", "1", "--per_device_train_batch_size", "2", "--num_generations",
          "2", "--max_completion_length", "32", "--dynamic_sampling_rounds", "0", "--report_to", "none",
          "--save_strategy", "no", "--dtype", "float32"])  # fmt: skip
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()


def test_rl_lengths_come_from_the_data_and_nothing_is_cut_silently():
    """The prompt length is the longest prompt's; over the cap they stop the run unless dropped (counted in the
    log); the completion budget is what the context leaves beside the longest prompt, and one that does not fit is
    refused. Prompts are never truncated: the agent's instructions come first."""
    from types import SimpleNamespace

    from datasets import Dataset

    from wdtk.training.lengths import LengthArguments, OverlongError, fit_rl

    pool, lengths, said = Dataset.from_dict({"i": list(range(5))}), [100, 300, 900, 200, 1500], []
    args = SimpleNamespace(max_completion_length=None)
    kept = fit_rl(pool, lengths, args, LengthArguments(), 4096, said.append)
    assert len(kept) == 5 and args.max_completion_length == 4096 - 1500  # the room beside the longest prompt
    assert "prompt length 1500 tokens (the longest prompt)" in said[0]
    with pytest.raises(OverlongError, match="1 of 5 prompts are longer than 1000 tokens"):
        fit_rl(pool, lengths, SimpleNamespace(max_completion_length=None), LengthArguments(max_length_cap=1000),
               4096, said.append)  # fmt: skip
    said.clear()
    dropped = fit_rl(pool, lengths, SimpleNamespace(max_completion_length=None),
                     LengthArguments(max_length_cap=1000, overlong="drop"), 4096, said.append)  # fmt: skip
    assert dropped["i"] == [0, 1, 2, 3] and any("1 of 5 prompts" in s and "left out" in s for s in said)
    with pytest.raises(OverlongError, match="would cut the agent's instructions"):
        fit_rl(pool, lengths, args, LengthArguments(overlong="truncate"), 4096, said.append)
    with pytest.raises(OverlongError, match="does not fit beside the longest prompt"):
        fit_rl(pool, lengths, SimpleNamespace(max_completion_length=3000), LengthArguments(), 4096, said.append)
