"""QA quality filter: why a question-answer record should be dropped, or None to keep it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..schemas import RecordError, validate
from ..synth.text import contains, normalize

_INTERROGATIVE = re.compile(
    r"^(who|whom|whose|what|which|when|where|why|how|is|are|was|were|do|does|did|can|could|has|have|had|in|on|at|"
    r"for|from|of|by|to|name|list|identify|give)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the QA quality filter."""

    max_answer_words: int = 10
    max_answer_chars: int = 120
    min_question_words: int = 4
    max_question_chars: int = 2000
    min_hops: int = 0  # E2HQA difficulty: records with fewer rewrite hops are dropped
    answer_words: bool = True  # drop a several-word answer whose every word is in the question


def drop_reason(qa: dict, cfg: QualityConfig) -> str | None:
    """The first reason `qa` fails the filter (malformed, empty_answer, answer_too_long, answer_in_question,
    answer_words_in_question, not_a_question, question_too_long, too_few_hops), or None to keep it."""
    try:
        validate(qa, "qa")
    except RecordError:
        return "malformed"
    question, answer = qa["question"].strip(), qa["answer"].strip()
    if not normalize(answer):
        return "empty_answer"
    if len(answer.split()) > cfg.max_answer_words or len(answer) > cfg.max_answer_chars:
        return "answer_too_long"
    if contains(question, answer):
        return "answer_in_question"
    if cfg.answer_words and answer_words_in(question, answer):
        return "answer_words_in_question"
    if len(question.split()) < cfg.min_question_words or not is_question(question):
        return "not_a_question"
    if len(question) > cfg.max_question_chars:
        return "question_too_long"
    if len(qa.get("hops", [])) < cfg.min_hops:
        return "too_few_hops"
    return None


def answer_words_in(question: str, answer: str) -> bool:
    """Whether every word of a several-word answer appears in the question, in any order ("Vael, Dorn")."""
    words = set(normalize(answer).split())
    return len(words) > 1 and words <= set(normalize(question).split())


def is_question(text: str) -> bool:
    """A question mark at the end, or an interrogative or imperative opening ("Which ...", "Name the ...")."""
    text = text.strip()
    return text.endswith("?") or bool(_INTERROGATIVE.match(text))
