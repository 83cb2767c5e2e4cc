"""The answer judge: does a prediction match the gold answer? An LLM decides with a GAIA-style equivalence prompt
(synth/prompts/judge.txt); normalised exact match and token F1 are computed alongside every verdict, and decide alone
when there is no judge model or its verdict cannot be read.

    judge = Judge(client)                     # Judge(None) judges by exact match and F1 only
    record = await judge.judge(trajectory["id"], question, gold, prediction)   # a `judgement` record
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..schemas import record_id
from ..synth.llm.base import Sampling
from ..synth.llm.client import LLMClient
from ..synth.prompting import load_prompt
from ..synth.text import is_number, normalize

# "correct", "incorrect", "not correct" and "isn't correct", but not "correctly" or "correctness"
_VERDICT = re.compile(r"(?:(\bnot\s+|n['’]t\s+)|\b(in)|\b)correct\b")
_LABEL = re.compile(r"^(?:final\s+)?(?:verdict|judge?ment|evaluation|decision|result|answer)\s*[:=-]\s*")
_JSON_FLAG = re.compile(r'"(?:is_)?correct"\s*:\s*"?(\w*)')  # {"correct": true}: a key, not a verdict word
_MARKUP = re.compile(r'[*_`#>"]')
# The verdict as JSON, asked for whenever the client may hold replies to a schema (--structured auto or on); the
# reply is still read by parse_verdict when it does not fit (a backend that ignored the schema).
VERDICT_SCHEMA = {"type": "object", "required": ["correct"], "properties": {"correct": {"type": "boolean"}}}


@dataclass(frozen=True)
class JudgeConfig:
    """How predictions are judged."""

    f1_threshold: float = 0.8  # used only without a verdict: token F1 at least this counts as correct
    max_tokens: int = 1024  # room for a reasoning model's <think> block before its one-word verdict
    prompt: str = "judge"  # synth/prompts/<prompt>.txt


def _number(text: str) -> float | None:
    """The value of a plain number such as 1,204, 3.5, $12 or 50%; None for anything else."""
    text = text.strip().strip("$€£%").strip()
    return float(text.replace(",", "")) if is_number(text) else None


def exact_match(prediction: str, gold: str) -> bool:
    """Whether the normalised texts are equal, or both are numbers of equal value ("1,204" == "1204.0")."""
    p, g = _number(prediction), _number(gold)
    if p is not None and g is not None:
        return p == g
    norm = normalize(prediction)
    if not norm:  # normalize keeps ASCII only, so compare e.g. Chinese answers case-folded instead
        return bool(prediction.strip()) and prediction.strip().casefold() == gold.strip().casefold()
    return norm == normalize(gold)


def f1(prediction: str, gold: str) -> float:
    """SQuAD-style token F1 of the normalised texts; 1.0 whenever they match exactly."""
    if exact_match(prediction, gold):
        return 1.0
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def parse_verdict(text: str | None) -> bool | None:
    """The judge model's verdict: True for Correct, False for Incorrect, None when absent or ambiguous.

    Understands markdown, a "Verdict:" label, a <think>...</think> block before the verdict (ignored) and JSON such
    as {"correct": true}. A reply that mentions both verdicts without settling on one is ambiguous.
    """
    text = (text or "").lower()
    if "</think>" in text:  # the verdict follows the reasoning; the opening tag may be in the chat template
        text = text.rsplit("</think>", 1)[1]
    text = text.split("<think>", 1)[0]  # an unclosed think block is reasoning cut short, not a verdict
    if flag := _JSON_FLAG.search(text):
        return {"true": True, "false": False}.get(flag.group(1))  # never read the key itself as a verdict
    lines = [_LABEL.sub("", _MARKUP.sub("", line).strip()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return None
    first = _VERDICT.match(lines[0])
    if first and re.match(r"\s*($|[.,;:!(—-])", lines[0][first.end() :]):  # "Correct." / "Incorrect, because ..."
        return _is_positive(first)
    for line in reversed(lines):  # a verdict alone on a line closes a reasoning: "...\n\nVerdict: Incorrect"
        if (alone := _VERDICT.fullmatch(line.strip(" .!"))) is not None:
            return _is_positive(alone)
    verdicts = {_is_positive(m) for m in _VERDICT.finditer(" ".join(lines))}
    return verdicts.pop() if len(verdicts) == 1 else None


def _is_positive(match: re.Match) -> bool:
    return not (match.group(1) or match.group(2))


class Judge:
    """Judges predictions against gold answers: by an LLM when given a client, else by exact match and F1."""

    def __init__(self, client: LLMClient | None = None, cfg: JudgeConfig = JudgeConfig()):
        self.client, self.cfg = client, cfg
        self.prompt = load_prompt(cfg.prompt)

    def describe(self) -> dict:
        """What judges: {"method": "llm", "model", "prompt_version"} or {"method": "exact"} (for run summaries)."""
        if self.client is None:
            return {"method": "exact"}
        return {"method": "llm", "model": self.client.llm.name, "prompt_version": self.prompt.version}

    async def judge(self, item_id: str, question: str, gold: str, prediction: str) -> dict:
        """A judgement record (schemas/judgement.schema.json) of `prediction` for the item `item_id`."""
        prediction = prediction or ""
        base = {"item_id": item_id, "question": question, "gold": gold, "prediction": prediction}
        base |= {"exact_match": exact_match(prediction, gold), "f1": f1(prediction, gold)}
        if not prediction.strip():
            return self._by_metrics(base, rationale="empty prediction: incorrect without asking the judge")
        if self.client is None:
            return self._by_metrics(base)
        text = await self._ask(self.prompt.render(question=question, gold=gold, prediction=prediction))
        judge = {"model": self.client.llm.name, "prompt_version": self.prompt.version}
        base |= {"raw": text, "judge": judge}
        verdict = parse_verdict(text)
        if verdict is None:
            return self._by_metrics(base, rationale="judge verdict unreadable (see raw): fell back to exact match/F1")
        return _record(base, "llm", verdict, float(verdict))

    async def _ask(self, content: str) -> str:
        """The judge model's reply: {"correct": bool} by schema when the client may enforce one, else free text."""
        messages = [{"role": "user", "content": content}]
        sampling = Sampling(temperature=0.0, max_tokens=self.cfg.max_tokens)
        options = {"prompt_version": self.prompt.version, "stage": "judge"}
        if getattr(self.client, "structured", "off") == "off":
            return (await self.client.chat(messages, sampling, **options)).text
        return (await self.client.chat_json(messages, VERDICT_SCHEMA, sampling, **options)).raw

    def _by_metrics(self, base: dict, rationale: str | None = None) -> dict:
        """The verdict of exact match, else of F1 against the threshold."""
        if base["exact_match"]:
            record = _record(base, "exact", True, 1.0)
        else:
            record = _record(base, "f1", base["f1"] >= self.cfg.f1_threshold, base["f1"])
        return record | ({"rationale": rationale} if rationale else {})


