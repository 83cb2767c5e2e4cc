"""RUN/commands.jsonl: the wdtk commands that wrote into a run directory, so a dataset card can say how it was made.

Secrets never reach the file: values of options that name keys, tokens or passwords are replaced, and so is
anything shaped like a provider key (sk-..., hf_...) wherever it appears.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__

_SECRET_FLAG = re.compile(r"^--?[\w-]*(api[-_]?key|token(?!s)|secret|passw(or)?d|credential|auth)[\w-]*$", re.I)
_SECRET_ASSIGN = re.compile(r"^(\w*(?:token|key|secret|password)\w*=).+", re.I)  # HF_TOKEN=..., --set API_KEY=...
# provider keys (sk-..., hf_..., GitHub and Slack tokens), Bearer tokens, and credentials in URLs (user:pass@host)
_SECRET_TEXT = re.compile(r"\b(?:hf|sk|ghp|gho|github_pat|xox[abp])[-_][\w-]{8,}|Bearer\s+\S+|(?<=://)[^/@\s]+(?=@)")
REDACTED = "REDACTED"  # shell-safe: commands are shown shlex-joined


def redact(argv: list[str]) -> list[str]:
    """argv with secrets replaced: values of --api-key/--token-like options, NAME_TOKEN=..., key-shaped strings."""
    out, hide_next = [], False
    for arg in argv:
        flag, eq, _ = arg.partition("=")
        if hide_next or (eq and _SECRET_FLAG.match(flag)):
            arg, hide_next = REDACTED if hide_next else f"{flag}={REDACTED}", False
        elif _SECRET_FLAG.match(arg):
            hide_next = True
        out.append(_SECRET_TEXT.sub(REDACTED, _SECRET_ASSIGN.sub(rf"\1{REDACTED}", arg)))
    return out


def current_argv() -> list[str]:
    """The running click command with every parameter it ran with (defaults included), else sys.argv."""
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return ["wdtk", *sys.argv[1:]]
    names, c = [], ctx
    while c.parent is not None:  # the root's name is however wdtk was started ("python -m wdtk.cli", a path...)
        names.append(c.info_name)
        c = c.parent
    argv = ["wdtk", *reversed(names)]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        values = value if isinstance(value, tuple | list) else [value]
        flag = max(param.opts, key=len) if isinstance(param, click.Option) else None
        for v in values:
            if v is None or v is False:
                continue
            argv.append(str(v) if flag is None else flag if v is True else f"{flag}={v}")
    return argv


def log_command(run_dir: Path, argv: list[str] | None = None) -> None:
    """Append this command line to run_dir/commands.jsonl (one JSON object a line)."""
    argv = argv or current_argv()
    line = {
        "argv": redact(argv),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "wdtk_version": __version__,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "commands.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
