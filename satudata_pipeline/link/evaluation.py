"""Pairwise precision / recall / F1 of `link.person_clusters` against a truth table.

Pairs are counted by combinatorics per group (n*(n-1)/2), never listed:
- predicted pairs: per cluster; true pairs: per true person; true positives: per
  (cluster, person) intersection.
The "no valid NIK" scores count only pairs with at least one record without a valid NIK:
for a group of n records of which k have a valid NIK, that is C(n,2) - C(k,2).
"""

from __future__ import annotations

import duckdb
import pandas as pd

from satudata_pipeline.warehouse import scalar


def _ratio(a: float, b: float) -> float:
    return float(a) / float(b) if b else 1.0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if (p + r) else 0.0


def pairwise_scores(
    conn: duckdb.DuckDBPyConnection,
    truth: pd.DataFrame,
    clusters_table: str = "link.person_clusters",
) -> dict:
    """truth: DataFrame[source, record_id, person_key]. Only records present in both the truth and
    `clusters_table` are scored.

    clusters_table: any table or view with columns (unique_id, cluster_id), e.g. another linker's
    clusters (the benchmark scores a bare-Splink baseline this way); `nik_valid` is still taken
    from `link.person_records`."""
    t = truth[["source", "record_id", "person_key"]].astype(str)
    conn.register("_truth_df", t)
    try:
        rows = conn.execute(f"""
            WITH j AS (
                SELECT c.cluster_id, t.person_key,
                       coalesce(r.nik_valid, false) AS nik_valid
                FROM {clusters_table} c
                JOIN _truth_df t ON c.unique_id = t.source || ':' || t.record_id
                LEFT JOIN link.person_records r ON r.unique_id = c.unique_id
            ),
            g AS (
                SELECT 'pred' AS kind, cluster_id AS k1, NULL AS k2,
                       count(*) AS n, count(*) FILTER (WHERE nik_valid) AS v
                FROM j GROUP BY cluster_id
                UNION ALL
                SELECT 'true', person_key, NULL, count(*), count(*) FILTER (WHERE nik_valid)
                FROM j GROUP BY person_key
                UNION ALL
                SELECT 'tp', cluster_id, person_key, count(*), count(*) FILTER (WHERE nik_valid)
                FROM j GROUP BY cluster_id, person_key
            )
            SELECT kind,
                   sum(n * (n - 1) / 2)::DOUBLE AS pairs,
                   sum(n * (n - 1) / 2 - v * (v - 1) / 2)::DOUBLE AS pairs_no_nik
            FROM g GROUP BY kind
        """).fetchall()
        n_records = scalar(
            conn,
            f"""
            SELECT count(*) FROM {clusters_table} c
            JOIN _truth_df t ON c.unique_id = t.source || ':' || t.record_id
        """,
        )
    finally:
        conn.unregister("_truth_df")
    d = {k: (p or 0.0, q or 0.0) for k, p, q in rows}
    pred, true, tp = d.get("pred", (0, 0)), d.get("true", (0, 0)), d.get("tp", (0, 0))
    precision, recall = _ratio(tp[0], pred[0]), _ratio(tp[0], true[0])
    precision_nn, recall_nn = _ratio(tp[1], pred[1]), _ratio(tp[1], true[1])
    return {
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "precision_no_valid_nik": precision_nn,
        "recall_no_valid_nik": recall_nn,
        "f1_no_valid_nik": _f1(precision_nn, recall_nn),
        "true_pairs": int(true[0]),
        "predicted_pairs": int(pred[0]),
        "true_positive_pairs": int(tp[0]),
        "records_scored": int(n_records),
    }
