"""Clusters of person records: connected components over the match pairs.

`cluster_id` is the smallest `unique_id` of the cluster, so it is deterministic given the input.
Suspect-cluster guard: a component larger than `max_cluster_size`, or holding civil-registry rows
with two different valid NIKs (the population register gives each person one NIK, so that is two
people: a father and son of the same name, twins), is re-clustered using only its
stronger edges (thresholds stepping up towards 1, finally deterministic NIK links only), so a chain
of weak links cannot glue different people together.
Sole candidates: records then left without a population-register row join the one resident they
can be, if there is exactly one (`_assign_sole_candidates`; docs/linkage.md).
Event evidence: for every death and move record, how it is tied to the rest of its person and
whether that tie identifies the person conclusively (`build_event_evidence`, `link.event_evidence`):
only a conclusive tie lets a death or move remove a roster row (programs/verdicts.py).
Link decisions handed back (`decisions.link_in_force`, docs/decisions.md) are constraints: a
same-person decision joins the two records' clusters after the guard (so no threshold undoes it) and
before the sole-candidate step; a not-the-same-person decision is applied last, by re-clustering the
cluster holding both records with its links strongest first and skipping every link that would put
the two together again: the weakest links between them are cut, nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from satudata_pipeline.link import splink_settings as ss
from satudata_pipeline.link.matching import valid_nik_share
from satudata_pipeline.warehouse import scalar

ESCALATION = (0.99, 0.999, 0.9999, 0.99999)
# The largest match weight a stored probability can tell apart from 1 (a double's 53 bits)
_MAX_WEIGHT = 53.0
# A link identifies the person in a death or move record only at this probability or above,
# counted WITHOUT the NIK comparison's positive weight (two valid NIKs one digit apart are as often
# two people as one typo: docs/verdict-rules.md). Not a tuned value: one wrong in a hundred at
# the margin, and the margin is where namesakes sit.
EVIDENCE_MIN_PROBABILITY = 0.99


def _components(conn: duckdb.DuckDBPyConnection, nodes_sql: str, edges_sql: str, out: str) -> None:
    """Write `out(unique_id, cluster_id)`: connected components (scipy.sparse.csgraph, linear in
    the number of links) over the nodes of `nodes_sql` and the links of `edges_sql`; the
    cluster_id is the smallest unique_id of the component."""
    import numpy as np
    import pandas as pd
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE _cc_nodes AS "
        f"SELECT unique_id, (row_number() OVER (ORDER BY unique_id) - 1)::BIGINT AS ix "
        f"FROM (SELECT DISTINCT unique_id FROM ({nodes_sql}))"
    )
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


def _without_nik_sql(conn: duckdb.DuckDBPyConnection, alias: str = "") -> str:
    """A link's probability without the NIK's positive weight, as SQL on link.match_pairs (columns
    prefixed with `alias`): `match_probability_without_nik`; where it is NULL (a deterministic
    pair Splink did not score) or absent (a table written before the column existed, or a
    hand-built one), the probability of a probabilistic link, NULL for an exact-NIK one."""
    have = {r[0] for r in conn.execute("DESCRIBE link.match_pairs").fetchall()}
    col = "match_probability_without_nik"
    stored = f"{alias}{col}" if col in have else "NULL::DOUBLE"
    return (
        f"coalesce({stored}, CASE WHEN {alias}link_method <> 'exact_nik' "
        f"THEN {alias}match_probability END)"
    )


@dataclass
class ClusterResult:
    n_records: int
    n_clusters: int
    max_size: int
    reclustered: int = 0
    assigned: int = 0
    placed_by_dominant_link: int = 0  # of `assigned`: placed with one of two residents of a home
    placed_by_only_link: int = 0  # of `assigned`: each the other's only candidate, homes apart
    possible_deaths: int = 0
    events_conclusive: int = 0
    events_inconclusive: int = 0
    decisions_joined: int = 0  # same-person decisions that joined two clusters
    decisions_split: int = 0  # not-same-person decisions that split a cluster
    decisions_conflicting: int = 0  # not-same-person decisions undone by same-person ones
    size_distribution: dict[str, int] = field(default_factory=dict)


def build_person_clusters(
    conn: duckdb.DuckDBPyConnection,
    cluster_threshold: float,
    max_cluster_size: int = 30,
) -> ClusterResult:
    """(Re)create `link.person_clusters(unique_id, cluster_id)` from `link.match_pairs`."""
    t = float(cluster_threshold)
    edges = (
        f"SELECT unique_id_l, unique_id_r FROM link.match_pairs "
        f"WHERE link_method = 'exact_nik' OR match_probability >= {t}"
    )
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
        big = conn.execute(
            "SELECT count(DISTINCT m.cluster_id) FROM _cc_main m SEMI JOIN _cc_big USING (unique_id)"
        ).fetchall()[0][0]
        if big == 0:
            break
        reclustered += big
        cond = (
            "link_method = 'exact_nik'"
            if level is None
            else f"(link_method = 'exact_nik' OR match_probability >= {level})"
        )
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
    must, cannot = link_constraints(conn)
    joined = _apply_must_links(conn, must)
    assigned, possible_deaths = _assign_sole_candidates(conn)
    placed = scalar(conn, "SELECT count(*) FROM link.assignments WHERE basis = 'dominant_link'")
    only = scalar(conn, "SELECT count(*) FROM link.assignments WHERE basis = 'only_link'")
    split, conflicting = _apply_cannot_links(conn, must, cannot, t)
    conn.execute("""
        CREATE OR REPLACE TABLE link.person_clusters AS
        SELECT unique_id, cluster_id FROM _cc_main ORDER BY cluster_id, unique_id
    """)
    for tmp in ("_cc_main", "_cc_sub", "_cc_big"):
        conn.execute(f"DROP TABLE IF EXISTS {tmp}")
    conclusive, inconclusive = build_event_evidence(conn)
    result = summarize_clusters(conn, reclustered)
    result.assigned = assigned
    result.placed_by_dominant_link = int(placed)
    result.placed_by_only_link = int(only)
    result.possible_deaths = possible_deaths
    result.events_conclusive = conclusive
    result.events_inconclusive = inconclusive
    result.decisions_joined, result.decisions_split, result.decisions_conflicting = (
        joined,
        split,
        conflicting,
    )
    return result


# --- link decisions handed back (docs/decisions.md) ------------------------------------------------
LINK_IN_FORCE = "decisions.link_in_force"  # written by satudata_pipeline.decisions.intake


def link_constraints(
    conn: duckdb.DuckDBPyConnection,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(must-link pairs, cannot-link pairs) of the link decisions in force whose two records are
    both in this delivery (a decision on a record that is gone waits for it)."""
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'decisions' "
        "AND table_name = 'link_in_force'"
    ).fetchall()[0][0]
    if not exists:
        return [], []
    rows = conn.execute(f"""
        SELECT d.unique_id_a, d.unique_id_b, d.same_person FROM {LINK_IN_FORCE} d
        SEMI JOIN link.person_records a ON a.unique_id = d.unique_id_a
        SEMI JOIN link.person_records b ON b.unique_id = d.unique_id_b
        ORDER BY 1, 2""").fetchall()
    return [(a, b) for a, b, s in rows if s], [(a, b) for a, b, s in rows if not s]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _cluster_of(conn: duckdb.DuckDBPyConnection, uids: set[str]) -> dict[str, str]:
    import pandas as pd

    conn.register("_lc_uids", pd.DataFrame({"unique_id": sorted(uids)}, dtype=object))
    try:
        return dict(
            conn.execute(
                "SELECT m.unique_id, m.cluster_id FROM _cc_main m SEMI JOIN _lc_uids u USING (unique_id)"
            ).fetchall()
        )
    finally:
        conn.unregister("_lc_uids")


