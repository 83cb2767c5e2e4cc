"""A persistent, content-addressed cache of LLM responses in SQLite, shared safely by several processes."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import sqlite3
import threading
import time
from pathlib import Path

import orjson

from .base import Completion, Sampling

SCHEMA = "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value BLOB NOT NULL)"
FIELDS = tuple(f.name for f in dataclasses.fields(Completion) if f.name != "cached")


def cache_key(
    llm_name: str,
    messages: list[dict],
    sampling: Sampling,
    prompt_version: str,
    json_schema: dict | None = None,
    grammar: str | None = None,
    constrained: bool = True,
) -> str:
    """sha256 of the canonical JSON of everything that decides a response (a grammar, and whether the backend may
    enforce schema and grammar, only when they apply: keys of plain calls are as before)."""
    payload = {
        "llm": llm_name,
        "messages": messages,
        "sampling": vars(sampling),
        "prompt_version": prompt_version,
        "json_schema": json_schema,
    }
    if grammar is not None:
        payload["grammar"] = grammar
    if not constrained and (json_schema is not None or grammar is not None):
        payload["structured"] = "off"
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


class ResponseCache:
    """Completions by cache key in a SQLite file (WAL), one connection per process and thread.

    WAL lets readers and one writer work at once across processes; each put is its own transaction, so a
    completion is on disk (in the WAL, which recovery replays) once `put` returns, even if the process is then
    killed. synchronous=NORMAL skips the fsync per commit: only an OS crash or power cut could lose the last puts.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connect()  # fail early on a bad path, and create the table once

    def get(self, key: str) -> Completion | None:
        """The cached completion for `key` (with cached=True), or None."""
        row = self._connect().execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        stored = orjson.loads(row[0])
        return Completion(**{name: stored[name] for name in FIELDS if name in stored}, cached=True)

    def put(self, key: str, completion: Completion) -> None:
        """Store `completion` under `key`; durable once this returns."""
        value = orjson.dumps({name: getattr(completion, name) for name in FIELDS})
        with self._connect() as db:  # commits on exit
            db.execute("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", (key, value))

    def __len__(self) -> int:
        return self._connect().execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        """Close this thread's connection (others close when their thread or process ends)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def __getstate__(self) -> dict:
        return {"path": self.path}  # connections do not cross processes: the receiver opens its own

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self._local = threading.local()

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection, reopened after a fork: a connection inherited from the parent is unsafe."""
        local = self._local
        if getattr(local, "db", None) is not None and local.pid == os.getpid():
            return local.db
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        _setup(db)
        db.isolation_level = "DEFERRED"  # back to implicit transactions, so `with db:` commits each put
        local.db, local.pid = db, os.getpid()
        return db


def _setup(db: sqlite3.Connection, patience: float = 60.0) -> None:
    """WAL mode and the table. Switching a new file to WAL takes an exclusive lock, and SQLite reports a rival's
    lock at once instead of waiting out the busy timeout: so two workers opening a new cache together retry here."""
    deadline = time.monotonic() + patience
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(SCHEMA)
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))
