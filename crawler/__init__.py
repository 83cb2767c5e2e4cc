"""The Scrapy project: settings, items, pipelines, spiders; plus the generated offline site."""