def _relabel(conn: duckdb.DuckDBPyConnection, column: str, mapping: dict[str, str]) -> None:
    """Rewrite `_cc_main`'s cluster_id by `mapping` ({cluster_id or unique_id: new cluster_id})."""
    import pandas as pd

    if not mapping:
        return
    conn.register(
        "_lc_map",
        pd.DataFrame({"k": list(mapping), "new_id": list(mapping.values())}, dtype=object),
    )
    try:
        conn.execute(f"""
            CREATE OR REPLACE TEMP TABLE _cc_main AS
            SELECT m.unique_id, coalesce(n.new_id, m.cluster_id) AS cluster_id
            FROM _cc_main m LEFT JOIN _lc_map n ON n.k = m.{column}
        """)
    finally:
        conn.unregister("_lc_map")


def _apply_must_links(conn: duckdb.DuckDBPyConnection, must: list[tuple[str, str]]) -> int:
    """Join the clusters of every same-person pair; returns how many pairs were apart before."""
    if not must:
        return 0
    cluster = _cluster_of(conn, {u for pair in must for u in pair})
    uf = _UnionFind()
    joined = 0
    for a, b in must:
        if uf.find(cluster[a]) != uf.find(cluster[b]):
            joined += 1
        uf.union(cluster[a], cluster[b])
    # a cluster_id is the smallest unique_id of its cluster, so the smallest id of merged clusters is too
    _relabel(conn, "cluster_id", {c: uf.find(c) for c in set(cluster.values()) if uf.find(c) != c})
    return joined


