"""Peak memory of `python -m wdtk.training.sft` on the CPU with its defaults, against an 8 GB budget.

    .venv/bin/python bench/sft_memory.py --tokens 2000 --steps 2

Trains the embedded SmolLM2-135M-Instruct for a few steps on conversations of about `--tokens` tokens (the
trajectories the review measured were 1,471 to 1,886), in a subprocess, and prints its peak resident memory and
the ratio to 8 GB. `--baseline` runs TRL's own CPU defaults too (a batch of 8, no accumulation) for comparison; it
needs more memory than the budget (the review measured 11.7 GB). Each step of the defaults is 8 conversations, so
`--accumulation 1` (the default here) measures the same peak in an eighth of the time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_GB = 8.0
FILLER = "The archive lists the founding charter, the names of the first members and the early accounts. "


def conversations(n: int, tokens: int) -> list[dict]:
    """`n` trajectories in TRL's conversational form whose tool response makes them about `tokens` tokens long."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_lm import sample_trajectories

    base = sample_trajectories()[0]
    pad = FILLER * max(1, (tokens - 700) // 17)  # ~17 tokens a sentence; ~700 for the instructions and tools
    rows = []
    for i in range(n):
        messages = [dict(m) for m in base["messages"]]
        tool = next(m for m in messages if m["role"] == "tool")
        tool["content"] = f"{tool['content']}\n{pad}"
        rows.append({**base, "id": f"{base['id'][:12]}{i:04d}", "messages": messages})
    return rows


def run(data: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """(peak resident GB, seconds) of one SFT subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    args = ["--model_name_or_path", "embedded", "--chat_template_family", "chatml", "--dataset_name", str(data),
            "--output_dir", str(out), "--report_to", "none", "--save_strategy", "no", *extra]  # fmt: skip
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "wdtk.training.sft", *args], check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise RuntimeError("the peak of this run is hidden by an earlier, larger child: run it alone")
    return peak / 2**20, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--accumulation", type=int, default=1, help="gradient accumulation steps (default CLI: 8)")
    parser.add_argument("--baseline", action="store_true", help="also run TRL's defaults (batch 8)")
    parser.add_argument("extra", nargs="*", help="more training/sft.py arguments, after --")
    args = parser.parse_args()
    from wdtk.filters.export import run as export
    from wdtk.schemas import write_records

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_records(conversations(16, args.tokens), root / "funnel" / "records", "trajectory")
        write_records([], root / "funnel" / "rl_pool")
        export(root / "funnel", root / "export")
        steps = ["--max_steps", str(args.steps)]
        ours = ["--gradient_accumulation_steps", str(args.accumulation), *steps, *args.extra]
        peak, seconds = run(root / "export" / "sft", root / "ours", ours)
        result = {"tokens": args.tokens, "defaults_peak_gb": round(peak, 2),
                  "budget_ratio": round(peak / BUDGET_GB, 2), "seconds": round(seconds)}  # fmt: skip
        if args.baseline:
            trl = ["--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1", *steps]
            base, _ = run(root / "export" / "sft", root / "trl", trl)
            result |= {"trl_batch_8_peak_gb": round(base, 2), "ratio_to_trl": round(peak / base, 2)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
