"""LLMClient: what every stage calls. Adds to a bare LLM backend bounded concurrency, request and token rate limits,
retries with backoff, a per-call timeout, hedged requests, a persistent response cache, per-stage usage, and JSON
output checking.

    client = LLMClient(make_llm("gpt-4o-mini"), concurrency=64, rpm=500, cache=ResponseCache("cache.sqlite"))
    result = await client.chat_json(messages, QA_SCHEMA, Sampling(temperature=0.7), stage="crawlqa")
    result.value or result.error        # never raises for bad output; result.raw keeps the text
"""

from __future__ import annotations

import asyncio
import copy
import random
from dataclasses import dataclass

from ..prompting import prompt_name
from .base import LLM, Completion, GrammarError, PermanentLLMError, Sampling, Structured, TransientLLMError
from .cache import ResponseCache, cache_key
from .gate import Gate
from .jsonout import parse_json

__all__ = ["Gate", "JSONResult", "LLMClient", "ResponseCache", "Usage", "cache_key"]

DEFAULT_SAMPLING = Sampling()  # frozen, so one shared default is safe
Structure = tuple[dict | None, str | None]  # a call's JSON schema and grammar (either may be None)
STATS = ("calls", "cache_hits", "retries", "errors", "hedges", "prompt_tokens", "completion_tokens", "cost")


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

    def record(
        self, stage: str, completion: Completion, *, retries: int = 0, hedges: int = 0, error: bool = False
    ) -> None:
        """Count one client call of `stage`."""
        stats = self.stages.get(stage) or self.stages.setdefault(stage, dict.fromkeys(STATS, 0))
        stats["calls"] += 1
        stats["retries"] += retries
        stats["hedges"] += hedges
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
        """{stage: {calls, cache_hits, retries, errors, hedges, prompt_tokens, completion_tokens, cost}}."""
        return {stage: dict(stats) for stage, stats in self.stages.items()}

    def total(self) -> dict:
        """The counts of all stages together."""
        return {name: sum(stats[name] for stats in self.stages.values()) for name in STATS}


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
    """Calls an LLM with concurrency and rate limits, retries, a timeout, hedging, a cache, and usage accounting.

    `gate` shares the limits between clients of one backend (`view()` makes one per partition, with its own usage);
    `hedge` races a straggling request with a second copy (default: when the backend says it is a network one);
    `structured` (auto, on, off) says whether backends hold replies to their JSON schema or grammar while decoding.
    """

    backoff_base = 0.5  # seconds; attempt n waits uniform(0, min(backoff_cap, backoff_base * 2**n)) ("full jitter")
    backoff_cap = 30.0
    poll = 0.25  # seconds between looks at a pending request (the hedge delay moves as latencies come in)

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
        gate: Gate | None = None,
        hedge: bool | None = None,
        structured: Structured = "auto",
    ):
        self.llm, self.cache, self.timeout, self.max_retries = llm, cache, timeout, max_retries
        self.structured = structured  # hold replies to their schema or grammar: "auto", "on" or "off"
        self.usage = usage if usage is not None else Usage()
        self.gate = gate if gate is not None else Gate(concurrency, rpm, tpm)
        self.hedge = bool(getattr(llm, "hedge", False)) if hedge is None else hedge

    @property
    def concurrency(self) -> int:
        """Requests in flight at most (shared by every view of this client's gate)."""
        return self.gate.concurrency

    def view(self, usage: Usage | None = None) -> LLMClient:
        """A client sharing this one's backend, cache, limits and latencies, counting into its own `usage`."""
        other = copy.copy(self)
        other.usage = usage if usage is not None else Usage()
        return other

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
            completion, retries, hedges = await self._with_retries(messages, sampling, (schema, grammar), stage)
        except GrammarError as e:  # the backend compiled it for the first time: say which prompt it belongs to
            raise GrammarError(f"prompt {prompt_name(prompt_version) or stage!r}: {e}") from None
        if key is not None:
            self.cache.put(key, completion)  # on disk before anyone sees it: a kill now loses nothing paid for
        self.usage.record(stage, completion, retries=retries, hedges=hedges)
        return completion

    async def _with_retries(
        self, messages: list[dict], sampling: Sampling, structure: Structure, stage: str
    ) -> tuple[Completion, int, int]:
        """The completion, the retries and the hedges it took; raises after a permanent error or the last retry."""
        hedges = [0]
        for attempt in range(self.max_retries + 1):
            try:
                return await self._attempt(messages, sampling, structure, hedges), attempt, hedges[0]
            except TransientLLMError as e:
                if attempt == self.max_retries:
                    self.usage.record(stage, Completion(""), retries=attempt, hedges=hedges[0], error=True)
                    raise
                await asyncio.sleep(self._backoff(attempt, e.retry_after))
            except PermanentLLMError:
                self.usage.record(stage, Completion(""), retries=attempt, hedges=hedges[0], error=True)
                raise
        raise AssertionError("unreachable")

    async def _attempt(
        self, messages: list[dict], sampling: Sampling, structure: Structure, hedges: list[int]
    ) -> Completion:
        """One attempt: a request, raced by a second copy if it straggles (when hedging); the first answer wins."""
        if not self.hedge:
            return await self._request(messages, sampling, structure)
        loop = asyncio.get_running_loop()
        sent: list[float] = []  # when each copy got a slot and went out: a request queued for a slot is no straggler
        pending, errors = {asyncio.ensure_future(self._request(messages, sampling, structure, sent))}, []
        copies = 1
        try:
            while pending:
                # a straggler gets one copy at a time; a copy that fails fast leaves it alone again, and it gets
                # another after the same delay (as many as a call has retries): a hung request must not outlive
                # its copies' errors and then hold its item for the whole timeout
                alone = len(pending) == 1 and copies <= 1 + self.max_retries and len(sent) == copies
                delay = self.gate.hedge_delay(self.timeout) if alone else None
                left = self.poll if delay is None else min(self.poll, sent[-1] + delay - loop.time())
                if left <= 0:
                    self.gate.hedged += 1
                    hedges[0] += 1
                    pending.add(asyncio.ensure_future(self._request(messages, sampling, structure, sent)))
                    copies += 1
                    continue
                done, pending = await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is None:
                        return task.result()
                    errors.append(task.exception())
                    if getattr(errors[-1], "retry_after", None) is not None:
                        self.gate.pause(errors[-1].retry_after)
            raise errors[0]  # every copy failed: the first error decides whether to retry
        finally:
            for task in pending:
                task.cancel()

    async def _request(
        self, messages: list[dict], sampling: Sampling, structure: Structure, sent: list[float] | None = None
    ) -> Completion:
        """One request within the concurrency and rate limits and the timeout (its send time appended to `sent`)."""
        gate = self.gate
        async with gate.slots():
            estimate = prompt_chars(messages) / 4 if gate.tokens else 0.0
            if wait := gate.wait(estimate):
                await asyncio.sleep(wait)
            gate.sent += 1
            loop = asyncio.get_running_loop()
            start = loop.time()
            if sent is not None:
                sent.append(start)
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
            gate.latencies.append(loop.time() - start)
            if gate.tokens:
                gate.tokens.refund(estimate - completion.prompt_tokens - completion.completion_tokens)
            return completion

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full-jitter exponential backoff, never shorter than the server's Retry-After."""
        delay = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))
        if retry_after is not None:
            self.gate.pause(retry_after)
            delay = max(delay, retry_after)
        return delay
