"""Stream records from and to files or directories of numbered shards, validating them on the way."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from types import TracebackType

from .errors import WdtkError
from .formats import FORMATS, ShardFile, dumps, format_of, iter_jsonl, iter_parquet, loads
from .records import RecordError, check_kind, validate

_SHARD_NAME = re.compile(r"^(\d+)\.(?:jsonl\.gz|jsonl|parquet)$")


def read_records(src: str | Path, kind: str | None = None) -> Iterator[dict]:
    """Stream the records of a .jsonl, .jsonl.gz or .parquet file, or of a directory of such shards.

    Path and kind problems raise RecordError at once; bad content raises it while iterating,
    naming the file and line (or Parquet row). Shards are read in numeric name order; hidden
    and temp files are skipped. When `kind` is given each record is validated. A directory without
    its completion marker (see `mark_complete`) is read with an IncompleteWarning: its stage did not finish.
    """
    if kind is not None:
        check_kind(kind)
    src = Path(src)
    files = _source_files(src)
    if not is_complete(src):
        warnings.warn(IncompleteWarning(incomplete_message(src)), stacklevel=2)
    return _stream(files, kind)


def read_located(src: str | Path) -> Iterator[tuple[Path, int, dict]]:
    """(file, line or Parquet row, record) for each record of `src`, for callers that check records themselves."""
    for path in _source_files(Path(src)):
        rows = iter_parquet(path) if format_of(path) == "parquet" else _parse_jsonl(path)
        for line, record in rows:
            yield path, line, record


def _source_files(src: Path) -> list[Path]:
    if src.is_dir():
        shards = [p for p in src.iterdir() if p.is_file() and not p.name.startswith(".") and format_of(p)]
        return sorted(shards, key=_shard_order)
    if not src.exists():
        raise RecordError("no such file or directory", path=src)
    if format_of(src) is None:
        raise RecordError(f"unknown extension; expected one of: {', '.join('.' + f for f in FORMATS)}", path=src)
    return [src]


def _shard_order(path: Path) -> tuple:
    """Numbered shards by number (00009 before 100000), then anything else by name."""
    m = _SHARD_NAME.match(path.name)
    return (0, int(m.group(1)), path.name) if m else (1, 0, path.name)


def _stream(files: list[Path], kind: str | None) -> Iterator[dict]:
    for path in files:
        rows = iter_parquet(path) if format_of(path) == "parquet" else _parse_jsonl(path)
        for line, record in rows:
            if kind is not None:
                try:
                    validate(record, kind)
                except RecordError as e:
                    e.path, e.line = path, line
                    raise
            yield record


def _parse_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    for line, raw in iter_jsonl(path):
        try:
            record = loads(raw)
        except json.JSONDecodeError as e:
            raise RecordError(f"invalid JSON at column {e.colno}: {e.msg}", path=path, line=line) from None
        except UnicodeDecodeError as e:
            raise RecordError(f"invalid UTF-8: {e}", path=path, line=line) from None
        if not isinstance(record, dict):
            raise RecordError(f"expected a JSON object, got {type(record).__name__}", path=path, line=line)
        yield line, record


def _encode(record: dict, kind: str | None, index: int, dst: Path) -> bytes:
    """Validate and serialise one record bound for `dst`, or raise RecordError naming its index."""
    try:
        if kind is not None:
            validate(record, kind)
        elif not isinstance(record, dict):
            raise RecordError(f"expected a dict, got {type(record).__name__}")
        return dumps(record)
    except RecordError as e:
        e.path, e.index = dst, index
        raise
    except (TypeError, ValueError) as e:  # orjson.JSONEncodeError is a TypeError
        raise RecordError(f"not JSON-serialisable: {e}", path=dst, index=index) from e


def next_shard_number(directory: Path) -> int:
    """One past the highest numbered shard in `directory` (any format), or 0 if it has none."""
    if not directory.is_dir():
        return 0
    numbers = [int(m.group(1)) for p in directory.iterdir() if (m := _SHARD_NAME.match(p.name))]
    return max(numbers, default=-1) + 1


class ShardWriter:
    """Write records into numbered shards `00000.<fmt>`, `00001.<fmt>`, ... in a directory, each one atomically.

    A shard is written under a hidden temp name and renamed when it holds `shard_size` records or on
    flush()/close(), so a crash never leaves a half-written shard under a real name. Numbering continues
    after the highest existing shard, so a resumed job appends. One writer per directory at a time.
    Leaving a `with` block by an exception discards the unfinished shard; finished ones stay.
    Opening a writer takes the directory's completion marker away; close() puts it back when
    `complete_on_close` (a stage that has more to check before its output counts as whole passes False
    and calls `mark_complete` itself), so a killed writer leaves a directory that reads as incomplete.
    """

    def __init__(
        self,
        dst_dir: str | Path,
        kind: str | None = None,
        fmt: str = "jsonl.gz",
        shard_size: int = 10_000,
        complete_on_close: bool = True,
    ) -> None:
        if kind is not None:
            check_kind(kind)
        if fmt not in FORMATS:
            raise RecordError(f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")
        if shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {shard_size}")
        self.dir, self.kind, self.fmt, self.shard_size = Path(dst_dir), kind, fmt, shard_size
        self.complete_on_close = complete_on_close
        self.dir.mkdir(parents=True, exist_ok=True)
        clear_complete(self.dir)
        self.count = 0  # records accepted
        self.paths: list[Path] = []  # finished shards, in order
        self._offered = 0  # records passed to write(), including rejected ones
        self._next = next_shard_number(self.dir)
        self._shard: ShardFile | None = None
        self._closed = False

    def write(self, record: dict) -> None:
        """Validate and append one record; a RecordError leaves the writer usable."""
        if self._closed:
            raise ValueError("write() on a closed ShardWriter")
        index, self._offered = self._offered, self._offered + 1
        line = _encode(record, self.kind, index, self.dir)
        if self._shard is None:
            self._shard = ShardFile(self.dir / f"{self._next:05d}.{self.fmt}")
        self._shard.add(line)
        self.count += 1
        if self._shard.rows >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Finish the current shard (even if short) so every record written so far is durable."""
        if self._shard is not None:
            shard, self._shard = self._shard, None
            self.paths.append(shard.commit())
            self._next += 1

    def abort(self) -> None:
        """Discard the unfinished shard; finished shards stay."""
        if self._shard is not None:
            self._shard.abort()
            self._shard = None

    def close(self) -> None:
        """Flush and stop accepting records; mark the directory complete when `complete_on_close`."""
        self.flush()
        if self.complete_on_close and not self._closed:
            mark_complete(self.dir, records=self.count)
        self._closed = True

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
            self._closed = True


