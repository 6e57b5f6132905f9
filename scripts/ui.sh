#!/usr/bin/env bash
# Set up (first time) and start the Dagster UI on http://127.0.0.1:3000 (loopback only).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/satudata ui "$@"
