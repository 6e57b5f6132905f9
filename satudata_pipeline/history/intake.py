"""Change detection at intake: each clean row of a source against the last published delivery.

Providers re-deliver full extracts every month and most rows are the same. Every clean row gets a
64-bit hash of the canonical fields that decide who a person is and what they get (`HASH_FIELDS`:
identity, address, life events, welfare attributes, roster fields; not the row's position in the
file, not the raw spelling a cleaner normalises away). The publication keeps those hashes
(history.source_row_hashes: source, record_id, row_hash; the last publication only, so it stays
compact), and the next delivery's clean stage compares with them:

    new        record_id not in the last published delivery of this source
    changed    same record_id, different hash
    unchanged  same record_id, same hash
    gone       in the last published delivery, not among this delivery's clean rows

`main.source_changes` holds the record ids that are new, changed or gone (unchanged ones are only
counted, in `main.source_change_counts`), written when the clean asset runs, i.e. before anything is
linked. `changed_records()` is what incremental linkage asks for.

The hash is DuckDB's `hash()` (fast: about 1 s per million rows on one core). Should a DuckDB upgrade
change its values, every row shows as changed once: more rescoring, never a change missed.
"""

from __future__ import annotations

import duckdb

from satudata_pipeline.contract import schema
from satudata_pipeline.history.versions import delivered_sources_sql
from satudata_pipeline.warehouse import all_rows, quote, scalar, table_exists, transaction

# canonical fields (clean schema) whose change makes a row "changed": contract/schema.py derives
# them from the clean schema, so every clean table has all of them
HASH_FIELDS = schema.HASH_FIELDS
STAGED_HASHES = "staging.source_row_hashes"  # this run's hashes, published with the determination
PUBLISHED_HASHES = "history.source_row_hashes"  # the last publication's hashes
SOURCE_CHANGES = "main.source_changes"
SOURCE_CHANGE_COUNTS = "main.source_change_counts"
CHANGES = ("new", "changed", "unchanged", "gone")


def row_hash_sql(table: str) -> str:
    """SELECT source, record_id, row_hash FROM a clean table."""
    return (
        f"SELECT CAST(source AS VARCHAR) AS source, CAST(record_id AS VARCHAR) AS record_id, "
        f"hash({', '.join(HASH_FIELDS)}) AS row_hash FROM {table}"
    )


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS staging")
    conn.execute("CREATE SCHEMA IF NOT EXISTS history")
    for t in (STAGED_HASHES, PUBLISHED_HASHES):
        extra = "determination_id BIGINT, " if t == PUBLISHED_HASHES else ""
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t} ({extra}source VARCHAR, record_id VARCHAR, row_hash UBIGINT)"
        )
    conn.execute(f"""CREATE TABLE IF NOT EXISTS {SOURCE_CHANGES} (
        source VARCHAR, record_id VARCHAR, change VARCHAR, compared_with_determination BIGINT)""")
    conn.execute(f"""CREATE TABLE IF NOT EXISTS {SOURCE_CHANGE_COUNTS} (
        source VARCHAR, compared_with_determination BIGINT, rows BIGINT, new BIGINT, changed BIGINT,
        unchanged BIGINT, gone BIGINT)""")


def detect_source_changes(conn: duckdb.DuckDBPyConnection, source: str) -> dict:
    """Hash the clean rows of `source`, stage the hashes and compare them with the last publication.

    Replaces this source's rows of main.source_changes / main.source_change_counts and returns the
    counts: {"new", "changed", "unchanged", "gone", "rows", "compared_with_determination"}. With no
    earlier publication every row is new and compared_with_determination is None."""
    ensure_tables(conn)
    clean = f"clean.{quote(source)}"
    with transaction(conn):
        conn.execute(f"DELETE FROM {STAGED_HASHES} WHERE source = ?", [source])
        conn.execute(f"INSERT INTO {STAGED_HASHES} {row_hash_sql(clean)} ORDER BY record_id")
        previous = scalar(conn, f"SELECT max(determination_id) FROM {PUBLISHED_HASHES}")
        conn.execute(f"DELETE FROM {SOURCE_CHANGES} WHERE source = ?", [source])
        conn.execute(f"DELETE FROM {SOURCE_CHANGE_COUNTS} WHERE source = ?", [source])
        compare = f"""
            WITH cur AS (SELECT record_id, row_hash FROM {STAGED_HASHES} WHERE source = $source),
                 prev AS (SELECT record_id, row_hash FROM {PUBLISHED_HASHES} WHERE source = $source)
            SELECT coalesce(cur.record_id, prev.record_id) AS record_id,
                   CASE WHEN prev.record_id IS NULL THEN 'new'
                        WHEN cur.record_id IS NULL THEN 'gone'
                        WHEN cur.row_hash = prev.row_hash THEN 'unchanged'
                        ELSE 'changed' END AS change
            FROM cur FULL OUTER JOIN prev ON cur.record_id = prev.record_id"""
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE _source_changes AS " + compare, {"source": source}
        )
        conn.execute(
            f"INSERT INTO {SOURCE_CHANGES} SELECT $source, record_id, change, $prev FROM _source_changes "
            "WHERE change <> 'unchanged' ORDER BY change, record_id",
            {"source": source, "prev": previous},
        )
        counts = dict(all_rows(conn, "SELECT change, count(*) FROM _source_changes GROUP BY 1"))
        out = {c: int(counts.get(c, 0)) for c in CHANGES}
        out["rows"] = out["new"] + out["changed"] + out["unchanged"]
        out["compared_with_determination"] = previous
        conn.execute(
            f"INSERT INTO {SOURCE_CHANGE_COUNTS} VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                source,
                previous,
                out["rows"],
                out["new"],
                out["changed"],
                out["unchanged"],
                out["gone"],
            ],
        )
        conn.execute("DROP TABLE _source_changes")
    return out


