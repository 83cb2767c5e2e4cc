"""Filters: what is kept of the synthesised data, and why the rest is dropped.

qa_filter.py   `wdtk filter`: quality.py, uniqueness.py, decontam.py, then exact and MinHash dedup (dedup.py,
               minhash.py)
funnel.py      `wdtk funnel`: validity, the judge's verdict (judge.py), quality; the RL pool
export.py      `wdtk export`: the SFT, WebDancer and RL training sets
"""
