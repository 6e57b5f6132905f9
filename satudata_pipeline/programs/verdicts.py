"""Verdicts: keep / remove / review for every program roster row, in DuckDB SQL.

Inputs (see docs/internal-tables.md): `link.person_records` (roster rows: kind = 'program_roster'),
`<schema>.person_source_link` and `<schema>.golden_person`. Output: `<schema>.beneficiary_review`, one
row per roster row (including roster rows quarantined by cleaning, which become `identity_unresolved`).
`schema` is `main` (the published tables) by default; the pipeline passes `staging` (write, audit,
then publish: `satudata_pipeline.golden.publish`).

The semantics of every reason code are those of docs/verdict-rules.md; each code's flag, verdict
and evidence text come from the one table of reason codes (programs/reasons.yaml, read by
`satudata_pipeline.programs.reasons`); parameters come from the program rules
(`satudata_pipeline.contract.program_rules`). The tables read have a fixed input schema
(contract/schema.py), checked before anything is read. All work is one vectorised SQL statement
over the warehouse tables (built from the CTEs below, each its own function), so it scales with
DuckDB (tested at ~1M roster rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

import duckdb
import pandas as pd

from satudata_pipeline.contract.program_rules import ProgramRules, ProgramRulesError
from satudata_pipeline.contract.schema import (
    EVENT_EVIDENCE_READ,
    GOLDEN_PERSON_READ,
    MATCH_PAIRS_READ,
    PERSON_RECORDS_READ,
    PERSON_SOURCE_LINK_READ,
    require_columns,
)
from satudata_pipeline.link import splink_settings as ss
from satudata_pipeline.link.clusters import EVIDENCE_MIN_PROBABILITY
from satudata_pipeline.programs import reasons
from satudata_pipeline.programs.reasons import (
    DRIFTING_REASONS,
    evidence_sql,
    reasons_sql,
    removes_sql,
    verdict_sql,
)
from satudata_pipeline.warehouse import scalar, table_exists, transaction

STAGE = "programs stage"

# the table's codes (programs/reasons.yaml), for the modules that read them from here
REASON_CODES = reasons.REASON_CODES
REMOVE_REASONS = reasons.REMOVE_REASONS
REVIEW_REASONS = reasons.REVIEW_REASONS
VERDICTS = reasons.VERDICTS

REVIEW_TABLE = "main.beneficiary_review"  # the published table (exports read it)

# Records whose verification date (tanggal_pemutakhiran) after a recorded death or move out
# contradicts it (docs/verdict-rules.md, "When a death or a move removes"). Only a program's own verification of the recipient contradicts a death or a move: welfare
# registries are updated per household and are known to carry the dead with fresh dates (the very
# problem satudata exists for), so their tanggal_pemutakhiran is no sign of life.
CONTRADICTING_VERIFICATION_KINDS = ("program_roster",)


# A link between two enrollments that removes the later one must hold without the NIK, as for
# deaths and moves.
DUPLICATE_MIN_PROBABILITY = EVIDENCE_MIN_PROBABILITY


def golden_table(schema: str = "main") -> str:
    return f"{schema}.golden_person"


def link_table(schema: str = "main") -> str:
    return f"{schema}.person_source_link"


def review_table(schema: str = "main") -> str:
    return f"{schema}.beneficiary_review"


BENEFICIARY_REVIEW_COLUMNS: dict[str, str] = {
    "program": "VARCHAR",
    "source": "VARCHAR",
    "record_id": "VARCHAR",
    "person_id": "VARCHAR",
    "verdict": "VARCHAR",
    "reasons": "VARCHAR[]",
    "nominal_bulanan": "BIGINT",
    "nominal_aturan": "BIGINT",
    "evidence": "VARCHAR",
    "kode_kota": "VARCHAR",
    "kode_kecamatan": "VARCHAR",
    "kode_kelurahan": "VARCHAR",
    "jenjang": "VARCHAR",
    "tanggal_mulai": "DATE",
    "umur": "INTEGER",
    "nik_masked": "VARCHAR",
    "nama": "VARCHAR",
    "link_method": "VARCHAR",
    "snapshot_date": "DATE",
    # a person's decision handed back (docs/decisions.md); the names are the contract's
    "pipeline_verdict": "VARCHAR",
    "decision": "VARCHAR",
    "decision_reason": "VARCHAR",
    "decided_by": "VARCHAR",
    "decided_at": "DATE",
    "decision_status": "VARCHAR",
    "evidence_fingerprint": "VARCHAR",
    "decision_fingerprint": "VARCHAR",
}
DECISION_COLUMNS = (
    "pipeline_verdict",
    "decision",
    "decision_reason",
    "decided_by",
    "decided_at",
    "decision_status",
    "decision_fingerprint",
)
DECISIONS_IN_FORCE = "decisions.review_in_force"  # written by satudata_pipeline.decisions.intake
HISTORY_ROWS = "history.review_rows"  # written by satudata_pipeline.history.store
HISTORY_DETERMINATIONS = "history.determinations"

# Reasons that come and go with the calendar alone, not with new evidence (`drifts` in
# programs/reasons.yaml: DRIFTING_REASONS) are left out of the evidence fingerprint a decision is
# compared against (a stale record would otherwise reopen every decision each month).


# --------------------------------------------------------------------------------------------
# small SQL helpers
# --------------------------------------------------------------------------------------------
def sql_str(value: object) -> str:
    """A SQL string literal (or NULL)."""
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def sql_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(sql_str(v) for v in values) + "]::VARCHAR[]"


def age_sql(birth: str, snapshot: str) -> str:
    """Completed years at the snapshot (29 Feb birthdays count from 1 March in common years)."""
    return (
        f"(year({snapshot}) - year({birth}) - CASE WHEN month({snapshot}) < month({birth}) OR "
        f"(month({snapshot}) = month({birth}) AND day({snapshot}) < day({birth})) THEN 1 ELSE 0 END)"
    )


def mask_nik_sql(expr: str) -> str:
    """`3171********0001`: first 4 and last 4 characters kept, the rest starred."""
    return (
        f"CASE WHEN nullif(trim({expr}), '') IS NULL THEN NULL "
        f"WHEN length(trim({expr})) >= 12 THEN left(trim({expr}), 4) || repeat('*', length(trim({expr})) - 8) "
        f"|| right(trim({expr}), 4) ELSE repeat('*', length(trim({expr}))) END"
    )


def require_inputs(conn: duckdb.DuckDBPyConnection, schema: str = "main") -> None:
    """The tables the verdict query reads, with their fixed input schema (contract/schema.py):
    a SchemaError naming the table and the missing columns, before anything is read or written."""
    require_columns(conn, "link.person_records", PERSON_RECORDS_READ, STAGE)
    require_columns(conn, link_table(schema), PERSON_SOURCE_LINK_READ, STAGE)
    require_columns(conn, golden_table(schema), GOLDEN_PERSON_READ, STAGE)
    require_columns(conn, "link.match_pairs", MATCH_PAIRS_READ, STAGE)
    require_columns(conn, "link.event_evidence", EVENT_EVIDENCE_READ, STAGE)


def _optional_table(
    conn: duckdb.DuckDBPyConnection,
    tables: dict[str, Iterable[str]],
    returns: dict[str, str],
    select: str,
) -> str:
    """`select` over tables that may not exist yet (no decision handed back, no publication
    before): then an empty relation of the `returns` columns. Tables that exist must have the
    columns `tables` gives them (SchemaError), never a switch on which columns they have."""
    if not table_exists(conn, next(iter(tables))):
        cols = ", ".join(f"NULL::{t} AS {c}" for c, t in returns.items())
        return f"(SELECT {cols} WHERE FALSE)"
    for table, needed in tables.items():
        require_columns(conn, table, needed, STAGE)
    return f"({select})"


def register_rules(conn: duckdb.DuckDBPyConnection, rules: ProgramRules) -> None:
    """Put the program parameters in temp tables `_prog_params`, `_prog_amounts` for the SQL."""
    params = []
    amounts = []
    for code, rule in sorted(rules.programs.items()):
        eff = rules.effective(code)
        excl = sorted({b for a, b in rules.exclusion_pairs() if a == code})
        params.append(
            {
                "program": code,
                "age_min": rule.age.min if rule.age else None,
                "age_max": rule.age.max if rule.age else None,
                "age_label": rule.age.label() if rule.age else "any",
                "desil_max": eff["desil_max"],
                "staleness_months": eff["staleness_months"],
                "excl_car": eff["exclude_car_owners"],
                "excl_njop": eff["exclude_njop_above_1bn"],
                "requires_disability": rule.requires_disability,
                "amount_flat": rule.amount,
                "excludes": excl,
            }
        )
        for jenjang, amount in (rule.amount_by_jenjang or {}).items():
            amounts.append({"program": code, "jenjang": jenjang, "amount": amount})
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE _prog_params (program VARCHAR, age_min INTEGER, age_max INTEGER,
        age_label VARCHAR, desil_max INTEGER, staleness_months INTEGER, excl_car BOOLEAN, excl_njop BOOLEAN,
        requires_disability BOOLEAN, amount_flat BIGINT, excludes VARCHAR[])"""
    )
    conn.executemany(
        "INSERT INTO _prog_params VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [list(p.values()) for p in params],
    )
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _prog_amounts (program VARCHAR, jenjang VARCHAR, amount BIGINT)"
    )
    if amounts:
        conn.executemany(
            "INSERT INTO _prog_amounts VALUES (?, ?, ?)", [list(a.values()) for a in amounts]
        )


