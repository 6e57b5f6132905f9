"""Clusters of person records: connected components over the match pairs.

`cluster_id` is the smallest `unique_id` of the cluster, so it is deterministic given the input.
Suspect-cluster guard: a component larger than `max_cluster_size`, or holding civil-registry rows
with two different valid NIKs (the population register gives each person one NIK, so that is two
people: a father and son of the same name, twins), is re-clustered using only its
stronger edges (thresholds stepping up towards 1, finally deterministic NIK links only), so a chain
of weak links cannot glue different people together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from satudata_pipeline.link import splink_settings as ss

ESCALATION = (0.99, 0.999, 0.9999, 0.99999)


def _components(conn: duckdb.DuckDBPyConnection, nodes_sql: str, edges_sql: str, out: str) -> None:
    """Write `out(unique_id, cluster_id)`: connected components (scipy.sparse.csgraph, linear in
    the number of links) over the nodes of `nodes_sql` and the links of `edges_sql`; the
    cluster_id is the smallest unique_id of the component."""
    import numpy as np
    import pandas as pd
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    conn.execute(f"CREATE OR REPLACE TEMP TABLE _cc_nodes AS "
                 f"SELECT unique_id, (row_number() OVER (ORDER BY unique_id) - 1)::BIGINT AS ix "
                 f"FROM (SELECT DISTINCT unique_id FROM ({nodes_sql}))")
    n = conn.execute("SELECT count(*) FROM _cc_nodes").fetchall()[0][0]
    edges = conn.execute(f"""
        SELECT na.ix AS a, nb.ix AS b FROM ({edges_sql}) e(a, b)
        JOIN _cc_nodes na ON na.unique_id = e.a JOIN _cc_nodes nb ON nb.unique_id = e.b
    """).fetchnumpy()
    a, b = np.asarray(edges["a"], dtype=np.int64), np.asarray(edges["b"], dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    ix_label = pd.DataFrame({"ix": np.arange(n, dtype=np.int64), "label": labels.astype(np.int64)})
    conn.register("_cc_labels", ix_label)
    try:
        conn.execute(f"""
            CREATE OR REPLACE TEMP TABLE {out} AS
            SELECT n.unique_id, min(n.unique_id) OVER (PARTITION BY l.label) AS cluster_id
            FROM _cc_nodes n JOIN _cc_labels l USING (ix)
        """)
    finally:
        conn.unregister("_cc_labels")
        conn.execute("DROP TABLE IF EXISTS _cc_nodes")


@dataclass
class ClusterResult:
    n_records: int
    n_clusters: int
    max_size: int
    reclustered: int = 0
    events_assigned: int = 0
    size_distribution: dict[str, int] = field(default_factory=dict)


def build_person_clusters(
    conn: duckdb.DuckDBPyConnection,
    cluster_threshold: float,
    max_cluster_size: int = 30,
) -> ClusterResult:
    """(Re)create `link.person_clusters(unique_id, cluster_id)` from `link.match_pairs`."""
    t = float(cluster_threshold)
    edges = (f"SELECT unique_id_l, unique_id_r FROM link.match_pairs "
             f"WHERE link_method = 'exact_nik' OR match_probability >= {t}")
    _components(conn, "SELECT unique_id FROM link.person_records", edges, "_cc_main")

    def suspect(scope: str) -> str:
        return f"""
        SELECT c.cluster_id FROM {scope} c JOIN link.person_records r USING (unique_id)
        GROUP BY c.cluster_id
        HAVING count(*) > {int(max_cluster_size)}
            OR count(DISTINCT r.nik) FILTER (WHERE r.kind = 'civil_registry' AND r.nik_valid) > 1
    """
    reclustered = 0
    scope = "_cc_main"  # after the first pass only the re-clustered records can still be suspect
    for level in [*[x for x in ESCALATION if x > t], None]:
        conn.execute(f"""
            CREATE OR REPLACE TEMP TABLE _cc_big AS
            SELECT unique_id FROM _cc_main WHERE cluster_id IN ({suspect(scope)})
        """)
        scope = "(SELECT m.* FROM _cc_main m SEMI JOIN _cc_big USING (unique_id))"
        big = conn.execute("SELECT count(DISTINCT m.cluster_id) FROM _cc_main m SEMI JOIN _cc_big USING (unique_id)").fetchall()[0][0]
        if big == 0:
            break
        reclustered += big
        cond = ("link_method = 'exact_nik'" if level is None
                else f"(link_method = 'exact_nik' OR match_probability >= {level})")
        _components(
            conn,
            "SELECT unique_id FROM _cc_big",
            f"""SELECT p.unique_id_l, p.unique_id_r FROM link.match_pairs p
                SEMI JOIN _cc_big a ON a.unique_id = p.unique_id_l
                SEMI JOIN _cc_big b ON b.unique_id = p.unique_id_r
                WHERE {cond}""",
            "_cc_sub",
        )
        conn.execute("""
            CREATE OR REPLACE TEMP TABLE _cc_main AS
            SELECT m.unique_id, coalesce(s.cluster_id, m.cluster_id) AS cluster_id
            FROM _cc_main m LEFT JOIN _cc_sub s USING (unique_id)
        """)
    conn.execute("CREATE SCHEMA IF NOT EXISTS link")
    assigned = _assign_event_records(conn)
    conn.execute("""
        CREATE OR REPLACE TABLE link.person_clusters AS
        SELECT unique_id, cluster_id FROM _cc_main ORDER BY cluster_id, unique_id
    """)
    for tmp in ("_cc_main", "_cc_sub", "_cc_big"):
        conn.execute(f"DROP TABLE IF EXISTS {tmp}")
    result = summarize_clusters(conn, reclustered)
    result.events_assigned = assigned
    return result


# A move into a DKI kelurahan (a return, or a move from outside) carries no origin kelurahan; the
# person then lives at the destination, so that is the kelurahan to look in (the clean stage keeps
# kode_wilayah_tujuan as digits; a 10-digit DKI code is a kelurahan, written here in dotted form).
DKI_DESTINATION_KELURAHAN = """(CASE WHEN regexp_full_match(l.kode_wilayah_tujuan, '31[0-9]{8}')
    THEN regexp_replace(l.kode_wilayah_tujuan, '^(..)(..)(..)(....)$', '\\1.\\2.\\3.\\4') END)"""


def _assign_event_records(conn: duckdb.DuckDBPyConnection) -> int:
    """Join each death / move record left without a population-register row to the only resident
    it can be (`splink_settings.EVENT_CANDIDATE`; why: see there). Rewrites `_cc_main` and writes
    `link.event_assignments(unique_id, resident_unique_id, cluster_id)` for the audit trail."""
    kinds = ", ".join(f"'{k}'" for k in ss.EVENT_KINDS)
    conn.execute("""
        CREATE OR REPLACE TEMP TABLE _ev_clusters AS
        SELECT m.cluster_id,
               bool_or(r.kind = 'civil_registry') AS has_civil,
               list(DISTINCT r.kind) AS kinds
        FROM _cc_main m JOIN link.person_records r USING (unique_id)
        GROUP BY m.cluster_id
    """)
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ev_events AS
        SELECT * FROM (
            SELECT l.* REPLACE (coalesce(l.kode_kelurahan, {DKI_DESTINATION_KELURAHAN}) AS kode_kelurahan),
                   lm.cluster_id AS event_cluster
            FROM link.person_records l
            JOIN _cc_main lm ON lm.unique_id = l.unique_id
            JOIN _ev_clusters le ON le.cluster_id = lm.cluster_id AND NOT le.has_civil
            WHERE l.kind IN ({kinds}) AND l.nama IS NOT NULL
        ) WHERE kode_kelurahan IS NOT NULL
    """)
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ev_candidates AS
        WITH residents AS (
            SELECT r.* FROM link.person_records r
            WHERE r.kind = 'civil_registry'
              AND r.kode_kelurahan IN (SELECT kode_kelurahan FROM _ev_events)
        )
        SELECT l.unique_id, l.kind, l.event_cluster,
               r.unique_id AS resident_unique_id, rm.cluster_id AS resident_cluster
        FROM _ev_events l
        JOIN residents r ON r.kode_kelurahan = l.kode_kelurahan
        JOIN _cc_main rm ON rm.unique_id = r.unique_id
        WHERE {ss.as_join_sql(ss.EVENT_CANDIDATE)}
    """)
    conn.execute("""
        CREATE OR REPLACE TEMP TABLE _ev_assign AS
        WITH per_event AS (
            SELECT unique_id, kind, event_cluster,
                   count(DISTINCT resident_cluster) AS candidates,
                   min(resident_cluster) AS resident_cluster,
                   min(resident_unique_id) AS resident_unique_id
            FROM _ev_candidates GROUP BY ALL
        ),
        ok AS (
            SELECT p.* FROM per_event p
            JOIN _ev_clusters rc ON rc.cluster_id = p.resident_cluster
            WHERE p.candidates = 1
              -- a person dies once; moves can repeat (out, and back again)
              AND NOT (p.kind = 'death_registry' AND list_contains(rc.kinds, p.kind))
        )
        -- an event cluster whose records point at two different residents is left alone
        SELECT * FROM ok WHERE event_cluster IN (
            SELECT event_cluster FROM ok GROUP BY 1 HAVING count(DISTINCT resident_cluster) = 1)
    """)
    conn.execute("""
        CREATE OR REPLACE TEMP TABLE _cc_main AS
        WITH groups AS (
            SELECT event_cluster AS cluster_id, resident_cluster AS grp FROM _ev_assign
            UNION SELECT resident_cluster, resident_cluster FROM _ev_assign
        ),
        renamed AS (SELECT cluster_id, min(cluster_id) OVER (PARTITION BY grp) AS new_id FROM groups)
        SELECT m.unique_id, coalesce(n.new_id, m.cluster_id) AS cluster_id
        FROM _cc_main m LEFT JOIN renamed n USING (cluster_id)
    """)
    conn.execute("""
        CREATE OR REPLACE TABLE link.event_assignments AS
        SELECT a.unique_id, a.resident_unique_id, m.cluster_id
        FROM _ev_assign a JOIN _cc_main m ON m.unique_id = a.unique_id
        ORDER BY a.unique_id
    """)
    n = conn.execute("SELECT count(*) FROM _ev_assign").fetchall()[0][0]
    for tmp in ("_ev_clusters", "_ev_events", "_ev_candidates", "_ev_assign"):
        conn.execute(f"DROP TABLE IF EXISTS {tmp}")
    return int(n)


def summarize_clusters(conn: duckdb.DuckDBPyConnection, reclustered: int = 0) -> ClusterResult:
    n_records, n_clusters, max_size = conn.execute("""
        SELECT count(*), count(DISTINCT cluster_id),
               coalesce((SELECT max(c) FROM (SELECT count(*) c FROM link.person_clusters
                                             GROUP BY cluster_id)), 0)
        FROM link.person_clusters
    """).fetchall()[0]
    rows = conn.execute("""
        SELECT CASE WHEN n >= 10 THEN '10+' ELSE CAST(n AS VARCHAR) END AS bucket, count(*)
        FROM (SELECT count(*) n FROM link.person_clusters GROUP BY cluster_id)
        GROUP BY 1 ORDER BY min(n)
    """).fetchall()
    return ClusterResult(int(n_records), int(n_clusters), int(max_size), reclustered,
                         size_distribution={str(b): int(c) for b, c in rows})
