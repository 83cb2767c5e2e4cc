"""The grammar engine of the in-process CPU backend (embedded, local:): llguidance compiles a JSON schema or a Lark
grammar against the model's tokenizer, and `GrammarMask` lets each row of a batch pick only tokens its grammar
allows next, so a reply is well-formed by construction, not by luck.

Imports torch and llguidance at the top: `wdtk.synth.llm.embedded` imports this module only for a constrained call.
Computing a mask costs tens of microseconds a row and token (bench/structured.py measures the whole overhead).
"""

from __future__ import annotations

import llguidance
import llguidance.hf
import torch
from transformers import LogitsProcessor

from .base import GrammarError
from .structured import JSON_OPTIONS, MAX_ITEMS, tightened


def from_schema(schema: dict, max_tokens: int | None = None) -> str:
    """llguidance's grammar for one JSON object of `schema`, tightened (`structured.tightened`): lists of at most
    MAX_ITEMS and, for a reply of `max_tokens`, strings of at most max_tokens / 3 characters (a tenth of the budget
    in plain text, more in digits and URLs), so that the object usually closes within the budget."""
    max_chars = max(16, max_tokens // 3) if max_tokens else None
    try:
        return llguidance.LLMatcher.grammar_from_json_schema(tightened(schema, MAX_ITEMS, max_chars), JSON_OPTIONS)
    except ValueError as e:
        raise GrammarError(f"the JSON schema cannot be compiled: {_first_line(e)}") from None


def from_lark(lark: str) -> str:
    """llguidance's grammar for a Lark grammar (checked when a matcher is made)."""
    return llguidance.LLMatcher.grammar_from_lark(lark)


def check(grammar: str) -> str | None:
    """Why llguidance cannot compile `grammar` (one line), or None; needs no tokenizer."""
    error = llguidance.LLMatcher.validate_grammar(grammar)
    return _first_line(error) if error and not error.startswith("WARNING") else None


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else "unknown error"


class Engine:
    """llguidance's view of one model's tokenizer, and matchers for grammars (each distinct grammar checked once)."""

    def __init__(self, hf_tokenizer, end_ids: list[int], vocab_size: int) -> None:
        # the end-of-turn tokens are what a finished grammar allows next
        self.tokenizer = llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=vocab_size, eos_token=end_ids)
        self.vocab_size = vocab_size
        self._errors: dict[str, str | None] = {}

    def check(self, grammar: str) -> None:
        """Raise GrammarError when `grammar` cannot be compiled for this tokenizer."""
        if grammar not in self._errors:
            error = llguidance.LLMatcher.validate_grammar(grammar, self.tokenizer)
            self._errors[grammar] = _first_line(error) if error and not error.startswith("WARNING") else None
        if self._errors[grammar]:
            raise GrammarError(f"the grammar cannot be compiled: {self._errors[grammar]}")

    def matcher(self, grammar: str) -> llguidance.LLMatcher:
        """A fresh matcher at the start of `grammar`."""
        self.check(grammar)
        return llguidance.LLMatcher(self.tokenizer, grammar, log_level=0)


class GrammarMask(LogitsProcessor):
    """Sets to -inf, row by row, the scores of tokens that the row's grammar does not allow next.

    Rows without a matcher are left alone. A row is released when its matcher fails, which happens only after the
    row has ended (generate pads it) or was cut by a stop string: then its tokens no longer matter.
    """

    def __init__(self, matchers: list[llguidance.LLMatcher | None], prompt_width: int, vocab_size: int) -> None:
        self.rows = {i: m for i, m in enumerate(matchers) if m is not None}
        self.seen, self.vocab = prompt_width, vocab_size
        words = (vocab_size + 31) // 32
        self.bits = torch.zeros((len(matchers), words), dtype=torch.int32)
        self.shifts = torch.arange(32, dtype=torch.int32)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        new = input_ids[:, self.seen :].tolist() if input_ids.shape[1] > self.seen else None
        self.seen = input_ids.shape[1]
        for i, matcher in list(self.rows.items()):
            if new is not None and not matcher.consume_tokens(new[i]):
                del self.rows[i]
                continue
            row = self.bits[i]
            matcher.unsafe_compute_mask_ptr(row.data_ptr(), row.numel() * 4)
            allowed = ((row.unsqueeze(-1) >> self.shifts) & 1).flatten()[: scores.shape[-1]].bool()
            scores[i].masked_fill_(~allowed, float("-inf"))
        return scores
