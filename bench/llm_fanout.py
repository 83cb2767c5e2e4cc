"""LLM fan-out: LLMClient (OpenAI backend) against plain `litellm.acompletion` + `asyncio.gather`, same server.

    .venv/bin/python bench/llm_fanout.py [--concurrency 64 256] [--per-slot 8] [--rounds 3] [--cache] [--transport sdk]

Starts tests/servers/openai_server.py in another process (so its CPU is not counted) answering every chat request
after a fixed --latency. For each concurrency C, sends C x --per-slot requests through LLMClient(concurrency=C) and
through litellm.acompletion under an asyncio.Semaphore(C), each side in a fresh process (one side's imports and
heap do not weigh on the other) after a warm-up round. Prints requests/second as a fraction of the ideal
C / latency, the ratio to litellm, and each side's CPU seconds per call (time.process_time of its process).
Targets: >= 85% of ideal at C=64, >= 3x litellm, <= 1 ms client CPU per call. --cache gives LLMClient a
ResponseCache (every request distinct, so each call is a miss plus a put). On a shared machine the rates move with
the load: use --rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

REPO = Path(__file__).resolve().parents[1]
SERVER = REPO / "tests" / "servers" / "openai_server.py"


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    """The fake server in its own process, and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--latency", str(latency)], stdout=subprocess.PIPE, text=True
    )
    return proc, proc.stdout.readline().strip()


def messages(i: int) -> list[dict]:
    """A distinct short prompt per request, so no two requests share a cache key."""
    return [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": f"Question {i}: why?"}]


async def timed(make_calls, n: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to run `n` calls from `make_calls(range)` at once."""
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*make_calls(range(n)))
    return time.perf_counter() - wall, time.process_time() - cpu


async def run_client(
    base_url: str, concurrency: int, n: int, cache_dir: str | None, transport: str
) -> tuple[float, float]:
    """LLMClient with the OpenAI backend, as stage code uses it."""
    from wdtk.synth.llm.base import Sampling
    from wdtk.synth.llm.client import LLMClient, ResponseCache
    from wdtk.synth.llm.factory import make_llm

    cache = ResponseCache(Path(tempfile.mkdtemp(dir=cache_dir)) / "cache.sqlite") if cache_dir else None
    llm = make_llm("bench", api_base=base_url, transport=transport)
    async with LLMClient(llm, concurrency=concurrency, cache=cache) as client:
        sampling = Sampling(max_tokens=64)
        await timed(lambda ids: [client.chat(messages(-1 - i), sampling) for i in ids], concurrency)  # warm-up
        return await timed(lambda ids: [client.chat(messages(i), sampling) for i in ids], n)


async def run_litellm(base_url: str, concurrency: int, n: int) -> tuple[float, float]:
    """The baseline: litellm.acompletion under a semaphore, gathered."""
    import litellm

    slots = asyncio.Semaphore(concurrency)

    async def one(i: int):
        async with slots:
            return await litellm.acompletion(
                model="openai/bench",
                api_base=base_url,
                api_key="EMPTY",
                messages=messages(i),
                max_tokens=64,
                temperature=0.0,
            )

    await timed(lambda ids: [one(-1 - i) for i in ids], concurrency)
    return await timed(lambda ids: [one(i) for i in ids], n)


def measure(kind: str, base_url: str, concurrency: int, n: int, cache_dir: str | None, transport: str = "aiohttp"):
    """(wall, CPU) of one side, run in a fresh process."""
    args = [sys.executable, __file__, "--worker", kind, "--url", base_url, "--concurrency", str(concurrency)]
    args += ["--calls", str(n), "--transport", transport] + (["--cache-dir", cache_dir] if cache_dir else [])
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return tuple(json.loads(out.strip().splitlines()[-1]))


def worker(args: argparse.Namespace) -> None:
    """Run one side once and print [wall, cpu] as JSON."""
    c = args.concurrency[0]
    if args.worker == "client":
        result = asyncio.run(run_client(args.url, c, args.calls, args.cache_dir, args.transport))
    else:
        result = asyncio.run(run_litellm(args.url, c, args.calls))
    print(json.dumps(result))


def main() -> None:
    """Run both at each concurrency and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--per-slot", type=int, default=8, help="requests per concurrency slot")
    parser.add_argument("--latency", type=float, default=0.1, help="server seconds per reply")
    parser.add_argument("--cache", action="store_true", help="give LLMClient a ResponseCache")
    parser.add_argument("--transport", default="aiohttp", choices=["aiohttp", "sdk"], help="OpenAILLM transport")
    parser.add_argument("--rounds", type=int, default=1, help="repeat each measurement; the median round is shown")
    parser.add_argument("--worker", choices=["client", "litellm"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    proc, base_url = start_server(args.latency)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for c in args.concurrency:
                n = c * args.per_slot
                ours = median_round(
                    [
                        measure("client", base_url, c, n, tmp if args.cache else None, args.transport)
                        for _ in range(args.rounds)
                    ]
                )
                theirs = median_round([measure("litellm", base_url, c, n, None) for _ in range(args.rounds)])
                rows.append((c, n, ours, theirs, c / args.latency))
    finally:
        proc.kill()
    print_table(rows)


def median_round(rounds: list[tuple[float, float]]) -> tuple[float, float]:
    """The round with the median wall time."""
    return sorted(rounds)[len(rounds) // 2]


def print_table(rows: list) -> None:
    """One line per concurrency: rates, fraction of ideal, ratio, CPU per call."""
    print(
        f"{'conc':>5} {'calls':>6} | {'client req/s':>12} {'of ideal':>8} {'cpu ms/call':>11} | "
        f"{'litellm req/s':>13} {'of ideal':>8} {'cpu ms/call':>11} | {'ratio':>6}"
    )
    for c, n, (wall, cpu), (lwall, lcpu), ideal in rows:
        rate, lrate = n / wall, n / lwall
        print(
            f"{c:>5} {n:>6} | {rate:>12.0f} {rate / ideal:>8.0%} {cpu / n * 1e3:>11.3f} | "
            f"{lrate:>13.0f} {lrate / ideal:>8.0%} {lcpu / n * 1e3:>11.3f} | {rate / lrate:>5.1f}x"
        )


if __name__ == "__main__":
    main()
