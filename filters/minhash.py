"""Batched MinHash signatures equal to datasketch's (scheme "affine32"), and a compact first-seen band index.

A shingle is hashed from 32-bit units (a word's crc32, or a character's code point) with a 64-bit polynomial
folded to 32 bits; `shingle_hash` is that same function for one shingle string, so datasketch's
`MinHash(hashfunc=shingle_hash)` fed our shingles gives our `hashvalues` exactly.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence

import numpy as np

_K = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier for the shingle polynomial
_K_INV = np.uint64(pow(int(_K), -1, 1 << 64))
_MAX32 = np.uint32(0xFFFFFFFF)
SEP, SPACE = 0x1E, 0x20  # text separator and word separator in a packed buffer
_CHUNK_CELLS = 1 << 18  # padded shingles a step: bounds the (texts, num_perm) temporaries to ~8 MiB at 128 perms
_CHUNK_CHARS = 1 << 20  # code points per packed buffer: bounds the prefix-hash arrays (~40 MiB), stays in cache
_NON_WORD = re.compile(r"[\W_]+")  # punctuation, symbols and whitespace runs alike become one space
# ASCII fast path of `normalize_text`: lower-case letters and digits stay, the text separator stays, all else is space
_ASCII = bytes(
    c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122 or c == 0x1E else 32 for c in range(256)
)


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer, so the low 32 bits depend on every unit."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer: datasketch's affine32 pre-mix of every input hash."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def _fold(units: np.ndarray, ngram: int) -> np.ndarray:
    """Hash every run of `ngram` consecutive units (uint64 array) to a uint32."""
    count = len(units) - ngram + 1
    h = units[:count] + np.uint64(1)
    for j in range(1, ngram):
        h = h * _K + units[j : j + count] + np.uint64(1)
    return (_fmix64(h) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def shingle_hash(shingle: str, shingle_kind: str = "word") -> int:
    """32-bit hash of one shingle string, the scalar twin of the batched hash (a datasketch `hashfunc`)."""
    if shingle_kind == "word":
        units = np.array([_word_unit(w) for w in shingle.split(" ")], dtype=np.uint64)
    else:
        units = np.array([ord(c) for c in shingle], dtype=np.uint64)
    return int(_fold(units, len(units))[0])


def _word_unit(word: str) -> int:
    """A word's unit: the mixed polynomial hash of its code points."""
    h = 0
    for c in word:
        h = (h * int(_K) + ord(c)) % (1 << 64)
    return int(_fmix64(np.array([h], dtype=np.uint64))[0])


def shingles(text: str, shingle: str, ngram: int) -> list[str]:
    """Shingles of a normalised text; a text shorter than `ngram` units is one shingle, an empty one has none."""
    parts = text.split() if shingle == "word" else list(text)
    sep = " " if shingle == "word" else ""
    count = max(len(parts) - ngram + 1, 1 if parts else 0)
    return [sep.join(parts[i : i + ngram]) for i in range(count)]


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters (a odd, b) for `num_perm` and `seed`."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def normalize_text(text: str) -> str:
    """Casefold, drop punctuation and collapse whitespace: the key for exact dedup and the text shingled."""
    return _NON_WORD.sub(" ", text.casefold()).strip()


def chunks(texts: Sequence[str]) -> Iterator[tuple[int, int]]:
    """(lo, hi) slices of `texts` holding at most about _CHUNK_CHARS characters each (at least one text)."""
    ends = np.cumsum([len(t) + 1 for t in texts])
    lo = 0
    while lo < len(texts):
        base = ends[lo - 1] if lo else 0
        hi = max(int(np.searchsorted(ends, base + _CHUNK_CHARS, side="right")), lo + 1)
        yield lo, hi
        lo = hi


def pack(texts: Sequence[str]) -> np.ndarray:
    """Normalised texts as one uint32 code point buffer, separated by SEP (ASCII batches skip the regex)."""
    joined = "\x1e".join(texts)
    if joined.isascii() and joined.count("\x1e") == len(texts) - 1:
        return _collapse(np.frombuffer(joined.encode("ascii").translate(_ASCII), dtype=np.uint8)).astype(np.uint32)
    joined = "\x1e".join(map(normalize_text, texts))
    return np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)


def _collapse(raw: np.ndarray) -> np.ndarray:
    """Collapse space runs to one space and strip them at text edges, as `normalize_text` does."""
    space = raw == SPACE
    word = ~space & (raw != SEP)
    raw = raw[~space | np.concatenate(([False], word[:-1]))]  # a space survives only right after a word character
    space = raw == SPACE
    nxt = np.concatenate((raw[1:], [SEP]))
    return raw[~(space & (nxt == SEP))]  # then only when a word follows