def _record(base: dict, method: str, correct: bool, score: float) -> dict:
    judge = base.get("judge", {})
    key = record_id("judgement", base["item_id"], method, judge.get("model", ""), judge.get("prompt_version", ""))
    return {
        "id": key,
        **base,
        "correct": correct,
        "method": method,
        "score": score,
        "meta": {"wdtk_version": __version__},
    }


async def judge_many(judge: Judge, items: Iterable[dict]) -> list[dict]:
    """Judgements of records with "id", "question", "answer" and an optional "prediction" (trajectories), in order."""
    return await asyncio.gather(
        *(judge.judge(item["id"], item["question"], item["answer"], item.get("prediction", "")) for item in items)
    )


def judge_client(model: str | None, api_base: str | None, cache_path: Path | None = None):
    """The LLM client for a judge `model` (None: no LLM, exact match and F1 decide), its answers cached at
    `cache_path`. The CPU models (embedded, local:DIR) answer in slow batches: fewer in flight, a longer timeout."""
    if not model:
        return None
    from ..synth.llm.client import LLMClient, ResponseCache
    from ..synth.llm.factory import limits, make_llm

    concurrency, timeout = limits(model, 32, 120.0)
    cache = ResponseCache(cache_path) if cache_path else None
    return LLMClient(make_llm(model, api_base), concurrency=concurrency, timeout=timeout, cache=cache)
