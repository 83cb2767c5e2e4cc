"""What a run will cost before it spends anything: LLM calls, tokens and dollars per LLM task (`wdtk run --dry-run`).

Counts of inputs come from what is on disk where a stage is done (pages crawled, QA kept), else from the recipe's
limits. Per-item averages (calls per page group, seed or trajectory; tokens per call; records kept per item) come
from the stage summaries of earlier runs (`usage` in each summary.json: this run directory's, and those named with
--history), else from conservative defaults (DEFAULTS: upper bounds from the options, e.g. every rollout using all of
max_calls). Cost is tokens times the model's price from litellm's price map, where the model is in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..schemas import read_records

# (task, its stage, summary under a run directory, the stage's model key)
TASKS = (
    ("crawlqa", "synth", "synth/crawlqa/summary.json", "model"),
    ("e2hqa", "synth", "synth/e2hqa/summary.json", "model"),
    ("graphqa", "synth", "synth/graphqa/summary.json", "model"),
    ("gates", "filter", "filter/gates/summary.json", "model"),
    ("sample", "sample", "sample/summary.json", "model"),
    ("judge", "funnel", "funnel/summary.json", "judge"),
)
UNKNOWN_PAGES = 1000  # what a crawl with no page limit is counted as
RIVAL_READS = 5  # pages the LLM reads for a second answer (synth/rivals.py RivalConfig.max_candidates)
AGENT_CALLS = 16  # an agent try of the difficulty gate: 8 turns, each with a visit the model reads


def _defaults(task: str, o: dict) -> tuple[float, float, float, float]:
    """(calls per item, prompt tokens per call, completion tokens per call, records out per item): upper bounds."""
    if task == "crawlqa":
        c, pairs = o["crawlqa"], len(o["crawlqa"].get("types", (1, 2, 3))) * o["crawlqa"].get("per_type", 1)
        prompt = (1 + c.get("max_sublinks", 4)) * c.get("max_page_chars", 2500) / 4 + 400
        return 1 + 3 * pairs, prompt, c.get("max_tokens", 1024), pairs  # a generation, then checks per pair
    if task == "e2hqa":
        e = o["e2hqa"]
        return 1 + 5 * o["rewrites"], e.get("max_page_chars", 2500) / 4 + 800, e.get("max_tokens", 512), 1
    if task == "graphqa":  # per walk: its pages' facts, the question, a check per claim, the pages read for a rival
        g, pages = o["graphqa"], _hops(o)[1] + 1
        return 2 * pages + 1 + RIVAL_READS, g.get("max_page_chars", 3000) / 4 + 500, g.get("max_tokens", 1024), 1
    if task == "gates":  # per question: the pages read for a rival; the solver's tries, each judged
        tries = (o["attempts"] + o["agent_attempts"]) * o["difficulty"]
        solver = (o["attempts"] + AGENT_CALLS * o["agent_attempts"]) * o["difficulty"]
        return RIVAL_READS * bool(o["search"]) + solver + tries * (o["judge"] != "none"), 1000, 256, 1
    if task == "sample":  # per trajectory: every turn used, each with a visit read by the model
        return 2 * o["max_calls"], o["max_context_tokens"] / 2, o["max_new_tokens"] / 2, 1
    return (0 if o["judge"] == "none" else 1), 500, 256, 1


@dataclass
class Measured:
    """Sums over earlier runs' summaries of one task."""

    items: int = 0
    kept: int = 0
    calls: int = 0
    paid: int = 0  # calls that reached the model (not cache hits, not errors)
    prompt: int = 0
    completion: int = 0
    rounds: int = 0  # items x E2HQA rounds, to scale to another number of rounds
    dirs: list = field(default_factory=list)


def measure(dirs: list[Path]) -> dict[str, Measured]:
    """Per task (and "filter": in, kept), the sums of every run directory's stage summary."""
    found: dict[str, Measured] = {}
    for run in dirs:
        rewrites = _recorded_option(run, "synth", "rewrites")
        for task, _, rel, _ in (*TASKS, ("filter", "filter", "filter/summary.json", None)):
            s = _json(run / rel)
            # an item: a page group, a seed, a trajectory (sample's are counted by what it kept), QA filtered
            items = s.get("trajectories", s.get("kept" if task == "sample" else "items", s.get("in", 0))) if s else 0
            if not items:
                continue
            m = found.setdefault(task, Measured())
            usage = [u for u in (s.get("usage") or {}).values()]
            m.items += items
            m.kept += s.get("gates", {}).get("items", s.get("kept", 0))  # the filter's kept before its LLM gates
            m.calls += sum(u.get("calls", 0) for u in usage)
            m.paid += sum(u.get("calls", 0) - u.get("cache_hits", 0) - u.get("errors", 0) for u in usage)
            m.prompt += sum(u.get("prompt_tokens", 0) for u in usage)
            m.completion += sum(u.get("completion_tokens", 0) for u in usage)
            m.rounds += items * (rewrites or 0)
            m.dirs.append(str(run))
    return found


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        return {}