# --------------------------------------------------------------------------------------------
# the verdict query, one function per part (each can be run alone on a small table)
# --------------------------------------------------------------------------------------------
def roster_rows_sql(schema: str = "main") -> str:
    """Every roster row: clean rows from link.person_records + roster rows quarantined by cleaning
    (in the link table with link_method 'quarantined': blank name, duplicate record_id...)."""
    clean = f"""
        SELECT r.source, r.program, CAST(r.record_id AS VARCHAR) AS record_id,
               upper(trim(CAST(r.jenjang AS VARCHAR))) AS jenjang,
               CAST(r.nominal_bulanan AS BIGINT) AS roster_nominal,
               CAST(r.tanggal_mulai AS DATE) AS tanggal_mulai,
               CAST(r.nama AS VARCHAR) AS nama, CAST(r.nik AS VARCHAR) AS nik,
               CAST(r.kode_kota AS VARCHAR) AS roster_kode_kota,
               CAST(r.kode_kecamatan AS VARCHAR) AS roster_kode_kecamatan,
               CAST(r.kode_kelurahan AS VARCHAR) AS roster_kode_kelurahan,
               l.person_id, l.link_method,
               CAST(r.unique_id AS VARCHAR) AS roster_uid,
               CAST(r.nik_valid AS BOOLEAN) AS roster_nik_valid,
               CAST(r.tanggal_lahir AS DATE) AS roster_lahir,
               CAST(r.nama_sorted AS VARCHAR) AS roster_nama_sorted,
               CAST(r.kode_kelurahan AS VARCHAR) AS roster_kelurahan,
               CAST(r.alamat AS VARCHAR) AS roster_alamat,
               CAST(r.alamat_nomor AS VARCHAR) AS roster_alamat_nomor
        FROM link.person_records r
        LEFT JOIN (
            SELECT source, CAST(record_id AS VARCHAR) AS record_id, any_value(person_id) AS person_id,
                   any_value(link_method) AS link_method
            FROM {link_table(schema)} WHERE coalesce(link_method, '') <> 'quarantined'
            GROUP BY source, CAST(record_id AS VARCHAR)
        ) l ON l.source = r.source AND l.record_id = CAST(r.record_id AS VARCHAR)
        WHERE r.kind = 'program_roster'
    """
    quarantined = f"""
        SELECT l.source, rs.program, CAST(l.record_id AS VARCHAR), NULL, NULL, NULL, NULL, NULL,
               NULL, NULL, NULL, NULL, l.link_method, NULL, NULL, NULL, NULL, NULL, NULL, NULL
        FROM {link_table(schema)} l
        JOIN (SELECT source, any_value(program) AS program FROM link.person_records
              WHERE kind = 'program_roster' GROUP BY source) rs ON rs.source = l.source
        WHERE l.link_method = 'quarantined'
    """
    return f"{clean}\nUNION ALL\n{quarantined}"


def person_of_record_sql(schema: str = "main") -> str:
    """(source, record_id, person_id) of every linked (not quarantined) record."""
    return f"""(SELECT source, CAST(record_id AS VARCHAR) AS record_id, any_value(person_id) AS person_id
                 FROM {link_table(schema)}
                 WHERE coalesce(link_method, '') <> 'quarantined' AND person_id IS NOT NULL
                 GROUP BY ALL)"""


# how each death / move record is tied to its person (link.event_evidence): only a conclusive tie
# removes; a record without a row there is alone in its cluster and concerns nobody
_EVENT_TIE = (
    "LEFT JOIN link.event_evidence ev_ "
    "ON ev_.unique_id = r.source || ':' || CAST(r.record_id AS VARCHAR)"
)
_EVENT_CONCLUSIVE = "coalesce(ev_.conclusive, false)"


def death_at_snapshot_sql(snap: str, schema: str = "main") -> str:
    """Per person, the death recorded on or before the snapshot (undated deaths count): a
    conclusive record first, then the death registry's, then the earliest."""
    return f"""
    SELECT l.person_id, CAST(r.tanggal_meninggal AS DATE) AS tanggal_meninggal,
           r.source || '/' || r.record_id AS death_evidence,
           {_EVENT_CONCLUSIVE} AS death_conclusive, ev_.evidence AS death_link
    FROM link.person_records r JOIN {person_of_record_sql(schema)} l
      ON l.source = r.source AND l.record_id = CAST(r.record_id AS VARCHAR)
    {_EVENT_TIE}
    WHERE (r.kind = 'death_registry' OR (r.kind = 'civil_registry' AND r.tanggal_meninggal IS NOT NULL))
      AND (r.tanggal_meninggal IS NULL OR CAST(r.tanggal_meninggal AS DATE) <= {snap})
    QUALIFY row_number() OVER (PARTITION BY l.person_id ORDER BY {_EVENT_CONCLUSIVE} DESC,
                               (r.kind = 'death_registry') DESC,
                               r.tanggal_meninggal NULLS LAST, r.source, r.record_id) = 1"""


def in_dki_sql(code: str) -> str:
    """SQL: a region code (any punctuation) lies in DKI Jakarta (province 31); NULL for NULL."""
    return f"starts_with(regexp_replace({code}, '[^0-9]', '', 'g'), '31')"


# The golden person's name (alias `g`) as sorted distinct words, comparable with nama_sorted
GOLDEN_NAME_SORTED = (
    "array_to_string(list_sort(list_distinct(string_split(CAST(g.nama AS VARCHAR), ' '))), ' ')"
)


def move_at_snapshot_sql(snap: str, schema: str = "main") -> str:
    """Per person, the latest move on or before the snapshot (undated moves count as oldest):
    `keluar` when it leaves DKI (the delivered flag, else a destination not starting with 31)."""
    dest = "CAST(r.kode_wilayah_tujuan AS VARCHAR)"
    return f"""
    SELECT l.person_id, CAST(r.tanggal_pindah AS DATE) AS tanggal_pindah, {dest} AS kode_wilayah_tujuan,
           coalesce(r.pindah_keluar_dki, NOT {in_dki_sql(dest)}) AS keluar,
           r.source || '/' || r.record_id AS move_evidence,
           {_EVENT_CONCLUSIVE} AS move_conclusive, ev_.evidence AS move_link
    FROM link.person_records r JOIN {person_of_record_sql(schema)} l
      ON l.source = r.source AND l.record_id = CAST(r.record_id AS VARCHAR)
    {_EVENT_TIE}
    WHERE r.kind = 'migration_registry' AND coalesce(CAST(r.tanggal_pindah AS DATE), DATE '1900-01-01') <= {snap}
    QUALIFY row_number() OVER (PARTITION BY l.person_id
                               ORDER BY coalesce(CAST(r.tanggal_pindah AS DATE), DATE '1900-01-01') DESC,
                                        r.source DESC, r.record_id DESC) = 1"""


