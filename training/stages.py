"""Every stage of a run as a function of a run directory and options, and STAGES: the one table of them.

A stage's options are its command's long options with underscores (`wdtk sample --max-questions` is `max_questions`)
plus a few the command has not (Spec.extras); their defaults are the command's own, read from its click options. The
functions call what the commands call (synthesise, graphqa_step, qa_filter.run, gates_step, sample.run, funnel,
export.run, gather and render, audit, build_repo and push). `wdtk run` calls them through a recipe
(training/runner.py), notebooks through `wdtk.stages` (training/api.py). A new option of a stage is a key in
schemas/recipe.schema.json and a line in its function here; a new synthesis method is a line in METHODS, in the
schema's synth.methods and in run_synth.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..schemas import WdtkError, mark_complete, read_records, write_records

# options that change how a stage runs, not what it makes: changing one never reruns a stage (`structured` is not one:
# it changes the replies, and the records' meta.constrained)
RUNTIME = ("api_base", "judge_api_base", "solver_api_base", "concurrency", "rpm", "tpm", "workers", "scheduler",
           "log_level", "timeout", "max_retries", "allow_incomplete")  # fmt: skip
METHODS = ("crawlqa", "e2hqa", "graphqa")  # synthesis methods, in the order they run (e2hqa hardens crawlqa's output)
DEFAULT_METHODS = ["crawlqa", "e2hqa"]  # graphqa when named, as `wdtk synth` runs it only with --graphqa


class Skipped(Exception):
    """A stage with nothing to do (no input records): the run goes on without it and without what needs it."""


# --- the stages ----------------------------------------------------------------------------------------------------


def run_site(run_dir: Path, restart: bool = False, *, pages: int, seed: int, seed_questions: int) -> dict:
    """Build the generated site in DIR/site, and questions its truth answers (SimpleQA rows) in
    DIR/site/_truth/seeds.jsonl (robots.txt keeps crawlers out of _truth/)."""
    from ..crawler.sitegen import build_site
    from ..crawler.sitegen.seeds import simple_seeds

    site_dir = run_dir / "site"
    if restart:
        shutil.rmtree(site_dir, ignore_errors=True)
    summary = build_site(site_dir, pages=pages, seed=seed)
    rows = simple_seeds(site_dir, seed_questions) if seed_questions else []
    (site_dir / "_truth" / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return summary | {"seed_questions": len(rows)}


def run_crawl(run_dir: Path, restart: bool = False, *, roots: list[str], settings: dict, **options) -> dict:
    """Crawl `roots` into DIR/crawl; with no roots, the generated site in DIR/site, served here while it runs."""
    options |= {"set": [f"{k}={v}" for k, v in settings.items()], "restart": restart}
    if roots:
        return _crawl(run_dir, {"roots": roots, **options})
    from ..crawler.sitegen import start_server

    site_dir = run_dir / "site"
    if not (site_dir / "index.html").is_file():
        raise WdtkError(f"crawl: no roots, and no generated site in {site_dir} to crawl: give crawl.roots or a site")
    server, base_url = start_server(site_dir)
    try:  # the port is new each time, so a crawl saved against the last one cannot resume: it starts again
        return _crawl(run_dir, {"roots": [base_url + "/"], **options, "restart": True})
    finally:
        server.shutdown()


def _crawl(run_dir: Path, options: dict) -> dict:
    """`wdtk crawl` in a child process (Scrapy's reactor runs once a process, and a notebook may crawl again)."""
    import subprocess
    import sys

    out = run_dir / "crawl"
    argv = [sys.executable, "-m", "wdtk.cli", "crawl", *command_line(BY_NAME["crawl"], options), "--out", str(out)]
    error = "the crawl failed (its log is above)"
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stderr:  # passed on as it comes (the progress), the error line kept
            sys.stderr.write(line)
            error = line.removeprefix("Error: ").strip() if line.startswith("Error: ") else error
    if proc.returncode:
        raise WdtkError(f"crawl: {error}")
    return json.loads((out / "crawl_summary.json").read_text(encoding="utf-8"))


def run_synth(run_dir: Path, restart: bool = False, *, methods: list[str], rewrites: int, max_groups: int | None,
              hops: str, max_walks: int | None, seeds: list[str], crawlqa: dict, e2hqa: dict, graphqa: dict,
              model: str, api_base: str | None, **run) -> dict:  # fmt: skip
    """CRAWLQA on DIR/crawl/pages, then E2HQA rounds on its output and the `seeds` files (also kept as they are in
    DIR/synth/seeds, for the filter); GRAPHQA's walks over the same pages when `methods` names it."""
    from ..synth.commands import graphqa_step, synthesise
    from ..synth.crawlqa import CrawlQAConfig
    from ..synth.e2hqa import E2HQAConfig, seed_record
    from ..synth.guards import check_records
    from ..synth.linkgraph import parse_hops
    from ..synth.options import difficulty_config

    if restart:
        shutil.rmtree(run_dir / "synth", ignore_errors=True)
    gate = difficulty_config(run)  # the difficulty gate inside each method (None unless synth.difficulty)
    check_records(seeds, "question", "seed questions", "JSONL rows with a question and an answer", empty_ok=True)
    rows = [row for path in seeds for row in read_records(path)]
    summary = {}
    if "crawlqa" in methods or "e2hqa" in methods:
        crawlqa_cfg = CrawlQAConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in crawlqa.items()})
        summary = synthesise(
            run_dir, rewrites if "e2hqa" in methods else 0, max_groups if "crawlqa" in methods else 0, model,
            api_base, crawlqa_cfg=crawlqa_cfg, e2hqa_cfg=E2HQAConfig(rewrites=rewrites, **e2hqa), extra_seeds=rows,
            difficulty=gate, **run,
        )  # fmt: skip
    if "graphqa" in methods:
        cfg = _graphqa_config(graphqa)
        summary["graphqa"] = graphqa_step(run_dir, parse_hops(hops), max_walks, model, api_base, cfg=cfg,
                                          difficulty=gate, **run)  # fmt: skip
    if rows:
        records = [seed_record(row) for row in rows]
        seed_dir = run_dir / "synth" / "seeds" / "records"
        write_records(records, seed_dir / "00000.jsonl.gz", kind="qa")
        mark_complete(seed_dir)  # the whole of this input: the filter refuses directories not marked so
        summary["seeds"] = {"stage": "seeds", "items": len(rows), "kept": len(records), "usage": {}}
    return summary