def _hops(synth: dict) -> tuple[int, int]:
    from ..synth.linkgraph import parse_hops

    return parse_hops(synth["hops"])


def _recorded_option(run: Path, stage: str, key: str):
    state = _json(run / "recipe_state.json").get("stages", {})
    return (state.get(stage) or {}).get("options", {}).get(key)


# --- the estimate --------------------------------------------------------------------------------------------------


def estimate(resolved: dict, steps: list, dirs: list[Path]) -> dict:
    """{"rows": one per LLM task, "to_spend": totals of the tasks still to run, "whole_run": totals of all}."""
    measured, action = measure(dirs), {s.name: s.action for s in steps}
    run, synth = Path(resolved["dir"]), resolved["synth"]
    done = {name: action[name] == "done" for name in action}
    rows, flow = [], _Flow(run, done)
    pages = flow.count("crawl/pages") if done["crawl"] or action["crawl"] == "off" else None
    pages = pages if pages is not None else resolved["crawl"]["max_pages"] or UNKNOWN_PAGES
    groups = _groups(run / "crawl" / "pages", synth) if done["crawl"] else pages
    groups = min(groups, synth["max_groups"] if synth["max_groups"] is not None else groups)
    on = action["synth"] != "off"
    seeds = sum(_rows(Path(p), resolved) for p in synth["seeds"])
    crawlqa = _row("crawlqa", groups if on and "crawlqa" in synth["methods"] else 0, synth, measured, action)
    made = flow.kept("synth/crawlqa/summary.json", crawlqa)
    rounds = synth["rewrites"] if on and "e2hqa" in synth["methods"] else 0
    e2hqa = _row("e2hqa", made + seeds if rounds else 0, synth, measured, action)
    walks = pages * synth["graphqa"].get("walks_per_page", 1)
    walked = on and "graphqa" in synth["methods"]
    graphqa = _row("graphqa", min(walks, synth["max_walks"] or walks) if walked else 0, synth, measured, action)
    made += flow.kept("synth/e2hqa/summary.json", e2hqa) + flow.kept("synth/graphqa/summary.json", graphqa)
    checked = (made + seeds) * _keep(measured.get("filter"), 1.0)
    flt = resolved["filter"]
    gated = action["filter"] != "off" and (flt["search"] or flt["difficulty"])
    gates = _row("gates", checked if gated else 0, flt, measured, action)
    filtered = flow.kept("filter/summary.json", None, gates["out"] if gated else checked)
    limit = resolved["sample"]["max_questions"]
    questions = min(filtered, limit) if limit is not None else filtered
    sample = _row("sample", questions * resolved["sample"]["rollouts"], resolved["sample"], measured, action)
    judged = flow.kept("sample/summary.json", sample) if action["sample"] != "off" else 0
    judge = _row("judge", judged if action["funnel"] != "off" else 0, resolved["funnel"], measured, action)
    used = {"graphqa": walked, "gates": gated}  # the others show while their stage runs, even with nothing to do
    tasks = (crawlqa, e2hqa, graphqa, gates, sample, judge)
    rows = [r for r in tasks if used.get(r["task"], True) and (r["items"] or r["todo"])]
    todo = [r for r in rows if r["todo"]]
    crawl = resolved["crawl"]
    where = f"{len(crawl['roots'])} root(s)" if crawl["roots"] else "the generated site"
    inputs = {
        "site": f"{resolved['site']['pages']} pages, seed {resolved['site']['seed']}",
        "crawl": f"{where}, {'up to ' if not done['crawl'] else ''}{pages} pages",
        "synth": f"~{groups} page groups, {seeds} seeds, {rounds} E2HQA rounds"
        + (f", ~{graphqa['items']} graphqa walks" if walked else ""),
        "filter": f"~{made + seeds:.0f} QA" + (", LLM gates" if gated else ""),
        "sample": f"~{questions:.0f} questions x {resolved['sample']['rollouts']} rollouts",
        "funnel": f"~{judged:.0f} trajectories, judge {resolved['funnel']['judge']}",
    }
    return {"pages": pages, "inputs": inputs, "rows": rows, "to_spend": _total(todo), "whole_run": _total(rows)}


class _Flow:
    """Counts on disk where a stage is done, else the estimate."""

    def __init__(self, run: Path, done: dict) -> None:
        self.run, self.done = run, done

    def count(self, rel: str) -> int | None:
        path = self.run / rel
        return sum(1 for _ in read_records(path)) if path.exists() else None

    def kept(self, rel: str, row: dict | None, guess: float = 0.0) -> float:
        stage = rel.split("/")[0]
        summary = _json(self.run / rel) if self.done.get(stage) else {}
        if summary:
            return summary.get("kept", 0)
        return row["out"] if row is not None else guess


