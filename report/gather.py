"""`wdtk report`: one self-contained HTML page about a run directory, from pages crawled to kept trajectories.

`gather(run_dir)` streams each stage's records (memory holds counters and a few examples, not records) and
returns plain figures: a JSON-able dict of counts, reasons, histograms and examples. `render(figures)` (in
report_html.py, charts in report_charts.py) turns them into HTML with inline CSS and SVG: no JavaScript, no
external URLs. A stage whose output directory is missing is shown as "not run".
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__
from ..schemas import RecordError, read_records
from ..synth.llm.client import STATS
from .audit import report_figures
from .charts import clip, histogram
from .html import render

__all__ = ["gather", "histogram", "render"]

STAGE_DIRS = ("crawl", "synth", "filter", "sample", "funnel")
EXAMPLES = 3  # kept trajectories shown
CLUSTER_EXAMPLES = 5  # largest dedup clusters shown, each with a few of its duplicates
DISAGREEMENTS = 5  # judge/exact-match disagreements shown


def _json(path: Path) -> dict | None:
    """A JSON summary file, or None when the stage did not write one."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RecordError(f"not a readable JSON summary: {e}", path=path) from None


def _records(path: Path):
    """Stream the records under `path`, or nothing when that stage output is missing."""
    return read_records(path) if path.exists() else iter(())


def _reasons(path: Path) -> Counter:
    return Counter(str(r.get("reason", "unknown")) for r in _records(path))


def _provenance(prov: dict, role: str, meta: dict) -> None:
    """Count which models, prompt versions and wdtk versions made a record, by role (crawlqa, sampling...)."""
    for key in ("model", "prompt_version", "wdtk_version"):
        if meta.get(key):
            prov.setdefault(role, {}).setdefault(key, Counter())[str(meta[key])] += 1


def _crawl(run: Path) -> dict | None:
    pages_dir, summary = run / "crawl" / "pages", _json(run / "crawl" / "crawl_summary.json")
    if not pages_dir.exists() and summary is None:
        return None
    summary = summary or {}
    return {
        "pages": sum(1 for _ in _records(pages_dir)),
        "skipped": summary.get("skipped", {}),
        "errors": summary.get("errors", {}),
        "links_not_followed": summary.get("links_not_followed", {}),
        "seconds": summary.get("seconds"),
    }


def _qa_stage(out: Path, role: str, prov: dict) -> dict | None:
    """Counts, types and hops of one synthesis (or filter) output, its reject reasons and LLM usage."""
    if not out.exists():
        return None
    summary = _json(out / "summary.json") or {}
    types, hops, count = Counter(), Counter(), 0
    for qa in _records(out / "records"):
        count += 1
        types[str(qa.get("type", "?"))] += 1
        if "hops" in qa or role == "e2hqa":
            hops[len(qa.get("hops", []))] += 1
        _provenance(prov, role, qa.get("meta", {}))
    rejected = _reasons(out / "rejects") if (out / "rejects").exists() else Counter(summary.get("rejected", {}))
    return {
        "records": count,
        "items": summary.get("items"),
        "types": dict(types.most_common()),
        "hops": histogram(hops),
        "rejected": dict(rejected.most_common()),
        "usage": summary.get("usage", {}),
    }


def _filter(run: Path) -> dict | None:
    out = run / "filter"
    stage = _qa_stage(out, "filter", {})  # provenance: the same as synthesis
    if stage is None:
        return None
    summary = _json(out / "summary.json") or {}
    dedup = _dedup(out / "rejects", out / "records")
    stage.update(
        kept=stage["records"],
        input=summary.get("in", stage["records"] + sum(stage["rejected"].values())),
        dedup=dedup,
    )
    return stage


