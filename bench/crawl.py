"""Crawl throughput: the full `sublinks` crawl (extraction, validation, shards) against a bare link-following spider.

    .venv/bin/python bench/crawl.py [--pages 5000] [--rounds 2]

Builds (once, cached under .bench/) a generated site, serves it on 127.0.0.1 from this process, then
crawls it alternately with a bare Scrapy spider that only follows links and with `scrapy crawl sublinks`
writing page shards. Both run as `scrapy` subprocesses with the same settings (robots.txt obeyed, no
AutoThrottle, same concurrency). Prints pages per minute of each and their ratio (target: sublinks >= 0.9 x
bare). Rates use Scrapy's own elapsed time, so process start-up is excluded. On a machine shared with other work
the wall-clock rates swing, so each run's CPU time (the crawl process and its extraction workers, not the
server) is reported too, as pages per CPU-second.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRAPY = [sys.executable, "-m", "scrapy"]
COMMON = {
    "AUTOTHROTTLE_ENABLED": "False",
    "ROBOTSTXT_OBEY": "True",
    "CONCURRENT_REQUESTS": "64",
    "CONCURRENT_REQUESTS_PER_DOMAIN": "64",
    "LOG_LEVEL": "WARNING",
    "LOGSTATS_INTERVAL": "0",
}

BARE_SPIDER = '''
import json, time, scrapy
from urllib.parse import urlsplit
from scrapy.linkextractors import LinkExtractor

class Bare(scrapy.Spider):
    """Follows every same-site link; yields nothing."""
    name = "bare"
    custom_settings = {"ITEM_PIPELINES": {}, "EXTENSIONS": {}}

    def __init__(self, root, stats_path, **kw):
        super().__init__(**kw)
        self.start_urls, self.stats_path = [root], stats_path
        self.allowed_domains = [urlsplit(root).hostname]  # the offsite middleware drops off-site redirects
        self.site = urlsplit(root).netloc
        self.links = LinkExtractor()  # allow_domains does not match IP hosts; filter by netloc below
        self.t0 = time.monotonic()

    def parse(self, response):
        if "html" not in response.headers.get(b"Content-Type", b"").decode():
            return
        self.crawler.stats.inc_value("bench/pages")
        for link in self.links.extract_links(response):
            if urlsplit(link.url).netloc == self.site:
                yield scrapy.Request(link.url)

    def closed(self, reason):
        stats = self.crawler.stats.get_stats()
        json.dump({"pages": stats.get("bench/pages", 0), "seconds": time.monotonic() - self.t0,
                   "stats": {k: str(v) for k, v in stats.items()}}, open(self.stats_path, "w"))
'''


def run_measured(cmd: list[str], cwd: Path) -> float:
    """Run `cmd` to the end; the CPU seconds it and its children used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, cwd=cwd, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def settings_args(extra: dict[str, str]) -> list[str]:
    return [a for k, v in {**COMMON, **extra}.items() for a in ("-s", f"{k}={v}")]


def run_bare(root: str, work: Path) -> dict:
    spider = work / "bare_spider.py"
    spider.write_text(BARE_SPIDER)
    stats = work / "bare.json"
    cmd = [*SCRAPY, "runspider", str(spider), "-a", f"root={root}", "-a", f"stats_path={stats}"]
    cpu = run_measured(cmd + settings_args({}), work)
    return {**json.loads(stats.read_text()), "cpu": cpu}


def run_sublinks(root: str, work: Path, extra: dict[str, str] | None = None) -> dict:
    out = work / "sublinks"
    cmd = [*SCRAPY, "crawl", "sublinks", "-a", f"roots={root}", "-a", "max_depth=1000", "-a", "max_pages=0"]
    settings = settings_args({"WDTK_OUTPUT_DIR": str(out), **(extra or {})})
    cpu = run_measured(cmd + settings, REPO)
    summary = json.loads((out / "crawl_summary.json").read_text())
    return {"pages": summary["pages"], "seconds": summary["seconds"], "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=5000, help="size of the generated site")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each spider")
    parser.add_argument(
        "--inline",
        action="store_true",
        help="also run sublinks with extraction on the reactor thread (WDTK_EXTRACT_WORKERS=0)",
    )
    args = parser.parse_args()

    from wdtk.crawler.sitegen import build_site, start_server

    site = REPO / ".bench" / f"site-{args.pages}"
    if not (site / "index.html").exists():
        print(f"building a {args.pages}-page site in {site} ...", flush=True)
        build_site(site, pages=args.pages, seed=1)
    server, base = start_server(site)
    runs = {"bare": run_bare, "sublinks": run_sublinks}
    if args.inline:
        runs["inline"] = lambda root, work: run_sublinks(root, work, {"WDTK_EXTRACT_WORKERS": "0"})
    rates: dict[str, list[float]] = {name: [] for name in runs}
    per_cpu: dict[str, list[float]] = {name: [] for name in runs}
    try:
        for i in range(args.rounds):
            for name, run in runs.items():
                with tempfile.TemporaryDirectory() as tmp:
                    result = run(base + "/", Path(tmp))
                rate = result["pages"] / result["seconds"] * 60
                rates[name].append(rate)
                per_cpu[name].append(result["pages"] / result["cpu"])
                print(
                    f"round {i + 1} {name:9s} {result['pages']:6d} pages in {result['seconds']:6.1f}s "
                    f"= {rate:8.0f} pages/min; {result['cpu']:6.1f} CPU-s = {per_cpu[name][-1]:5.0f} pages/CPU-s",
                    flush=True,
                )
    finally:
        server.shutdown()
    medians = {name: statistics.median(r) for name, r in rates.items()}
    print("\nmedian pages/min: " + ", ".join(f"{name} {rate:.0f}" for name, rate in medians.items()))
    ratio = medians["sublinks"] / medians["bare"]
    print(f"ratio sublinks/bare = {ratio:.2f} (target >= 0.90) on {os.cpu_count()} cores")
    if "inline" in medians:
        print(f"ratio inline/bare = {medians['inline'] / medians['bare']:.2f} (extraction on the reactor thread)")
    cpu = {name: statistics.median(r) for name, r in per_cpu.items()}
    print("median pages per CPU-second: " + ", ".join(f"{name} {rate:.0f}" for name, rate in cpu.items()))
    print(
        f"CPU cost per page, sublinks/bare = {cpu['bare'] / cpu['sublinks']:.2f}x (crawl, extraction, validation, "
        "shards against link-following alone)"
    )


if __name__ == "__main__":
    main()
