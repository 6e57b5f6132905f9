"""Survivorship: one golden record per person, in DuckDB SQL (window ranks + arg_min / QUALIFY).

Source trust, per attribute group:
- identity (nik, nama, jenis_kelamin, tanggal_lahir, tempat_lahir, no_kk): the civil registry
  where the person has a civil record, else the most recently verified record
  (`tanggal_pemutakhiran`); each field falls back down that order when the preferred record
  lacks it. The NIK prefers a structurally valid NIK over an invalid one.
- address (alamat .. kode_kota): the most recently verified record carrying an address.
- life status: a death-registry record (else a civil record with a date of death) => not alive;
  a death record that could be this person or a namesake (link.possible_deaths) =>
  `possible_death_evidence`, for a person to check. `death_conclusive`: the death record
  identifies this person (link.event_evidence: same valid NIK and identity, or a strong link
  without the NIK); a conclusive record is preferred over one that is not; `death_link` says how
  it is tied, in words (source/record_id only).
- domicile: the latest registered move (tanggal_pindah); destination not starting with 31 =>
  no longer in DKI. No move => in DKI. `move_conclusive` / `move_link` as for deaths.
- welfare (desil, disabilitas, punya_mobil, njop_di_atas_1m): the welfare record with the latest
  tanggal_pemutakhiran; `disabilitas_any` over all welfare records.
- last_verified: the latest tanggal_pemutakhiran over all records.
- conflict_flags: `multiple_valid_nik`, `multiple_birth_dates`.
Ties are broken by unique_id, so the result is deterministic.
"""

from __future__ import annotations

import duckdb

from satudata_pipeline.warehouse import scalar, table_exists

