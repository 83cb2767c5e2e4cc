"""Exact and MinHash-LSH near-duplicate dedup (wdtk.filters.dedup), checked against datasketch."""

from __future__ import annotations

import random
import tracemalloc

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash, MinHashLSH

from wdtk.filters import minhash as mh
from wdtk.filters.dedup import DedupConfig, dedup, hashfunc, lsh_params, normalize_text, shingles, signatures

VOCAB = [f"w{i}" for i in range(400)] + ["Straße", "naïve", "Ωmega", "日本語"]


def random_texts(n: int, seed: int = 0) -> list[str]:
    """Random 1-30 word texts, with punctuation, capitals, Unicode and the odd empty one."""
    rng = random.Random(seed)
    texts = [" ".join(rng.choices(VOCAB, k=rng.randint(1, 30))) for _ in range(n)]
    texts[0], texts[1] = "", "  Hello,  WORLD!! -- it's_me  "
    return texts


def near_copies(texts: list[str], n: int, seed: int = 1) -> list[str]:
    """`n` copies of random texts of 20+ words with one word substituted."""
    rng = random.Random(seed)
    long = [t for t in texts if len(t.split()) >= 20]
    out = []
    for t in rng.sample(long, n):
        words = t.split()
        words[rng.randrange(len(words))] = "zz"
        out.append(" ".join(words))
    return out


def datasketch_minhash(text: str, cfg: DedupConfig) -> MinHash:
    """What datasketch computes for `text` with our shingles and our hash function."""
    m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, hashfunc=hashfunc(cfg))
    m.update_batch(shingles(text, cfg))
    return m


def test_normalize_text() -> None:
    assert normalize_text("  Hello,  WORLD!! -- it's_me\n") == "hello world it s me"
    assert normalize_text("Straße — ÉTÉ") == "strasse été"
    assert normalize_text("...") == ""


@pytest.mark.parametrize("shingle,ngram", [("word", 3), ("word", 1), ("char", 5), ("char", 1)])
@pytest.mark.parametrize("num_perm,seed", [(128, 1), (64, 42)])
def test_signatures_equal_datasketch(shingle: str, ngram: int, num_perm: int, seed: int) -> None:
    cfg = DedupConfig(shingle=shingle, ngram=ngram, num_perm=num_perm, seed=seed)
    texts = random_texts(60)
    ours = signatures(texts, cfg)
    assert ours.shape == (60, num_perm)
    for text, sig in zip(texts, ours, strict=True):
        theirs = datasketch_minhash(text, cfg).hashvalues
        assert theirs.dtype == sig.dtype and np.array_equal(theirs, sig), text


def test_packed_buffer_matches_normalize_text() -> None:
    texts = random_texts(40) + ["a\x1eb", "tab\tand\nnewline", "ASCII only, fast path"]
    for batch in (texts, texts[-1:], [t for t in texts if t.isascii()]):
        assert "".join(map(chr, mh.pack(batch))) == "\x1e".join(map(normalize_text, batch))


def test_signatures_split_into_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    texts, cfg = random_texts(50), DedupConfig()
    whole = signatures(texts, cfg)
    monkeypatch.setattr(mh, "_CHUNK_CHARS", 100)
    assert np.array_equal(signatures(texts, cfg), whole)


def test_our_signatures_work_in_datasketch_lsh() -> None:
    cfg = DedupConfig(threshold=0.5)
    texts = random_texts(200)
    copies = near_copies(texts, 10)
    sig = signatures(texts + copies, cfg)
    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
    for i, row in enumerate(sig[: len(texts)]):
        lsh.insert(i, LeanMinHash(MinHash(hashvalues=row, seed=cfg.seed, scheme="affine32")))
    for text, row in zip(copies, sig[len(texts) :], strict=True):
        assert texts.index(next(t for t in texts if _one_word_apart(t, text))) in lsh.query(
            MinHash(hashvalues=row, seed=cfg.seed, scheme="affine32")
        )
    # and the estimate agrees with datasketch's own sketch of the same text
    ours = MinHash(hashvalues=sig[5], seed=cfg.seed, scheme="affine32")
    assert ours.jaccard(datasketch_minhash(texts[5], cfg)) == 1.0


def _one_word_apart(a: str, b: str) -> bool:
    """Same length and exactly one differing word."""
    wa, wb = a.split(), b.split()
    return len(wa) == len(wb) and sum(x != y for x, y in zip(wa, wb, strict=True)) == 1


