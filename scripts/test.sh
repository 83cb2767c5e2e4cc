#!/usr/bin/env bash
# Quick start, part 2: set up .venv with the test extras and run the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k crawl -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
exec .venv/bin/python -m pytest "$@"
