"""The LLM seam: the protocol every backend implements, the client that stages call, and the backends.

base.py        LLM protocol, Sampling, Completion, TransientLLMError / PermanentLLMError
factory.py     make_llm(model, api_base): the backend for a model string
client.py      LLMClient: concurrency, rate limits, retries, timeouts, cache, usage, JSON replies
cache.py       the persistent response cache (SQLite)      jsonout.py  JSON out of a reply, checked by schema
wire.py        the OpenAI wire format: request body, reply parsing, error classification
openai.py      OpenAI-compatible endpoints    litellm.py  every other provider
embedded.py    the offline SmolLM2 (and local: checkpoints) on the CPU; embedded_generate.py its batched generate
vllm.py        vLLM in this process            batching.py  the micro-batcher both in-process backends use
pricing.py     USD per call from litellm's bundled price map
structured.py  schema and grammar request fields, `--structured auto`'s fallback, schemas as the local engine sees them
grammar.py     llguidance: JSON schemas and the ReAct grammar as token masks for the embedded and local: models
"""

import os

# litellm fetches its price map from GitHub at import unless told otherwise; the copy it ships is enough.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
