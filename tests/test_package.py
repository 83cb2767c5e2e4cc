"""Packaging: everything installs under the one name `wdtk`, with the schemas as package data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_holds_only_the_wdtk_package(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = zipfile.ZipFile(next(tmp_path.glob("wdtk-*.whl"))).namelist()
    assert {n.split("/")[0] for n in names} == {"wdtk", "wdtk-0.1.0.dist-info"}
    assert "wdtk/recipes/demo.yaml" in names  # `wdtk demo` runs it
    for kind in ("page", "qa", "trajectory", "judgement", "recipe"):
        assert f"wdtk/schemas/{kind}.schema.json" in names
    assert "wdtk/cli.py" in names and "wdtk/crawler/spiders/sublinks.py" in names
    assert not any(n.startswith(("wdtk/tests/", "wdtk/bench/", "wdtk/scripts/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "wdtk = wdtk.cli:main" in zipfile.ZipFile(next(tmp_path.glob("*.whl"))).read(entry_points).decode()


def test_generic_top_level_names_are_not_importable(tmp_path):
    code = "import importlib.util as u; print([m for m in ('cli', 'filters', 'crawler', 'schemas') if u.find_spec(m)])"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
