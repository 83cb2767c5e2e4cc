"""Progress of a running stage: a rich bar over its inputs (known total, ETA) with records and LLM calls beside it on
a terminal; a plain line every few seconds on stderr otherwise (logs, CI, a pipe), so a long run never looks hung."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

LINE_EVERY = 5.0  # seconds between progress lines when stderr is not a terminal


class StageProgress:
    """A callable for run_stage's `progress` events ({"total", "done", "records", "calls", "failed"})."""

    def __init__(self, name: str, console: Console | None = None, every: float = LINE_EVERY) -> None:
        self.name, self.every = name, every
        self.console = console or Console(stderr=True)
        self.started = self.last_line = time.monotonic()
        self.bar: Progress | None = None
        self.task = None
        self.event: dict = {}
        self.resumed: int | None = None  # inputs already done at the first event (a resumed run): not this run's pace

    def __enter__(self) -> StageProgress:
        if self.console.is_terminal:
            self.bar = Progress(
                TextColumn(self.name),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("inputs · {task.fields[detail]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task(self.name, total=None, detail="")
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
        elif self.event and exc[0] is None:
            self._line()

    def __call__(self, event: dict) -> None:
        self.event = event
        if self.resumed is None:
            self.resumed = event.get("done") or 0
        if self.bar is not None:
            self.bar.update(self.task, total=event["total"], completed=event["done"], detail=self.detail())
        elif time.monotonic() - self.last_line >= self.every:
            self._line()

    def detail(self) -> str:
        """Records, LLM calls and failures so far."""
        e = self.event
        failed = f", {e['failed']} failed" if e.get("failed") else ""
        return f"{e.get('records', 0)} records, {e.get('calls', 0)} LLM calls{failed}"

    def _line(self) -> None:
        e, elapsed = self.event, time.monotonic() - self.started
        total, done = e.get("total") or 0, e.get("done") or 0
        pace = done - (self.resumed or 0)
        eta = f", ETA {_clock(elapsed / pace * (total - done))}" if pace > 0 and done < total else ""
        print(f"{self.name}: {done}/{total} inputs, {self.detail()}, {_clock(elapsed)} elapsed{eta}", file=sys.stderr)
        self.last_line = time.monotonic()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
