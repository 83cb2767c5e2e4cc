"""What every LLMClient view of one backend shares in a process: the concurrency slots, the request and token rate
limits, the pause a 429's Retry-After sets, and the recent latencies that decide when a straggler is hedged.

Hedged requests ("The Tail at Scale", Dean and Barroso 2013): a request still unanswered after a few times the
recent 95th-percentile latency gets a second copy, and the first answer wins. A hung connection then costs seconds
instead of the full timeout, while a legitimately slow call keeps running; a budget keeps the copies to about a tenth
of all requests, so an endpoint that is slow for everyone is not loaded twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

HEDGE_FACTOR = 2.0  # a request is a straggler after this many times the recent p95 latency
HEDGE_FLOOR = 1.0  # seconds: never hedge sooner
HEDGE_SAMPLES = 8  # latencies needed before the p95 means anything
HEDGE_SHARE, HEDGE_BURST = 0.1, 3  # at most a tenth of requests (plus a few) get a second copy
NO_SAMPLES_WAIT = 30.0  # before enough latencies are known, hedge after this long (or half the timeout)


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


class Gate:
    """Concurrency slots (one semaphore per event loop), rate pacers, the 429 pause, and the hedge statistics."""

    def __init__(self, concurrency: int = 64, rpm: float | None = None, tpm: float | None = None) -> None:
        self.concurrency = concurrency
        self.requests = Pacer(rpm) if rpm else None
        self.tokens = Pacer(tpm) if tpm else None
        self.paused_until = 0.0  # a 429's Retry-After holds back every request, not just the one that got it
        self.latencies: deque[float] = deque(maxlen=256)
        self.sent = self.hedged = 0
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_slots": None, "_loop": None}  # a semaphore belongs to one loop in one process

    def slots(self) -> asyncio.Semaphore:
        """The running loop's semaphore (each asyncio.run() makes a new loop, and a semaphore is bound to one)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._slots = loop, asyncio.Semaphore(self.concurrency)
        return self._slots

    def wait(self, estimate: float) -> float:
        """Seconds until a request of `estimate` tokens may go: the longest of the pause and the two rate limits."""
        wait = self.paused_until - time.monotonic()
        if self.requests:
            wait = max(wait, self.requests.reserve(1))
        if self.tokens:
            wait = max(wait, self.tokens.reserve(estimate))
        return max(wait, 0.0)

    def pause(self, seconds: float) -> None:
        """Hold back every request for `seconds` (a 429's Retry-After)."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def hedge_delay(self, timeout: float) -> float | None:
        """Seconds after which an unanswered request gets a second copy, or None when the budget is spent."""
        if self.hedged >= HEDGE_SHARE * self.sent + HEDGE_BURST:
            return None
        if len(self.latencies) < HEDGE_SAMPLES:
            return min(NO_SAMPLES_WAIT, timeout / 2)
        ordered = sorted(self.latencies)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return min(max(HEDGE_FLOOR, HEDGE_FACTOR * p95), timeout / 2)
