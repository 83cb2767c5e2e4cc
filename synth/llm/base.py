"""The LLM seam: a small async protocol and its value types. Backends implement it; `factory.make_llm` picks one.

Backends do one chat completion each, nothing more: retries, caching, rate limits and accounting live in
`wdtk.synth.llm.client.LLMClient`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from ...schemas import WdtkError

# How replies are held to their JSON schema or grammar: "auto" wherever the backend can (falling back to plain
# prompting when a server refuses), "on" always (a refusal is an error), "off" never (asked in words, then parsed).
Structured = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class Sampling:
    """Decoding parameters of one request."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None
    stop: tuple[str, ...] = ()
    sample_index: int = 0  # k-th of several samples with equal params: in the cache key, so rollouts differ


@dataclass
class Completion:
    """One model answer with its accounting."""

    text: str
    reasoning: str = ""  # reasoning_content of reasoning models, when the backend returns it
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0  # USD from litellm's cost map (loaded locally), 0.0 when unknown
    model: str = ""
    finish_reason: str = ""
    cached: bool = False
    constrained: bool = False  # the backend held the reply to its JSON schema or grammar while decoding


class LLM(Protocol):
    """A backend: one chat completion, async. No retries, no cache, no rate limits: LLMClient adds those."""

    # stable id used in cache keys, record meta and record ids, e.g. "openai:Qwen2.5-7B": never an endpoint's
    # address, a port or a path of this machine, so a resume against another address writes the same ids
    name: str
    # optional `hedge = True`: a network backend whose stragglers LLMClient may race with a second request

    async def complete(
        self,
        messages: list[dict],
        sampling: Sampling,
        *,
        json_schema: dict | None = None,
        grammar: str | None = None,
        structured: Structured = "auto",
        timeout: float | None = None,
    ) -> Completion:
        """One completion. `json_schema`: the reply is one JSON object of this schema; `grammar`: the reply follows
        this Lark grammar (llguidance's dialect); `structured` says whether to enforce them while decoding."""
        ...


class TransientLLMError(Exception):
    """A failure worth retrying: 429, 5xx, timeouts, dropped connections, garbled bodies."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentLLMError(Exception):
    """A failure that retrying cannot fix: 4xx other than 429, unknown model, bad key."""


class GrammarError(WdtkError, ValueError):
    """A JSON schema or grammar that the grammar engine cannot compile: every call with it would fail, so the run
    stops (LLMClient names the prompt in the message)."""


def response_format(json_schema: dict | None) -> dict | None:
    """The OpenAI `response_format` that asks for JSON matching `json_schema`."""
    if json_schema is None:
        return None
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": json_schema, "strict": False}}


def without_cycles(error: BaseException) -> BaseException:
    """`error` with any loop in its __cause__/__context__ chain cut (an error that is its own cause would make
    anything that walks the chain, Dask's error reporting included, loop forever)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None:
        seen.add(id(current))
        for attr in ("__cause__", "__context__"):
            linked = getattr(current, attr)
            if linked is not None and id(linked) in seen:
                setattr(current, attr, None)
        current = current.__cause__ or current.__context__
    return error


def checkpoint_id(path: str | Path) -> str:
    """A checkpoint directory as the same string on every machine: its folder name and a digest of its files
    (config and tokenizer whole; weights by size and 16 sampled blocks, so a 15 GB model costs milliseconds)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path)}:{size}".encode())
        with file.open("rb") as f:
            if size <= 1 << 20:
                digest.update(f.read())
                continue
            for i in range(16):
                f.seek(size * i // 16)
                digest.update(f.read(1 << 16))
    return f"{path.name}@{digest.hexdigest()[:12]}"
