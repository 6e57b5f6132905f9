"""Clean one source's raw table into its clean table and quarantine, a chunk of rows at a time.

The raw table is read in `_row_number` ranges of `chunk_rows` (default CHUNK_ROWS), each range is
cleaned in pandas (`clean_frame`) and appended in row order, so Python holds one chunk, never the
population, and the tables are the same byte for byte whatever the chunk size (docs/scale.md).
The one judgement that needs every row, a record id repeated anywhere in the source, is made first
in DuckDB from the mapped record ids. Both tables are replaced in one transaction: a failure
leaves the previous ones.

Next month (issue 17): providers re-deliver full extracts and most rows are the same. A raw row whose
content (every delivered column and its parse error; 128-bit md5) is the same as a row of the last
clean run of this source gets that run's clean row back (its `row_number` set to the new position)
instead of being cleaned again, when nothing else could make the result differ (`_plan_reuse`): the
same cleaning code, reference tables, intake rules and source mapping (`cleaning_fingerprint`), a
snapshot date not earlier than that run's, the row's id not repeated in this delivery, the old row
not quarantined and without an impossible date (the only judgement that reads the snapshot date).
The tables are the same as a clean of every row (test_clean_chunks.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import duckdb
import pandas as pd

from satudata_pipeline import config
from satudata_pipeline.clean.fingerprint import cleaning_rules_fingerprint
from satudata_pipeline.clean.transform import clean_frame, mapped_record_id
from satudata_pipeline.contract.schema import clean_select_sql
from satudata_pipeline.contract.sources import SourceSpec
from satudata_pipeline.warehouse import (
    all_rows,
    columns,
    one_row,
    scalar,
    table_exists,
    transaction,
)

# ~0.5 GB of pandas per chunk for a wide civil-registry extract; small sources are one chunk
CHUNK_ROWS = 200_000

QUARANTINE_SELECT = (
    "CAST(source AS VARCHAR) AS source, CAST(record_id AS VARCHAR) AS record_id, "
    "CAST(row_number AS BIGINT) AS row_number, CAST(reason AS VARCHAR) AS reason, "
    "CAST(raw_values AS VARCHAR) AS raw_values"
)


def quarantine_table(source_name: str) -> str:
    return f'clean."{source_name}__quarantine"'


REUSE_SCHEMA = (
    "clean_reuse"  # what the next clean run of a source may reuse (not read by any stage)
)
REUSE_STATE = f"{REUSE_SCHEMA}.state"  # source, fingerprint, snapshot_date of the last clean run


def raw_hashes_table(source_name: str) -> str:
    return f'{REUSE_SCHEMA}."{source_name}"'


def cleaning_fingerprint(source: SourceSpec, raw_columns: list[str]) -> str:
    """What a clean row is a function of besides its raw row and the snapshot date: the cleaning code
    and reference files (clean/fingerprint.py), the clean schema and intake rules
    (contract/), the pandas and DuckDB versions, the source's mapping (not its path nor its
    extraction date, which change every month) and the raw columns."""
    contract = config.PACKAGE_DIR / "contract"
    inputs = [contract / f for f in ("schema.py", "intake.py", "intake_rules.yaml", "sources.py")]
    spec = source.model_dump(
        include={"name", "kind", "program", "date_format", "columns", "values"}
    )
    h = hashlib.sha256()
    h.update(cleaning_rules_fingerprint(inputs).encode())
    h.update(
        json.dumps([spec, raw_columns, pd.__version__, duckdb.__version__], default=str).encode()
    )
    return h.hexdigest()[:20]


def _raw_hash_sql(raw: str, raw_columns: list[str]) -> str:
    """row_number and the 128-bit md5 of a raw row's content (delivered columns and parse error; not
    its position, file name or extraction date). md5, not the 64-bit hash(): a collision here would
    give a row another row's clean values."""
    cols = [c for c in raw_columns if not c.startswith("_")] + ["_parse_error"]
    items = ", ".join(f'CAST("{c.replace(chr(34), chr(34) * 2)}" AS VARCHAR)' for c in cols)
    return (
        f"SELECT _row_number AS row_number, md5_number(to_json(list_value({items}))) AS raw_hash "
        f"FROM {raw}"
    )


