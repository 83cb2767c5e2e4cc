"""Exports of the funnel's output: an SFT set for TRL, the same trajectories as WebDancer text, and the RL pool.

`sft_row` gives TRL's conversational form, which `SFTTrainer` takes as it is: `messages` (assistant turns with
`tool_calls`, `tool` turns with the results) and `tools`. Two choices make it render right with any chat template:

- The system turn keeps the instructions only (`Instructions().text`; cut from the stored prompt, so a trajectory
  sampled with an older prompt keeps the instructions it saw): chat templates list the `tools` column in the system
  prompt themselves, each in its own family's words, so the stored tool list would appear twice.
- The thought goes into `content` as `<think>\\n...\\n</think>` before the turn's text, exactly as WebDancer writes
  it, and `reasoning_content` is dropped. Every template renders `content`, while most (Qwen2.5, Llama 3) ignore
  `reasoning_content`, which would silently drop the thought from training; Qwen3's template, which does render
  thoughts, splits a leading <think> block out of `content` itself, so it still sees one (never two) per turn.

Storage: Arrow gives a list of structs one struct type, the union of every key seen, and fills the keys a message
lacks with null. A search call (`{"query"}`) and a visit call (`{"url", "goal"}`) would then both read back with
`{"query", "url", "goal"}`, and a chat template would render `"goal": null` into the search call (and a user turn
would gain `tool_calls: null`, which Llama 3.1's template mistakes for a tool-call turn). So each message and each
tool is stored as one JSON value (Arrow's `arrow.json` extension type, Parquet's JSON logical type), which
`datasets` (>= 4.7) reads back as its `Json` feature: exactly the dicts written, no keys added.

`run` writes `sft/`, `webdancer/` and `rl/` under the output directory as Parquet shards that
`datasets.load_dataset(dir)` loads, each directory replaced whole so a crash never mixes old and new shards.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..schemas import RecordError, mark_complete, read_records
from ..synth.agent.format import chatml, render_assistant

SHARD_ROWS = 5_000
_TOOLS_HEADER = "\n\n# Tools\n\n"  # where Instructions.system_prompt() starts listing the tools


def instructions_only(system_prompt: str) -> str:
    """The system prompt without the tool list that `Instructions.system_prompt()` appends to the instructions."""
    return system_prompt.split(_TOOLS_HEADER, 1)[0]


def sft_message(message: dict, first: bool = False) -> dict:
    """One stored message in the exported form: the thought folded into content, the system turn's tools cut."""
    role = message["role"]
    if role == "system" and first:
        return {"role": "system", "content": instructions_only(message["content"])}
    if role != "assistant":
        return dict(message)
    out = {"role": "assistant", "content": render_assistant({k: v for k, v in message.items() if k != "tool_calls"})}
    if message.get("tool_calls"):
        out["tool_calls"] = message["tool_calls"]
    return out


def sft_row(trajectory: dict) -> dict:
    """A trajectory as a row of TRL's conversational SFT format: {"id", "messages", "tools"}."""
    messages = [sft_message(m, first=i == 0) for i, m in enumerate(trajectory["messages"])]
    return {"id": trajectory["id"], "messages": messages, "tools": trajectory["tools"]}


def webdancer_row(trajectory: dict) -> dict:
    """A trajectory as WebDancer's chatml text, system prompt and tool list as the model saw them."""
    return {"id": trajectory["id"], "text": chatml(trajectory["messages"])}


def rl_row(record: dict) -> dict:
    """An RL-pool record ({"id","question","answer","metadata"?}) checked and in the exported form."""
    for key in ("id", "question", "answer"):
        if not isinstance(record.get(key), str) or not record[key]:
            raise RecordError("expected a non-empty string", field=key)
    metadata = record.get("metadata", {})
    if not isinstance(metadata, dict):
        raise RecordError(f"expected an object, got {type(metadata).__name__}", field="metadata")
    return {"id": record["id"], "question": record["question"], "answer": record["answer"], "metadata": metadata}


# --- Parquet ----------------------------------------------------------------------------------

