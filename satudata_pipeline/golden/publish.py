"""Write, audit, publish: the published tables change in one transaction, or not at all.

The golden and programs assets never write the published tables. They write *staging* tables
(schema `staging`), their blocking asset checks audit those, and only then the asset
`published_lists` calls `publish()`, which in ONE DuckDB transaction

1. re-audits the staging tables against each other (`audit()`: every person_id of the links and of
   the review exists in the golden person table, the review agrees with the links, the staged id
   state matches the golden persons) and refuses to publish if anything is off;
2. replaces every published table with its staging table (`CREATE OR REPLACE TABLE main.x AS
   SELECT * FROM staging.x ORDER BY <key>`; the ORDER BY of each table is in `PUBLISHED`);
3. advances the stable-id state (`golden.person_id_registry`, `person_id_members`, `person_ids`,
   and appends this run's `person_id_changes`) from its staging copy;
4. appends a row to `main.publication_log`, and the sources it was made from (row counts, what the
   operator accepted; from the completeness gate's `staging.delivery_sources`) to
   `main.publication_sources`;
5. appends the determination to the history (`history.determinations`, `history.review_rows`, the
   row hashes of the delivery) and replaces `main.determination_changes` (satudata_pipeline/history),
   so the history holds exactly the published determinations.

DuckDB rolls back DDL with the rest of a transaction, so a run that fails, or a process that is
killed, at any point before COMMIT leaves the previous publication (lists, golden person, links
and id registry) intact and consistent. See docs/reliability.md.

Id rule: `stage_id_state()` copies the *published* id state into `staging`, and the run assigns its
ids there (`stable_ids.assign_person_ids(schema="staging")`). The registry therefore only advances
when a run is published; an unpublished run (failed audit, killed process) leaves no trace in it and
the next run is compared with what consumers last saw.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from satudata_pipeline.golden import stable_ids
from satudata_pipeline.history import store as history
from satudata_pipeline.warehouse import scalar, table_exists, transaction

STAGING = "staging"


@dataclass(frozen=True)
class Published:
    name: str  # table name, the same in staging and in the published schema
    schema: str  # published schema
    order_by: str  # the row order of the published table (documented in docs/reliability.md)
    required: bool  # publish refuses to run without it

    @property
    def staged(self) -> str:
        return f"{STAGING}.{self.name}"

    @property
    def published(self) -> str:
        return f"{self.schema}.{self.name}"


PUBLISHED: tuple[Published, ...] = (
    Published("golden_person", "main", "person_id", True),
    Published(
        "person_source_link", "main", "source, record_id, unique_id, person_id NULLS LAST", True
    ),
    Published(
        "beneficiary_review",
        "main",
        "program, kode_kota NULLS LAST, kode_kecamatan NULLS LAST, source, record_id",
        True,
    ),
    Published("eligible_not_enrolled", "programs", "program, peringkat", False),
    Published(
        "program_summary",
        "programs",
        "program, kode_kota NULLS LAST, kode_kecamatan NULLS LAST, verdict, reason",
        False,
    ),
)
BY_NAME = {p.name: p for p in PUBLISHED}
LOG_TABLE = "main.publication_log"
ID_TABLES = ("person_id_registry", "person_id_members")


class PublishError(RuntimeError):
    """The staging tables are missing or inconsistent: nothing was published. Never carries personal data."""


def staged(name: str) -> str:
    """`staging.<name>` of a published table (what the assets write and their checks audit)."""
    return BY_NAME[name].staged


def _count(conn: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(scalar(conn, sql))


# --------------------------------------------------------------------------------------------
# staging
# --------------------------------------------------------------------------------------------
def ensure_staging(
    conn: duckdb.DuckDBPyConnection, names: tuple[str, ...] | None = None
) -> list[str]:
    """Seed missing staging tables from their published copy, for a stage materialized on its own
    after a publication (its upstream stages not rerun). Returns the tables seeded."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {STAGING}")
    seeded = []
    for p in PUBLISHED:
        if names is not None and p.name not in names:
            continue
        if not table_exists(conn, p.staged) and table_exists(conn, p.published):
            conn.execute(f"CREATE TABLE {p.staged} AS SELECT * FROM {p.published}")
            seeded.append(p.name)
    return seeded


def stage_id_state(conn: duckdb.DuckDBPyConnection) -> None:
    """`staging.person_id_*` := the published id state (`golden.person_id_*`), in one transaction.

    The run then assigns ids on the staging copy; `publish()` copies it back."""
    with transaction(conn):
        stable_ids.ensure_tables(conn, "golden")
        for t in (*ID_TABLES, "person_id_changes", "person_ids"):
            conn.execute(f"DROP TABLE IF EXISTS {STAGING}.{t}")
        stable_ids.ensure_tables(conn, STAGING)
        for t in ID_TABLES:
            conn.execute(f"INSERT INTO {STAGING}.{t} SELECT * FROM golden.{t}")