GOLDEN_SQL = """
WITH r AS (
    SELECT p.*, ids.person_id,
           coalesce(p.tanggal_pemutakhiran, DATE '1900-01-01') AS verified_key,
           row_number() OVER (
               PARTITION BY ids.person_id
               ORDER BY (p.kind = 'civil_registry') DESC,
                        coalesce(p.tanggal_pemutakhiran, DATE '1900-01-01') DESC, p.unique_id
           ) AS identity_rank
    FROM link.person_records p
    JOIN link.person_clusters c USING (unique_id)
    JOIN {ids_table} ids USING (cluster_id)
),
identity AS (
    SELECT person_id,
           coalesce(arg_min(nik, identity_rank) FILTER (WHERE nik_valid),
                    arg_min(nik, identity_rank) FILTER (WHERE nik IS NOT NULL)) AS nik,
           arg_min(nama, identity_rank) FILTER (WHERE nama IS NOT NULL) AS nama,
           arg_min(jenis_kelamin, identity_rank) FILTER (WHERE jenis_kelamin IS NOT NULL)
               AS jenis_kelamin,
           arg_min(tanggal_lahir, identity_rank) FILTER (WHERE tanggal_lahir IS NOT NULL)
               AS tanggal_lahir,
           arg_min(tempat_lahir, identity_rank) FILTER (WHERE tempat_lahir IS NOT NULL)
               AS tempat_lahir,
           arg_min(no_kk, identity_rank) FILTER (WHERE no_kk IS NOT NULL) AS no_kk,
           bool_or(kind = 'civil_registry') AS in_civil_registry,
           bool_or(kind = 'welfare_registry') AS in_welfare_registry,
           max(tanggal_pemutakhiran) AS last_verified,
           count(*)::INTEGER AS n_records,
           count(DISTINCT nik) FILTER (WHERE nik_valid) AS n_valid_nik,
           count(DISTINCT tanggal_lahir) AS n_birth_dates
    FROM r GROUP BY person_id
),
address AS (
    SELECT person_id, alamat, rt, rw, kelurahan, kecamatan, kota,
           kode_kelurahan, kode_kecamatan, kode_kota
    FROM r
    WHERE alamat IS NOT NULL OR kode_kelurahan IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY person_id ORDER BY verified_key DESC,
                               (alamat IS NOT NULL AND kode_kelurahan IS NOT NULL) DESC,
                               unique_id) = 1
),
death AS (
    SELECT person_id, tanggal_meninggal, source || '/' || record_id AS death_evidence,
           coalesce(ev.conclusive, {conclusive_default}) AS death_conclusive,
           ev.evidence AS death_link
    FROM r LEFT JOIN {event_evidence} ev USING (unique_id)
    WHERE kind = 'death_registry' OR (kind = 'civil_registry' AND tanggal_meninggal IS NOT NULL)
    QUALIFY row_number() OVER (PARTITION BY person_id
                               ORDER BY coalesce(ev.conclusive, {conclusive_default}) DESC,
                                        (kind = 'death_registry') DESC,
                                        (tanggal_meninggal IS NOT NULL) DESC,
                                        verified_key DESC, unique_id) = 1
),
move AS (
    SELECT person_id, tanggal_pindah, kode_wilayah_tujuan,
           coalesce(pindah_keluar_dki, NOT starts_with(kode_wilayah_tujuan, '31')) AS keluar,
           source || '/' || record_id AS move_evidence,
           coalesce(ev.conclusive, {conclusive_default}) AS move_conclusive,
           ev.evidence AS move_link
    FROM r LEFT JOIN {event_evidence} ev USING (unique_id)
    WHERE kind = 'migration_registry'
    QUALIFY row_number() OVER (PARTITION BY person_id
                               ORDER BY coalesce(tanggal_pindah, DATE '1900-01-01') DESC,
                                        verified_key DESC, unique_id) = 1
),
possible_death AS (   -- a death record that names this person or a namesake (link/clusters.py)
    SELECT r.person_id,
           string_agg(DISTINCT regexp_replace(pd.unique_id, ':', '/') || ' (one of '
                      || pd.candidates || ' residents it can be)', '; ') AS possible_death_evidence
    FROM {possible_deaths} pd JOIN r ON r.unique_id = pd.resident_unique_id
    GROUP BY r.person_id
),
welfare AS (
    SELECT person_id, desil, disabilitas, punya_mobil, njop_di_atas_1m,
           source || '/' || record_id AS welfare_evidence,
           tanggal_pemutakhiran AS welfare_verified,
           bool_or(disabilitas) OVER (PARTITION BY person_id) AS disabilitas_any
    FROM r
    WHERE kind = 'welfare_registry'
    QUALIFY row_number() OVER (PARTITION BY person_id ORDER BY verified_key DESC, unique_id) = 1
)
SELECT i.person_id,
       i.nik, i.nama, i.jenis_kelamin, i.tanggal_lahir, i.tempat_lahir, i.no_kk,
       a.alamat, a.rt, a.rw, a.kelurahan, a.kecamatan, a.kota,
       a.kode_kelurahan, a.kode_kecamatan, a.kode_kota,
       coalesce(i.in_civil_registry, false) AS in_civil_registry,
       coalesce(i.in_welfare_registry, false) AS in_welfare_registry,
       d.person_id IS NULL AS is_alive,
       d.tanggal_meninggal, d.death_evidence, d.death_conclusive, d.death_link,
       CASE WHEN d.person_id IS NULL THEN pd.possible_death_evidence END AS possible_death_evidence,
       NOT coalesce(m.keluar, false) AS tinggal_di_dki,
       m.tanggal_pindah, m.kode_wilayah_tujuan, m.move_evidence, m.move_conclusive, m.move_link,
       w.desil, w.disabilitas, w.punya_mobil, w.njop_di_atas_1m,
       w.welfare_evidence, w.welfare_verified,
       coalesce(w.disabilitas_any, false) AS disabilitas_any,
       i.last_verified,
       i.n_records,
       list_filter([CASE WHEN i.n_valid_nik > 1 THEN 'multiple_valid_nik' END,
                    CASE WHEN i.n_birth_dates > 1 THEN 'multiple_birth_dates' END],
                   lambda x: x IS NOT NULL)::VARCHAR[] AS conflict_flags
FROM identity i
LEFT JOIN address a USING (person_id)
LEFT JOIN death d USING (person_id)
LEFT JOIN possible_death pd USING (person_id)
LEFT JOIN move m USING (person_id)
LEFT JOIN welfare w USING (person_id)
ORDER BY i.person_id
"""


