"""File formats for record shards: JSON lines (optionally gzipped) and Parquet, read and written one file at a time."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from .records import RecordError

try:
    import orjson
except ImportError:  # optional: the stdlib writes and reads the same records, only slower
    orjson = None

FORMATS: tuple[str, ...] = ("jsonl.gz", "jsonl", "parquet")
ROW_GROUP = 1_000  # Parquet rows per row group, so reading holds one group of pages in memory, not a shard
_EMPTY = "__wdtk_empty__"  # Parquet cannot store a struct with no fields; this null child stands in for {}


def format_of(path: Path) -> str | None:
    """The format named by `path`'s suffix, or None when it has no known one."""
    name = path.name.lower()
    return next((fmt for fmt in FORMATS if name.endswith("." + fmt)), None)


def dumps(record: dict) -> bytes:
    """`record` as one UTF-8 JSON line, newline included; raises TypeError/ValueError if it is not plain JSON."""
    if orjson is not None:
        # passthrough makes datetimes and dataclasses fail as they do in the stdlib, instead of being converted
        opts = orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
        return orjson.dumps(record, option=opts)
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text + "\n").encode("utf-8")


def loads(line: bytes) -> object:
    """Parse one JSON line; raises json.JSONDecodeError (orjson's is a subclass) or UnicodeDecodeError."""
    return orjson.loads(line) if orjson is not None else json.loads(line)


def iter_jsonl(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line) for each non-blank line of a .jsonl or .jsonl.gz file."""
    gzipped = path.name.lower().endswith(".gz")
    try:
        f = gzip.open(path, "rb") if gzipped else path.open("rb")
    except OSError as e:
        raise RecordError(f"cannot read: {e}", path=path) from e
    lineno = 0
    with f:
        try:
            for lineno, line in enumerate(f, 1):  # noqa: B007 - the except clause reports how far it got
                if line.strip():
                    yield lineno, line
        except (OSError, EOFError, zlib.error) as e:
            what = "corrupt or truncated gzip" if gzipped else "read error"
            raise RecordError(f"{what}{_after('line', lineno)}: {e}", path=path) from e


def iter_parquet(path: Path) -> Iterator[tuple[int, dict]]:
    """(1-based row number, record) for each row of a Parquet file, streamed one batch at a time."""
    row = 0
    try:
        with pq.ParquetFile(path) as pf:
            json_columns = _json_columns(pf.schema_arrow)
            for batch in pf.iter_batches(batch_size=ROW_GROUP):
                for record in batch.to_pylist():
                    row += 1
                    for name, is_list in json_columns.items():  # Arrow JSON comes back as text: decode it
                        value = record.get(name)
                        if value is not None:
                            record[name] = [_loads(v) for v in value] if is_list else _loads(value)
                    yield row, drop_nulls(record)
    except (pa.ArrowException, OSError) as e:
        raise RecordError(f"unreadable Parquet{_after('row', row)}: {e}", path=path) from e


def _json_columns(schema: pa.Schema) -> dict[str, bool]:
    """Columns of Arrow's JSON type (rows whose keys vary, as wdtk's exports write them): name -> is a list."""
    out = {}
    for f in schema:
        if _is_json(f.type):
            out[f.name] = False
        elif (pa.types.is_list(f.type) or pa.types.is_large_list(f.type)) and _is_json(f.type.value_type):
            out[f.name] = True
    return out


def _is_json(t: pa.DataType) -> bool:
    return getattr(t, "extension_name", None) == "arrow.json"


def _loads(text: str | None) -> object:
    return None if text is None else orjson.loads(text)


def _after(unit: str, n: int) -> str:
    return f" after {unit} {n}" if n else ""


def drop_nulls(value: object) -> object:
    """`value` without null-valued keys at any depth: Parquet fills absent struct fields with nulls."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def to_table(records: list[dict], path: Path) -> pa.Table:
    """Records as an Arrow table with native nested columns, one column per key seen in any record."""
    # Table.from_pylist takes its columns from the first record only, silently dropping later keys
    keys = list(dict.fromkeys(k for r in records for k in r))
    return pa.table({k: _column(k, [r.get(k) for r in records], path) for k in keys})


def _column(key: str, values: list, path: Path) -> pa.Array:
    try:
        array = pa.array(values)
        fixed = _fill_empty_structs(array.type)
        return array if fixed == array.type else pa.array(values, type=fixed)
    except (pa.ArrowException, OverflowError) as e:
        hint = "values of a field must share one type within a Parquet shard; use jsonl.gz"
        raise RecordError(f"cannot store as Parquet ({hint}): {e}", path=path, field=key) from e


def _fill_empty_structs(t: pa.DataType) -> pa.DataType:
    """`t` with every field-less struct given one null child, which drop_nulls removes on reading."""
    if pa.types.is_struct(t):
        fields = [f.with_type(_fill_empty_structs(f.type)) for f in t] or [pa.field(_EMPTY, pa.null())]
        return pa.struct(fields)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _fill_empty_structs(t.value_type)
        return pa.large_list(inner) if pa.types.is_large_list(t) else pa.list_(inner)
    return t


class ShardFile:
    """One output file written to a hidden temp file beside it and renamed into place by commit()."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fmt = format_of(path)
        self.tmp = path.with_name(f".{path.name}.tmp")  # hidden and not a known suffix: readers skip it
        self.rows = 0
        self._lines: list[bytes] = []  # Parquet buffers its encoded rows; JSONL streams them to disk
        self._raw: BinaryIO | None = None if self.fmt == "parquet" else self.tmp.open("wb")
        self._out = self._raw
        if self.fmt == "jsonl.gz":
            # no file name and mtime=0 in the header keep shard bytes reproducible
            self._out = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=6, mtime=0)

    def add(self, line: bytes) -> None:
        """Append one encoded JSON line."""
        if self.fmt == "parquet":
            self._lines.append(line)
        else:
            self._out.write(line)
        self.rows += 1

    def commit(self) -> Path:
        """Finish the file, make it durable, and rename it to its real name."""
        try:
            if self.fmt == "parquet":
                self._write_parquet()
            else:
                if self._out is not self._raw:
                    self._out.close()  # writes the gzip trailer; leaves the raw file open
                _sync_close(self._raw)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        _sync_dir(self.path.parent)
        return self.path

    def _write_parquet(self) -> None:
        table = to_table([loads(line) for line in self._lines], self.path)
        self._lines = []
        with self.tmp.open("wb") as f:
            pq.write_table(table, f, compression="zstd", row_group_size=ROW_GROUP)
            f.flush()
            os.fsync(f.fileno())

    def abort(self) -> None:
        """Drop the unfinished file; its real name is never created."""
        for f in (self._out, self._raw):
            if f is not None:
                with contextlib.suppress(OSError, EOFError, zlib.error):
                    f.close()
        self._lines = []
        self.tmp.unlink(missing_ok=True)


def _sync_close(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()


def _sync_dir(directory: Path) -> None:
    """Make a rename durable; not possible on every platform, and never worth failing a write for."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