# --------------------------------------------------------------------------------------------
# audit
# --------------------------------------------------------------------------------------------
def audit(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Cross-table consistency of the staging tables (every value must be 0). Counts only."""
    g, link, review = (
        staged("golden_person"),
        staged("person_source_link"),
        staged("beneficiary_review"),
    )
    out = {
        "duplicate_person_ids": _count(
            conn, f"SELECT count(*) - count(DISTINCT person_id) FROM {g}"
        ),
        "null_person_ids": _count(conn, f"SELECT count(*) FROM {g} WHERE person_id IS NULL"),
        "links_to_unknown_person": _count(
            conn,
            f"""
            SELECT count(*) FROM {link} l WHERE l.person_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM {g} g WHERE g.person_id = l.person_id)""",
        ),
        "persons_without_link": _count(
            conn,
            f"""
            SELECT count(*) FROM {g} g
            WHERE NOT EXISTS (SELECT 1 FROM {link} l WHERE l.person_id = g.person_id)""",
        ),
        "review_to_unknown_person": _count(
            conn,
            f"""
            SELECT count(*) FROM {review} b WHERE b.person_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM {g} g WHERE g.person_id = b.person_id)""",
        ),
        "review_disagrees_with_links": _count(
            conn,
            f"""
            SELECT count(*) FROM {review} b
            JOIN (SELECT source, CAST(record_id AS VARCHAR) AS record_id, any_value(person_id) AS person_id
                  FROM {link} WHERE link_method <> 'quarantined' GROUP BY ALL) l
              ON l.source = b.source AND l.record_id = CAST(b.record_id AS VARCHAR)
            WHERE b.person_id IS DISTINCT FROM l.person_id""",
        ),
    }
    members = f"{STAGING}.person_id_members"
    if table_exists(conn, members):
        out["id_state_disagrees_with_golden"] = _count(
            conn,
            f"""
            SELECT count(*) FROM (
                (SELECT DISTINCT person_id FROM {members}) EXCEPT (SELECT person_id FROM {g})
                UNION ALL
                (SELECT person_id FROM {g}) EXCEPT (SELECT DISTINCT person_id FROM {members}))""",
        )
    return out


# --------------------------------------------------------------------------------------------
# publish
# --------------------------------------------------------------------------------------------
DELIVERY_SOURCES = f"{STAGING}.delivery_sources"  # written by the completeness gate
SOURCES_TABLE = "main.publication_sources"


def record_sources(conn: duckdb.DuckDBPyConnection, run_id: str, now: dt.datetime) -> None:
    """Inside the publish transaction: the sources this publication was made from, their row counts and
    what the operator accepted (`satudata run --accept`), from the completeness gate's staging table."""
    if not table_exists(conn, DELIVERY_SOURCES):
        return
    conn.execute(f"""CREATE TABLE IF NOT EXISTS {SOURCES_TABLE} (
        run_id VARCHAR, published_at TIMESTAMP, source VARCHAR, kind VARCHAR, program VARCHAR, file VARCHAR,
        rows BIGINT, previous_rows BIGINT, days_old INTEGER, freshness_limit_days INTEGER, finding VARCHAR,
        accepted BOOLEAN)""")
    conn.execute(
        f"INSERT INTO {SOURCES_TABLE} SELECT ?, ?, source, kind, program, file, rows, previous_rows, days_old, "
        f"freshness_limit_days, finding, accepted FROM {DELIVERY_SOURCES} ORDER BY source NULLS LAST, kind",
        [run_id, now],
    )


