#!/usr/bin/env bash
# Set up (first time) and run the test suite: unit tests, a full materialization of the sample with
# every asset check (ERROR checks fail it), and the webserver test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
