#!/usr/bin/env bash
# Create .venv (Python 3.11) and install wdtk into it, editable, with the given extras (e.g. "dev").
# Re-running is instant: it reinstalls only when pyproject.toml or the extras change.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$py" --version)" >&2
  "$py" -m venv .venv
fi
stamp=".venv/.wdtk-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras:-core}"
if [ ! -f "$stamp" ]; then
  echo "installing wdtk${extras:+[$extras]} into .venv (once; later runs skip this)" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
  rm -f .venv/.wdtk-*
  touch "$stamp"
fi
