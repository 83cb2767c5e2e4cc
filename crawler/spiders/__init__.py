"""Spiders: `sublinks` crawls a site recursively from its roots."""
