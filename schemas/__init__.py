"""Record schemas and streaming record I/O: the one contract between wdtk's stages.

Kinds (`KINDS`): `page` (crawler), `qa` (synthesis), `trajectory` (ReAct rollouts in TRL's
conversational format) and `judgement` (eval verdicts). Each has a draft 2020-12 JSON Schema in
`schemas/<kind>.schema.json`, the single source of truth; records are validated where written.

Rules every record follows:

- `id` is `record_id(...)` of the fields that define the record: the first 16 hex chars of a sha256
  over canonical JSON, identical across runs and machines. Pass the kind first, e.g.
  `record_id("page", url)`, `record_id("qa", question, answer)`.
- `meta` holds provenance. It is free-form, but `wdtk_version`, `model`, `prompt_version` (hash of the
  prompt file), `parent_ids` (ids of input records) and `extractor` mean the same in every kind.
  Fields a schema does not know are rejected at the top level: extra data belongs in `meta`.
- Optional fields are omitted, never null. Parquet stores absent fields as nulls, so its reader drops
  null-valued keys at every depth; that is what makes Parquet round trips exact. A null inside `meta`
  or tool arguments would therefore not survive Parquet, and the schemas reject nulls where they can.

Files: `.jsonl`, `.jsonl.gz` or `.parquet`, or a directory of numbered shards `00000.jsonl.gz`, ...
each written to a hidden temp file and renamed when complete (`ShardWriter`), so readers never see
a half-written shard. A stage writes a hidden `.complete` marker into a shard directory last
(`mark_complete`); reading a directory without it warns (`IncompleteWarning`), and the next stage
refuses it (`require_complete`) unless told to allow incomplete input.
Readers stream: memory does not grow with the file. Every problem with a
file or record raises `RecordError`, whose str() names the file, line, field and what is wrong.
"""

from .errors import WdtkError
from .formats import FORMATS
from .records import ID_LENGTH, KINDS, RecordError, load_schema, record_id, validate
from .shards import (
    AccountingError,
    IncompleteInput,
    IncompleteWarning,
    ShardWriter,
    batched,
    check_accounting,
    clear_complete,
    is_complete,
    mark_complete,
    read_records,
    require_complete,
    write_records,
)

__all__ = [
    "AccountingError",
    "FORMATS",
    "ID_LENGTH",
    "IncompleteInput",
    "IncompleteWarning",
    "KINDS",
    "RecordError",
    "ShardWriter",
    "WdtkError",
    "batched",
    "check_accounting",
    "clear_complete",
    "is_complete",
    "mark_complete",
    "load_schema",
    "read_records",
    "record_id",
    "require_complete",
    "validate",
    "write_records",
]