def _apply_cannot_links(
    conn: duckdb.DuckDBPyConnection,
    must: list[tuple[str, str]],
    cannot: list[tuple[str, str]],
    threshold: float,
) -> tuple[int, int]:
    """Split every cluster holding both records of a not-same-person decision: its links (same-person
    decisions first, then stored links and sole-candidate assignments, strongest first) are added back
    one by one, skipping any that would join the two sides. Returns (pairs split, pairs left together
    because same-person decisions join them: a conflict between decisions)."""
    import pandas as pd

    if not cannot:
        return 0, 0
    cluster = _cluster_of(conn, {u for pair in cannot for u in pair})
    violated = [(a, b) for a, b in cannot if cluster[a] == cluster[b]]
    if not violated:
        return 0, 0
    affected = sorted({cluster[a] for a, _ in violated})
    conn.register("_lc_clusters", pd.DataFrame({"cluster_id": affected}, dtype=object))
    try:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE _lc_members AS "
            "SELECT unique_id, cluster_id FROM _cc_main SEMI JOIN _lc_clusters USING (cluster_id)"
        )
        members = conn.execute(
            "SELECT unique_id, cluster_id FROM _lc_members ORDER BY 1"
        ).fetchall()
        assignments = (
            "SELECT unique_id AS l, resident_unique_id AS r, coalesce(match_probability, 0.0) AS w "
            "FROM link.assignments"
        )
        edges = conn.execute(f"""
            WITH e AS (
                SELECT unique_id_l AS l, unique_id_r AS r,
                       CASE WHEN link_method = 'exact_nik' THEN 1.0 ELSE match_probability END AS w
                FROM link.match_pairs
                WHERE link_method = 'exact_nik' OR match_probability >= {float(threshold)}
                UNION ALL {assignments}
            )
            SELECT a.cluster_id, e.l, e.r, max(e.w) AS w
            FROM e JOIN _lc_members a ON a.unique_id = e.l
                   JOIN _lc_members b ON b.unique_id = e.r AND b.cluster_id = a.cluster_id
            GROUP BY ALL ORDER BY w DESC, e.l, e.r
        """).fetchall()
    finally:
        conn.unregister("_lc_clusters")
        conn.execute("DROP TABLE IF EXISTS _lc_members")
    in_scope = {u for u, _ in members}
    uf = _UnionFind()
    for u, _ in members:
        uf.find(u)
    for a, b in must:  # people's decisions are never cut
        if a in in_scope and b in in_scope:
            uf.union(a, b)
    conflicting = [(a, b) for a, b in violated if uf.find(a) == uf.find(b)]
    apart = [(a, b) for a, b in violated if uf.find(a) != uf.find(b)]
    for _c, left, right, _w in edges:
        rl, rr = uf.find(left), uf.find(right)
        if rl == rr:
            continue
        if any({uf.find(a), uf.find(b)} == {rl, rr} for a, b in apart):
            continue  # this link would put the two back together: cut
        uf.union(left, right)
    # new cluster ids: the smallest unique_id of each part
    parts: dict[str, str] = {}
    for u, _ in members:
        root = uf.find(u)
        parts[root] = min(parts.get(root, u), u)
    _relabel(conn, "unique_id", {u: parts[uf.find(u)] for u, _ in members})
    return len(apart), len(conflicting)


# A death / move record and another record of the person carry one name, strictly enough for the
# same NIK to identify: the same words (in any order) or a typing error (splink_settings.
# one_name_sql), or one name's words within the other when the shorter has at least two words.
# One word inside a longer name is not enough (KENZO's death record under a NIK mistyped into
# KENZO RIZKY's, born the same day in one kecamatan), nor Jaro-Winkler (KENZO / KENZO RIZKY: 0.89).
EVENT_NAMES_AGREE_SQL = f"""(
    {ss.one_name_sql("l.nama", "r.nama")}
    OR {ss.one_name_sql("l.nama_sorted", "r.nama_sorted")}
    OR (least(len(l.nama_tokens), len(r.nama_tokens)) >= 2
        AND len(list_intersect(l.nama_tokens, r.nama_tokens))
            = least(len(l.nama_tokens), len(r.nama_tokens)))
)"""

# Records that say a person died or left: they remove a roster row only through a conclusive tie.
EVENT_RECORD_SQL = """(r.kind IN ('death_registry', 'migration_registry')
    OR (r.kind = 'civil_registry' AND r.tanggal_meninggal IS NOT NULL))"""


