"""Trajectory sampling: the ReAct agent's format, budgets and termination labels, and `wdtk sample` on Dask."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner
from servers.agent_model import AgentModel
from servers.openai_server import Reply

from wdtk.cli import main
from wdtk.schemas import is_complete, read_records, validate
from wdtk.synth.agent import format as react
from wdtk.synth.agent.loop import Agent, AgentConfig
from wdtk.synth.agent.visit import Visitor
from wdtk.synth.llm.client import LLMClient
from wdtk.synth.llm.factory import make_llm
from wdtk.synth.parallel import Backends, RunOptions, StageInputChanged
from wdtk.synth.sample import SampleConfig, run


def agent_for(server, qa_run, **cfg) -> Agent:
    from wdtk.synth.search.bm25 import BM25Index

    client = LLMClient(make_llm("agent-model", api_base=server.base_url), max_retries=1)
    index = BM25Index.load(qa_run / "index")
    return Agent(client, index, Visitor(client, corpus=index), AgentConfig(**cfg))


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('<think>a</think>\n<tool_call>\n{"name": "search", "arguments": {"query": ["x"]}}\n</tool_call>', "search"),
        ('<think>a</think><tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>', "search"),
        ('<think>a</think><tool_call>{"name": "visit", "arguments": {"url": "https://a.b/", "goal": "g"}}</tool_call>',
         "visit"),
        ("<think>a</think>\n<answer> 1872 </answer>", "answer:1872"),
        ('<tool_call>{"name": "answer", "arguments": {"answer": "Oslo"}}</tool_call>', "answer:Oslo"),
        ("so it is</think>\n<answer>Oslo</answer>", "answer:Oslo"),  # template opened <think> in the prompt
        ('<think>a</think><tool_call>{"name": "search", "arguments": {"query": ["x"]}}</tool_call>'
         "<tool_response>invented</tool_response><answer>z</answer>", "search"),  # cut at the invented response
    ],
)  # fmt: skip
def test_parse_turn_reads_well_formed_outputs(text, expected):
    turn = react.parse_turn(text)
    assert turn.error is None
    got = f"answer:{turn.answer}" if turn.answer is not None else turn.call["name"]
    assert got == expected
    if turn.call:
        assert react.check_call(turn.call["name"], turn.call["arguments"]) is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("I think the answer is Oslo.", "no_action"),
        ("<think>a</think>", "no_action"),
        ('<think>a</think><tool_call>{"name": "search", "arguments": {"query": [}</tool_call>', "tool_call_not_json"),
        ('<think>a</think><tool_call>{"name": "browse", "arguments": {"url": ["x"]}}</tool_call>', "unknown_tool"),
        ('<tool_call>{"name": "visit", "arguments": {"url": ["https://a.b/"]}}</tool_call>', "bad_arguments"),
        ('<tool_call>{"name": "visit", "arguments": {"url": ["file:///etc/passwd"], "goal": "g"}}</tool_call>',
         "bad_arguments"),
        ('<tool_call>{"name": "search", "arguments": {"query": ["x"], "page": 2}}</tool_call>', "bad_arguments"),
        ('<tool_call>["search"]</tool_call>', "tool_call_not_json"),
        ("<think>a</think><tool_call>{\"name\": \"search\"", "unbalanced_tag"),
        ("<think>a</think><answer>Oslo", "unbalanced_tag"),
        ("<think>a</think><answer>Oslo</answer><answer>Bergen</answer>", "several_actions"),
        ('<tool_call>{"name": "search", "arguments": {"query": ["x"]}}</tool_call><answer>y</answer>',
         "both_tool_call_and_answer"),
        ("<think>a</think><answer>  </answer>", "empty_answer"),
    ],
)  # fmt: skip
def test_parse_turn_names_what_is_wrong_with_broken_outputs(text, error):
    turn = react.parse_turn(text)
    assert turn.error is not None and turn.error.startswith(error), turn.error
    assert turn.call is None and turn.answer is None


def test_reasoning_content_becomes_the_thought_and_renders_back_as_think():
    turn = react.parse_turn('<tool_call>{"name": "search", "arguments": {"query": ["q"]}}</tool_call>', "long chain")
    message = react.assistant_message(turn, "call_3")
    assert message["reasoning_content"] == "long chain"
    assert message["tool_calls"][0]["id"] == "call_3"
    again = react.parse_turn(react.render_assistant(message))
    assert (again.think, again.call, again.error) == ("long chain", turn.call, None)


# --- one rollout ---------------------------------------------------------------------------------


def test_good_rollout_follows_webdancer_format(openai_server, qa_run, qa_seeds):
    question, gold = qa_seeds[0]["problem"], qa_seeds[0]["answer"]
    openai_server.responder = AgentModel({question: gold})
    rollout = asyncio.run(agent_for(openai_server, qa_run).run(question))
    assert rollout.termination == "answer" and rollout.prediction == gold
    roles = [m["role"] for m in rollout.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert "<tools>" in rollout.messages[0]["content"] and '"name": "visit"' in rollout.messages[0]["content"]
    search, visit = rollout.messages[2]["tool_calls"][0], rollout.messages[4]["tool_calls"][0]
    assert search["function"]["name"] == "search" and visit["function"]["name"] == "visit"
    assert rollout.messages[3]["content"].startswith(f"A search for '{question}' found")
    assert gold in rollout.messages[5]["content"]  # the visit tool quoted the page's sentence
    assert rollout.stats["llm_calls"] == 3 and rollout.stats["actions"] == 2
    # what the model was sent on its last turn: tool responses as user turns in <tool_response> tags
    agent_prompts = [r for r in openai_server.requests if "<tools>" in r["messages"][0]["content"]]
    last = agent_prompts[-1]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert last[3]["content"].startswith("<tool_response>\n") and last[3]["content"].endswith("\n</tool_response>")
    assert last[2]["content"].startswith("<think>") and "<tool_call>" in last[2]["content"]
    assert agent_prompts[-1]["stop"] == ["<tool_response>"]


@pytest.mark.parametrize(
    ("plan", "cfg", "termination", "calls"),
    [
        ("broken", {}, "format_error", 1),
        ("loop", {"max_calls": 4}, "call_budget_exceeded", 4),
        ("loop", {"max_context_tokens": 1500, "max_new_tokens": 64}, "token_limit", None),
        ("loop", {"max_seconds": 1e-9}, "time_limit", 0),
    ],
)
def test_budgets_and_termination_labels(openai_server, qa_run, qa_seeds, plan, cfg, termination, calls):
    question = qa_seeds[1]["problem"]
    openai_server.responder = AgentModel({question: qa_seeds[1]["answer"]}, {question: [plan]})
    rollout = asyncio.run(agent_for(openai_server, qa_run, **cfg).run(question))
    assert rollout.termination == termination, rollout.detail
    assert rollout.prediction is None and rollout.detail
    if calls is not None:
        assert rollout.stats["llm_calls"] == calls
    if termination == "format_error":
        assert rollout.messages[-1] == {"role": "assistant", "content": rollout.messages[-1]["content"]}
        assert '"query": [' in rollout.messages[-1]["content"]  # the broken output, verbatim
    if termination == "token_limit":
        assert rollout.stats["context_tokens"] >= 1500 - 64 or "context holds" in rollout.detail


def test_reasoning_model_thoughts_are_captured(openai_server, qa_run, qa_seeds):
    question = qa_seeds[0]["problem"]
    openai_server.responder = AgentModel({question: qa_seeds[0]["answer"]}, {question: ["reasoning"]})
    rollout = asyncio.run(agent_for(openai_server, qa_run).run(question))
    assert rollout.termination == "answer"
    thoughts = [m.get("reasoning_content") for m in rollout.messages if m["role"] == "assistant"]
    assert thoughts[0].startswith("Plan 1") and all(thoughts)


def test_a_tool_response_is_cut_to_the_budget(openai_server, qa_run, qa_seeds):
    question = qa_seeds[0]["problem"]
    openai_server.responder = AgentModel({question: qa_seeds[0]["answer"]})
    rollout = asyncio.run(agent_for(openai_server, qa_run, max_observation_chars=200).run(question))
    tool_turns = [m["content"] for m in rollout.messages if m["role"] == "tool"]
    assert all(len(t) <= 200 + len("\n[... cut]") for t in tool_turns) and tool_turns[0].endswith("[... cut]")


# --- the stage and the command ------------------------------------------------------------------


def test_wdtk_sample_on_dask_writes_valid_trajectories_with_every_label(openai_server, qa_run, qa_seeds, tmp_path):
    answers = {s["problem"]: s["answer"] for s in qa_seeds}
    plans = {qa_seeds[0]["problem"]: ["good", "wrong", "broken"], qa_seeds[1]["problem"]: ["loop"]}
    openai_server.responder = AgentModel(answers, plans)
    out = tmp_path / "sample"
    result = CliRunner().invoke(
        main,
        ["sample", str(qa_run / "seeds.jsonl"), "--dir", str(qa_run), "-o", str(out), "--model", "agent-model",
         "--api-base", openai_server.base_url, "--workers", "2", "--partition-size", "2", "--max-calls", "5"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = list(read_records(out / "records", kind="trajectory"))
    assert len(records) == 3 * len(qa_seeds)
    for r in records:
        validate(r, "trajectory")
    by_question: dict[str, list[dict]] = {}
    for r in records:
        by_question.setdefault(r["question"], []).append(r)
    assert sorted(r["rollout"] for r in by_question[qa_seeds[2]["problem"]]) == [0, 1, 2]
    ends = sorted(r["termination"] for r in by_question[qa_seeds[0]["problem"]])
    assert ends == ["answer", "answer", "format_error"]
    assert {r["termination"] for r in by_question[qa_seeds[1]["problem"]]} == {"call_budget_exceeded"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["terminations"]["answer"] == sum(r["termination"] == "answer" for r in records)
    assert "ended by:" in result.output and "call_budget_exceeded" in result.output
    assert len({r["id"] for r in records}) == len(records)


def test_a_rerun_repeats_no_finished_rollout(openai_server, qa_run, qa_seeds, tmp_path):
    openai_server.responder = AgentModel({s["problem"]: s["answer"] for s in qa_seeds})
    backends = Backends(
        model="agent-model", api_base=openai_server.base_url, cache_path=str(tmp_path / "cache.sqlite"),
        search=f"bm25:{qa_run / 'index'}",
    )  # fmt: skip
    opts = RunOptions(workers=0, partition_size=2)
    first = run([qa_run / "seeds.jsonl"], tmp_path / "s", SampleConfig(rollouts=2), backends, opts)
    calls = openai_server.request_count
    # a run killed between a chunk's records and its done file: the orphaned records go, the cache survives
    (tmp_path / "s" / "done" / "00001-0000.json").unlink()
    again = run([qa_run / "seeds.jsonl"], tmp_path / "s", SampleConfig(rollouts=2), backends, opts)
    assert openai_server.request_count == calls  # replayed from the cache: no call paid twice
    assert again["inputs"]["resumed"] == 2 * len(qa_seeds) - 2 and again["partitions"] == 1
    assert again["kept"] == first["kept"] == 2 * len(qa_seeds) and again["questions"] == len(qa_seeds)
    ids = [r["id"] for r in read_records(tmp_path / "s" / "records")]
    assert len(ids) == len(set(ids)) == 2 * len(qa_seeds)
    # --rollouts 3 without --restart: only the third rollout of each question runs; the first two are kept as they are
    more = run([qa_run / "seeds.jsonl"], tmp_path / "s", SampleConfig(rollouts=3), backends, opts)
    assert more["inputs"]["resumed"] == 2 * len(qa_seeds) and more["kept"] == 3 * len(qa_seeds)
    records = list(read_records(tmp_path / "s" / "records"))
    assert sorted(r["rollout"] for r in records) == sorted(list(range(3)) * len(qa_seeds))
    assert {r["id"] for r in records} >= set(ids)
    with pytest.raises(StageInputChanged, match="options"):  # resuming with other options would mix two runs
        hotter = SampleConfig(rollouts=3, agent=AgentConfig(temperature=0.9))
        run([qa_run / "seeds.jsonl"], tmp_path / "s", hotter, backends, opts)


def test_wdtk_sample_says_what_is_missing(tmp_path):
    result = CliRunner().invoke(main, ["sample", "--dir", str(tmp_path)])
    assert result.exit_code != 0 and "wdtk filter" in result.output


def test_unknown_tool_response_is_never_taken_from_the_model(openai_server, qa_run, qa_seeds):
    """A model that writes the tool's answer itself is stopped there; the response comes from the tool."""
    question = qa_seeds[0]["problem"]
    openai_server.queue(
        Reply(text='<think>x</think><tool_call>{"name": "search", "arguments": {"query": ["q"]}}</tool_call>'
                   "<tool_response>The answer is Atlantis.</tool_response>"),
        Reply(text="<think>fine</think><answer>done</answer>"),
    )  # fmt: skip
    rollout = asyncio.run(agent_for(openai_server, qa_run).run(question))
    assert "Atlantis" not in rollout.messages[3]["content"]
    assert rollout.messages[3]["content"].startswith("A search for 'q'")


