"""A crawl's state on disk: the written shards are the checkpoint, plus a small journal and the crawl's options.

A SIGKILLed crawl leaves finished shards (written atomically), perhaps a temp shard (discarded), and the journal
of URLs that gave no page (duplicates, 404s, non-HTML ...). From these a restarted crawl rebuilds its seen set
and its frontier, so nothing saved is fetched again and nothing is lost. Scrapy's JOBDIR is not used: it saves
its queue only on a clean stop.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..schemas import RecordError, WdtkError, clear_complete, is_complete, read_records

STATE_DIR = ".crawl"  # inside the output directory
PAGES_DIR = "pages"


class CrawlStateError(WdtkError):
    """The output directory holds state this crawl cannot resume: other options, or damaged files."""


def crawl_key(roots, max_depth: int, max_pages: int, allow, deny, same_site: bool, robots: bool) -> dict:
    """The options a resumed crawl must share with the saved one (the rest may change between runs)."""
    return {"roots": list(roots), "max_depth": max_depth, "max_pages": max_pages, "allow": list(allow),
            "deny": list(deny), "same_site": bool(same_site), "robots": bool(robots)}  # fmt: skip


def _differences(saved: dict, key: dict) -> str:
    changed = [name for name in key if saved.get(name) != key[name]]
    return ", ".join(f"{name} {saved.get(name)!r} -> {key[name]!r}" for name in changed)


def prepare(out_dir: Path, key: dict, restart: bool = False) -> str:
    """Check or start the state in `out_dir`: 'new', 'resume', or 'complete' (a finished crawl of the same key).

    Raises CrawlStateError for a crawl with other options or unreadable state; --restart clears both.
    """
    state, pages = out_dir / STATE_DIR, out_dir / PAGES_DIR
    if restart:
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(pages, ignore_errors=True)
    config = state / "config.json"
    if config.exists():
        try:
            saved = json.loads(config.read_text())
        except (OSError, ValueError) as exc:
            raise CrawlStateError(f"{config} is unreadable ({exc}): run with --restart to start over") from None
        if saved != key:
            raise CrawlStateError(
                f"{out_dir} holds a crawl with other options ({_differences(saved, key)}): run the same command to "
                "resume it, --restart to start over, or choose another output directory"
            )
        return "complete" if pages.is_dir() and is_complete(pages) else "resume"
    if pages.is_dir() and any(pages.iterdir()):
        raise CrawlStateError(f"{pages} holds pages of an unknown crawl: run with --restart, or another directory")
    state.mkdir(parents=True, exist_ok=True)
    tmp = config.with_suffix(".tmp")
    tmp.write_text(json.dumps(key, indent=1) + "\n")
    tmp.replace(config)
    return "new"


def saved_pages(out_dir: Path) -> Iterator[dict]:
    """The page records already written: the checkpoint. A damaged shard raises CrawlStateError."""
    pages = out_dir / PAGES_DIR
    if not pages.is_dir():
        return
    for leftover in pages.glob(".*.tmp"):  # a shard that a killed crawl never finished: its pages are refetched
        leftover.unlink()
    try:
        yield from read_records(pages, kind="page")
    except RecordError as exc:
        raise CrawlStateError(f"{exc}: the crawl's pages are damaged; run with --restart to start over") from None


class Journal:
    """URLs fetched that gave no page record, one JSON line each, appended as they happen.

    A kill can cut the last line short; reading skips it (that URL is simply fetched again).
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / STATE_DIR / "journal.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8", buffering=1)  # line-buffered: each entry is a write

    def add(self, url: str, outcome: str, **extra: str) -> None:
        """Record one URL's outcome (duplicate_content with `of`, http_404, non_html, robots_txt ...)."""
        self._file.write(json.dumps({"url": url, "outcome": outcome, **extra}) + "\n")

    def close(self) -> None:
        """Stop appending."""
        self._file.close()

    @staticmethod
    def read(out_dir: Path) -> dict[str, dict]:
        """{url: entry} of every complete line."""
        path = out_dir / STATE_DIR / "journal.jsonl"
        entries: dict[str, dict] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("url"), str):
                    entries[entry["url"]] = entry
        return entries


def start_writing(out_dir: Path) -> None:
    """A crawl that adds pages takes the completion marker away first."""
    clear_complete(out_dir / PAGES_DIR)
