"""`wdtk push`: publish a run directory as one Hugging Face dataset repo, or write that repo's tree to disk.

    wdtk push runs/demo --repo-id ORG/NAME [--private]   # token from HF_TOKEN or `hf auth login`
    wdtk push runs/demo --local-dir out/demo-dataset     # no upload: the very tree an upload sends

Configs qa, trajectories, sft and rl become data/<config>/train-*.parquet, beside a README.md card. A column is
native Arrow when Arrow gives every value back exactly. Dicts whose keys vary by row (tool-call arguments, tool
schemas, meta) would come back as one struct padded with null keys, and mixed types do not convert at all: such a
column is Arrow JSON (a list of JSON for a list column), which `datasets` decodes to the very same objects.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..report.card import MARKER, render_card
from ..schemas import batched, read_records
from ..schemas.formats import ROW_GROUP

JSON, JSON_LIST = pa.json_(), pa.list_(pa.json_())
PROVENANCE = ("model", "prompt_version", "wdtk_version")
NO_TOKEN = "no Hugging Face token: set HF_TOKEN or run `hf auth login` (or give only --local-dir to write the tree)"


def _sources(run: Path) -> dict[str, tuple[list[Path], str | None, str]]:
    """config -> (source paths, record kind to validate or None for generic rows, source as the card names it)."""
    qa, qa_source = [run / "filter" / "records"], "filter/records"
    if not qa[0].exists():
        qa, qa_source = sorted(run.glob("synth/*/records")), "synth/*/records, UNFILTERED (no filter was run)"
    return {
        "qa": (qa, "qa", qa_source),
        "trajectories": ([run / "funnel" / "records"], "trajectory", "funnel/records (kept trajectories)"),
        "sft": ([run / "export" / "sft"], None, "export/sft (TRL conversational)"),
        "rl": ([run / "export" / "rl"], None, "export/rl (RL pool)"),
    }


def _chunks(paths: list[Path], kind: str | None, size: int) -> Iterator[list[dict]]:
    return batched(chain.from_iterable(read_records(p, kind) for p in paths if p.exists()), size)


def _exact_type(values: list) -> pa.DataType | None:
    """The Arrow type that gives every value back exactly (as JSON: 1 and 1.0 differ), or None if none does."""
    try:
        array = pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None
    same = json.dumps(array.to_pylist(), sort_keys=True) == json.dumps(values, sort_keys=True)
    return array.type if same and not _empty_struct(array.type) else None


def _empty_struct(t: pa.DataType) -> bool:
    """Parquet cannot store a struct without fields (a `{}` value)."""
    if pa.types.is_struct(t):
        return t.num_fields == 0 or any(_empty_struct(f.type) for f in t)
    return pa.types.is_list(t) and _empty_struct(t.value_type)


def _plan(chunks: Iterable[list[dict]], prov: dict[str, set]) -> tuple[int, pa.Schema]:
    """Pass 1: count the rows, note their provenance, and choose each column's type: native if exact, else JSON."""
    types: dict[str, set] = {}  # column -> the native types its chunks need (None: no exact one)
    lists, rows = {}, 0
    for chunk in chunks:
        rows += len(chunk)
        for row in chunk:
            for meta in (m for m in (row.get("meta"), row.get("metadata")) if isinstance(m, dict)):
                prov.update({k: prov[k] | {meta[k]} for k in PROVENANCE if isinstance(meta.get(k), str)})
        for key in dict.fromkeys(k for row in chunk for k in row):
            values = [row.get(key) for row in chunk]
            t = _exact_type(values)
            types.setdefault(key, set()).update([] if t is not None and pa.types.is_null(t) else [t])
            lists[key] = lists.get(key, True) and all(isinstance(v, list) for v in values if v is not None)
    fields = []
    for key, needed in types.items():  # two types: the chunks differ in keys or element types; a union pads nulls
        native = None if None in needed or len(needed) > 1 else next(iter(needed), pa.null())
        fields.append(pa.field(key, native or (JSON_LIST if lists[key] else JSON)))
    return rows, pa.schema(fields)


