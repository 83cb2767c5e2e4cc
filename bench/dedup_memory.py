"""Memory of `wdtk filter`'s dedup on a million short records, against holding the records themselves.

    .venv/bin/python bench/dedup_memory.py [--records 1000000] [--batch 10000]

Streams generated short questions (8-20 words, 1% exact copies, 1% one-word edits) through `filters.dedup.dedup`
with a consumer that keeps nothing, and prints the peak resident memory the run added, per record, against the
baseline of merely holding the same records in a list (what a naive dedup that loads its input would need at least).
The dedup state is 4 bytes a record for the kept-root array plus 12 bytes per distinct key of the exact index
and of each LSH band, so it grows linearly but slowly; the records themselves stream through in batches.
"""

from __future__ import annotations

import argparse
import random
import resource
import time


def records(n: int, seed: int = 0):
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20_000)]
    recent: list[str] = []
    for i in range(n):
        roll = rng.random()
        if recent and roll < 0.01:
            text = rng.choice(recent)
        elif recent and roll < 0.02:
            words = rng.choice(recent).split()
            words[rng.randrange(len(words))] = rng.choice(vocab)
            text = " ".join(words)
        else:
            text = " ".join(rng.choices(vocab, k=rng.randint(8, 20))) + "?"
        recent = (recent + [text])[-1000:]
        yield {"id": f"{i:016x}", "question": text}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()

    from wdtk.filters.dedup import DedupConfig, dedup, keys

    keys(["warm up numpy and datasketch's parameters"], DedupConfig())
    base = peak_mib()
    start, dupes = time.perf_counter(), 0
    for record in dedup(records(args.records), lambda r: r["question"], DedupConfig(), batch_size=args.batch):
        dupes += "duplicate_of" in record
    seconds = time.perf_counter() - start
    dedup_mib = peak_mib() - base

    held = list(records(args.records))  # the baseline: the input merely held in memory
    held_mib = peak_mib() - base - dedup_mib if peak_mib() - base > dedup_mib else peak_mib() - base
    del held
    n = args.records
    print(f"records: {n:,}, duplicates marked: {dupes:,}, {seconds:.1f} s ({n / seconds:,.0f} records/s)")
    print(f"dedup peak added: {dedup_mib:,.0f} MiB ({dedup_mib * 2**20 / n:.0f} B/record)")
    print(f"holding the records in a list: {held_mib:,.0f} MiB more ({held_mib * 2**20 / n:.0f} B/record)")
    print(f"ratio dedup / held input: {dedup_mib / held_mib:.2f}")


if __name__ == "__main__":
    main()
