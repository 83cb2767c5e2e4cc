"""Shingle F1: how close an extracted text is to the true main text, by overlapping runs of words."""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"\w+")


def shingles(text: str, k: int = 3) -> Counter:
    """The multiset of lowercase k-word runs in `text` (a shorter text is one shingle)."""
    words = _WORD.findall(text.lower())
    if len(words) < k:
        return Counter([tuple(words)]) if words else Counter()
    return Counter(tuple(words[i : i + k]) for i in range(len(words) - k + 1))


def shingle_f1(predicted: str, gold: str, k: int = 3) -> tuple[float, float, float]:
    """(precision, recall, F1) of `predicted`'s shingles against `gold`'s; two empty texts agree fully."""
    p, g = shingles(predicted, k), shingles(gold, k)
    if not p and not g:
        return 1.0, 1.0, 1.0
    common = sum((p & g).values())
    if not common:
        return 0.0, 0.0, 0.0
    precision, recall = common / sum(p.values()), common / sum(g.values())
    return precision, recall, 2 * precision * recall / (precision + recall)
