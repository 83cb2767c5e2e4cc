"""Record schemas, ids, and streaming shard I/O (wdtk.schemas)."""

from __future__ import annotations

import copy
import datetime
import gzip
import json
import pickle
import tracemalloc
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from wdtk.schemas import (
    FORMATS,
    KINDS,
    RecordError,
    ShardWriter,
    load_schema,
    read_records,
    record_id,
    validate,
    write_records,
)
from wdtk.schemas import formats as formats_mod

RECORDS = Path(__file__).parent / "data" / "records"


def example(kind: str) -> dict:
    """A fresh copy of the valid example record of `kind`."""
    return json.loads((RECORDS / f"{kind}.json").read_text(encoding="utf-8"))


def variants(kind: str) -> list[dict]:
    """The example plus a minimal variant, minimal first so a Parquet writer meets new keys late."""
    full, minimal = example(kind), example(kind)
    drop = {
        "page": ["parent_url", "content_type"],
        "qa": ["hops"],
        "trajectory": ["prediction"],
        "judgement": ["rationale", "judge"],
    }[kind]
    for key in drop:
        del minimal[key]
    minimal["meta"] = {}
    if kind == "trajectory":
        minimal["messages"] = minimal["messages"][:2]
        minimal["termination"] = "call_budget_exceeded"
        del minimal["stats"]["tokens"]
    if kind == "judgement":
        minimal |= {"method": "exact", "correct": False, "score": 0.0, "prediction": ""}
    if kind == "page":
        minimal |= {"depth": 0, "links": []}
    minimal["id"] = record_id(kind, "minimal")
    return [minimal, full]


def keywords(schema: object) -> set[str]:
    """Every key used anywhere in a schema."""
    if isinstance(schema, dict):
        return set(schema).union(*(keywords(v) for v in schema.values()))
    if isinstance(schema, list):
        return set().union(*(keywords(v) for v in schema))
    return set()


def shard_names(directory: Path) -> list[str]:
    """The files a reader sees (the hidden completion marker is not one)."""
    return sorted(p.name for p in directory.iterdir() if p.name != ".complete")


