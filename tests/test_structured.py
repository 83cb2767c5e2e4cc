"""Structured generation: JSON prompts carry their schema, agent turns their grammar, `--structured auto` falls back
when a server refuses, the embedded model's replies are held to schema and grammar, and compile errors name the
prompt. The scripted servers answer as in test_synth.py and test_sample.py."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from servers.agent_model import AgentModel
from servers.openai_server import Reply
from servers.truth_model import TruthModel

from wdtk.schemas import read_records
from wdtk.synth import crawlqa, e2hqa, sample
from wdtk.synth.agent import format as react
from wdtk.synth.agent.visit import EXTRACT_SCHEMA
from wdtk.synth.judge import VERDICT_SCHEMA, Judge
from wdtk.synth.llm.base import GrammarError, PermanentLLMError, Sampling
from wdtk.synth.llm.cache import cache_key
from wdtk.synth.llm.client import LLMClient
from wdtk.synth.llm.factory import make_llm
from wdtk.synth.llm.wire import request_body
from wdtk.synth.parallel import Backends, PartitionsFailed, RunOptions

# the first words of each JSON prompt, and the schema it must carry
JSON_PROMPTS = {
    "You write question-answer pairs": crawlqa.QA_OUTPUT_SCHEMA,
    "Decide whether the evidence": crawlqa.SUPPORT_SCHEMA,
    "Pick one entity": e2hqa.ENTITY_SCHEMA,
    "Write a short description": e2hqa.DESCRIBE_SCHEMA,
    "A question was rewritten": e2hqa.CHECK_SCHEMA,
    "List the facts the question below is built from": e2hqa.SEED_CLAIMS_SCHEMA,
    "You read one web page": EXTRACT_SCHEMA,
    "Please determine whether the predicted answer": VERDICT_SCHEMA,
}
USER = [{"role": "user", "content": "hi"}]


def kind(body: dict) -> str:
    """Which prompt a request body carries: a key of JSON_PROMPTS, or "agent"."""
    first = body["messages"][0]["content"]
    if "# Tools" in first and "<tools>" in first:
        return "agent"
    prompt = body["messages"][-1]["content"]
    return next((k for k in JSON_PROMPTS if prompt.startswith(k) or first.startswith(k)), "other")


@pytest.fixture
def scripted(openai_server, truth, site_server, qa_seeds):
    """The fake server answering synthesis prompts from the site's truth, and agent, visit and judge prompts."""
    answers = {s["problem"]: s["answer"] for s in qa_seeds}
    agent, synth = AgentModel(answers), TruthModel(truth, site_server)
    openai_server.responder = lambda body: r if (r := agent(body)) != "I do not understand" else synth(body)
    return openai_server


def run_every_prompt(server, qa_run, pages, tmp_path, structured: str) -> None:
    """CRAWLQA (with its support check), E2HQA, sampling (agent turns and visits) and the judge, on the server."""
    b = Backends(
        model="openai:scripted",
        api_base=server.base_url,
        cache_path=str(tmp_path / "cache.sqlite"),
        search=f"bm25:{qa_run / 'index'}",
        concurrency=8,
        structured=structured,
    )
    here = RunOptions(workers=0)
    crawlqa.run(pages, tmp_path / "crawlqa", crawlqa.CrawlQAConfig(), b, here, max_groups=3)
    e2hqa.run(qa_run / "seeds.jsonl", tmp_path / "e2hqa", e2hqa.E2HQAConfig(rewrites=1), b, here, limit=2)
    sample.run([qa_run / "seeds.jsonl"], tmp_path / "sample", sample.SampleConfig(rollouts=1), b, here, limit=1)
    client = LLMClient(make_llm("openai:scripted", server.base_url), structured=structured)
    asyncio.run(Judge(client).judge("x" * 16, "Q?", "Oslo", "oslo"))


