"""Constrained against free decoding on the embedded model: the same prompts, --structured on and off.

    .venv/bin/python bench/structured.py [--groups 3] [--seeds 3] [--questions 3] [--rollouts 2] [--dir DIR]

Builds the generated site (or reuses DIR's), crawls and indexes it, then runs with the embedded SmolLM2-135M, once
per mode and with no response cache, the same work: CRAWLQA on --groups page groups (with the LLM support check),
one E2HQA round on --seeds of the site's seed questions, the judge on each seed's gold answer and on a wrong one,
and --rollouts agent rollouts on --questions seed questions. It prints, side by side: the share of replies that
parse and validate (JSON by schema, agent turns by parse_turn), format errors per rollout, records kept per stage,
seconds per call and per generated token, and the grammar engine's own seconds (masks, compiles, matchers) as a
share of the constrained calls' time: the constraint's overhead, whose target is <= 15% of a call's time.
Stages run one after another with up to 8 calls batched, as the demo runs them. Sampling (CRAWLQA, E2HQA, the
agent) is unseeded as in the stages, so counts move between runs: compare modes within a run, and rerun.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("off", "on")


@dataclass
class Tally:
    """One mode's counts."""

    calls: Counter = field(default_factory=Counter)  # by stage
    valid: Counter = field(default_factory=Counter)  # replies that parse and validate, by stage
    kept: Counter = field(default_factory=Counter)  # records kept, by stage
    seconds: float = 0.0  # batch wall time of all calls
    tokens: int = 0  # completion tokens
    engine: float = 0.0  # grammar engine time inside those calls
    format_errors: int = 0
    rollouts: int = 0
    judge_right: int = 0


class Timed:
    """The embedded backend, each batch's wall time added to a Tally (`batch_clock` times the batches)."""

    def __init__(self, llm, tally: Tally):
        self.llm, self.tally, self.name = llm, tally, llm.name

    async def complete(self, messages, sampling, **kwargs):
        completion = await self.llm.complete(messages, sampling, **kwargs)
        self.tally.tokens += completion.completion_tokens
        return completion


def batch_clock(llm, tallies: dict[str, Tally], current: list[str]) -> None:
    """Charge each batch's wall time to the running mode."""
    run = llm._batcher.run

    def timed_run(items):
        start = time.perf_counter()
        try:
            return run(items)
        finally:
            tallies[current[0]].seconds += time.perf_counter() - start

    llm._batcher.run = timed_run


def engine_clock(tallies: dict[str, Tally], current: list[str]) -> None:
    """Charge time spent in the grammar engine (mask per token, compile and matcher per call) to the running mode."""
    from wdtk.synth.llm import embedded, grammar

    def timing(owner, name):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                tallies[current[0]].engine += time.perf_counter() - start

        setattr(owner, name, timed)

    timing(grammar.GrammarMask, "__call__")
    timing(grammar.Engine, "matcher")
    timing(embedded.EmbeddedLLM, "_grammar")


def prepare(run_dir: Path, seeds: int) -> tuple[Path, list[dict]]:
    """The site's crawled pages and index in run_dir (made once), and its seed questions."""
    from wdtk.crawler.commands import run_crawl
    from wdtk.crawler.sitegen import build_site, start_server
    from wdtk.crawler.sitegen.seeds import simple_seeds
    from wdtk.synth.search.bm25 import build_index

    if not (run_dir / "index").exists():
        build_site(run_dir / "site", pages=300, seed=0)
        server, base_url = start_server(run_dir / "site")
        try:
            run_crawl([base_url + "/"], run_dir / "crawl", max_pages=200, max_depth=4, throttle=False, restart=True)
        finally:
            server.shutdown()
        build_index(run_dir / "crawl" / "pages", run_dir / "index")
    return run_dir / "crawl" / "pages", simple_seeds(run_dir / "site", seeds)


