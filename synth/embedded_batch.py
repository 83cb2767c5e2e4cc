"""One `generate` call for a batch of chat requests on CPU, each row with its own sampling, limits and stops.

Imports torch and transformers at the top: `wdtk.synth.embedded` imports this module only when it loads the model.
Rows are left-padded into one tensor; sampling is done by a logits processor with a seeded generator per row and
greedy decoding picks the sampled token, so a row's output depends on its own seed, never on its batch mates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList


@dataclass(frozen=True)
class GenRequest:
    """One tokenised prompt and how to continue it."""

    ids: list[int]
    max_new: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class GenResult:
    """The continuation of one row: text cut at its stop string, tokens spent, "stop" or "length"."""

    text: str
    completion_tokens: int
    finish_reason: str


class RowSampler(LogitsProcessor):
    """Samples rows with temperature > 0 (top-p, own seeded generator) and leaves the others to greedy argmax."""

    def __init__(self, requests: list[GenRequest]):
        sampled = [(i, r) for i, r in enumerate(requests) if r.temperature > 0]
        self.rows = [(i, r.temperature, r.top_p, _generator(r.seed)) for i, r in sampled]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for i, temperature, top_p, generator in self.rows:
            token = sample(scores[i], temperature, top_p, generator)
            scores[i] = float("-inf")
            scores[i, token] = 0.0  # the only finite score: argmax takes it
        return scores


def sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> int:
    """A token id drawn from softmax(logits / temperature), restricted to the top-p nucleus."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_probs, order = torch.sort(probs, descending=True)
    # keep a token while the mass before it is under top_p: the most likely token always stays
    keep = (sorted_probs.cumsum(-1) - sorted_probs) < top_p
    sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
    pick = torch.multinomial(sorted_probs, 1, generator=generator)
    return int(order[pick])


def _generator(seed: int | None) -> torch.Generator:
    # no seed: a fresh random one, so unseeded samples differ from run to run as with an API
    return torch.Generator().manual_seed(seed if seed is not None else random.SystemRandom().randrange(2**63))


class RowLimits(StoppingCriteria):
    """Ends a row at its own max_new tokens or when its text contains one of its stop strings."""

    def __init__(self, requests: list[GenRequest], prompt_width: int, tokenizer):
        self.requests, self.width, self.tokenizer = requests, prompt_width, tokenizer
        # a token decodes to at least one character, so this many tail tokens cover the longest stop string
        self.tails = [max((len(s) for s in r.stop), default=0) + 2 for r in requests]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        n_new = input_ids.shape[1] - self.width
        done = [
            n_new >= r.max_new or self._stopped(input_ids[i], r, self.tails[i], n_new)
            for i, r in enumerate(self.requests)
        ]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def _stopped(self, row: torch.Tensor, request: GenRequest, tail: int, n_new: int) -> bool:
        if not request.stop:
            return False
        text = self.tokenizer.decode(row[-min(tail, n_new) :], skip_special_tokens=True)
        return any(s in text for s in request.stop)


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with every row right-aligned: generation appends at one column for all."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids, mask


def generate(model, tokenizer, requests: list[GenRequest], end_ids: list[int], threads: int) -> list[GenResult]:
    """Continue every request in one `model.generate` call; `end_ids` are the tokens that end a turn."""
    torch.set_num_threads(threads)  # here, in the thread that generates: OpenMP keeps the count per thread
    pad_id = end_ids[0]
    ids, mask = left_pad([r.ids for r in requests], pad_id)
    config = GenerationConfig(
        do_sample=False, max_new_tokens=max(r.max_new for r in requests), pad_token_id=pad_id, eos_token_id=end_ids
    )
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            generation_config=config,
            logits_processor=LogitsProcessorList([RowSampler(requests)]),
            stopping_criteria=StoppingCriteriaList([RowLimits(requests, ids.shape[1], tokenizer)]),
        )
    return [finish(out[i, ids.shape[1] :].tolist(), r, tokenizer, set(end_ids)) for i, r in enumerate(requests)]


def finish(tokens: list[int], request: GenRequest, tokenizer, end_ids: set[int]) -> GenResult:
    """The result of one row's generated `tokens` (rows that ended early are padded with an end token)."""
    cut = next((i for i, t in enumerate(tokens) if t in end_ids), len(tokens))
    text = tokenizer.decode(tokens[:cut], skip_special_tokens=True)
    hits = [i for i in (text.find(s) for s in request.stop) if i >= 0]
    if hits:
        return GenResult(text[: min(hits)], cut, "stop")
    if cut < min(len(tokens), request.max_new):
        return GenResult(text, cut + 1, "stop")  # the end-of-turn token counts, as with an API
    return GenResult(text, min(cut, request.max_new), "length")
