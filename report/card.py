"""The dataset card `wdtk push` writes: YAML metadata with the `configs:` block, then counts, funnel figures and
provenance (models, judge, prompt versions, wdtk version, and the commands that made the run, secrets redacted)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from .. import __version__
from ..schemas import RecordError, read_records
from ..schemas.runlog import redact

DEFAULT_CONFIG = "sft"  # the training set proper; without it, the first config present
TAGS = ["web-agent", "synthetic", "tool-use", "wdtk"]
TASK_CATEGORIES = ["question-answering", "text-generation"]
MARKER = "<!-- written by wdtk push: every push rewrites this card and data/ -->"


CARD = """---
{header}---
{marker}

# {name}

Training data for web-search agents, made with wdtk {version} from the run `{run}`.

| config | rows | files | source | JSON columns |
|---|---|---|---|---|
{configs}

```python
from datasets import load_dataset

ds = load_dataset("{repo_id}", "{default}", split="train")
```

JSON columns hold values whose keys or types vary from row to row (tool-call arguments, tool schemas, meta): Arrow
JSON, which `datasets` >= 4 returns as the original objects and other Parquet readers as JSON text (`json.loads` it).
`datasets` reads their numbers with pandas' fast parser, which can change a float's last digit (0.7 may come back as
0.7000000000000001); `json.loads` on the text is exact. A field a record lacks is null in its column.

## Funnel

| stage | in | kept | dropped |
|---|---|---|---|
{stages}
{totals}
## Provenance

- Models: {model}
- Judge: {judge}
- Prompt versions: {prompt_version}
- wdtk versions of the records: {wdtk_version}; pushed with wdtk {version}
- Commands that made it: {commands}
"""


def render_card(run: Path, configs: dict, prov: dict, *, repo_id: str | None, license: str = "unknown") -> str:
    """The dataset card: YAML metadata with the `configs:` block, then counts, funnel figures and provenance."""
    import yaml

    default = DEFAULT_CONFIG if DEFAULT_CONFIG in configs else next(iter(configs))
    name = repo_id.split("/")[-1] if repo_id else run.resolve().name
    entries = [{"config_name": c, "data_files": [{"split": "train", "path": f"data/{c}/train-*"}]} for c in configs]
    header = {"license": license, "pretty_name": name, "tags": TAGS, "task_categories": TASK_CATEGORIES}
    header["configs"] = [e | {"default": True} if e["config_name"] == default else e for e in entries]
    cells = [(n, c["rows"], c["files"], c["source"], ", ".join(c["json_columns"]) or "-") for n, c in configs.items()]
    funnel = _load_json(run / "funnel" / "summary.json")
    totals = (
        "\n{trajectories} trajectories for {questions} questions: {kept} kept, answering {questions_kept} questions; "
    )
    totals = totals.format_map(
        {k: funnel.get(k, "?") for k in ("trajectories", "questions", "kept", "questions_kept")}
    )
    totals += (
        f"{funnel.get('rl_pool', '?')} questions with no kept trajectory went to the RL pool.\n" if funnel else ""
    )
    listing = {k: ", ".join(f"`{v}`" for v in sorted(values)) or "not recorded" for k, values in prov.items()}
    commands = "".join(f"\n  - {c}" for c in _commands(run)) or "not recorded (no commands.jsonl)"
    return CARD.format(
        header=yaml.safe_dump(header, sort_keys=False), marker=MARKER, name=name, version=__version__, default=default,
        run=run.resolve().name, configs="\n".join("| " + " | ".join(map(str, row)) + " |" for row in cells),
        repo_id=repo_id or "ORG/NAME", stages="\n".join(_stage_rows(run, funnel)), totals=totals if funnel else "",
        judge=_judge(funnel), commands=commands, **listing,
    )  # fmt: skip


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RecordError(f"invalid JSON summary: {e}", path=path) from None


def _stage_rows(run: Path, funnel: dict) -> list[str]:
    """One table row per stage summary: synthesis stages, filter, sampling, then the funnel's three stages."""
    paths = [*sorted(run.glob("synth/*/summary.json")), run / "filter/summary.json", run / "sample/summary.json"]
    stages = [(p.parent.relative_to(run).as_posix(), s) for p in paths if (s := _load_json(p))]
    rows = []
    for name, s in stages + [(f"funnel/{s.get('name')}", s) for s in funnel.get("stages", [])]:
        reasons = ", ".join(f"{k} {n}" for k, n in (s.get("dropped") or s.get("rejected") or {}).items()) or "-"
        rows.append(f"| {name} | {s.get('in', s.get('items', '?'))} | {s.get('kept', '?')} | {reasons} |")
    return rows or ["| (no stage summaries) | | | |"]


def _judge(funnel: dict) -> str:
    judge, agree = funnel.get("judge") or {}, funnel.get("judge_agreement") or {}
    if judge.get("method") != "llm":
        return {"exact": "exact match against the gold answer"}.get(judge.get("method"), "not recorded")
    text = f"LLM judge `{judge.get('model')}`, prompt version `{judge.get('prompt_version')}`"
    return text + (f"; agrees with exact match on {agree['agree_with_exact']} of {agree['judged']}" if agree else "")


def _commands(run: Path) -> list[str]:
    path, lines = run / "commands.jsonl", []
    for c in read_records(path) if path.is_file() else []:
        argv = redact([str(a) for a in c.get("argv", [])])
        argv = argv[1:] if argv and Path(argv[0]).name == "wdtk" else argv  # not the executable's local path
        lines.append(f"`wdtk {shlex.join(argv)}` ({c.get('started', '?')}, wdtk {c.get('wdtk_version', '?')})")
    return lines