def test_every_json_prompt_carries_its_schema_and_agent_turns_no_grammar_in_auto(
    scripted, qa_run, pages_file, tmp_path
):
    run_every_prompt(scripted, qa_run, pages_file, tmp_path, "auto")
    seen = {kind(body) for body in scripted.requests}
    assert seen >= {*JSON_PROMPTS, "agent"}, seen
    for body in scripted.requests:
        if kind(body) == "agent":  # OpenAI-compatible servers get the turn grammar only with --structured on
            assert not {"response_format", "structured_outputs", "ebnf"} & set(body)
        else:
            fmt = body["response_format"]
            assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == JSON_PROMPTS[kind(body)]
    trajectories = list(read_records(tmp_path / "sample" / "records", kind="trajectory"))
    assert trajectories and all(t["meta"]["constrained"] is False for t in trajectories)


def test_on_sends_the_turn_grammar_and_off_sends_neither(scripted, qa_run, pages_file, tmp_path):
    run_every_prompt(scripted, qa_run, pages_file, tmp_path / "on", "on")
    turns = [b for b in scripted.requests if kind(b) == "agent"]
    grammar = turns[0]["structured_outputs"]["grammar"]
    assert turns[0]["ebnf"] == grammar and grammar.startswith("start: THINK action")
    assert '"const": "search"' in grammar and '"const": "answer"' in grammar
    assert '"const": "visit"' not in grammar  # no page seen yet: nothing to visit
    later = turns[1]["structured_outputs"]["grammar"]
    shown = react.seen_urls(turns[1]["messages"])
    assert shown and '"const": "visit"' in later and json.dumps({"enum": shown}) in later
    trajectories = list(read_records(tmp_path / "on" / "sample" / "records", kind="trajectory"))
    assert trajectories and all(t["meta"]["constrained"] for t in trajectories)
    scripted.reset()
    run_every_prompt(scripted, qa_run, pages_file, tmp_path / "off", "off")
    assert scripted.requests and not any({"response_format", "structured_outputs"} & set(b) for b in scripted.requests)


def test_request_body_by_mode():
    on = request_body("m", USER, Sampling(), {"type": "object"}, "start: X", "on")
    auto = request_body("m", USER, Sampling(), {"type": "object"}, "start: X", "auto")
    off = request_body("m", USER, Sampling(), {"type": "object"}, "start: X", "off")
    assert on["structured_outputs"] == {"grammar": "start: X"} and on["ebnf"] == "start: X" and "response_format" in on
    assert "response_format" in auto and not {"structured_outputs", "ebnf"} & set(auto)
    assert not {"response_format", "structured_outputs", "ebnf"} & set(off)


def refuse_response_format(body: dict):
    if "response_format" in body:
        return Reply.error(400, "Unrecognized request argument supplied: response_format")
    return None


def test_auto_falls_back_once_when_the_server_refuses_response_format(
    openai_server, truth, site_server, pages_file, tmp_path, caplog
):
    truthful = TruthModel(truth, site_server)
    openai_server.responder = lambda body: refuse_response_format(body) or truthful(body)
    b = Backends(model="openai:old", api_base=openai_server.base_url, concurrency=1, structured="auto")
    pages, cfg = pages_file, crawlqa.CrawlQAConfig(verify_with_llm=False)
    with caplog.at_level(logging.WARNING, logger="wdtk.synth.llm.structured"):
        summary = crawlqa.run(pages, tmp_path / "auto", cfg, b, RunOptions(workers=0), max_groups=3)
    refused = [i for i, body in enumerate(openai_server.requests) if "response_format" in body]
    assert refused == [0] and openai_server.request_count == 4  # the refused one, asked again, then two more
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1 and len(caplog.records) == 1
    assert "refused structured outputs" in caplog.records[0].message and "response_format" in caplog.records[0].message
    assert summary["items"] == 3 and summary["kept"] > 0 and "llm_error" not in summary["rejected"]

    openai_server.reset()  # with --structured on, a refusal is an error for the item, not a fallback
    b = Backends(model="openai:old", api_base=openai_server.base_url, concurrency=1, structured="on")
    summary = crawlqa.run(pages, tmp_path / "on", cfg, b, RunOptions(workers=0), max_groups=2)
    assert summary["rejected"] == {"llm_error": 2} and all("response_format" in r for r in openai_server.requests)


def test_other_400s_are_not_taken_for_a_refusal(openai_server):
    openai_server.queue(Reply.error(400, "messages: field required"))
    with pytest.raises(PermanentLLMError, match="field required"):
        asyncio.run(make_llm("m", api_base=openai_server.base_url).complete(USER, Sampling(), json_schema={}))
    assert openai_server.request_count == 1


