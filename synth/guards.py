"""Checks around a stage, so that a mistake costs one line and no time.

Before any work (`check_model`, `check_records`): the model is one some backend serves (a provider litellm knows,
its key in the environment, an endpoint that answers one tiny request), and every input record is of the kind the
stage reads and under MAX_RECORD_BYTES. After (`check_outcome`): a run in which every item failed with the same
LLM error is a failure, with that error as its one line. Each raises `WdtkError` (or `RecordError`, naming
file:line:field), which the `wdtk` group prints as one line with exit code 1.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from ..schemas import RecordError, WdtkError, read_records, validate
from ..schemas.shards import read_located, require_complete
from .llm.base import PermanentLLMError, Sampling, TransientLLMError
from .llm.factory import make_llm, route

MAX_RECORD_BYTES = 16 * 2**20  # a record past this is refused at the edge: no prompt or index should take it whole
QA_KEYS = frozenset({"id", "question", "answer", "type", "source"})  # a row with all of these is a wdtk qa record
PING = [{"role": "user", "content": "Reply with the word OK."}]
PING_ATTEMPTS = 3


class RecordTooLarge(RecordError):
    """A record past MAX_RECORD_BYTES."""


# --- the model ---------------------------------------------------------------------------------------------------


def check_api_base(api_base: str | None, option: str = "--api-base") -> None:
    """An http(s) URL with a host and no credentials in it (a key in a URL is logged, and aiohttp refuses it)."""
    if api_base is None:
        return
    parts = urllib.parse.urlsplit(api_base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WdtkError(f"{option} {api_base!r} is not an http(s) URL, e.g. http://127.0.0.1:8000/v1")
    if parts.username or parts.password:  # the URL is not repeated: it holds the secret
        raise WdtkError(f"{option} has credentials in it (user:key@host): set OPENAI_API_KEY instead")


def served_models(api_base: str, option: str = "--api-base") -> list[str]:
    """The model ids an OpenAI-compatible endpoint lists at GET /models."""
    import httpx

    key = os.environ.get("OPENAI_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(api_base.rstrip("/") + "/models", headers=headers, timeout=30, trust_env=False)
        response.raise_for_status()
        return [m["id"] for m in response.json()["data"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
        raise WdtkError(f"{option} {api_base}: cannot list its models ({type(e).__name__}: {e})") from None


def resolve_model(model: str | None, api_base: str | None, option: str = "--model") -> tuple[str, str | None]:
    """(the model to run, a note on how it was picked or None): no model is the embedded one, or, with an endpoint,
    the one model the endpoint serves; an in-process model with an endpoint is a mistake."""
    endpoint = option.replace("model", "api-base") if option != "--model" else "--api-base"
    check_api_base(api_base, endpoint)
    if model is None and api_base is None:
        return "embedded", None
    if model is None:
        models = served_models(api_base, endpoint)
        if len(models) != 1:
            listed = ", ".join(models[:10]) or "none"
            raise WdtkError(f"{endpoint} {api_base} serves {len(models)} models ({listed}): name one with {option}")
        return f"openai:{models[0]}", f"{option} not given: using {models[0]}, the one model {api_base} serves"
    if api_base is not None and route(model) in ("embedded", "local", "vllm"):
        raise WdtkError(
            f"{option} {model} runs in this process, so {endpoint} has no use: drop it, or name the served model "
            f"with {option} openai:NAME"
        )
    return model, None


def check_model(model: str, api_base: str | None, option: str = "--model", timeout: float = 60.0) -> None:
    """Raise WdtkError unless `model` can run here: packages or checkpoint present for in-process models; provider,
    key and one tiny request for the others."""
    kind = route(model, api_base)
    if kind == "embedded":
        _need(("torch", "transformers", "gguf"), "the embedded model", "scripts/setup.sh embedded")
        from .llm.embedded import EmbeddedModelMissing, gguf_path

        try:
            gguf_path()
        except EmbeddedModelMissing as e:
            raise WdtkError(str(e)) from None
    elif kind == "local":
        _need(("torch", "transformers"), model, "pip install 'wdtk[embedded]'")
        if not (Path(model.removeprefix("local:")) / "config.json").is_file():
            raise WdtkError(f"{option} {model}: no transformers checkpoint there (no config.json)")
    elif kind == "vllm":
        _need(("vllm",), model, "pip install vllm (on a machine with a GPU)")
    else:
        if kind == "litellm":
            _check_provider(model, option)
        _ping(model, api_base, option, timeout)


def _need(modules: Iterable[str], what: str, hint: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise WdtkError(f"{what} needs {', '.join(missing)}, not installed: {hint}")


def _check_provider(model: str, option: str) -> None:
    """A provider litellm knows, with its credentials in the environment."""
    import litellm

    litellm.suppress_debug_info = True
    try:
        litellm.get_llm_provider(model)
    except Exception:  # litellm raises its BadRequestError, with a long help text
        raise WdtkError(
            f"{option} {model}: no provider known for it; use embedded, local:DIR, vllm:NAME, openai:NAME with "
            "--api-base, or a litellm PROVIDER/MODEL (e.g. anthropic/claude-sonnet-4-5)"
        ) from None
    missing = litellm.validate_environment(model=model).get("missing_keys") or []
    if missing:
        raise WdtkError(f"{option} {model} needs {', '.join(missing)} in the environment")


def _ping(model: str, api_base: str | None, option: str, timeout: float = 60.0) -> None:
    """One tiny request: permanent errors (a bad key, an unknown model) at once, transient ones after a few tries,
    each given the run's own --timeout."""
    where = f" at {api_base}" if api_base else ""
    for attempt in range(PING_ATTEMPTS):
        try:
            asyncio.run(_complete_once(model, api_base, timeout))
            return
        except PermanentLLMError as e:
            raise WdtkError(f"{option} {model}{where} refused a test request: {_line(e)}") from None
        except TransientLLMError as e:
            if attempt == PING_ATTEMPTS - 1:
                raise WdtkError(f"{option} {model}{where} did not answer a test request: {_line(e)}") from None
            time.sleep(1.0 * 2**attempt)
        except Exception as e:  # a backend that fails in its own way still fails here, not in every item later
            failure = f"{type(e).__name__}: {_line(e)}"
            raise WdtkError(f"{option} {model}{where}: a test request failed: {failure}") from None


