"""The filter stage: quality checks, decontamination, then exact and near-duplicate removal, in one stream.
QA quality includes answer uniqueness from the record's claims (filters/uniqueness.py).

Kept records go to OUT/records, every dropped one to OUT/rejects with its reason (and the evaluation item
it matched, or the id of the record it duplicates), the counts to OUT/summary.json. Quality and
decontamination run first, so a malformed or contaminated record never becomes the kept copy of a group.
Page records (kind "page") are only deduplicated, on their text. A record too big to be a record (a 50 MB
question) is dropped by its size before any text processing, and kept in rejects cut short, so one bad line
cannot blow the filter's memory up. The output directories are marked complete last, after the counts add up.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..schemas import ShardWriter, check_accounting, mark_complete, read_records, require_complete
from .decontam import DecontamConfig, EvalIndex
from .dedup import DedupConfig, dedup
from .quality import QualityConfig, drop_reason
from .uniqueness import UniquenessConfig
from .uniqueness import drop_reason as ambiguity


@dataclass(frozen=True)
class FilterConfig:
    """Options of the filter stage; dedup None turns duplicate removal off."""

    kind: str = "qa"
    quality: QualityConfig = field(default_factory=QualityConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    dedup: DedupConfig | None = field(default_factory=DedupConfig)
    uniqueness: UniquenessConfig | None = field(default_factory=UniquenessConfig)  # None: keep open questions
    max_text_chars: int = 1_000_000  # a page's text (or a QA record's) beyond this is not a record: dropped "too_big"


REJECT_CHARS = 10_000  # strings of a rejected record are kept up to this long (a 50 MB line stays out of rejects)


def run(
    sources: Iterable[Path],
    out_dir: Path,
    cfg: FilterConfig,
    evals: Iterable[Path] = (),
    dask_client=None,
    allow_incomplete: bool = False,
) -> dict:
    """Filter the records in `sources` into out_dir; return the summary (counts in, kept, dropped by reason).

    With a Dask client the dedup signatures are computed on its workers (see `dedup.dedup`). A source directory
    whose stage did not finish is refused unless `allow_incomplete`."""
    sources = list(sources)
    for source in sources:
        require_complete(source, allow_incomplete)
    started, counts = time.monotonic(), Counter()
    for old in ("records", "rejects"):  # a rerun replaces the output: filtering is cheap and starts over
        shutil.rmtree(out_dir / old, ignore_errors=True)
    index = EvalIndex.from_files(list(evals), cfg.decontam) if evals and cfg.kind == "qa" else None
    writers = [
        ShardWriter(out_dir / sub, kind=k, complete_on_close=False)
        for sub, k in (("records", cfg.kind), ("rejects", None))
    ]
    with writers[0] as kept, writers[1] as rejects:
        clean = _checked(_read(sources, counts), cfg, index, rejects, counts)
        text_of = (lambda r: r["question"]) if cfg.kind == "qa" else (lambda r: r["text"])
        for record in dedup(clean, text_of, cfg.dedup, client=dask_client) if cfg.dedup else clean:
            if "duplicate_of" in record:
                reason = f"duplicate_{record.pop('dedup')}"
                counts[reason] += 1
                rejects.write(
                    {"stage": "filter", "reason": reason, "duplicate_of": record.pop("duplicate_of"), "record": record}
                )
            else:
                record.pop("dedup", None)
                kept.write(record)
                counts["kept"] += 1
    dropped = {k: v for k, v in counts.most_common() if k not in ("in", "kept")}
    summary = {
        "stage": "filter",
        "kind": cfg.kind,
        "in": counts["in"],
        "kept": counts["kept"],
        "dropped": dropped,
        "seconds": round(time.monotonic() - started, 2),
    }
    check_accounting("filter", counts["in"], kept=counts["kept"], dropped=sum(dropped.values()))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    for sub in ("records", "rejects"):
        mark_complete(out_dir / sub, stage="filter", records=counts["kept"])
    return summary


def _read(sources: Iterable[Path], counts: Counter) -> Iterator[dict]:
    for source in sources:
        for record in read_records(source):
            counts["in"] += 1
            yield record


def _checked(
    records: Iterable[dict], cfg: FilterConfig, index: EvalIndex | None, rejects: ShardWriter, counts: Counter
) -> Iterator[dict]:
    """Records that pass quality and decontamination; the others are written to rejects with their reason."""
    for record in records:
        if too_big(record, cfg.max_text_chars):  # before any text processing: that is what would blow up
            counts["too_big"] += 1
            rejects.write({"stage": "filter", "reason": "too_big", "record": cut(record, REJECT_CHARS)})
            continue
        reason = drop_reason(record, cfg.quality) if cfg.kind == "qa" else None
        if reason is None and cfg.kind == "qa" and cfg.uniqueness is not None:
            reason = ambiguity(record, cfg.uniqueness)
        match = index.match(record["question"]) if index and reason is None else None
        if match:
            reason = "contaminated"
        if reason is None:
            yield record
            continue
        counts[reason] += 1
        rejects.write(
            {"stage": "filter", "reason": reason, "record": record, **({"eval_match": match} if match else {})}
        )


def too_big(record: dict, limit: int) -> bool:
    """Whether the record's question, answer or text is longer than `limit` characters."""
    return any(isinstance(record.get(k), str) and len(record[k]) > limit for k in ("question", "answer", "text"))


def cut(value, limit: int):
    """`value` with every string longer than `limit` cut there and marked, at any depth."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + f" [... {len(value) - limit} characters cut]"
    if isinstance(value, dict):
        return {k: cut(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [cut(v, limit) for v in value]
    return value