def apply_registry(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Inside the publish transaction: `golden.person_id_registry` := its staging copy, writing only
    the rows that differ (ids retired this run are updated, new ids appended in `seq` order, ids no
    longer in staging deleted): the same rows as a full copy, old ids in their stored order.

    Not DELETE-all + INSERT: the registry's PRIMARY KEY makes DuckDB commit every deleted and
    re-inserted key one by one (8.7 s for 100k ids, most of `published_lists` on a second month,
    issue 17); the registry only grows by the new ids, so this is proportional to the changes."""
    g, s = "golden.person_id_registry", f"{STAGING}.person_id_registry"
    gone = _count(conn, f"SELECT count(*) FROM {g} ANTI JOIN {s} USING (person_id)")
    if gone:
        conn.execute(f"DELETE FROM {g} WHERE person_id NOT IN (SELECT person_id FROM {s})")
    # non-key columns only: DuckDB updates them in place (no index maintenance)
    updated = _count(
        conn,
        f"""SELECT count(*) FROM {g} JOIN {s} USING (person_id)
            WHERE ({g}.created_run, {g}.retired_run, {g}.seq)
                  IS DISTINCT FROM ({s}.created_run, {s}.retired_run, {s}.seq)""",
    )
    if updated:
        conn.execute(f"""
            UPDATE {g} SET created_run = s.created_run, retired_run = s.retired_run, seq = s.seq
            FROM {s} s
            WHERE {g}.person_id = s.person_id
              AND ({g}.created_run, {g}.retired_run, {g}.seq)
                  IS DISTINCT FROM (s.created_run, s.retired_run, s.seq)""")
    added = _count(conn, f"SELECT count(*) FROM {s} ANTI JOIN {g} USING (person_id)")
    if added:
        conn.execute(
            f"INSERT INTO {g} SELECT * FROM {s} ANTI JOIN {g} USING (person_id) ORDER BY seq, person_id"
        )
    return {"deleted": gone, "updated": updated, "added": added}


def publish(conn: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, int]:
    """Audit the staging tables and swap them into the published schemas in ONE transaction.

    Returns the published row counts (also written to `main.publication_log`). Raises
    `PublishError` (nothing published) when a required staging table is missing or the audit fails.
    """
    ensure_staging(conn)
    if table_exists(conn, DELIVERY_SOURCES):
        blocked = _count(conn, f"SELECT count(*) FROM {DELIVERY_SOURCES} WHERE blocks")
        if blocked:
            raise PublishError(
                f"nothing published: the delivery is incomplete ({blocked} problem(s) in "
                f"{DELIVERY_SOURCES}; see the check delivery_is_complete)"
            )
    missing = [p.staged for p in PUBLISHED if p.required and not table_exists(conn, p.staged)]
    if missing:
        raise PublishError(f"nothing published: staging table(s) missing: {', '.join(missing)}")
    tables = [p for p in PUBLISHED if table_exists(conn, p.staged)]
    has_ids = all(table_exists(conn, f"{STAGING}.{t}") for t in (*ID_TABLES, "person_id_changes"))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with transaction(conn):
        problems = {k: v for k, v in audit(conn).items() if v}
        if problems:
            raise PublishError(
                "nothing published: the staging tables are inconsistent: "
                + ", ".join(f"{k}={v}" for k, v in sorted(problems.items()))
            )
        counts: dict[str, int] = {}
        for p in tables:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {p.schema}")
            conn.execute(
                f"CREATE OR REPLACE TABLE {p.published} AS SELECT * FROM {p.staged} ORDER BY {p.order_by}"
            )
            counts[p.name] = _count(conn, f"SELECT count(*) FROM {p.published}")
        n_changes = 0
        if has_ids:
            stable_ids.ensure_tables(conn, "golden")
            apply_registry(conn)
            conn.execute("DELETE FROM golden.person_id_members")
            conn.execute(
                f"INSERT INTO golden.person_id_members SELECT * FROM {STAGING}.person_id_members"
            )
            n_changes = _count(conn, f"SELECT count(*) FROM {STAGING}.person_id_changes")
            conn.execute(
                f"INSERT INTO golden.person_id_changes SELECT * FROM {STAGING}.person_id_changes "
                "ORDER BY changed_at, reason, old_person_id, new_person_id"
            )
            # appended once: a later publish of the same staging state must not log them again
            conn.execute(f"DELETE FROM {STAGING}.person_id_changes")
            if table_exists(conn, f"{STAGING}.person_ids"):
                conn.execute(
                    f"CREATE OR REPLACE TABLE golden.person_ids AS "
                    f"SELECT * FROM {STAGING}.person_ids ORDER BY cluster_id"
                )
        record_sources(conn, run_id, now)
        history.record_determination(conn, run_id, now)
        conn.execute(f"""CREATE TABLE IF NOT EXISTS {LOG_TABLE} (
            run_id VARCHAR, published_at TIMESTAMP, golden_person BIGINT, person_source_link BIGINT,
            beneficiary_review BIGINT, eligible_not_enrolled BIGINT, program_summary BIGINT,
            person_id_changes BIGINT)""")
        conn.execute(
            f"INSERT INTO {LOG_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                now,
                counts.get("golden_person"),
                counts.get("person_source_link"),
                counts.get("beneficiary_review"),
                counts.get("eligible_not_enrolled"),
                counts.get("program_summary"),
                n_changes,
            ],
        )
    counts["person_id_changes"] = n_changes
    return counts


__all__ = [
    "PUBLISHED",
    "STAGING",
    "LOG_TABLE",
    "PublishError",
    "audit",
    "ensure_staging",
    "publish",
    "stage_id_state",
    "staged",
]