def _dedup(rejects: Path, records: Path) -> dict:
    """Duplicate clusters: a kept question and the rejects whose duplicate_of names it."""
    sizes, kinds = Counter(), Counter()
    for r in _records(rejects):
        if "duplicate_of" in r:
            sizes[str(r["duplicate_of"])] += 1
            kinds[str(r.get("reason", "duplicate")).removeprefix("duplicate_")] += 1
    # a second pass for the few clusters shown, so memory does not grow with the number of clusters
    examples = {
        key: {"kept_id": key, "kept": None, "size": n + 1, "duplicates": []}
        for key, n in sizes.most_common(CLUSTER_EXAMPLES)
    }
    for r in _records(rejects) if examples else ():
        ex = examples.get(str(r.get("duplicate_of")))
        if ex and len(ex["duplicates"]) < 4:
            ex["duplicates"].append(
                {"question": clip(r.get("record", {}).get("question", "")), "reason": r.get("reason")}
            )
    for qa in _records(records) if examples else ():
        if qa.get("id") in examples:
            examples[qa["id"]]["kept"] = clip(qa.get("question", ""))
    return {
        "clusters": len(sizes),
        "duplicates": sum(sizes.values()),
        "kinds": dict(kinds.most_common()),
        "sizes": histogram(Counter(n + 1 for n in sizes.values())),
        "examples": list(examples.values()),
    }


def _trajectories(path: Path, role: str, prov: dict, examples: int = 0) -> dict:
    """Counts, per-trajectory actions/tokens, terminations and the first `examples` records (one per question)."""
    actions, tokens, ends, questions, shown, count = Counter(), Counter(), Counter(), set(), [], 0
    for t in _records(path):
        count += 1
        stats = t.get("stats", {})
        actions[int(stats.get("actions", 0))] += 1
        if "tokens" in stats:
            tokens[int(stats["tokens"])] += 1
        ends[str(t.get("termination", "?"))] += 1
        questions.add(t.get("question_id"))
        _provenance(prov, role, t.get("meta", {}))
        if len(shown) < examples and all(e["question_id"] != t.get("question_id") for e in shown):
            shown.append(_example(t))
    return {
        "records": count,
        "questions": len(questions),
        "actions": histogram(actions),
        "tokens": histogram(tokens),
        "termination": dict(ends.most_common()),
        "examples": shown,
    }


def _example(t: dict) -> dict:
    """A trajectory cut down to what a reader needs: its steps, with long texts clipped."""
    steps = []
    for m in t.get("messages", [])[2:]:  # the system prompt and the question are shown once, above
        if m.get("reasoning_content"):
            steps.append({"kind": "think", "text": clip(m["reasoning_content"])})
        for call in m.get("tool_calls", []):
            fn = call.get("function", {})
            args = json.dumps(fn.get("arguments", {}), ensure_ascii=False)
            steps.append({"kind": "call", "name": str(fn.get("name", "?")), "text": clip(args)})
        if m.get("role") == "tool":
            steps.append({"kind": "tool", "name": str(m.get("name", "tool")), "text": clip(m.get("content"))})
        elif m.get("role") == "assistant" and m.get("content"):
            steps.append({"kind": "answer", "text": clip(m["content"])})
    keys = ("id", "question_id", "question", "answer", "prediction", "termination")
    return {**{k: clip(t.get(k, "")) for k in keys}, "stats": t.get("stats", {}), "steps": steps}


def _sample(run: Path, prov: dict) -> dict | None:
    out = run / "sample"
    if not out.exists():
        return None
    stage = _trajectories(out / "records", "sampling", prov)
    summary = _json(out / "summary.json") or {}
    rejected = _reasons(out / "rejects") if (out / "rejects").exists() else Counter(summary.get("rejected", {}))
    return {**stage, "rejected": dict(rejected.most_common()), "usage": summary.get("usage", {})}


def _funnel(run: Path, sampled: dict | None, prov: dict, warnings: list[str]) -> dict | None:
    """The funnel's stages from its summary (or rebuilt from its rejects), kept-trajectory figures, judgements."""
    out = run / "funnel"
    if not out.exists():
        return None
    kept = _trajectories(out / "records", "sampling (kept)", {}, EXAMPLES)
    summary = _json(out / "summary.json")
    if summary is None:
        summary = _rebuilt_summary(out, sampled, kept)
        warnings.append("funnel/summary.json is missing: the funnel's counts are rebuilt from funnel/rejects")
    if summary.get("kept") != kept["records"]:
        warnings.append(f"the funnel's stages keep {summary.get('kept')}; funnel/records holds {kept['records']}")
    judge = summary.get("judge") or {}
    _provenance(prov, "judge", {k: v for k, v in judge.items() if k in ("model", "prompt_version")})
    return {**summary, "kept_stats": kept, "judgements": _judgements(out / "judgements", prov)}


