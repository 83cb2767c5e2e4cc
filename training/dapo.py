"""DAPO's dynamic sampling on TRL's GRPOTrainer, which lacks it (Yu et al., 2025).

Groups of rollouts whose rewards are all equal (all right or all wrong) have zero advantage and give no gradient:
`DAPOTrainer` drops them and refills the batch with groups of prompts drawn beyond it, logging
`dynamic_sampling/dropped_fraction`. `dynamic_sample` is the pure part, tested on its own.
"""

from __future__ import annotations

import random

import torch
from trl import GRPOTrainer


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