async def _complete_once(model: str, api_base: str | None, timeout: float) -> None:
    llm = make_llm(model, api_base)
    try:
        await asyncio.wait_for(llm.complete(PING, Sampling(max_tokens=8), timeout=timeout), timeout)
    except TimeoutError:  # a hung endpoint: as transient as the run's own calls would find it
        raise TransientLLMError(f"no answer within {timeout:g}s") from None
    finally:
        if (close := getattr(llm, "aclose", None)) is not None:
            await close()


def _line(error: Exception) -> str:
    """An error's message on one line, cut to a readable length."""
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."


# --- the inputs --------------------------------------------------------------------------------------------------


def check_records(
    sources: Iterable[Path],
    kind: str | None,
    what: str,
    hint: str = "",
    *,
    every: bool = True,
    empty_ok: bool = False,
    allow_incomplete: bool | None = None,
) -> int:
    """Read every record of `sources` once and return how many there are.

    Each source must exist and (unless `empty_ok`) hold records; every record must be under MAX_RECORD_BYTES and of
    `kind` (a schema kind; "question": a qa record or a SimpleQA-style row; None: any), or with `every=False` at least
    one per source must be (a stage that rejects malformed records itself still refuses input of another kind).
    Raises RecordError naming file:line:field, or WdtkError for a missing or empty source. With `allow_incomplete`
    given, a directory its stage did not finish is refused first, unless it is True (--allow-incomplete).
    """
    total = 0
    for source in map(Path, sources):
        if not source.exists():
            raise WdtkError(f"no {what} at {source}" + (f": {hint}" if hint else ""))
        if allow_incomplete is not None:
            require_complete(source, allow_incomplete)
        count, first_error, valid = 0, None, False
        for path, line, record in read_located(source):
            try:
                _check_size(record)
                if kind is not None and (every or not valid):
                    _check_kind(record, kind)
                valid = True
            except RecordError as e:
                e.path, e.line = path, line
                if every or isinstance(e, RecordTooLarge):
                    raise
                first_error = first_error or e
            count += 1
        if count and not valid:
            raise first_error
        if not count and not empty_ok:
            shown = "an empty directory" if source.is_dir() and not any(source.iterdir()) else "no records"
            raise WdtkError(f"{source}: {shown}, where {what} were expected" + (f": {hint}" if hint else ""))
        total += count
    return total


def _check_size(record: dict) -> None:
    size = _text_bytes(record)
    if size > MAX_RECORD_BYTES:
        limit = MAX_RECORD_BYTES // 2**20
        raise RecordTooLarge(f"a record of {size / 2**20:.0f} MB, over the {limit} MB one record may hold")


def _check_kind(record: dict, kind: str) -> None:
    if kind != "question":
        validate(record, kind)
    elif QA_KEYS <= record.keys():
        validate(record, "qa")
    else:
        check_question_row(record)


def check_question_row(row: dict) -> None:
    """A SimpleQA-style row: a question (string) and an answer (string or number) under one of the known keys."""
    from .e2hqa import ANSWER_KEYS, QUESTION_KEYS

    wanted = ((QUESTION_KEYS, (str,), "a string"), (ANSWER_KEYS, (str, int, float), "a string or a number"))
    for keys, types, name in wanted:
        key = next((k for k in keys if k in row), None)
        if key is None:
            raise RecordError(f"no question-answer row: none of {', '.join(keys)} is in it", field=keys[0])
        value = row[key]
        if not isinstance(value, types) or isinstance(value, bool) or not str(value).strip():
            raise RecordError(f"expected {name}, got {type(value).__name__} {str(value)[:40]!r}", field=key)


def _text_bytes(value: object) -> int:
    """About how many bytes `value` takes as JSON: its strings' lengths, plus a little per other value."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(len(k) + _text_bytes(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(map(_text_bytes, value))
    return 8


# --- after the run -----------------------------------------------------------------------------------------------


def check_outcome(summary: dict, out_dir: Path) -> None:
    """Raise WdtkError when items ran and every one failed with the same LLM error: a model or endpoint mistake that
    the rejects file alone would hide."""
    rejected = summary.get("rejected") or {}
    if summary.get("kept") or not summary.get("items") or set(rejected) != {"llm_error"}:
        return
    rejects = out_dir / "rejects"
    details = {r.get("detail") for r in read_records(rejects) if r.get("reason") == "llm_error"}
    if len(details) == 1:
        error = re.sub(r"^\w*LLMError: ", "", _line(details.pop()))  # the class name tells the user nothing
        raise WdtkError(f"every one of the {summary['items']} items failed with the same LLM error: {error}")
