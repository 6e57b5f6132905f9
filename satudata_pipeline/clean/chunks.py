"""Clean one source's raw table into its clean table and quarantine, a chunk of rows at a time.

The raw table is read in `_row_number` ranges of `chunk_rows` (default CHUNK_ROWS), each range is
cleaned in pandas (`clean_frame`) and appended in row order, so Python holds one chunk, never the
population, and the tables are the same byte for byte whatever the chunk size (docs/scale.md).
The one judgement that needs every row, a record id repeated anywhere in the source, is made first
in DuckDB from the mapped record ids. Both tables are replaced in one transaction: a failure
leaves the previous ones.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from satudata_pipeline.clean.transform import clean_frame, mapped_record_id
from satudata_pipeline.contract.schema import clean_select_sql
from satudata_pipeline.contract.sources import SourceSpec
from satudata_pipeline.warehouse import all_rows, one_row, transaction

# ~0.5 GB of pandas per chunk for a wide civil-registry extract; small sources are one chunk
CHUNK_ROWS = 200_000

QUARANTINE_SELECT = (
    "CAST(source AS VARCHAR) AS source, CAST(record_id AS VARCHAR) AS record_id, "
    "CAST(row_number AS BIGINT) AS row_number, CAST(reason AS VARCHAR) AS reason, "
    "CAST(raw_values AS VARCHAR) AS raw_values"
)


def quarantine_table(source_name: str) -> str:
    return f'clean."{source_name}__quarantine"'


def _select_clean(flag_names: list[str]) -> str:
    """The clean schema's columns, and `quality_flags` from the frame's `_flag_*` columns."""
    if not flag_names:
        return clean_select_sql()
    items = ", ".join(f"CASE WHEN \"_flag_{f}\" THEN '{f}' END" for f in flag_names)
    return clean_select_sql(f"list_filter([{items}], lambda x: x IS NOT NULL)")


def _ranges(conn: duckdb.DuckDBPyConnection, raw: str, chunk_rows: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of `_row_number` covering the raw table (one empty range if it is)."""
    lo, hi = one_row(conn, f"SELECT min(_row_number), max(_row_number) FROM {raw}")
    if lo is None:
        return [(0, 1)]
    return [(start, start + chunk_rows) for start in range(lo, hi + 1, chunk_rows)]


def _chunk(conn: duckdb.DuckDBPyConnection, sql: str, start: int, stop: int) -> pd.DataFrame:
    return conn.execute(
        f"{sql} WHERE _row_number >= ? AND _row_number < ? ORDER BY _row_number", [start, stop]
    ).df()


def _repeated_ids(
    conn: duckdb.DuckDBPyConnection, source: SourceSpec, raw: str, ranges: list[tuple[int, int]]
) -> str | None:
    """A temp table of the row numbers whose mapped record id occurs more than once in the source
    (every copy: nobody can tell which is right); None when the source maps no record id."""
    if "record_id" not in source.columns:
        return None
    column = source.columns["record_id"].strip().replace('"', '""')
    conn.execute("CREATE OR REPLACE TEMP TABLE _clean_ids (row_number BIGINT, record_id VARCHAR)")
    for start, stop in ranges:
        part = _chunk(conn, f'SELECT _row_number, "{column}" FROM {raw}', start, stop)
        ids = pd.DataFrame(
            {
                "row_number": part["_row_number"].astype("int64"),
                "record_id": mapped_record_id(part, source).astype(object),
            }
        )
        conn.register("_ids_part", ids)
        conn.execute("INSERT INTO _clean_ids SELECT row_number, record_id FROM _ids_part")
        conn.unregister("_ids_part")
    conn.execute("""
        CREATE OR REPLACE TEMP TABLE _clean_repeated AS
        SELECT row_number FROM _clean_ids
        WHERE record_id IN (SELECT record_id FROM _clean_ids WHERE record_id IS NOT NULL
                            GROUP BY record_id HAVING count(*) > 1)""")
    conn.execute("DROP TABLE _clean_ids")
    return "_clean_repeated"


def clean_source(
    conn: duckdb.DuckDBPyConnection,
    source: SourceSpec,
    snapshot: dt.date,
    chunk_rows: int | None = None,
) -> None:
    """Replace `clean.<source>` and its quarantine with the cleaned raw rows, `chunk_rows` at a time
    (default CHUNK_ROWS)."""
    chunk_rows = chunk_rows or CHUNK_ROWS
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    raw = f'raw."{source.name}"'
    ranges = _ranges(conn, raw, chunk_rows)
    # one chunk: repeats are judged within it, as they always were
    repeated = _repeated_ids(conn, source, raw, ranges) if len(ranges) > 1 else None
    conn.execute("CREATE SCHEMA IF NOT EXISTS clean")
    clean_table = f'clean."{source.name}"'
    flag_names: list[str] | None = None
    try:
        with transaction(conn):
            for start, stop in ranges:
                frame = _chunk(conn, f"SELECT * FROM {raw}", start, stop)
                rows = None
                if repeated is not None:
                    rows = {
                        r[0]
                        for r in all_rows(
                            conn,
                            f"SELECT row_number FROM {repeated} "
                            "WHERE row_number >= ? AND row_number < ?",
                            [start, stop],
                        )
                    }
                clean, quarantine = clean_frame(frame, source, snapshot, rows)
                del frame
                names = [c.removeprefix("_flag_") for c in clean.columns if c.startswith("_flag_")]
                first = flag_names is None
                if first:
                    flag_names = names
                elif names != flag_names:  # the flags follow the mapping, never the rows
                    raise AssertionError(f"{source.name}: quality flags differ between chunks")
                _append(conn, first, clean_table, _select_clean(names), "_clean", clean)
                _append(
                    conn,
                    first,
                    quarantine_table(source.name),
                    QUARANTINE_SELECT,
                    "_quarantine",
                    quarantine,
                )
    finally:
        if repeated is not None:
            conn.execute(f"DROP TABLE IF EXISTS {repeated}")


def _append(
    conn: duckdb.DuckDBPyConnection,
    create: bool,
    table: str,
    select: str,
    name: str,
    frame: pd.DataFrame,
) -> None:
    """`frame` in row order into `table`, created from it when `create`."""
    into = f"CREATE OR REPLACE TABLE {table} AS" if create else f"INSERT INTO {table}"
    conn.register(name, frame)
    try:
        conn.execute(f"{into} SELECT\n  {select}\nFROM {name} ORDER BY row_number")
    finally:
        conn.unregister(name)
