"""Render the figures of `wdtk report` (report/gather.py gathers them) as one self-contained HTML page.

Inline CSS and inline SVG charts only: no scripts, no fonts or images fetched, so the page opens offline and
can be mailed around. Every string that came from a record went through `esc`: it is web text, untrusted.
"""

from __future__ import annotations

from collections import Counter

from .charts import COLORS, Raw, esc, funnel_svg, hbars, histogram_svg, num, table

DROP = "#d0694f"
CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1f2933;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:24px 28px 48px}
header h1{margin:0;font-size:26px;letter-spacing:-.01em}
header .sub{color:#52606d;margin:2px 0 16px;word-break:break-all}
.tiles{display:grid;grid-template-columns:repeat(6,1fr);gap:12px;margin:12px 0 8px}
.tile{background:#fff;border:1px solid #e1e4e8;border-radius:10px;padding:10px 14px}
.tile b{display:block;font-size:24px;font-variant-numeric:tabular-nums}
.tile span{color:#616e7c;font-size:13px}
nav{margin:14px 0 4px;font-size:13px}
nav a{color:#3b6fd8;text-decoration:none;margin-right:14px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:12px;padding:18px 22px;margin:18px 0}
h2{margin:0 0 12px;font-size:19px}
h3{margin:14px 0 6px;font-size:15px;color:#323f4b}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:8px 28px}
.note{color:#616e7c;font-size:13px}
.notrun{color:#9aa5b1;font-style:italic}
.warn{background:#fff4e5;border:1px solid #f0c36d;border-radius:8px;padding:8px 12px;margin:10px 0}
table{border-collapse:collapse;font-size:14px;margin:4px 0 8px}
th,td{padding:4px 12px 4px 0;text-align:left;vertical-align:top;border-bottom:1px solid #eef0f2}
th{color:#52606d;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;border-top:2px solid #d3d7db}
.m22 td{width:120px;height:56px;text-align:center;vertical-align:middle;font-size:22px;border:1px solid #e1e4e8}
.m22 th{vertical-align:middle;padding-right:14px}
.m22 .agree{background:#e6f4ec}.m22 .disagree{background:#fdf0e6}
.big{font-size:34px;font-weight:700}
code,.mono{font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
details{border:1px solid #e1e4e8;border-radius:8px;margin:8px 0;padding:6px 12px}
summary{cursor:pointer;font-weight:600}
ol.steps{padding-left:22px}ol.steps li{margin:6px 0}
.think{color:#616e7c;font-style:italic}
.tool{background:#f4f5f7;border-radius:6px;padding:4px 8px;white-space:pre-wrap;word-break:break-word}
.tag{display:inline-block;font-size:11px;font-weight:700;text-transform:uppercase;color:#fff;border-radius:4px;
padding:0 6px;margin-right:6px;background:#7b8794}
.tag.call{background:#3b6fd8}.tag.answer{background:#2f9e6e}
.cluster{border-left:3px solid #3b6fd8;padding:2px 0 2px 12px;margin:10px 0}
.cluster ul{margin:2px 0;padding-left:18px;color:#52606d}
.wide{table-layout:fixed;width:100%}.wide td{overflow-wrap:anywhere}.wide th:first-child{width:42%}
details,.cluster,.warn{overflow-wrap:anywhere}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
"""


NOT_RUN = '<p class="notrun">not run</p>'


def section(sid: str, title: str, body: str) -> str:
    """One titled card of the page."""
    return f'<section id="{sid}"><h2>{esc(title)}</h2>{body}</section>'


def _header(f: dict) -> str:
    steps = {s["key"]: s["count"] for s in f["steps"]}
    synth = [steps[k] for k in ("crawlqa", "e2hqa") if steps[k] is not None]
    agreement = (f.get("judge") or {}).get("agreement")
    tiles = [
        ("pages crawled", num(steps["pages"])),
        ("QA synthesised", num(sum(synth)) if synth else "–"),
        ("QA after filter", num(steps["filtered"])),
        ("trajectories sampled", num(steps["sampled"])),
        ("trajectories kept", num(steps["kept"])),
        ("judge agreement", "–" if agreement is None else f"{100 * agreement:.0f}%"),
    ]
    tile_html = "".join(f'<div class="tile"><b>{v}</b><span>{esc(k)}</span></div>' for k, v in tiles)
    nav = "".join(f'<a href="#{sid}">{esc(t)}</a>' for sid, t in SECTIONS)
    warnings = "".join(f'<div class="warn">{esc(w)}</div>' for w in f.get("warnings", []))
    return (
        f'<header><h1>wdtk run report</h1><div class="sub mono">{esc(f["run_dir"])}</div>'
        f'<div class="tiles">{tile_html}</div></header><nav>{nav}</nav>{warnings}'
    )


def _run_info(f: dict) -> str:
    cmds = f.get("commands") or []
    record_versions = sorted({v for p in f["provenance"].values() for v in p.get("wdtk_version", {})})
    cmd_versions = sorted({c["wdtk_version"] for c in cmds if c.get("wdtk_version")})
    rows = [
        ["Run directory", Raw(f'<span class="mono">{esc(f["run_dir"])}</span>')],
        ["Report generated", f["generated"]],
        ["Run started", cmds[0].get("started") if cmds else "unknown (no commands.jsonl)"],
        ["wdtk (this report)", f["wdtk_version"]],
        ["wdtk (commands / records)", ", ".join(sorted({*cmd_versions, *record_versions})) or "unknown"],
    ]
    out = f'<div class="grid"><div>{table([], rows)}</div><div>'
    prov = [[role, _values(p.get("model")), _values(p.get("prompt_version"))] for role, p in f["provenance"].items()]
    if prov:
        out += table(["made by", "model", "prompt version"], prov)
    out += "</div></div>"
    if cmds:
        latest = cmds[-30:]  # a long-lived directory can have hundreds
        lines = "".join(
            f'<li><span class="note">{esc(c.get("started"))}</span> '
            f"<code>{esc(' '.join(map(str, c.get('argv') or [])))}</code></li>"
            for c in latest
        )
        what = f"{len(cmds)} wdtk command{'' if len(cmds) == 1 else 's'} run on this directory"
        if len(latest) < len(cmds):
            what += f" (the latest {len(latest)} shown)"
        out += f"<details><summary>{what}</summary><ol>{lines}</ol></details>"
    return out


def _values(counts: dict | None) -> Raw:
    """'model-a (120), model-b (3)': the values seen, most common first."""
    if not counts:
        return Raw('<span class="note">unknown</span>')
    return Raw(", ".join(f"<code>{esc(k)}</code> ({v:,})" for k, v in counts.items()))


def _drops(f: dict) -> str:
    cards = []
    for row in f["drops"]:
        reasons = row["reasons"]
        if reasons is None:
            body = NOT_RUN
        elif not reasons:
            body = '<p class="note">nothing dropped</p>'
        else:
            body = hbars(sorted(reasons.items(), key=lambda kv: -kv[1]), DROP, width=500)
        cards.append(f"<div><h3>{esc(row['stage'])}</h3>{body}</div>")
    return f'<div class="grid">{"".join(cards)}</div>'


def _types(f: dict) -> str:
    sources = {"CRAWLQA": f["synth"]["crawlqa"], "E2HQA": f["synth"]["e2hqa"]}
    if f["synth"].get("seeds"):
        sources["seeds"] = f["synth"]["seeds"]
    sources["after filter"] = f["filter"]
    ran = {name: s["types"] for name, s in sources.items() if s}
    if not ran:
        return NOT_RUN
    names = sorted({t for types in ran.values() for t in types})
    rows = [[t, *(types.get(t, 0) for types in ran.values())] for t in names]
    synthesised = Counter({**ran.get("CRAWLQA", {})}) + Counter(ran.get("E2HQA", {}))
    chart_src = ran.get("after filter") or synthesised
    chart = hbars(sorted(chart_src.items(), key=lambda kv: -kv[1]), COLORS["QA"], width=460, label_w=150)
    caption = "after filter" if "after filter" in ran else "all synthesised"
    note = "".join(f'<p class="note">{esc(n)}: not run</p>' for n, s in sources.items() if not s)
    return (
        f'<div class="grid"><div>{table(["type", *ran], rows, numeric=set(range(1, len(ran) + 1)))}{note}</div>'
        f"<div><h3>QA per type ({caption})</h3>{chart}</div></div>"
    )


def _hops(f: dict) -> str:
    e2 = f["synth"]["e2hqa"]
    if not e2:
        return NOT_RUN
    hist = e2["hops"]
    rows = [[b["label"], b["count"], f"{100 * b['count'] / hist['n']:.0f}%"] for b in hist["bins"] if b["count"]]
    return (
        f'<div class="grid"><div>{histogram_svg(hist, COLORS["QA"], "rewrite hops per E2HQA question")}</div>'
        f'<div>{table(["hops", "questions", "share"], rows, {1, 2})}<p class="note">Each hop replaces an entity '
        "in the question with a description found by search: more hops, harder questions.</p></div></div>"
    )


def _trajectories(f: dict) -> str:
    sample, kept = f["sample"], (f["funnel"] or {}).get("kept_stats")
    if not sample:
        return NOT_RUN
    charts = (
        f'<div class="grid"><div><h3>Actions (tool calls) per trajectory</h3>'
        f"{histogram_svg(sample['actions'], COLORS['trajectories'], 'actions per sampled trajectory')}</div>"
        f"<div><h3>Tokens per trajectory</h3>"
        f"{histogram_svg(sample['tokens'], COLORS['trajectories'], 'tokens per sampled trajectory')}</div></div>"
    )
    rows = []
    for what in ("actions", "tokens"):
        for name, stats in (("sampled", sample), ("kept", kept)):
            if stats and stats.get("records"):
                h = stats[what]
                rows.append(
                    [f"{what}, {name}", h.get("n", 0), h.get("mean"), h.get("median"), h.get("p90"), h.get("max")]
                )
    summary = table(["per trajectory", "n", "mean", "median", "p90", "max"], rows, {1, 2, 3, 4, 5})
    ends = hbars(list(sample["termination"].items()), COLORS["trajectories"], width=500)
    return (
        charts + f'<div class="grid"><div><h3>Summary</h3>{summary}</div>'
        f"<div><h3>How rollouts ended (termination)</h3>{ends}</div></div>"
    )


def _dedup(f: dict) -> str:
    flt = f["filter"]
    if not flt:
        return NOT_RUN
    d = flt["dedup"]
    if not d["clusters"]:
        return '<p class="note">no duplicates were found (or dedup was off).</p>'
    kinds = ", ".join(f"{n:,} {k}" for k, n in d["kinds"].items())
    head = (
        f'<p><span class="big">{d["clusters"]:,}</span> clusters of duplicate questions; '
        f"{d['duplicates']:,} duplicates dropped ({esc(kinds)}), one question kept per cluster.</p>"
    )
    sizes = histogram_svg(d["sizes"], COLORS["QA"], "questions per cluster (kept + duplicates)", width=460)
    examples = []
    for ex in d["examples"]:
        kept = (
            esc(ex["kept"])
            if ex["kept"]
            else f'<span class="note">id {esc(ex["kept_id"])}, not in filter/records</span>'
        )
        dups = "".join(
            f'<li>{esc(m["question"])} <span class="note">({esc(m["reason"])})</span></li>' for m in ex["duplicates"]
        )
        more = ex["size"] - 1 - len(ex["duplicates"])
        dups += f'<li class="note">and {more:,} more</li>' if more > 0 else ""
        examples.append(
            f'<div class="cluster"><b>kept:</b> {kept} <span class="note">({ex["size"]:,} in cluster)</span>'
            f"<ul>{dups}</ul></div>"
        )
    return head + f'<div class="grid"><div>{sizes}</div><div><h3>Largest clusters</h3>{"".join(examples)}</div></div>'


def _judge(f: dict) -> str:
    j, funnel = f.get("judge"), f.get("funnel") or {}
    if not j:
        return NOT_RUN
    judge = funnel.get("judge") or {}
    who = ", ".join(f"{k} {v}" for k, v in judge.items()) or ", ".join(f"{n:,} {m}" for m, n in j["methods"].items())
    t = j["table"]
    if not j["compared"]:
        methods = ", ".join(f"{n:,} by {m}" for m, n in j["methods"].items())
        return f'<p class="note">{j["judged"]:,} judgements ({esc(methods)}): no judge verdict to compare.</p>'
    matrix = (
        '<table class="m22"><tr><th></th><th>exact match: yes</th><th>exact match: no</th></tr>'
        f'<tr><th>judge: correct</th><td class="agree">{t["judge_yes/exact_yes"]:,}</td>'
        f'<td class="disagree">{t["judge_yes/exact_no"]:,}</td></tr>'
        f'<tr><th>judge: incorrect</th><td class="disagree">{t["judge_no/exact_yes"]:,}</td>'
        f'<td class="agree">{t["judge_no/exact_no"]:,}</td></tr></table>'
    )
    rate = (
        f'<p><span class="big" id="agreement">{100 * j["agreement"]:.1f}%</span> agreement over '
        f'{j["compared"]:,} judged predictions</p><p class="note">judge: {esc(who)}</p>'
    )
    stated = funnel.get("judge_agreement")
    if stated:
        agree, judged = num(stated.get("agree_with_exact")), num(stated.get("judged"))
        rate += f'<p class="note">funnel/summary.json: {agree} of {judged} agree</p>'
    rows = [
        [d["question"], d["gold"], d["prediction"], "correct" if d["correct"] else "incorrect", d["rationale"]]
        for d in j["disagreements"]
    ]
    shown = "<h3>Where they disagree</h3>" + table(
        ["question", "gold", "prediction", "judge", "rationale"], rows, cls="wide"
    )
    return f'<div class="grid"><div>{matrix}</div><div>{rate}</div></div>' + (shown if rows else "")


def _usage(f: dict) -> str:
    rows = f["usage"]
    if not rows:
        return '<p class="note">no LLM usage recorded (no stage summaries with usage).</p>'
    keys = ("calls", "cache_hits", "prompt_tokens", "completion_tokens")
    body = [[r["stage"], r["substage"], *(r[k] for k in keys), f"${r['cost']:.4f}"] for r in rows]
    total = ["total", "", *(sum(r[k] for r in rows) for k in keys), f"${sum(r['cost'] for r in rows):.4f}"]
    head = ["stage", "sub-stage", "calls", "cache hits", "prompt tokens", "completion tokens", "cost"]
    return table(head, [*body, total], numeric={2, 3, 4, 5, 6}, total=True)


def _examples(f: dict) -> str:
    if not f.get("funnel"):
        return NOT_RUN
    if not f["examples"]:
        return '<p class="note">no trajectory was kept.</p>'
    kept = f["funnel"].get("kept_stats", {}).get("records", 0)
    out = [f'<p class="note">{len(f["examples"])} of {kept:,} kept trajectories, one per question; click to open.</p>']
    for ex in f["examples"]:
        steps = "".join(_step(s) for s in ex["steps"])
        stats = ", ".join(f"{k} {num(v)}" for k, v in ex["stats"].items())
        out.append(
            f'<details><summary>{esc(ex["question"])} <span class="note">→ {esc(ex["prediction"]) or "–"} · '
            f"{num(ex['stats'].get('actions'))} actions</span></summary>"
            f"<p><b>gold:</b> {esc(ex['answer'])} · <b>prediction:</b> {esc(ex['prediction']) or '–'} · "
            f'<span class="note">{esc(ex["termination"])}; {esc(stats)}; id {esc(ex["id"])}</span></p>'
            f'<ol class="steps">{steps}</ol></details>'
        )
    return "".join(out)


def _step(s: dict) -> str:
    if s["kind"] == "think":
        return f'<li class="think">{esc(s["text"])}</li>'
    if s["kind"] == "call":
        return f'<li><span class="tag call">{esc(s["name"])}</span><code>{esc(s["text"])}</code></li>'
    if s["kind"] == "tool":
        return (
            f'<li><span class="tag">{esc(s["name"])} result</span><div class="tool mono">{esc(s["text"])}</div></li>'
        )
    return f'<li><span class="tag answer">answer</span>{esc(s["text"])}</li>'


def _audit(f: dict) -> str:
    a = f.get("audit") or {"unavailable": "not gathered"}
    if "unavailable" in a:
        return f'<p class="notrun">not available: {esc(a["unavailable"])}</p>'
    labels = {"all": "all", "rejected": "dropped by the checks", "kept": "kept by the checks",
              "final": "with a kept trajectory"}  # fmt: skip
    keys = ("n", "correct", "unique", "leak", "unresolved", "good")
    rows = [[label, *(a["qa"][g][k] for k in keys)] for g, label in labels.items()]
    qa = table(["QA records", "n", "correct", "unique", "leaked", "unresolved", "good"], rows, {1, 2, 3, 4, 5, 6})
    p, y, t, tok = a["precision"], a["yield"], a["trajectories"], a["tokens"]
    pct = lambda x: "–" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    head = (
        f'<p><span class="big" id="precision">{pct(p["final"])}</span> of the questions with a kept trajectory are '
        f"correct, have one answer and do not leak it ({num(a['qa']['final']['good'])} of "
        f"{num(a['qa']['final']['n'])}); of the QA kept by the checks: {pct(p['kept'])}.</p>"
        f"<p class=\"note\">Judged against the site's ground truth ({num(a['facts'])} facts): each record's claims "
        "matched to facts.json; unresolved records count as not good.</p>"
    )
    steps = [["QA written (kept or not)", y["synthesised"]], ["kept by the checks", y["kept"]],
             ["with a kept trajectory", y["final"]], ["kept trajectories", y["kept_trajectories"]]]  # fmt: skip
    hops = [[src, r, h["n"], h["mean"]] for src, rs in a["hops"].items() for r, h in rs.items()]
    judge = [["judged against the truth", t["judged"]], ["agree", t["agree"]], ["false accepts", t["false_accepts"]],
             ["false rejects", t["false_rejects"]], ["… of them against a wrong gold", t["false_rejects_wrong_gold"]],
             ["answer in a tool response", t["in_tool_response"]]]  # fmt: skip
    dropped = [[r, d["n"], d["good"]] for r, d in a["dropped"].items()]
    usage = [
        ["total", tok["total"]],
        ["per kept QA", tok["per_kept_qa"]],
        ["per question kept", tok["per_final_question"]],
    ]
    return (
        head + f'<div class="grid"><div>{qa}<h3>Yield</h3>{table([], steps, {1})}</div>'
        f"<div><h3>Hops per question (claims from a named entity to the answer)</h3>"
        f"{table(['method', 'rewrite rounds', 'questions', 'mean hops'], hops, {1, 2, 3})}"
        f"<h3>Trajectories: the judge against the truth</h3>{table([], judge, {1})}"
        f"<h3>LLM tokens</h3>{table([], usage, {1})}</div></div>"
        f"<h3>What the checks dropped, and how much of it was good</h3>"
        f"{table(['reason', 'dropped', 'good by the truth'], dropped, {1, 2})}"
    )


def _funnel(f: dict) -> str:
    return (
        funnel_svg(f["steps"])
        + '<p class="note">Bars are scaled within each unit (pages, QA, trajectories, questions). '
        "Dashed: that stage has not run in this directory.</p>"
    )


SECTIONS = [
    ("run", "Run"),
    ("funnel", "Funnel"),
    ("drops", "Drop reasons"),
    ("audit", "Data quality (ground truth)"),
    ("types", "QA types"),
    ("hops", "E2HQA hops"),
    ("trajectories", "Actions and tokens"),
    ("dedup", "Dedup clusters"),
    ("judge", "Judge vs exact match"),
    ("usage", "LLM usage"),
    ("examples", "Example kept trajectories"),
]
_BODIES = {
    "run": _run_info,
    "funnel": _funnel,
    "drops": _drops,
    "audit": _audit,
    "types": _types,
    "hops": _hops,
    "trajectories": _trajectories,
    "dedup": _dedup,
    "judge": _judge,
    "usage": _usage,
    "examples": _examples,
}


def render(figures: dict) -> str:
    """The whole report page for `figures` (from report.gather): one HTML string, no scripts, no external URLs."""
    body = "".join(section(sid, title, _BODIES[sid](figures)) for sid, title in SECTIONS)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>wdtk report: {esc(figures['run_dir'])}</title><style>{CSS}</style></head>"
        f"<body><main>{_header(figures)}{body}"
        f'<p class="note">Generated {esc(figures["generated"])} by wdtk {esc(figures["wdtk_version"])}. '
        "This page has no scripts and loads nothing from the network.</p></main></body></html>\n"
    )
