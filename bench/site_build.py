"""Generated-site build time: a 10,000-page site must build in under a minute.

    .venv/bin/python bench/site_build.py [--pages 10000] [--rounds 2]

Prints seconds per build and pages per second, and the ratio of the best time to the 60 s budget
(below 1.0 meets it).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

BUDGET_SECONDS = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from wdtk.crawler.sitegen import build_site

    times = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            summary = build_site(Path(tmp) / "site", pages=args.pages, seed=i)
        times.append(summary["seconds"])
        print(
            f"round {i + 1}: {summary['pages']} pages, {summary['facts']} facts in {summary['seconds']:.1f}s "
            f"= {summary['pages'] / summary['seconds']:.0f} pages/s",
            flush=True,
        )
    print(f"best {min(times):.1f}s = {min(times) / BUDGET_SECONDS:.2f} of the {BUDGET_SECONDS:.0f}s budget")


if __name__ == "__main__":
    main()