def build_event_evidence(
    conn: duckdb.DuckDBPyConnection, min_probability: float = EVIDENCE_MIN_PROBABILITY
) -> tuple[int, int]:
    """(Re)create `link.event_evidence(unique_id, cluster_id, conclusive, tie, via_unique_id,
    probability_without_nik, evidence)`: for every death / move record (and civil record with a date
    of death) in a cluster with other records, its strongest tie to them. Conclusive ties:
    - `exact_nik`: the same valid NIK as another record of the person, birth dates not
      contradicting (equal, or one unknown) and one name (EVENT_NAMES_AGREE_SQL: stricter than
      the deterministic pass, which also takes one word inside a longer name);
    - `link`: a stored link whose probability WITHOUT the NIK's positive weight is at least
      `min_probability` (a NIK one digit apart is not evidence of identity), and the record does
      not carry a valid NIK that none of the person's records carries while they carry another
      (two valid NIKs one digit apart are as often two people: 0001 / 0002 born the same day);
    - `name_in_kelurahan` (a sole-candidate assignment by name): the same name (or the same words
      reordered) and the same known birth date as the one resident of the kelurahan it can be, and
      no second valid NIK.
    Anything else is a tie, not an identification: the record's death or move sends the roster row
    to review. `evidence` says which record and why, by source/record_id only (no name or NIK).
    Returns (conclusive, not conclusive) event records."""
    t = float(min_probability)
    p_wo = _without_nik_sql(conn)
    # the columns read here (a hand-built link.person_records may lack some: typed NULLs)
    have = {r[0] for r in conn.execute("DESCRIBE link.person_records").fetchall()}
    need = {
        "unique_id": "VARCHAR",
        "kind": "VARCHAR",
        "nik": "VARCHAR",
        "nik_valid": "BOOLEAN",
        "nama": "VARCHAR",
        "nama_sorted": "VARCHAR",
        "nama_tokens": "VARCHAR[]",
        "tanggal_lahir": "DATE",
        "tanggal_meninggal": "DATE",
    }
    records = "(SELECT {} FROM link.person_records)".format(
        ", ".join(c if c in have else f"NULL::{t} AS {c}" for c, t in need.items())
    )
    assignments = (
        "link.assignments"
        if _link_table_exists(conn, "assignments")
        else (
            "(SELECT NULL::VARCHAR AS unique_id, NULL::VARCHAR AS resident_unique_id, "
            "NULL::VARCHAR AS basis WHERE false)"
        )
    )
    conn.execute(f"""
        CREATE OR REPLACE TABLE link.event_evidence AS
        WITH ev0 AS (
            SELECT r.*, c.cluster_id
            FROM {records} r JOIN link.person_clusters c USING (unique_id)
            WHERE {EVENT_RECORD_SQL}
        ),
        sizes AS (
            SELECT cluster_id, count(*) AS n_cluster
            FROM link.person_clusters SEMI JOIN ev0 USING (cluster_id) GROUP BY cluster_id
        ),
        ev AS (SELECT * FROM ev0 JOIN sizes USING (cluster_id)),
        ev_m AS (SELECT * FROM ev WHERE n_cluster > 1),
        same_nik AS (   -- the same valid NIK on another record of the person, identity agreeing
            SELECT l.unique_id, r.unique_id AS via_unique_id, 'exact_nik' AS tie,
                   1.0::DOUBLE AS probability_without_nik, true AS conclusive, false AS niks_differ
            FROM ev_m l
            JOIN {records} r ON r.nik = l.nik AND r.unique_id <> l.unique_id
            JOIN link.person_clusters rc ON rc.unique_id = r.unique_id AND rc.cluster_id = l.cluster_id
            WHERE l.nik_valid AND r.nik_valid
              AND (l.tanggal_lahir IS NULL OR r.tanggal_lahir IS NULL
                   OR l.tanggal_lahir = r.tanggal_lahir)
              AND {EVENT_NAMES_AGREE_SQL}
        ),
        pairs AS (
            -- a deterministic pair that Splink did not score has no probability of its own
            -- (the same-NIK test above judges it)
            SELECT a, b, p_wo AS match_probability_without_nik
            FROM (SELECT unique_id_l AS a, unique_id_r AS b, {p_wo} AS p_wo
                  FROM link.match_pairs SEMI JOIN ev_m ON ev_m.unique_id = unique_id_l
                  UNION ALL
                  SELECT unique_id_r, unique_id_l, {p_wo}
                  FROM link.match_pairs SEMI JOIN ev_m ON ev_m.unique_id = unique_id_r)
            WHERE p_wo IS NOT NULL
        ),
        foreign_nik AS (   -- the record's valid NIK is on none of the person's other records,
                           -- which carry another valid NIK: another person's NIK (or a typo)
            SELECT l.unique_id
            FROM ev_m l
            JOIN link.person_clusters rc ON rc.cluster_id = l.cluster_id AND rc.unique_id <> l.unique_id
            JOIN {records} r ON r.unique_id = rc.unique_id AND r.nik_valid
            WHERE l.nik_valid
            GROUP BY l.unique_id
            HAVING bool_or(r.nik <> l.nik) AND NOT bool_or(r.nik = l.nik)
        ),
        linked AS (     -- stored links to another record of the person, judged without the NIK
            SELECT l.unique_id, r.unique_id AS via_unique_id,
                   CASE WHEN a.unique_id IS NOT NULL THEN 'sole_candidate_link' ELSE 'link' END AS tie,
                   p.match_probability_without_nik AS probability_without_nik,
                   p.match_probability_without_nik >= {t} AND f.unique_id IS NULL AS conclusive,
                   f.unique_id IS NOT NULL AS niks_differ
            FROM ev_m l
            LEFT JOIN foreign_nik f ON f.unique_id = l.unique_id
            JOIN pairs p ON p.a = l.unique_id
            JOIN link.person_clusters rc ON rc.unique_id = p.b AND rc.cluster_id = l.cluster_id
            JOIN {records} r ON r.unique_id = p.b
            LEFT JOIN {assignments} a ON a.unique_id = l.unique_id AND a.resident_unique_id = r.unique_id
        ),
        by_name AS (    -- joined as the sole resident of its kelurahan with that name
            SELECT l.unique_id, r.unique_id AS via_unique_id, 'name_in_kelurahan' AS tie,
                   NULL::DOUBLE AS probability_without_nik,
                   (l.nama = r.nama OR l.nama_sorted = r.nama_sorted)
                   AND l.tanggal_lahir IS NOT NULL AND l.tanggal_lahir = r.tanggal_lahir
                   AND NOT coalesce(l.nik_valid AND r.nik_valid AND l.nik <> r.nik, false)
                   AND f.unique_id IS NULL AS conclusive,
                   f.unique_id IS NOT NULL
                   OR coalesce(l.nik_valid AND r.nik_valid AND l.nik <> r.nik, false) AS niks_differ
            FROM ev_m l
            LEFT JOIN foreign_nik f ON f.unique_id = l.unique_id
            JOIN {assignments} a ON a.unique_id = l.unique_id AND a.basis = 'name_in_kelurahan'
            JOIN {records} r ON r.unique_id = a.resident_unique_id
        ),
        ties AS (SELECT * FROM same_nik UNION ALL SELECT * FROM linked UNION ALL SELECT * FROM by_name),
        best AS (
            SELECT unique_id,
                   arg_max({{'tie': tie, 'via': via_unique_id, 'p': probability_without_nik,
                             'conclusive': conclusive, 'niks_differ': niks_differ}},
                           {{'c': conclusive, 'e': tie = 'exact_nik',
                             'p': coalesce(probability_without_nik, 0), 'v': via_unique_id}}) AS b
            FROM ties GROUP BY unique_id
        )
        SELECT e.unique_id, e.cluster_id,
               coalesce(b.b.conclusive, false) AS conclusive,
               coalesce(b.b.tie, 'none') AS tie,
               b.b.via AS via_unique_id,
               b.b.p AS probability_without_nik,
               regexp_replace(e.unique_id, ':', '/') || ' ' || CASE
                   WHEN b.unique_id IS NULL
                       THEN 'has no link of its own to this person''s records'
                   WHEN b.b.tie = 'exact_nik'
                       THEN 'has the same valid NIK, birth date and name as '
                            || regexp_replace(b.b.via, ':', '/')
                   WHEN b.b.tie = 'name_in_kelurahan' AND b.b.conclusive
                       THEN 'has the same name and birth date as '
                            || regexp_replace(b.b.via, ':', '/')
                            || ', the only such resident of its kelurahan'
                   WHEN b.b.tie = 'name_in_kelurahan'
                       THEN 'was joined to ' || regexp_replace(b.b.via, ':', '/')
                            || ' as the only resident of its kelurahan with a similar name, but '
                            || CASE WHEN b.b.niks_differ
                                    THEN 'it carries another valid NIK'
                                    ELSE 'name and birth date are not both the same' END
                   ELSE (CASE WHEN b.b.tie = 'sole_candidate_link'
                              THEN 'was joined as the only candidate to '
                              ELSE 'is linked to ' END)
                        || regexp_replace(b.b.via, ':', '/') || ' with probability '
                        || printf('%.3f', b.b.p) || ' without the NIK'
                        || CASE WHEN b.b.conclusive THEN ''
                                WHEN b.b.niks_differ
                                    THEN ', but it carries a valid NIK that none of this person''s '
                                         || 'records carries (two valid NIKs a digit apart are '
                                         || 'often two people''s)'
                                ELSE ' (below ' || printf('%.2f', {t}) || ')' END
               END AS evidence
        FROM ev e LEFT JOIN best b USING (unique_id)
        WHERE e.n_cluster > 1
        ORDER BY e.unique_id
    """)
    conclusive, total = conn.execute(
        "SELECT count(*) FILTER (WHERE conclusive), count(*) FROM link.event_evidence"
    ).fetchall()[0]
    return int(conclusive), int(total - conclusive)