def _groups(pages: Path, synth: dict) -> int:
    from ..synth.crawlqa import CrawlQAConfig, page_groups

    cfg = CrawlQAConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in synth["crawlqa"].items()})
    return sum(1 for _ in page_groups(read_records(pages, kind="page"), cfg)) if pages.exists() else 0


def _rows(path: Path, resolved: dict) -> int:
    if path.exists():
        return sum(1 for _ in read_records(path))
    return resolved["site"]["seed_questions"] if path.name == "seeds.jsonl" else 0  # the site stage writes these


def _keep(m: Measured | None, default: float) -> float:
    return m.kept / m.items if m and m.items else default


def _row(task: str, items: float, options: dict, measured: dict, action: dict) -> dict:
    stage = next(s for t, s, _, _ in TASKS if t == task)
    model = options["judge" if task == "judge" else "model"]
    calls, prompt, completion, out = _defaults(task, options)
    m, basis = measured.get(task), "default (upper bound)"
    if m and m.items:
        calls = m.calls / m.items
        if task == "e2hqa" and m.rounds:  # per seed and round, times this recipe's rounds
            calls = m.calls / m.rounds * options["rewrites"]
        if m.paid:
            prompt, completion = m.prompt / m.paid, m.completion / m.paid
        out, basis = m.kept / m.items, f"measured: {m.items} items in {', '.join(dict.fromkeys(m.dirs))}"
    n_calls = items * calls
    tokens = (n_calls * prompt, n_calls * completion)
    return {"task": task, "stage": stage, "model": model, "items": round(items), "calls": round(n_calls),
            "prompt_tokens": round(tokens[0]), "completion_tokens": round(tokens[1]), "cost": _cost(model, *tokens),
            "basis": basis, "todo": action[stage] in ("run", "resume", "rerun"), "out": items * out}  # fmt: skip


def _cost(model: str | None, prompt: float, completion: float) -> float | None:
    """USD at the model's listed price; 0 for a model run here; None when its price is unknown."""
    from ..synth.llm.pricing import price

    if model is None:  # the one model an endpoint serves, named only when the run starts
        return None
    if model == "none" or model.startswith(("embedded", "local:", "vllm:")):
        return 0.0
    name = str(model).split(":", 1)[-1]
    for candidate in (name, name.split("/", 1)[-1]):
        per_in, per_out = price(candidate, 1, 0), price(candidate, 0, 1)
        if per_in or per_out:
            return prompt * per_in + completion * per_out
    return None


def _total(rows: list[dict]) -> dict:
    costs = [r["cost"] for r in rows if r["calls"]]
    return {
        "calls": sum(r["calls"] for r in rows),
        "prompt_tokens": sum(r["prompt_tokens"] for r in rows),
        "completion_tokens": sum(r["completion_tokens"] for r in rows),
        "cost": sum(c for c in costs if c is not None),
        "priced": all(c is not None for c in costs),
    }


# --- printing ------------------------------------------------------------------------------------------------------


def describe(steps: list, figures: dict, source: str, run_dir: Path) -> list[str]:
    """The dry run's lines: the plan, then the estimate per task and in all."""
    lines = [f"plan of {source} in {run_dir} (dry run: nothing runs, nothing is written)"]
    for s in steps:
        inputs = figures["inputs"].get(s.name, "") if s.action != "off" else ""
        lines.append(f"  {s.name:<7} {s.action:<7} {inputs:<48} {s.why}".rstrip())
    lines.append("LLM estimate (calls, tokens in / out, cost):")
    for r in figures["rows"]:
        what = "to spend" if r["todo"] else "done    "
        lines.append(f"  {r['stage'] + '/' + r['task']:<14} {what} {r['items']:>6} items  {_figures(r)}"
                     f"  [{r['model'] or 'served model'}; {r['basis']}]")  # fmt: skip
    for key, label in (("to_spend", "to spend"), ("whole_run", "whole run")):
        lines.append(f"  {label:<23} {_figures(figures[key])}")
    if any(r["basis"].startswith("default") for r in figures["rows"]):
        lines.append("  defaults are upper bounds: a small pilot run named with --history gives measured averages")
    return lines


def _figures(r: dict) -> str:
    cost = r["cost"]
    money = "price unknown" if cost is None else f"${cost:,.4f}" + ("" if r.get("priced", True) else "+ unpriced")
    return f"~{r['calls']:,} calls, ~{r['prompt_tokens']:,} / ~{r['completion_tokens']:,} tokens, {money}"
