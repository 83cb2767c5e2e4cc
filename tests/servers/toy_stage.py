"""A toy synthesis stage for the stage runtime's tests: what an item does is written in the item itself.

Items are {"id", "do", "question"}; `do` is one of: keep (one qa record), empty (nothing at all), raise (a bug),
self_cause (a bug whose error is its own cause), transient_self_cause (a transient LLM error that is its own
cause), permanent / transient (LLM errors), invalid (a record the schema
refuses), llm (one call to the LLM, its reply kept as the answer), wait (hold until the file `question` exists),
flaky (transient until the file `question` exists). Importable by Dask workers as `servers.toy_stage`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from wdtk.schemas import record_id
from wdtk.synth.llm.base import PermanentLLMError, TransientLLMError


def qa(item: dict, answer: str = "yes") -> dict:
    """A valid qa record for `item`."""
    question = f"Is item {item['id']} kept with {len(item['question'])} characters?"
    return {
        "id": record_id("qa", question, answer),
        "question": question,
        "answer": answer,
        "type": "SIMPLE",
        "source": "seed",
        "evidence_urls": [],
        "meta": {"item": item["id"], "question_chars": len(item["question"])},
    }


def self_caused(error: Exception) -> Exception:
    error.__cause__ = error  # what `raise map_error(e) from e` made when map_error returned e
    return error


async def toy_item(item: dict, ctx) -> tuple[list[dict], list[dict]]:
    """Do what the item says."""
    do = item["do"]
    if do == "keep":
        return [qa(item)], []
    if do == "empty":
        return [], []
    if do == "raise":
        raise KeyError("a bug in stage code")
    if do == "self_cause":
        raise self_caused(RuntimeError("a self-caused bug"))
    if do == "transient_self_cause":
        raise self_caused(TransientLLMError("HTTP 500: a self-caused error"))
    if do == "permanent":
        raise PermanentLLMError("HTTP 400: bad request")
    if do == "transient":
        raise TransientLLMError("HTTP 503: retries ran out")
    if do == "invalid":
        return [{**qa(item), "answer": 42}], []
    if do == "llm":
        reply = await ctx.client.chat([{"role": "user", "content": item["question"]}], stage="toy")
        return [qa(item, reply.text[:50] or "empty")], []
    if do == "wait":
        while not Path(item["question"]).exists():
            await asyncio.sleep(0.05)
        return [qa(item)], []
    if do == "flaky":
        if not Path(item["question"]).exists():
            raise TransientLLMError("HTTP 502: still down")
        return [qa(item)], []
    raise ValueError(f"unknown toy action {do!r}")


def items(*actions: str, question: str = "q") -> list[dict]:
    """One item per action, ids in order."""
    return [{"id": f"item-{i:03d}", "do": do, "question": question} for i, do in enumerate(actions)]
