#!/usr/bin/env bash
# Set up (first time) and run the full determination on the data directory (default: data/).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/satudata run "$@"