def nik_neighbour_sql(schema: str = "main") -> str:
    """Per roster row with a valid NIK, a civil-registry record of ANOTHER person with the same
    name and birth date whose valid NIK is one typing error from the row's (needs `roster`): the
    row's NIK may be a mistyped copy of a namesake's (serials 0004 / 0005 of two girls named
    NAURA MAHARANI born the same day in one kecamatan, or one serial in two kecamatan), so the NIK
    alone does not say which of the two the row is. `nik_neighbour`: that record, by source/id."""
    return f"""
    SELECT ro.roster_uid,
           arg_min(c.source || '/' || c.record_id, c.unique_id) AS nik_neighbour
    FROM roster ro
    JOIN link.person_records c   -- (the birth date digits DDMMYY of both NIKs agree)
      ON c.kind = 'civil_registry'
     AND CAST(c.nama_sorted AS VARCHAR) = ro.roster_nama_sorted
     AND substr(CAST(c.nik AS VARCHAR), 7, 6) = substr(ro.nik, 7, 6)
    JOIN {person_of_record_sql(schema)} cl
      ON cl.source = c.source AND cl.record_id = CAST(c.record_id AS VARCHAR)
    WHERE ro.roster_nik_valid AND c.nik_valid
      AND (ro.roster_lahir IS NULL OR c.tanggal_lahir IS NULL
           OR CAST(c.tanggal_lahir AS DATE) = ro.roster_lahir)
      AND CAST(c.nik AS VARCHAR) <> ro.nik
      AND damerau_levenshtein(CAST(c.nik AS VARCHAR), ro.nik) <= 1
      AND cl.person_id IS DISTINCT FROM ro.person_id
    GROUP BY ro.roster_uid"""


def return_at_snapshot_sql(snap: str, schema: str = "main") -> str:
    """Per person whose latest move (`move_at_snap`) leaves DKI, the first later move INTO DKI on
    or before the snapshot that may be their return although it is not linked to them: from
    outside DKI (or no origin recorded), the same birth date, the person's name as typed, and no
    other person's valid NIK (a return registered without a NIK has no origin in DKI and little
    else to link on). Weak evidence is enough to stop a removal, never to make one."""
    dest = "CAST(r.kode_wilayah_tujuan AS VARCHAR)"
    r_sorted = "CAST(r.nama_sorted AS VARCHAR)"
    return f"""
    SELECT m.person_id,
           arg_min(r.source || '/' || r.record_id,
                   {{'d': CAST(r.tanggal_pindah AS DATE), 's': r.source, 'r': CAST(r.record_id AS VARCHAR)}})
               AS return_evidence,
           min(CAST(r.tanggal_pindah AS DATE)) AS tanggal_kembali
    FROM move_at_snap m
    JOIN {golden_table(schema)} g ON g.person_id = m.person_id
    JOIN link.person_records r
      ON r.kind = 'migration_registry'
     AND CAST(r.tanggal_lahir AS DATE) = CAST(g.tanggal_lahir AS DATE)
    WHERE m.keluar
      AND (m.tanggal_pindah IS NULL OR CAST(r.tanggal_pindah AS DATE) > m.tanggal_pindah)
      AND CAST(r.tanggal_pindah AS DATE) <= {snap}
      AND NOT coalesce(r.pindah_keluar_dki, NOT {in_dki_sql(dest)}, TRUE)
      -- one name as typed (Jaro-Winkler would call MUHAMMAD RIZKY and MUHAMMAD FAJAR one name)
      AND {ss.one_name_sql(r_sorted, GOLDEN_NAME_SORTED, per_word=False)}
      -- from outside DKI (or from nowhere recorded): a move within DKI is a namesake's
      AND NOT coalesce({in_dki_sql("CAST(r.kode_kelurahan AS VARCHAR)")}, FALSE)
      -- and not under another person's NIK (none, the person's own, or a typo of it)
      AND NOT coalesce(r.nik_valid AND g.nik IS NOT NULL
                       AND damerau_levenshtein(CAST(r.nik AS VARCHAR), CAST(g.nik AS VARCHAR)) > 1,
                       FALSE)
    GROUP BY m.person_id"""


def verified_at_snapshot_sql(snap: str, schema: str = "main") -> str:
    """Per person, the latest verification by a program (CONTRADICTING_VERIFICATION_KINDS) on or
    before the snapshot, and by which record: a verification after a death or move contradicts it."""
    kinds = ", ".join(sql_str(k) for k in CONTRADICTING_VERIFICATION_KINDS)
    return f"""
    SELECT l.person_id, max(CAST(r.tanggal_pemutakhiran AS DATE)) AS verified_alive,
           arg_max(r.source || '/' || r.record_id,
                   {{'d': CAST(r.tanggal_pemutakhiran AS DATE), 's': r.source, 'r': CAST(r.record_id AS VARCHAR)}})
               AS verified_alive_by
    FROM link.person_records r JOIN {person_of_record_sql(schema)} l
      ON l.source = r.source AND l.record_id = CAST(r.record_id AS VARCHAR)
    WHERE r.kind IN ({kinds})
      AND CAST(r.tanggal_pemutakhiran AS DATE) <= {snap}
    GROUP BY l.person_id"""


PAIRS_SQL = (
    "SELECT unique_id_l AS uid_l, unique_id_r AS uid_r, match_probability_without_nik "
    "FROM link.match_pairs"
)
# The same pairs keyed in one order (lower id first), so that looking a pair up is one equi-join
# (an OR of both orders is a nested-loop join in DuckDB: 7 s of 14 at 1M persons)
PAIRS_ORDERED_SQL = (
    "SELECT least(unique_id_l, unique_id_r) AS uid_lo, greatest(unique_id_l, unique_id_r) AS uid_hi, "
    "match_probability_without_nik FROM link.match_pairs"
)


def row_tie_sql(schema: str = "main") -> str:
    """How strongly each roster row itself is tied to its person without the NIK: the strongest
    stored pair between the row and another record of the same person (needs `roster`, `pairs`)."""
    return f"""
    SELECT t.roster_uid, max(t.p) AS row_p
    FROM (
        SELECT ro.roster_uid, ro.person_id, mp.uid_r AS other, mp.match_probability_without_nik AS p
        FROM roster ro JOIN pairs mp ON mp.uid_l = ro.roster_uid
        UNION ALL
        SELECT ro.roster_uid, ro.person_id, mp.uid_l, mp.match_probability_without_nik
        FROM roster ro JOIN pairs mp ON mp.uid_r = ro.roster_uid
    ) t
    JOIN {link_table(schema)} o ON o.unique_id = t.other AND o.person_id = t.person_id
    GROUP BY t.roster_uid"""


