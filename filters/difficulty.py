"""The difficulty gate: keep a question only if a strong solver fails it (ASearcher, DeepDive).

A solver model (its own model and endpoint, by default the synthesis model) answers each question closed-book, with
no tools, `attempts` times (synth/prompts/solve_closed_book.txt), and optionally with the ReAct agent and its search
and visit tools `agent_attempts` times; each answer is judged against the gold one as the funnel judges (an LLM judge,
else normalised exact match, then token F1). The pass rates go into `meta.difficulty` (solver, k, closed_book_pass,
and agent_k, agent_pass when the agent ran); a question whose closed-book or agent pass rate is above `max_pass` is
dropped as `too_easy` (default 0: a single success drops it; the agent does not run once closed-book has dropped it).
Every call goes through the stage's response cache, so a rerun pays for none twice.

    reason, difficulty = await assess(qa, ctx, DifficultyConfig(attempts=3))     # ("too_easy" or None, meta)
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from ..synth.agent.loop import Agent, AgentConfig
from ..synth.agent.visit import Visitor
from ..synth.llm.base import Sampling
from ..synth.llm.client import LLMClient
from ..synth.prompting import load_prompt
from .judge import Judge, JudgeConfig

_LLMS: dict = {}  # per worker process: (model, api base) -> backend, built once like the stage's own


@dataclass(frozen=True)
class DifficultyConfig:
    """Who solves, how often, and what pass rate is too easy."""

    solver_model: str | None = None  # None: the stage's model
    solver_api_base: str | None = None
    attempts: int = 3  # closed-book tries (k)
    agent_attempts: int = 0  # tries with the agent and its tools (0: closed-book only)
    max_pass: float = 0.0  # a pass rate above this drops the question as too_easy
    temperature: float = 0.7
    max_tokens: int = 256
    judge_model: str | None = None  # None: exact match, then F1
    judge_api_base: str | None = None
    f1_threshold: float = 0.8
    agent: AgentConfig = field(default_factory=lambda: AgentConfig(max_calls=8))


def client_for(ctx, model: str | None, api_base: str | None) -> LLMClient:
    """An LLM client for `model` sharing the stage's cache and usage counts; the stage's own client for None."""
    if not model:
        return ctx.client
    from ..synth.llm.factory import limits, make_llm

    if (model, api_base) not in _LLMS:
        _LLMS[model, api_base] = make_llm(model, api_base)
    concurrency, timeout = limits(model, ctx.client.concurrency, ctx.client.timeout)
    return LLMClient(
        _LLMS[model, api_base],
        concurrency=concurrency,
        timeout=timeout,
        cache=ctx.client.cache,
        usage=ctx.client.usage,
        structured=ctx.client.structured,  # the run's --structured holds for the solver and the judge too
    )


def closed_book_answer(text: str) -> str:
    """The answer in a closed-book reply: after any reasoning, inside <answer> tags or after "Answer:", first line."""
    text = text.rsplit("</think>", 1)[-1]
    if m := re.search(r"<answer>(.*?)(?:</answer>|$)", text, flags=re.S):
        text = m.group(1)
    text = re.sub(r"^\s*(?:final\s+)?answer\s*[:：-]\s*", "", text.strip(), flags=re.I)
    return next((line.strip(" *_`\"'.") for line in text.splitlines() if line.strip()), "")


async def closed_book(qa: dict, solver: LLMClient, cfg: DifficultyConfig) -> list[str]:
    """The solver's answers to `attempts` closed-book tries (a distinct sample each, cached apart)."""
    prompt = load_prompt("solve_closed_book")
    messages = [{"role": "user", "content": prompt.render(question=qa["question"])}]

    async def one(i: int) -> str:
        sampling = Sampling(temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=0, sample_index=i)
        completion = await solver.chat(messages, sampling, prompt_version=prompt.version, stage="solver")
        return closed_book_answer(completion.text)

    return list(await asyncio.gather(*(one(i) for i in range(cfg.attempts))))


async def with_agent(qa: dict, solver: LLMClient, ctx, cfg: DifficultyConfig) -> list[str]:
    """The agent's final answers (empty when a rollout ended without one) on `agent_attempts` tries."""
    corpus = ctx.search if hasattr(ctx.search, "get") else None
    agent = Agent(solver, ctx.search, Visitor(solver, corpus=corpus), cfg.agent)
    rollouts = await asyncio.gather(*(agent.run(qa["question"], i) for i in range(cfg.agent_attempts)))
    return [r.prediction or "" for r in rollouts]


async def pass_rate(qa: dict, answers: list[str], judge: Judge, tag: str) -> float:
    """The share of `answers` the judge counts as correct."""
    verdicts = await asyncio.gather(
        *(judge.judge(f"{qa['id']}:{tag}{i}", qa["question"], qa["answer"], a) for i, a in enumerate(answers))
    )
    return round(sum(v["correct"] for v in verdicts) / len(verdicts), 4) if verdicts else 0.0


async def assess(qa: dict, ctx, cfg: DifficultyConfig) -> tuple[str | None, dict]:
    """("too_easy" or None, the record's meta.difficulty) for one question."""
    solver = client_for(ctx, cfg.solver_model, cfg.solver_api_base)
    judge_llm = client_for(ctx, cfg.judge_model, cfg.judge_api_base) if cfg.judge_model else None
    judge = Judge(judge_llm, JudgeConfig(f1_threshold=cfg.f1_threshold))
    meta = {"solver": solver.llm.name, "k": cfg.attempts, "judge": judge_llm.llm.name if judge_llm else "exact"}
    meta["closed_book_pass"] = await pass_rate(qa, await closed_book(qa, solver, cfg), judge, "closed")
    if meta["closed_book_pass"] > cfg.max_pass:
        return "too_easy", meta
    if cfg.agent_attempts:
        if ctx.search is None:
            raise ValueError("the difficulty gate's agent attempts need a search engine")
        meta["agent_k"] = cfg.agent_attempts
        meta["agent_pass"] = await pass_rate(qa, await with_agent(qa, solver, ctx, cfg), judge, "agent")
        if meta["agent_pass"] > cfg.max_pass:
            return "too_easy", meta
    return None, meta
