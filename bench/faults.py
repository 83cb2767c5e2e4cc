"""Tail latency under faults: one synth + sample job, fault-free and then with a share of LLM calls failing.

    .venv/bin/python bench/faults.py [--rate 0.2] [--latency 1.0] [--groups 48] [--seeds 16] [--rollouts 2] [--seed 1]

A local OpenAI-compatible server (tests/servers/openai_server.py, in this process) answers from the generated
site's ground truth (CRAWLQA, E2HQA, the support check) and plays a ReAct agent (sampling, the visit tool's
extraction), each reply after --latency seconds. The job: CRAWLQA on --groups page groups, one E2HQA round and
--rollouts trajectories for each of --seeds questions, on a Dask LocalCluster (one worker per core) with every
default a user gets: --timeout 120, --max-retries 6, --concurrency 32, --partition-size 16. The faulty run serves
--rate of the calls a fault instead: 429 with Retry-After: 1, 500, 503, a hang (no answer, ever), a dropped
connection, a truncated body, a non-JSON body, or a reply 3 s late. Workers are restarted between runs, so the
faulty run starts without the latencies the clean one measured.

Prints both wall times and their ratio (target <= 3x), the faults served, the retries and hedged requests, every
stage's accounting (inputs = kept + rejected + failed + duplicates, failed must be 0), and whether both runs wrote
the same records. Baseline in the issue: 36 s -> 1,496 s at 20% faults (41x), a hang holding its partition for the
whole timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fake server and the scripted models


def prepare(root: Path, groups: int, seeds: int):
    """The generated site served on 127.0.0.1, its page records (with links), BM25 index, seeds and truth."""
    from servers.search_server import page_record

    from wdtk.crawler.sitegen import build_site, load_truth, start_server
    from wdtk.crawler.sitegen.seeds import simple_seeds
    from wdtk.schemas import write_records
    from wdtk.synth.search.bm25 import build_index

    site = root / "site"
    build_site(site, 300, seed=7)
    server, base = start_server(site)
    truth = load_truth(site)
    records = []
    for page in truth["pages"]:
        if page["kind"] in ("article", "category"):
            links = [base + h.split("#")[0] for h in page["links"] if h.startswith("/wiki/")]
            html = (site / page["path"].lstrip("/")).read_text()
            records.append({**page_record(base + page["path"], html, base), "links": links})
    pages = root / "pages.jsonl"
    write_records(records, pages, kind="page")
    build_index(pages, root / "index")
    rows = simple_seeds(site, seeds)
    (root / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return server, base, truth, pages, rows


class Model:
    """The synthesis prompts answered from the truth, the agent's and the visit tool's by the scripted agent."""

    def __init__(self, truth: dict, base: str, rows: list[dict]) -> None:
        from servers.agent_model import AgentModel
        from servers.truth_model import TruthModel

        self.truth, self.agent = TruthModel(truth, base), AgentModel({r["problem"]: r["answer"] for r in rows})

    def __call__(self, body: dict):
        first = body["messages"][0]["content"]
        if ("# Tools" in first and "<tools>" in first) or first.startswith("You read one web page"):
            return self.agent(body)
        return self.truth(body)


def job(root: Path, pages: Path, base_url: str, scheduler: str, groups: int, seeds: int, rollouts: int) -> dict:
    """The three stages with default options; their summaries."""
    from wdtk.synth import crawlqa, e2hqa, sample
    from wdtk.synth.agent.loop import AgentConfig
    from wdtk.synth.parallel import Backends, RunOptions

    plain = Backends(model="openai:bench", api_base=base_url, cache_path=str(root / "llm_cache.sqlite"))
    searching = replace(plain, search=f"bm25:{root.parent / 'index'}")
    opts = RunOptions(scheduler=scheduler)
    seeds_file = root.parent / "seeds.jsonl"
    return {
        "crawlqa": crawlqa.run(pages, root / "crawlqa", crawlqa.CrawlQAConfig(), plain, opts, groups),
        "e2hqa": e2hqa.run(seeds_file, root / "e2hqa", e2hqa.E2HQAConfig(rewrites=1), searching, opts, seeds),
        "sample": sample.run(
            [seeds_file],
            root / "sample",
            sample.SampleConfig(rollouts, AgentConfig(max_calls=6)),
            searching,
            opts,
            seeds,
        ),
    }


def ids(root: Path) -> dict[str, list[str]]:
    from wdtk.schemas import read_records

    return {s: sorted(r["id"] for r in read_records(root / s / "records")) for s in ("crawlqa", "e2hqa", "sample")}


def accounting(summaries: dict) -> str:
    """One line per stage: inputs = kept + rejected + failed + duplicates."""
    lines = []
    for name, s in summaries.items():
        i = s["inputs"]
        ok = i["total"] == i["kept"] + i["rejected"] + i["failed"] + i["duplicates"] and i["failed"] == 0
        lines.append(
            f"  {name:<8} {i['total']} inputs = {i['kept']} kept + {i['rejected']} rejected + {i['failed']} failed "
            f"+ {i['duplicates']} duplicates ({'accounted' if ok else 'NOT ACCOUNTED'}); {s['kept']} records"
        )
    return "\n".join(lines)


def usage(summaries: dict) -> Counter:
    total = Counter()
    for s in summaries.values():
        for numbers in s["usage"].values():
            total.update(numbers)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.2, help="share of calls that get a fault")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds before every reply")
    parser.add_argument("--groups", type=int, default=48)
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--rollouts", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1, help="which calls get which fault")
    args = parser.parse_args()

    from dask.distributed import Client
    from servers.openai_server import FakeOpenAIServer, FaultyResponder

    from wdtk.synth.parallel import RunOptions, dask_client

    with tempfile.TemporaryDirectory(prefix="wdtk-faults-") as tmp:
        root = Path(tmp)
        site_server, base, truth, pages, rows = prepare(root, args.groups, args.seeds)
        model = Model(truth, base, rows)
        results = {}
        defaults = RunOptions()
        with FakeOpenAIServer(model, latency=args.latency) as server:
            for mode in ("fault-free", "faulty"):
                # a fresh cluster per run (its start is not timed): nothing learnt in one run helps the other
                with dask_client(defaults.workers, None, defaults.partitions_per_worker) as client:
                    assert isinstance(client, Client)
                    faults = FaultyResponder(model, args.rate, seed=args.seed) if mode == "faulty" else None
                    server.responder = faults or model
                    server.reset()
                    started = time.monotonic()
                    summaries = job(root / mode, pages, server.base_url, client.scheduler.address, args.groups,
                                    args.seeds, args.rollouts)  # fmt: skip
                    seconds = time.monotonic() - started
                results[mode] = (seconds, summaries, server.request_count, faults)
        site_server.shutdown()
        (clean_s, clean, clean_requests, _), (faulty_s, faulty, faulty_requests, faults) = results.values()
        same = ids(root / "fault-free") == ids(root / "faulty")
    u = usage(faulty)
    stages = lambda s: ", ".join(f"{k} {v['seconds']:.1f} s" for k, v in s.items())  # noqa: E731
    print(f"fault-free: {clean_s:.1f} s ({stages(clean)}), {clean_requests} requests")
    served = ", ".join(f"{k} {v}" for k, v in faults.counts.most_common())
    print(f"faulty ({args.rate:.0%} of calls): {faulty_s:.1f} s ({stages(faulty)}), {faulty_requests} requests")
    print(f"  faults served: {served}")
    print(f"  retries {u['retries']:.0f}, hedged requests {u['hedges']:.0f}, errors {u['errors']:.0f}")
    print(f"ratio faulty / fault-free: {faulty_s / clean_s:.2f}x (target <= 3x at the default --timeout 120)")
    print("accounting of the faulty run:\n" + accounting(faulty))
    print(f"same records in both runs: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
