"""The dataset card `wdtk push` writes: YAML metadata (license, pretty name, language, size category, the `configs:`
block), then counts, the crawled domains, funnel figures and provenance (models, judge, prompt versions, wdtk
version, and the commands that made the run), with secrets, endpoint URLs and private hosts taken out."""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from .. import __version__
from ..schemas import RecordError, read_records
from ..schemas.runlog import redact

DEFAULT_CONFIG = "sft"  # the training set proper; without it, the first config present
TAGS = ["web-agent", "synthetic", "tool-use", "wdtk"]
TASK_CATEGORIES = ["question-answering", "text-generation"]
MARKER = "<!-- written by wdtk push: every push rewrites this card and data/ -->"
SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
         (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"))  # fmt: skip
# options whose values are endpoints (LLM servers, Dask schedulers): where the run ran, not what the data is
_ENDPOINT_FLAG = re.compile(r"^--?[\w-]*(api[-_]base|scheduler|endpoint)$", re.I)
_URL = re.compile(r"\b(https?|tcp)://[^\s/'\"]+")
ENDPOINT = "ENDPOINT"


CARD = """---
{header}---
{marker}

# {name}

Training data for web-search agents, made with wdtk {version} from the run `{run}`.

| config | rows | files | source | JSON columns |
|---|---|---|---|---|
{configs}
{missing}
```python
from datasets import load_dataset

ds = load_dataset("{repo_id}", "{default}", split="train")
```

JSON columns hold values whose keys or types vary from row to row (tool-call arguments, tool schemas, meta): Arrow
JSON, which `datasets` >= 4 returns as the original objects and other Parquet readers as JSON text (`json.loads` it).
`datasets` reads their numbers with pandas' fast parser, which can change a float's last digit (0.7 may come back as
0.7000000000000001); `json.loads` on the text is exact. A field a record lacks is null in its column.

## Sources

{sources}

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
{recipe}"""


def render_card(
    run: Path, configs: dict, prov: dict, *, repo_id: str | None, license: str = "unknown",
    pretty_name: str | None = None, languages: tuple[str, ...] = ("en",), missing: dict | None = None,
) -> str:  # fmt: skip
    """The dataset card: YAML metadata with the `configs:` block, then counts, sources, funnel figures, provenance.

    `missing` maps each config left out (no rows) to why, said under the table: the card names no config that
    `load_dataset` cannot load."""
    import yaml

    default = DEFAULT_CONFIG if DEFAULT_CONFIG in configs else next(iter(configs))
    name = repo_id.split("/")[-1] if repo_id else run.resolve().name
    title = pretty_name or f"{name.replace('-', ' ').replace('_', ' ')}: web-search agent training data"
    entries = [{"config_name": c, "data_files": [{"split": "train", "path": f"data/{c}/train-*"}]} for c in configs]
    header = {"license": license, "pretty_name": title, "language": list(languages),
              "size_categories": [size_category(max(c["rows"] for c in configs.values()))],
              "task_categories": TASK_CATEGORIES, "tags": TAGS}  # fmt: skip
    header["configs"] = [e | {"default": True} if e["config_name"] == default else e for e in entries]
    cells = [(n, c["rows"], c["files"], c["source"], ", ".join(c["json_columns"]) or "-") for n, c in configs.items()]
    left_out = "".join(f"\nNot in this repo: `{n}` ({why}).\n" for n, why in (missing or {}).items())
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
    listing = {
        k: ", ".join(f"`{v}`" for v in sorted({_model(x) for x in values})) or "not recorded"
        for k, values in prov.items()
    }
    commands = "".join(f"\n  - {c}" for c in _commands(run)) or "not recorded (no commands.jsonl)"
    return CARD.format(
        header=yaml.safe_dump(header, sort_keys=False), marker=MARKER, name=title, version=__version__,
        default=default, run=run.resolve().name, missing=left_out, sources=_sources(run),
        configs="\n".join("| " + " | ".join(map(str, row)) + " |" for row in cells),
        repo_id=repo_id or "ORG/NAME", stages="\n".join(_stage_rows(run, funnel)), totals=totals if funnel else "",
        judge=_judge(funnel), commands=commands, recipe=_recipe(run), **listing,
    )  # fmt: skip


def size_category(rows: int) -> str:
    """The Hub's size category for `rows` rows."""
    return next((label for limit, label in SIZES if rows < limit), "n>100M")


def crawled_domains(run: Path) -> Counter:
    """Pages per site in RUN/crawl/pages (else the sites the QA cites), private hosts as one 'local server'."""
    pages = run / "crawl" / "pages"
    if pages.exists():
        urls = (r.get("final_url") or r.get("url") for r in read_records(pages))
    else:
        qa = run / "filter" / "records"
        urls = (u for r in (read_records(qa) if qa.exists() else ()) for u in r.get("evidence_urls") or [])
    return Counter(_site(u) for u in urls if isinstance(u, str) and u.startswith("http"))


def _sources(run: Path) -> str:
    domains = crawled_domains(run)
    if not domains:
        return "Crawled sites: not recorded (no crawl/pages in the run)."
    shown = ", ".join(f"{d} ({n:,} pages)" for d, n in domains.most_common(20))
    more = f", and {len(domains) - 20} more" if len(domains) > 20 else ""
    return f"Crawled from {len(domains)} site(s): {shown}{more}. Page text belongs to these sites: mind their terms."


def _site(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return "a local server (e.g. wdtk's generated site)" if _private(host) else host.removeprefix("www.")


def _private(host: str) -> bool:
    """A host no one else can reach: loopback, private and link-local addresses, localhost, single-label names."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or "." not in host or host.endswith((".local", ".internal", ".localhost"))
    return address.is_private or address.is_loopback or address.is_link_local


def _model(name: str) -> str:
    """A model as its record names it, without the endpoint the run reached it at ("openai:X@http://host/v1")."""
    return name.split("@", 1)[0] if "@http" in name else name


def _scrub(argv: list[str]) -> list[str]:
    """argv with endpoint option values replaced and private hosts in URLs hidden."""
    out, hide_next = [], False
    for arg in argv:
        flag, eq, _ = arg.partition("=")
        if hide_next:
            arg, hide_next = ENDPOINT, False
        elif eq and _ENDPOINT_FLAG.match(flag):
            arg = f"{flag}={ENDPOINT}"
        elif _ENDPOINT_FLAG.match(arg):
            hide_next = True
        out.append(_URL.sub(lambda m: m.group(0) if not _private(_host(m.group(0))) else f"{m.group(1)}://LOCAL", arg))
    return out


def _recipe(run: Path) -> str:
    """The resolved recipe that made the run (`wdtk run` writes RUN/recipe.yaml), endpoints and private hosts out."""
    path = run / "recipe.yaml"
    if not path.is_file():
        return ""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition(":")
        flag = "--" + key.strip().lstrip("- ").replace("_", "-")
        if sep and _ENDPOINT_FLAG.match(flag) and value.strip() not in ("", "null"):
            line = f"{key}: {ENDPOINT}"
        lines.append(_scrub(redact([line]))[0])
    return "\n## Recipe\n\nThe recipe it ran, every option resolved (`wdtk run` takes it as it is):\n\n```yaml\n" + (
        "\n".join(lines) + "\n```\n"
    )


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


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
    text = f"LLM judge `{_model(str(judge.get('model')))}`, prompt version `{judge.get('prompt_version')}`"
    return text + (f"; agrees with exact match on {agree['agree_with_exact']} of {agree['judged']}" if agree else "")


def _commands(run: Path) -> list[str]:
    path, lines = run / "commands.jsonl", []
    for c in read_records(path) if path.is_file() else []:
        argv = _scrub(redact([str(a) for a in c.get("argv", [])]))
        argv = argv[1:] if argv and Path(argv[0]).name == "wdtk" else argv  # not the executable's local path
        lines.append(f"`wdtk {shlex.join(argv)}` ({c.get('started', '?')}, wdtk {c.get('wdtk_version', '?')})")
    return lines
