"""The ReAct agent: think, call a tool, read its response, until it answers or a budget runs out.

    agent = Agent(client, search=BM25Index.load("run/index"), visitor=Visitor(client, corpus=index))
    rollout = await agent.run("Which river ...?", sample_index=1)
    rollout.messages, rollout.prediction, rollout.termination    # "answer", "call_budget_exceeded", ...

Every model turn is parsed by `wdtk.synth.agent.format.parse_turn`; a turn that breaks the format ends the rollout
("format_error", the raw output kept as the last message), as in WebDancer. Budgets: LLM calls, context tokens
and wall time. The prompt is rebuilt from the stored messages each turn (`react.text_messages`), so what is
stored is exactly what the model saw. Sampling, evaluation and RL rollouts all run this one loop.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from ..llm.base import PermanentLLMError, Sampling, TransientLLMError
from ..llm.client import prompt_chars
from ..search.base import SearchError, render_search, search_many
from .format import (
    MAX_QUERIES,
    MAX_URLS,
    Instructions,
    Turn,
    assistant_message,
    parse_turn,
    seen_urls,
    text_messages,
    turn_grammar,
)

STOP = ("<tool_response>",)  # a model that goes on to invent the tool's answer is stopped before it


@dataclass(frozen=True)
class AgentConfig:
    """Budgets and decoding of one rollout."""

    max_calls: int = 16  # LLM calls; WebDancer's "exceed available llm calls"
    max_context_tokens: int = 32_768  # prompt plus completion; WebDancer's "token limit reached"
    max_seconds: float = 900.0  # wall time of the rollout
    max_new_tokens: int = 2048  # per turn
    temperature: float = 0.6
    top_p: float = 0.95
    search_k: int = 5
    max_observation_chars: int = 12_000  # a tool response is cut there, so one page cannot fill the context


@dataclass
class Rollout:
    """One run of the agent on one question."""

    messages: list[dict]
    termination: str  # answer | call_budget_exceeded | token_limit | time_limit | format_error
    prediction: str | None = None
    detail: str = ""
    constrained: bool = False  # every turn was held to the ReAct grammar by the backend
    stats: dict = field(default_factory=lambda: {"llm_calls": 0, "actions": 0, "tokens": 0, "context_tokens": 0})


class Agent:
    """Runs the ReAct loop with a search engine and a visit tool; stateless between rollouts."""

    def __init__(
        self, client, search, visitor, cfg: AgentConfig | None = None, instructions: Instructions | None = None
    ):
        self.client, self.search, self.visitor = client, search, visitor
        self.cfg, self.instructions = cfg or AgentConfig(), instructions or Instructions()

    async def run(self, question: str, sample_index: int = 0) -> Rollout:
        """One rollout; `sample_index` tells rollouts of the same question apart (and their cache entries)."""
        cfg, started = self.cfg, time.monotonic()
        messages = [
            {"role": "system", "content": self.instructions.system_prompt()},
            {"role": "user", "content": question},
        ]
        rollout = Rollout(messages, termination="call_budget_exceeded")
        stats = rollout.stats
        while stats["llm_calls"] < cfg.max_calls:
            if time.monotonic() - started > cfg.max_seconds:
                return _end(rollout, "time_limit", f"over {cfg.max_seconds:g} s", started)
            prompt = text_messages(messages)
            room = cfg.max_context_tokens - _estimate(prompt)
            if room <= 0:
                return _end(rollout, "token_limit", f"the context holds over {cfg.max_context_tokens} tokens", started)
            sampling = Sampling(
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                max_tokens=min(cfg.max_new_tokens, room),
                stop=STOP,
                sample_index=sample_index,
            )
            try:  # the wall-time budget cuts a slow call short too, not only the turns after it
                async with asyncio.timeout(cfg.max_seconds - (time.monotonic() - started)):
                    completion = await self.client.chat(
                        prompt,
                        sampling,
                        prompt_version=self.instructions.version,
                        stage="agent",
                        grammar=self.grammar(messages),
                    )
            except TimeoutError:
                return _end(rollout, "time_limit", f"over {cfg.max_seconds:g} s (in an LLM call)", started)
            used = completion.prompt_tokens + completion.completion_tokens
            rollout.constrained = completion.constrained and (rollout.constrained or not stats["llm_calls"])
            stats["llm_calls"] += 1
            stats["tokens"] += used
            stats["context_tokens"] = used or _estimate(prompt) + len(completion.text) // 4
            turn = parse_turn(completion.text, completion.reasoning)
            if turn.answer is not None and turn.error is None:
                messages.append(assistant_message(turn))
                rollout.prediction = turn.answer
                return _end(rollout, "answer", "", started)
            if stats["context_tokens"] >= cfg.max_context_tokens:
                messages.append(_raw(turn))
                return _end(rollout, "token_limit", f"{stats['context_tokens']} tokens after this turn", started)
            if turn.error is not None:
                messages.append(_raw(turn))
                cut = " (output cut at max_new_tokens)" if completion.finish_reason == "length" else ""
                return _end(rollout, "format_error", turn.error + cut, started)
            call_id = f"call_{stats['actions']}"
            messages.append(assistant_message(turn, call_id))
            try:
                async with asyncio.timeout(cfg.max_seconds - (time.monotonic() - started)):
                    observation = await self.act(turn.call)
            except TimeoutError:
                messages.pop()  # the call that got no response: a trajectory never ends on an unanswered call
                return _end(
                    rollout, "time_limit", f"over {cfg.max_seconds:g} s (in a {turn.call['name']} call)", started
                )
            stats["actions"] += 1
            messages.append(
                {"role": "tool", "name": turn.call["name"], "tool_call_id": call_id, "content": observation}
            )
        return _end(rollout, "call_budget_exceeded", f"{cfg.max_calls} LLM calls without an answer", started)

    def grammar(self, messages: list[dict]) -> str:
        """The next turn's grammar (backends that can enforce one do, see --structured): the listed tools, and
        visit only to URLs the conversation has shown."""
        return turn_grammar(self.instructions.tools, self.cfg.max_new_tokens, seen_urls(messages))

    async def act(self, call: dict) -> str:
        """Run one valid tool call; tool failures (whatever the web or the arguments make them raise) become the
        observation and the rollout goes on; LLM failures propagate."""
        name, args = call["name"], call["arguments"]
        try:
            if name == "search":
                results = await search_many(self.search, args["query"][:MAX_QUERIES], self.cfg.search_k)
                observation = render_search(results)
            else:
                observation = await self.visitor.visit_many(args["url"][:MAX_URLS], args["goal"])
        except (TransientLLMError, PermanentLLMError):
            raise
        except SearchError as e:
            observation = f"The {name} tool failed: {e}. Try again or use another query."
        except Exception as e:  # noqa: BLE001 - web content is data: it never ends a rollout
            detail = " ".join(str(e).split())[:300]
            observation = f"The {name} tool failed: {type(e).__name__}: {detail}. Try again or use another query."
        if len(observation) > self.cfg.max_observation_chars:
            observation = observation[: self.cfg.max_observation_chars] + "\n[... cut]"
        return observation


def _estimate(messages: list[dict]) -> int:
    """Tokens of a prompt, roughly: backends report the true count only after the call."""
    return prompt_chars(messages) // 4 + 4 * len(messages)


def _raw(turn: Turn) -> dict:
    """The last, unusable output, kept verbatim for audit."""
    return {"role": "assistant", "content": turn.raw}


def _end(rollout: Rollout, termination: str, detail: str, started: float) -> Rollout:
    rollout.termination, rollout.detail = termination, detail
    rollout.stats["seconds"] = round(time.monotonic() - started, 3)
    return rollout