def _short(n: int) -> str:
    """11.2M, 180k, 35 (as an operator reads them)."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    return str(n)


def describe(source: str, counts: dict) -> str:
    """`dukcapil_penduduk: 11.2M unchanged, 180k changed, 40k new, 35k gone` (counts only)."""
    if counts.get("compared_with_determination") is None:
        return f"{source}: {_short(counts['new'])} new (no published delivery to compare with)"
    return (
        f"{source}: {_short(counts['unchanged'])} unchanged, {_short(counts['changed'])} changed, "
        f"{_short(counts['new'])} new, {_short(counts['gone'])} gone"
    )


def source_change_counts(conn: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    """{source: {new, changed, unchanged, gone, rows, compared_with_determination}} of the latest intake."""
    if not table_exists(conn, SOURCE_CHANGE_COUNTS):
        return {}
    rows = conn.execute(
        f"SELECT source, compared_with_determination, rows, new, changed, unchanged, gone "
        f"FROM {SOURCE_CHANGE_COUNTS} ORDER BY source"
    ).fetchall()
    return {
        r[0]: {
            "compared_with_determination": r[1],
            "rows": r[2],
            "new": r[3],
            "changed": r[4],
            "unchanged": r[5],
            "gone": r[6],
        }
        for r in rows
    }


def changed_records(conn: duckdb.DuckDBPyConnection, source: str) -> set[str]:
    """record_ids of `source` that are new or changed since the last published delivery (what incremental
    linkage must score again). Requires the source's clean asset to have run in this delivery."""
    if not table_exists(conn, SOURCE_CHANGES):
        raise LookupError(f"{SOURCE_CHANGES} does not exist: materialize clean_{source} first")
    return {
        r[0]
        for r in conn.execute(
            f"SELECT record_id FROM {SOURCE_CHANGES} WHERE source = ? AND change IN ('new', 'changed')",
            [source],
        ).fetchall()
    }


def changed_unique_ids_sql(sources: list[str] | None = None) -> str:
    """SELECT unique_id, source, record_id, change of every new or changed row (of `sources`, default
    all), with link.person_records' `unique_id = source || ':' || record_id`: to join in SQL."""
    where = "change IN ('new', 'changed')"
    if sources:
        where += (
            " AND source IN (" + ", ".join("'" + s.replace("'", "''") + "'" for s in sources) + ")"
        )
    return (
        f"SELECT source || ':' || record_id AS unique_id, source, record_id, change "
        f"FROM {SOURCE_CHANGES} WHERE {where}"
    )


def gone_records(conn: duckdb.DuckDBPyConnection, source: str) -> set[str]:
    """record_ids of `source` in the last published delivery and not in this one."""
    if not table_exists(conn, SOURCE_CHANGES):
        raise LookupError(f"{SOURCE_CHANGES} does not exist: materialize clean_{source} first")
    return {
        r[0]
        for r in conn.execute(
            f"SELECT record_id FROM {SOURCE_CHANGES} WHERE source = ? AND change = 'gone'", [source]
        ).fetchall()
    }


def publish_hashes(conn: duckdb.DuckDBPyConnection, determination_id: int) -> int:
    """Inside the publication transaction: the run's staged hashes become the published ones (only the
    sources of this delivery). Returns the rows kept."""
    ensure_tables(conn)
    where = (
        f"WHERE source IN ({delivered_sources_sql()})"
        if table_exists(conn, "staging.delivery_sources")
        else ""
    )
    conn.execute(f"DELETE FROM {PUBLISHED_HASHES}")
    conn.execute(
        f"INSERT INTO {PUBLISHED_HASHES} SELECT ?, source, record_id, row_hash FROM {STAGED_HASHES} "
        f"{where} ORDER BY source, record_id",
        [determination_id],
    )
    return int(scalar(conn, f"SELECT count(*) FROM {PUBLISHED_HASHES}"))