def _link_table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'link' "
            "AND table_name = ?",
            [table],
        ).fetchall()[0][0]
    )


# A move into a DKI kelurahan (a return, or a move from outside) carries no origin kelurahan; the
# person then lives at the destination, so that is the kelurahan to look in (the clean stage keeps
# kode_wilayah_tujuan as digits; a 10-digit DKI code is a kelurahan, written here in dotted form).
DKI_DESTINATION_KELURAHAN = """(CASE WHEN regexp_full_match(kode_wilayah_tujuan, '31[0-9]{8}')
    THEN regexp_replace(kode_wilayah_tujuan, '^(..)(..)(..)(....)$', '\\1.\\2.\\3.\\4') END)"""


# Roster and welfare rows left without a population-register row and without any stored link to one
# (the blocking rules never paired them, or a borrowed NIK pulled the score down): the resident of their
# own home (same street line and numbers, same kelurahan) with the same name or the same words
# reordered, no other sex, a birth date that agrees or is one digit / a day-month swap away (or is
# unknown), and a NIK that is absent, not valid, the resident's own, or borrowed (the NIK of
# another person of that kelurahan with another name: a parent's NIK on a child's KJP row). A ghost
# copying a real name and birth date at another address is no candidate: the home must be one.
HOME_NAME_CANDIDATE = (
    f"{ss.SAME_HOME} "
    "AND (jenis_kelamin_l IS NULL OR jenis_kelamin_r IS NULL OR jenis_kelamin_l = jenis_kelamin_r) "
    "AND (tanggal_lahir_l IS NULL OR tanggal_lahir_r IS NULL OR tanggal_lahir_l = tanggal_lahir_r "
    f"OR {ss.BIRTH_DATE_ONE_DIGIT} OR {ss.BIRTH_DATES_SWAPPED}) "
    "AND (nik_l IS NULL OR NOT nik_valid_l OR nik_l = nik_r OR borrowed_nik_l)"
)