def base_sql(snap: str, schema: str = "main") -> str:
    """Each roster row with its program's parameters, its person's golden facts and life facts at
    the snapshot, and whether the row itself identifies its person (`row_sure`: a removal needs it)."""
    return f"""
    SELECT ro.*, rt.row_p,
           -- the roster row identifies its person: by the same valid NIK with the person's name
           -- (the same words, or a typo or two: FATIMAH carrying FATIMAH YANTI's NIK is a mistyped
           -- NIK landing on a namesake as often as one person; one name inside another is weak), as
           -- the one resident of its home with its name, or by a link strong without the NIK
           -- A row placed by a dominant link (linked to two residents of its home, placed with
           -- the one its links favour) is never sure: the other is a namesake of its home; nor
           -- is a row placed by an only-link (each the other's only candidate, homes apart).
           (coalesce(ro.link_method = 'exact_nik'
                     AND coalesce({ss.one_name_sql("ro.roster_nama_sorted", GOLDEN_NAME_SORTED)}, TRUE)
                     AND nb_.nik_neighbour IS NULL, FALSE)
                OR coalesce(ro.link_method = 'sole_candidate', FALSE)
                OR coalesce(rt.row_p >= {DUPLICATE_MIN_PROBABILITY}, FALSE))
               AND coalesce(ro.link_method NOT IN {ss.PLACED_NOT_IDENTIFIED}, TRUE) AS row_sure,
           p.age_min, p.age_max, p.age_label, p.desil_max, p.staleness_months, p.excl_car, p.excl_njop,
           p.requires_disability, p.excludes,
           coalesce(p.amount_flat, a.amount) AS nominal_aturan,
           g.person_id AS g_person_id,
           CAST(g.tanggal_lahir AS DATE) AS tanggal_lahir,
           (d_.person_id IS NULL) AS is_alive,
           d_.tanggal_meninggal,
           d_.death_evidence,
           d_.death_conclusive,
           d_.death_link,
           NOT coalesce(m_.keluar, FALSE) AS tinggal_di_dki,
           m_.tanggal_pindah,
           m_.kode_wilayah_tujuan,
           m_.move_evidence,
           m_.move_conclusive,
           m_.move_link,
           ret_.return_evidence, ret_.tanggal_kembali, nb_.nik_neighbour,
           va_.verified_alive, va_.verified_alive_by,
           CAST(g.in_civil_registry AS BOOLEAN) AS in_civil,
           CAST(g.in_welfare_registry AS BOOLEAN) AS in_welfare,
           CAST(g.desil AS INTEGER) AS desil,
           CAST(g.punya_mobil AS BOOLEAN) AS punya_mobil,
           CAST(g.njop_di_atas_1m AS BOOLEAN) AS njop_di_atas_1m,
           CAST(g.possible_death_evidence AS VARCHAR) AS possible_death_evidence,
           CAST(g.welfare_evidence AS VARCHAR) AS welfare_evidence,
           CAST(g.welfare_verified AS DATE) AS welfare_verified,
           CAST(g.disabilitas_any AS BOOLEAN) AS disabilitas_any,
           CAST(g.last_verified AS DATE) AS last_verified,
           coalesce(CAST(g.kode_kota AS VARCHAR), ro.roster_kode_kota) AS kode_kota,
           coalesce(CAST(g.kode_kecamatan AS VARCHAR), ro.roster_kode_kecamatan) AS kode_kecamatan,
           coalesce(CAST(g.kode_kelurahan AS VARCHAR), ro.roster_kode_kelurahan) AS kode_kelurahan,
           {snap} AS snap
    FROM roster ro
    LEFT JOIN _prog_params p ON p.program = ro.program
    LEFT JOIN _prog_amounts a ON a.program = ro.program AND a.jenjang = ro.jenjang
    LEFT JOIN {golden_table(schema)} g ON g.person_id = ro.person_id
    LEFT JOIN row_tie rt ON rt.roster_uid = ro.roster_uid
    LEFT JOIN death_at_snap d_ ON d_.person_id = ro.person_id
    LEFT JOIN move_at_snap m_ ON m_.person_id = ro.person_id
    LEFT JOIN return_at_snap ret_ ON ret_.person_id = ro.person_id
    LEFT JOIN nik_neighbour nb_ ON nb_.roster_uid = ro.roster_uid
    LEFT JOIN verified_at_snap va_ ON va_.person_id = ro.person_id"""


ENROLLED_SQL = f"""
    SELECT *,
        (g_person_id IS NULL OR NOT (coalesce(in_civil, FALSE) OR coalesce(in_welfare, FALSE))) AS f_unresolved,
        CASE WHEN tanggal_lahir IS NOT NULL THEN {age_sql("tanggal_lahir", "snap")} END AS umur,
        row_number() OVER (PARTITION BY person_id
                           ORDER BY tanggal_mulai ASC NULLS LAST, record_id, source, program) AS enroll_ord
    FROM base"""


# Two roster rows (a, b) carry one name: the same words, or a typo (two in a long name); FATIMAH
# and FATIMAH YANTI are not one name (a name inside another is weak evidence), nor NAURA and ZAHRA.
ROWS_SAME_NAME = ss.one_name_sql("a.roster_nama_sorted", "b.roster_nama_sorted")
# Two roster rows give one home: the linkage's "same address" on the rows' own street lines and
# house numbers, in one kelurahan.
ROWS_SAME_HOME = "({} AND a.roster_kelurahan = b.roster_kelurahan)".format(
    ss.SAME_ADDRESS.replace("alamat_nomor_l", "a.roster_alamat_nomor")
    .replace("alamat_nomor_r", "b.roster_alamat_nomor")
    .replace("alamat_l", "a.roster_alamat")
    .replace("alamat_r", "b.roster_alamat")
)


def person_event_sql(r: str) -> str:
    """SQL: the person of row `r` (an alias of `flagged`) has a death or a move out of DKI recorded
    at the snapshot (conclusive or not) that row `r` does not contradict (contradiction_sql): once
    the record is confirmed the row goes, so it is not an enrollment that stays."""
    return (
        f"coalesce((NOT {r}.is_alive AND {contradiction_sql(f'{r}.tanggal_meninggal', r)} IS NULL)"
        f" OR (NOT {r}.tinggal_di_dki"
        f" AND {contradiction_sql(f'{r}.tanggal_pindah', r, returned=True)} IS NULL), FALSE)"
    )


def duplicate_pairs_sql(left_out: str | None = None) -> str:
    """Each later enrollment of a person with an earlier one in the same program, or in a program
    excluding this one (needs `flagged`, `pairs_ordered`); `conclusive` (it removes) only when the two rows
    themselves identify one person: the same valid NIK, no other birth date and the same name, or
    a link between them strong without the NIK with the same name at one home. A ghost row that
    copies a real child's name and birth date with a NIK a digit off is not proof that the real child is enrolled twice (docs/verdict-rules.md,
    duplicate_enrollment). `left_out`: rows whose final verdict is remove (never the earlier one)."""
    left_out_sql = (
        ""
        if left_out is None
        else (
            f"\n      AND NOT EXISTS (SELECT 1 FROM {left_out} lo WHERE lo.program = b.program "
            f"AND lo.source = b.source AND lo.record_id = b.record_id)"
        )
    )
    return f"""
    SELECT a.source, a.record_id, a.program, b.enroll_ord,
           b.program || ' ' || b.source || '/' || b.record_id
               || coalesce(' since ' || strftime(b.tanggal_mulai, '%Y-%m-%d'), '') AS kept_row,
           ((coalesce(a.roster_nik_valid AND b.roster_nik_valid, FALSE) AND a.nik = b.nik
               AND (a.roster_lahir IS NULL OR b.roster_lahir IS NULL OR a.roster_lahir = b.roster_lahir)
               -- a namesake born the same day holds a NIK a typo away: one row may be theirs
               AND a.nik_neighbour IS NULL AND b.nik_neighbour IS NULL
               -- FATIMAH and FATIMAH YANTI with one NIK are a mistyped NIK as often as one child
               AND coalesce({ROWS_SAME_NAME}, TRUE))
           -- a strong link without the NIK counts only for one name at one home: a common name
           -- and a birth date alone reach it across the city (AI AZZAHRA, MUHAMMAD PRATAMA), two
           -- AQILs born the same day in one kelurahan at two addresses are two children, and twins
           -- share birth date and home (VERONIKA WIJAYA inside VERONIKA FELICIA WIJAYA: two girls)
           OR coalesce(mp.match_probability_without_nik >= {DUPLICATE_MIN_PROBABILITY}
                       AND {ROWS_SAME_NAME} AND {ROWS_SAME_HOME}, FALSE)) AS rows_identify,
           -- the earlier row may go for a recorded death or move out: that record decides each
           -- row (removed when it identifies the person, reviewed when something contradicts it);
           -- the later row is not removed as a duplicate of an earlier one that may go too
           {person_event_sql("b")} AS person_event
    FROM flagged a
    JOIN flagged b
      ON a.person_id = b.person_id AND b.enroll_ord < a.enroll_ord
     AND (a.program = b.program OR list_contains(a.excludes, b.program))
    LEFT JOIN pairs_ordered mp
      ON mp.uid_lo = least(a.roster_uid, b.roster_uid)
     AND mp.uid_hi = greatest(a.roster_uid, b.roster_uid)
    WHERE NOT a.f_unresolved AND NOT b.f_unresolved
      -- an earlier row of another program whose ages exclude the person (a KJP pupil of 2021, a
      -- KJMU student now) is not an enrollment the later one doubles: it goes for its age
      AND NOT (a.program <> b.program AND coalesce(
          (b.age_min IS NOT NULL AND b.umur < b.age_min) OR (b.age_max IS NOT NULL AND b.umur > b.age_max),
          FALSE)){left_out_sql}"""


