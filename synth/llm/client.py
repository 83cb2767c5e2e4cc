"""LLMClient: what every stage calls. Adds to a bare LLM backend bounded concurrency, request and token rate limits,
retries with backoff, a per-call timeout, a persistent response cache, per-stage usage, and JSON output checking.

    client = LLMClient(make_llm("gpt-4o-mini"), concurrency=64, rpm=500, cache=ResponseCache("cache.sqlite"))
    result = await client.chat_json(messages, QA_SCHEMA, Sampling(temperature=0.7), stage="crawlqa")
    result.value or result.error        # never raises for bad output; result.raw keeps the text
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from ..prompting import prompt_name
from .base import LLM, Completion, GrammarError, PermanentLLMError, Sampling, Structured, TransientLLMError
from .cache import ResponseCache, cache_key
from .jsonout import parse_json

__all__ = ["JSONResult", "LLMClient", "ResponseCache", "Usage", "cache_key"]

DEFAULT_SAMPLING = Sampling()  # frozen, so one shared default is safe
STATS = ("calls", "cache_hits", "retries", "errors", "prompt_tokens", "completion_tokens", "cost")


@dataclass
class JSONResult:
    """A JSON answer: the parsed object when it is valid, else why not; the raw text always."""

    value: dict | None  # parsed and schema-valid, else None
    raw: str  # the model's raw text, always kept (goes into rejected records)
    error: str | None  # why value is None ("not JSON: ...", "schema: field 'x' ...")
    completion: Completion


class Usage:
    """Calls, cache hits, retries, errors, tokens and USD per stage; picklable and mergeable across processes.

    Tokens and cost count what was spent: cache hits add to `calls` and `cache_hits` only.
    """

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}

    def record(self, stage: str, completion: Completion, *, retries: int = 0, error: bool = False) -> None:
        """Count one client call of `stage`."""
        stats = self.stages.get(stage) or self.stages.setdefault(stage, dict.fromkeys(STATS, 0))
        stats["calls"] += 1
        stats["retries"] += retries
        if error:
            stats["errors"] += 1
        elif completion.cached:
            stats["cache_hits"] += 1
        else:
            stats["prompt_tokens"] += completion.prompt_tokens
            stats["completion_tokens"] += completion.completion_tokens
            stats["cost"] += completion.cost

    def merge(self, other: Usage) -> None:
        """Add `other`'s counts to these (e.g. from a worker process)."""
        for stage, theirs in other.stages.items():
            ours = self.stages.setdefault(stage, dict.fromkeys(STATS, 0))
            for name in STATS:
                ours[name] += theirs.get(name, 0)

    def summary(self) -> dict:
        """{stage: {calls, cache_hits, retries, errors, prompt_tokens, completion_tokens, cost}}."""
        return {stage: dict(stats) for stage, stats in self.stages.items()}

    def total(self) -> dict:
        """The counts of all stages together."""
        return {name: sum(stats[name] for stats in self.stages.values()) for name in STATS}


