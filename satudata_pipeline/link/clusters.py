"""Clusters of person records: connected components over the match pairs, in DuckDB SQL.

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

ESCALATION = (0.99, 0.999, 0.9999, 0.99999)


def _components(conn: duckdb.DuckDBPyConnection, nodes_sql: str, edges_sql: str, out: str) -> None:
    """Write `out(unique_id, cluster_id)`: min-label propagation until stable."""
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _cc_edges AS "
                 f"SELECT a, b FROM ({edges_sql}) e(a, b) "
                 f"UNION SELECT b, a FROM ({edges_sql}) e(a, b)")
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {out} AS "
                 f"SELECT unique_id, unique_id AS cluster_id FROM ({nodes_sql})")
    while True:
        conn.execute(f"""
            CREATE OR REPLACE TEMP TABLE _cc_next AS
            SELECT n.unique_id, least(n.cluster_id, min(m.cluster_id)) AS cluster_id
            FROM {out} n
            LEFT JOIN _cc_edges e ON e.a = n.unique_id
            LEFT JOIN {out} m ON m.unique_id = e.b
            GROUP BY n.unique_id, n.cluster_id
        """)
        changed = conn.execute(f"""
            SELECT count(*) FROM _cc_next x JOIN {out} o USING (unique_id)
            WHERE x.cluster_id <> o.cluster_id
        """).fetchall()[0][0]
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT * FROM _cc_next")
        if changed == 0:
            break
    conn.execute("DROP TABLE IF EXISTS _cc_next")
    conn.execute("DROP TABLE IF EXISTS _cc_edges")


@dataclass
class ClusterResult:
    n_records: int
    n_clusters: int
    max_size: int
    reclustered: int = 0
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

    suspect = f"""
        SELECT c.cluster_id FROM _cc_main c JOIN link.person_records r USING (unique_id)
        GROUP BY c.cluster_id
        HAVING count(*) > {int(max_cluster_size)}
            OR count(DISTINCT r.nik) FILTER (WHERE r.kind = 'civil_registry' AND r.nik_valid) > 1
    """
    reclustered = 0
    for level in [*[x for x in ESCALATION if x > t], None]:
        conn.execute(f"""
            CREATE OR REPLACE TEMP TABLE _cc_big AS
            SELECT unique_id FROM _cc_main WHERE cluster_id IN ({suspect})
        """)
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
    conn.execute("""
        CREATE OR REPLACE TABLE link.person_clusters AS
        SELECT unique_id, cluster_id FROM _cc_main ORDER BY cluster_id, unique_id
    """)
    for tmp in ("_cc_main", "_cc_sub", "_cc_big"):
        conn.execute(f"DROP TABLE IF EXISTS {tmp}")
    return summarize_clusters(conn, reclustered)


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
                         {str(b): int(c) for b, c in rows})