DUPLICATES_SQL = """
    SELECT source, record_id, program,
           arg_min(kept_row, enroll_ord) AS kept_row,
           bool_or(rows_identify AND NOT person_event) AS dup_conclusive,
           bool_or(person_event) AS dup_person_event
    FROM dup_pairs
    GROUP BY source, record_id, program"""


# The flags of the reason codes (programs/reasons.yaml names them): a reason about the person is
# evaluated only for a row resolved to a person; amount_above_rule is a fact of the row itself.
FLAGS_SQL = """
    SELECT f.*, d.kept_row, coalesce(d.dup_conclusive, FALSE) AS dup_conclusive,
        coalesce(d.dup_person_event, FALSE) AS dup_person_event,
        NOT f.f_unresolved AND (
            (f.tanggal_meninggal IS NOT NULL AND f.tanggal_meninggal <= f.snap)
            OR (f.is_alive = FALSE AND f.tanggal_meninggal IS NULL)) AS f_deceased,
        -- a death record that is this person or a namesake: reviewed, never removed on that alone
        NOT f.f_unresolved AND NOT coalesce(f.is_alive = FALSE OR f.tanggal_meninggal IS NOT NULL, FALSE)
            AND f.possible_death_evidence IS NOT NULL AS f_maybe_dead,
        NOT f.f_unresolved AND f.tinggal_di_dki = FALSE
            AND (f.tanggal_pindah IS NULL OR f.tanggal_pindah <= f.snap) AS f_moved,
        -- a death or move removes only when its record identifies the person and nothing later
        -- contradicts it (enrolled, or verified by a program, after it)
        {death_contradiction} AS death_contradiction,
        {move_contradiction} AS move_contradiction,
        NOT f.f_unresolved AND f.umur IS NOT NULL
            AND ((f.age_min IS NOT NULL AND f.umur < f.age_min) OR (f.age_max IS NOT NULL AND f.umur > f.age_max))
            AS f_age,
        NOT f.f_unresolved AND d.kept_row IS NOT NULL AS f_dup,
        NOT f.f_unresolved AND NOT coalesce(f.in_welfare, FALSE) AS f_no_welfare,
        NOT f.f_unresolved AND f.desil IS NOT NULL AND f.desil > f.desil_max AS f_desil,
        NOT f.f_unresolved AND ((f.excl_car AND coalesce(f.punya_mobil, FALSE))
                                OR (f.excl_njop AND coalesce(f.njop_di_atas_1m, FALSE))) AS f_asset,
        NOT f.f_unresolved AND f.requires_disability AND NOT coalesce(f.disabilitas_any, FALSE) AS f_disab,
        NOT f.f_unresolved AND (f.last_verified IS NULL
            OR f.last_verified < f.snap - to_months(f.staleness_months)) AS f_stale,
        -- the roster pays more than the program's rule (for the row's jenjang): a fact of the row
        -- itself, so it is checked even when the person is unresolved
        coalesce(f.roster_nominal > f.nominal_aturan, FALSE) AS f_amount
    FROM flagged f
    LEFT JOIN dup d ON d.source = f.source AND d.record_id = f.record_id AND d.program = f.program"""


# The roster row's own birth date puts it outside the program's ages too (an age removal then
# rests on the row itself, whichever person it is linked to)
_ROW_AGE = age_sql("roster_lahir", "snap")
_ROW_AGE_OUTSIDE = (
    f"(roster_lahir IS NOT NULL AND ((age_min IS NOT NULL AND {_ROW_AGE} < age_min) "
    f"OR (age_max IS NOT NULL AND {_ROW_AGE} > age_max)))"
)

# Whether a remove code's evidence is conclusive (its `removes_when` in programs/reasons.yaml)
CONCLUSIVE_SQL = f"""
    SELECT *,
        -- the age is the linked person's: it removes when the row identifies that person, or when
        -- the row's own birth date says the same (a row without one, tied weakly to a namesake
        -- sibling, would otherwise be cut off by the sibling's age)
        f_age AND (row_sure OR {_ROW_AGE_OUTSIDE}) AS f_age_sure,
        f_deceased AND coalesce(death_conclusive, FALSE) AND death_contradiction IS NULL AND row_sure
            AS f_dead_sure,
        f_moved AND coalesce(move_conclusive, FALSE) AND move_contradiction IS NULL AND row_sure
            AS f_moved_sure,
        f_dup AND dup_conclusive AS f_dup_sure
    FROM flags"""

# The verdict's remove (any conclusive remove code), the cases of the evidence texts (each code's
# `evidence[].when`) and the values they read besides the row's own columns: what the welfare record
# says of assets, and why a death or move record or the roster row itself is not conclusive
NOTES_SQL = """
    SELECT *,
        {removes} AS f_remove,
        f_deceased AND NOT f_dead_sure AS f_dead_unsure,
        f_age AND NOT f_age_sure AS f_age_unsure,
        f_dup AND NOT f_dup_sure AND dup_person_event AS f_dup_event,
        f_dup AND NOT f_dup_sure AND nik_neighbour IS NOT NULL AS f_dup_neighbour,
        f_maybe_dead AND NOT f_deceased AS f_dead_possible,
        f_unresolved AND person_id IS NULL AS f_unlinked,
        concat_ws(' and ', CASE WHEN excl_car AND punya_mobil THEN 'car owner' END,
                           CASE WHEN excl_njop AND njop_di_atas_1m THEN 'NJOP above Rp1bn' END)
            AS assets_found,
        CASE WHEN link_method = 'dominant_link'
             THEN 'this roster row is linked to two residents of its home; it was placed with '
                  || 'the one its links favour a thousand to one or more, which does not identify it'
             WHEN link_method = 'only_link'
             THEN 'this roster row (or the registry row it is linked to) and the resident are each '
                  || 'other''s only candidate, at another address; placed with that resident, '
                  || 'which does not identify it'
             WHEN NOT row_sure THEN 'this roster row is linked to the person only with probability '
             || printf('%.3f', coalesce(row_p, 0)) || ' without its NIK'
             || coalesce('; its NIK is a typo away from that of ' || nik_neighbour
                         || ', a namesake born the same day', '') END AS row_tie_note,
        CASE WHEN NOT coalesce(death_conclusive, FALSE)
             THEN coalesce(death_link, 'not tied to this person''s records') END AS death_tie_note,
        CASE WHEN NOT coalesce(move_conclusive, FALSE)
             THEN coalesce(move_link, 'not tied to this person''s records') END AS move_tie_note
    FROM conclusive"""

# a recorded death or move is always listed (the verdict and the evidence say whether it is
# conclusive); a possible death (not joined to the person) only where it decides the verdict
LISTED_SQL = """
    SELECT *, f_deceased OR (f_maybe_dead AND NOT f_remove) AS f_deceased_listed
    FROM noted"""

# The evidence a decision answers: the pipeline's reasons (except those drifting with the calendar)
# and the person facts they rest on. Not the snapshot date, the age or the verification dates.
FINGERPRINT_SQL = f"""md5(concat_ws('|',
        coalesce(person_id, '-'),
        list_sort(list_filter(reasons, lambda x: NOT list_contains({sql_list(DRIFTING_REASONS)}, x)))::VARCHAR,
        coalesce(CAST(is_alive AS VARCHAR), '-'), coalesce(CAST(tanggal_meninggal AS VARCHAR), '-'),
        coalesce(death_evidence, '-'), coalesce(CAST(death_conclusive AS VARCHAR), '-'),
        coalesce(possible_death_evidence, '-'),
        coalesce(CAST(tinggal_di_dki AS VARCHAR), '-'), coalesce(CAST(tanggal_pindah AS VARCHAR), '-'),
        coalesce(kode_wilayah_tujuan, '-'), coalesce(move_evidence, '-'),
        coalesce(CAST(in_civil AS VARCHAR), '-'), coalesce(CAST(in_welfare AS VARCHAR), '-'),
        coalesce(CAST(desil AS VARCHAR), '-'), coalesce(CAST(disabilitas_any AS VARCHAR), '-'),
        coalesce(CAST(punya_mobil AS VARCHAR), '-'), coalesce(CAST(njop_di_atas_1m AS VARCHAR), '-'),
        coalesce(kept_row, '-'),
        -- evidence against a removal, when there is any (NULL is skipped: other rows keep their
        -- fingerprint): a possible return, a namesake's NIK a typo away
        return_evidence, nik_neighbour))"""