class Pacer:
    """Spaces reservations so that `per_minute` units pass a minute, evenly (GCRA, no burst): O(1), no loops."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.next_free = 0.0  # when the units reserved so far have been paid for

    def reserve(self, units: float) -> float:
        """Reserve `units`; returns how long to wait before using them."""
        now = time.monotonic()
        start = max(self.next_free, now)
        self.next_free = start + units / self.rate
        return start - now

    def refund(self, units: float) -> None:
        """Correct an estimate after the fact (negative units charge more)."""
        self.next_free -= units / self.rate


def prompt_chars(messages: list[dict]) -> int:
    """Characters of text in `messages` (text parts of multimodal content included)."""
    total = 0
    for message in messages:
        content = message.get("content") or ""
        if isinstance(content, str):
            total += len(content)
        else:
            total += sum(len(part.get("text", "")) for part in content if isinstance(part, dict))
    return total


class LLMClient:
    """Calls an LLM with concurrency and rate limits, retries, a timeout, a cache, and usage accounting."""

    backoff_base = 0.5  # seconds; attempt n waits uniform(0, min(backoff_cap, backoff_base * 2**n)) ("full jitter")
    backoff_cap = 30.0

    def __init__(
        self,
        llm: LLM,
        *,
        concurrency: int = 64,
        rpm: float | None = None,
        tpm: float | None = None,
        max_retries: int = 6,
        timeout: float = 120.0,
        cache: ResponseCache | None = None,
        usage: Usage | None = None,
        structured: Structured = "auto",
    ):
        self.llm, self.cache, self.timeout, self.max_retries = llm, cache, timeout, max_retries
        self.structured = structured  # hold replies to their schema or grammar: "auto", "on" or "off"
        self.usage = usage if usage is not None else Usage()
        self.concurrency = concurrency
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._requests = Pacer(rpm) if rpm else None
        self._tokens = Pacer(tpm) if tpm else None
        self._paused_until = 0.0  # a 429's Retry-After holds back every request, not just the one that got it

    async def chat(
        self,
        messages: list[dict],
        sampling: Sampling = DEFAULT_SAMPLING,
        *,
        prompt_version: str = "",
        stage: str = "default",
        grammar: str | None = None,
    ) -> Completion:
        """One completion, from the cache when it holds one; `grammar` (Lark) is enforced where structured allows."""
        return await self._call(messages, sampling, prompt_version, stage, None, grammar)

    async def chat_json(
        self,
        messages: list[dict],
        schema: dict,
        sampling: Sampling = DEFAULT_SAMPLING,
        *,
        prompt_version: str = "",
        stage: str = "default",
    ) -> JSONResult:
        """A JSON object matching `schema`; bad output gives value None, an error and the raw text, never raises."""
        completion = await self._call(messages, sampling, prompt_version, stage, schema, None)
        value, error = parse_json(completion.text, schema)
        return JSONResult(value=value, raw=completion.text, error=error, completion=completion)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_slots": None, "_loop": None}  # a semaphore belongs to one loop in one process

    async def aclose(self) -> None:
        """Close the backend's connections, when it holds any."""
        close = getattr(self.llm, "aclose", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def _call(
        self,
        messages: list[dict],
        sampling: Sampling,
        prompt_version: str,
        stage: str,
        schema: dict | None,
        grammar: str | None,
    ) -> Completion:
        key = None
        if self.cache is not None:
            constrained = self.structured != "off"
            key = cache_key(self.llm.name, messages, sampling, prompt_version, schema, grammar, constrained)
            if (hit := self.cache.get(key)) is not None:
                self.usage.record(stage, hit)
                return hit
        try:
            completion, retries = await self._with_retries(messages, sampling, (schema, grammar), stage)
        except GrammarError as e:  # the backend compiled it for the first time: say which prompt it belongs to
            raise GrammarError(f"prompt {prompt_name(prompt_version) or stage!r}: {e}") from None
        if key is not None:
            self.cache.put(key, completion)
        self.usage.record(stage, completion, retries=retries)
        return completion

    async def _with_retries(
        self, messages: list[dict], sampling: Sampling, structure: tuple[dict | None, str | None], stage: str
    ) -> tuple[Completion, int]:
        """The completion and how many retries it took; raises after a permanent error or the last retry."""
        for attempt in range(self.max_retries + 1):
            try:
                return await self._attempt(messages, sampling, structure), attempt
            except TransientLLMError as e:
                if attempt == self.max_retries:
                    self.usage.record(stage, Completion(""), retries=attempt, error=True)
                    raise
                await asyncio.sleep(self._backoff(attempt, e.retry_after))
            except PermanentLLMError:
                self.usage.record(stage, Completion(""), retries=attempt, error=True)
                raise
        raise AssertionError("unreachable")

    async def _attempt(
        self, messages: list[dict], sampling: Sampling, structure: tuple[dict | None, str | None]
    ) -> Completion:
        """One request within the concurrency and rate limits and the timeout."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a semaphore is bound to one loop, and each asyncio.run() makes a new loop
            self._loop, self._slots = loop, asyncio.Semaphore(self.concurrency)
        async with self._slots:
            estimate = prompt_chars(messages) / 4 if self._tokens else 0.0
            if wait := self._wait(estimate):
                await asyncio.sleep(wait)
            try:
                async with asyncio.timeout(self.timeout):
                    completion = await self.llm.complete(
                        messages,
                        sampling,
                        json_schema=structure[0],
                        grammar=structure[1],
                        structured=self.structured,
                        timeout=self.timeout,
                    )
            except TimeoutError as e:
                raise TransientLLMError(f"no answer within {self.timeout}s") from e
            if self._tokens:
                self._tokens.refund(estimate - completion.prompt_tokens - completion.completion_tokens)
            return completion

    def _wait(self, estimate: float) -> float:
        """Seconds until this request may go: the longest of the pause and the two rate limits."""
        wait = self._paused_until - time.monotonic()
        if self._requests:
            wait = max(wait, self._requests.reserve(1))
        if self._tokens:
            wait = max(wait, self._tokens.reserve(estimate))
        return max(wait, 0.0)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full-jitter exponential backoff, never shorter than the server's Retry-After."""
        delay = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))
        if retry_after is not None:
            self._paused_until = max(self._paused_until, time.monotonic() + retry_after)
            delay = max(delay, retry_after)
        return delay
