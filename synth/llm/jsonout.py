"""Find the JSON object in a model's reply and check it against a JSON Schema, saying why when either fails."""

from __future__ import annotations

import json
import re

import jsonschema
import orjson

FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.S)
THINK = re.compile(r"<think>.*?</think>", re.S)  # reasoning models think aloud first, braces and all
MAX_STARTS = 32  # '{' positions tried before giving up: bounds the work on long prose
MAX_MESSAGE = 300  # jsonschema quotes the offending value, which may be a whole page
_validators: dict[bytes, jsonschema.protocols.Validator] = {}


def parse_json(text: str, schema: dict | None = None) -> tuple[dict | None, str | None]:
    """(the object, None) when `text` holds a JSON object valid under `schema`, else (None, why not)."""
    value, error = extract_object(text)
    if value is None or schema is None:
        return value, error
    error = schema_error(value, schema)
    return (None, error) if error else (value, None)


def extract_object(text: str) -> tuple[dict | None, str | None]:
    """The JSON object in `text`: the whole text, a ```json fence, or the first object inside prose."""
    text = THINK.sub("", text).strip()
    first_error = None
    for candidate in [text, *(m.group(1).strip() for m in FENCE.finditer(text))]:
        try:
            value = orjson.loads(candidate)
        except orjson.JSONDecodeError as e:
            first_error = first_error or str(e)
            continue
        if isinstance(value, dict):
            return value, None
        first_error = first_error or f"expected an object, got {type(value).__name__}"
    return _scan(text, first_error)


def _scan(text: str, first_error: str | None) -> tuple[dict | None, str | None]:
    """The first '{' from which a whole JSON object decodes, skipping what lies inside a broken object before it."""
    decoder, start = json.JSONDecoder(), text.find("{")
    for _ in range(MAX_STARTS):
        if start < 0:
            break
        try:
            return decoder.raw_decode(text, start)[0], None
        except json.JSONDecodeError:
            # an inner object of a broken one would pass for the answer: jump past the broken object's closing brace
            start = text.find("{", _span_end(text, start))
    return None, f"not JSON: {first_error or 'empty reply'}"


def _span_end(text: str, start: int) -> int:
    """Index just past the '}' that closes the '{' at `start` (strings respected); start + 1 if none does."""
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(text)):
        char = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{}":
            depth += 1 if char == "{" else -1
            if depth == 0:
                return i + 1
    return start + 1


def schema_error(value: dict, schema: dict) -> str | None:
    """Why `value` breaks `schema`, naming the field ("schema: field 'answer' is required"), or None."""
    error = jsonschema.exceptions.best_match(validator(schema).iter_errors(value))
    if error is None:
        return None
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = next((name for name in error.validator_value if name not in error.instance), "?")
        return f"schema: field '{'.'.join([*path, missing])}' is required"
    message = error.message if len(error.message) <= MAX_MESSAGE else error.message[:MAX_MESSAGE] + "..."
    return f"schema: field '{'.'.join(path)}': {message}" if path else f"schema: {message}"


def validator(schema: dict) -> jsonschema.protocols.Validator:
    """A compiled validator for `schema`, built once per distinct schema (building one costs far more than a check)."""
    key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    if (found := _validators.get(key)) is None:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        found = _validators[key] = cls(schema)
    return found