@pytest.mark.parametrize("bands,rows", [(16, 8), (32, 4), (20, 3)])
def test_candidate_pairs_equal_datasketch_lsh(bands: int, rows: int) -> None:
    cfg = DedupConfig(shingle="char", ngram=3, num_perm=128)
    texts = random_texts(150) + near_copies(random_texts(150), 20)
    sig = signatures(texts, cfg)
    lsh = MinHashLSH(num_perm=cfg.num_perm, params=(bands, rows))
    sketches = [MinHash(hashvalues=row, seed=cfg.seed, scheme="affine32") for row in sig]
    for i, m in enumerate(sketches):
        lsh.insert(i, m)
    theirs = {(min(i, j), max(i, j)) for i, m in enumerate(sketches) for j in lsh.query(m) if j != i}
    ours = mh.candidate_pairs(sig, bands, rows)
    assert len(theirs) >= 20  # at least the planted pairs
    assert ours == theirs


def records(texts: list[str]) -> list[dict]:
    """Records with ids r0, r1, ... over `texts`."""
    return [{"id": f"r{i}", "text": t} for i, t in enumerate(texts)]


def test_exact_dedup_on_normalised_text() -> None:
    texts = ["The cat sat.", "the  CAT sat", "A dog", "the cat, sat!", "a dog?", "something else"]
    out = list(dedup(records(texts), lambda r: r["text"], DedupConfig()))
    assert [r["id"] for r in out] == [f"r{i}" for i in range(6)]
    assert [r.get("duplicate_of") for r in out] == [None, "r0", None, "r0", "r2", None]
    assert [r.get("dedup") for r in out] == [None, "exact", None, "exact", "exact", None]


@pytest.mark.parametrize("batch_size", [7, 10_000])
def test_planted_near_duplicates_point_to_first(batch_size: int) -> None:
    base = random_texts(300, seed=3)
    copies = near_copies(base, 30, seed=4)
    out = list(dedup(records(base + copies), lambda r: r["text"], DedupConfig(threshold=0.5), batch_size))
    assert [r["id"] for r in out] == [f"r{i}" for i in range(330)]
    for copy in out[300:]:
        src = next(i for i, t in enumerate(base) if _one_word_apart(t, copy["text"]))
        assert copy["dedup"] == "near"
        assert copy["duplicate_of"] == out[src].get("duplicate_of", f"r{src}")
    # unrelated random texts are not merged (bar the exact duplicates random 1-word texts make)
    assert sum(r.get("dedup") == "near" for r in out[:300]) <= 2


def test_kept_record_is_the_first_of_a_chain() -> None:
    a = " ".join(f"w{i}" for i in range(40))
    b = a.replace("w20", "x")
    c = b.replace("w30", "y")
    out = list(dedup(records([a, b, c, a]), lambda r: r["text"], DedupConfig(threshold=0.5)))
    assert [r.get("duplicate_of") for r in out] == [None, "r0", "r0", "r0"]
    assert [r.get("dedup") for r in out] == [None, "near", "near", "exact"]


def test_lsh_params_match_datasketch() -> None:
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    assert lsh_params(0.8, 128) == (lsh.b, lsh.r)


def test_memory_stays_bounded_per_record() -> None:
    rng = random.Random(5)
    texts = (" ".join(rng.choices(VOCAB, k=rng.randint(10, 30))) for _ in range(60_000))
    stream = ({"id": i, "text": t} for i, t in enumerate(texts))
    tracemalloc.start()
    kept = sum("duplicate_of" not in r for r in dedup(stream, lambda r: r["text"], DedupConfig(), batch_size=5_000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert kept > 59_000
    # index state is ~8 B a record for roots + 12 B a key per band; the batch temporaries dominate the peak
    assert peak < 200 * 1024 * 1024


def test_dedup_on_a_dask_cluster_marks_the_same_records() -> None:
    """Keys computed on two worker processes, a few batches ahead, give exactly the in-process result."""
    from dask.distributed import Client, LocalCluster

    texts = random_texts(400, seed=5)
    texts += near_copies(texts, 40, seed=6) + texts[50:60]
    here = list(dedup(records(texts), lambda r: r["text"], DedupConfig(threshold=0.5), batch_size=37))
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        there = list(
            dedup(
                records(texts), lambda r: r["text"], DedupConfig(threshold=0.5), batch_size=37, client=client, ahead=3
            )
        )
    assert there == here
    assert sum("duplicate_of" in r for r in there) >= 50
