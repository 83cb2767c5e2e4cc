"""The README's offline whole path runs as written: its bash block, extracted from README.md and run in a fresh
directory (with `.venv` and `tests/` where a clone has them), ends with every stage's output where the next command
looks for it.

What the test changes, and why: the two ports (free ones, not 8000 and 8001); `scripts/setup.sh` is not run (this
environment is the one it builds: running it would install packages); `--model_name_or_path embedded` becomes a tiny
checkpoint (SmolLM2 takes about ten minutes per SFT step on two cores). Until `wdtk site build` writes
DIR/eval.jsonl itself, the test writes it from the site's _truth/ when it is missing.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_lm import save_tiny

ROOT = Path(__file__).resolve().parents[1]
EVAL_FROM_TRUTH = (
    'test -f runs/path/site/eval.jsonl || python -c "import json; from pathlib import Path; '
    "from wdtk.crawler.sitegen.seeds import simple_seeds; site = Path('runs/path/site'); "
    "rows = [{'question': s['problem'], 'answer': s['answer']} for s in simple_seeds(site, 20)]; "
    "(site / 'eval.jsonl').write_text(''.join(json.dumps(r) + chr(10) for r in rows))\""
)


def whole_path_block(readme: str) -> list[str]:
    """The commands of the first bash block under '## The whole path', continuation lines joined."""
    section = readme.split("## The whole path", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_offline_whole_path_runs_as_written(tmp_path):
    commands = whole_path_block((ROOT / "README.md").read_text(encoding="utf-8"))
    assert commands[0].startswith("scripts/setup.sh") and commands[1].startswith("source .venv/bin/activate")
    tiny = save_tiny(tmp_path / "tiny", "chatml")
    site_port, model_port = free_port(), free_port()
    script = []
    for line in commands[1:]:
        line = line.replace(":8000", f":{site_port}").replace("--port 8000", f"--port {site_port}")
        line = line.replace(":8001", f":{model_port}").replace("--port 8001", f"--port {model_port}")
        script.append(line.replace("--model_name_or_path embedded", f"--model_name_or_path {tiny}"))
        if line.startswith("wdtk site build"):
            script.append(EVAL_FROM_TRUTH)
    work = tmp_path / "clone"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix))
    (work / "tests").symlink_to(ROOT / "tests")
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "WDTK_MODEL": ""}
    env.pop("WDTK_API_BASE", None)
    bash = ["bash", "-euo", "pipefail", "-c", "\n".join(script)]
    proc = subprocess.Popen(bash, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=900)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the two servers the block left in the background
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, output[-4000:]
    run = work / "runs" / "path"
    for made in ("crawl/pages", "index/wdtk_index.json", "filter/records", "sample/records", "funnel/records",
                 "export/sft", "report.html", "hub/README.md", "sft-model/config.json", "rl-model/config.json",
                 "eval/results.json"):  # fmt: skip
        assert (run / made).exists(), (made, output[-3000:])
    assert "--model not given: using fake, the one model" in output  # WDTK_API_BASE alone picked the model
    assert "Traceback" not in output
