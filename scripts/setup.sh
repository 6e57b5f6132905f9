#!/usr/bin/env bash
# Creates .venv and installs exactly the locked dependencies (only when the lock changed).
# --spark: also the optional Spark engine (requirements-spark.lock: pyspark, py4j) and, when no
# Java runtime is found, Debian's openjdk-17-jre-headless (as root, with apt-get); then it compiles
# the engine's JVM functions (satudata_pipeline/link/jvm, DuckDB's Jaro-Winkler) into
# .venv/share/satudata/satudata-udf.jar with javac / jar (Debian's openjdk-17-jdk-headless when
# javac is missing), again only when their source or the Spark lock changed. docs/spark.md.
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
# The JVM functions (DuckDB's jaro_winkler_similarity for Spark): compiled against pyspark's jars.
udf_src=satudata_pipeline/link/jvm/DuckDBJaroWinkler.java
udf_jar=.venv/share/satudata/satudata-udf.jar
udf_stamp=.venv/share/satudata/satudata-udf.sha256
# line 1: the source's hash (spark_engine.py compares it to find a stale jar); line 2: the Spark lock's
want=$("$PY" -c 'import hashlib,sys; [print(hashlib.sha256(open(f, "rb").read()).hexdigest()) for f in sys.argv[1:]]' "$udf_src" requirements-spark.lock)
if [ ! -f "$udf_jar" ] || [ ! -f "$udf_stamp" ] || [ "$(cat "$udf_stamp")" != "$want" ]; then
  javac=javac jar=jar
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/javac" ] && [ -x "$JAVA_HOME/bin/jar" ]; then
    javac=$JAVA_HOME/bin/javac jar=$JAVA_HOME/bin/jar
  elif ! command -v javac >/dev/null 2>&1 || ! command -v jar >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless >/dev/null
    else
      echo "no Java compiler found: install a JDK 17 or newer (Debian: apt-get install openjdk-17-jdk-headless)" >&2
      exit 1
    fi
  fi
  spark_jars=$(.venv/bin/python -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')
  build=$(mktemp -d)
  trap 'rm -rf "$build"' EXIT
  "$javac" --release 17 -encoding UTF-8 -cp "$spark_jars/*" -d "$build/classes" "$udf_src"
  "$jar" --create --file "$build/satudata-udf.jar" -C "$build/classes" .
  mkdir -p "$(dirname "$udf_jar")"
  mv -f "$build/satudata-udf.jar" "$udf_jar"
  echo "$want" > "$udf_stamp"
fi