JSON = pa.json_()
SCHEMAS = {
    "sft": pa.schema([("id", pa.string()), ("messages", pa.list_(JSON)), ("tools", pa.list_(JSON))]),
    "webdancer": pa.schema([("id", pa.string()), ("text", pa.string())]),
    "rl": pa.schema([("id", pa.string()), ("question", pa.string()), ("answer", pa.string()), ("metadata", JSON)]),
}


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _array(values: list, type_: pa.DataType) -> pa.Array:
    """`values` as an Arrow array of `type_`, JSON values (and lists of them) serialised one by one."""
    if type_ == JSON:
        return pa.ExtensionArray.from_storage(JSON, pa.array([_dumps(v) for v in values], pa.string()))
    if pa.types.is_list(type_) and type_.value_type == JSON:
        offsets = [0]
        for v in values:
            offsets.append(offsets[-1] + len(v))
        flat = _array([item for v in values for item in v], JSON)
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat, type=type_)
    return pa.array(values, type_)


def to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows as a table of `schema` (one of SCHEMAS)."""
    return pa.table([_array([r[f.name] for r in rows], f.type) for f in schema], schema=schema)


def write_parquet(rows: Iterable[dict], dst: Path, schema: pa.Schema, shard_rows: int = SHARD_ROWS) -> int:
    """Replace directory `dst` with shards 00000.parquet, ... of `rows`; returns the count.

    The shards are written into a hidden sibling directory that is renamed into place at the end. No rows, no shards:
    `datasets` cannot load a Parquet file without rows, so an empty export is an empty directory.
    """
    tmp, old = dst.with_name(f".{dst.name}.tmp"), dst.with_name(f".{dst.name}.old")
    for leftover in (tmp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    tmp.mkdir(parents=True)
    count, shard, rows = 0, 0, iter(rows)
    while True:
        chunk = list(islice(rows, shard_rows))
        if chunk:
            pq.write_table(to_table(chunk, schema), tmp / f"{shard:05d}.parquet")
        count, shard = count + len(chunk), shard + 1
        if len(chunk) < shard_rows:
            break
    mark_complete(tmp, rows=count)  # the directory is whole: it appears under its real name in one rename
    if dst.exists():
        dst.rename(old)
    tmp.rename(dst)
    shutil.rmtree(old, ignore_errors=True)
    return count


def _rl_rows(src: Path) -> Iterator[dict]:
    for index, record in enumerate(read_records(src)):
        try:
            yield rl_row(record)
        except RecordError as e:
            e.path, e.index = src, index
            raise


def run(funnel_dir: str | Path, out_dir: str | Path) -> dict:
    """Export FUNNEL/records (kept trajectories) and FUNNEL/rl_pool into OUT/{sft,webdancer,rl}; returns the counts.

    Also writes OUT/summary.json with the counts. Bad input raises RecordError naming the file and line.
    """
    funnel_dir, out_dir = Path(funnel_dir), Path(out_dir)
    started = time.monotonic()
    records, pool = funnel_dir / "records", funnel_dir / "rl_pool"
    for src in (records, pool):
        if not src.is_dir():
            raise RecordError("no such directory (expected the output of `wdtk funnel`)", path=src)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {
        "sft": write_parquet(map(sft_row, read_records(records, "trajectory")), out_dir / "sft", SCHEMAS["sft"]),
        "webdancer": write_parquet(
            map(webdancer_row, read_records(records, "trajectory")), out_dir / "webdancer", SCHEMAS["webdancer"]
        ),
        "rl": write_parquet(_rl_rows(pool), out_dir / "rl", SCHEMAS["rl"]),
    }
    summary = {"stage": "export", **counts, "seconds": round(time.monotonic() - started, 3)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def describe_export(counts: dict, out_dir: Path) -> str:
    """A line on the rows written to each training set."""
    rows = ", ".join(f"{k} {counts[k]}" for k in ("sft", "webdancer", "rl"))
    return f"  exports -> {out_dir}: {rows} rows (sft: TRL messages + tools; webdancer: chatml text; rl: pool)"
