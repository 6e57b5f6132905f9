#!/usr/bin/env bash
# Set up (first time), check lint and formatting (ruff) and types (mypy), then run the test suite:
# unit tests, a full materialization of the sample with every asset check (ERROR checks fail it),
# and the webserver test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# Lint, format and types first: seconds, and they fail before a ten-minute suite does.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
