#!/usr/bin/env bash
# Creates .venv and installs exactly the locked dependencies (only when the lock changed).
# --spark: also the optional Spark engine (requirements-spark.lock: pyspark, py4j) and, when no
# Java runtime is found, Debian's openjdk-17-jre-headless (as root, with apt-get). docs/spark.md.
set -euo pipefail
cd "$(dirname "$0")/.."
spark=0
for arg in "$@"; do
  case "$arg" in
    --spark) spark=1 ;;
    *) echo "usage: $0 [--spark]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "satudata needs Python 3.11 or newer")'
stamp=.venv/.lock-installed
want=$(cat requirements.lock pyproject.toml | "$PY" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi
[ "$spark" = 1 ] || exit 0
spark_stamp=.venv/.spark-installed
want=$("$PY" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' requirements-spark.lock)
if [ ! -f "$spark_stamp" ] || [ "$(cat "$spark_stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-spark.lock
  echo "$want" > "$spark_stamp"
fi
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  else
    echo "no Java runtime found: install Java 17 or newer (Debian: apt-get install openjdk-17-jre-headless)" >&2
    exit 1
  fi
fi
