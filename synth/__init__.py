"""Synthesis: the stages that turn crawled pages into questions and trajectories, and the seams they stand on.

crawlqa.py e2hqa.py sample.py   the stages, named as `wdtk synth crawlqa|e2hqa` and `wdtk sample` call them
claims.py                       the facts a question is built from, and their check on the source page
parallel.py                     where stage work runs: partitions on Dask, asyncio inside, resumable
llm/  search/  agent/           the LLM seam and client, search engines, the ReAct agent and its tools
options.py commands.py          the command-line options shared from here up, and this package's commands
prompting.py text.py net.py     prompt files and their versions, answer normalisation, shared HTTP plumbing
"""
