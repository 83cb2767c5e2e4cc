"""Benchmark files for `wdtk eval`: GAIA, WebWalkerQA, BrowseComp or plain QA rows, their layout detected per row.

    questions, skipped = load_benchmark(Path("gaia_val.jsonl"))   # [Question(qa, layout, groups, skip)], Counter

Files are JSONL(.gz), Parquet or CSV. Layouts and the breakdown each gives:
  GAIA         Question, Final answer, Level, task_id, file_name: by level. Tasks with an attached file are skipped
               and counted (the agent searches and visits; it reads no files), as are hidden answers ("?").
  WebWalkerQA  question, answer, root_url, info{type, difficulty_level} (or its README's Question/Answer/Root_Url/
               Info{Hop, Difficulty_Level}): by type and difficulty.
  BrowseComp   problem, answer, problem_topic, canary: by topic; rows with a canary are decrypted as in
               openai/simple-evals (base64, XOR with SHA-256 of the canary, repeated).
  plain        question/answer (any seed row `wdtk sample` reads): by level, type, topic or difficulty if present.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..schemas import RecordError, record_id
from ..schemas.formats import iter_jsonl, iter_parquet
from ..synth.e2hqa import ANSWER_KEYS, QUESTION_KEYS

LAYOUTS = {  # layout -> (name, question keys, answer keys); keys match case-insensitively
    "gaia": ("GAIA", ("Question",), ("Final answer",)),
    "webwalkerqa": ("WebWalkerQA", ("question",), ("answer",)),
    "browsecomp": ("BrowseComp", ("problem",), ("answer",)),
    "plain": ("QA", QUESTION_KEYS, ANSWER_KEYS),
}


@dataclass(frozen=True)
class Question:
    """One benchmark question: its qa record, layout, breakdown keys, and why it is skipped (None: it is not)."""

    qa: dict
    layout: str
    groups: dict[str, str]
    skip: str | None = None


# --- benchmark rows ------------------------------------------------------------------------------------------------


def decrypt(ciphertext_b64: str, password: str) -> str:
    """BrowseComp's cipher: base64 of the UTF-8 text XOR-ed with SHA-256(password) repeated to its length."""
    data = base64.b64decode(ciphertext_b64, validate=True)
    key = hashlib.sha256(password.encode()).digest()
    return bytes(b ^ key[i % len(key)] for i, b in enumerate(data)).decode()


def detect_layout(row: dict) -> str:
    """gaia, webwalkerqa, browsecomp or plain, from the row's field names."""
    keys = {k.lower() for k in row}
    if keys & {"task_id", "final answer"}:
        return "gaia"
    if keys & {"root_url", "info"}:
        return "webwalkerqa"
    if keys & {"canary", "problem_topic"} or {"problem", "topic"} <= keys:
        return "browsecomp"
    return "plain"


def parse_row(row: dict, path: Path | str | None = None, line: int | None = None) -> Question:
    """The question in one benchmark row; a RecordError naming file, line and missing field when it has none."""
    layout = detect_layout(row)
    name, *keys = LAYOUTS[layout]
    low = {k.lower(): v for k, v in row.items()}
    question, answer = (_first(low, wanted) for wanted in keys)
    if not (question and answer):
        wanted = " or ".join(map(repr, keys[0] if not question else keys[1]))
        raise RecordError(f"{name} row has no {wanted} (its fields: {', '.join(row) or 'none'})", path=path, line=line)
    if layout == "browsecomp" and low.get("canary"):
        try:
            question, answer = decrypt(question, low["canary"]).strip(), decrypt(answer, low["canary"]).strip()
        except (binascii.Error, UnicodeDecodeError) as e:
            raise RecordError(f"BrowseComp row cannot be decrypted with its canary: {e}", path=path, line=line) from e
    qa = {
        "id": record_id("qa", question, answer),
        "question": question,
        "answer": answer,
        "type": layout.upper(),
        "source": "benchmark",
        "evidence_urls": [],
        "meta": {"wdtk_version": __version__},
    }
    skip = None
    if layout == "gaia" and str(low.get("file_name") or "").strip():
        skip = "gaia_attachment"  # out of scope: the agent searches and visits, it reads no files
    elif layout == "gaia" and answer == "?":
        skip = "hidden_answer"  # GAIA's test split
    return Question(qa, layout, _groups(layout, low), skip)


def _first(low: dict, keys: tuple[str, ...]) -> str:
    """The first non-blank value of `keys` in a row with lower-cased field names, stripped; "" if none."""
    values = (low.get(k) for k in map(str.lower, keys))
    return next((str(v).strip() for v in values if v is not None and str(v).strip()), "")  # an answer may be 0


def _groups(layout: str, low: dict) -> dict[str, str]:
    """Breakdown keys: level (GAIA), type and difficulty (WebWalkerQA), topic (BrowseComp), any of them (plain)."""
    if layout == "gaia":
        values = {"level": low.get("level")}
    elif layout == "webwalkerqa":
        info = low.get("info") or {}
        info = {k.lower(): v for k, v in (json.loads(info) if isinstance(info, str) else info).items()}
        values = {"type": info.get("type") or info.get("hop"), "difficulty": info.get("difficulty_level")}
        values = {k: str(v).lower().replace("-", "_") for k, v in values.items() if v}  # multi-source: multi_source
    elif layout == "browsecomp":
        values = {"topic": low.get("problem_topic") or low.get("topic")}
    else:
        values = {k: low.get(k) for k in ("level", "type", "topic", "difficulty")}
    return {k: str(v).strip() for k, v in values.items() if isinstance(v, str | int | float) and str(v).strip()}


def rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line or row number, row) of a JSONL(.gz), Parquet or CSV file."""
    if path.name.lower().endswith(".csv"):
        with path.open(newline="", encoding="utf-8-sig") as f:  # spreadsheets write a BOM
            reader = csv.DictReader(f)
            yield from ((reader.line_num, row) for row in reader)
        return
    if path.name.lower().endswith(".parquet"):
        yield from iter_parquet(path)
        return
    for line, raw in iter_jsonl(path):
        try:
            row = json.loads(raw)
        except ValueError as e:
            raise RecordError(f"invalid JSON: {e}", path=path, line=line) from None
        if not isinstance(row, dict):
            raise RecordError(f"expected a JSON object, got {type(row).__name__}", path=path, line=line)
        yield line, row


def load_benchmark(path: Path, limit: int | None = None) -> tuple[list[Question], Counter]:
    """The benchmark's questions (first occurrence of each, at most `limit`) and the rows skipped, by reason."""
    questions, skipped, seen = [], Counter(), set()
    for line, row in rows(Path(path)):
        if limit is not None and len(questions) >= limit:
            break
        q = parse_row(row, path, line)
        if reason := q.skip or ("duplicate" if q.qa["id"] in seen else None):
            skipped[reason] += 1
        else:
            seen.add(q.qa["id"])
            questions.append(q)
    if not questions:
        raise RecordError(f"no questions to evaluate (skipped: {dict(skipped) or 'none'})", path=path)
    return questions, skipped


# --- metrics -------------------------------------------------------------------------------------------------------