def output_sql() -> str:
    """The beneficiary_review row of each roster row (needs `reasoned`): the verdict, the reasons
    and the evidence from the table of reason codes (programs/reasons.yaml)."""
    return f"""
SELECT
    program, source, record_id, person_id,
    {verdict_sql()} AS verdict,
    reasons,
    CAST(coalesce(roster_nominal, nominal_aturan) AS BIGINT) AS nominal_bulanan,
    CAST(nominal_aturan AS BIGINT) AS nominal_aturan,
    {evidence_sql()} AS evidence,
    kode_kota, kode_kecamatan, kode_kelurahan, jenjang, tanggal_mulai,
    CAST(umur AS INTEGER) AS umur,
    {mask_nik_sql("nik")} AS nik_masked,
    nama, link_method, snap AS snapshot_date,
    {FINGERPRINT_SQL} AS evidence_fingerprint
FROM reasoned"""


def _flagged_ctes(snapshot_date: date, schema: str) -> dict[str, str]:
    """The CTEs up to `flagged`: each roster row with its person's facts at the snapshot, before
    any duplicate is looked at (what does not depend on which rows are left out)."""
    snap = f"DATE '{snapshot_date.isoformat()}'"
    return {
        "roster": roster_rows_sql(schema),
        "death_at_snap": death_at_snapshot_sql(snap, schema),
        "move_at_snap": move_at_snapshot_sql(snap, schema),
        "return_at_snap": return_at_snapshot_sql(snap, schema),
        "nik_neighbour": nik_neighbour_sql(schema),
        "verified_at_snap": verified_at_snapshot_sql(snap, schema),
        "pairs": PAIRS_SQL,
        "row_tie": row_tie_sql(schema),
        "base": base_sql(snap, schema),
        "flagged": ENROLLED_SQL,
    }


def flagged_sql(conn: duckdb.DuckDBPyConnection, snapshot_date: date, schema: str = "main") -> str:
    """The SELECT of `flagged` (see _flagged_ctes), to be kept in a table and handed to
    `verdicts_sql(flagged_table=...)` when the verdicts are computed more than once."""
    require_inputs(conn, schema)
    ctes = _flagged_ctes(snapshot_date, schema)
    return (
        "WITH " + ",\n".join(f"{n} AS ({q}\n)" for n, q in ctes.items()) + "\nSELECT * FROM flagged"
    )


def verdicts_sql(
    conn: duckdb.DuckDBPyConnection,
    snapshot_date: date,
    schema: str = "main",
    left_out: str | None = None,
    flagged_table: str | None = None,
) -> str:
    """The SELECT producing beneficiary_review rows for every roster row (needs `register_rules`
    first; checks the input schema first).

    `left_out`: a table of (program, source, record_id) whose final verdict is remove; they are not
    the earlier enrollment a later one is a duplicate of (the person would lose both).
    `flagged_table`: the rows of `flagged_sql` for this snapshot and schema, computed once."""
    require_inputs(conn, schema)
    flags = FLAGS_SQL.format(
        death_contradiction=contradiction_sql("f.tanggal_meninggal"),
        move_contradiction=contradiction_sql("f.tanggal_pindah", returned=True),
    )
    ctes = (
        {"flagged": f"SELECT * FROM {flagged_table}"}
        if flagged_table
        else _flagged_ctes(snapshot_date, schema)
    )
    ctes |= {
        "pairs_ordered": PAIRS_ORDERED_SQL,
        "dup_pairs": duplicate_pairs_sql(left_out),
        "dup": DUPLICATES_SQL,
        "flags": flags,
        "conclusive": CONCLUSIVE_SQL,
        "noted": NOTES_SQL.format(removes=removes_sql()),
        "listed": LISTED_SQL,
        "reasoned": f"SELECT *, {reasons_sql()} AS reasons FROM listed",
    }
    with_ = ",\n".join(f"{name} AS ({sql}\n)" for name, sql in ctes.items())
    return f"WITH {with_}\n{output_sql()}\n"


def contradiction_sql(event_date: str, f: str = "f", returned: bool = False) -> str:
    """Words for what contradicts a death or move dated `event_date` (NULL when nothing does):
    the roster row enrolled after it, or the person verified by a welfare registry or a program
    (`verified_alive`, `verified_alive_by`) after it; for a move (`returned`) also a later move
    into DKI that may be the person's return (`return_evidence`, which return_at_snapshot_sql
    finds for undated moves too). Columns of the verdict query's rows, alias `f`."""
    back = (
        f"WHEN {f}.return_evidence IS NOT NULL THEN 'contradicted: ' || {f}.return_evidence "
        f"|| ' records a move into DKI on ' || strftime({f}.tanggal_kembali, '%Y-%m-%d') "
        "|| ' with the same birth date and name (not linked to this person: perhaps the return)' "
        if returned
        else ""
    )
    return (
        # (an undated event: the comparisons are NULL, only a possible return contradicts it)
        f"CASE WHEN {f}.tanggal_mulai > {event_date} THEN 'contradicted: this row enrolled ' "
        f"|| strftime({f}.tanggal_mulai, '%Y-%m-%d') || ', after that date' "
        f"WHEN {f}.verified_alive > {event_date} THEN 'contradicted: verified by ' "
        f"|| {f}.verified_alive_by || ' on ' || strftime({f}.verified_alive, '%Y-%m-%d') "
        f"|| ', after that date' {back}END"
    )


def _check_programs(conn: duckdb.DuckDBPyConnection, rules: ProgramRules) -> None:
    rows = conn.execute(
        "SELECT DISTINCT source, program FROM link.person_records WHERE kind = 'program_roster'"
    ).fetchall()
    unknown = sorted({(s, p) for s, p in rows if p not in rules.codes()}, key=str)
    if unknown:
        listed = ", ".join(f"{s} (program {p!r})" for s, p in unknown)
        raise ProgramRulesError(
            f"roster source(s) name programs missing from {rules.source_path or 'the program rules'}: {listed}; "
            f"known: {', '.join(sorted(rules.codes()))}"
        )


def ensure_review_table(conn: duckdb.DuckDBPyConnection, schema: str = "main") -> None:
    """`<schema>.beneficiary_review` with its columns (created when missing; an existing table
    that lacks one is a SchemaError: a partial rebuild must not write half a row)."""
    if table_exists(conn, review_table(schema)):
        require_columns(conn, review_table(schema), list(BENEFICIARY_REVIEW_COLUMNS), STAGE)
        return
    cols = ", ".join(f"{c} {t}" for c, t in BENEFICIARY_REVIEW_COLUMNS.items())
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    conn.execute(f"CREATE TABLE {review_table(schema)} ({cols})")


def build_beneficiary_review(
    conn: duckdb.DuckDBPyConnection,
    rules: ProgramRules,
    snapshot_date: date,
    programs: Sequence[str] | None = None,
    schema: str = "main",
) -> int:
    """(Re)write `<schema>.beneficiary_review` from `<schema>.golden_person` and
    `<schema>.person_source_link`; returns the number of rows written.

    `programs` limits the rewrite to those programs (delete + insert of their rows, in one
    transaction); duplicates and exclusions are still evaluated against every roster, so a partial
    rebuild gives the same rows as a full one.
    """
    if programs:
        bad = sorted(set(programs) - rules.codes())
        if bad:
            raise ProgramRulesError(
                f"unknown program(s) {bad}; known: {', '.join(sorted(rules.codes()))}"
            )
    require_inputs(conn, schema)
    _check_programs(conn, rules)
    register_rules(conn, rules)
    # the pipeline's verdicts first (a temp table: the decisions compare with the published table,
    # which may be the very table rewritten here)
    _decide_rows(conn, snapshot_date, schema)
    select = "SELECT * FROM _br_decided"
    names = ", ".join(BENEFICIARY_REVIEW_COLUMNS)
    target = review_table(schema)
    try:
        with transaction(conn):
            if programs:
                ensure_review_table(conn, schema)
                plist = sql_list(programs)
                conn.execute(f"DELETE FROM {target} WHERE list_contains({plist}, program)")
                conn.execute(
                    f"INSERT INTO {target} ({names}) SELECT {names} FROM ({select}) "
                    f"WHERE list_contains({plist}, program)"
                )
            else:
                cols = ", ".join(
                    f"CAST({c} AS {t}) AS {c}" for c, t in BENEFICIARY_REVIEW_COLUMNS.items()
                )
                conn.execute(
                    f"CREATE OR REPLACE TABLE {target} AS SELECT {cols} FROM ({select}) "
                    "ORDER BY program, kode_kota NULLS LAST, kode_kecamatan NULLS LAST, source, "
                    "record_id"
                )
    finally:
        conn.execute("DROP TABLE IF EXISTS _br_decided")
    where = f"WHERE list_contains({sql_list(programs)}, program)" if programs else ""
    return int(scalar(conn, f"SELECT count(*) FROM {target} {where}"))