def test_the_difficulty_gates_solver_takes_the_runs_mode(openai_server):
    from wdtk.synth.difficulty import client_for
    from wdtk.synth.parallel import Context

    for mode in ("off", "on"):
        ctx = Context(LLMClient(make_llm("openai:m", openai_server.base_url), structured=mode), None, None)
        assert client_for(ctx, "openai:solver", openai_server.base_url).structured == mode


def test_cache_key_separates_grammar_and_mode():
    base = cache_key("m", USER, Sampling(), "v", {"type": "object"})
    assert base == cache_key("m", USER, Sampling(), "v", {"type": "object"}, None, True)  # as before for plain calls
    assert base != cache_key("m", USER, Sampling(), "v", {"type": "object"}, None, False)
    assert cache_key("m", USER, Sampling(), "v", None, "start: A") != cache_key(
        "m", USER, Sampling(), "v", None, "start: B"
    )
    assert cache_key("m", USER, Sampling(), "v") == cache_key("m", USER, Sampling(), "v", None, None, False)


# --- the grammar engine (llguidance) -------------------------------------------------------------


def test_every_prompt_schema_and_the_turn_grammar_compile():
    from wdtk.synth import claims, graphqa, rivals
    from wdtk.synth.llm import grammar

    more = [graphqa.EXTRACT_SCHEMA, graphqa.COMPOSE_SCHEMA, claims.SUPPORT_SCHEMA, rivals.RIVAL_SCHEMA]
    for schema in [*JSON_PROMPTS.values(), *more]:
        assert grammar.check(grammar.from_schema(schema)) is None, schema
    for urls in (None, [], ["http://127.0.0.1:1/wiki/A"]):
        assert grammar.check(grammar.from_lark(react.turn_grammar(react.TOOLS, 256, urls))) is None


def turn(think: str, call: dict | None = None, answer: str | None = None) -> str:
    return react.render_assistant(react.assistant_message(react.Turn(think=think, call=call, answer=answer)))


