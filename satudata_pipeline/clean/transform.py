"""Turn one source's raw rows into the canonical clean schema, and set aside the rows nobody can use.

The per-field cleaners (nik, names, dates, address, wilayah, values) are vectorised; this module only
maps the source's columns onto canonical fields, applies its `values:` maps, calls the cleaners and
collects quality flags. Nothing is dropped: every raw row ends up in `clean` or in `quarantine`.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd

from satudata_pipeline.clean.address import normalize_address, parse_rt_rw
from satudata_pipeline.clean.dates import parse_dates
from satudata_pipeline.clean.names import normalize_name
from satudata_pipeline.clean.nik import clean_nik, validate_nik
from satudata_pipeline.clean.values import parse_amount, parse_bool, parse_int
from satudata_pipeline.clean.wilayah import kode_from_kode_or_names
from satudata_pipeline.contract.sources import DATE_FIELDS, SourceSpec

CLEAN_COLUMNS = [
    "source", "kind", "program", "record_id", "row_number",
    "nik_raw", "nik", "nik_valid", "nik_reason", "nik_dki", "no_kk",
    "nama_asli", "nama", "nama_orang_tua", "first_name", "last_name", "nama_sorted",
    "jenis_kelamin", "tempat_lahir", "tanggal_lahir",
    "alamat", "rt", "rw", "kelurahan", "kecamatan", "kota",
    "kode_kelurahan", "kode_kecamatan", "kode_kota",
    "tanggal_pemutakhiran", "tanggal_meninggal", "tanggal_pindah",
    "kode_wilayah_tujuan", "pindah_keluar_dki",
    "desil", "disabilitas", "punya_mobil", "njop_di_atas_1m",
    "jenjang", "nominal_bulanan", "tanggal_mulai",
]
QUARANTINE_COLUMNS = ["source", "record_id", "row_number", "reason", "raw_values"]

SEX_DEFAULTS = {
    "L": "L", "LK": "L", "LAKI": "L", "LAKI-LAKI": "L", "LAKI LAKI": "L", "PRIA": "L", "M": "L", "MALE": "L",
    "P": "P", "PR": "P", "PEREMPUAN": "P", "WANITA": "P", "F": "P", "FEMALE": "P", "W": "P",
}
JENJANG = {"SD", "SMP", "SMA", "SMK", "PKBM", "PT", "MI", "MTS", "MA", "SLB"}
JENJANG_ALIASES = {"MI": "SD", "MTS": "SMP", "MA": "SMA", "SMALB": "SMA", "UNIVERSITAS": "PT", "KULIAH": "PT"}
BOOL_FIELDS = ("disabilitas", "punya_mobil", "njop_di_atas_1m")


def _apply_values(series: pd.Series, mapping: dict[str, str]) -> pd.Series:
    """The source's `values:` map, exact first, then ignoring case and surrounding spaces."""
    if not mapping:
        return series
    folded = {k.strip().upper(): v for k, v in mapping.items()}
    key = series.str.strip().str.upper()
    mapped = key.map(folded)
    exact = series.map(mapping)
    return exact.fillna(mapped).where(exact.notna() | mapped.notna(), series)


def _text(series: pd.Series) -> pd.Series:
    out = series.astype("object").str.strip()
    return out.where(out.notna() & (out != ""), None)


