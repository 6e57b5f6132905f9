"""Stable, opaque person ids across runs on the same warehouse.

Tables that are never dropped (schema `golden`):
- `person_id_registry(person_id, created_run, retired_run, seq)`: every id ever issued.
- `person_id_members(unique_id, person_id, run_id)`: membership of the latest run.
- `person_id_changes(run_id, changed_at, old_person_id, new_person_id, reason)`: the change log.
In the pipeline these `golden` tables are the *published* id state: a run assigns ids on a copy in
schema `staging` and the publish step copies it back in the same transaction as the published lists
(`satudata_pipeline.golden.publish`), so an unpublished run never advances the registry.

Rule (deterministic given the same clusters and the same previous state):
1. Every previous id is *owned* by the new cluster holding most of its previous members
   (ties: the part whose smallest unique_id is smallest).
2. A new cluster owning one previous id keeps it. Owning several (a merge), the oldest id
   (smallest sequence number) survives; the others are retired, logged `merged_into`.
3. A new cluster owning none gets a fresh id `P` + 9-digit sequence (clusters numbered in order of
   their smallest unique_id). If some of its records had an id that another cluster kept (a split),
   it is logged `split_from` that id; otherwise `created`.
4. A previous id none of whose records remain is retired, logged `removed`.
Ids are never derived from NIK or any personal data.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from satudata_pipeline.warehouse import all_rows, scalar, transaction

ID_PREFIX = "P"
ID_DIGITS = 9


def ensure_tables(conn: duckdb.DuckDBPyConnection, schema: str = "golden") -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    conn.execute(f"""
        CREATE TABLE IF NOT EXISTS {schema}.person_id_registry (
            person_id VARCHAR PRIMARY KEY, created_run VARCHAR, retired_run VARCHAR, seq BIGINT)
    """)
    conn.execute(f"""
        CREATE TABLE IF NOT EXISTS {schema}.person_id_members (
            unique_id VARCHAR, person_id VARCHAR, run_id VARCHAR)
    """)
    conn.execute(f"""
        CREATE TABLE IF NOT EXISTS {schema}.person_id_changes (
            run_id VARCHAR, changed_at TIMESTAMP, old_person_id VARCHAR,
            new_person_id VARCHAR, reason VARCHAR)
    """)


def assign_person_ids(
    conn: duckdb.DuckDBPyConnection,
    run_id: str,
    clusters_table: str = "link.person_clusters",
    schema: str = "golden",
) -> dict[str, int]:
    """Write `<schema>.person_ids(cluster_id, person_id)` for the clusters of this run, update the
    registry/members of `<schema>` and log changes there. Returns counts by reason.

    Everything (table creation included) happens in ONE transaction: a run that fails or is killed
    half-way leaves the id tables exactly as they were. The pipeline runs it on `schema="staging"`
    (a copy of the published id state, see `satudata_pipeline.golden.publish`), so the registry only
    advances when the run's lists are published."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with transaction(conn):
        ensure_tables(conn, schema)
        conn.execute(f"""
            CREATE OR REPLACE TEMP TABLE _sid_overlap AS
            SELECT c.cluster_id, m.person_id AS old_pid, count(*) AS n_shared,
                   min(c.unique_id) AS part_min_uid, any_value(g.seq) AS old_seq
            FROM {clusters_table} c
            JOIN {schema}.person_id_members m USING (unique_id)
            JOIN {schema}.person_id_registry g ON g.person_id = m.person_id
            GROUP BY c.cluster_id, m.person_id
        """)
        conn.execute("""
            CREATE OR REPLACE TEMP TABLE _sid_owner AS
            SELECT old_pid, cluster_id, old_seq FROM _sid_overlap
            QUALIFY row_number() OVER (PARTITION BY old_pid
                                       ORDER BY n_shared DESC, part_min_uid) = 1
        """)
        conn.execute("""
            CREATE OR REPLACE TEMP TABLE _sid_keep AS
            SELECT cluster_id, old_pid AS person_id FROM _sid_owner
            QUALIFY row_number() OVER (PARTITION BY cluster_id ORDER BY old_seq, old_pid) = 1
        """)
        base = scalar(conn, f"SELECT coalesce(max(seq), 0) FROM {schema}.person_id_registry")
        conn.execute(f"""
            CREATE OR REPLACE TEMP TABLE _sid_new AS
            SELECT cluster_id, {int(base)} + row_number() OVER (ORDER BY cluster_id) AS seq
            FROM (SELECT DISTINCT cluster_id FROM {clusters_table}) c
            ANTI JOIN _sid_keep k USING (cluster_id)
        """)
        conn.execute(f"""
            CREATE OR REPLACE TEMP TABLE _sid_ids AS
            SELECT cluster_id, person_id FROM _sid_keep
            UNION ALL
            SELECT cluster_id, '{ID_PREFIX}' || lpad(CAST(seq AS VARCHAR), {ID_DIGITS}, '0')
            FROM _sid_new
        """)
        # change log
        conn.execute(f"""
            CREATE OR REPLACE TEMP TABLE _sid_changes AS
            SELECT o.old_pid AS old_person_id, k.person_id AS new_person_id,
                   'merged_into' AS reason
            FROM _sid_owner o JOIN _sid_keep k USING (cluster_id)
            WHERE o.old_pid <> k.person_id
            UNION ALL
            SELECT src.old_pid, i.person_id,
                   CASE WHEN src.old_pid IS NULL THEN 'created' ELSE 'split_from' END
            FROM _sid_new n
            JOIN _sid_ids i USING (cluster_id)
            LEFT JOIN (
                SELECT cluster_id, old_pid FROM _sid_overlap
                QUALIFY row_number() OVER (PARTITION BY cluster_id
                                           ORDER BY n_shared DESC, part_min_uid, old_pid) = 1
            ) src USING (cluster_id)
            UNION ALL
            SELECT DISTINCT m.person_id, NULL, 'removed'
            FROM {schema}.person_id_members m
            WHERE m.person_id NOT IN (SELECT old_pid FROM _sid_overlap)
        """)
        conn.execute(
            f"INSERT INTO {schema}.person_id_changes "
            "SELECT ?, ?, old_person_id, new_person_id, reason FROM _sid_changes "
            "ORDER BY reason, old_person_id, new_person_id",
            [run_id, now],
        )
        conn.execute(
            f"""
            INSERT INTO {schema}.person_id_registry
            SELECT '{ID_PREFIX}' || lpad(CAST(seq AS VARCHAR), {ID_DIGITS}, '0'), ?, NULL, seq
            FROM _sid_new
        """,
            [run_id],
        )
        conn.execute(
            f"""
            UPDATE {schema}.person_id_registry SET retired_run = ?
            WHERE person_id IN (SELECT old_person_id FROM _sid_changes
                                WHERE reason IN ('merged_into', 'removed'))
        """,
            [run_id],
        )
        conn.execute(f"DELETE FROM {schema}.person_id_members")
        conn.execute(
            f"""
            INSERT INTO {schema}.person_id_members
            SELECT c.unique_id, i.person_id, ? FROM {clusters_table} c
            JOIN _sid_ids i USING (cluster_id) ORDER BY c.unique_id
        """,
            [run_id],
        )
        conn.execute(f"""
            CREATE OR REPLACE TABLE {schema}.person_ids AS
            SELECT cluster_id, person_id FROM _sid_ids ORDER BY cluster_id
        """)
        counts = dict(all_rows(conn, "SELECT reason, count(*) FROM _sid_changes GROUP BY reason"))
    for t in ("_sid_overlap", "_sid_owner", "_sid_keep", "_sid_new", "_sid_ids", "_sid_changes"):
        conn.execute(f"DROP TABLE IF EXISTS {t}")
    counts["kept"] = scalar(conn, f"SELECT count(*) FROM {schema}.person_ids") - (
        counts.get("created", 0) + counts.get("split_from", 0)
    )
    return {k: int(v) for k, v in counts.items()}
