"""RUN/commands.jsonl: every option a command ran with, secrets never."""

from __future__ import annotations

import json

from click.testing import CliRunner

from wdtk.cli import main
from wdtk.schemas.runlog import REDACTED, redact


def test_redact_hides_secret_options_and_key_shaped_values():
    argv = ["wdtk", "push", "--hf-token", "hf_abcdefghijklmn", "--api-key=sk-abcdef123456", "--model", "gpt-4o",
            "Authorization: Bearer abc.def", "--judge", "sk-proj-1234567890"]  # fmt: skip
    out = redact(argv)
    assert out[:3] == ["wdtk", "push", "--hf-token"] and out[3] == REDACTED
    assert out[4] == f"--api-key={REDACTED}" and out[5:7] == ["--model", "gpt-4o"]
    assert "abc.def" not in out[7] and out[9] == REDACTED
    assert not any(s in " ".join(out) for s in ("hf_abc", "sk-abc", "sk-proj"))


def test_stages_log_their_effective_options(tmp_path):
    qa = tmp_path / "qa.jsonl"
    from wdtk.synth.e2hqa import seed_record  # a qa record: `wdtk filter` refuses input with none

    qa.write_text(json.dumps(seed_record({"problem": "Where is Oslo?", "answer": "Norway"})) + "\n")
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["filter", str(qa), "-o", str(run / "filter"), "--threshold", "0.7"])
    assert result.exit_code == 0, result.output
    (line,) = (json.loads(x) for x in (run / "commands.jsonl").read_text().splitlines())
    assert line["argv"][:3] == ["wdtk", "filter", str(qa)]
    assert "--threshold=0.7" in line["argv"] and "--num-perm=128" in line["argv"]  # defaults recorded too
    assert line["wdtk_version"] and line["started"].endswith("+00:00")
