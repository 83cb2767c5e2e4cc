"""What a stage's output directory says about its run: the manifest, the finished items (done/*.json), the plan of what
is left to do, and the summary whose counts must add up.

Items are finished or not by their id, whatever partition or run finished them, so a stage can be extended: a larger
--max-groups, --limit or --rollouts adds items, and only those run. A truly different run (other options, model or
search; or finished items that the new input lacks) is refused instead of mixed in.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path

from ..schemas import AccountingError, WdtkError, check_accounting

LAYOUT = 2  # the on-disk layout of a stage directory (chunks named P-C, items listed in done/)
_CHUNK = re.compile(r"^(\d{5})-(\d{4})\.")


class StageInputChanged(WdtkError, RuntimeError):
    """The output directory holds work of a different run: resuming would mix two runs' records."""


@dataclass
class Plan:
    """The items a run still has to do, and how the input was counted."""

    todo: list[dict]
    inputs: int = 0  # input items, duplicates included
    duplicates: int = 0  # items whose id came earlier in the input (processed once)
    resumed: int = 0  # items finished by an earlier run
    truncated: Counter = field(default_factory=Counter)  # fields cut to the size caps, by field name
    ids: set[str] = field(default_factory=set)


def manifest(stage) -> dict:
    """What must match for a directory to be resumed or extended: the stage, its options, model and search kind."""
    config = asdict(stage.config) if is_dataclass(stage.config) else stage.config
    asked = json.dumps([config, portable(stage.backends.model), portable(stage.backends.search)], default=repr)
    return {"layout": LAYOUT, "stage": stage.name, "config": hashlib.sha256(asked.encode()).hexdigest()[:16]}


def portable(spec: str | None) -> str | None:
    """A model or search spec without a path of this machine ('bm25:/x/index' -> 'bm25', 'local:/a/b' -> 'local:b')."""
    if spec is None or ":" not in spec:
        return spec
    kind, rest = spec.split(":", 1)
    if kind == "bm25":
        return kind
    return f"{kind}:{Path(rest).name}" if kind == "local" else spec