def _rebuilt_summary(out: Path, sampled: dict | None, kept: dict) -> dict:
    """What funnel/summary.json would say, from the rejects and the sampled (or else kept) trajectories."""
    drops: dict[str, Counter] = {}
    for r in _records(out / "rejects"):
        drops.setdefault(str(r.get("stage")), Counter())[str(r.get("reason", "unknown"))] += 1
    n = (
        sampled["records"]
        if sampled and sampled["records"]
        else kept["records"] + sum(sum(c.values()) for c in drops.values())
    )
    stages = []
    for name in ("validity", "correctness", "quality"):
        dropped = drops.get(name, Counter())
        stages.append({"name": name, "in": n, "kept": n - sum(dropped.values()), "dropped": dict(dropped)})
        n = stages[-1]["kept"]
    return {
        "trajectories": stages[0]["in"],
        "questions": (sampled or {}).get("questions"),
        "stages": stages,
        "kept": n,
        "questions_kept": kept["questions"],
        "rl_pool": sum(1 for _ in _records(out / "rl_pool")),
    }


def _judgements(path: Path, prov: dict) -> dict | None:
    """The judge's verdicts against normalised exact match: a 2x2 table, agreement and some disagreements."""
    if not path.exists():
        return None
    table, methods, shown, judged = Counter(), Counter(), [], 0
    for j in read_records(path):
        judged += 1
        methods[str(j.get("method", "?"))] += 1
        if j.get("judge"):
            _provenance(prov, "judge", j["judge"])
        exact = j.get("exact_match")
        if exact is None or j.get("method") == "exact":  # exact match against itself says nothing
            continue
        correct = bool(j.get("correct"))
        table[f"{'judge_yes' if correct else 'judge_no'}/{'exact_yes' if exact else 'exact_no'}"] += 1
        if correct != exact and len(shown) < DISAGREEMENTS:
            keys = ("question", "gold", "prediction", "rationale")
            shown.append({**{k: clip(j.get(k, ""), 300) for k in keys}, "correct": correct, "exact_match": exact})
    compared = sum(table.values())
    agree = table["judge_yes/exact_yes"] + table["judge_no/exact_no"]
    return {
        "judged": judged,
        "compared": compared,
        "table": {
            k: table[k]
            for k in ("judge_yes/exact_yes", "judge_yes/exact_no", "judge_no/exact_yes", "judge_no/exact_no")
        },
        "agreement": round(agree / compared, 4) if compared else None,
        "methods": dict(methods),
        "disagreements": shown,
    }


def _usage(stages: dict[str, dict | None]) -> list[dict]:
    """One row per stage and sub-stage of LLM usage, from the stage summaries."""
    rows = []
    for stage, figures in stages.items():
        for sub, u in ((figures or {}).get("usage") or {}).items():
            rows.append({"stage": stage, "substage": sub, **{k: u.get(k, 0) for k in STATS}})
    return rows


def _steps(f: dict) -> list[dict]:
    """The funnel, step by step; `count` None for a stage that did not run, `base` the count it is a share of."""
    synth, flt, sample, funnel = f["synth"], f["filter"], f["sample"], f["funnel"] or {}
    kept = {s.get("name"): s.get("kept") for s in funnel.get("stages", [])}
    rows = [
        ("pages", "Pages crawled", "pages", (f["crawl"] or {}).get("pages"), None),
        ("crawlqa", "QA synthesised: CRAWLQA", "QA", (synth["crawlqa"] or {}).get("records"), None),
        ("e2hqa", "QA synthesised: E2HQA", "QA", (synth["e2hqa"] or {}).get("records"), None),
        ("seeds", "QA given as seeds", "QA", (synth.get("seeds") or {}).get("records"), None),
        ("filtered", "QA after filter", "QA", (flt or {}).get("kept"), (flt or {}).get("input")),
        ("sampled", "Trajectories sampled", "trajectories", (sample or {}).get("records"), None),
        ("valid", "Valid", "trajectories", kept.get("validity"), (sample or {}).get("records")),
        ("correct", "Correct", "trajectories", kept.get("correctness"), kept.get("validity")),
        ("kept", "High quality (kept)", "trajectories", kept.get("quality"), kept.get("correctness")),
        ("questions", "Questions sampled", "questions", funnel.get("questions"), None),
        ("questions_kept", "Questions with a kept trajectory", "questions", funnel.get("questions_kept"), None),
        ("rl_pool", "Questions to the RL pool", "questions", funnel.get("rl_pool"), None),
    ]
    if not synth.get("seeds"):  # only runs that were given seed questions (the demo) have this step
        rows = [r for r in rows if r[0] != "seeds"]
    steps = [{"key": k, "label": label, "unit": unit, "count": n, "base": base} for k, label, unit, n, base in rows]
    for step in steps[-2:]:
        step["base"] = funnel.get("questions")
    return steps


