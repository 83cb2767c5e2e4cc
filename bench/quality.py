"""Data quality on the generated world: a model that plants known mistakes, run through synth, filter, sample and
funnel, then `wdtk audit`; how many of each mistake reach the kept set, and what the kept set is worth.

    .venv/bin/python bench/quality.py [--pages 300] [--rate 0.3] [--groups 0] [--rewrites 1] [--rollouts 3]
                                      [--seed 0] [--out DIR]

The model (tests/servers/planted_model.py, behind the fake OpenAI server) answers every prompt like a careful model
from the site's truth, except that each reply carries a planted mistake with probability --rate: a wrong answer, a
question or description that fits several entities, a leaked answer, a claim its page does not state, prose instead
of JSON, or (as the funnel's judge) Correct for a wrong answer. Its agent answers each question's true answers (the
audit's solver over the record's claims), one per rollout. The pipeline runs twice on the same crawl with the same
plants: once with the checks this benchmark led to (claims on their pages, answer uniqueness from claims, answer
words in the question, the gold answer in a tool response) turned off, the baseline, and once as wdtk runs. Prints
the audit, then per planted kind how many replies carried it, how many records it made, and how many reached the
kept set (questions with a kept trajectory) in each run; then the kept set's precision (correct, unique, not leaked,
by the audit), recall of the good records (no planted mistake, good by the audit) and yield, both runs.
Targets at --rate 0.3: kept-set precision >= 0.98 with recall >= 0.90.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the scripted servers live with the tests

QA_KINDS = ("wrong_answer", "ambiguous", "leaked_answer", "unstated_claim", "unparseable")


def build(out: Path, pages: int) -> dict:
    """The site under OUT/site, crawled into OUT/crawl as `wdtk demo` does; its truth."""
    from wdtk.crawler.commands import run_crawl
    from wdtk.crawler.sitegen import build_site, load_truth, start_server
    from wdtk.synth.search.bm25 import build_index

    build_site(out / "site", pages=pages, seed=7)
    server, base = start_server(out / "site")
    try:
        run_crawl([base + "/"], out / "crawl", max_pages=pages, max_depth=6, throttle=False, restart=True)
    finally:
        server.shutdown()
    build_index(out / "crawl" / "pages", out / "index")
    return load_truth(out / "site")


def run_pipeline(run: Path, shared: Path, server, model, args, checks: bool) -> None:
    """synth (CRAWLQA, E2HQA), filter, sample (its agent told each question's true answers), funnel, into `run`."""
    from wdtk.filters.funnel import FunnelConfig
    from wdtk.filters.funnel import run as funnel
    from wdtk.filters.qa_filter import FilterConfig
    from wdtk.filters.qa_filter import run as qa_filter
    from wdtk.filters.quality import QualityConfig
    from wdtk.schemas import read_records, write_records
    from wdtk.synth import crawlqa, e2hqa, sample
    from wdtk.synth.judge import Judge, judge_client
    from wdtk.synth.parallel import Backends, RunOptions

    run.mkdir(parents=True)
    for name in ("site", "crawl"):  # what the audit reads: the site's truth and the crawl
        (run / name).symlink_to(shared / name)
    cache = str(run / "llm_cache.sqlite")
    backends = Backends("openai:planted", server.base_url, cache, f"bm25:{shared / 'index'}", concurrency=32)
    opts, synth = RunOptions(workers=0, partition_size=32), run / "synth"
    cfg = crawlqa.CrawlQAConfig(check_claims=checks)
    crawlqa.run(run / "crawl" / "pages", synth / "crawlqa", cfg, backends, opts, args.groups or None)
    if args.rewrites:
        write_records(read_records(synth / "crawlqa" / "records"), synth / "e2hqa_seeds.jsonl")
        e2cfg = e2hqa.E2HQAConfig(rewrites=args.rewrites, check_claims=checks)
        e2hqa.run(synth / "e2hqa_seeds.jsonl", synth / "e2hqa", e2cfg, backends, opts)
    sources = [p for p in (synth / "crawlqa" / "records", synth / "e2hqa" / "records") if p.exists()]
    quality = FilterConfig(quality=QualityConfig(answer_words=checks), **({} if checks else {"uniqueness": None}))
    qa_filter(sources, run / "filter", quality)
    model.agent.candidates = true_answers(run)
    kept = [run / "filter" / "records"]
    sample.run(kept, run / "sample", sample.SampleConfig(rollouts=args.rollouts), backends, opts)
    judge = Judge(judge_client("openai:planted", server.base_url, run / "llm_cache.sqlite"))
    funnel([run / "sample" / "records"], run / "funnel", FunnelConfig(require_gold_support=checks), judge, kept)


def true_answers(run: Path) -> dict[str, list[str]]:
    """Each kept question's answers in the world, from its claims (the gold answer when they cannot say)."""
    from wdtk.crawler.sitegen import load_truth
    from wdtk.report.truth import World
    from wdtk.report.verdicts import audit_qa
    from wdtk.schemas import read_records

    world, answers = World(load_truth(run / "site")), {}
    for qa in read_records(run / "filter" / "records"):
        _, values = audit_qa(qa, world)
        answers[qa["question"]] = sorted(world.label(v) for v in values or ()) or [qa["answer"]]
    return answers


def planted_kinds(run: Path, model) -> dict[str, set[str]]:
    """Audited QA id -> the planted kinds it carries: its CRAWLQA question's, and its E2HQA descriptions'."""
    from wdtk.report.audit import qa_records
    from wdtk.schemas import read_records, record_id

    records = qa_records(run)
    questions = {i: r["record"]["question"] for i, r in records.items() if r["record"]["source"] == "crawlqa"}
    kinds = {i: {model.planted[q]} if q in model.planted else set() for i, q in questions.items()}
    e2hqa = run / "synth" / "e2hqa"
    for qa in read_records(e2hqa / "records") if (e2hqa / "records").exists() else ():
        texts = [qa["hops"][0]["question_before"], *(inserted(h) for h in qa["hops"])]
        kinds[qa["id"]] = {model.planted[t] for t in texts if t in model.planted}
    for r in read_records(e2hqa / "rejects") if (e2hqa / "rejects").exists() else ():
        if "candidate" in r:
            texts = [questions.get(r["seed"], ""), r.get("description", "")]
            qid = record_id("qa", r["candidate"]["question"], r["candidate"]["answer"])
            kinds[qid] = {model.planted[t] for t in texts if t in model.planted}
    return kinds


def inserted(hop: dict) -> str:
    """The description an E2HQA hop put in place of its entity."""
    before, after = hop["question_before"], hop["question_after"]
    match = re.search(re.escape(hop["entity"]), before, flags=re.IGNORECASE)
    return after[match.start() : len(after) - (len(before) - match.end())] if match else ""


def figures(run: Path, model) -> dict:
    """Per planted kind (records made, questions reaching the kept set) and the overall figures of one run."""
    from wdtk.schemas import read_records

    verdicts = list(read_records(run / "audit" / "records"))
    qa = [v for v in verdicts if v["kind"] == "qa"]
    kept_t = [v for v in verdicts if v["kind"] == "trajectory" and v["outcome"] == "kept"]
    kinds = planted_kinds(run, model)
    good = lambda v: bool(v["correct"] and v["unique"] and not v["leak"])  # noqa: E731
    per_kind = {}
    for kind in QA_KINDS:
        mine = [v for v in qa if kind in kinds.get(v["id"], ())]
        per_kind[kind] = (len(mine), sum(v["status"] == "final" for v in mine))
    questions = {v["id"]: v["question"] for v in qa}
    lied = [t for t in kept_t if (questions.get(t["question_id"]), t["prediction"]) in model.false_yes]
    per_kind["judge_yes"] = (len(model.false_yes), len({t["question_id"] for t in lied}))
    final = [v for v in qa if v["status"] == "final"]
    clean = [v for v in qa if not kinds.get(v["id"]) and good(v)]
    return {
        "per_kind": per_kind,
        "final": len(final),
        "precision": _share(sum(map(good, final)), len(final)),
        "recall": _share(sum(v["status"] == "final" for v in clean), len(clean)),
        "good": len(clean),
        "yield": _share(len(final), len(qa)),
        "records": len(qa),
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def report(base: dict, checked: dict, model, seconds: float) -> None:
    """The per-kind table and the overall figures, baseline beside the checked run."""
    print(f"\nplanted at rate {model.rate} (seed {model.seed}); kept = questions with a kept trajectory")
    print(f"  {'kind':<16}{'replies':>9}{'records':>9}{'kept, checks off':>18}{'kept, checks on':>17}")
    for kind in (*QA_KINDS, "judge_yes"):
        (_, off), (made, on) = base["per_kind"][kind], checked["per_kind"][kind]
        print(f"  {kind:<16}{model.events[kind]:>9}{made:>9}{off:>18}{on:>17}")
    print("  (judge_yes: records are the wrong answers it accepted; kept, the questions kept through them)")
    for name, f in (("checks off (baseline)", base), ("checks on", checked)):
        print(f"{name:>22}: kept {f['final']} questions, precision {f['precision']}, recall of good records "
              f"{f['recall']} (of {f['good']}), yield {f['yield']} (of {f['records']} QA records)")  # fmt: skip
    print(f"time: {seconds:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--rate", type=float, default=0.3, help="share of replies carrying a planted mistake")
    parser.add_argument("--groups", type=int, default=0, help="CRAWLQA page groups (0: all)")
    parser.add_argument("--rewrites", type=int, default=1)
    parser.add_argument("--rollouts", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="seed of the planted mistakes")
    parser.add_argument("--out", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    args = parser.parse_args()
    from servers import FakeOpenAIServer
    from servers.planted_model import PlantedModel

    from wdtk.report.audit import audit, describe

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        truth = build(out, args.pages)
        results = {}
        with FakeOpenAIServer() as server:
            for name, checks in (("baseline", False), ("checked", True)):
                model = server.responder = PlantedModel(truth, rate=args.rate, seed=args.seed)
                run_pipeline(out / name, out, server, model, args, checks)
                summary = audit(out / name)
                results[name] = figures(out / name, model)
        print("\n".join(describe(summary)))  # the checked run's audit, as `wdtk audit` prints it
        report(results["baseline"], results["checked"], model, time.monotonic() - started)


if __name__ == "__main__":
    main()