def build_golden_person(
    conn: duckdb.DuckDBPyConnection,
    target: str = "main.golden_person",
    ids_table: str = "golden.person_ids",
) -> int:
    """(Re)create `target` from person records, clusters and `ids_table` (the pipeline writes
    `staging.golden_person` from `staging.person_ids`; the publish step copies it to main)."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {target.split('.')[0]}")
    possible_deaths = _table_or_empty(
        conn,
        "link",
        "possible_deaths",
        {"unique_id": "VARCHAR", "resident_unique_id": "VARCHAR", "candidates": "BIGINT"},
    )
    event_evidence, conclusive_default = event_evidence_relation(conn)
    conn.execute(
        f"CREATE OR REPLACE TABLE {target} AS "
        + GOLDEN_SQL.format(
            ids_table=ids_table,
            possible_deaths=possible_deaths,
            event_evidence=event_evidence,
            conclusive_default=conclusive_default,
        )
    )
    return scalar(conn, f"SELECT count(*) FROM {target}")


def event_evidence_relation(conn: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """(`link.event_evidence` or an empty stand-in, the conclusiveness of a death or move record
    that has no row there). A record without a row is alone in its cluster (it concerns nobody) or
    comes from a warehouse built before the table, which trusted every death and move as before."""
    if table_exists(conn, "link.event_evidence"):
        return "link.event_evidence", "false"
    return (
        "(SELECT NULL::VARCHAR AS unique_id, NULL::BOOLEAN AS conclusive, "
        "NULL::VARCHAR AS evidence WHERE false)",
        "true",
    )


def _table_or_empty(
    conn: duckdb.DuckDBPyConnection, schema: str, table: str, columns: dict[str, str]
) -> str:
    """`schema.table`, or an empty relation with `columns` where the table does not exist (a
    warehouse built before that link table, or a hand-built one in tests)."""
    if table_exists(conn, f"{schema}.{table}"):
        return f"{schema}.{table}"
    cols = ", ".join(f"NULL::{typ} AS {name}" for name, typ in columns.items())
    return f"(SELECT {cols} WHERE false)"


def build_person_source_link(
    conn: duckdb.DuckDBPyConnection,
    target: str = "main.person_source_link",
    ids_table: str = "golden.person_ids",
) -> int:
    """(Re)create `target`: every person record + every quarantined row."""
    quarantine = ""
    if table_exists(conn, "clean.quarantine"):
        quarantine = """
        UNION ALL
        SELECT CAST(q.source AS VARCHAR), CAST(q.record_id AS VARCHAR),
               CAST(q.source AS VARCHAR) || ':' || coalesce(CAST(q.record_id AS VARCHAR), ''),
               NULL::VARCHAR, 'quarantined', NULL::DOUBLE
        FROM clean.quarantine q
        """
    # records joined to their sole candidate resident (link/clusters.py) say so
    assigned = _table_or_empty(
        conn,
        "link",
        "assignments",
        {"unique_id": "VARCHAR", "basis": "VARCHAR", "match_probability": "DOUBLE"},
    )
    conn.execute(f"""
        CREATE OR REPLACE TABLE {target} AS
        WITH c AS (
            SELECT c.unique_id, c.cluster_id, ids.person_id,
                   count(*) OVER (PARTITION BY c.cluster_id) AS cluster_size
            FROM link.person_clusters c JOIN {ids_table} ids USING (cluster_id)
        ),
        e AS (   -- links inside the final cluster, seen from both ends
            SELECT p.unique_id_l AS unique_id, p.link_method, p.match_probability
            FROM link.match_pairs p
            JOIN c cl ON cl.unique_id = p.unique_id_l
            JOIN c cr ON cr.unique_id = p.unique_id_r AND cr.cluster_id = cl.cluster_id
            UNION ALL
            SELECT p.unique_id_r, p.link_method, p.match_probability
            FROM link.match_pairs p
            JOIN c cl ON cl.unique_id = p.unique_id_l
            JOIN c cr ON cr.unique_id = p.unique_id_r AND cr.cluster_id = cl.cluster_id
        ),
        best AS (
            SELECT unique_id,
                   bool_or(link_method = 'exact_nik') AS has_exact,
                   max(match_probability) AS match_probability
            FROM e GROUP BY unique_id
        )
        SELECT r.source, r.record_id, r.unique_id, c.person_id,
               CASE WHEN c.cluster_size = 1 THEN 'singleton'
                    -- placed, not identified (link/clusters.py): with the resident its links
                    -- favour a thousand to one, or the resident it is the only candidate of
                    -- (also a row joined to such a row, whatever links it to that row)
                    WHEN a.basis IN ('dominant_link', 'only_link') THEN a.basis
                    WHEN b.has_exact THEN 'exact_nik'
                    WHEN a.unique_id IS NOT NULL THEN 'sole_candidate'
                    WHEN b.unique_id IS NULL THEN 'singleton'
                    ELSE 'probabilistic' END AS link_method,
               CASE WHEN c.cluster_size = 1 THEN NULL
                    WHEN a.unique_id IS NOT NULL AND NOT coalesce(b.has_exact, false)
                        THEN a.match_probability
                    ELSE b.match_probability END AS match_probability
        FROM link.person_records r JOIN c USING (unique_id)
        LEFT JOIN best b USING (unique_id)
        LEFT JOIN {assigned} a USING (unique_id)
        {quarantine}
        ORDER BY 1, 2, 3
    """)
    return scalar(conn, f"SELECT count(*) FROM {target}")