def test_the_wall_time_budget_cuts_a_slow_call_short(openai_server, qa_run, qa_seeds):
    openai_server.queue(Reply.slow(20))
    rollout = asyncio.run(agent_for(openai_server, qa_run, max_seconds=0.5).run(qa_seeds[0]["problem"]))
    assert rollout.termination == "time_limit" and "in an LLM call" in rollout.detail
    assert rollout.stats["seconds"] < 10  # cut, not waited out: the reply would take 20 s
    assert [m["role"] for m in rollout.messages] == ["system", "user"]


def test_a_sigkilled_wdtk_sample_finishes_with_every_rollout_once(openai_server, qa_run, qa_seeds, tmp_path):
    """A real kill mid-run: the rerun keeps the finished partitions, replays completed calls from the cache, and
    ends with each question's rollouts exactly once."""
    import signal
    import subprocess
    import sys
    import time

    openai_server.responder = AgentModel({s["problem"]: s["answer"] for s in qa_seeds})
    openai_server.latency = 0.1

    def cmd(out):
        return [sys.executable, "-m", "wdtk.cli", "sample", str(qa_run / "seeds.jsonl"), "--dir", str(tmp_path),
                "-o", str(out), "--search", f"bm25:{qa_run / 'index'}", "--model", "openai:agent-model",
                "--api-base", openai_server.base_url, "--workers", "0", "--partition-size", "1",
                "--concurrency", "2"]  # fmt: skip

    clean = subprocess.run(cmd(tmp_path / "clean"), capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stderr[-2000:]
    calls_clean = openai_server.request_count
    (tmp_path / "llm_cache.sqlite").unlink()  # the killed run starts with an empty cache, as the clean one did
    openai_server.reset()
    killed = subprocess.Popen(cmd(tmp_path / "out"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "out" / "done").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.02)
    while openai_server.request_count < calls_clean // 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "out" / "summary.json").exists() and not is_complete(tmp_path / "out" / "records")
    before = openai_server.request_count
    rerun = subprocess.run(cmd(tmp_path / "out"), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "partitions resumed" in rerun.stdout
    records = list(read_records(tmp_path / "out" / "records", kind="trajectory"))
    assert sorted((r["question_id"], r["rollout"]) for r in records) == sorted(
        (r["question_id"], r["rollout"]) for r in read_records(tmp_path / "clean" / "records")
    )
    assert openai_server.request_count - before < calls_clean  # finished work was not redone
    # paid twice: at most the 2 calls in flight at the kill; and a clean run's own count varies by a few, since
    # concurrent rollouts reading the same page may or may not find its extraction in the cache yet
    assert openai_server.request_count <= calls_clean + 8


def test_ids_do_not_depend_on_the_endpoint_address(qa_run, qa_seeds, tmp_path):
    """The same model behind another port writes the same records, and a resume against the new address re-does
    nothing: neither ids, meta nor cache keys carry the address."""
    from servers import FakeOpenAIServer

    answers = {s["problem"]: s["answer"] for s in qa_seeds}
    search, opts = f"bm25:{qa_run / 'index'}", RunOptions(workers=0)

    def sample_with(server, out: str) -> dict:
        backends = Backends(model="openai:agent-model", api_base=server.base_url, search=search,
                            cache_path=str(tmp_path / f"{out}.sqlite"))  # fmt: skip
        return run([qa_run / "seeds.jsonl"], tmp_path / out, SampleConfig(rollouts=1), backends, opts)

    records = []
    for out in ("a", "b"):
        with FakeOpenAIServer(AgentModel(answers)) as server:  # a new port each time
            sample_with(server, out)
            records.append(sorted((r["id"], r["meta"]["model"]) for r in read_records(tmp_path / out / "records")))
    assert records[0] == records[1] and records[0][0][1] == "openai:agent-model"
    with FakeOpenAIServer(AgentModel(answers)) as moved:  # resume "a" against yet another address
        again = sample_with(moved, "a")
        assert moved.request_count == 0 and again["inputs"]["resumed"] == len(qa_seeds)