def _table(chunk: list[dict], schema: pa.Schema) -> pa.Table:
    dumps = lambda v: None if v is None else json.dumps(v, ensure_ascii=False, separators=(",", ":"))  # noqa: E731
    columns = []
    for field in schema:
        values = [row.get(field.name) for row in chunk]
        if field.type == JSON:
            columns.append(pa.array(map(dumps, values), pa.string()).cast(JSON))
        elif field.type == JSON_LIST:
            encoded = [None if v is None else list(map(dumps, v)) for v in values]
            columns.append(pa.array(encoded, pa.list_(pa.string())).cast(JSON_LIST))
        else:
            columns.append(pa.array(values, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _prepare(out: Path) -> None:
    """Make `out` ready for a new tree: an earlier push tree is replaced, anything else is never touched."""
    if out.is_dir() and any(out.iterdir()):
        card = out / "README.md"
        if not (card.is_file() and MARKER in card.read_text(encoding="utf-8", errors="replace")):
            raise FileExistsError(f"{out} is not empty and holds no earlier `wdtk push` tree; choose a new directory")
        shutil.rmtree(out / "data", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def build_repo(
    run_dir: str | Path, out_dir: str | Path, *, repo_id: str | None = None, shard_size: int = 10_000,
    license: str = "unknown", pretty_name: str | None = None, languages: tuple[str, ...] = ("en",),
) -> dict:  # fmt: skip
    """Write the dataset repo tree for `run_dir` into `out_dir`: data/<config>/train-*.parquet and README.md.

    Returns {"configs": {name: {"rows", "files", "json_columns", "source"}}, "warnings": [...]}: a config whose source
    is missing or empty is left out, with a warning and a note on the card (`datasets` loads no empty split). Raises
    FileNotFoundError when no config has rows, FileExistsError when `out_dir` holds other files, RecordError (file
    and line) on a bad record.
    """
    run, out = Path(run_dir), Path(out_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run directory")
    _prepare(out)
    prov: dict[str, set] = {key: set() for key in PROVENANCE}
    configs, warnings, missing = {}, [], {}
    for name, (paths, kind, source) in _sources(run).items():
        rows, schema = _plan(_chunks(paths, kind, shard_size), prov)
        if not rows:
            where = source.split(" ")[0]
            missing[name] = f"no records in {where}" + (": the funnel kept no trajectory" if name == "sft" else "")
            warnings.append(f"{name}: left out, {missing[name]}")
            continue
        if "UNFILTERED" in source:
            warnings.append(f"qa: {run / 'filter'} does not exist, so qa holds the unfiltered synth records")
        (out / "data" / name).mkdir(parents=True)
        shards = -(-rows // shard_size)
        for i, chunk in enumerate(_chunks(paths, None, shard_size)):  # pass 2: the same chunks, already validated
            path = out / "data" / name / f"train-{i:05d}-of-{shards:05d}.parquet"
            pq.write_table(_table(chunk, schema), path, compression="zstd", row_group_size=ROW_GROUP)
        json_columns = [f.name for f in schema if f.type in (JSON, JSON_LIST)]
        configs[name] = {"rows": rows, "files": shards, "json_columns": json_columns, "source": source}
    if not configs:
        raise FileNotFoundError(f"nothing to push from {run}: " + "; ".join(warnings))
    card = render_card(run, configs, prov, repo_id=repo_id, license=license, pretty_name=pretty_name,
                       languages=tuple(languages), missing=missing)  # fmt: skip
    (out / "README.md").write_text(card, encoding="utf-8")
    return {"configs": configs, "warnings": warnings}


def push(run_dir: str | Path, repo_id: str, token: str | None = None, private: bool = False, *,
         local_dir: str | Path | None = None, revision: str | None = None, commit_message: str | None = None,
         **card) -> dict:  # fmt: skip
    """Build the repo tree (in `local_dir`, else a temp dir) and upload it to the dataset repo `repo_id` in one commit.

    `token` None means huggingface_hub's own lookup (HF_TOKEN, then the `hf auth login` cache); it is checked before
    anything is built and written nowhere. `card` (shard_size, license, pretty_name, languages) goes to build_repo.
    `private` makes the repo private, an existing public one too. The commit replaces the repo's data/ and README.md.
    Returns build_repo's summary plus "commit_url".
    """
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.utils import validate_repo_id

    validate_repo_id(repo_id)
    if not (token := token or get_token()):
        raise PermissionError(NO_TOKEN)
    with tempfile.TemporaryDirectory(prefix="wdtk-push-") as tmp:
        tree = Path(local_dir or tmp)
        summary = build_repo(run_dir, tree, repo_id=repo_id, **card)
        if token in (tree / "README.md").read_text(encoding="utf-8"):  # the card goes public: one last check
            raise PermissionError("the dataset card would contain the Hugging Face token; nothing was uploaded")
        api = HfApi(token=token)
        api.create_repo(repo_id, repo_type="dataset", private=True if private else None, exist_ok=True)
        if private:  # create_repo leaves an existing repo's visibility alone
            api.update_repo_settings(repo_id, private=True, repo_type="dataset")
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
        message = commit_message or f"wdtk push {Path(run_dir).resolve().name} (wdtk {__version__})"
        info = api.upload_folder(
            repo_id=repo_id, folder_path=tree, repo_type="dataset", revision=revision, commit_message=message,
            allow_patterns=["README.md", "data/**"],
            delete_patterns=["data/**"],  # shards of an earlier, larger push must not linger under the globs
        )  # fmt: skip
    return summary | {"commit_url": getattr(info, "commit_url", None)}