_WALK = ("walks_per_page", "seed")  # keys of synth.graphqa that are the walks' (WalkConfig), not GraphQAConfig's


def _graphqa_config(section: dict):
    """The GraphQAConfig of a recipe's synth.graphqa section (its hops come from synth.hops)."""
    from ..synth.graphqa import GraphQAConfig, RivalConfig
    from ..synth.linkgraph import WalkConfig

    walk = WalkConfig(**{k: v for k, v in section.items() if k in _WALK})
    rest = {k: v for k, v in section.items() if k not in (*_WALK, "no_uniqueness")}
    return GraphQAConfig(walk=walk, rivals=None if section.get("no_uniqueness") else RivalConfig(), **rest)


def run_filter(run_dir: Path, restart: bool = False, *, eval: list[str], ngram: int, threshold: float,
               num_perm: int, shingle: str, shingle_size: int, no_dedup: bool, min_hops: int, max_answer_words: int,
               no_uniqueness: bool, workers: int | None, scheduler: str | None, allow_incomplete: bool,
               judge: str | None, **gates) -> dict:  # fmt: skip
    """Quality, uniqueness, decontamination and dedup of DIR/synth/*/records into DIR/filter, then the LLM gates
    when asked: a second answer by search (`search`) and the difficulty gate (`difficulty`), as `wdtk filter`."""
    from ..filters.commands import gates_step
    from ..filters.decontam import DecontamConfig
    from ..filters.dedup import DedupConfig
    from ..filters.qa_filter import FilterConfig, run
    from ..filters.quality import QualityConfig
    from ..filters.uniqueness import UniquenessConfig
    from ..synth.guards import check_records
    from ..synth.parallel import dask_client

    sources = sorted((run_dir / "synth").glob("*/records"))
    if not sources:
        raise Skipped(f"no QA records under {run_dir / 'synth'}")
    check_records(eval, None, "evaluation questions")
    if restart:  # the gates resume in DIR/filter/gates: what they decided under other options goes
        shutil.rmtree(run_dir / "filter", ignore_errors=True)
    dedup = DedupConfig(threshold=threshold, num_perm=num_perm, shingle=shingle, ngram=shingle_size)
    cfg = FilterConfig(
        quality=QualityConfig(min_hops=min_hops, max_answer_words=max_answer_words),
        decontam=DecontamConfig(ngram=ngram),
        dedup=None if no_dedup else dedup,
        uniqueness=None if no_uniqueness else UniquenessConfig(),
    )
    out, evals = run_dir / "filter", [Path(e) for e in eval]
    with dask_client(workers, scheduler) as client:
        summary = run(sources, out, cfg, evals, dask_client=client, allow_incomplete=allow_incomplete)
    if not (gates["search"] or gates["difficulty"]):
        return summary
    judge = None if judge == "none" else judge
    return gates_step(out, workers, scheduler, judge_model=judge, **gates)