def _drops(f: dict) -> list[dict]:
    """Why things were dropped, stage by stage; reasons None for a stage that did not run."""
    crawl, synth, flt, sample, funnel = f["crawl"], f["synth"], f["filter"], f["sample"], f["funnel"]
    rows = [
        ("Crawl: skipped or failed", crawl and {**crawl["skipped"], **crawl["errors"]}),
        ("Crawl: links not followed", crawl and crawl["links_not_followed"]),
        ("CRAWLQA: rejected", synth["crawlqa"] and synth["crawlqa"]["rejected"]),
        ("E2HQA: rejected rounds", synth["e2hqa"] and synth["e2hqa"]["rejected"]),
        ("Filter: dropped QA", flt and flt["rejected"]),
        ("Sampling: rejected", sample and sample["rejected"]),
    ]
    stages = {s.get("name"): s for s in (funnel or {}).get("stages", [])}
    for name in ("validity", "correctness", "quality"):
        rows.append((f"Funnel: {name}", stages[name].get("dropped", {}) if name in stages else None))
    if (funnel or {}).get("format_errors"):  # what the model got wrong, when its turns broke the format
        rows.append(("Funnel: format errors by kind", funnel["format_errors"]))
    return [{"stage": stage, "reasons": reasons} for stage, reasons in rows]


def _commands(run: Path) -> list[dict]:
    """The wdtk commands run on this directory, oldest first (from commands.jsonl)."""
    path = run / "commands.jsonl"
    if not path.is_file():
        return []
    return [{k: c.get(k) for k in ("argv", "started", "wdtk_version")} for c in read_records(path)]


def gather(run_dir: str | Path) -> dict:
    """Every figure the report shows, read by streaming the run directory's stage outputs.

    Raises FileNotFoundError when `run_dir` holds none of the stages' outputs, RecordError on a bad file.
    """
    run = Path(run_dir)
    if not any((run / name).exists() for name in STAGE_DIRS):
        raise FileNotFoundError(
            f"nothing to report in {run}: none of {', '.join(n + '/' for n in STAGE_DIRS)} is there "
            "(run `wdtk demo` to make a run directory)"
        )
    prov, warnings = {}, []
    f = {
        "run_dir": str(run.resolve()),
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "wdtk_version": __version__,
        "commands": _commands(run),
        "crawl": _crawl(run),
        "synth": {name: _qa_stage(run / "synth" / name, name, prov) for name in ("crawlqa", "e2hqa", "seeds")},
        "filter": _filter(run),
    }
    f["sample"] = _sample(run, prov)
    f["funnel"] = _funnel(run, f["sample"], prov, warnings)
    f["judge"] = (f["funnel"] or {}).pop("judgements", None)
    f["examples"] = (f["funnel"] or {}).get("kept_stats", {}).pop("examples", [])
    f["steps"], f["drops"] = _steps(f), _drops(f)
    usage = {"crawlqa": f["synth"]["crawlqa"], "e2hqa": f["synth"]["e2hqa"], "sample": f["sample"]}
    f["usage"] = _usage({**usage, "funnel": f["funnel"]})
    f["audit"] = report_figures(run)
    f["provenance"] = {role: {k: dict(c.most_common()) for k, c in keys.items()} for role, keys in prov.items()}
    f["warnings"] = warnings
    return f
