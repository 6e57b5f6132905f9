"""Clusters of person records: connected components over the match pairs.

`cluster_id` is the smallest `unique_id` of the cluster, so it is deterministic given the input.
Suspect-cluster guard: a component larger than `max_cluster_size`, or holding civil-registry rows
with two different valid NIKs (the population register gives each person one NIK, so that is two
people: a father and son of the same name, twins), is re-clustered using only its
stronger edges (thresholds stepping up towards 1, finally deterministic NIK links only), so a chain
of weak links cannot glue different people together.
Sole candidates: records then left without a population-register row join the one resident they
can be, if there is exactly one (`_assign_sole_candidates`; docs/linkage.md).
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
    assigned: int = 0
    possible_deaths: int = 0
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
    assigned, possible_deaths = _assign_sole_candidates(conn)
    conn.execute("""
        CREATE OR REPLACE TABLE link.person_clusters AS
        SELECT unique_id, cluster_id FROM _cc_main ORDER BY cluster_id, unique_id
    """)
    for tmp in ("_cc_main", "_cc_sub", "_cc_big"):
        conn.execute(f"DROP TABLE IF EXISTS {tmp}")
    result = summarize_clusters(conn, reclustered)
    result.assigned = assigned
    result.possible_deaths = possible_deaths
    return result


# A move into a DKI kelurahan (a return, or a move from outside) carries no origin kelurahan; the
# person then lives at the destination, so that is the kelurahan to look in (the clean stage keeps
# kode_wilayah_tujuan as digits; a 10-digit DKI code is a kelurahan, written here in dotted form).
DKI_DESTINATION_KELURAHAN = """(CASE WHEN regexp_full_match(kode_wilayah_tujuan, '31[0-9]{8}')
    THEN regexp_replace(kode_wilayah_tujuan, '^(..)(..)(..)(....)$', '\\1.\\2.\\3.\\4') END)"""


def _assign_sole_candidates(conn: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Join each group of records left without a population-register row to its sole candidate
    resident: candidates by link first, by name only when there is no link candidate (conditions
    and why: `splink_settings`, EVENT_CANDIDATE and SOLE_LINK_SAME_HOME_KINDS). Rewrites
    `_cc_main`; writes `link.assignments(unique_id, resident_unique_id, basis, match_probability,
    cluster_id)` for the audit trail and `link.possible_deaths(unique_id, resident_unique_id,
    candidates)`. Returns (records assigned, death records left as possible deaths)."""
    conn.execute("""
        CREATE OR REPLACE TEMP TABLE _sc_clusters AS
        SELECT m.cluster_id,
               bool_or(r.kind = 'civil_registry') AS has_civil,
               bool_or(r.kind = 'death_registry') AS has_death
        FROM _cc_main m JOIN link.person_records r USING (unique_id)
        GROUP BY m.cluster_id
    """)
    conn.execute("""
        CREATE OR REPLACE TEMP TABLE _sc_lone AS
        SELECT m.unique_id, m.cluster_id AS lone_cluster
        FROM _cc_main m SEMI JOIN _sc_clusters c ON c.cluster_id = m.cluster_id AND NOT c.has_civil
    """)
    by_name = []
    for kind, condition in ss.EVENT_CANDIDATE.items():
        by_name.append(f"""
            SELECT l.unique_id, l.kind, l.lone_cluster, r.unique_id AS resident_unique_id,
                   'name_in_kelurahan' AS basis, NULL::DOUBLE AS match_probability
            FROM (SELECT e.* REPLACE (coalesce(e.kode_kelurahan, {DKI_DESTINATION_KELURAHAN}) AS kode_kelurahan),
                         s.lone_cluster
                  FROM link.person_records e JOIN _sc_lone s USING (unique_id)
                  WHERE e.kind = '{kind}' AND e.nama IS NOT NULL) l
            JOIN link.person_records r ON r.kode_kelurahan = l.kode_kelurahan AND r.kind = 'civil_registry'
            WHERE {ss.as_join_sql(condition)}""")
    same_home_kinds = ", ".join(f"'{k}'" for k in ss.SOLE_LINK_SAME_HOME_KINDS)
    by_link = [f"""
            SELECT l.unique_id, l.kind, s.lone_cluster, r.unique_id AS resident_unique_id,
                   'link' AS basis, p.match_probability
            FROM link.match_pairs p
            JOIN _sc_lone s ON s.unique_id = p.{mine}
            JOIN link.person_records l ON l.unique_id = p.{mine}
            JOIN link.person_records r ON r.unique_id = p.{other}
            WHERE l.kind NOT IN ({same_home_kinds}) OR ({ss.as_join_sql(ss.SAME_HOME)})"""
               for mine, other in (("unique_id_l", "unique_id_r"), ("unique_id_r", "unique_id_l"))]
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sc_candidates AS
        SELECT c.*, rm.cluster_id AS resident_cluster
        FROM ({" UNION ALL ".join([*by_name, *by_link])}) c
        JOIN _cc_main rm ON rm.unique_id = c.resident_unique_id
        JOIN _sc_clusters rc ON rc.cluster_id = rm.cluster_id AND rc.has_civil
        -- a person dies once: a resident with a death record is nobody's candidate for another
        WHERE NOT (c.kind = 'death_registry' AND rc.has_death)
        -- the model's links outrank the name rule: a group with any link candidate is decided
        -- on its links alone (an exact-birth-date link beats a namesake one digit off)
        QUALIFY c.basis = 'link' OR NOT bool_or(c.basis = 'link') OVER (PARTITION BY c.lone_cluster)
    """)
    conn.execute("""
        CREATE OR REPLACE TEMP TABLE _sc_assign AS
        WITH sole AS (   -- groups whose records, all together, point at one resident
            SELECT lone_cluster, min(resident_cluster) AS resident_cluster
            FROM _sc_candidates GROUP BY lone_cluster
            HAVING count(DISTINCT resident_cluster) = 1
        )
        SELECT c.unique_id, c.lone_cluster, c.resident_cluster,
               -- the strongest link's resident record (ties, and name candidates: smallest id)
               arg_min(c.resident_unique_id, {'w': -coalesce(c.match_probability, 0),
                                              'id': c.resident_unique_id}) AS resident_unique_id,
               any_value(c.basis) AS basis,   -- one basis per group (links outrank names)
               max(c.match_probability) AS match_probability
        FROM _sc_candidates c SEMI JOIN sole USING (lone_cluster)
        GROUP BY ALL
    """)
    # A death record that points at two or more residents (namesakes, no NIK or birth date to tell
    # them apart) is not assigned; with few of them, each is a possible death for a person to check.
    conn.execute(f"""
        CREATE OR REPLACE TABLE link.possible_deaths AS
        WITH multi AS (
            SELECT lone_cluster FROM _sc_candidates GROUP BY 1
            HAVING count(DISTINCT resident_cluster) BETWEEN 2 AND {int(ss.POSSIBLE_DEATH_MAX_CANDIDATES)}
        )
        SELECT c.unique_id, c.resident_unique_id,
               count(DISTINCT c.resident_cluster) OVER (PARTITION BY c.unique_id) AS candidates
        FROM _sc_candidates c SEMI JOIN multi USING (lone_cluster)
        WHERE c.kind = 'death_registry'
        QUALIFY row_number() OVER (PARTITION BY c.unique_id, c.resident_cluster
                                   ORDER BY c.resident_unique_id) = 1
        ORDER BY c.unique_id, c.resident_unique_id
    """)
    conn.execute("""
        CREATE OR REPLACE TEMP TABLE _cc_main AS
        WITH groups AS (
            SELECT DISTINCT lone_cluster AS cluster_id, resident_cluster AS grp FROM _sc_assign
            UNION SELECT resident_cluster, resident_cluster FROM _sc_assign
        ),
        renamed AS (SELECT cluster_id, min(cluster_id) OVER (PARTITION BY grp) AS new_id FROM groups)
        SELECT m.unique_id, coalesce(n.new_id, m.cluster_id) AS cluster_id
        FROM _cc_main m LEFT JOIN renamed n USING (cluster_id)
    """)
    conn.execute("""
        CREATE OR REPLACE TABLE link.assignments AS
        SELECT a.unique_id, a.resident_unique_id, a.basis, a.match_probability, m.cluster_id
        FROM _sc_assign a JOIN _cc_main m ON m.unique_id = a.unique_id
        ORDER BY a.unique_id
    """)
    conn.execute("DROP TABLE IF EXISTS link.event_assignments")  # the table's name before v3
    n = conn.execute("""
        SELECT count(*) FROM _sc_lone SEMI JOIN (SELECT DISTINCT lone_cluster FROM _sc_assign) a
        USING (lone_cluster)""").fetchall()[0][0]
    possible = conn.execute("SELECT count(DISTINCT unique_id) FROM link.possible_deaths").fetchall()[0][0]
    for tmp in ("_sc_clusters", "_sc_lone", "_sc_candidates", "_sc_assign"):
        conn.execute(f"DROP TABLE IF EXISTS {tmp}")
    return int(n), int(possible)


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