_AGENT = ("search_k", "max_observation_chars")  # keys of sample that are AgentConfig's, not its command's
_VISIT = ("visit_max_tokens", "visit_max_chars")  # ... and SampleConfig's


def run_sample(run_dir: Path, restart: bool = False, *, search: str, rollouts: int, max_questions: int | None,
               model: str, api_base: str | None, **options) -> dict:  # fmt: skip
    """ReAct rollouts for the filter's QA into DIR/sample (`wdtk sample`)."""
    from ..synth.options import agent_config, require_index, run_with_progress, stage_backends
    from ..synth.sample import SampleConfig, run

    sources = [run_dir / "filter" / "records"]
    if not _any_record(sources[0]):
        raise Skipped("the filter kept no QA to sample")
    require_index(search)
    given = {k: v for k in (*_AGENT, *_VISIT) if (v := options.pop(k)) is not None}  # null: the stage's default
    agent = replace(agent_config(options), **{k: v for k, v in given.items() if k in _AGENT})
    cfg = SampleConfig(rollouts=rollouts, agent=agent, **{k: v for k, v in given.items() if k in _VISIT})
    backends, opts = stage_backends(run_dir, model, api_base, search, **options)
    out = run_dir / "sample"
    return run_with_progress(
        "sample", out, restart, lambda p: run(sources, out, cfg, backends, opts, max_questions, p)
    )


def run_funnel(run_dir: Path, restart: bool = False, *, judge: str | None, judge_api_base: str | None,
               f1_threshold: float, max_actions: int, max_repeats: int, max_tokens: int,
               no_support_check: bool, allow_incomplete: bool) -> dict:  # fmt: skip
    """Validity, the judge, quality: DIR/sample's trajectories into DIR/funnel (`wdtk funnel`, without the exports)."""
    from ..filters.commands import funnel
    from ..filters.funnel import FunnelConfig

    sources = [run_dir / "sample" / "records"]
    if not _any_record(sources[0]):
        raise Skipped("no trajectories to judge")
    if restart:
        shutil.rmtree(run_dir / "funnel", ignore_errors=True)
    cfg = FunnelConfig(max_actions=max_actions, max_repeats=max_repeats, max_tokens=max_tokens,
                       require_support=not no_support_check)  # fmt: skip
    judge = None if judge == "none" else judge
    return funnel(run_dir, sources, None, cfg, judge, judge_api_base if judge else None, f1_threshold, export=False,
                  allow_incomplete=allow_incomplete)  # fmt: skip


def run_export(run_dir: Path, restart: bool = False) -> dict:
    """The SFT, WebDancer and RL sets from DIR/funnel into DIR/export (`wdtk export`)."""
    from ..filters.export import describe_export, run

    if not (run_dir / "funnel" / "records").is_dir():
        raise Skipped("no funnel output to export")
    summary = run(run_dir / "funnel", run_dir / "export")
    print(describe_export(summary, run_dir / "export"))
    return summary