def _assign_sole_candidates(conn: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Join each group of records left without a population-register row to its sole candidate
    resident: candidates by link first, by name only when there is no link candidate (conditions
    and why: `splink_settings`, EVENT_CANDIDATE and SOLE_LINK_SAME_HOME_KINDS). Rewrites
    `_cc_main`; writes `link.assignments(unique_id, resident_unique_id, basis, match_probability,
    cluster_id)` for the audit trail and `link.possible_deaths(unique_id, resident_unique_id,
    candidates)`. Returns (records assigned, death records left as possible deaths).

    Four steps, each testable alone on hand-made tables (test_link_clusters.py): find the lone
    groups, find their candidates, decide the sole ones (and the possible deaths), apply."""
    _find_lone_groups(conn)
    _find_candidates(conn)
    _decide_sole_candidates(conn)
    possible = _record_possible_deaths(conn)
    assigned = _apply_assignments(conn)
    for tmp in ("_sc_clusters", "_sc_lone", "_sc_home", "_sc_only", "_sc_candidates", "_sc_assign"):
        conn.execute(f"DROP TABLE IF EXISTS {tmp}")
    return assigned, possible


def _find_lone_groups(conn: duckdb.DuckDBPyConnection) -> None:
    """Which clusters of `_cc_main` hold a population-register (civil) or death record
    (`_sc_clusters`), and the records of the clusters without a civil one (`_sc_lone`): the groups
    that look for a resident."""
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


def _find_home_rows(conn: duckdb.DuckDBPyConnection, same_home_kinds: str) -> None:
    """`_sc_home`: lone roster / welfare rows (SOLE_LINK_SAME_HOME_KINDS) the model linked to no
    civil record at all, each with `borrowed_nik` (its valid NIK is another kelurahan resident's,
    under another name): the rows HOME_NAME_CANDIDATE may join to a resident of their own home."""
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sc_home AS
        WITH lone AS (
            SELECT e.*, s.lone_cluster
            FROM link.person_records e JOIN _sc_lone s USING (unique_id)
            WHERE e.kind IN ({same_home_kinds}) AND e.nama IS NOT NULL
        ),
        linked AS (
            SELECT p.unique_id_l AS unique_id, p.unique_id_r AS other
            FROM link.match_pairs p SEMI JOIN lone k ON k.unique_id = p.unique_id_l
            UNION ALL
            SELECT p.unique_id_r, p.unique_id_l
            FROM link.match_pairs p SEMI JOIN lone k ON k.unique_id = p.unique_id_r
        ),
        -- only rows the model linked to no resident at all (a link elsewhere decides: no)
        to_civil AS (
            SELECT DISTINCT l.unique_id FROM linked l
            JOIN link.person_records o ON o.unique_id = l.other AND o.kind = 'civil_registry'
        )
        SELECT k.*,
               -- a valid NIK that another person of the kelurahan carries under another name
               k.nik_valid AND EXISTS (
                   SELECT 1 FROM link.person_records f
                   WHERE f.nik = k.nik AND f.kind = 'civil_registry'
                     AND f.kode_kelurahan = k.kode_kelurahan AND f.nama_sorted <> k.nama_sorted
               ) AS borrowed_nik
        FROM lone k ANTI JOIN to_civil USING (unique_id)
    """)


def _find_only_links(conn: duckdb.DuckDBPyConnection, same_home_kinds: str) -> None:
    """`_sc_only(unique_id, resident_unique_id)`: lone roster / welfare rows and the resident each
    is the only candidate of, both ways (`ss.ONLY_LINK_MIN_PROBABILITY`): the row's one stored
    link to a population-register record, which is also the resident's one link to the row's
    source, at that probability without the NIK, and no row of that source in the resident's
    person yet. Such a link may join two homes (`_find_candidates`, basis `only_link`). Only in a
    delivery without NIK (`matching.valid_nik_share` below `ss.SPARSE_ID_NIK_SHARE`, as for the
    sparse-identifier blocking); otherwise the table is empty."""
    if valid_nik_share(conn) >= ss.SPARSE_ID_NIK_SHARE:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE _sc_only (unique_id VARCHAR, resident_unique_id VARCHAR)"
        )
        return
    p_wo = _without_nik_sql(conn, "p.")
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sc_to_civil AS
        WITH lone AS (
            SELECT r.unique_id, r.source FROM link.person_records r SEMI JOIN _sc_lone s USING (unique_id)
            WHERE r.kind IN ({same_home_kinds})
        ),
        links AS (
            SELECT p.unique_id_l AS a, p.unique_id_r AS b, {p_wo} AS p_wo
            FROM link.match_pairs p SEMI JOIN lone k ON k.unique_id = p.unique_id_l
            UNION ALL
            SELECT p.unique_id_r, p.unique_id_l, {p_wo}
            FROM link.match_pairs p SEMI JOIN lone k ON k.unique_id = p.unique_id_r
        )
        SELECT l.unique_id, l.source, x.b AS resident_unique_id, x.p_wo
        FROM lone l JOIN links x ON x.a = l.unique_id
        JOIN link.person_records c ON c.unique_id = x.b AND c.kind = 'civil_registry'
        QUALIFY count(*) OVER (PARTITION BY l.unique_id) = 1   -- its one population-register link
    """)
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sc_only AS
        WITH back AS (   -- the resident's links to records of the row's source
            SELECT p.unique_id_l AS a, p.unique_id_r AS b
            FROM link.match_pairs p SEMI JOIN _sc_to_civil k ON k.resident_unique_id = p.unique_id_l
            UNION ALL
            SELECT p.unique_id_r, p.unique_id_l
            FROM link.match_pairs p SEMI JOIN _sc_to_civil k ON k.resident_unique_id = p.unique_id_r
        ),
        back_n AS (
            SELECT t.unique_id, count(*) AS n
            FROM _sc_to_civil t JOIN back y ON y.a = t.resident_unique_id
            JOIN link.person_records o ON o.unique_id = y.b AND o.source = t.source
            GROUP BY t.unique_id
        ),
        taken AS (   -- the resident's person already holds a row of that source
            SELECT DISTINCT t.unique_id
            FROM _sc_to_civil t JOIN _cc_main rm ON rm.unique_id = t.resident_unique_id
            JOIN _cc_main om ON om.cluster_id = rm.cluster_id
            JOIN link.person_records o ON o.unique_id = om.unique_id AND o.source = t.source
        )
        SELECT t.unique_id, t.resident_unique_id
        FROM _sc_to_civil t JOIN back_n b USING (unique_id)
        WHERE b.n = 1 AND t.p_wo >= {float(ss.ONLY_LINK_MIN_PROBABILITY)}
          AND t.unique_id NOT IN (SELECT unique_id FROM taken)
    """)
    conn.execute("DROP TABLE IF EXISTS _sc_to_civil")