async def run_mode(mode: str, tally: Tally, llm, work: dict, args) -> None:
    """Every stage's work with the client in `mode`."""
    from wdtk.filters.judge import Judge
    from wdtk.synth import crawlqa, e2hqa, sample
    from wdtk.synth.agent.loop import AgentConfig
    from wdtk.synth.e2hqa import seed_record
    from wdtk.synth.llm.client import LLMClient
    from wdtk.synth.parallel import Context

    client = LLMClient(Timed(llm, tally), concurrency=8, timeout=3600, structured=mode)
    ctx = Context(client, work["index"], crawlqa.CrawlQAConfig(max_sublinks=2, max_page_chars=1200, max_tokens=384))
    for kept, rejects in await asyncio.gather(*(crawlqa.process_group(g, ctx) for g in work["groups"])):
        tally.kept["crawlqa"] += len(kept)
        tally.calls["crawlqa"] += 1
        tally.valid["crawlqa"] += not any(r["reason"] == "unparseable" for r in rejects)
    ctx.config = e2hqa.E2HQAConfig(rewrites=1, max_tokens=160)
    seeds = [seed_record(s) for s in work["seeds"]]
    for kept, rejects in await asyncio.gather(*(e2hqa.process_seed(s, ctx) for s in seeds)):
        tally.kept["e2hqa"] += len(kept)
        tally.calls["e2hqa"] += 1
        tally.valid["e2hqa"] += not any(r["reason"].endswith("unparseable") for r in rejects)
    judge = Judge(client)
    pairs = [(s["question"], s["answer"], p, p == s["answer"]) for s in seeds for p in (s["answer"], "Atlantis")]
    verdicts = await asyncio.gather(*(judge.judge(f"{i:016x}", q, g, p) for i, (q, g, p, _) in enumerate(pairs)))
    tally.calls["judge"] += len(pairs)
    tally.valid["judge"] += sum(v["method"] == "llm" for v in verdicts)
    tally.judge_right += sum(v["correct"] == right for v, (*_, right) in zip(verdicts, pairs, strict=True))
    # the demo's budgets for the embedded model (cli.py, _demo_sample)
    agent = AgentConfig(
        max_calls=3, max_new_tokens=160, max_context_tokens=3072, search_k=3, max_observation_chars=2000
    )
    ctx.config = sample.SampleConfig(args.rollouts, agent, visit_max_tokens=192, visit_max_chars=2000).per_rollout()
    items = sample.rollout_items(seeds[: args.questions], args.rollouts)
    for records, _ in await asyncio.gather(*(sample.sample_rollout(item, ctx) for item in items)):
        for t in records:
            turns = [m for m in t["messages"][2:] if m["role"] == "assistant"]
            tally.rollouts += 1
            tally.format_errors += t["termination"] == "format_error"
            tally.calls["agent"] += len(turns)
            tally.valid["agent"] += len(turns) - (t["termination"] == "format_error")
            tally.kept["agent"] += t["termination"] == "answer"


def report(tallies: dict[str, Tally]) -> None:
    """The side-by-side table."""
    off, on = tallies["off"], tallies["on"]
    print(f"\n{'':34}{'--structured off':>18}{'--structured on':>18}")
    for stage in ("crawlqa", "e2hqa", "judge", "agent"):
        row = [f"{t.valid[stage]}/{t.calls[stage]} ({t.valid[stage] / max(1, t.calls[stage]):.0%})" for t in (off, on)]
        print(f"{'parse+valid ' + stage:34}{row[0]:>18}{row[1]:>18}")
    for stage in ("crawlqa", "e2hqa", "agent"):
        label = "records kept " + ("(rollouts answered)" if stage == "agent" else stage)
        print(f"{label:34}{off.kept[stage]:>18}{on.kept[stage]:>18}")
    errors = [f"{t.format_errors / max(1, t.rollouts):.2f}" for t in (off, on)]
    print(f"{'format errors per rollout':34}{errors[0]:>18}{errors[1]:>18}")
    judged = [f"{t.judge_right}/{t.calls['judge']}" for t in (off, on)]
    print(f"{'judge verdicts right':34}{judged[0]:>18}{judged[1]:>18}")
    calls = [sum(t.calls.values()) for t in (off, on)]
    per_call = [f"{t.seconds / max(1, n):.2f}" for t, n in zip((off, on), calls, strict=True)]
    print(f"{'seconds per call':34}{per_call[0]:>18}{per_call[1]:>18}")
    per_token = [f"{1000 * t.seconds / max(1, t.tokens):.1f}" for t in (off, on)]
    print(f"{'ms per generated token':34}{per_token[0]:>18}{per_token[1]:>18}")
    share = on.engine / max(on.seconds, 1e-9)
    ratio = (on.seconds / max(1, on.tokens)) / (off.seconds / max(1, off.tokens))
    print(f"\ngrammar engine: {on.engine:.1f}s of {on.seconds:.1f}s in constrained calls = {share:.1%} overhead")
    print(f"(target <= 15%); ms per token, on / off = {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--rollouts", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path("runs/bench-structured"))
    args = parser.parse_args()

    from itertools import islice

    from wdtk.schemas import read_records
    from wdtk.synth.crawlqa import CrawlQAConfig, page_groups
    from wdtk.synth.llm.embedded import EmbeddedLLM
    from wdtk.synth.search.bm25 import BM25Index

    pages, seeds = prepare(args.dir, args.seeds)
    cfg = CrawlQAConfig(max_sublinks=2, max_page_chars=1200, max_tokens=384)
    groups = list(islice(page_groups(read_records(pages, kind="page"), cfg), args.groups))
    work = {"groups": groups, "seeds": seeds, "index": BM25Index.load(args.dir / "index")}
    llm = EmbeddedLLM()
    llm.load()
    tallies, current = {m: Tally() for m in MODES}, [MODES[0]]
    engine_clock(tallies, current)
    batch_clock(llm, tallies, current)
    for mode in MODES:
        current[0] = mode
        started = time.perf_counter()
        asyncio.run(run_mode(mode, tallies[mode], llm, work, args))
        print(f"--structured {mode}: {time.perf_counter() - started:.0f}s", json.dumps(dict(tallies[mode].calls)))
    report(tallies)


if __name__ == "__main__":
    main()
