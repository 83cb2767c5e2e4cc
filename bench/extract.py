"""Main-text extraction quality and speed: wdtk's extract_page against trafilatura's default and fast modes.

    .venv/bin/python bench/extract.py [--pages 1000] [--gold DIR]

Scores each extractor's text against the true main text by shingle F1 (word 3-grams; wdtk.crawler.shingles), in
one run: per page kind of a generated site (built once, cached under .bench/), counting chrome strings that leak
into the text, and, with --gold, over a folder of HTML files with gold text. Two layouts are read: the public
article-extraction benchmark's (DIR/ground-truth.json {id: {"articleBody": ...}} with DIR/html/<id>.html.gz)
and plain pairs (DIR/NAME.html or .html.gz beside DIR/NAME.txt). Speed is pages per CPU-second of this process.
Targets: wdtk >= 0.97 mean F1 on every page kind with no chrome leaked; on articles no worse than trafilatura's
default; at least trafilatura fast mode's speed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from statistics import mean

REPO = Path(__file__).resolve().parents[1]
NEW_KINDS = ("contents", "docs", "modindex", "portal")


def extractors() -> dict[str, Callable[[str], str]]:
    import trafilatura

    from wdtk.crawler.extract import extract_page

    return {
        "wdtk": lambda html: extract_page(html)[1],
        "trafilatura": lambda html: trafilatura.extract(html) or "",
        "trafilatura-fast": lambda html: trafilatura.extract(html, fast=True) or "",
    }


def site_cases(pages: int, seed: int) -> tuple[list[tuple[str, str, str]], list[str]]:
    """[(kind, html, gold text)] for every page of a generated site, and its chrome strings."""
    from wdtk.crawler.sitegen import build_site, load_truth

    site = REPO / ".bench" / f"site-{pages}-seed{seed}"
    if not (site / "eval.jsonl").exists():
        print(f"building a {pages}-page site in {site} ...", flush=True)
        build_site(site, pages=pages, seed=seed)
    truth = load_truth(site)
    gold = {t["path"]: t["text"] for t in truth["texts"]}
    cases = [(p["kind"], (site / p["path"].lstrip("/")).read_text(), gold[p["path"]]) for p in truth["pages"]]
    return cases, truth["chrome_strings"]


def _read(path: Path) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8", errors="replace")


def gold_cases(folder: Path) -> list[tuple[str, str, str]]:
    """[("gold", html, gold text)] from a benchmark folder in either layout."""
    truth = folder / "ground-truth.json"
    if truth.exists():
        items = json.loads(truth.read_text())
        cases = []
        for key, item in items.items():
            found = [p for p in (folder / "html" / f"{key}.html.gz", folder / "html" / f"{key}.html") if p.exists()]
            if found:
                cases.append(("gold", _read(found[0]), item.get("articleBody") or ""))
        return cases
    pages = sorted(p for p in folder.iterdir() if p.name.endswith((".html", ".html.gz")))
    pairs = [(p, p.with_name(p.name.split(".html")[0] + ".txt")) for p in pages]
    return [("gold", _read(html), text.read_text(errors="replace")) for html, text in pairs if text.exists()]


def score(cases, extract: Callable[[str], str], chrome: list[str]) -> tuple[dict, float, int]:
    """({kind: [F1]}, CPU seconds, pages with a chrome string in their text)."""
    from wdtk.crawler.shingles import shingle_f1

    extract(cases[0][1])  # warm caches and lazy imports outside the timing
    f1s, leaks = defaultdict(list), 0
    started = time.process_time()
    texts = [extract(html) for _, html, _ in cases]
    seconds = time.process_time() - started
    for (kind, _, gold), text in zip(cases, texts, strict=True):
        f1s[kind].append(shingle_f1(text, gold)[2])
        leaks += any(c in text for c in chrome)
    return f1s, seconds, leaks


def report(title: str, cases, chrome: list[str], new_kinds: tuple[str, ...] = ()) -> dict[str, dict]:
    """Print one table, extractors side by side; return {extractor: {kind: mean F1, '_rate': pages/CPU-s}}."""
    results = {}
    for name, extract in extractors().items():
        f1s, seconds, leaks = score(cases, extract, chrome)
        row = {kind: mean(v) for kind, v in sorted(f1s.items())}
        row["_rate"], row["_leaks"] = len(cases) / seconds, leaks
        new = [i for i, c in enumerate(cases) if c[0] in new_kinds]
        if new:
            row["_new_rate"] = len(new) / score([cases[i] for i in new], extract, chrome)[1]
        results[name] = row
    kinds = [k for k in results["wdtk"] if not k.startswith("_")]
    print(f"\n{title}: mean shingle F1 by page kind ({len(cases)} pages)")
    print(f"{'kind':12s}" + "".join(f"{name:>18s}" for name in results))
    for kind in kinds:
        print(f"{kind:12s}" + "".join(f"{r[kind]:18.3f}" for r in results.values()))
    print(f"{'chrome leaks':12s}" + "".join(f"{r['_leaks']:18d}" for r in results.values()))
    print(f"{'pages/CPU-s':12s}" + "".join(f"{r['_rate']:18.0f}" for r in results.values()))
    if new_kinds:
        print(f"{'  new kinds':12s}" + "".join(f"{r['_new_rate']:18.0f}" for r in results.values()))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000, help="size of the generated site")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gold", type=Path, help="a folder of HTML pages with gold text (see the docstring)")
    args = parser.parse_args()

    cases, chrome = site_cases(args.pages, args.seed)
    site = report("generated site", cases, chrome, NEW_KINDS)
    wdtk, default, fast = site["wdtk"], site["trafilatura"], site["trafilatura-fast"]
    kinds = [k for k in wdtk if not k.startswith("_")]
    worst = min(kinds, key=lambda k: wdtk[k])
    print(f"\nwdtk: lowest kind {worst} {wdtk[worst]:.3f} (target >= 0.97), chrome leaks {wdtk['_leaks']} (target 0)")
    print(f"articles: wdtk {wdtk['article']:.3f} vs trafilatura default {default['article']:.3f} "
          f"({wdtk['article'] - default['article']:+.3f})")  # fmt: skip
    print(
        f"speed: wdtk / trafilatura fast = {wdtk['_rate'] / fast['_rate']:.2f} (target >= 1.0); "
        f"on the new kinds {wdtk['_new_rate'] / fast['_new_rate']:.2f}, {wdtk['_new_rate']:.0f} pages per CPU-s"
    )
    if args.gold:
        gold = report(f"gold folder {args.gold}", gold_cases(args.gold), [])
        wdtk, default, fast = gold["wdtk"], gold["trafilatura"], gold["trafilatura-fast"]
        print(f"\ngold: wdtk {wdtk['gold']:.3f} vs trafilatura default {default['gold']:.3f} "
              f"({wdtk['gold'] - default['gold']:+.3f}, target >= 0); speed vs fast "
              f"{wdtk['_rate'] / fast['_rate']:.2f} (target >= 1.0)")  # fmt: skip


if __name__ == "__main__":
    main()