# --- schemas ---


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_valid_draft_2020_12(kind: str) -> None:
    schema = load_schema(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["title"] == kind
    assert "format" not in keywords(schema)  # format checks would need extra packages


@pytest.mark.parametrize("kind", KINDS)
def test_examples_and_variants_are_valid(kind: str) -> None:
    for record in variants(kind):
        validate(record, kind)


@pytest.mark.parametrize(
    ("kind", "change", "field", "words"),
    [
        ("page", lambda r: r.update(status="abc"), "status", "'abc' is not of type 'integer'"),
        ("page", lambda r: r["links"].__setitem__(1, 5), "links.1", "5 is not of type 'string'"),
        ("page", lambda r: r.pop("url"), "url", "required field is missing"),
        ("page", lambda r: r.update(finalurl="https://x.org"), "finalurl", "unknown field"),
        ("page", lambda r: r.update(depth=-1), "depth", "less than the minimum"),
        ("page", lambda r: r.update(parent_url=None), "parent_url", "None is not of type 'string'"),
        ("page", lambda r: r.update(url="ftp://x.org"), "url", "does not match"),
        ("page", lambda r: r.update(fetched_at="2025-01-31 12:00"), "fetched_at", "does not match"),
        ("qa", lambda r: r.update(type="multi-hop"), "type", "does not match"),
        ("qa", lambda r: r["hops"][0].pop("entity"), "hops.0.entity", "required field is missing"),
        ("qa", lambda r: r["meta"].update(model=None), "meta.model", "not of type 'string'"),
        ("trajectory", lambda r: r["messages"][1].update(role="bot"), "messages.1.role", "is not one of"),
        ("trajectory", lambda r: r.update(termination="crash"), "termination", "is not one of"),
        (
            "trajectory",
            lambda r: _tool_call(r).update(arguments='{"q": 1}'),
            "messages.2.tool_calls.0.function.arguments",
            "is not of type 'object'",
        ),
        ("judgement", lambda r: r.pop("judge"), "judge", "required field is missing"),
        ("judgement", lambda r: r.update(score=1.5), "score", "greater than the maximum"),
    ],
)
def test_validate_names_field_and_problem(kind, change, field, words) -> None:
    record = example(kind)
    change(record)
    with pytest.raises(RecordError) as info:
        validate(record, kind)
    assert info.value.field == field
    assert words in str(info.value)
    assert str(info.value).startswith(f"field {field!r}: ")


def _tool_call(trajectory: dict) -> dict:
    return trajectory["messages"][2]["tool_calls"][0]["function"]


def test_validate_unknown_kind_and_long_values() -> None:
    with pytest.raises(RecordError, match="unknown record kind 'pages'; expected one of: page, qa"):
        validate({}, "pages")
    page = example("page") | {"status": "x" * 10_000}
    with pytest.raises(RecordError) as info:
        validate(page, "page")
    assert len(str(info.value)) < 300 and str(info.value).endswith("...")


def test_judgement_without_judge_is_fine_unless_llm() -> None:
    verdict = example("judgement") | {"method": "f1", "score": 0.5}
    del verdict["judge"]
    validate(verdict, "judgement")


# --- ids ---


def test_record_id_is_stable() -> None:
    assert record_id("page", "https://en.wikipedia.org/wiki/Ada_Lovelace") == "977f0afd803fca15"
    assert record_id("qa", {"b": [1, 2.5], "a": "é"}) == record_id("qa", {"a": "é", "b": (1, 2.5)})


def test_record_id_is_sensitive() -> None:
    ids = {
        record_id("page", "https://a.org/"),
        record_id("page", "https://a.org"),
        record_id("qa", "https://a.org/"),
        record_id("https://a.org/", "page"),
        record_id("page https://a.org/"),
        record_id(1),
        record_id(1.0),
        record_id("1"),
    }
    assert len(ids) == 8
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    with pytest.raises(TypeError):
        record_id()
    with pytest.raises(TypeError):
        record_id(datetime.date(2025, 1, 1))


# --- round trips ---


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_file_and_directory(tmp_path: Path, kind: str, fmt: str) -> None:
    records = variants(kind)
    [path] = write_records(records, tmp_path / f"one.{fmt}", kind)
    assert path == tmp_path / f"one.{fmt}"
    assert list(read_records(path, kind)) == records
    paths = write_records(records, tmp_path / "dir", kind, fmt=fmt)
    assert [p.name for p in paths] == [f"00000.{fmt}"]
    assert list(read_records(tmp_path / "dir", kind)) == records
    assert shard_names(tmp_path) == sorted(["dir", f"one.{fmt}"])  # no temp files left


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_empty_objects_and_unicode(tmp_path: Path, fmt: str) -> None:
    # Parquet cannot store a struct with no fields, and infers columns from the first row only
    records = [{"m": {}, "l": [], "n": [{}]}, {"m": {"a": {}}, "x": "née – 東京 🙂", "f": 1.5}, {"big": 2**62}]
    write_records(records, tmp_path / f"r.{fmt}")
    assert list(read_records(tmp_path / f"r.{fmt}")) == records


def test_jsonl_is_utf8_not_escaped(tmp_path: Path) -> None:
    write_records([{"x": "née"}], tmp_path / "r.jsonl")
    assert (tmp_path / "r.jsonl").read_bytes() == '{"x":"née"}\n'.encode()


class Text(str):
    """Like lxml's _ElementUnicodeResult: a str subclass that extractors hand back."""


def test_stdlib_json_fallback_writes_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = [r for kind in KINDS for r in variants(kind)] + [{"text": Text("née"), "t": (1, 2)}]
    write_records(records, tmp_path / "fast.jsonl")
    monkeypatch.setattr(formats_mod, "orjson", None)
    write_records(records, tmp_path / "slow.jsonl")
    assert (tmp_path / "fast.jsonl").read_bytes() == (tmp_path / "slow.jsonl").read_bytes()
    assert list(read_records(tmp_path / "fast.jsonl")) == records[:-1] + [{"text": "née", "t": [1, 2]}]


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "r.jsonl").write_text('\n{"a": 1}\n   \n\r\n{"a": 2}\r\n\n')
    assert list(read_records(tmp_path / "r.jsonl")) == [{"a": 1}, {"a": 2}]


