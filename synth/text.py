"""Answer and question text normalisation, shared by synthesis checks and (later) the filters."""

from __future__ import annotations

import re
import unicodedata

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]")
_NUMBER = re.compile(r"^-?\d[\d,]*(\.\d+)?$")


def normalize(text: str) -> str:
    """SQuAD-style: lower case, accents folded, punctuation and articles dropped, spaces collapsed."""
    # accents fold away (NFKD, then combining marks dropped); letters of other scripts stay
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()
    text = _ARTICLES.sub(" ", _PUNCT.sub(" ", text))
    return " ".join(text.split())


def contains(haystack: str, needle: str) -> bool:
    """Whether `needle` occurs in `haystack` as whole words, after normalising both."""
    n = normalize(needle)
    return bool(n) and f" {n} " in f" {normalize(haystack)} "


def is_number(text: str) -> bool:
    """Whether `text` is a plain number such as 12, 1,204 or 3.5."""
    return bool(_NUMBER.match(text.strip()))


def word_count(text: str) -> int:
    return len(text.split())
