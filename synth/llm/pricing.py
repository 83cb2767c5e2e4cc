"""Prices per token from litellm's bundled cost map, read as JSON (importing litellm would cost seconds)."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import orjson


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for a call to `model` from litellm's bundled cost map; 0.0 for models it does not list."""
    rates = _rates(model)
    return prompt_tokens * rates[0] + completion_tokens * rates[1] if rates else 0.0


@cache
def _rates(model: str) -> tuple[float, float] | None:
    entry = _cost_map().get(model) or _cost_map().get(model.removeprefix("openai/"))
    if not entry or "input_cost_per_token" not in entry:
        return None
    return float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token") or 0.0)


@cache
def _cost_map() -> dict:
    """litellm's bundled model price map, read as JSON: importing litellm would cost seconds."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(spec.submodule_search_locations[0]) / "model_prices_and_context_window_backup.json"
    return orjson.loads(path.read_bytes()) if path.exists() else {}