# --- sharding, resume, atomicity ---


@pytest.mark.parametrize("fmt", ["jsonl.gz", "parquet"])
def test_sharding_and_resume(tmp_path: Path, fmt: str) -> None:
    records = [{"i": i} for i in range(7)]
    paths = write_records(records, tmp_path / "out", fmt=fmt, shard_size=3)
    assert [p.name for p in paths] == [f"0000{i}.{fmt}" for i in range(3)]
    assert [len(list(read_records(p))) for p in paths] == [3, 3, 1]
    more = write_records([{"i": i} for i in range(7, 11)], tmp_path / "out", fmt=fmt, shard_size=3)
    assert [p.name for p in more] == [f"00003.{fmt}", f"00004.{fmt}"]
    assert [r["i"] for r in read_records(tmp_path / "out")] == list(range(11))


def test_shards_read_in_numeric_order(tmp_path: Path) -> None:
    write_records([{"i": 0}], tmp_path / "99999.jsonl")
    write_records([{"i": 1}], tmp_path)  # continues at 100000, which sorts before 99999 as text
    (tmp_path / "notes.txt").write_text("not a shard")
    assert shard_names(tmp_path) == ["100000.jsonl.gz", "99999.jsonl", "notes.txt"]
    assert [r["i"] for r in read_records(tmp_path)] == [0, 1]


def test_crash_midway_keeps_finished_shards_only(tmp_path: Path) -> None:
    def produce():
        for i in range(5):
            yield {"i": i}
        raise RuntimeError("crawler died")

    with pytest.raises(RuntimeError, match="crawler died"):
        write_records(produce(), tmp_path, shard_size=3)
    assert shard_names(tmp_path) == ["00000.jsonl.gz"]
    assert [r["i"] for r in read_records(tmp_path)] == [0, 1, 2]


def test_leftover_temp_file_is_never_read(tmp_path: Path) -> None:
    write_records([{"i": 0}], tmp_path)
    (tmp_path / ".00001.jsonl.gz.tmp").write_bytes(b"half a shard from a killed process")
    assert list(read_records(tmp_path)) == [{"i": 0}]
    assert [p.name for p in write_records([{"i": 1}], tmp_path)] == ["00001.jsonl.gz"]
    assert shard_names(tmp_path) == ["00000.jsonl.gz", "00001.jsonl.gz"]


@pytest.mark.parametrize("dst", ["out", "out.jsonl.gz", "out.parquet"])
def test_bad_record_leaves_no_partial_output(tmp_path: Path, dst: str) -> None:
    records = variants("page") * 2
    records[3] = records[3] | {"depth": "deep"}
    with pytest.raises(RecordError) as info:
        write_records(records, tmp_path / dst, "page", shard_size=10)
    assert (info.value.index, info.value.field) == (3, "depth")
    assert f"{dst}: record 4: field 'depth': 'deep' is not of type 'integer'" in str(info.value)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []


def test_shard_writer_flush_count_paths(tmp_path: Path) -> None:
    with ShardWriter(tmp_path, kind="qa", shard_size=100) as writer:
        writer.write(example("qa"))
        with pytest.raises(RecordError, match="record 2: field 'answer'"):
            writer.write(example("qa") | {"answer": ""})
        writer.flush()  # a short shard, durable and readable while the writer stays open
        assert list(read_records(tmp_path, "qa")) == [example("qa")]
        writer.write(example("qa"))
    assert writer.count == 2
    assert [p.name for p in writer.paths] == ["00000.jsonl.gz", "00001.jsonl.gz"]
    with pytest.raises(ValueError, match="closed"):
        writer.write(example("qa"))


def test_shard_writer_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="unknown format 'csv'"):
        ShardWriter(tmp_path, fmt="csv")
    with pytest.raises(RecordError, match="unknown record kind"):
        ShardWriter(tmp_path, kind="pages")
    with pytest.raises(ValueError, match="shard_size"):
        ShardWriter(tmp_path, shard_size=0)


