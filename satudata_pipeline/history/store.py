"""The history of every published determination, appended INSIDE the publication transaction.

`record_determination()` is called by `golden.publish.publish()` after the published tables were
replaced and before COMMIT, so a determination is in the history exactly when it was published: a
run that fails, or a process killed, before COMMIT adds nothing, and nothing published is ever
missing from it (DuckDB rolls back the inserts with the rest).

    history.determinations     one row per publication: determination_id (1, 2, ...), run_id,
                               published_at, snapshot_date, delivery_fingerprint, model_version,
                               rules_version, review_rows
    history.review_rows        per roster row per determination: program, source, record_id,
                               person_id, nik_masked, verdict, reasons, nominal_bulanan and the
                               decision columns (pipeline_verdict, decision, decision_reason,
                               decided_by, decided_at, decision_status)
    history.source_row_hashes  the last publication's row hashes per source (history/intake.py)
    main.determination_changes this determination against the previous one, one row per roster row
                               and change (CHANGES); empty after the first determination

A rerun of the same delivery is a determination of its own (same fingerprint, no changes): the
history says it was run twice. None of these tables is one of the published tables that reruns
keep byte-identical (golden/publish.py PUBLISHED); they are the record of those publications.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from satudata_pipeline.contract.schema import require_columns
from satudata_pipeline.history import intake, versions
from satudata_pipeline.warehouse import scalar, table_exists

SCHEMA = "history"
DETERMINATIONS = "history.determinations"
REVIEW_ROWS = "history.review_rows"
ROW_HASHES = intake.PUBLISHED_HASHES
CHANGES_TABLE = "main.determination_changes"

# what changed for a roster row between two determinations (a row may have several)
CHANGES = {
    "newly_removed": "the row was not `remove` and now is",
    "reinstated": "the row was `remove` and now is `keep`",
    "newly_in_review": "the row was not `review` and now is",
    "left_review": "the row was `review` and now is not",
    "amount_changed": "nominal_bulanan differs",
    "new_row": "the row was not in the previous determination",
    "row_gone": "the row was in the previous determination and is not any more",
}

DECISION_COLUMNS = {
    "pipeline_verdict": "VARCHAR",
    "decision": "VARCHAR",
    "decision_reason": "VARCHAR",
    "decided_by": "VARCHAR",
    "decided_at": "DATE",
    "decision_status": "VARCHAR",
}
REVIEW_ROW_COLUMNS = {
    "determination_id": "BIGINT",
    "program": "VARCHAR",
    "source": "VARCHAR",
    "record_id": "VARCHAR",
    "person_id": "VARCHAR",
    "nik_masked": "VARCHAR",
    "verdict": "VARCHAR",
    "reasons": "VARCHAR[]",
    "nominal_bulanan": "BIGINT",
    **DECISION_COLUMNS,
    # what a decision answered (programs/verdicts.py decided_sql): a row that left the roster and
    # comes back finds here the evidence its decision was made on
    "evidence_fingerprint": "VARCHAR",
    "decision_fingerprint": "VARCHAR",
}


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    conn.execute(f"""CREATE TABLE IF NOT EXISTS {DETERMINATIONS} (
        determination_id BIGINT, run_id VARCHAR, published_at TIMESTAMP, snapshot_date DATE,
        delivery_fingerprint VARCHAR, model_version VARCHAR, rules_version VARCHAR, review_rows BIGINT)""")
    cols = ", ".join(f"{c} {t}" for c, t in REVIEW_ROW_COLUMNS.items())
    conn.execute(f"CREATE TABLE IF NOT EXISTS {REVIEW_ROWS} ({cols})")
    for c, t in REVIEW_ROW_COLUMNS.items():  # a history written before a column existed
        conn.execute(f"ALTER TABLE {REVIEW_ROWS} ADD COLUMN IF NOT EXISTS {c} {t}")
    conn.execute(f"""CREATE TABLE IF NOT EXISTS {CHANGES_TABLE} (
        determination_id BIGINT, previous_determination_id BIGINT, program VARCHAR, source VARCHAR,
        record_id VARCHAR, person_id VARCHAR, nik_masked VARCHAR, change VARCHAR,
        verdict_before VARCHAR, verdict_after VARCHAR, reasons_before VARCHAR[], reasons_after VARCHAR[],
        nominal_before BIGINT, nominal_after BIGINT)""")
    intake.ensure_tables(conn)


# The columns of a review table (published or staged) the history copies: a review without one of
# them is a SchemaError naming it (the programs stage always writes them all)
REVIEW_READ: tuple[str, ...] = (
    *(c for c in REVIEW_ROW_COLUMNS if c != "determination_id"),
    "snapshot_date",
)


def review_projection_sql(
    conn: duckdb.DuckDBPyConnection, review: str, determination_id: int | None
) -> str:
    """A review table (published or staged) in the shape of history.review_rows."""
    require_columns(conn, review, REVIEW_READ, "history")
    did = "NULL" if determination_id is None else str(int(determination_id))
    cols = [f"CAST({did} AS BIGINT) AS determination_id"] + [
        f"CAST(b.{c} AS {t}) AS {c}"
        for c, t in REVIEW_ROW_COLUMNS.items()
        if c != "determination_id"
    ]
    return f"SELECT {', '.join(cols)} FROM {review} b"


def latest_determination(conn: duckdb.DuckDBPyConnection) -> int | None:
    if not table_exists(conn, DETERMINATIONS):
        return None
    return conn.execute(f"SELECT max(determination_id) FROM {DETERMINATIONS}").fetchall()[0][0]


def changes_sql(current: str, previous_id: int, current_id: int | None = None) -> str:
    """One row per roster row and change: `current` (a query in the shape of history.review_rows,
    `review_projection_sql`) against determination `previous_id`."""
    cid = "NULL" if current_id is None else str(int(current_id))
    return f"""
        WITH cur AS ({current}),
             prev AS (SELECT * FROM {REVIEW_ROWS} WHERE determination_id = {int(previous_id)}),
             pairs AS (
                SELECT coalesce(c.program, p.program) AS program, coalesce(c.source, p.source) AS source,
                       coalesce(c.record_id, p.record_id) AS record_id,
                       coalesce(c.person_id, p.person_id) AS person_id,
                       coalesce(c.nik_masked, p.nik_masked) AS nik_masked,
                       p.record_id IS NOT NULL AS in_prev, c.record_id IS NOT NULL AS in_cur,
                       p.verdict AS verdict_before, c.verdict AS verdict_after,
                       p.reasons AS reasons_before, c.reasons AS reasons_after,
                       p.nominal_bulanan AS nominal_before, c.nominal_bulanan AS nominal_after
                FROM cur c FULL OUTER JOIN prev p
                  ON c.program = p.program AND c.source = p.source AND c.record_id = p.record_id),
             flagged AS (
                SELECT *, list_filter([
                    CASE WHEN in_cur AND NOT in_prev THEN 'new_row' END,
                    CASE WHEN in_prev AND NOT in_cur THEN 'row_gone' END,
                    CASE WHEN in_cur AND in_prev AND verdict_after = 'remove'
                              AND verdict_before IS DISTINCT FROM 'remove' THEN 'newly_removed' END,
                    CASE WHEN in_cur AND in_prev AND verdict_before = 'remove'
                              AND verdict_after = 'keep' THEN 'reinstated' END,
                    CASE WHEN in_cur AND in_prev AND verdict_after = 'review'
                              AND verdict_before IS DISTINCT FROM 'review' THEN 'newly_in_review' END,
                    CASE WHEN in_cur AND in_prev AND verdict_before = 'review'
                              AND verdict_after IS DISTINCT FROM 'review' THEN 'left_review' END,
                    CASE WHEN in_cur AND in_prev AND nominal_after IS DISTINCT FROM nominal_before
                         THEN 'amount_changed' END
                ], lambda x: x IS NOT NULL) AS changes
                FROM pairs)
        SELECT {cid} AS determination_id, {int(previous_id)} AS previous_determination_id, program, source,
               record_id, person_id, nik_masked, unnest(changes) AS change, verdict_before, verdict_after,
               reasons_before, reasons_after, nominal_before, nominal_after
        FROM flagged WHERE len(changes) > 0"""


def change_counts(
    conn: duckdb.DuckDBPyConnection,
    table: str = CHANGES_TABLE,
    programs: list[str] | tuple[str, ...] = (),
) -> dict[str, dict[str, int]]:
    """{program: {change: rows}} of a changes table (every change listed, zeros included; every program
    of `programs` listed even without a change)."""
    if not table_exists(conn, table):
        return {}
    out: dict[str, dict[str, int]] = {p: {c: 0 for c in CHANGES} for p in programs}
    for program, change, n in conn.execute(
        f"SELECT program, change, count(*) FROM {table} GROUP BY ALL ORDER BY ALL"
    ).fetchall():
        out.setdefault(program, {c: 0 for c in CHANGES})[change] = int(n)
    return out


def preview_changes(conn: duckdb.DuckDBPyConnection, staged_review: str) -> tuple[int | None, dict]:
    """Before publishing: the staged review against the latest determination (counts per program).

    Returns (previous determination id or None, {program: {change: rows}})."""
    previous = latest_determination(conn)
    if previous is None:
        return None, {}
    programs = [
        r[0]
        for r in conn.execute(
            f"SELECT DISTINCT program FROM {staged_review} "
            f"UNION SELECT DISTINCT program FROM {REVIEW_ROWS} "
            f"WHERE determination_id = {int(previous)} ORDER BY 1"
        ).fetchall()
    ]
    counts = {p: {c: 0 for c in CHANGES} for p in programs}
    for program, change, n in conn.execute(
        f"SELECT program, change, count(*) FROM ({changes_sql(review_projection_sql(conn, staged_review, None), previous)}) "
        "GROUP BY ALL"
    ).fetchall():
        counts[program][change] = int(n)
    return previous, counts


def record_determination(
    conn: duckdb.DuckDBPyConnection,
    run_id: str,
    published_at: dt.datetime,
    review: str = "main.beneficiary_review",
) -> dict:
    """Append this publication to the history (call INSIDE the publication transaction, after the
    published tables were replaced). Returns {determination_id, previous_determination_id, review_rows,
    changes: {program: {change: rows}}, ...versions}."""
    ensure_tables(conn)
    previous = latest_determination(conn)
    determination_id = (previous or 0) + 1
    projection = review_projection_sql(conn, review, determination_id)  # checks the columns
    snapshot = scalar(conn, f"SELECT max(snapshot_date) FROM {review}")
    info = {
        "determination_id": determination_id,
        "previous_determination_id": previous,
        "snapshot_date": snapshot,
        "delivery_fingerprint": versions.delivery_fingerprint(conn),
        "model_version": versions.model_version(conn),
        "rules_version": versions.rules_version(),
    }
    conn.execute(
        f"INSERT INTO {REVIEW_ROWS} BY NAME {projection} ORDER BY program, source, record_id"
    )
    n_rows = int(
        conn.execute(
            f"SELECT count(*) FROM {REVIEW_ROWS} WHERE determination_id = ?", [determination_id]
        ).fetchall()[0][0]
    )
    conn.execute(
        f"INSERT INTO {DETERMINATIONS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            determination_id,
            run_id,
            published_at,
            snapshot,
            info["delivery_fingerprint"],
            info["model_version"],
            info["rules_version"],
            n_rows,
        ],
    )
    conn.execute(f"DELETE FROM {CHANGES_TABLE}")
    if previous is not None:
        current = f"SELECT * FROM {REVIEW_ROWS} WHERE determination_id = {determination_id}"
        conn.execute(
            f"INSERT INTO {CHANGES_TABLE} SELECT * FROM ({changes_sql(current, previous, determination_id)}) "
            "ORDER BY program, change, source, record_id"
        )
    info["source_row_hashes"] = intake.publish_hashes(conn, determination_id)
    info["review_rows"] = n_rows
    info["changes"] = change_counts(conn) if previous is not None else {}
    return info


def latest_info(conn: duckdb.DuckDBPyConnection) -> dict:
    """The latest determination (its row of history.determinations, previous_determination_id and the
    change counts of main.determination_changes); all values None before the first one."""
    cols = (
        "determination_id",
        "run_id",
        "published_at",
        "snapshot_date",
        "delivery_fingerprint",
        "model_version",
        "rules_version",
        "review_rows",
    )
    latest = latest_determination(conn)
    if latest is None:
        return {**{c: None for c in cols}, "previous_determination_id": None, "changes": {}}
    row = conn.execute(
        f"SELECT {', '.join(cols)} FROM {DETERMINATIONS} WHERE determination_id = ?", [latest]
    ).fetchall()[0]
    previous = conn.execute(
        f"SELECT max(determination_id) FROM {DETERMINATIONS} WHERE determination_id < ?", [latest]
    ).fetchall()[0][0]
    programs = [
        r[0]
        for r in conn.execute(
            f"SELECT DISTINCT program FROM {REVIEW_ROWS} WHERE determination_id IN (?, ?) ORDER BY 1",
            [latest, previous],
        ).fetchall()
    ]
    changes = change_counts(conn, programs=programs) if previous is not None else {}
    return {**dict(zip(cols, row)), "previous_determination_id": previous, "changes": changes}