def shingle_hashes(buf: np.ndarray, n: int, shingle: str, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """All shingle hashes (uint32) of `n` texts packed in a code point buffer (see `pack`), and each text's count."""
    units, lengths = _word_units(buf, n) if shingle == "word" else _char_units(buf, n)
    if len(units) < ngram:
        return _splice_short(np.empty(0, np.uint32), np.zeros(n, np.int64), units, lengths, ngram)
    folded = _fold(units, ngram)
    starts = np.cumsum(lengths) - lengths
    counts = np.maximum(lengths - ngram + 1, 0)
    # keep the runs that start inside a text and end before its end; they are contiguous per text
    idx = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
    return _splice_short(folded[idx], counts, units, lengths, ngram)


def _char_units(buf: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Code points of every text, separators dropped, and each text's length."""
    sep = buf == SEP
    lengths = np.bincount(np.cumsum(sep)[~sep], minlength=n)
    return buf[~sep].astype(np.uint64), lengths


def _word_units(buf: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each word's unit (`_word_unit`, vectorised with prefix sums) and each text's word count."""
    gap = (buf == SPACE) | (buf == SEP)
    edges = np.diff(np.concatenate(([1], gap, [1])).astype(np.int8))
    starts, ends = np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)
    pw, ipw = _powers(len(buf) + 1)
    # sum_t x_t K^-t as a prefix sum; a word [s, e) hashes to (P[e] - P[s]) K^(e-1) = Horner over its code points
    prefix = _prefix(buf, ipw)
    words = _fmix64((prefix[ends] - prefix[starts]) * pw[ends - 1])
    lengths = np.bincount(np.cumsum(buf == SEP)[starts], minlength=n)
    return words, lengths


def segment_hashes(buf: np.ndarray, n: int) -> np.ndarray:
    """A 64-bit hash of each packed text, equal for equal normalised texts: the exact-dedup key."""
    sep = np.flatnonzero(buf == SEP)
    starts, ends = np.concatenate(([0], sep + 1)), np.concatenate((sep, [len(buf)]))
    pw, ipw = _powers(len(buf) + 1)
    prefix = _prefix(buf, ipw)
    return _fmix64((prefix[ends] - prefix[starts]) * pw[np.maximum(ends - 1, 0)] + (ends - starts).astype(np.uint64))


def _prefix(buf: np.ndarray, ipw: np.ndarray) -> np.ndarray:
    """P[i] = sum over t < i of buf[t] K^-t (mod 2^64), with P[0] = 0."""
    out = np.zeros(len(buf) + 1, dtype=np.uint64)
    np.cumsum(buf.astype(np.uint64) * ipw[: len(buf)], dtype=np.uint64, out=out[1:])
    return out


_POWERS: list[np.ndarray] = []


def _powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """K^t and K^-t mod 2^64 for t < size, cached (grown, never beyond the largest packed chunk)."""
    if not _POWERS or len(_POWERS[0]) < size:
        size = max(size, 1 << 16)
        pw = np.full(size, _K, dtype=np.uint64)
        pw[0] = 1
        ipw = np.full(size, _K_INV, dtype=np.uint64)
        ipw[0] = 1
        _POWERS[:] = [np.cumprod(pw, dtype=np.uint64), np.cumprod(ipw, dtype=np.uint64)]
    return _POWERS[0], _POWERS[1]


def _splice_short(
    hashes: np.ndarray, counts: np.ndarray, units: np.ndarray, lengths: np.ndarray, ngram: int
) -> tuple[np.ndarray, np.ndarray]:
    """Insert the single whole-text shingle of each non-empty text shorter than the n-gram size."""
    short = np.flatnonzero((lengths > 0) & (lengths < ngram))
    if not len(short):
        return hashes, counts
    starts = np.cumsum(lengths) - lengths
    extra = [_fold(units[s : s + k], int(k))[0] for s, k in zip(starts[short], lengths[short], strict=True)]
    at = (np.cumsum(counts) - counts)[short]
    counts = counts.copy()
    counts[short] = 1
    return np.insert(hashes, at, np.array(extra, dtype=np.uint32)), counts


def minhash(hashes: np.ndarray, counts: np.ndarray, perms: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(n, num_perm) uint32 signatures from per-text shingle hashes, as datasketch's `update_batch` computes."""
    a, b = perms
    sig = np.full((len(counts), len(a)), _MAX32, dtype=np.uint32)
    mixed = _fmix32(hashes)
    starts = np.cumsum(counts) - counts
    widths = _widths(counts)
    for width in np.unique(widths[counts > 0]).tolist():
        texts = np.flatnonzero((widths == width) & (counts > 0))
        step = max(1, _CHUNK_CELLS // width)
        for lo in range(0, len(texts), step):
            part = texts[lo : lo + step]
            sig[part] = _min_rows(mixed, starts[part], counts[part], width, a, b)
    return sig


def _widths(counts: np.ndarray) -> np.ndarray:
    """Padded shingle counts: exact up to 16, then rounded up to a power of 2^(1/4), so few distinct widths."""
    widths = counts.copy()
    big = counts > 16
    widths[big] = np.ceil(2.0 ** (np.ceil(np.log2(counts[big]) * 4) / 4)).astype(np.int64)
    return np.maximum(widths, counts)


def _min_rows(mixed: np.ndarray, starts: np.ndarray, counts: np.ndarray, width: int, a: np.ndarray, b: np.ndarray):
    """Signatures of texts with at most `width` shingles: a running minimum over shingle positions."""
    offsets = np.arange(width)
    # pad short texts with their first shingle: a repeat leaves the minimum unchanged
    cols = mixed[starts[:, None] + np.where(offsets < counts[:, None], offsets, 0)]
    acc = cols[:, :1] * a
    acc += b
    tmp = np.empty_like(acc)
    for j in range(1, width):
        np.multiply(cols[:, j : j + 1], a, out=tmp)
        tmp += b
        np.minimum(acc, tmp, out=acc)
    return acc


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64 keys, equal exactly when a band's `rows` values are equal (bar 2^-64 collisions)."""
    keys = np.zeros((len(sig), bands), dtype=np.uint64)
    for j in range(rows):
        col = sig[:, j : bands * rows : rows].astype(np.uint64)  # column j of every band
        keys = keys * _K + col + np.uint64(1)
    return keys


def candidate_pairs(sig: np.ndarray, bands: int, rows: int) -> set[tuple[int, int]]:
    """All (i, j), i < j, sharing at least one band bucket: what querying every item of a MinHashLSH returns."""
    pairs: set[tuple[int, int]] = set()
    keys = band_keys(sig, bands, rows)
    for band in keys.T:
        order = np.argsort(band, kind="stable")
        groups = np.split(order, np.flatnonzero(np.diff(band[order])) + 1)
        for group in groups:
            pairs.update(itertools.combinations(sorted(group.tolist()), 2))
    return pairs


class FirstSeen:
    """Maps uint64 keys to the first position they were seen at, in two sorted arrays (12 B a key)."""

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.uint64)
        self.first = np.empty(0, dtype=np.int32)  # positions: up to 2^31 records

    def see(self, keys: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """First position of each key (earlier batches win, then the earliest in this one), and record new keys."""
        # np.unique(return_index, return_inverse) sorts three times, stably; one quicksort does the same work
        order = np.argsort(keys)
        ordered = keys[order]
        starts = np.empty(len(ordered), dtype=bool)
        starts[:1] = True
        np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
        uniq = ordered[starts]
        first = np.minimum.reduceat(positions[order], np.flatnonzero(starts)) if len(keys) else positions[:0]
        inverse = np.empty(len(keys), dtype=np.intp)
        inverse[order] = np.cumsum(starts) - 1
        at = np.searchsorted(self.keys, uniq)
        if len(self.keys):
            clipped = np.minimum(at, len(self.keys) - 1)
            found = self.keys[clipped] == uniq
            first = np.where(found, self.first[clipped], first)
            new = ~found
        else:
            new = np.ones(len(uniq), dtype=bool)
        slots = at[new] + np.arange(np.count_nonzero(new))  # where the new keys land: `at` is already sorted
        keep = np.ones(len(self.keys) + len(slots), dtype=bool)
        keep[slots] = False
        self.keys = _placed(self.keys, keep, slots, uniq[new])
        self.first = _placed(self.first, keep, slots, first[new])
        return first[inverse]


def _placed(old: np.ndarray, keep: np.ndarray, slots: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`old` with `values` inserted at output positions `slots` (np.insert without its argsort of the indices)."""
    out = np.empty(len(keep), dtype=old.dtype)
    out[keep] = old
    out[slots] = values
    return out
