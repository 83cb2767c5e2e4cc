"""One `generate` call for a batch of chat requests on CPU, each row with its own sampling, limits and stops.

Imports torch and transformers at the top: `wdtk.synth.llm.embedded` imports this module only when it loads the model.
Rows are left-padded into one tensor; sampling is done by a logits processor with a seeded generator per row and
greedy decoding picks the sampled token, so a row's output depends on its own seed, never on its batch mates.
A stopping criterion ends each row on its own (max tokens, stop strings, a closed JSON object, a loop); a batch
lasts as long as its longest row. Rows with a grammar are masked to the tokens it allows before they are sampled.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

# A row whose last 64 tokens repeat a cycle of at most 32 is stuck (small models loop: "🌍🌍🌍...", the same
# phrase over and over); it is ended as if cut by length, instead of holding its whole batch up to max_tokens.
LOOP_WINDOW, LOOP_PERIOD = 64, 32


@dataclass(frozen=True)
class GenRequest:
    """One tokenised prompt and how to continue it."""

    ids: list[int]
    max_new: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    json: bool = False  # end the row once a whole JSON object has been written
    grammar: str | None = None  # llguidance grammar the row must follow (synth/llm/grammar.py), None: free text


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


class JsonEnd:
    """Reads a row's text as it grows and tells when its first JSON object has closed."""

    def __init__(self) -> None:
        self.depth, self.in_string, self.escaped = 0, False, False

    def feed(self, text: str) -> bool:
        """Take the next piece of text; True once the first top-level object is complete."""
        for ch in text:
            if self.in_string:
                self.in_string = self.escaped or ch != '"'
                self.escaped = not self.escaped and ch == "\\"
            elif ch == "{":
                self.depth += 1
            elif self.depth and ch == '"':
                self.in_string = True
            elif self.depth and ch == "}":
                self.depth -= 1
                if not self.depth:
                    return True
        return False


class RowLimits(StoppingCriteria):
    """Ends each row on its own: at its max_new tokens, at a stop string, or (JSON requests) once its object closes.

    `reasons[i]` says why row i was ended here ("length", "stop", "json", "loop"), None when it ended on an end token.
    """

    def __init__(self, requests: list[GenRequest], prompt_width: int, tokenizer, end_ids: set[int]):
        self.requests, self.width, self.tokenizer, self.end_ids = requests, prompt_width, tokenizer, end_ids
        self.reasons: list[str | None] = [None] * len(requests)
        self.ended = [False] * len(requests)
        self.json = [JsonEnd() if r.json else None for r in requests]
        # a grammar row is bounded (thoughts, strings, lists: see wdtk.synth.llm.structured.tightened) and ends by
        # itself; cutting its loop would only turn a well-formed reply into a broken one
        self.loops = [not r.grammar for r in requests]
        # a token decodes to at least one character, so this many tail tokens cover the longest stop string
        self.tails = [max((len(s) for s in r.stop), default=0) + 2 for r in requests]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        n_new = input_ids.shape[1] - self.width
        for i in range(len(self.requests)):
            if not self.ended[i]:
                token = int(input_ids[i, -1])
                self.reasons[i] = None if token in self.end_ids else self._reason(input_ids[i], i, token, n_new)
                self.ended[i] = token in self.end_ids or self.reasons[i] is not None
        return torch.tensor(self.ended, dtype=torch.bool, device=input_ids.device)

    def _reason(self, row: torch.Tensor, i: int, token: int, n_new: int) -> str | None:
        request = self.requests[i]
        if self.json[i] is not None and self.json[i].feed(self.tokenizer.decode([token])):
            return "json"
        if request.stop:
            tail = self.tokenizer.decode(row[-min(self.tails[i], n_new) :], skip_special_tokens=True)
            if any(s in tail for s in request.stop):
                return "stop"
        if self.loops[i] and n_new > LOOP_WINDOW and looping(row[-min(n_new, LOOP_WINDOW + LOOP_PERIOD) :].tolist()):
            return "loop"
        return "length" if n_new >= request.max_new else None


def looping(tail: list[int]) -> bool:
    """True when the last LOOP_WINDOW tokens repeat a cycle of at most LOOP_PERIOD tokens."""
    window = tail[-LOOP_WINDOW:]
    return any(tail[-LOOP_WINDOW - k : -k] == window for k in range(1, len(tail) - LOOP_WINDOW + 1))


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with every row right-aligned: generation appends at one column for all."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids, mask


def generate(
    model, tokenizer, requests: list[GenRequest], end_ids: list[int], threads: int, engine=None
) -> list[GenResult]:
    """Continue every request in one `model.generate` call; `end_ids` are the tokens that end a turn. Rows with a
    grammar are masked by `engine` (a `wdtk.synth.llm.grammar.Engine`) before they are sampled."""
    torch.set_num_threads(threads)  # here, in the thread that generates: OpenMP keeps the count per thread
    pad_id = end_ids[0]
    ids, mask = left_pad([r.ids for r in requests], pad_id)
    config = GenerationConfig(
        do_sample=False, max_new_tokens=max(r.max_new for r in requests), pad_token_id=pad_id, eos_token_id=end_ids
    )
    limits = RowLimits(requests, ids.shape[1], tokenizer, set(end_ids))
    processors = [RowSampler(requests)]
    if any(r.grammar for r in requests):
        from .grammar import GrammarMask

        matchers = [engine.matcher(r.grammar) if r.grammar else None for r in requests]
        processors.insert(0, GrammarMask(matchers, ids.shape[1], engine.vocab_size))  # mask first, then sample
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            generation_config=config,
            logits_processor=LogitsProcessorList(processors),
            stopping_criteria=StoppingCriteriaList([limits]),
        )
    rows = out[:, ids.shape[1] :].tolist()
    return [finish(rows[i], r, tokenizer, set(end_ids), limits.reasons[i]) for i, r in enumerate(requests)]


def finish(tokens: list[int], request: GenRequest, tokenizer, end_ids: set[int], reason: str | None) -> GenResult:
    """The result of one row's generated `tokens`; rows ended early are padded with an end token after them."""
    cut = next((i for i, t in enumerate(tokens) if t in end_ids), len(tokens))
    text = tokenizer.decode(tokens[:cut], skip_special_tokens=True)
    if reason == "stop":
        hits = [i for i in (text.find(s) for s in request.stop) if i >= 0]
        return GenResult(text[: min(hits, default=len(text))], cut, "stop")
    if reason == "json":
        return GenResult(text, cut, "stop")
    if reason is None and cut < len(tokens):
        return GenResult(text, cut + 1, "stop")  # the end-of-turn token counts, as with an API
    return GenResult(text, cut, "length")  # max tokens, or a loop cut short