def _find_candidates(conn: duckdb.DuckDBPyConnection) -> None:
    """`_sc_candidates(unique_id, kind, lone_cluster, resident_unique_id, basis, match_probability,
    resident_cluster)`: every resident a lone record could be, by name in the kelurahan (events),
    by name at home (roster / welfare rows, `_find_home_rows`) or by a stored link (for roster /
    welfare rows: within their home, basis `link`, or as each other's only candidate,
    `_find_only_links`, basis `only_link`). A resident with a death record is no death's
    candidate; a group with any link candidate keeps only those."""
    by_name = []
    for kind, condition in ss.EVENT_CANDIDATE.items():
        by_name.append(f"""
            SELECT l.unique_id, l.kind, l.lone_cluster, r.unique_id AS resident_unique_id,
                   'name_in_kelurahan' AS basis, NULL::DOUBLE AS match_probability,
                   NULL::DOUBLE AS match_weight
            FROM (SELECT e.* REPLACE (coalesce(e.kode_kelurahan, {DKI_DESTINATION_KELURAHAN}) AS kode_kelurahan),
                         s.lone_cluster
                  FROM link.person_records e JOIN _sc_lone s USING (unique_id)
                  WHERE e.kind = '{kind}' AND e.nama IS NOT NULL) l
            JOIN link.person_records r ON r.kode_kelurahan = l.kode_kelurahan AND r.kind = 'civil_registry'
            WHERE {ss.as_join_sql(condition)}""")
    same_home_kinds = ", ".join(f"'{k}'" for k in ss.SOLE_LINK_SAME_HOME_KINDS)
    _find_home_rows(conn, same_home_kinds)
    by_name.append(f"""
            SELECT l.unique_id, l.kind, l.lone_cluster, r.unique_id AS resident_unique_id,
                   'name_at_home' AS basis, NULL::DOUBLE AS match_probability,
                   NULL::DOUBLE AS match_weight
            FROM _sc_home l
            -- the home's kelurahan (SAME_HOME): the same code, or where neither record has a code,
            -- the delivered name; joined on name and code, not on the name alone (SITI: thousands)
            JOIN link.person_records r ON r.nama_sorted = l.nama_sorted AND r.kind = 'civil_registry'
             AND coalesce(r.kode_kelurahan, '') = coalesce(l.kode_kelurahan, '')
            WHERE {ss.as_join_sql(HOME_NAME_CANDIDATE)}""")
    _find_only_links(conn, same_home_kinds)
    same_home = f"(l.kind NOT IN ({same_home_kinds}) OR ({ss.as_join_sql(ss.SAME_HOME)}))"
    p_wo = _without_nik_sql(conn, "p.")
    by_link = [
        f"""
            SELECT l.unique_id, l.kind, s.lone_cluster, r.unique_id AS resident_unique_id,
                   CASE WHEN {same_home} THEN 'link' ELSE 'only_link' END AS basis,
                   p.match_probability,
                   -- the link's weight without the NIK's positive weight (a NIK shared with a
                   -- namesake of the home under another name is borrowed, not evidence); an
                   -- exact-NIK link scored by no model outweighs every scored one
                   CASE WHEN {p_wo} IS NOT NULL
                        THEN least(log2({p_wo}) - log2(1 - {p_wo}), {_MAX_WEIGHT})
                        WHEN p.link_method = 'exact_nik' THEN {_MAX_WEIGHT} END AS match_weight
            FROM link.match_pairs p
            JOIN _sc_lone s ON s.unique_id = p.{mine}
            JOIN link.person_records l ON l.unique_id = p.{mine}
            JOIN link.person_records r ON r.unique_id = p.{other}
            LEFT JOIN _sc_only o ON o.unique_id = l.unique_id AND o.resident_unique_id = r.unique_id
            WHERE {same_home} OR o.unique_id IS NOT NULL"""
        for mine, other in (("unique_id_l", "unique_id_r"), ("unique_id_r", "unique_id_l"))
    ]
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sc_candidates AS
        WITH home_groups AS (   -- lone groups of roster and welfare rows only (no event record)
            SELECT s.lone_cluster FROM _sc_lone s JOIN link.person_records r USING (unique_id)
            GROUP BY s.lone_cluster HAVING bool_and(r.kind IN ({same_home_kinds}))
        )
        SELECT c.*, rm.cluster_id AS resident_cluster,
               c.lone_cluster IN (SELECT lone_cluster FROM home_groups) AS home_group
        FROM ({" UNION ALL ".join([*by_name, *by_link])}) c
        JOIN _cc_main rm ON rm.unique_id = c.resident_unique_id
        JOIN _sc_clusters rc ON rc.cluster_id = rm.cluster_id AND rc.has_civil
        -- a person dies once: a resident with a death record is nobody's candidate for another
        WHERE NOT (c.kind = 'death_registry' AND rc.has_death)
          -- an only-link places a group of roster and welfare rows only (a death follows no row)
          AND (c.basis <> 'only_link' OR c.lone_cluster IN (SELECT lone_cluster FROM home_groups))
        -- the model's links outrank the name rule: a group with any link candidate is decided
        -- on its links alone (an exact-birth-date link beats a namesake one digit off)
        QUALIFY c.basis IN ('link', 'only_link')
             OR NOT bool_or(c.basis IN ('link', 'only_link')) OVER (PARTITION BY c.lone_cluster)
    """)


def _decide_sole_candidates(conn: duckdb.DuckDBPyConnection) -> None:
    """`_sc_assign(unique_id, lone_cluster, resident_cluster, resident_unique_id, basis,
    match_probability)`: the records of every lone group whose candidates, all together, are one
    resident cluster. A group of roster and welfare rows whose candidates are links to two or more
    residents goes to the one its links favour by at least `ss.DOMINANT_LINK_MARGIN` bits over
    every other (basis `dominant_link`); any other group with two or more candidates stays alone."""
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sc_assign AS
        WITH sole AS (   -- groups whose records, all together, point at one resident
            SELECT lone_cluster, min(resident_cluster) AS resident_cluster
            FROM _sc_candidates GROUP BY lone_cluster
            HAVING count(DISTINCT resident_cluster) = 1
        ),
        per_resident AS (   -- a home group's strongest link to each candidate resident
            SELECT lone_cluster, resident_cluster, max(match_weight) AS w
            FROM _sc_candidates
            WHERE home_group AND basis = 'link' AND lone_cluster NOT IN (SELECT lone_cluster FROM sole)
            GROUP BY ALL
        ),
        dominant AS (   -- the first resident outweighs the second by the margin
            SELECT lone_cluster, arg_max(resident_cluster, w) AS resident_cluster
            FROM per_resident GROUP BY lone_cluster
            HAVING count(*) >= 2 AND count(w) = count(*)
               AND max(w) - list_sort(list(w), 'DESC')[2] >= {float(ss.DOMINANT_LINK_MARGIN)}
        ),
        chosen AS (
            SELECT lone_cluster, resident_cluster, false AS by_margin FROM sole
            UNION ALL SELECT lone_cluster, resident_cluster, true FROM dominant
        )
        SELECT c.unique_id, c.lone_cluster, c.resident_cluster,
               -- the strongest link's resident record (ties, and name candidates: smallest id)
               arg_min(c.resident_unique_id, {{'w': -coalesce(c.match_probability, 0),
                                               'id': c.resident_unique_id}}) AS resident_unique_id,
               -- one basis per group (links outrank names)
               CASE WHEN any_value(h.by_margin) THEN 'dominant_link' ELSE min(c.basis) END
                   AS basis,
               max(c.match_probability) AS match_probability
        FROM _sc_candidates c JOIN chosen h USING (lone_cluster, resident_cluster)
        GROUP BY c.unique_id, c.lone_cluster, c.resident_cluster
    """)


