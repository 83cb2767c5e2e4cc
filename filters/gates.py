"""The LLM gates of `wdtk filter`: answer uniqueness by search (synth/rivals.py) and the difficulty gate
(filters/difficulty.py), per record, after the cheap checks.

They cost LLM calls, so unlike the rest of the filter they run as a resumable stage (synth/parallel.run_stage) in
OUT/gates: a killed run resumes, and the response cache answers every call it had made. The filter's kept records are
the stage's input; the gates' survivors replace them in OUT/records (with meta.uniqueness and meta.difficulty), and
what they drop joins OUT/rejects as {"stage", "reason", "record"} (ambiguous with the rival found, too_easy with the
pass rates), so the audit and the report see them like any filter drop.

    summary = apply(out_dir, GatesConfig(rivals=RivalConfig(), difficulty=DifficultyConfig()), backends, opts)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..schemas import ShardWriter, read_records, write_records
from ..synth.parallel import Backends, RunOptions, Stage, run_stage
from ..synth.rivals import RivalConfig, find_rival
from .difficulty import DifficultyConfig, assess


@dataclass(frozen=True)
class GatesConfig:
    """Which gates run; None turns one off."""

    rivals: RivalConfig | None = None
    difficulty: DifficultyConfig | None = None

    def __bool__(self) -> bool:
        return self.rivals is not None or self.difficulty is not None


def _drop(reason: str, qa: dict, **detail) -> tuple[list, list]:
    return [], [{"stage": "filter", "reason": reason, "record": qa, **detail}]


async def gate_record(qa: dict, ctx) -> tuple[list[dict], list[dict]]:
    """The record (with what the gates found in its meta), or its reject: ambiguous first, then too_easy."""
    cfg: GatesConfig = ctx.config
    meta = dict(qa["meta"])
    if cfg.rivals is not None:
        rival, info = await find_rival(qa, ctx, cfg.rivals)
        meta["uniqueness"] = {"method": "search", **info}
        if rival:
            return _drop("ambiguous", {**qa, "meta": meta}, rival=rival)
    if cfg.difficulty is not None:
        reason, meta["difficulty"] = await assess(qa, ctx, cfg.difficulty)
        if reason:
            return _drop(reason, {**qa, "meta": meta})
    return [{**qa, "meta": meta}], []


def run(
    sources: list[Path],
    out_dir: Path,
    cfg: GatesConfig,
    backends: Backends,
    opts: RunOptions | None = None,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """The gates over qa records into out_dir (records/, rejects/, done/, summary.json), resuming an earlier run."""
    needs_search = cfg.rivals is not None or bool(cfg.difficulty and cfg.difficulty.agent_attempts)
    stage = Stage("gates", gate_record, cfg, "qa", backends, needs_search=needs_search)
    records = (r for source in sources for r in read_records(source))
    return run_stage(stage, records, out_dir, opts, progress)


def apply(filter_dir: Path, cfg: GatesConfig, backends: Backends, opts: RunOptions | None = None) -> dict:
    """Run the gates on filter_dir/records (in filter_dir/gates), then put their survivors in filter_dir/records and
    their drops in filter_dir/rejects; update and return filter_dir/summary.json."""
    out = filter_dir / "gates"
    gates = run([filter_dir / "records"], out, cfg, backends, opts)
    staged = filter_dir / "gated_records"  # complete before it replaces records/, so a crash leaves one or the other
    shutil.rmtree(staged, ignore_errors=True)
    write_records(_existing(out / "records"), staged, kind="qa")
    shutil.rmtree(filter_dir / "records", ignore_errors=True)
    staged.rename(filter_dir / "records")
    with ShardWriter(filter_dir / "rejects") as rejects:
        for r in _existing(out / "rejects"):
            rejects.write(r)
    summary = json.loads((filter_dir / "summary.json").read_text())
    dropped = dict(summary.get("dropped", {}))
    for reason, n in gates["rejected"].items():
        dropped[reason] = dropped.get(reason, 0) + n
    summary |= {"kept": gates["kept"], "dropped": dict(sorted(dropped.items(), key=lambda kv: -kv[1]))}
    summary["gates"] = {k: gates[k] for k in ("items", "kept", "rejected", "usage", "resumed_partitions")}
    (filter_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _existing(path: Path):
    return read_records(path) if path.exists() else iter(())
