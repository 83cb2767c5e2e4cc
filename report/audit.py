"""`wdtk audit RUN_DIR`: every QA record (kept and rejected) and trajectory of a run on the generated site, judged
against the site's ground truth (report/verdicts.py says how), with the figures that say how good the data is.

    summary = audit(run_dir)            # writes RUN/audit/summary.json and RUN/audit/records/ (one verdict a record)
    print("\n".join(describe(summary)))

The truth is `--truth DIR` or RUN/site (where `wdtk demo` builds its site); the crawl's pages must be that site's.
QA come from synth/*/records and rejects (a rejected pair's candidate, a rejected E2HQA round's would-be question),
filter/records and rejects; trajectories from sample/records, their fate from funnel/ and judgements/.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from ..crawler.sitegen import load_truth
from ..schemas import ShardWriter, WdtkError, read_records, record_id
from ..synth.claims import clean
from .truth import World
from .verdicts import audit_qa, audit_trajectory

COUNTS = ("n", "correct", "incorrect", "unique", "ambiguous", "leak", "unresolved", "good")
STAGE_SUMMARIES = {
    "crawlqa": "synth/crawlqa",
    "e2hqa": "synth/e2hqa",
    "graphqa": "synth/graphqa",
    "gates": "filter/gates",  # the search-backed uniqueness check and the difficulty gate of `wdtk filter`
    "sample": "sample",
    "funnel": "funnel",
}
METHODS = ("crawlqa", "e2hqa", "graphqa", "seeds")


class AuditError(WdtkError, ValueError):
    """The run cannot be audited: no ground truth, or the crawl is not of the generated site."""


def _records(path: Path):
    return read_records(path) if path.exists() else iter(())


def find_truth(run: Path, truth_dir: Path | None = None) -> Path:
    """The generated site whose truth judges this run: `truth_dir`, else RUN/site; checked against the crawl."""
    pages = [p for _, p in zip(range(2000), _records(run / "crawl" / "pages"), strict=False)]
    root = pages[0].get("root", "?") if pages else None
    site = Path(truth_dir) if truth_dir else run / "site"
    if not (site / "_truth" / "site.json").is_file():
        what = f"the crawl of {root}" if root else str(run)
        raise AuditError(
            f"{what} has no ground truth: audit needs a run on the generated site (`wdtk demo` keeps it in "
            f"RUN/site) or --truth SITE_DIR (no {site / '_truth' / 'site.json'})"
        )
    if pages:
        truth = json.loads((site / "_truth" / "site.json").read_text())
        known = {p["path"] for p in json.loads((site / "_truth" / "pages.json").read_text())}
        known |= {r["from"] for r in truth.get("redirects", [])} | {"/"}
        unknown = sum(urlsplit(p["final_url"]).path not in known for p in pages)
        if unknown > len(pages) / 2:
            raise AuditError(
                f"the crawl of {root} is not of the generated site in {site}: "
                f"{unknown} of {len(pages)} crawled pages are not in its truth"
            )
    return site


def qa_records(run: Path) -> dict[str, dict]:
    """Every QA record of the run by id, with where it ended: {"record", "status", "reason"?}; later stages win."""
    found: dict[str, dict] = {}
    for method in METHODS:
        out = run / "synth" / method
        for qa in _records(out / "records"):
            found[qa["id"]] = {"record": qa, "status": "synthesised"}
        for r in _records(out / "rejects"):
            qa = _candidate(r, method)
            if qa is not None and qa["id"] not in found:
                found[qa["id"]] = {"record": qa, "status": "rejected", "reason": f"{method}:{r.get('reason')}"}
    for qa in _records(run / "filter" / "records"):
        found[qa["id"]] = {"record": qa, "status": "kept"}
    for r in _records(run / "filter" / "rejects"):
        if "record" in r and "id" in r["record"]:
            found[r["record"]["id"]] = {"record": r["record"], "status": "rejected", "reason": f"filter:{r['reason']}"}
    return found


def _candidate(reject: dict, method: str) -> dict | None:
    """The QA a synthesis reject would have made, when it got that far (an unparseable reply has none)."""
    c = reject.get("candidate")
    if not isinstance(c, dict) or not c.get("question") or not str(c.get("answer", "")).strip():
        return None
    question, answer = str(c["question"]).strip(), str(c["answer"]).strip()
    qtype = str(c.get("type") or ("MULTI-HOP" if method == "e2hqa" else "?")).upper()
    rounds = reject.get("round") or (c["hops"] if isinstance(c.get("hops"), int) else 0)  # E2HQA round, walk hops
    return {
        "id": record_id("qa", question, answer),
        "question": question,
        "answer": answer,
        "type": qtype,
        "source": method,
        "claims": clean(c.get("claims")),
        "rounds": int(rounds),
    }


def trajectory_fates(run: Path) -> tuple[dict[str, str], dict[str, bool]]:
    """(trajectory id -> "kept" or "stage:reason", trajectory id -> the judge's verdict)."""
    fate = {t["id"]: "kept" for t in _records(run / "funnel" / "records")}
    for r in _records(run / "funnel" / "rejects"):
        fate[r["record"]["id"]] = f"{r.get('stage')}:{r.get('reason')}"
    judged = {j["item_id"]: bool(j["correct"]) for j in _records(run / "funnel" / "judgements")}
    return fate, judged


def audit(run_dir: str | Path, truth_dir: Path | None = None, write: bool = True) -> dict:
    """Audit the run against its site's truth; write RUN/audit/ (unless `write` is False) and return the summary."""
    run = Path(run_dir)
    site = find_truth(run, truth_dir)
    world = World(load_truth(site))
    qas = qa_records(run)
    fate, judged = trajectory_fates(run)
    final = {t["question_id"] for t in _records(run / "funnel" / "records")}
    out = run / "audit"
    if write:
        shutil.rmtree(out / "records", ignore_errors=True)
    writer = ShardWriter(out / "records") if write else None
    verdicts, answers = [], {}
    for qid, item in qas.items():
        verdict, answers[qid] = audit_qa(item["record"], world)
        verdict["status"] = "final" if qid in final else item["status"]
        if "reason" in item:
            verdict["reason"] = item["reason"]
        verdicts.append(verdict)
    trajectories, by_id = [], {v["id"]: v for v in verdicts}
    for t in _records(run / "sample" / "records"):
        outcome = fate.get(t["id"], "not funnelled")
        trajectories.append(audit_trajectory(t, answers.get(t["question_id"]), world, judged.get(t["id"]), outcome))
        question = by_id.get(t["question_id"]) or {}
        trajectories[-1] |= {"question_good": _good(question), "gold_correct": question.get("correct")}
    for v in (*verdicts, *trajectories) if writer else ():
        writer.write(v)
    summary = summarise(verdicts, trajectories, _usage(run))
    summary |= {"truth": str(site.resolve()), "facts": len(world.facts), "entities": len(world.entities)}
    if writer:
        writer.close()
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _good(v: dict | None) -> bool:
    return bool(v and v["correct"] and v["unique"] and not v["leak"])


def _counts(verdicts: list[dict]) -> dict:
    c = Counter(n=len(verdicts))
    for v in verdicts:
        c["correct"] += v["correct"] is True
        c["incorrect"] += v["correct"] is False
        c["unique"] += v["unique"] is True
        c["ambiguous"] += v["unique"] is False
        c["leak"] += v["leak"]
        c["unresolved"] += v["unresolved"] is not None
        c["good"] += _good(v)
    return {k: c[k] for k in COUNTS}


def _usage(run: Path) -> dict:
    """LLM tokens by stage, from the stage summaries."""
    tokens = {}
    for stage, path in STAGE_SUMMARIES.items():
        summary = run / path / "summary.json"
        if summary.is_file():
            usage = json.loads(summary.read_text()).get("usage") or {}
            tokens[stage] = sum(u.get("prompt_tokens", 0) + u.get("completion_tokens", 0) for u in usage.values())
    return tokens


def summarise(verdicts: list[dict], trajectories: list[dict], tokens: dict) -> dict:
    """The audit's figures: counts by where records ended, precision, yield, hops, tokens, the judge against truth."""
    groups = {
        "all": verdicts,
        "rejected": [v for v in verdicts if v["status"] == "rejected"],
        "kept": [v for v in verdicts if v["status"] in ("kept", "final")],
        "final": [v for v in verdicts if v["status"] == "final"],
    }
    counts = {g: _counts(vs) for g, vs in groups.items()}
    drops = Counter(v["reason"] for v in groups["rejected"])
    good_drops = Counter(v["reason"] for v in groups["rejected"] if _good(v))
    hops: dict[str, dict[str, list]] = {}
    for v in verdicts:
        if v["hops"] is not None:
            hops.setdefault(v["source"], {}).setdefault(str(v["rounds"]), []).append(v["hops"])
    kept_t = [t for t in trajectories if t["outcome"] == "kept"]
    final_n = counts["final"]["n"]
    return {
        "qa": counts,
        "by_source": {
            s: _counts([v for v in verdicts if v["source"] == s]) for s in sorted({v["source"] for v in verdicts})
        },
        "precision": {g: _share(counts[g]["good"], counts[g]["n"]) for g in ("kept", "final")},
        "dropped": {r: {"n": n, "good": good_drops[r]} for r, n in drops.most_common()},
        "yield": {
            "synthesised": sum(v["source"] != "seed" for v in verdicts),
            "kept": counts["kept"]["n"],
            "final": final_n,
            "kept_trajectories": len(kept_t),
        },
        "hops": {
            s: {r: {"n": len(h), "mean": round(sum(h) / len(h), 2)} for r, h in sorted(rs.items())}
            for s, rs in hops.items()
        },
        "tokens": {
            "by_stage": tokens,
            "total": sum(tokens.values()),
            "per_final_question": _ratio(sum(tokens.values()), final_n),
            "per_kept_qa": _ratio(sum(tokens.get(s, 0) for s in (*METHODS, "gates")), counts["kept"]["n"]),
        },
        "kept_by_method": kept_by_method(verdicts, tokens),
        "trajectories": _trajectory_figures(trajectories, kept_t),
    }


def kept_by_method(verdicts: list[dict], tokens: dict) -> dict:
    """Per method and round (E2HQA rewrites, graphqa walk hops) of the kept QA: how many, the shares correct, unique
    and good, mean hops; per method, yield (kept of synthesised) and its synthesis tokens per kept record."""
    out: dict[str, dict] = {}
    for source in sorted({v["source"] for v in verdicts} - {"seed"}):
        mine = [v for v in verdicts if v["source"] == source]
        kept = [v for v in mine if v["status"] in ("kept", "final")]
        rounds = {}
        for r in sorted({v["rounds"] for v in kept}):
            group = [v for v in kept if v["rounds"] == r]
            hops = [v["hops"] for v in group if v["hops"] is not None]
            rounds[str(r)] = {
                "n": len(group),
                "correct": _share(sum(v["correct"] is True for v in group), len(group)),
                "unique": _share(sum(v["unique"] is True for v in group), len(group)),
                "good": _share(sum(map(_good, group)), len(group)),
                "mean_hops": round(sum(hops) / len(hops), 2) if hops else None,
            }
        out[source] = {
            "synthesised": len(mine),
            "kept": len(kept),
            "yield": _share(len(kept), len(mine)),
            "tokens_per_kept": _ratio(tokens.get(source, 0), len(kept)),
            "by_round": rounds,
        }
    return out


def _trajectory_figures(trajectories: list[dict], kept: list[dict]) -> dict:
    judged = [t for t in trajectories if t["judge"] is not None and t["truth"] is not None]
    return {
        "n": len(trajectories),
        "judged": len(judged),
        "agree": sum(t["judge"] == t["truth"] for t in judged),
        "false_accepts": sum(t["judge"] and not t["truth"] for t in judged),
        "false_rejects": sum(t["truth"] and not t["judge"] for t in judged),
        "false_rejects_wrong_gold": sum(t["truth"] and not t["judge"] and t["gold_correct"] is False for t in judged),
        "unresolved": sum(t["truth"] is None for t in trajectories),
        "in_tool_response": sum(t["in_tool_response"] for t in trajectories),
        "kept": len(kept),
        "kept_good": sum(bool(t["truth"] and t["question_good"]) for t in kept),
        "precision": _share(sum(bool(t["truth"] and t["question_good"]) for t in kept), len(kept)),
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 1) if whole else None


HEADS, WIDTHS = ("n", "correct", "unique", "leaked", "unresolved", "good"), (7, 9, 8, 8, 12, 7)


def describe(summary: dict) -> list[str]:
    """The audit as a terminal table: QA by where they ended, precision, what the checks dropped, hops, the judge
    against the truth, and tokens."""
    qa, t, tok = summary["qa"], summary["trajectories"], summary["tokens"]
    lines = [
        f"audit against the ground truth in {summary['truth']} ({summary['facts']:,} facts)",
        f"  {'QA records':<30}" + "".join(f"{h:>{w}}" for h, w in zip(HEADS, WIDTHS, strict=True)),
    ]
    labels = {
        "all": "all",
        "rejected": "dropped by the checks",
        "kept": "kept by the checks",
        "final": "with a kept trajectory",
    }
    for group, label in labels.items():
        cells = [qa[group][k] for k in ("n", "correct", "unique", "leak", "unresolved", "good")]
        lines.append(f"  {label:<30}" + "".join(f"{n:>{w},}" for n, w in zip(cells, WIDTHS, strict=True)))
    p = summary["precision"]
    lines.append(
        f"  precision (correct, unique, not leaked): kept {_fmt(p['kept'])}, with a kept trajectory {_fmt(p['final'])}"
    )
    good_dropped = {r: d["good"] for r, d in summary["dropped"].items() if d["good"]}
    if good_dropped:
        lines.append("  good records the checks dropped: " + ", ".join(f"{r} {n}" for r, n in good_dropped.items()))
    hops = "; ".join(
        f"{src} {'round ' + r + ': ' if src == 'e2hqa' else ''}{h['mean']} (n={h['n']})"
        for src, rounds in summary["hops"].items()
        for r, h in rounds.items()
    )
    lines.append(f"  hops per question: {hops or 'none resolved'}")
    for source, m in summary.get("kept_by_method", {}).items():
        rounds = "; ".join(
            f"{_ROUND.get(source, '').format(r)}{g['n']} kept, correct {_fmt(g['correct'])}, "
            f"unique {_fmt(g['unique'])}, hops {_fmt(g['mean_hops'])}"
            for r, g in m["by_round"].items()
        )
        lines.append(
            f"  {source}: kept {m['kept']} of {m['synthesised']} (yield {_fmt(m['yield'])}), "
            f"{_fmt(m['tokens_per_kept'])} synthesis tokens per kept" + (f"; {rounds}" if rounds else "")
        )
    if t["n"]:
        lines.append(
            f"  trajectories {t['n']:,}: judge vs truth on {t['judged']:,}: agree {t['agree']:,}, false accepts "
            f"{t['false_accepts']:,}, false rejects {t['false_rejects']:,} ({t['false_rejects_wrong_gold']:,} of them "
            f"against a wrong gold answer); answer in a tool response "
            f"{t['in_tool_response']:,}; kept {t['kept']:,}, precision {_fmt(t['precision'])}"
        )
    lines.append(
        f"  LLM tokens {tok['total']:,}: {_fmt(tok['per_kept_qa'])} per kept QA, "
        f"{_fmt(tok['per_final_question'])} per question with a kept trajectory"
    )
    return lines


_ROUND = {"e2hqa": "round {}: ", "graphqa": "walk hops {}: "}  # how a method's rounds read; others have one


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:,}"


def demo_lines(run_dir: Path) -> list[str]:
    """What `wdtk demo` prints at its end: the audit of its run (written to RUN/audit), or why there is none."""
    try:
        return describe(audit(run_dir))
    except AuditError as exc:
        return [f"audit: {exc}"]


def report_figures(run_dir: Path) -> dict:
    """The audit for `wdtk report`: computed now when the run's site is at hand (nothing written), else the last
    `wdtk audit`'s RUN/audit/summary.json (it may have used --truth), else {"unavailable": why}."""
    run = Path(run_dir)
    try:
        return audit(run, write=False)
    except AuditError as exc:
        saved = run / "audit" / "summary.json"
        return json.loads(saved.read_text()) if saved.is_file() else {"unavailable": str(exc)}
