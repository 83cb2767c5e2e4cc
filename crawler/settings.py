"""Scrapy settings for wdtk's crawler: polite by default, robots.txt obeyed, quiet logs.

Override any of them per run with `-s NAME=VALUE` (scrapy) or `--set NAME=VALUE` (wdtk crawl).
"""

from .. import __version__

BOT_NAME = "wdtk"
SPIDER_MODULES = ["wdtk.crawler.spiders"]
NEWSPIDER_MODULE = "wdtk.crawler.spiders"
USER_AGENT = f"wdtk/{__version__} (research crawler; +https://pypi.org/project/wdtk/)"

# Politeness: obey robots.txt, few requests per site, and let AutoThrottle back off slow servers.
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 32
CONCURRENT_REQUESTS_PER_DOMAIN = 8
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 4.0
RETRY_TIMES = 2
# A response yields at most one item (requests go to the engine directly). Scrapy 2.19 starts this many asyncio
# tasks for every response's output: at its default of 100 that was a fifth of the crawl process's time.
CONCURRENT_ITEMS = 1
DOWNLOAD_TIMEOUT = 30
DOWNLOAD_MAXSIZE = 16 * 1024 * 1024
COOKIES_ENABLED = False

# Breadth first is the spider's own frontier (wdtk.crawler.frontier), a level at a time; the scheduler only ever
# holds the requests it hands out, so its order does not matter.
SCHEDULER_MEMORY_QUEUE = "scrapy.squeues.FifoMemoryQueue"

DOWNLOADER_MIDDLEWARES = {
    "wdtk.crawler.middlewares.ScopeMiddleware": 50,
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "wdtk.crawler.middlewares.RobotsMiddleware": 100,
}
ITEM_PIPELINES = {
    "wdtk.crawler.pipelines.ExtractPipeline": 300,
    "wdtk.crawler.pipelines.ShardPipeline": 800,
}
EXTENSIONS = {
    "wdtk.crawler.extensions.CrawlSummary": 500,
    "wdtk.crawler.extensions.CrawlProgress": 500,
    "scrapy.extensions.logstats.LogStats": None,  # CrawlProgress says more: pages, rate, queue, depth
    "scrapy.extensions.telnet.TelnetConsole": None,  # no open ports for a crawler
}
REMOTE_CONTROL_ENABLED = False

# INFO, not Scrapy's DEBUG: at DEBUG every item was logged whole (11 MB of log for 500 pages). Items are
# logged by URL only, even at DEBUG (-L DEBUG still shows every request).
LOG_LEVEL = "INFO"
LOG_FORMATTER = "wdtk.crawler.extensions.QuietLogFormatter"
WDTK_PROGRESS_INTERVAL = 10.0  # seconds between progress lines; 0 = none
FEED_EXPORT_ENCODING = "utf-8"

# wdtk's own settings
WDTK_EXTRACT_WORKERS = -1  # processes for main-text extraction; -1 = cores - 1 (at least 1), 0 = inline
WDTK_OUTPUT_DIR = None  # set by `wdtk crawl -o DIR`: shards go to DIR/pages/
WDTK_OUTPUT_FORMAT = "jsonl.gz"
WDTK_SHARD_SIZE = 1000
WDTK_SHARD_SECONDS = 5.0  # a shard is also closed this long after its first record: the kill-safe checkpoint