def clean_frame(raw: pd.DataFrame, source: SourceSpec, snapshot: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean `raw` (the raw table of `source`, text columns as delivered) into (clean, quarantine).

    `clean` holds CLEAN_COLUMNS plus boolean `_flag_*` columns (turned into the `quality_flags`
    list in SQL); `quarantine` holds QUARANTINE_COLUMNS.
    """
    n = len(raw)
    idx = raw.index
    field = {}
    for canonical, column in source.columns.items():
        values = _text(raw[column.strip()])
        field[canonical] = _apply_values(values, source.values.get(canonical, {}))

    def get(name: str) -> pd.Series:
        return field[name] if name in field else pd.Series([None] * n, index=idx, dtype="object")

    out = pd.DataFrame(index=idx)
    flags: dict[str, pd.Series] = {}
    out["source"] = source.name
    out["kind"] = source.kind
    out["program"] = source.program
    out["record_id"] = get("record_id")
    out["row_number"] = raw["_row_number"].astype("int64")

    # Names
    names = normalize_name(get("nama"))
    out["nama_asli"] = get("nama")
    for col in ("nama", "nama_orang_tua", "first_name", "last_name", "nama_sorted"):
        out[col] = names[col] if col in names else None

    # Sex
    sex = get("jenis_kelamin").str.upper()
    mapped_sex = sex.map(SEX_DEFAULTS)
    out["jenis_kelamin"] = mapped_sex
    flags["value_unmapped:jenis_kelamin"] = sex.notna() & mapped_sex.isna()

    # Dates
    for name in DATE_FIELDS:
        if name in field:
            parsed = parse_dates(get(name), source.date_format, snapshot,
                                 not_after_snapshot=name in ("tanggal_lahir", "tanggal_meninggal", "tanggal_pemutakhiran"))
            out[name] = parsed["value"]
            flags[f"date_unparseable:{name}"] = parsed["flag"].eq("unparseable")
            flags[f"date_impossible:{name}"] = parsed["flag"].eq("impossible")
        else:
            out[name] = pd.Series(pd.NaT, index=idx, dtype="datetime64[ns]")

    # NIK and KK
    out["nik_raw"] = get("nik")
    out["nik"] = clean_nik(get("nik"))
    nik_check = validate_nik(get("nik"), out["tanggal_lahir"], out["jenis_kelamin"])
    out["nik_valid"] = nik_check["nik_valid"].astype(bool)
    out["nik_reason"] = nik_check["nik_reason"]
    out["nik_dki"] = nik_check["nik_dki"].astype(bool)
    flags["nik_missing"] = out["nik_reason"].eq("missing")
    flags["nik_invalid"] = ~out["nik_valid"] & ~flags["nik_missing"]
    flags["nik_non_dki"] = out["nik_valid"] & ~out["nik_dki"]
    kk = clean_nik(get("no_kk"))
    out["no_kk"] = kk.where(kk.str.len() == 16, None) if kk.notna().any() else kk
    flags["no_kk_invalid"] = get("no_kk").notna() & out["no_kk"].isna()

    # Place of birth, address, region
    out["tempat_lahir"] = get("tempat_lahir").str.upper().str.replace(r"\s+", " ", regex=True)
    out["alamat"] = normalize_address(get("alamat"))
    out["rt"] = parse_rt_rw(get("rt"))
    out["rw"] = parse_rt_rw(get("rw"))
    wil = kode_from_kode_or_names(get("kode_kelurahan"), get("kelurahan"), get("kecamatan"), get("kota"))
    for col in ("kode_kelurahan", "kode_kecamatan", "kode_kota", "kelurahan", "kecamatan", "kota"):
        out[col] = wil[col]
    any_region = get("kode_kelurahan").notna() | get("kelurahan").notna()
    flags["wilayah_unknown"] = any_region & wil["wilayah_flag"].eq("wilayah_unknown")
    flags["wilayah_ambiguous"] = any_region & wil["wilayah_flag"].eq("wilayah_ambiguous")

    # Migration
    tujuan = get("kode_wilayah_tujuan").str.replace(r"\D", "", regex=True)
    out["kode_wilayah_tujuan"] = tujuan.where(tujuan.str.len() >= 2, None)
    out["pindah_keluar_dki"] = np.where(
        out["kode_wilayah_tujuan"].notna(), ~out["kode_wilayah_tujuan"].fillna("").str.startswith("31"), None
    )
    if "kode_wilayah_tujuan" in field:
        flags["kode_tujuan_invalid"] = out["kode_wilayah_tujuan"].isna()

    # Welfare
    desil = parse_int(get("desil"))
    out["desil"] = desil.where(desil.between(1, 10), pd.NA).astype("Int64")
    flags["value_invalid:desil"] = get("desil").notna() & out["desil"].isna()
    for name in BOOL_FIELDS:
        values, unknown = parse_bool(get(name))
        out[name] = values
        flags[f"value_unmapped:{name}"] = unknown.astype(bool)

    # Roster
    jenjang = get("jenjang").str.upper().str.replace(r"[^A-Z]", "", regex=True)
    jenjang = jenjang.map(lambda v: JENJANG_ALIASES.get(v, v) if isinstance(v, str) else v)
    out["jenjang"] = jenjang.where(jenjang.isin(JENJANG), None)
    flags["value_unmapped:jenjang"] = jenjang.notna() & out["jenjang"].isna()
    out["nominal_bulanan"] = parse_amount(get("nominal_bulanan")).astype("Int64")
    flags["value_invalid:nominal_bulanan"] = get("nominal_bulanan").notna() & out["nominal_bulanan"].isna()

    # Quarantine: rows nobody can use
    reason = pd.Series([None] * n, index=idx, dtype="object")
    parse_error = raw["_parse_error"]
    reason = reason.mask(parse_error.notna() & reason.isna(), "unreadable_row")
    reason = reason.mask(out["record_id"].isna() & reason.isna(), "blank_record_id")
    reason = reason.mask((out["nama"].isna() | out["nama"].eq("")) & reason.isna(), "blank_name")
    # Every row of a repeated id: we cannot tell which copy is right, and (source, record_id) must
    # name one row downstream, so the provider corrects it.
    dup = out["record_id"].notna() & out["record_id"].duplicated(keep=False)
    reason = reason.mask(dup & reason.isna(), "duplicate_record_id")

    bad = reason.notna()
    provenance = [c for c in raw.columns if c.startswith("_")]
    raw_json = (
        raw.loc[bad].drop(columns=provenance).to_dict(orient="records") if bad.any() else []
    )
    quarantine = pd.DataFrame(
        {
            "source": source.name,
            "record_id": out.loc[bad, "record_id"].to_numpy(dtype=object),
            "row_number": out.loc[bad, "row_number"].to_numpy(),
            "reason": reason[bad].to_numpy(dtype=object),
            "raw_values": [json.dumps(r, ensure_ascii=False, default=str) for r in raw_json],
        },
        columns=QUARANTINE_COLUMNS,
    )
    clean = out.loc[~bad, CLEAN_COLUMNS].copy()
    for name, mask in flags.items():
        clean[f"_flag_{name}"] = mask.loc[~bad].fillna(False).astype(bool).to_numpy()
    return clean.reset_index(drop=True), quarantine
