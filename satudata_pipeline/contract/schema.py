"""The one canonical schema of the clean stage: every `clean.<source>` table, whatever its source.

Written once here and read by clean/transform.py (which columns a source is cleaned into),
clean/assets.py (the table is created from it), link/matching.py (the columns carried into
`link.person_records`) and the test fixtures, so a column is added or retyped in one place.
docs/internal-tables.md describes the columns.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from satudata_pipeline.warehouse import columns

# Column -> DuckDB type, in table order. `quality_flags` (VARCHAR[]) follows them.
CLEAN_SCHEMA: dict[str, str] = {
    "source": "VARCHAR", "kind": "VARCHAR", "program": "VARCHAR", "record_id": "VARCHAR",
    "row_number": "BIGINT",
    "nik_raw": "VARCHAR", "nik": "VARCHAR", "nik_valid": "BOOLEAN", "nik_reason": "VARCHAR",
    "nik_dki": "BOOLEAN", "no_kk": "VARCHAR",
    "nama_asli": "VARCHAR", "nama": "VARCHAR", "nama_orang_tua": "VARCHAR", "first_name": "VARCHAR",
    "last_name": "VARCHAR", "nama_sorted": "VARCHAR",
    "jenis_kelamin": "VARCHAR", "tempat_lahir": "VARCHAR", "tanggal_lahir": "DATE",
    "alamat": "VARCHAR", "rt": "INTEGER", "rw": "INTEGER", "kelurahan": "VARCHAR", "kecamatan": "VARCHAR",
    "kota": "VARCHAR",
    "kode_kelurahan": "VARCHAR", "kode_kecamatan": "VARCHAR", "kode_kota": "VARCHAR",
    "tanggal_pemutakhiran": "DATE", "tanggal_meninggal": "DATE", "tanggal_pindah": "DATE",
    "kode_wilayah_tujuan": "VARCHAR", "pindah_keluar_dki": "BOOLEAN",
    "desil": "INTEGER", "disabilitas": "BOOLEAN", "punya_mobil": "BOOLEAN", "njop_di_atas_1m": "BOOLEAN",
    "jenjang": "VARCHAR", "nominal_bulanan": "BIGINT", "tanggal_mulai": "DATE",
}  # fmt: skip
CLEAN_COLUMNS: list[str] = list(CLEAN_SCHEMA)
QUALITY_FLAGS = ("quality_flags", "VARCHAR[]")

# Canonical fields delivered as dates (parsed with the source's date_format) and as yes/no values.
DATE_FIELDS: tuple[str, ...] = tuple(c for c, t in CLEAN_SCHEMA.items() if t == "DATE")
BOOL_FIELDS: tuple[str, ...] = ("disabilitas", "punya_mobil", "njop_di_atas_1m")

# School levels (jenjang) a roster row may carry, and the only ones programs/rules.yaml may price
# (`amount_by_jenjang`). One list for both, so a level the clean stage accepts can be priced by a
# YAML edit and a level the rules price is never discarded by cleaning. SLB (special-needs school,
# any level) is a level of its own: KJP Plus pays SLB pupils, but rules.yaml does not give the
# amount yet, so an SLB row is not checked against an amount until it does (docs/programs.md).
# Madrasah levels are their school level (MI = SD, MTs = SMP, MA = SMA) and are folded by
# JENJANG_ALIASES before the check, so they are not levels of their own.
JENJANG: tuple[str, ...] = ("SD", "SMP", "SMA", "SMK", "PKBM", "PT", "SLB")
JENJANG_ALIASES: dict[str, str] = {
    "MI": "SD", "MTS": "SMP", "MA": "SMA", "SMALB": "SMA", "UNIVERSITAS": "PT", "KULIAH": "PT",
}  # fmt: skip

# The columns of `clean.<source>` carried into `link.person_records`, in that table's order
# (link/matching.py derives the comparison columns from them).
LINKED_COLUMNS: tuple[str, ...] = (
    "source", "kind", "program", "record_id", "nik", "nik_valid", "no_kk", "nama", "jenis_kelamin",
    "tempat_lahir", "tanggal_lahir", "alamat", "rt", "rw", "kelurahan", "kecamatan", "kota",
    "kode_kelurahan", "kode_kecamatan", "kode_kota", "tanggal_pemutakhiran", "tanggal_meninggal",
    "tanggal_pindah", "kode_wilayah_tujuan", "pindah_keluar_dki", "desil", "disabilitas", "punya_mobil",
    "njop_di_atas_1m", "jenjang", "nominal_bulanan", "tanggal_mulai", "row_number", "nik_reason",
    "nik_dki", "nama_orang_tua", "quality_flags",
)  # fmt: skip


def column_type(column: str) -> str:
    """The DuckDB type of a clean column (quality_flags included)."""
    if column == QUALITY_FLAGS[0]:
        return QUALITY_FLAGS[1]
    return CLEAN_SCHEMA[column]


def clean_select_sql(quality_flags_sql: str = "CAST([] AS VARCHAR[])") -> str:
    """The SELECT list that turns a frame of CLEAN_COLUMNS into a clean table: every column cast to
    its type, then `quality_flags` from `quality_flags_sql`."""
    cols = [f"CAST({c} AS {t}) AS {c}" for c, t in CLEAN_SCHEMA.items()]
    cols.append(f"{quality_flags_sql} AS {QUALITY_FLAGS[0]}")
    return ",\n  ".join(cols)


# --------------------------------------------------------------------------------------------
# Row hashes at intake (history/intake.py): a row is "changed" when a hashed column changes.
# --------------------------------------------------------------------------------------------
# Clean columns that are not facts of the delivered row (its place, its kind), the raw spelling a
# cleaner normalises away, or values derived from another hashed column (the NIK's checks, the name's
# parts, the kecamatan and kota of the kelurahan). `nama_orang_tua` is not hashed yet: adding it
# would mark every row changed once.
UNHASHED_COLUMNS: frozenset[str] = frozenset({
    "source", "kind", "record_id", "row_number", "nik_raw", "nik_valid", "nik_reason", "nik_dki",
    "nama_asli", "nama_orang_tua", "first_name", "last_name", "nama_sorted", "kode_kecamatan",
    "kode_kota",
})  # fmt: skip
HASH_FIELDS: tuple[str, ...] = tuple(c for c in CLEAN_COLUMNS if c not in UNHASHED_COLUMNS)


# --------------------------------------------------------------------------------------------
# The input schema of the programs stage (programs/verdicts.py, programs/eligibility.py)
# --------------------------------------------------------------------------------------------
# The columns each table must have; the stage checks them (`require_columns`) before it reads, and
# never switches its SQL on which columns exist. `<schema>` is `staging` in the pipeline.
PERSON_RECORDS_READ: tuple[str, ...] = (
    "unique_id", "source", "kind", "program", "record_id", "nik", "nik_valid", "nama", "nama_sorted",
    "tanggal_lahir", "kode_kelurahan", "kode_kecamatan", "kode_kota", "tanggal_pemutakhiran",
    "tanggal_meninggal", "tanggal_pindah", "kode_wilayah_tujuan", "pindah_keluar_dki", "jenjang",
    "nominal_bulanan", "tanggal_mulai",
)  # fmt: skip
PERSON_SOURCE_LINK_READ: tuple[str, ...] = (
    "source", "record_id", "unique_id", "person_id", "link_method",
)  # fmt: skip
GOLDEN_PERSON_READ: tuple[str, ...] = (
    "person_id", "nik", "nama", "no_kk", "tanggal_lahir", "kode_kelurahan", "kode_kecamatan",
    "kode_kota", "in_civil_registry", "in_welfare_registry", "is_alive", "tanggal_meninggal",
    "tinggal_di_dki", "tanggal_pindah", "possible_death_evidence", "desil", "punya_mobil",
    "njop_di_atas_1m", "welfare_evidence", "welfare_verified", "disabilitas_any", "last_verified",
)  # fmt: skip
MATCH_PAIRS_READ: tuple[str, ...] = ("unique_id_l", "unique_id_r", "match_probability_without_nik")
EVENT_EVIDENCE_READ: tuple[str, ...] = ("unique_id", "conclusive", "evidence")


class SchemaError(ValueError):
    """A table a stage reads lacks columns of its fixed input schema (names table and columns)."""


def require_columns(
    conn: duckdb.DuckDBPyConnection, qualified: str, required: Iterable[str], stage: str
) -> None:
    """Raise SchemaError when `qualified` does not exist or lacks a column of `required`."""
    present = set(columns(conn, qualified))
    if not present:
        raise SchemaError(f"{stage}: table {qualified} does not exist (contract/schema.py)")
    missing = [c for c in required if c not in present]
    if missing:
        raise SchemaError(
            f"{stage}: table {qualified} lacks column(s) {', '.join(missing)} (contract/schema.py)"
        )
