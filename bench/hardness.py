"""Hard questions on the generated world: CRAWLQA, E2HQA at --rewrites 1..3 and graphqa at 3..6 hops, each through
the filter, answer uniqueness by search and the difficulty gate, judged by `wdtk audit`.

    .venv/bin/python bench/hardness.py [--pages 300] [--rate 0.3] [--seed 0] [--groups 150] [--walks 60]
                                       [--solve-rate 0.1] [--attempts 3] [--out DIR]
    .venv/bin/python bench/hardness.py --embedded [--groups 2] [--walks 2]    # the offline SmolLM2, a small run

The model is bench/quality.py's planted-error generator (tests/servers/planted_model.py: each reply carries a planted
mistake with probability --rate), whose solver answers a question of one hop right and a harder one right with
probability --solve-rate per try. Each setting is its own run: synthesis, `wdtk filter` (quality, uniqueness from
claims, dedup), then the gates (a second answer searched for, then the solver closed-book --attempts times; any
success drops the question as too easy), then the audit. Per setting it prints its inputs (page groups, seeds,
walks), what was kept before the difficulty gate (yield: kept per input) with the audit's shares correct and unique,
mean hops and LLM tokens per kept question, then what the gate keeps; then the search check's precision and recall
against the audit's `unique` (--no-structural: without the claims-only check before it, so it sees every question).
Targets with the planted generator: graphqa kept questions unique and correct >= 0.95, mean hops >= 3.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the scripted servers live with the tests


def settings(args) -> list[tuple[str, str, int]]:
    """(label, method, rewrites or hops) of every run."""
    out = [("CRAWLQA", "crawlqa", 0)]
    out += [(f"E2HQA --rewrites {r}", "e2hqa", r) for r in range(1, args.max_rewrites + 1)]
    return out + [(f"graphqa --hops {h}", "graphqa", h) for h in range(3, args.max_hops + 1)]


def synthesise(run: Path, method: str, n: int, backends, args, seeds: Path | None) -> None:
    """One method into run/synth/<method>."""
    from wdtk.synth import crawlqa, e2hqa, graphqa
    from wdtk.synth.linkgraph import WalkConfig
    from wdtk.synth.parallel import RunOptions

    opts, out, small = RunOptions(workers=0, partition_size=16), run / "synth" / method, args.embedded
    pages = run / "crawl" / "pages"
    if method == "crawlqa":
        cfg = crawlqa.CrawlQAConfig(max_sublinks=2, max_page_chars=1200, max_tokens=384) if small else None
        crawlqa.run(pages, out, cfg or crawlqa.CrawlQAConfig(), backends, opts, args.groups)
    elif method == "e2hqa":
        e2hqa.run(seeds, out, e2hqa.E2HQAConfig(rewrites=n, max_tokens=160 if small else 512), backends, opts)
    else:
        cfg = graphqa.GraphQAConfig(walk=WalkConfig(min_hops=n, max_hops=n))
        if small:
            cfg = graphqa.GraphQAConfig(walk=cfg.walk, max_page_chars=1200, max_claims=6, max_tokens=384)
        graphqa.run(pages, out, cfg, backends, opts, args.walks)


def check(run: Path, backends, args) -> None:
    """`wdtk filter` on the run's QA, then the gates: a second answer by search, then the difficulty gate."""
    from wdtk.filters.difficulty import DifficultyConfig
    from wdtk.filters.gates import GatesConfig, apply
    from wdtk.filters.qa_filter import FilterConfig
    from wdtk.filters.qa_filter import run as qa_filter
    from wdtk.filters.uniqueness import UniquenessConfig
    from wdtk.synth.parallel import RunOptions
    from wdtk.synth.rivals import RivalConfig

    sources = [p for p in (run / "synth").glob("*/records") if p.exists()]
    qa_filter(sources, run / "filter", FilterConfig(uniqueness=UniquenessConfig() if args.structural else None))
    gates = GatesConfig(rivals=RivalConfig(), difficulty=DifficultyConfig(attempts=args.attempts))
    apply(run / "filter", gates, backends, RunOptions(workers=0, partition_size=16))


def figures(run: Path, method: str) -> dict:
    """The audit's verdicts of one run, summed up: before and after the difficulty gate, and the search check."""
    from wdtk.report.audit import audit
    from wdtk.schemas import read_records

    summary = audit(run)
    qa = [v for v in read_records(run / "audit" / "records") if v["kind"] == "qa" and v["source"] == method]
    after = [v for v in qa if v["status"] in ("kept", "final")]
    before = after + [v for v in qa if v.get("reason") == "filter:too_easy"]
    searched = before + [v for v in qa if v.get("reason") == "filter:ambiguous"]
    usage = json.loads((run / "filter" / "summary.json").read_text()).get("gates", {}).get("usage", {})
    synth = summary["tokens"]["by_stage"].get(method, 0)
    gate = {k: sum(u.get("prompt_tokens", 0) + u.get("completion_tokens", 0) for s, u in usage.items() if s in k)
            for k in (("uniqueness",), ("uniqueness", "solver", "judge"))}  # fmt: skip
    hops = [v["hops"] for v in before if v["hops"] is not None]
    return {
        "inputs": json.loads((run / "synth" / method / "summary.json").read_text())["items"],
        "kept": len(before),
        "correct": _share(sum(v["correct"] is True for v in before), len(before)),
        "unique": _share(sum(v["unique"] is True for v in before), len(before)),
        "good": _share(sum(bool(v["correct"] and v["unique"] and not v["leak"]) for v in before), len(before)),
        "hops": round(sum(hops) / len(hops), 2) if hops else None,
        "tokens": _ratio(synth + gate[("uniqueness",)], len(before)),
        "gated": len(after),
        "gated_good": _share(sum(bool(v["correct"] and v["unique"] and not v["leak"]) for v in after), len(after)),
        "gated_tokens": _ratio(synth + gate[("uniqueness", "solver", "judge")], len(after)),
        "search": {  # the search check against the audit's unique, over the questions it looked at
            "ambiguous": sum(v["unique"] is False for v in searched),
            "dropped": sum(v.get("reason") == "filter:ambiguous" for v in searched),
            "dropped_ambiguous": sum(v.get("reason") == "filter:ambiguous" and v["unique"] is False for v in searched),
            "dropped_wrong": sum(v.get("reason") == "filter:ambiguous" and v["correct"] is False for v in searched),
        },
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole) if whole else None


