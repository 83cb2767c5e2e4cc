"""Record kinds, their JSON Schemas, content-hash ids, and the error every reader and writer raises."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.resources import files
from pathlib import Path

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from .errors import WdtkError

KINDS: tuple[str, ...] = ("page", "qa", "trajectory", "judgement")
ID_LENGTH = 16  # hex chars = 64 bits: a collision is ~1e-6 likely at 10M records of one kind
_MAX_MESSAGE = 200  # jsonschema quotes the offending value; a whole page text would swamp a one-line error


class RecordError(WdtkError, ValueError):
    """A record, line or file that cannot be read, written or validated; str() is a complete one-line message."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line  # 1-based JSONL line or Parquet row
        self.field = field  # dotted path inside the record, e.g. "messages.2.content"
        self.index = index  # 0-based position among the records handed to a writer

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        elif self.line is not None:
            where = f"line {self.line}: "
        if self.index is not None:
            where += f"record {self.index + 1}: "  # people count from 1
        if self.field is not None:
            where += f"field {self.field!r}: "
        return where + self.message


def check_kind(kind: str) -> None:
    """Raise RecordError unless `kind` is one of KINDS."""
    if kind not in KINDS:
        raise RecordError(f"unknown record kind {kind!r}; expected one of: {', '.join(KINDS)}")


def load_schema(kind: str) -> dict:
    """The JSON Schema for `kind`, freshly parsed from the packaged `<kind>.schema.json`."""
    check_kind(kind)
    return json.loads(files(__package__).joinpath(f"{kind}.schema.json").read_text(encoding="utf-8"))


@cache
def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(kind))


def validate(record: dict, kind: str) -> None:
    """Raise RecordError naming the field and the problem unless `record` is a valid `kind` record."""
    check_kind(kind)
    error = best_match(_validator(kind).iter_errors(record))
    if error is not None:
        raise _to_record_error(error, kind)


def _to_record_error(error: ValidationError, kind: str) -> RecordError:
    """Turn jsonschema's error into one naming the exact field, including missing and unknown ones."""
    path = [str(p) for p in error.absolute_path]
    message = error.message
    if error.validator == "required":
        # jsonschema yields one error per missing name but only says which one in its message
        names = [n for n in error.validator_value if error.message == f"{n!r} is a required property"]
        if names:
            path.append(names[0])
            message = "required field is missing"
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        if extra:
            path.append(extra[0])
            message = f"unknown field, not in the {kind} schema (extra data belongs in 'meta')"
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return RecordError(message, field=".".join(path) or None)


def record_id(*parts: object) -> str:
    """Stable id: the first 16 hex chars of sha256 over the canonical JSON of `parts`.

    Canonical JSON is the stdlib's (sorted keys, no spaces, UTF-8, no NaN), never orjson's, whose float
    spelling differs (1e+16 vs 1e16), so the id is the same on every machine and run. Tuples hash like
    lists, and 1 differs from 1.0. By convention pass the kind first: `record_id("page", url)`.
    """
    if not parts:
        raise TypeError("record_id() needs at least one part")
    canonical = json.dumps(list(parts), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:ID_LENGTH]