def run_report(run_dir: Path, restart: bool = False) -> dict:
    """DIR/report.html (`wdtk report`)."""
    from ..report.gather import gather
    from ..report.html import render

    out = run_dir / "report.html"
    page = render(gather(run_dir))
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return {"stage": "report", "path": str(out), "kb": len(page.encode()) // 1024 + 1}


def run_audit(run_dir: Path, restart: bool = False, *, truth: str | None) -> dict:
    """The run against the generated site's ground truth, into DIR/audit (`wdtk audit`)."""
    from ..report.audit import AuditError, audit, describe

    try:
        summary = audit(run_dir, Path(truth) if truth else None)
    except AuditError as exc:
        raise Skipped(str(exc)) from None
    print("\n".join(describe(summary)))
    return summary


def run_push(run_dir: Path, restart: bool = False, *, repo_id: str | None, out: str | None, language: list[str],
             private: bool, revision: str | None, commit_message: str | None, **card) -> dict:  # fmt: skip
    """The run as a dataset repo: written to `out` (default DIR/hub), uploaded to `repo_id` when given."""
    from .push import build_repo, push

    card["languages"] = tuple(language)
    try:
        if not repo_id:
            return build_repo(run_dir, Path(out or run_dir / "hub"), **card)
        return push(run_dir, repo_id, None, private, local_dir=out, revision=revision, commit_message=commit_message,
                    **card)  # fmt: skip
    except (FileNotFoundError, FileExistsError, PermissionError) as exc:  # nothing to push, a foreign tree, no token
        raise WdtkError(f"push: {exc}") from None


def _any_record(path: Path) -> bool:
    return path.exists() and next(iter(read_records(path)), None) is not None


# --- what a stage prints when done ---------------------------------------------------------------------------------


def _counts(summary: dict) -> str:
    return f"kept {summary.get('kept', 0)} of {summary.get('items', summary.get('in', 0))}"


DESCRIBE: dict[str, Callable[[dict], str]] = {
    "site": lambda s: f"{s['pages']} pages, {s['seed_questions']} seed questions",
    "crawl": lambda s: f"{s.get('pages', 0)} pages",
    "synth": lambda s: "; ".join(f"{name} {_counts(x)}" for name, x in s.items()),
    "filter": _counts,
    "sample": lambda s: f"{s['kept']} trajectories for {s.get('questions', s['items'])} questions",
    "funnel": lambda s: f"kept {s['kept']} of {s['trajectories']} trajectories; {s['rl_pool']} to the RL pool",
    "export": lambda s: ", ".join(f"{k} {s[k]}" for k in ("sft", "webdancer", "rl")),
    "report": lambda s: f"{s['path']} ({s['kb']} KB)",
    "audit": lambda s: f"{s.get('qa', {}).get('all', {}).get('n', 0)} QA audited",
    "push": lambda s: ", ".join(f"{n} {c['rows']} rows" for n, c in s["configs"].items()),
}


# --- the table -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One stage: its function, the command whose options are its keys, what it reads and writes."""

    name: str
    run: Callable[..., dict]
    command: str  # "module:attribute" of the click command whose options are this stage's keys (see _commands)
    skip: tuple[str, ...] = ()  # that command's options a recipe does not set (the run sets them itself)
    extras: dict = field(default_factory=dict)  # keys the command has not, with their defaults
    needs: tuple[str, ...] = ()  # stages whose output it reads: when one is skipped, so is this one
    after: tuple[str, ...] = ()  # stages it reports on: when one reruns, so does this one
    outputs: tuple[str, ...] = ()  # what it leaves under DIR; a stage whose output is gone runs again
    optional: bool = False  # off unless the recipe has its section
    models: tuple[tuple[str, str], ...] = ()  # (model key, endpoint key) of the LLMs it may call
    calls: Callable[[dict], tuple] | None = None  # of those, the ones its options make it call (None: all)

    def called(self, options: dict) -> tuple[tuple[str, str], ...]:
        """(model key, endpoint key) of the LLMs the stage calls with these options."""
        return self.models if self.calls is None else self.calls(options)


def _filter_calls(o: dict) -> tuple[tuple[str, str], ...]:
    """The filter calls models in its gates only: its model for a second answer, a solver and judge for difficulty."""
    if o["difficulty"]:
        return FILTER_MODELS
    return FILTER_MODELS[:1] if o["search"] else ()


LLM = (("model", "api_base"),)
FILTER_MODELS = (*LLM, ("solver_model", "solver_api_base"), ("judge", "judge_api_base"))
_COMMON = ("dir", "restart", "sources", "legacy_dir")  # the run sets these itself
STAGES = (
    Spec("site", run_site, "crawler.commands:site_build", ("directory",), {"seed_questions": 0},
         outputs=("site/_truth/site.json", "site/_truth/seeds.jsonl"), optional=True),
    Spec("crawl", run_crawl, "crawler.commands:crawl_cmd", ("out", "set"), {"settings": {}}, needs=("site",),
         outputs=("crawl/pages",)),
    Spec("synth", run_synth, "synth.commands:synth", ("graphqa",),  # --graphqa is "graphqa" in methods
         {"methods": DEFAULT_METHODS, "seeds": [], "crawlqa": {}, "e2hqa": {}, "graphqa": {}}, needs=("crawl",),
         after=("site",), outputs=("synth", "index/wdtk_index.json"), models=LLM),
    Spec("filter", run_filter, "filters.commands:filter_cmd", ("out", "kind"), needs=("synth",),
         outputs=("filter/records",), models=FILTER_MODELS, calls=_filter_calls),
    Spec("sample", run_sample, "synth.commands:sample", ("out",), dict.fromkeys((*_AGENT, *_VISIT)),
         needs=("filter",), outputs=("sample/records",), models=LLM),
    Spec("funnel", run_funnel, "filters.commands:funnel_cmd", ("out", "no_export"), needs=("sample",),
         outputs=("funnel/records",), models=(("judge", "judge_api_base"),)),
    Spec("export", run_export, "filters.commands:export_cmd", ("out", "funnel_dir"), needs=("funnel",),
         outputs=("export/summary.json",)),
    Spec("report", run_report, "report.commands:report_cmd", ("out",),
         after=("site", "crawl", "synth", "filter", "sample", "funnel", "export"), outputs=("report.html",)),
    Spec("audit", run_audit, "report.commands:audit_cmd", (), needs=("site",),
         after=("crawl", "synth", "filter", "sample", "funnel"), outputs=("audit/summary.json",), optional=True),
    Spec("push", run_push, "training.commands:push_cmd", (),
         after=("synth", "filter", "sample", "funnel", "export"), optional=True),
)  # fmt: skip
BY_NAME = {s.name: s for s in STAGES}
MAIN_LINE = ("crawl", "synth", "filter", "sample", "funnel", "export")  # what `until` cuts short


def _commands() -> dict:
    """The modules of the stage commands, imported on use (they pull in their floors' stage modules)."""
    from ..crawler import commands as crawler
    from ..filters import commands as filters
    from ..report import commands as report
    from ..synth import commands as synth
    from . import commands as training

    return {"crawler.commands": crawler, "synth.commands": synth, "filters.commands": filters,
            "report.commands": report, "training.commands": training}  # fmt: skip


def command_options(spec: Spec, skip: bool = True) -> dict[str, tuple[str, object, object]]:
    """{recipe key: (click parameter name, default, the parameter)} of the stage's command, less what the recipe
    sets itself (unless not `skip`)."""
    module, attr = spec.command.split(":")
    command = getattr(_commands()[module], attr)
    out, ctx = {}, command.context_class(command)
    for param in command.params:
        key = max(param.opts, key=len).lstrip("-").replace("-", "_")
        if skip and (key in (*_COMMON, *spec.skip) or param.name in (*_COMMON, *spec.skip, "run_dir")):
            continue
        default = param.get_default(ctx)
        if isinstance(default, tuple | list) or param.multiple or param.nargs == -1:  # click's unset: none given
            default = list(default) if isinstance(default, tuple | list) else []
        elif not isinstance(default, str | int | float | bool | os.PathLike | None):
            default = None
        out[key] = (param.name, str(default) if isinstance(default, os.PathLike) else default, param)
    return out


def command_line(spec: Spec, options: dict) -> list[str]:
    """The stage command's arguments for `options` (recipe keys), as its --help spells them."""
    params, argv = command_options(spec, skip=False), []
    for key, value in options.items():
        param = params[key][2]
        flag = max(param.opts, key=len)
        if not flag.startswith("-"):  # an argument
            argv += [str(v) for v in value]
        elif getattr(param, "secondary_opts", None) and param.is_flag:
            argv.append(flag if value else param.secondary_opts[0])
        elif getattr(param, "is_flag", False):
            argv += [flag] if value else []
        elif param.multiple:
            argv += [a for v in value for a in (flag, str(v))]
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def defaults(name: str) -> dict:
    """Every key of stage `name` with its default: its command's options, then its extras."""
    spec = BY_NAME[name]
    found = {key: default for key, (_, default, _) in command_options(spec).items()}
    return {"enabled": not spec.optional, **found, **json.loads(json.dumps(spec.extras))}
