"""Exact (normalised text) and near-duplicate (MinHash LSH) dedup over a stream of records.

The first record of a group is kept; each later one gets `duplicate_of` (the kept record's id) and `dedup`
("exact" or "near"). A record is a near duplicate when it shares an LSH band bucket with an earlier record; it
points to that record's kept root, so chains resolve to the first record. Candidates are not re-checked
against the threshold: it only picks bands and rows, as datasketch's `MinHashLSH` does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..schemas import batched
from . import minhash as mh
from .minhash import normalize_text

__all__ = ["DedupConfig", "dedup", "hashfunc", "keys", "lsh_params", "normalize_text", "shingles", "signatures"]


@dataclass(frozen=True)
class DedupConfig:
    """Options for `dedup`: near-duplicate Jaccard threshold, permutations, shingling and seed."""

    threshold: float = 0.8  # Jaccard for near-duplicates
    num_perm: int = 128
    shingle: str = "word"  # "word" or "char"
    ngram: int = 3  # shingle size
    seed: int = 1


def shingles(text: str, cfg: DedupConfig) -> list[str]:
    """The shingles of `text` that its signature is built from (feed these to datasketch with `hashfunc(cfg)`)."""
    return mh.shingles(normalize_text(text), cfg.shingle, cfg.ngram)


def hashfunc(cfg: DedupConfig) -> Callable[[str], int]:
    """The shingle hash our signatures use, as a datasketch `MinHash(hashfunc=...)`."""
    return lambda shingle: mh.shingle_hash(shingle, cfg.shingle)


def signatures(texts: list[str], cfg: DedupConfig) -> np.ndarray:
    """(n, num_perm) uint32 MinHash values equal to datasketch's `MinHash(num_perm, seed, hashfunc(cfg))`."""
    parts = [_signatures(mh.pack(texts[lo:hi]), hi - lo, cfg) for lo, hi in mh.chunks(texts)]
    return np.concatenate(parts) if parts else np.empty((0, cfg.num_perm), dtype=np.uint32)


def _signatures(buf: np.ndarray, n: int, cfg: DedupConfig) -> np.ndarray:
    """Signatures of `n` texts packed by `minhash.pack`."""
    if cfg.shingle not in ("word", "char"):
        raise ValueError(f"shingle must be 'word' or 'char', got {cfg.shingle!r}")
    hashes, counts = mh.shingle_hashes(buf, n, cfg.shingle, cfg.ngram)
    return mh.minhash(hashes, counts, _perms(cfg.num_perm, cfg.seed))


@lru_cache(maxsize=8)
def _perms(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Permutations, cached because each batch needs them."""
    return mh.permutations(num_perm, seed)


@lru_cache(maxsize=32)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) that datasketch's `MinHashLSH(threshold, num_perm)` picks, so both index alike."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def keys(texts: list[str], cfg: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """(exact keys (n,), LSH band keys (n, bands)) of `texts`: all the per-record work of dedup. Pure, so it can
    run on a Dask worker; only the first-seen bookkeeping over keys stays in one process."""
    bands, rows = lsh_params(cfg.threshold, cfg.num_perm)
    exact, near = [np.empty(0, dtype=np.uint64)], [np.empty((0, bands), dtype=np.uint64)]
    for lo, hi in mh.chunks(texts):
        buf = mh.pack(texts[lo:hi])
        exact.append(mh.segment_hashes(buf, hi - lo))
        near.append(mh.band_keys(_signatures(buf, hi - lo, cfg), bands, rows))
    return np.concatenate(exact), np.concatenate(near)


class _Deduper:
    """Streaming state: first-seen indexes for exact keys and LSH bands, and each record's kept root."""

    def __init__(self, cfg: DedupConfig) -> None:
        self.cfg = cfg
        self.bands, self.rows = lsh_params(cfg.threshold, cfg.num_perm)
        self.exact = mh.FirstSeen()
        self.lsh = [mh.FirstSeen() for _ in range(self.bands)]
        self.root = np.empty(0, dtype=np.int32)  # 4 B a record: the position of its kept record
        self.kept_ids: dict[int, object] = {}

    def batch(self, records: list[dict], batch_keys: tuple[np.ndarray, np.ndarray]) -> None:
        """Mark the duplicates in one batch, in place, from the batch's `keys`."""
        exact, near_keys = batch_keys
        start = len(self.root)
        pos = np.arange(start, start + len(records), dtype=np.int32)
        parent = self.exact.see(exact, pos)
        is_exact = parent < pos
        near = np.flatnonzero(~is_exact)  # an exact copy has its original's bands: no need to index it again
        if len(near):
            found = [index.see(near_keys[near, j], pos[near]) for j, index in enumerate(self.lsh)]
            parent[near] = np.minimum.reduce(found)
        self.root = np.concatenate([self.root, parent])
        self._resolve(start)
        self._mark(records, start, is_exact)

    def _resolve(self, start: int) -> None:
        """Point this batch's records at their kept roots (pointer jumping; parents always come first)."""
        new = self.root[start:]
        while True:
            jumped = self.root[new]
            if np.array_equal(jumped, new):
                return
            new[:] = jumped

    def _mark(self, records: list[dict], start: int, is_exact: np.ndarray) -> None:
        """Set `duplicate_of` and `dedup` on duplicates and remember the ids of kept records."""
        for i, (record, root) in enumerate(zip(records, self.root[start:].tolist(), strict=True)):
            if root == start + i:
                self.kept_ids[root] = record["id"]
            else:
                record["duplicate_of"] = self.kept_ids[root]
                record["dedup"] = "exact" if is_exact[i] else "near"


def dedup(
    records: Iterable[dict],
    text_of: Callable[[dict], str],
    cfg: DedupConfig,
    batch_size: int = 10_000,
    client=None,
    ahead: int = 4,
) -> Iterator[dict]:
    """Yield every record in input order; duplicates get `duplicate_of` (kept record's id) and `dedup`.

    With a Dask `client`, the keys of up to `ahead` batches are computed on the cluster while earlier ones are
    marked here, so memory stays bounded by `ahead` batches and the result is the same as in one process.
    """
    state = _Deduper(cfg)
    pending: deque = deque()
    for batch in batched(records, batch_size):
        texts = [text_of(r) for r in batch]
        pending.append((batch, client.submit(keys, texts, cfg, pure=False) if client else keys(texts, cfg)))
        while pending and (len(pending) > (ahead if client else 0)):
            yield from _marked(state, *pending.popleft())
    while pending:
        yield from _marked(state, *pending.popleft())


def _marked(state: _Deduper, batch: list[dict], batch_keys) -> list[dict]:
    state.batch(batch, batch_keys.result() if hasattr(batch_keys, "result") else batch_keys)
    return batch