def _record_possible_deaths(conn: duckdb.DuckDBPyConnection) -> int:
    """`link.possible_deaths(unique_id, resident_unique_id, candidates)`: a death record that points
    at two or more residents (namesakes, no NIK or birth date to tell them apart) is not assigned;
    with at most POSSIBLE_DEATH_MAX_CANDIDATES of them, each is a possible death for a person to
    check. Returns the number of death records listed."""
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
    return int(scalar(conn, "SELECT count(DISTINCT unique_id) FROM link.possible_deaths"))


def _apply_assignments(conn: duckdb.DuckDBPyConnection) -> int:
    """Merge each assigned lone group into its resident's cluster in `_cc_main` (the merged
    cluster keeps the smallest id of its parts) and write the audit trail `link.assignments`.
    Returns the number of lone records assigned."""
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
    placed = ", ".join(f"'{b}'" for b in ss.PLACED_NOT_IDENTIFIED)
    conn.execute(f"""
        CREATE OR REPLACE TABLE link.assignments AS
        SELECT a.unique_id, a.resident_unique_id, a.basis, a.match_probability, m.cluster_id
        FROM _sc_assign a JOIN _cc_main m ON m.unique_id = a.unique_id
        UNION ALL
        -- the other rows of a group placed without identifying it are placed with it, not
        -- identified through it (a KJP row linked to a DTKS row placed by an only-link)
        SELECT s.unique_id, g.resident_unique_id, g.basis, g.match_probability, m.cluster_id
        FROM _sc_lone s
        JOIN (SELECT lone_cluster, min(basis) AS basis,
                     arg_max(resident_unique_id, coalesce(match_probability, 0)) AS resident_unique_id,
                     max(match_probability) AS match_probability
              FROM _sc_assign WHERE basis IN ({placed}) GROUP BY lone_cluster) g USING (lone_cluster)
        JOIN _cc_main m ON m.unique_id = s.unique_id
        WHERE s.unique_id NOT IN (SELECT unique_id FROM _sc_assign)
        ORDER BY 1
    """)
    return int(
        scalar(
            conn,
            """SELECT count(*) FROM _sc_lone SEMI JOIN (SELECT DISTINCT lone_cluster FROM _sc_assign) a
            USING (lone_cluster)""",
        )
    )


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
    return ClusterResult(
        int(n_records),
        int(n_clusters),
        int(max_size),
        reclustered,
        size_distribution={str(b): int(c) for b, c in rows},
    )
