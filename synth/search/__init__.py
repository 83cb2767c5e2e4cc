"""Search for synthesis and the agent: one small protocol, a local BM25 index, and web backends.

base.py      SearchEngine protocol, Hit, SearchError, search_many, render_search (WebDancer's observation)
factory.py   make_search("bm25:DIR" | "serper:URL" | "searxng:URL")
bm25.py      the persistent local index over crawled pages (tantivy): `wdtk index`, and the visit tool's corpus
web.py       Serper and SearXNG over HTTP
"""
