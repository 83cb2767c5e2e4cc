"""Decontamination: drop QA whose question shares a long word n-gram with an evaluation set's question.

Evaluation sets are user-given JSONL files (GAIA, WebWalkerQA, BrowseComp, ... as they are: the question is
read from the usual field names). An evaluation question shorter than the n-gram length matches when it
appears whole inside a QA question. Each match is recorded (file, record number, item id, the shared
n-gram) so a drop can be audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..schemas import RecordError, read_records
from ..synth.text import normalize

QUESTION_FIELDS = ("question", "Question", "problem", "Problem", "prompt", "query", "input")
ID_FIELDS = ("id", "task_id", "uid", "qid", "question_id")


@dataclass(frozen=True)
class DecontamConfig:
    """Word n-gram length for overlap (13, as in GPT-3's decontamination)."""

    ngram: int = 13


def ngrams(text: str, n: int) -> set[str]:
    """Word n-grams of the normalised text; the whole text when it is shorter than n words."""
    words = normalize(text).split()
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


class EvalIndex:
    """The n-grams of every evaluation question, each pointing to the item it came from."""

    def __init__(self, cfg: DecontamConfig) -> None:
        self.cfg = cfg
        self.grams: dict[str, dict] = {}
        self.short: list[tuple[str, dict]] = []  # questions under n words: matched as whole phrases
        self.items = 0

    @classmethod
    def from_files(cls, paths: Iterable[Path], cfg: DecontamConfig) -> EvalIndex:
        """Index evaluation JSONL files; a record without a question field is an error naming the file."""
        index = cls(cfg)
        for path in paths:
            for i, row in enumerate(read_records(path)):
                index.add(
                    _question(row, path, i),
                    {
                        "eval_file": str(path),
                        "eval_record": i + 1,
                        "eval_id": str(next((row[k] for k in ID_FIELDS if k in row), "")),
                    },
                )
        return index

    def add(self, question: str, source: dict) -> None:
        self.items += 1
        words = normalize(question).split()
        if 0 < len(words) < self.cfg.ngram:
            self.short.append((" ".join(words), source))
        for gram in ngrams(question, self.cfg.ngram):
            self.grams.setdefault(gram, source)

    def match(self, question: str) -> dict | None:
        """The evaluation item `question` overlaps, with the shared n-gram (or short question), or None."""
        for gram in ngrams(question, self.cfg.ngram):
            if gram in self.grams:
                return {**self.grams[gram], "ngram": gram}
        padded = f" {normalize(question)} "
        return next(({**source, "ngram": short} for short, source in self.short if f" {short} " in padded), None)


def _question(row: dict, path: Path, i: int) -> str:
    for key in QUESTION_FIELDS:
        if isinstance(row.get(key), str) and row[key].strip():
            return row[key]
    raise RecordError(f"no question field (looked for: {', '.join(QUESTION_FIELDS)})", path=path, index=i)
