"""Structured outputs without a grammar engine: the request fields that ask a server to enforce a JSON schema or
a grammar, `auto` mode's fallback when a server refuses them, and the schema forms the local engine compiles.

- JSON: OpenAI's `response_format={"type": "json_schema", ...}`, which vLLM, SGLang, llama.cpp's server and
  litellm's providers with response schemas read too (vLLM and SGLang need no extra field for it).
- Grammar (the agent's ReAct turn, in llguidance's Lark dialect), only with `--structured on`: vLLM's
  `structured_outputs={"grammar": ...}` (0.10.2 and later; its guidance backend reads Lark) and SGLang's `ebnf`
  (its llguidance grammar backend reads Lark). OpenAI itself takes no grammar: with `on` it answers 400.

In `auto` mode a server that answers HTTP 400 naming one of these fields is asked again without them, and so is
every later call of that backend: one warning, once per process.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from .base import Completion, PermanentLLMError, Structured

log = logging.getLogger(__name__)

# Compact JSON, as json.dumps writes it: whitespace is where a small model wanders off (newlines, indents, loops).
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
MAX_ITEMS = 3  # per JSON list, where a schema sets no maximum (see `tightened`)
# what a server's 400 says when it does not know (or cannot honour) a structured-output field
REFUSAL = re.compile(r"response_format|json_schema|structured_output|guided|grammar|ebnf", re.I)


def grammar_fields(grammar: str) -> dict:
    """Request fields that carry a Lark grammar to vLLM and SGLang."""
    return {"structured_outputs": {"grammar": grammar}, "ebnf": grammar}


def asks_for_structure(body: dict) -> bool:
    """Whether a request body asks the server to enforce a schema or grammar."""
    return "response_format" in body or "structured_outputs" in body


class Fallback:
    """`auto` mode's memory for one backend: after a server refused structured outputs, plain prompting."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.refused = False

    def mode(self, structured: Structured) -> Structured:
        """The mode to send a request in: "off" once the server has refused, in auto mode."""
        return "off" if structured == "auto" and self.refused else structured

    def refuses(self, error: Exception, structured: Structured) -> bool:
        """Whether `error` is the server refusing structured outputs in auto mode (warns the first time)."""
        message = str(error)
        if structured != "auto" or not isinstance(error, PermanentLLMError) or not message.startswith("HTTP 400"):
            return False
        if not REFUSAL.search(message):
            return False
        if not self.refused:
            self.refused = True
            log.warning(
                "wdtk: %s refused structured outputs (%s); asking in words for the rest of the run "
                "(--structured off skips the attempt, --structured on makes it an error)",
                self.name,
                message[:200],
            )
        return True


async def with_fallback(
    fallback: Fallback, structured: Structured, call: Callable[[Structured], Awaitable[Completion]]
) -> Completion:
    """`call(mode)`, asked again with mode "off" when the server refuses structured outputs in auto mode."""
    mode = fallback.mode(structured)
    try:
        return await call(mode)
    except PermanentLLMError as e:
        if not fallback.refuses(e, mode):
            raise
    return await call("off")


def tightened(schema: dict, max_items: int = MAX_ITEMS, max_chars: int | None = None) -> dict:
    """`schema` as the local grammar engine enforces it: objects closed to the properties they list, lists at most
    `max_items` long and strings at most `max_chars`, wherever the schema says nothing else. Every reply that fits
    it fits the original; left loose, a small model invents keys, counts list items ("Question 35: ...") or repeats
    a phrase until its token budget runs out, and the reply is cut mid-object."""
    if not isinstance(schema, dict):
        return schema
    out, again = dict(schema), lambda sub: tightened(sub, max_items, max_chars)
    for key in ("properties", "$defs", "definitions"):
        if isinstance(out.get(key), dict):
            out[key] = {name: again(sub) for name, sub in out[key].items()}
    for key in ("items", "additionalProperties", "not", "if", "then", "else", "contains"):
        if isinstance(out.get(key), dict):
            out[key] = again(out[key])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(out.get(key), list):
            out[key] = [again(sub) for sub in out[key]]
    if "properties" in out and "additionalProperties" not in out and "patternProperties" not in out:
        out["additionalProperties"] = False
    if _types(out) == {"array"} and "maxItems" not in out:
        out["maxItems"] = max(max_items, out.get("minItems", 0))
    if max_chars and _types(out) == {"string"} and "maxLength" not in out and not {"enum", "const"} & set(out):
        out["maxLength"] = max(max_chars, out.get("minLength", 0))
    return out


def _types(schema: dict) -> set[str]:
    kind = schema.get("type")
    return set(kind) if isinstance(kind, list) else {kind} if kind else set()
