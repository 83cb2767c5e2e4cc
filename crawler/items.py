"""What the spider yields: a fetched page, before its main text is extracted."""

import scrapy


class PageItem(scrapy.Item):
    """A fetched page; `html` is dropped by the pipeline once the main text is extracted."""

    url = scrapy.Field()
    final_url = scrapy.Field()
    status = scrapy.Field()
    html = scrapy.Field()
    links = scrapy.Field()
    depth = scrapy.Field()
    parent_url = scrapy.Field()
    root = scrapy.Field()
    fetched_at = scrapy.Field()
    content_hash = scrapy.Field()
    content_type = scrapy.Field()