def plain_tokenizer():
    """A byte-level BPE tokenizer trained on the system prompt, with no WebDancer tags among its tokens (SmolLM2's
    are not either: tiny_lm's tokenizer adds them as tokens, which llguidance counts as special)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([react.Instructions().system_prompt()], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>")


def test_the_turn_grammar_takes_rendered_turns_and_refuses_broken_ones():
    import llguidance
    import llguidance.hf

    from wdtk.synth.llm.grammar import from_lark

    tok = plain_tokenizer()
    url = "http://127.0.0.1:1/wiki/Halvard_Institute"
    grammar = from_lark(react.turn_grammar(react.TOOLS, 256, [url]))

    def accepts(text: str) -> bool:
        matcher = llguidance.LLMatcher(llguidance.hf.from_tokenizer(tok), grammar, log_level=0)
        return matcher.consume_tokens(tok(text, add_special_tokens=False)["input_ids"]) and matcher.is_accepting()

    search = {"name": "search", "arguments": {"query": ["Halvard Institute founded"]}}
    assert accepts(turn("I should look this up.", call=search))
    assert accepts(turn("The page says 1872.", answer="1872"))
    assert accepts(turn("Read it.", call={"name": "visit", "arguments": {"url": [url], "goal": "founding year"}}))
    assert accepts(turn("Done.", call={"name": "answer", "arguments": {"answer": "1872"}}))
    assert not accepts(turn("Read it.", call={"name": "visit", "arguments": {"url": [url + "x"], "goal": "g"}}))
    assert not accepts(turn("Hm.", call={"name": "browse", "arguments": {"query": ["x"]}}))
    assert not accepts(turn("Hm.", call={"name": "search", "arguments": {"query": "not a list"}}))
    assert not accepts(turn("Hm.", call={"name": "search", "arguments": {"query": ["x"], "page": 2}}))
    assert not accepts(turn("Hm.", call=search) + "\n<answer>1872</answer>")  # two actions
    assert not accepts("<answer>1872</answer>")  # no thought
    assert not accepts(turn("x" * 400, answer="1872"))  # thoughts beyond what 256 tokens leave for the action
    assert not accepts(turn("Hm.", answer="word " * 60))  # an answer past its 48 tokens: </answer> comes first


@pytest.mark.parametrize("budget", [160, 256, 512, 2048])
def test_the_longest_call_the_grammar_allows_fits_the_turns_budget(budget):
    """At one token a character (the worst case: digits, underscores), the longest call the grammar takes fits
    the tokens the turn keeps for its action, and the thought the rest: a budget-cut call is no longer possible.
    The demo's 160-token turns once ended a rollout in format_error with three rambling 120-character queries."""
    import llguidance
    import llguidance.hf

    from wdtk.synth.llm.grammar import from_lark

    tok = plain_tokenizer()
    url = "http://127.0.0.1:1/wiki/Halvard_Institute"
    grammar = from_lark(react.turn_grammar(react.TOOLS, budget, [url]))

    def accepts(text: str) -> bool:
        matcher = llguidance.LLMatcher(llguidance.hf.from_tokenizer(tok), grammar, log_level=0)
        return matcher.consume_tokens(tok(text, add_special_tokens=False)["input_ids"]) and matcher.is_accepting()

    items, chars = react.call_bounds(budget)
    think = "x" * ((budget - react.action_tokens(budget)) * 2)
    shown = [url] + [f"{url}/{'7' * n}" for n in range(10, 400, 10)]
    fits = react.visit_urls(shown, budget)
    assert url in fits and len(fits) < len(shown)  # the site's URLs fit; a very long one cannot be visited here
    grammar = from_lark(react.turn_grammar(react.TOOLS, budget, shown))
    longest = [
        ({"name": "search", "arguments": {"query": ["7" * chars] * items}}, []),
        ({"name": "visit", "arguments": {"url": [fits[-1]] * items, "goal": "7" * react.VISIT_GOAL_CHARS}},
         [fits[-1]] * items),
    ]  # fmt: skip
    for call, urls in longest:
        assert accepts(turn(think, call=call))
        action = turn(think, call=call).split("</think>\n", 1)[1]
        # what the model writes: at least one character a token; what it copies (URLs) and the fixed text around
        # it (tags, keys, punctuation): at least two
        written = sum(len(v) for v in json.dumps(call["arguments"])[1:].split('"')[1::2]) - sum(map(len, urls))
        written -= sum(len(k) for k in call["arguments"])  # the keys are fixed text
        tokens = written + (len(action) - written + 1) // 2
        assert tokens <= react.action_tokens(budget), (call, tokens)
    too_long = {"name": "visit", "arguments": {"url": [shown[-1]], "goal": "g"}}
    assert shown[-1] not in fits and not accepts(turn("Hm.", call=too_long))
    assert len(think) + react.action_tokens(budget) <= 2 * budget  # the thought: two characters a token left
    assert not accepts(turn("Hm.", call={"name": "search", "arguments": {"query": ["7" * (chars + 1)]}}))
    assert not accepts(turn("Hm.", call={"name": "search", "arguments": {"query": ["q"] * (items + 1)}}))