MAX_LEFT_OUT_ROUNDS = 5


def _decide_rows(conn: duckdb.DuckDBPyConnection, snapshot_date: date, schema: str) -> None:
    """`_br_decided`: every roster row's final verdict (pipeline, then decisions).

    A later enrollment is a duplicate only of an earlier row that is not itself removed (by a
    conclusive reason or a decision): otherwise the person loses both (KJP age_ineligible and the
    newer KJMU row removed as its duplicate). The final verdicts depend on which rows are left out,
    so this repeats until the removed rows no longer change (a second round only when a removed row
    is the earlier enrollment of a duplicate)."""
    left_out = None
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE _br_flagged AS {flagged_sql(conn, snapshot_date, schema)}"
    )
    for _ in range(MAX_LEFT_OUT_ROUNDS):
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE _br_pipeline AS "
            f"{verdicts_sql(conn, snapshot_date, schema, left_out, '_br_flagged')}"
        )
        conn.execute(f"CREATE OR REPLACE TEMP TABLE _br_decided AS {decided_sql(conn)}")
        conn.execute("DROP TABLE IF EXISTS _br_pipeline")
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE _br_removed AS SELECT DISTINCT program, source, record_id, "
            "person_id FROM _br_decided WHERE verdict = 'remove'"
        )
        if left_out is None:
            # is any removed row a person's earlier enrollment that a duplicate may point at?
            needed = conn.execute(
                "SELECT count(*) FROM _br_decided d JOIN _br_removed r ON r.person_id = d.person_id "
                "AND (r.program, r.source, r.record_id) <> (d.program, d.source, d.record_id) "
                "WHERE list_contains(d.reasons, 'duplicate_enrollment')"
            ).fetchall()[0][0]
        else:
            needed = conn.execute(
                "SELECT count(*) FROM ((SELECT program, source, record_id FROM _br_removed "
                "EXCEPT SELECT program, source, record_id FROM _br_left_out) UNION ALL "
                "(SELECT program, source, record_id FROM _br_left_out "
                "EXCEPT SELECT program, source, record_id FROM _br_removed))"
            ).fetchall()[0][0]
        if not needed:
            break
        conn.execute("CREATE OR REPLACE TEMP TABLE _br_left_out AS SELECT * FROM _br_removed")
        left_out = "_br_left_out"
    conn.execute("DROP TABLE IF EXISTS _br_removed")
    conn.execute("DROP TABLE IF EXISTS _br_left_out")
    conn.execute("DROP TABLE IF EXISTS _br_flagged")


_IN_FORCE = {
    "program": "VARCHAR",
    "roster_source": "VARCHAR",
    "record_id": "VARCHAR",
    "decision": "VARCHAR",
    "decision_reason": "VARCHAR",
    "decided_by": "VARCHAR",
    "decided_at": "DATE",
    "contradicted": "BOOLEAN",
}
_PUBLISHED_DECISION = {
    "program": "VARCHAR",
    "source": "VARCHAR",
    "record_id": "VARCHAR",
    "evidence_fingerprint": "VARCHAR",
    "decision": "VARCHAR",
    "decided_at": "DATE",
    "decided_by": "VARCHAR",
    "decision_fingerprint": "VARCHAR",
}
_HISTORY_DECISION = {
    "program": "VARCHAR",
    "source": "VARCHAR",
    "record_id": "VARCHAR",
    "decision": "VARCHAR",
    "decided_at": "DATE",
    "decided_by": "VARCHAR",
    "evidence_fingerprint": "VARCHAR",
    "decision_fingerprint": "VARCHAR",
    "determination_id": "BIGINT",
}


def decisions_in_force_sql(conn: duckdb.DuckDBPyConnection) -> str:
    """The person's decision in force per roster row (`decisions.review_in_force`; none before the
    first decision is handed back)."""
    return _optional_table(
        conn,
        {DECISIONS_IN_FORCE: _IN_FORCE},
        _IN_FORCE,
        f"SELECT program, roster_source, record_id, decision, decision_reason, decided_by, "
        f"decided_at, contradicted FROM {DECISIONS_IN_FORCE}",
    )


def previous_publication_sql(conn: duckdb.DuckDBPyConnection, previous: str = REVIEW_TABLE) -> str:
    """The last publication's fingerprints and decision, one row per roster row (rows quarantined
    for a repeated record_id share their key); none before the first publication."""
    return _optional_table(
        conn,
        {previous: _PUBLISHED_DECISION},
        _PUBLISHED_DECISION,
        f"SELECT program, source, record_id, evidence_fingerprint, decision, decided_at, decided_by, "
        f"decision_fingerprint FROM {previous} QUALIFY row_number() OVER ("
        f"PARTITION BY program, source, record_id ORDER BY decision_fingerprint NULLS LAST, "
        f"evidence_fingerprint) = 1",
    )


def decision_history_sql(conn: duckdb.DuckDBPyConnection) -> str:
    """Every published row's decision and fingerprints with the day it was published
    (`history.review_rows` + `history.determinations`; none before the first publication)."""
    return _optional_table(
        conn,
        {
            HISTORY_ROWS: _HISTORY_DECISION,
            HISTORY_DETERMINATIONS: ("determination_id", "published_at"),
        },
        {**_HISTORY_DECISION, "published_on": "DATE"},
        f"SELECT r.program, r.source, r.record_id, r.decision, r.decided_at, r.decided_by, "
        f"r.evidence_fingerprint, r.decision_fingerprint, r.determination_id, "
        f"CAST(d.published_at AS DATE) AS published_on "
        f"FROM {HISTORY_ROWS} r JOIN {HISTORY_DETERMINATIONS} d USING (determination_id)",
    )


