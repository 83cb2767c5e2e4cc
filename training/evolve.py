"""Self-evolution (`wdtk evolve`), after EvolveSearch: rounds of sample -> funnel -> SFT set -> train -> eval.

    wdtk evolve --dir runs/demo --rounds 3 --base-model Qwen/Qwen2.5-0.5B-Instruct --model openai:gpt-4o-mini \\
        --held-out 0.2 --rollouts 4 --sft-args "--num_train_epochs 2 --max_length 16384"

Round 0 samples with --model/--api-base (the starting policy: the base model served, or a stronger teacher); round
r >= 1 samples with the model round r-1 trained. Each round runs these steps:
  sample   --rollouts ReAct rollouts per training question (the `wdtk sample` stage, resumable by partition)
  funnel   validity, correctness (--judge, else exact match / F1), quality; the kept trajectories exported as SFT rows
  sft_set  the training set: the kept rows of this round and of every earlier one (--no-accumulate: this round's)
  train    `python -m wdtk.training.sft` (or --launcher) on the set, from --base-model (--init previous: from the last
           checkpoint). The default retrains the base on all data so far: no row is trained on twice and a weak
           round cannot compound. A round that keeps no new trajectory trains nothing and keeps the last model.
  eval     Pass@1 of the round's model on the held-out questions (`wdtk eval`'s code, --eval-k rollouts each).
Held-out (--held-out): a FRACTION of the questions, those whose id hashes lowest, fixed once in RUN/evolve/split/;
or a benchmark FILE (any layout `wdtk eval` reads). Held-out questions (by id and by normalised text) are never
sampled for training, and every SFT set is checked for them.

How round r >= 1 reaches its model (--serve): local (transformers in this process, CPU: small models); vllm (vLLM
in a Dask worker that exits after each step, so the GPU is free for training); endpoint (an OpenAI-compatible server
at --serve-api-base that you start on the checkpoint: evolve stops naming the path to serve; serve it, rerun).

State: RUN/evolve/state.json, written atomically after every step: each round's finished steps with their outputs
and figures. A rerun resumes at the first unfinished step; it refuses other core options (--rounds may grow).
RUN/evolve/rounds.md holds the per-round table; RUN/evolve/round-R/ the round's sample, funnel, export, sft_set,
model, train.log and eval.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .. import __version__
from ..schemas import WdtkError
from ..synth.agent.loop import AgentConfig
from ..synth.options import (
    run_with_progress,
    stage_backends,
)
from ..synth.text import normalize

STEPS = ("sample", "funnel", "sft_set", "train", "eval")
SERVE = {"local": "local:", "vllm": "vllm:", "endpoint": "openai:"}  # how a checkpoint path becomes a model string


def _die_with_parent() -> None:
    """In the training subprocess: be killed when evolve dies, so a killed run leaves no training running (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(frozen=True)
class EvolveConfig:
    """The options that define a run: a resume with other values would mix two experiments."""

    base_model: str
    questions: tuple[str, ...]
    held_out: str
    model: str
    search: str
    rollouts: int
    agent: AgentConfig
    judge: str | None
    f1_threshold: float
    serve: str
    init: str
    accumulate: bool
    eval_k: int


def held_out_count(n: int, fraction: float) -> int:
    """How many of n questions a fraction holds out: at least one, and at least one left to train on."""
    if n < 2:
        raise ValueError(f"{n} question(s): a held-out split needs at least 2")
    return min(n - 1, max(1, round(n * fraction)))


def split(questions: list[dict], held_out: float | set[str]) -> tuple[list[dict], list[dict]]:
    """(training, held-out) questions. held_out: a fraction (the questions whose id hashes lowest go) or the
    normalised texts of questions held out elsewhere (none of which may be trained on)."""
    held: list[dict] = []
    if isinstance(held_out, float):
        ranked = sorted(questions, key=lambda q: hashlib.sha256(q["id"].encode()).hexdigest())
        ids = {q["id"] for q in ranked[: held_out_count(len(questions), held_out)]}
        held = [q for q in questions if q["id"] in ids]
    texts = {normalize(q["question"]) for q in held} if held else held_out
    ids = {q["id"] for q in held}
    return [q for q in questions if q["id"] not in ids and normalize(q["question"]) not in texts], held


def benchmark_texts(path: Path) -> set[str]:
    """Normalised question texts of every row of a benchmark file (skipped rows too: they are still held out)."""
    from .benchmarks import parse_row, rows

    return {normalize(parse_row(row, path, line).qa["question"]) for line, row in rows(path)}


def train_loss(log: str) -> float | None:
    """The Trainer's final train_loss from its log, None when it printed none."""
    found = re.findall(r"'train_loss': '?([-+0-9.eE]+|nan)'?", log)
    return float(found[-1]) if found else None


def check_served(api_base: str, name: str) -> None:
    """Stop, naming what to serve, unless the OpenAI-compatible server at api_base lists model `name`."""
    try:
        with urllib.request.urlopen(api_base.rstrip("/") + "/models", timeout=10) as response:
            served = [m["id"] for m in json.load(response)["data"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        served = [f"nothing ({e})"]
    if name not in served:
        raise WdtkError(
            f"{api_base} serves {', '.join(served) or 'nothing'}, not {name}: start a server on that checkpoint "
            f"(e.g. `vllm serve {name}`) and run this command again; finished steps are kept"
        )


def is_fraction(text: str) -> bool:
    """Whether `text` is a number strictly between 0 and 1 (a held-out fraction rather than a file)."""
    try:
        return 0 < float(text) < 1
    except ValueError:
        return False


class Evolution:
    """One self-evolution run in RUN/evolve: its state on disk and the steps of a round (each returns its figures)."""

    def __init__(
        self, run_dir: Path, cfg: EvolveConfig, endpoints: dict, llm_opts: dict, sft: tuple[str, str], echo=print
    ):
        self.root, self.cfg, self.endpoints, self.llm_opts = run_dir / "evolve", cfg, endpoints, llm_opts
        self.echo = echo  # where progress lines go (the command passes click.echo)
        self.launcher, self.sft_args = sft
        self.path = self.root / "state.json"
        options = json.loads(json.dumps(asdict(cfg)))
        self.state = {"wdtk_version": __version__, "options": options, "rounds": []}
        if self.path.exists():
            self.state = json.loads(self.path.read_text())
            if changed := [k for k in options if self.state["options"].get(k) != options[k]]:
                was = "; ".join(f"{k} was {self.state['options'].get(k)!r}, now {options[k]!r}" for k in changed)
                raise WdtkError(
                    f"{self.path} belongs to a run with other options ({was}): use the same ones (only --rounds "
                    "may grow), another --dir, or --restart"
                )

    def save(self) -> None:
        for rnd in self.state["rounds"]:
            rnd["figures"] = figures(rnd)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(".state.json.tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        os.replace(tmp, self.path)  # a crash leaves the old state or the new one, never half of one
        (self.root / "rounds.md").write_text(markdown(self.state))

    def run(self, rounds: int) -> None:
        """Run (or resume) rounds 0..rounds-1, saving the state after every step."""
        if "split" not in self.state:
            self.state["split"] = self.make_split()
            self.save()
        for r in range(rounds):
            if r == len(self.state["rounds"]):
                self.state["rounds"].append({"round": r, "policy": self.policy(r), "steps": {}})
                self.save()
            rnd = self.state["rounds"][r]
            for step in STEPS:
                if step not in rnd["steps"]:
                    started = time.monotonic()
                    out = getattr(self, step)(rnd, self.root / f"round-{r}")
                    rnd["steps"][step] = out | {"seconds": round(time.monotonic() - started, 1)}
                    self.save()

    def make_split(self) -> dict:
        from ..schemas import write_records
        from ..synth.sample import questions

        held = self.cfg.held_out
        fraction = float(held) if is_fraction(held) else None
        train, out = split(list(questions(map(Path, self.cfg.questions))), fraction or benchmark_texts(Path(held)))
        files = {"train": self.root / "split" / "train.jsonl", "held_out": self.root / "split" / "held_out.jsonl"}
        write_records(train, files["train"], kind="qa")
        if fraction:
            write_records(out, files["held_out"], kind="qa")
        bench = files["held_out"] if fraction else Path(held)
        return {"train": str(files["train"]), "held_out": str(bench), "train_questions": len(train)}

    def policy(self, r: int) -> str:
        """The model string round r samples with: the starting policy, then the last round's model."""
        if r == 0:
            return self.cfg.model
        return SERVE[self.cfg.serve] + self.state["rounds"][r - 1]["steps"]["train"]["model"]

    def backends(self, model: str, r: int):
        api_base = self.endpoints["api_base"] if r == 0 else None
        if r > 0 and self.cfg.serve == "endpoint":
            api_base = self.endpoints["serve_api_base"]
            check_served(api_base, model.removeprefix("openai:"))
        backends, opts = stage_backends(self.root, model, api_base, self.cfg.search, **self.llm_opts)
        if model.startswith("vllm:") and not opts.scheduler:
            opts = replace(opts, workers=1)  # one engine per GPU, in a worker process that exits after the step
        return backends, opts

    def release(self, backends) -> None:
        """Drop an in-process model once its step is over, so rounds do not pile models up in memory."""
        from ..synth.parallel import release

        release(backends)

    def judge(self):
        from ..filters.judge import Judge, JudgeConfig, judge_client

        client = judge_client(self.cfg.judge, self.endpoints["judge_api_base"], self.root / "llm_cache.sqlite")
        return Judge(client, JudgeConfig(f1_threshold=self.cfg.f1_threshold))

    def sample(self, rnd: dict, out: Path) -> dict:
        from ..synth.sample import SampleConfig
        from ..synth.sample import run as sample

        backends, opts = self.backends(rnd["policy"], rnd["round"])
        cfg, train = SampleConfig(self.cfg.rollouts, self.cfg.agent), [Path(self.state["split"]["train"])]
        name = f"round {rnd['round']} sample"
        summary = run_with_progress(
            name, out / "sample", False, lambda p: sample(train, out / "sample", cfg, backends, opts, None, p)
        )
        self.release(backends)
        return {
            "rollouts": summary["kept"],
            "questions": summary.get("questions", summary["items"]),
            "terminations": summary["terminations"],
        }

    def funnel(self, rnd: dict, out: Path) -> dict:
        from ..filters.export import describe_export
        from ..filters.export import run as export
        from ..filters.funnel import FunnelConfig, describe_funnel
        from ..filters.funnel import run as funnel

        qa = [Path(self.state["split"]["train"])]
        s = funnel([out / "sample" / "records"], out / "funnel", FunnelConfig(), self.judge(), qa_sources=qa)
        self.echo(describe_funnel(s, out / "funnel"))
        counts = export(out / "funnel", out / "export")
        self.echo(describe_export(counts, out / "export"))
        return {
            "trajectories": s["trajectories"],
            "kept": s["kept"],
            "yield": s["kept"] / s["trajectories"] if s["trajectories"] else 0.0,
            "questions": s["questions"],
            "questions_solved": s["questions_kept"],
            "sft_rows": counts["sft"],
        }

    def sft_set(self, rnd: dict, out: Path) -> dict:
        from ..schemas import mark_complete, read_records

        held, r = benchmark_texts(Path(self.state["split"]["held_out"])), rnd["round"]
        dst, rounds, rows = out / "sft_set", list(range(r + 1)) if self.cfg.accumulate else [r], 0
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir(parents=True)
        for k in rounds:
            for shard in sorted((self.root / f"round-{k}" / "export" / "sft").glob("*.parquet")):
                for row in read_records(shard):
                    question = next(m["content"] for m in row["messages"] if m["role"] == "user")
                    if normalize(question) in held:  # cannot happen by construction: a bug must not leak silently
                        raise RuntimeError(f"{shard}: held-out question in the training data: {question!r}")
                    rows += 1
                shutil.copyfile(shard, dst / f"r{k}-{shard.name}")
        mark_complete(dst, rows=rows)
        return {"rows": rows, "new_rows": rnd["steps"]["funnel"]["sft_rows"], "rounds": rounds}

    def train(self, rnd: dict, out: Path) -> dict:
        r = rnd["round"]
        last = self.state["rounds"][r - 1]["steps"]["train"]["model"] if r else None
        if not rnd["steps"]["sft_set"]["new_rows"]:
            if last is None:
                raise WdtkError(
                    "round 0 kept no trajectory: nothing to train on. Use a stronger --model, more --rollouts or "
                    f"a looser --judge (see {out / 'funnel' / 'summary.json'}), then --restart"
                )
            return {"model": last, "trained": False, "why": "no new kept trajectories: the last model carries on"}
        init = last if self.cfg.init == "previous" and last else self.cfg.base_model
        model_dir, log = (out / "model").resolve(), out / "train.log"
        shutil.rmtree(model_dir, ignore_errors=True)  # what an interrupted training left behind
        cmd = [*(shlex.split(self.launcher) or [sys.executable]), "-m", "wdtk.training.sft"]
        cmd += ["--model_name_or_path", init, "--dataset_name", str((out / "sft_set").resolve())]
        cmd += ["--output_dir", str(model_dir), "--report_to", "none", "--save_strategy", "no"]
        cmd += shlex.split(self.sft_args)  # last: the user's values win
        self.echo(f"round {r} train: {shlex.join(cmd)}\n  log -> {log}")
        with log.open("w") as f:
            code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent).returncode
        text = log.read_text(errors="replace")
        if code:
            tail = [line for line in text.splitlines() if line.strip()][-1:] or ["no output"]
            raise WdtkError(f"round {r} training failed (exit {code}): {tail[0][-300:]} (log: {log})")
        metrics = model_dir / "train_results.json"  # sft.py saves its metrics; the log is the fallback
        loss = json.loads(metrics.read_text()).get("train_loss") if metrics.exists() else train_loss(text)
        return {"model": str(model_dir), "trained": True, "init": init, "train_loss": loss, "command": cmd}

    def eval(self, rnd: dict, out: Path) -> dict:
        from . import evaluate

        r, bench = rnd["round"], Path(self.state["split"]["held_out"])
        model = SERVE[self.cfg.serve] + rnd["steps"]["train"]["model"]
        backends, opts = self.backends(model, r + 1)
        cfg = evaluate.EvalConfig(k=self.cfg.eval_k, agent=self.cfg.agent)
        run = lambda p: evaluate.run(bench, out / "eval", cfg, backends, self.judge(), opts, p)  # noqa: E731
        overall = run_with_progress(f"round {r} eval", out / "eval", False, run, report=lambda *_: None)["overall"]
        self.release(backends)
        keys = ("pass@1", "pass@k", "cons@k", "invalid_action_rate", "questions", "rollouts")
        return {"model": model, "k": cfg.k, **{k: overall[k] for k in keys}}


def figures(rnd: dict) -> dict:
    """A round's headline figures from its finished steps."""
    s, f = rnd["steps"], {"policy": rnd["policy"]}
    if "funnel" in s:
        f |= {k: s["funnel"][k] for k in ("trajectories", "kept", "yield", "questions", "questions_solved")}
    if "sft_set" in s:
        f |= {"sft_rows_new": s["sft_set"]["new_rows"], "sft_rows": s["sft_set"]["rows"]}
    if "train" in s:
        f |= {k: s["train"].get(k) for k in ("model", "trained", "train_loss")}
    if "eval" in s:
        f["pass@1_held_out"] = s["eval"]["pass@1"]
    return f | {"steps_done": [k for k in STEPS if k in s], "seconds": round(sum(v["seconds"] for v in s.values()), 1)}


def markdown(state: dict) -> str:
    """The per-round table of RUN/evolve/rounds.md."""
    head = ["Round", "Policy", "Rollouts", "Kept", "Yield", "Solved", "SFT rows new/total", "Train loss", "Pass@1"]
    lines = ["| " + " | ".join(head + ["Minutes"]) + " |", "|" + "---|" * (len(head) + 1)]
    for rnd in state["rounds"]:
        f, na = rnd["figures"], "…"
        loss = "not trained" if f.get("trained") is False else f.get("train_loss")
        cells = [
            str(rnd["round"]),
            re.sub(r"^(\w+:).*/(round-\d+)/model$", r"\1\2", f["policy"]),  # the checkpoint by its round
            str(f.get("trajectories", na)),
            str(f.get("kept", na)),
            f"{100 * f['yield']:.1f}%" if "yield" in f else na,
            f"{f['questions_solved']}/{f['questions']}" if "questions" in f else na,
            f"{f['sft_rows_new']}/{f['sft_rows']}" if "sft_rows" in f else na,
            f"{loss:.3f}" if isinstance(loss, float) else loss or na,
            f"{100 * f['pass@1_held_out']:.1f}%" if "pass@1_held_out" in f else na,
            f"{f['seconds'] / 60:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    split = state.get("split", {})
    lines += ["", f"Held-out: {split.get('held_out')}; training questions: {split.get('train_questions')}."]
    lines.append("Yield: kept / sampled rollouts; Solved: questions with a kept rollout; Pass@1 on the held-out ones.")
    return "\n".join(lines) + "\n"