def report(rows: dict[str, dict], args, seconds: float) -> None:
    """The table the README shows, then the search check's precision and recall."""
    model = "embedded SmolLM2-135M" if args.embedded else f"planted-error generator at rate {args.rate}"
    print(f"\n{model}; kept = passed the filter and the search for a second answer; gated = and the solver failed it")
    head = (
        "setting",
        "inputs",
        "kept",
        "yield",
        "correct",
        "unique",
        "good",
        "hops",
        "tok/kept",
        "gated",
        "good",
        "tok",
    )
    widths = (21, 6, 5, 6, 8, 7, 6, 5, 9, 6, 6, 7)
    print("".join(f"{h:>{w}}" if i else f"{h:<{w}}" for i, (h, w) in enumerate(zip(head, widths, strict=True))))
    for label, f in rows.items():
        cells = (label, f["inputs"], f["kept"], _share(f["kept"], f["inputs"]), f["correct"], f["unique"],
                 f["good"], f["hops"], f["tokens"], f["gated"], f["gated_good"], f["gated_tokens"])  # fmt: skip
        cells = ["–" if c is None else c for c in cells]
        print("".join(f"{c:>{w}}" if i else f"{c:<{w}}" for i, (c, w) in enumerate(zip(cells, widths, strict=True))))
    s = {k: sum(f["search"][k] for f in rows.values()) for k in rows[next(iter(rows))]["search"]}
    print(f"uniqueness by search: dropped {s['dropped']}, of which the audit finds {s['dropped_ambiguous']} ambiguous "
          f"(precision {_share(s['dropped_ambiguous'], s['dropped'])}) and {s['dropped_wrong']} with a wrong answer "
          f"(the rival it found is the true one); of {s['ambiguous']} ambiguous questions it looked at it dropped "
          f"{s['dropped_ambiguous']} (recall {_share(s['dropped_ambiguous'], s['ambiguous'])})")  # fmt: skip
    print(f"time: {seconds:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--rate", type=float, default=0.3, help="share of replies carrying a planted mistake")
    parser.add_argument("--seed", type=int, default=0, help="seed of the planted mistakes")
    parser.add_argument("--groups", type=int, default=150, help="CRAWLQA page groups (E2HQA's seeds)")
    parser.add_argument("--walks", type=int, default=60, help="graphqa walks per setting")
    parser.add_argument("--solve-rate", type=float, default=0.1, help="the solver's success per try on hard questions")
    parser.add_argument("--attempts", type=int, default=3, help="closed-book tries of the difficulty gate")
    parser.add_argument("--max-rewrites", type=int, default=3)
    parser.add_argument("--max-hops", type=int, default=6)
    parser.add_argument(
        "--no-structural", dest="structural", action="store_false", help="uniqueness from claims off: the search alone"
    )
    parser.add_argument("--embedded", action="store_true", help="the offline embedded model instead (small runs)")
    parser.add_argument("--out", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    args = parser.parse_args()
    if args.embedded:
        args.groups, args.walks = min(args.groups, 2), min(args.walks, 2)
        args.max_rewrites, args.max_hops, args.attempts = 1, 3, 1
    from quality import build
    from servers import FakeOpenAIServer
    from servers.planted_model import PlantedModel

    from wdtk.crawler.sitegen.seeds import simple_seeds
    from wdtk.schemas import read_records, write_records
    from wdtk.synth.e2hqa import seed_record
    from wdtk.synth.parallel import Backends

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer() as server:
        out = args.out or Path(tmp)
        truth = build(out, args.pages)
        model = server.responder = PlantedModel(truth, rate=args.rate, seed=args.seed)
        model.solve_rate, model.named_descriptions = args.solve_rate, True  # E2HQA: names for later rounds
        spec = ("embedded", None) if args.embedded else ("openai:planted", server.base_url)
        rows, seeds = {}, out / "seeds.jsonl"
        for label, method, n in settings(args):
            run = out / label.replace(" ", "_").replace("-", "")
            run.mkdir(parents=True)
            for name in ("site", "crawl"):
                (run / name).symlink_to(out / name)
            backends = Backends(*spec, str(run / "llm_cache.sqlite"), f"bm25:{out / 'index'}", concurrency=32)
            synthesise(run, method, n, backends, args, seeds)
            if method == "crawlqa":  # E2HQA's seeds: what CRAWLQA kept (and, as `wdtk demo` does, two from the truth)
                extra = [seed_record(s) for s in simple_seeds(out / "site", 2)] if args.embedded else []
                write_records([*read_records(run / "synth" / "crawlqa" / "records"), *extra], seeds)
            check(run, backends, args)
            rows[label] = figures(run, method)
            print(f"{label}: {json.dumps(rows[label])}", flush=True)
        report(rows, args, time.monotonic() - started)


if __name__ == "__main__":
    main()