def decided_sql(
    conn: duckdb.DuckDBPyConnection, pipeline: str = "_br_pipeline", previous: str = REVIEW_TABLE
) -> str:
    """The pipeline's rows (`pipeline`) with the person's decision in force on each
    (`decisions.review_in_force`, docs/decisions.md).

    A decision answers the evidence it was made on: the evidence fingerprint of the row in the last
    publication (`previous`; the worklist the officer worked from). That fingerprint is carried from
    publication to publication with the decision, and kept in `history.review_rows`: a row missing
    from the last publication takes it from the history (the same decision published before, else
    the determination current at `decided_at`); when nothing says what the decision answered, the
    row is 'reopened', never 'applied' (an old keep must not outlive a death it never saw). Two
    outcomes on the latest `decided_at` make the row 'contradicted' (review, the decision in force
    before shown). While
    the evidence is unchanged the decision is the verdict (`decision_status` 'applied'); when it
    changed (a death, a move, a new welfare record after a keep) the row goes back to `review`
    ('reopened') with the old decision shown, until a newer decision answers the new evidence."""
    decided = decisions_in_force_sql(conn)
    prev = previous_publication_sql(conn, previous)
    hist = decision_history_sql(conn)
    return f"""
WITH joined AS (
    SELECT v.* EXCLUDE (verdict), v.verdict AS pipeline_verdict,
           d.decision, d.decision_reason, d.decided_by, d.decided_at,
           coalesce(d.contradicted, FALSE) AS decision_contradicted,
           p.record_id IS NOT NULL AS in_previous,
           coalesce(p.decision = d.decision AND p.decided_at = d.decided_at AND p.decided_by = d.decided_by,
                    FALSE) AS previous_carries,
           p.decision_fingerprint AS previous_decision_fingerprint,
           p.evidence_fingerprint AS previous_evidence_fingerprint
    FROM {pipeline} v
    LEFT JOIN {decided} d ON d.program = v.program AND d.roster_source = v.source AND d.record_id = v.record_id
    LEFT JOIN {prev} p ON p.program = v.program AND p.source = v.source AND p.record_id = v.record_id
),
-- a decided row missing from the last publication: what the history knows of its decision
absent AS (
    SELECT DISTINCT program, source, record_id, decision, decided_at, decided_by FROM joined
    WHERE decision IS NOT NULL AND NOT in_previous
),
hist_carried AS (
    -- the same decision published before (the row left the roster and came back)
    SELECT a.program, a.source, a.record_id, h.decision_fingerprint
    FROM absent a JOIN {hist} h
      ON h.program = a.program AND h.source = a.source AND h.record_id = a.record_id
     AND h.decision = a.decision AND h.decided_at = a.decided_at AND h.decided_by = a.decided_by
    QUALIFY row_number() OVER (PARTITION BY a.program, a.source, a.record_id
                               ORDER BY h.determination_id DESC, h.decision_fingerprint NULLS LAST) = 1
),
hist_at AS (
    -- the determination current when the decision was made
    SELECT a.program, a.source, a.record_id, h.evidence_fingerprint
    FROM absent a JOIN {hist} h
      ON h.program = a.program AND h.source = a.source AND h.record_id = a.record_id
     AND h.published_on <= a.decided_at
    QUALIFY row_number() OVER (PARTITION BY a.program, a.source, a.record_id
                               ORDER BY h.determination_id DESC, h.evidence_fingerprint NULLS LAST) = 1
),
fingerprinted AS (
    SELECT j.* EXCLUDE (in_previous, previous_carries, previous_decision_fingerprint,
                        previous_evidence_fingerprint),
           CASE WHEN j.decision IS NULL THEN NULL
                -- the same decision was published before: the evidence it answered then (NULL, unknown,
                -- stays unknown: a decision never becomes applied by being carried)
                WHEN j.previous_carries THEN j.previous_decision_fingerprint
                WHEN hc.record_id IS NOT NULL THEN hc.decision_fingerprint
                -- a new decision on a published row: the evidence of the last publication (the worklist)
                WHEN j.in_previous THEN j.previous_evidence_fingerprint
                -- a row missing from the last publication: the evidence of the determination current
                -- at decided_at, or unknown (NULL: reopened, never applied)
                ELSE ha.evidence_fingerprint END AS decision_fingerprint
    FROM joined j
    LEFT JOIN hist_carried hc ON hc.program = j.program AND hc.source = j.source AND hc.record_id = j.record_id
    LEFT JOIN hist_at ha ON ha.program = j.program AND ha.source = j.source AND ha.record_id = j.record_id
)
SELECT * EXCLUDE (decision_contradicted),
       -- two outcomes on the latest decided_at: review, the decision in force before shown
       CASE WHEN decision_contradicted THEN 'review'
            WHEN decision IS NULL THEN pipeline_verdict
            WHEN decision_fingerprint = evidence_fingerprint THEN decision
            ELSE 'review' END AS verdict,
       CASE WHEN decision_contradicted THEN 'contradicted'
            WHEN decision IS NULL THEN NULL
            WHEN decision_fingerprint = evidence_fingerprint THEN 'applied'
            ELSE 'reopened' END AS decision_status
FROM fingerprinted
"""


# --------------------------------------------------------------------------------------------
# statistics and checks (used by the assets' metadata and asset checks)
# --------------------------------------------------------------------------------------------
def review_stats(
    conn: duckdb.DuckDBPyConnection, programs: Sequence[str] | None = None, schema: str = "main"
) -> dict:
    """Counts by verdict and reason, and monthly rupiah at stake; no personal data."""
    REVIEW_TABLE = review_table(schema)  # noqa: N806
    where = f"WHERE list_contains({sql_list(programs)}, program)" if programs else ""
    by_verdict = dict(
        conn.execute(
            f"SELECT verdict, count(*) FROM {REVIEW_TABLE} {where} GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    by_reason = dict(
        conn.execute(
            f"SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM {REVIEW_TABLE} {where}) GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    by_program = {
        p: {"keep": k, "remove": rm, "review": rv}
        for p, k, rm, rv in conn.execute(
            f"""SELECT program, count(*) FILTER (verdict = 'keep'), count(*) FILTER (verdict = 'remove'),
                       count(*) FILTER (verdict = 'review') FROM {REVIEW_TABLE} {where} GROUP BY 1 ORDER BY 1"""
        ).fetchall()
    }
    money = conn.execute(
        f"""SELECT coalesce(sum(nominal_bulanan) FILTER (verdict = 'remove'), 0),
                   coalesce(sum(nominal_bulanan) FILTER (verdict = 'review'), 0),
                   coalesce(sum(nominal_bulanan) FILTER (verdict = 'keep'), 0)
            FROM {REVIEW_TABLE} {where}"""
    ).fetchall()[0]
    return {
        "rows": sum(by_verdict.values()),
        "by_verdict": by_verdict,
        "by_reason": by_reason,
        "by_program": by_program,
        "monthly_rupiah_remove": int(money[0]),
        "monthly_rupiah_review": int(money[1]),
        "monthly_rupiah_keep": int(money[2]),
    }


def _kept_by_decision(alias: str) -> str:
    """A keep that a person decided on this very evidence (docs/decisions.md): a person confirmed
    the recipient alive or resident, or upheld an appeal. Such rows are not violations of the
    checks below; they are published with who decided and when."""
    return f"coalesce({alias}.decision_status = 'applied' AND {alias}.decision = 'keep', FALSE)"


def check_no_deceased_or_moved_keep(
    conn: duckdb.DuckDBPyConnection, schema: str = "main"
) -> tuple[int, pd.DataFrame]:
    """Keep rows whose golden person is dead or moved out of DKI at the snapshot (must be none).

    Re-derived from `main.golden_person` independently of the reason flags. Returns the count and a
    sample of (program, source, record_id) keys - never names or NIKs.
    """
    require_columns(conn, golden_table(schema), GOLDEN_PERSON_READ, STAGE)
    death = (
        "(g.tanggal_meninggal IS NOT NULL AND g.tanggal_meninggal <= b.snapshot_date) "
        "OR (g.is_alive = FALSE AND g.tanggal_meninggal IS NULL) "
        "OR (g.tinggal_di_dki = FALSE AND (g.tanggal_pindah IS NULL OR g.tanggal_pindah <= b.snapshot_date))"
    )
    sql = f"""SELECT b.program, b.source, b.record_id FROM {review_table(schema)} b
              JOIN {golden_table(schema)} g ON g.person_id = b.person_id
              WHERE b.verdict = 'keep' AND ({death}) AND NOT {_kept_by_decision("b")}"""
    n = int(scalar(conn, f"SELECT count(*) FROM ({sql})"))
    return n, conn.execute(sql + " ORDER BY 1, 2, 3 LIMIT 20").df()


def check_no_double_enrollment_keep(
    conn: duckdb.DuckDBPyConnection, rules: ProgramRules | None = None, schema: str = "main"
) -> tuple[int, pd.DataFrame]:
    """Persons with two keep rows in one program (or in two mutually exclusive programs)."""
    REVIEW_TABLE = review_table(schema)  # noqa: N806
    pairs = sorted(rules.exclusion_pairs()) if rules else []
    excl = " OR ".join(f"(a.program = {sql_str(x)} AND b.program = {sql_str(y)})" for x, y in pairs)
    sql = f"""SELECT DISTINCT a.program, a.source, a.record_id FROM {REVIEW_TABLE} a
              JOIN {REVIEW_TABLE} b ON a.person_id = b.person_id
               AND (a.source, a.record_id, a.program) <> (b.source, b.record_id, b.program)
              WHERE a.verdict = 'keep' AND b.verdict = 'keep' AND a.person_id IS NOT NULL
                AND NOT {_kept_by_decision("a")} AND NOT {_kept_by_decision("b")}
                AND (a.program = b.program {("OR " + excl) if excl else ""})"""
    n = int(scalar(conn, f"SELECT count(*) FROM ({sql})"))
    return n, conn.execute(sql + " ORDER BY 1, 2, 3 LIMIT 20").df()