def test_tightened_schemas_still_accept_what_the_original_requires():
    from wdtk.synth.llm.jsonout import schema_error
    from wdtk.synth.llm.structured import MAX_ITEMS, tightened

    tight = tightened(crawlqa.QA_OUTPUT_SCHEMA)
    assert tight["additionalProperties"] is False and tight["properties"]["qa"]["maxItems"] == MAX_ITEMS
    assert tight["properties"]["qa"]["items"]["additionalProperties"] is False
    good = {"qa": [{"type": "COUNT", "question": "q", "answer": 3, "evidence_urls": []}]}
    assert schema_error(good, tight) is None and schema_error(good, crawlqa.QA_OUTPUT_SCHEMA) is None
    runaway = {"qa": [{**good["qa"][0], "evidence_urls": [f"Question {i}" for i in range(40)]}]}
    assert schema_error(runaway, tight) and schema_error(runaway, crawlqa.QA_OUTPUT_SCHEMA) is None
    budgeted = tightened(e2hqa.ENTITY_SCHEMA, max_chars=160)  # strings held to the reply's budget (in characters)
    assert (
        budgeted["properties"]["entity"]["maxLength"] == 160
        and "maxLength" not in e2hqa.ENTITY_SCHEMA["properties"]["entity"]
    )
    assert "maxLength" not in tightened({"type": "string", "enum": ["a"]}, max_chars=1)
    assert crawlqa.QA_OUTPUT_SCHEMA.get("additionalProperties") is None  # the original is left alone


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A local: checkpoint with random weights: whatever it writes, only the grammar makes it well-formed."""
    from tiny_lm import save_tiny

    return make_llm(f"local:{save_tiny(tmp_path_factory.mktemp('tiny') / 'lm', 'chatml')}")


def test_a_random_model_writes_schema_valid_json_only_when_constrained(tiny):
    from wdtk.synth.llm.jsonout import parse_json

    schema = {
        "type": "object",
        "required": ["ok", "n"],
        "properties": {"ok": {"type": "boolean"}, "n": {"enum": [1, 2]}},
    }
    sampling = Sampling(temperature=1.0, max_tokens=64, seed=3)

    async def both():
        calls = [tiny.complete(USER, sampling, json_schema=schema, structured=mode) for mode in ("auto", "off")]
        return await asyncio.gather(*calls)

    held, free = asyncio.run(both())
    assert held.constrained and not free.constrained and held.finish_reason == "stop"
    assert parse_json(held.text, schema) == (json.loads(held.text), None)
    assert parse_json(free.text, schema)[0] is None  # random tokens are no JSON object of this schema


def test_a_schema_that_cannot_compile_fails_with_one_line_naming_the_prompt(tiny, qa_run, tmp_path, monkeypatch):
    bad = {"type": "object", "properties": {"entity": {"$ref": "#/$defs/missing"}}}
    client = LLMClient(tiny, structured="auto")
    version = e2hqa.load_prompt("e2hqa_entity").version
    with pytest.raises(GrammarError) as raised:
        asyncio.run(client.chat_json(USER, bad, Sampling(max_tokens=8), prompt_version=version, stage="e2hqa"))
    message = str(raised.value)
    assert message.startswith("prompt 'e2hqa_entity': the grammar cannot be compiled") and "\n" not in message
    assert "missing" in message

    # in a stage, the run stops with that line (the `wdtk` group prints it as "Error: ...")
    monkeypatch.setattr(e2hqa, "ENTITY_SCHEMA", bad)
    b = Backends(model=f"local:{tiny.model_path}", search=f"bm25:{qa_run / 'index'}", concurrency=2)  # the same one
    with pytest.raises(PartitionsFailed, match="prompt 'e2hqa_entity': the grammar cannot be compiled"):
        e2hqa.run(qa_run / "seeds.jsonl", tmp_path / "e2hqa", e2hqa.E2HQAConfig(rewrites=1), b, RunOptions(workers=0))


class NoVisits:
    """A visit tool that reads nothing (this test is about the turns, not the pages)."""

    async def visit_many(self, urls: list[str], goal: str) -> str:
        return "The page could not be read."


@pytest.mark.slow
def test_the_embedded_model_writes_only_well_formed_turns_under_the_grammar(qa_run, qa_seeds):
    from wdtk.filters.funnel import validity_reason
    from wdtk.synth.agent.loop import Agent, AgentConfig
    from wdtk.synth.search.bm25 import BM25Index

    client = LLMClient(make_llm("embedded"), concurrency=8, timeout=3600)
    cfg = AgentConfig(max_calls=2, max_new_tokens=192, max_context_tokens=4096, temperature=0.0)
    agent = Agent(client, BM25Index.load(qa_run / "index"), NoVisits(), cfg)

    async def rollouts():
        return await asyncio.gather(*(agent.run(s["problem"]) for s in qa_seeds[:3]))

    for rollout in asyncio.run(rollouts()):
        assert rollout.termination in ("answer", "call_budget_exceeded"), (rollout.termination, rollout.detail)
        assert rollout.constrained and rollout.stats["llm_calls"] >= 1
        turns = [m for m in rollout.messages if m["role"] == "assistant"]
        assert turns and all(react.parse_turn(react.render_assistant(m)).error is None for m in turns)
        record = sample.trajectory_record({"id": "0" * 16, "question": "q", "answer": "a"}, 0, rollout, "m", "v", 0.0)
        assert rollout.termination != "answer" or validity_reason(record) is None