def write_records(
    records: Iterable[dict],
    dst: str | Path,
    kind: str | None = None,
    *,
    fmt: str = "jsonl.gz",
    shard_size: int = 10_000,
) -> list[Path]:
    """Write records to a directory of shards (see ShardWriter) or, if `dst` has a known suffix, to that one file.

    `fmt` and `shard_size` apply to directories; a file's suffix picks its format. Returns the paths written.
    On a bad record (RecordError naming its index and field) the unfinished shard or file is discarded.
    """
    dst = Path(dst)
    if _is_directory_target(dst):
        with ShardWriter(dst, kind, fmt, shard_size) as writer:
            for record in records:
                writer.write(record)
        return writer.paths
    return [_write_file(records, dst, kind)]


def _is_directory_target(dst: Path) -> bool:
    if dst.is_dir() or dst.suffix == "":
        return True
    if format_of(dst) is None:
        raise RecordError(f"unknown extension; expected a directory or one of: .{', .'.join(FORMATS)}", path=dst)
    return False


def _write_file(records: Iterable[dict], dst: Path, kind: str | None) -> Path:
    """All records into the single file `dst`, atomically (a Parquet file is buffered whole)."""
    if kind is not None:
        check_kind(kind)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shard = ShardFile(dst)
    try:
        for index, record in enumerate(records):
            shard.add(_encode(record, kind, index, dst))
    except BaseException:
        shard.abort()
        raise
    return shard.commit()


# --- completion markers --------------------------------------------------------------------------

COMPLETE = ".complete"  # written last into a shard directory by the stage that filled it


def mark_complete(directory: str | Path, **info: object) -> None:
    """Say that `directory` holds all of its stage's records: the marker is written atomically, after every shard."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{COMPLETE}.tmp"
    tmp.write_text(json.dumps(info, sort_keys=True) + "\n")
    tmp.replace(directory / COMPLETE)


def clear_complete(directory: str | Path) -> None:
    """Take the marker away before a stage adds to `directory` again (a resumed or extended run)."""
    (Path(directory) / COMPLETE).unlink(missing_ok=True)


def is_complete(directory: str | Path) -> bool:
    """Whether the stage that writes `directory` finished it (a single file counts as complete)."""
    directory = Path(directory)
    return not directory.is_dir() or (directory / COMPLETE).exists()


class IncompleteWarning(UserWarning):
    """Records read from a shard directory whose stage has not finished (killed, failed, or still running)."""


class IncompleteInput(WdtkError, RuntimeError):
    """A stage was given a shard directory that its own stage did not finish."""


def incomplete_message(directory: Path) -> str:
    """One line saying that `directory` may hold only part of its stage's records."""
    return (
        f"{directory} is incomplete (no {COMPLETE} marker): the stage that writes it was killed, failed "
        "or is still running, so it may hold only part of its records"
    )


def require_complete(path: str | Path, allow_incomplete: bool = False) -> None:
    """Refuse an input directory its stage did not finish, unless `allow_incomplete` (the --allow-incomplete flag)."""
    path = Path(path)
    if not allow_incomplete and not is_complete(path):
        raise IncompleteInput(f"{incomplete_message(path)}; finish that stage first, or pass --allow-incomplete")


class AccountingError(RuntimeError):
    """A stage's counts do not add up: some input has neither a record nor a reject. Always a bug in wdtk."""


def check_accounting(stage: str, inputs: int, **outcomes: int) -> None:
    """Fail loudly unless every one of `inputs` ended as exactly one of `outcomes` (kept, rejected, ...)."""
    if inputs != sum(outcomes.values()):
        parts = " + ".join(f"{n} {name}" for name, n in outcomes.items())
        raise AccountingError(f"{stage}: {inputs} inputs but {parts} = {sum(outcomes.values())}; this is a bug")


def batched(items: Iterable, size: int) -> Iterable[list]:
    """Consecutive lists of `size` items (itertools.batched arrived only in Python 3.12)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk
