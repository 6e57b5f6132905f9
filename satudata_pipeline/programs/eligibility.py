"""Eligible but not enrolled: people who meet a program's rules and hold no row in its roster.

Per docs/verdict-rules.md: alive and in DKI at the snapshot, in a welfare registry with desil within the
program's cut-off, without the excluded asset flags, meeting the program's age (and disability)
condition, and with no row in that program's roster nor in a program that excludes it. Ranked per
program by desil (lowest first), then age (youngest first), then person_id.

Program-specific targeting from the rules:
- `target_groups` (PKH): a person qualifies through any one group (its age range and/or disability).
- `household_of` (PANGAN): the person's family card (no_kk) holds a *kept* recipient of one of the
  listed programs, or the person is one.

Rows are written to `programs.eligible_not_enrolled`; the table is an internal working list for the
program offices, so it does carry desil (never exported to the offices' files).
"""

from __future__ import annotations

from datetime import date

import duckdb

from satudata_pipeline.contract.program_rules import AgeRange, ProgramRules
from satudata_pipeline.contract.schema import GOLDEN_PERSON_READ, require_columns
from satudata_pipeline.programs.verdicts import (
    STAGE,
    age_sql,
    golden_table,
    mask_nik_sql,
    register_rules,
    review_table,
    sql_list,
    sql_str,
)

ELIGIBLE_TABLE = "programs.eligible_not_enrolled"

ELIGIBLE_COLUMNS: dict[str, str] = {
    "program": "VARCHAR",
    "peringkat": "BIGINT",
    "person_id": "VARCHAR",
    "target_group": "VARCHAR",
    "umur": "INTEGER",
    "desil": "INTEGER",
    "nominal_bulanan": "BIGINT",
    "kode_kota": "VARCHAR",
    "kode_kecamatan": "VARCHAR",
    "kode_kelurahan": "VARCHAR",
    "nik_masked": "VARCHAR",
    "nama": "VARCHAR",
    "last_verified": "DATE",
    "stale_record": "BOOLEAN",
    "snapshot_date": "DATE",
}


def _age_cond(age: AgeRange | None) -> str:
    if age is None or (age.min is None and age.max is None):
        return "TRUE"
    parts = ["umur IS NOT NULL"]
    if age.min is not None:
        parts.append(f"umur >= {int(age.min)}")
    if age.max is not None:
        parts.append(f"umur <= {int(age.max)}")
    return "(" + " AND ".join(parts) + ")"


def _program_select(rules: ProgramRules, code: str) -> str:
    rule = rules.program(code)
    eff = rules.effective(code)
    conds = [
        f"c.desil IS NOT NULL AND c.desil <= {int(eff['desil_max'])}",
        _age_cond(rule.age),
    ]
    if eff["exclude_car_owners"]:
        conds.append("NOT coalesce(c.punya_mobil, FALSE)")
    if eff["exclude_njop_above_1bn"]:
        conds.append("NOT coalesce(c.njop_di_atas_1m, FALSE)")
    if rule.requires_disability:
        conds.append("coalesce(c.disabilitas_any, FALSE)")
    group_expr = "NULL"
    if rule.target_groups:
        group_conds = []
        for grp in rule.target_groups:
            gc = [_age_cond(grp.age)]
            if grp.requires_disability:
                gc.append("coalesce(c.disabilitas_any, FALSE)")
            group_conds.append((grp.name, " AND ".join(gc)))
        conds.append("(" + " OR ".join(f"({gc})" for _, gc in group_conds) + ")")
        group_expr = (
            "array_to_string(list_filter(["
            + ", ".join(f"CASE WHEN {gc} THEN {sql_str(name)} END" for name, gc in group_conds)
            + "], lambda x: x IS NOT NULL), ',')"
        )
    if rule.household_of:
        progs = sql_list(rule.household_of)
        conds.append(
            f"""(c.person_id IN (SELECT person_id FROM kept WHERE list_contains({progs}, program))
                 OR c.no_kk IN (SELECT no_kk FROM kept WHERE list_contains({progs}, program) AND no_kk IS NOT NULL))"""
        )
        if group_expr == "NULL":
            group_expr = sql_str("household_of:" + ",".join(rule.household_of))
    blocked = sql_list([code] + sorted({b for a, b in rules.exclusion_pairs() if a == code}))
    conds.append(
        f"c.person_id NOT IN (SELECT person_id FROM enrolled WHERE list_contains({blocked}, program))"
    )
    amount = rule.amount
    return f"""
        SELECT {sql_str(code)} AS program, c.person_id, {group_expr} AS target_group, c.umur, c.desil,
               CAST({amount if amount is not None else "NULL"} AS BIGINT) AS nominal_bulanan,
               c.kode_kota, c.kode_kecamatan, c.kode_kelurahan, c.nik_masked, c.nama, c.last_verified,
               (c.last_verified IS NULL OR c.last_verified < c.snap - to_months({int(eff["staleness_months"])}))
                   AS stale_record
        FROM candidates c
        WHERE {" AND ".join(conds)}
    """


