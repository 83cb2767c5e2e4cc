"""The ReAct agent in WebDancer's format: what sampling, evaluation and RL rollouts all run.

format.py   the tools, the system prompt, parsing a model turn, rendering turns as text
loop.py     Agent: think, call a tool, read its response, until it answers or a budget runs out
visit.py    the visit tool: a page from the corpus or the web, read by the LLM for a goal
fetch.py    the guarded HTTP fetcher behind visit (no private addresses, every redirect checked)
"""
