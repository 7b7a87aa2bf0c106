#!/usr/bin/env bash
# Install buyerscore with its test extras into the active Python environment and run the test suite.
# This is the README's test command; .ci/run calls it inside a fresh virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[dev,deep]"
if [ -x scripts/test-setup.sh ]; then bash scripts/test-setup.sh; fi   # optional system deps (e.g. chromium)
python -m ruff check buyerscore tests   # lint gate (pinned ruff, rules in pyproject.toml)
set +e
python -m pytest -q -n "${PYTEST_WORKERS:-2}" --durations=15 "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi
exit "$rc"
