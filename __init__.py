"""wdtk: build training data for web-search agents (crawl -> synth -> filters -> training)."""

__version__ = "0.1.0"
