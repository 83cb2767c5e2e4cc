#!/usr/bin/env bash
# Quick start, part 2: set up .venv with the test extras and run the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k crawl -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
# tests/test_report.py looks at the report in headless Chromium: install it where it is missing and we can.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium for the report test (apt-get, once)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ||
      echo "warning: apt-get could not install chromium; the report's browser test will be skipped" >&2
  else
    echo "warning: no chromium, and installing it needs root and apt-get; the report's browser test will be skipped" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