def test_gzip_shards_are_reproducible(tmp_path: Path) -> None:
    write_records(variants("page"), tmp_path / "a.jsonl.gz")
    write_records(variants("page"), tmp_path / "b.jsonl.gz")
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()


# --- streaming ---


def test_reading_first_record_of_50mb_file_uses_little_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl.gz"
    line = json.dumps({"i": 0, "text": "lorem ipsum " * 80}).encode() + b"\n"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(line * (50_000_000 // len(line)))
    tracemalloc.start()
    try:
        records = read_records(path)
        first = next(records)
        _, peak = tracemalloc.get_traced_memory()
        records.close()
    finally:
        tracemalloc.stop()
    assert first["i"] == 0
    assert peak < 2_000_000


# --- errors ---


def test_invalid_json_names_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n\n{"a": tru}\n')
    records = read_records(tmp_path / "bad.jsonl")
    assert next(records) == {"a": 1}
    with pytest.raises(RecordError) as info:
        next(records)
    assert (info.value.line, info.value.path) == (3, tmp_path / "bad.jsonl")
    assert "bad.jsonl:3: invalid JSON at column " in str(info.value)


def test_schema_error_in_file_names_line_and_field(tmp_path: Path) -> None:
    bad = example("page")
    bad["links"][1] = "/wiki/Relative"
    for fmt in FORMATS:
        write_records([example("page"), bad], tmp_path / f"p.{fmt}")
        with pytest.raises(RecordError, match=rf"p\.{fmt}:2: field 'links\.1': '/wiki/Relative' does not match"):
            list(read_records(tmp_path / f"p.{fmt}", "page"))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("list.jsonl", b'{"a": 1}\n[1, 2]\n', r"list\.jsonl:2: expected a JSON object, got list"),
        ("utf.jsonl", b'{"a": "\xff"}\n', r"utf\.jsonl:1: invalid "),
        ("plain.jsonl.gz", b'{"a": 1}\n', r"plain\.jsonl\.gz: corrupt or truncated gzip: Not a gzipped file"),
        ("junk.parquet", b"PAR1 not really", r"junk\.parquet: unreadable Parquet: "),
        ("data.json", b"{}", r"data\.json: unknown extension; expected one of: \.jsonl\.gz, \.jsonl, \.parquet"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(RecordError, match=message):
        list(read_records(tmp_path / name))


def test_truncated_gzip(tmp_path: Path) -> None:
    [path] = write_records(({"i": i, "pad": "x" * i} for i in range(3000)), tmp_path / "t.jsonl.gz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(RecordError, match=r"t\.jsonl\.gz: corrupt or truncated gzip after line \d+: "):
        list(read_records(path))


def test_path_and_kind_errors_raise_before_iterating(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="missing: no such file or directory"):
        read_records(tmp_path / "missing")
    write_records([{"a": 1}], tmp_path / "r.jsonl")
    with pytest.raises(RecordError, match="unknown record kind 'page '"):
        read_records(tmp_path / "r.jsonl", "page ")
    with pytest.raises(RecordError, match=r"out\.json: unknown extension; expected a directory"):
        write_records([{"a": 1}], tmp_path / "out.json")


def test_write_errors(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match=r"record 2: not JSON-serialisable"):
        write_records([{"a": 1}, {"when": datetime.datetime(2025, 1, 1)}], tmp_path / "r.jsonl")
    mixed = [{"meta": {"x": 1}}, {"meta": {"x": "one"}}]
    with pytest.raises(RecordError, match=r"m\.parquet: field 'meta': cannot store as Parquet .* use jsonl\.gz"):
        write_records(mixed, tmp_path / "m.parquet")
    assert shard_names(tmp_path) == []


def test_record_error_survives_pickling() -> None:
    error = RecordError("bad", path="pages/00001.jsonl.gz", line=12, field="links.3")
    assert str(error) == "pages/00001.jsonl.gz:12: field 'links.3': bad"
    copied = pickle.loads(pickle.dumps(error))
    assert (str(copied), copied.line, copied.field) == (str(error), 12, "links.3")
    assert isinstance(copied, ValueError)
    assert copy.copy(error).path == Path("pages/00001.jsonl.gz")