class Ledger:
    """The state of one stage directory: manifest checked, leftovers of a killed run removed, finished items read."""

    def __init__(self, out: Path, stage) -> None:
        self.out, self.stage = out, stage
        self._check_manifest()
        self._drop_orphans()
        self.finished: dict[str, tuple[int, int]] = {}  # item id -> (records kept, rejects)
        self.seen: set[str] = set()  # done files read so far
        self.totals = {"kept": 0, "rejected": Counter(), "tally": Counter(), "usage": {}}
        self.earlier_partitions = {int(_CHUNK.match(n).group(1)) for n in self._done_names()}
        self.poll()
        self.resumed_partitions = len(self.earlier_partitions)

    def _check_manifest(self) -> None:
        path, want = self.out / "manifest.json", manifest(self.stage)
        if path.exists():
            have = json.loads(path.read_text())
            if have != want:
                what = "an older wdtk" if have.get("layout") != LAYOUT else "other options, model or search"
                raise StageInputChanged(
                    f"{self.out} holds a {have.get('stage')} run of {what}; use a new output directory or --restart"
                )
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "manifest.json").write_text(json.dumps(want))

    def _done_names(self) -> list[str]:
        done = self.out / "done"
        return sorted(p.name for p in done.iterdir() if _CHUNK.match(p.name)) if done.is_dir() else []

    def _drop_orphans(self) -> None:
        """Remove record and reject chunks without a done file (a kill between the writes) and temp files; refuse
        a directory whose records/ holds shards this runtime did not write (never delete someone else's data)."""
        chunks = {name.split(".")[0] for name in self._done_names()}
        for sub in ("records", "rejects", "done"):
            folder = self.out / sub
            for path in sorted(folder.iterdir()) if folder.is_dir() else ():
                name = path.name.removeprefix(".")
                if not _CHUNK.match(name):
                    if not path.name.startswith("."):
                        raise StageInputChanged(f"{folder} holds {path.name}, which no {self.stage.name} run wrote; "
                                                "use a new output directory or --restart")  # fmt: skip
                    continue  # the completion marker and other hidden files
                if path.name.endswith(".tmp") or (sub != "done" and name.split(".")[0] not in chunks):
                    path.unlink()

    def poll(self) -> int:
        """Read the done files written since the last poll; returns how many items they finished."""
        new = 0
        for name in self._done_names():
            if name in self.seen:
                continue
            self.seen.add(name)
            chunk = json.loads((self.out / "done" / name).read_text())
            for item_id, kept, rejected in chunk["items"]:
                new += item_id not in self.finished
                self.finished[item_id] = (kept, rejected)
            self.totals["kept"] += chunk["kept"]
            self.totals["rejected"].update(chunk["rejected"])
            self.totals["tally"].update(chunk.get("tally", {}))
            for sub, numbers in chunk["usage"].items():
                self.totals["usage"].setdefault(sub, Counter()).update(numbers)
        return new

    def calls(self) -> int:
        """LLM calls counted in the done files read so far."""
        return int(sum(u.get("calls", 0) for u in self.totals["usage"].values()))

    def next_partition(self) -> int:
        """The first partition number no earlier run used, so new chunks never collide with old ones."""
        return max(self.earlier_partitions, default=-1) + 1

    def plan(self, items: Iterable[dict], caps) -> Plan:
        """The items not yet finished (capped to the size limits), in input order; refuses a different input."""
        plan = Plan(todo=[])
        for item in items:
            plan.inputs += 1
            if item["id"] in plan.ids:
                plan.duplicates += 1
                continue
            plan.ids.add(item["id"])
            if item["id"] in self.finished:
                plan.resumed += 1
            else:
                plan.todo.append(cap(item, caps, plan.truncated))
        stray = len(self.finished.keys() - plan.ids)
        if stray:
            raise StageInputChanged(
                f"{self.out} holds {stray} finished {self.stage.name} inputs that this input lacks (another input, "
                "or a smaller --max-groups/--limit/--rollouts); use a new output directory or --restart"
            )
        return plan

    def summary(self, plan: Plan, failed: list[list[str]], partitions: int, seconds: float) -> dict:
        """The stage summary over every run in this directory; raises AccountingError if an input went missing."""
        self.poll()
        outcomes = [self.finished[i] for i in plan.ids if i in self.finished]
        silent = sum(1 for kept, rejected in outcomes if kept + rejected == 0)
        kept_inputs = sum(1 for kept, _ in outcomes if kept)
        rejected_inputs = len(outcomes) - kept_inputs
        check_accounting(
            self.stage.name,
            plan.inputs,
            kept=kept_inputs,
            rejected=rejected_inputs,
            failed=len(failed),
            duplicates=plan.duplicates,
        )
        if silent:
            raise AccountingError(f"{self.stage.name}: {silent} finished inputs have neither a record nor a reject")
        summary = {
            "stage": self.stage.name,
            "partitions": partitions,
            "resumed_partitions": self.resumed_partitions,
            "items": plan.inputs,
            "kept": self.totals["kept"],
            "rejected": dict(self.totals["rejected"].most_common()),
            "usage": {sub: dict(c) for sub, c in self.totals["usage"].items()},
            "inputs": {
                "total": plan.inputs,
                "kept": kept_inputs,
                "rejected": rejected_inputs,
                "failed": len(failed),
                "duplicates": plan.duplicates,
                "resumed": plan.resumed,
            },
            "truncated": dict(plan.truncated),
            "seconds": round(seconds, 2),
        }
        if failed:
            summary["failed"] = [f"{item}: {error}" for item, error in failed[:20]]
        if self.totals["tally"]:
            summary["tally"] = dict(self.totals["tally"].most_common())
        return summary


CAPPED = ("question", "answer", "text")


def cap(value, caps, counts: Counter):
    """`value` with every string under a key "question", "answer" or "text" (at any depth) cut to its cap in `caps`;
    each cut counted by key. What a model is sent, and what a worker holds, stays bounded whatever a line holds."""
    if isinstance(value, list):
        return [cap(v, caps, counts) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        limit = getattr(caps, key, None) if key in CAPPED else None
        if isinstance(v, str) and limit is not None and len(v) > limit:
            counts[key] += 1
            out[key] = v[:limit]
        else:
            out[key] = cap(v, caps, counts)
    return out