def eligible_sql(
    conn: duckdb.DuckDBPyConnection, rules: ProgramRules, snapshot_date: date, schema: str = "main"
) -> str:
    """The SELECT of `programs.eligible_not_enrolled` (golden_person's input schema checked first)."""
    require_columns(conn, golden_table(schema), GOLDEN_PERSON_READ, STAGE)

    def g(name: str, cast: str) -> str:
        return f"CAST(g.{name} AS {cast})"

    snap = f"DATE '{snapshot_date.isoformat()}'"
    disab = g("disabilitas_any", "BOOLEAN")
    in_welfare = g("in_welfare_registry", "BOOLEAN")
    selects = "\nUNION ALL\n".join(_program_select(rules, code) for code in sorted(rules.codes()))
    return f"""
WITH candidates AS (
    SELECT g.person_id, {g("no_kk", "VARCHAR")} AS no_kk, {g("desil", "INTEGER")} AS desil,
           {g("punya_mobil", "BOOLEAN")} AS punya_mobil, {g("njop_di_atas_1m", "BOOLEAN")} AS njop_di_atas_1m,
           {disab} AS disabilitas_any, {g("last_verified", "DATE")} AS last_verified,
           CASE WHEN g.tanggal_lahir IS NOT NULL THEN {age_sql("CAST(g.tanggal_lahir AS DATE)", snap)} END AS umur,
           {g("kode_kota", "VARCHAR")} AS kode_kota, {g("kode_kecamatan", "VARCHAR")} AS kode_kecamatan,
           {g("kode_kelurahan", "VARCHAR")} AS kode_kelurahan,
           {mask_nik_sql(g("nik", "VARCHAR"))} AS nik_masked, {g("nama", "VARCHAR")} AS nama, {snap} AS snap
    FROM {golden_table(schema)} g
    WHERE coalesce({in_welfare}, FALSE)
      AND NOT coalesce({g("tanggal_meninggal", "DATE")} <= {snap}, FALSE)
      AND NOT ({g("is_alive", "BOOLEAN")} = FALSE AND {g("tanggal_meninggal", "DATE")} IS NULL)
      AND NOT coalesce({g("tinggal_di_dki", "BOOLEAN")} = FALSE
                       AND coalesce({g("tanggal_pindah", "DATE")} <= {snap}, TRUE), FALSE)
),
enrolled AS (SELECT DISTINCT program, person_id FROM {review_table(schema)} WHERE person_id IS NOT NULL),
kept AS (
    SELECT DISTINCT b.program, b.person_id, {g("no_kk", "VARCHAR")} AS no_kk
    FROM {review_table(schema)} b JOIN {golden_table(schema)} g ON g.person_id = b.person_id
    WHERE b.verdict = 'keep'
),
eligible AS ({selects})
SELECT program,
       row_number() OVER (PARTITION BY program ORDER BY desil, umur NULLS LAST, person_id) AS peringkat,
       person_id, target_group, CAST(umur AS INTEGER) AS umur, desil, nominal_bulanan, kode_kota,
       kode_kecamatan, kode_kelurahan, nik_masked, nama, last_verified, stale_record, {snap} AS snapshot_date
FROM eligible
"""


def build_eligible_not_enrolled(
    conn: duckdb.DuckDBPyConnection,
    rules: ProgramRules,
    snapshot_date: date,
    schema: str = "main",
    target: str = ELIGIBLE_TABLE,
) -> int:
    """(Re)write `target` (default `programs.eligible_not_enrolled`) from `<schema>.golden_person` and
    `<schema>.beneficiary_review`; returns its row count. The pipeline writes `staging.eligible_not_enrolled`
    from the staging tables and publishes it with them."""
    register_rules(conn, rules)
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {target.split('.')[0]}")
    cols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in ELIGIBLE_COLUMNS.items())
    conn.execute(
        f"CREATE OR REPLACE TABLE {target} AS SELECT {cols} FROM ({eligible_sql(conn, rules, snapshot_date, schema)}) "
        "ORDER BY program, peringkat"
    )
    return conn.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0]


def eligible_stats(conn: duckdb.DuckDBPyConnection, table: str = ELIGIBLE_TABLE) -> dict[str, int]:
    return dict(
        conn.execute(f"SELECT program, count(*) FROM {table} GROUP BY 1 ORDER BY 1").fetchall()
    )