def _plan_reuse(
    conn: duckdb.DuckDBPyConnection,
    source: SourceSpec,
    snapshot: dt.date,
    fingerprint: str,
    repeated: str | None,
) -> int:
    """Temp table `_clean_reuse(row_number, old_row_number)`: the raw rows whose last clean row is
    reused (see the module docstring). Returns their count (0: clean every row)."""
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _clean_reuse (row_number BIGINT, old_row_number BIGINT)"
    )
    clean_table, hashes = f'clean."{source.name}"', raw_hashes_table(source.name)
    if not (
        table_exists(conn, REUSE_STATE)
        and table_exists(conn, hashes)
        and table_exists(conn, clean_table)
    ):
        return 0
    state = all_rows(
        conn,
        f"SELECT fingerprint, snapshot_date FROM {REUSE_STATE} WHERE source = ?",
        [source.name],
    )
    if not state or state[0][0] != fingerprint or state[0][1] is None or state[0][1] > snapshot:
        return 0
    not_repeated = (
        f"AND cur.row_number NOT IN (SELECT row_number FROM {repeated})" if repeated else ""
    )
    conn.execute(f"""
        INSERT INTO _clean_reuse
        WITH cur AS (SELECT row_number, raw_hash FROM _clean_raw_hashes
                     QUALIFY count(*) OVER (PARTITION BY raw_hash) = 1),
             old AS (SELECT row_number, raw_hash FROM {hashes}
                     QUALIFY count(*) OVER (PARTITION BY raw_hash) = 1)
        SELECT cur.row_number, old.row_number
        FROM cur JOIN old USING (raw_hash)
        JOIN {clean_table} c ON c.row_number = old.row_number
        WHERE len(list_filter(c.quality_flags, lambda f: f LIKE 'date_impossible:%')) = 0
          {not_repeated}""")
    return int(scalar(conn, "SELECT count(*) FROM _clean_reuse"))


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
    reuse: bool = True,
) -> dict[str, int]:
    """Replace `clean.<source>` and its quarantine with the cleaned raw rows, `chunk_rows` at a time
    (default CHUNK_ROWS); with `reuse`, raw rows unchanged since the last clean run keep their clean
    row (module docstring). Returns {"rows_cleaned", "rows_reused"}."""
    chunk_rows = chunk_rows or CHUNK_ROWS
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    raw = f'raw."{source.name}"'
    ranges = _ranges(conn, raw, chunk_rows)
    raw_columns = columns(conn, raw)
    fingerprint = cleaning_fingerprint(source, raw_columns)
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE _clean_raw_hashes AS {_raw_hash_sql(raw, raw_columns)}"
    )
    # repeats are judged on the whole source: within the one chunk, or first when there are several
    # or when rows are reused (the rows cleaned are then a subset of the source)
    reusable = (
        reuse
        and table_exists(conn, raw_hashes_table(source.name))
        and table_exists(conn, f'clean."{source.name}"')
    )
    repeated = _repeated_ids(conn, source, raw, ranges) if len(ranges) > 1 or reusable else None
    conn.execute("CREATE SCHEMA IF NOT EXISTS clean")
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {REUSE_SCHEMA}")
    clean_table = f'clean."{source.name}"'
    flag_names: list[str] | None = None
    cleaned = 0
    try:
        with transaction(conn):
            reused = _plan_reuse(conn, source, snapshot, fingerprint, repeated) if reuse else 0
            select = f"SELECT * FROM {raw}"
            if reused:
                # the reused rows at their new position, read before the clean table is replaced
                conn.execute(f"""
                    CREATE OR REPLACE TEMP TABLE _clean_kept AS
                    SELECT c.* REPLACE (u.row_number AS row_number)
                    FROM {clean_table} c JOIN _clean_reuse u ON c.row_number = u.old_row_number""")
                select = (
                    f"SELECT r.* FROM {raw} r ANTI JOIN _clean_reuse u "
                    "ON u.row_number = r._row_number"
                )
            for start, stop in ranges:
                frame = _chunk(conn, select, start, stop)
                cleaned += len(frame)
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
                    raise RuntimeError(f"{source.name}: quality flags differ between chunks")
                _append(conn, first, clean_table, _select_clean(names), "_clean", clean)
                _append(
                    conn,
                    first,
                    quarantine_table(source.name),
                    QUARANTINE_SELECT,
                    "_quarantine",
                    quarantine,
                )
            if reused:
                if columns(conn, clean_table) != columns(conn, "_clean_kept"):  # the fingerprint
                    raise RuntimeError(f"{source.name}: reused clean rows have other columns")
                conn.execute(f"""
                    CREATE OR REPLACE TABLE {clean_table} AS
                    SELECT * FROM (SELECT * FROM {clean_table}
                                   UNION ALL BY NAME SELECT * FROM _clean_kept)
                    ORDER BY row_number""")
                conn.execute("DROP TABLE _clean_kept")
            # what the next clean run of this source compares with
            conn.execute(
                f"CREATE OR REPLACE TABLE {raw_hashes_table(source.name)} AS "
                "SELECT row_number, raw_hash FROM _clean_raw_hashes ORDER BY row_number"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {REUSE_STATE} "
                "(source VARCHAR, fingerprint VARCHAR, snapshot_date DATE)"
            )
            conn.execute(f"DELETE FROM {REUSE_STATE} WHERE source = ?", [source.name])
            conn.execute(
                f"INSERT INTO {REUSE_STATE} VALUES (?, ?, ?)", [source.name, fingerprint, snapshot]
            )
    finally:
        for t in (repeated, "_clean_raw_hashes", "_clean_reuse"):
            if t is not None:
                conn.execute(f"DROP TABLE IF EXISTS {t}")
    return {"rows_cleaned": cleaned, "rows_reused": reused}


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
