"""Cost of month-over-month bookkeeping at scale (docs/monthly.md, "Cost"): change detection at intake and
the history write of a publication, on synthetic tables in a fresh DuckDB file (no pipeline run).

    .venv/bin/python benchmarks/history_intake.py --rows 1000000 --threads 2

A source of N clean rows is hashed and compared (first month: all new), its hashes published, then the
next month (2% changed, 1% gone, 1% new) compared again; then a review of N/10 roster rows is
recorded twice (1% newly removed the second time). Prints seconds per step.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import duckdb

from satudata_pipeline.history import intake, store

TYPES = {
    "tanggal_lahir": "DATE",
    "tanggal_pemutakhiran": "DATE",
    "tanggal_meninggal": "DATE",
    "tanggal_pindah": "DATE",
    "tanggal_mulai": "DATE",
    "rt": "INTEGER",
    "rw": "INTEGER",
    "desil": "INTEGER",
    "disabilitas": "BOOLEAN",
    "punya_mobil": "BOOLEAN",
    "njop_di_atas_1m": "BOOLEAN",
    "pindah_keluar_dki": "BOOLEAN",
    "nominal_bulanan": "BIGINT",
}


def _value(column: str) -> str:
    kind = TYPES.get(column, "VARCHAR")
    if kind == "DATE":
        return "DATE '1950-01-01' + CAST(i % 25000 AS INTEGER)"
    if kind in ("INTEGER", "BIGINT"):
        return f"CAST(i % 17 AS {kind})"
    if kind == "BOOLEAN":
        return "i % 3 = 0"
    return f"'{column[:4].upper()} ' || CAST(i * 7 % 100003 AS VARCHAR)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    n, timings = args.rows, {}
    with tempfile.TemporaryDirectory() as tmp:
        conn = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        conn.execute(f"SET threads = {args.threads}")
        conn.execute("CREATE SCHEMA clean")
        cols = ", ".join(f"{_value(c)} AS {c}" for c in intake.HASH_FIELDS)
        conn.execute(
            f"CREATE TABLE clean.src AS SELECT 'src' AS source, 'R' || i AS record_id, i AS row_number, "
            f"{cols} FROM range({n}) r(i)"
        )

        def timed(label, fn):
            t = time.perf_counter()
            out = fn()
            timings[label] = round(time.perf_counter() - t, 2)
            return out

        timed("intake, first month (all new)", lambda: intake.detect_source_changes(conn, "src"))
        timed("publish row hashes", lambda: intake.publish_hashes(conn, 1))
        conn.execute("UPDATE clean.src SET nama = nama || ' X' WHERE row_number % 50 = 7")
        conn.execute("DELETE FROM clean.src WHERE row_number % 100 = 3")
        conn.execute(
            f"INSERT INTO clean.src SELECT source, 'N' || record_id, row_number + {n}, "
            "* EXCLUDE (source, record_id, row_number) FROM clean.src WHERE row_number % 100 = 5"
        )
        counts = timed("intake, next month", lambda: intake.detect_source_changes(conn, "src"))
        conn.execute(
            "DELETE FROM staging.source_row_hashes"
        )  # the history write below: review rows only
        r = n // 10
        conn.execute(f"""CREATE TABLE main.beneficiary_review AS SELECT 'P' || (i % 5) AS program, 'src' AS source,
            'R' || i AS record_id, 'P' || lpad(CAST(i AS VARCHAR), 9, '0') AS person_id,
            CASE WHEN i % 10 = 0 THEN 'remove' WHEN i % 7 = 0 THEN 'review' ELSE 'keep' END AS verdict,
            CAST([] AS VARCHAR[]) AS reasons, CAST(300000 AS BIGINT) AS nominal_bulanan,
            '3171********0001' AS nik_masked, DATE '2026-11-01' AS snapshot_date FROM range({r}) r(i)""")

        def record(run):
            conn.execute("BEGIN")
            info = store.record_determination(conn, run, dt.datetime.now())
            conn.execute("COMMIT")
            return info

        timed(f"history write, {r} roster rows, first", lambda: record("r1"))
        conn.execute(
            "UPDATE main.beneficiary_review SET verdict = 'remove' "
            "WHERE CAST(substr(record_id, 2) AS BIGINT) % 97 = 1 AND verdict <> 'remove'"
        )
        info = timed(f"history write, {r} roster rows, second", lambda: record("r2"))
    print(intake.describe("src", counts))
    print(f"changes recorded: {sum(sum(c.values()) for c in info['changes'].values())}")
    for label, seconds in timings.items():
        print(f"{label:45s} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
