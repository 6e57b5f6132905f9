"""Turn one source's raw rows into the canonical clean schema, and set aside the rows nobody can use.

The per-field cleaners (nik, names, dates, address, wilayah, values) are vectorised; this module only
maps the source's columns onto canonical fields, applies its `values:` maps, calls the cleaners and
collects quality flags. Nothing is dropped: every raw row ends up in `clean` or in `quarantine`.

Large sources: repeated values are cleaned once (`on_uniques`), the rows to quarantine are decided
first so that only the others are cleaned, and the clean frame is assembled once from its columns.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from satudata_pipeline.clean.address import normalize_address, parse_rt_rw
from satudata_pipeline.clean.dates import parse_dates
from satudata_pipeline.clean.names import normalize_name
from satudata_pipeline.clean.nik import clean_and_validate_nik, clean_nik
from satudata_pipeline.clean.values import on_uniques, parse_amount, parse_bool, parse_int
from satudata_pipeline.clean.wilayah import kode_from_kode_or_names
from satudata_pipeline.contract.schema import (
    BOOL_FIELDS,
    CLEAN_COLUMNS,
    DATE_FIELDS,
    JENJANG,
    JENJANG_ALIASES,
)
from satudata_pipeline.contract.sources import SourceSpec

QUARANTINE_COLUMNS = ["source", "record_id", "row_number", "reason", "raw_values"]

SEX_DEFAULTS = {
    "L": "L",
    "LK": "L",
    "LAKI": "L",
    "LAKI-LAKI": "L",
    "LAKI LAKI": "L",
    "PRIA": "L",
    "M": "L",
    "MALE": "L",
    "P": "P",
    "PR": "P",
    "PEREMPUAN": "P",
    "WANITA": "P",
    "F": "P",
    "FEMALE": "P",
    "W": "P",
}


def _constant(value, index: pd.Index) -> pd.Series:
    """`value` on every row of `index` (object dtype)."""
    return pd.Series(np.full(len(index), value, dtype=object), index=index, dtype=object)


def _per_value(series: pd.Series, func) -> pd.Series:
    """`func` (vectorised) on the distinct non-null values of an object Series, taken back to
    the rows; nulls stay None."""
    out = on_uniques(series, func).astype(object)
    out = out.where(out.notna(), None)
    out.name = series.name
    return out


def _apply_values(series: pd.Series, mapping: dict[str, str]) -> pd.Series:
    """The source's `values:` map, exact first, then ignoring case and surrounding spaces."""
    if not mapping:
        return series
    folded = {k.strip().upper(): v for k, v in mapping.items()}

    def remap(u: pd.Series) -> pd.Series:
        mapped = u.str.strip().str.upper().map(folded)
        exact = u.map(mapping)
        return exact.fillna(mapped).where(exact.notna() | mapped.notna(), u)

    return _per_value(series, remap)


def _text(series: pd.Series) -> pd.Series:
    """Trimmed text as object, None when blank (one pass in Python over the column)."""
    if pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
        out = series.astype("object").str.strip()
        return out.where(out.notna() & (out != ""), None)
    values = series.to_numpy(dtype=object)
    cells = np.fromiter(
        ((v.strip() or None) if isinstance(v, str) else None for v in values),
        dtype=object,
        count=len(values),
    )
    return pd.Series(cells, index=series.index, dtype=object, name=series.name)


def _max_chars() -> int:
    from satudata_pipeline.contract.intake import load_intake_rules

    return load_intake_rules().fields.max_chars


def _mapped_field(raw: pd.DataFrame, source: SourceSpec, canonical: str) -> pd.Series:
    """One canonical field as the cleaners see it: trimmed text with the source's `values:` map."""
    values = _text(raw[source.columns[canonical].strip()])
    return _apply_values(values, source.values.get(canonical, {}))


def mapped_record_id(raw: pd.DataFrame, source: SourceSpec) -> pd.Series:
    """The record id of each row exactly as `clean_frame` judges repeats by (mapped, hostile values
    blanked); None where the source maps no record id. For finding repeats across chunks."""
    if "record_id" not in source.columns:
        return _constant(None, raw.index)
    values = _mapped_field(raw, source, "record_id")
    _, cells = _hostile_values({"record_id": values}, _max_chars())
    return values.where(~cells["record_id"], None) if "record_id" in cells else values


def clean_frame(
    raw: pd.DataFrame,
    source: SourceSpec,
    snapshot: dt.date,
    repeated_rows: set[int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean `raw` (the raw table of `source`, text columns as delivered) into (clean, quarantine).

    `clean` holds CLEAN_COLUMNS plus boolean `_flag_*` columns (turned into the `quality_flags`
    list in SQL); `quarantine` holds QUARANTINE_COLUMNS. `repeated_rows`: when `raw` is one chunk
    of the source, the row numbers (of any chunk) whose record id repeats in the whole source;
    None = judge repeats within `raw`.
    """
    max_chars = _max_chars()
    field = {canonical: _mapped_field(raw, source, canonical) for canonical in source.columns}
    # Hostile values (a control character, a line break, a 10 MB "name") are quarantined and blanked
    # here, before any cleaner or the linkage sees them.
    hostile, cells = _hostile_values(field, max_chars)
    field = {
        name: values.where(~cells[name], None) if name in cells else values
        for name, values in field.items()
    }
    names = normalize_name(field["nama"] if "nama" in field else _constant(None, raw.index))
    row_number = raw["_row_number"].astype("int64")

    # Quarantine first: the rows nobody can use are set aside, only the others are cleaned.
    record_id = field["record_id"] if "record_id" in field else _constant(None, raw.index)
    quarantine, bad = _quarantine(
        raw, source, record_id, row_number, names["nama"], hostile, max_chars, repeated_rows
    )
    if bad.any():
        keep = ~bad.to_numpy(dtype=bool)
        field = {name: values[keep] for name, values in field.items()}
        names = names[keep]
        row_number = row_number[keep]
    idx = row_number.index

    def get(name: str) -> pd.Series:
        return field[name] if name in field else _constant(None, idx)

    # The clean columns as Series on the kept rows' index; one DataFrame is built at the end
    # (assigning each column into a wide DataFrame would copy it).
    out: dict[str, pd.Series] = {}
    flags: dict[str, pd.Series] = {}
    out["source"] = _constant(source.name, idx)
    out["kind"] = _constant(source.kind, idx)
    out["program"] = _constant(source.program, idx)
    out["record_id"] = get("record_id")
    out["row_number"] = row_number

    # Names
    out["nama_asli"] = get("nama")
    for col in ("nama", "nama_orang_tua", "first_name", "last_name", "nama_sorted"):
        out[col] = names[col] if col in names else _constant(None, idx)

    # Sex
    sex = get("jenis_kelamin").str.upper()
    mapped_sex = sex.map(SEX_DEFAULTS)
    out["jenis_kelamin"] = mapped_sex
    flags["value_unmapped:jenis_kelamin"] = sex.notna() & mapped_sex.isna()

    # Dates
    for name in DATE_FIELDS:
        if name in field:
            parsed = parse_dates(
                get(name),
                source.date_format,
                snapshot,
                not_after_snapshot=name
                in ("tanggal_lahir", "tanggal_meninggal", "tanggal_pemutakhiran"),
            )
            out[name] = parsed["value"]
            flags[f"date_unparseable:{name}"] = parsed["flag"].eq("unparseable")
            flags[f"date_impossible:{name}"] = parsed["flag"].eq("impossible")
        else:
            out[name] = pd.Series(pd.NaT, index=idx, dtype="datetime64[ns]")

    # NIK and KK
    out["nik_raw"] = get("nik")
    out["nik"], nik_check = clean_and_validate_nik(
        get("nik"), out["tanggal_lahir"], out["jenis_kelamin"]
    )
    out["nik_valid"] = nik_check["nik_valid"].astype(bool)
    out["nik_reason"] = nik_check["nik_reason"]
    out["nik_dki"] = nik_check["nik_dki"].astype(bool)
    flags["nik_missing"] = out["nik_reason"].eq("missing")
    flags["nik_invalid"] = ~out["nik_valid"] & ~flags["nik_missing"]
    flags["nik_non_dki"] = out["nik_valid"] & ~out["nik_dki"]
    out["no_kk"] = clean_nik(get("no_kk"))  # 16 digits or None
    flags["no_kk_invalid"] = get("no_kk").notna() & out["no_kk"].isna()

    # Place of birth, address, region
    out["tempat_lahir"] = _per_value(
        get("tempat_lahir"), lambda u: u.str.upper().str.replace(r"\s+", " ", regex=True)
    )
    out["alamat"] = normalize_address(get("alamat"))
    out["rt"] = parse_rt_rw(get("rt"))
    out["rw"] = parse_rt_rw(get("rw"))
    wil = kode_from_kode_or_names(
        get("kode_kelurahan"), get("kelurahan"), get("kecamatan"), get("kota")
    )
    for col in ("kode_kelurahan", "kode_kecamatan", "kode_kota", "kelurahan", "kecamatan", "kota"):
        out[col] = wil[col]
    any_region = get("kode_kelurahan").notna() | get("kelurahan").notna()
    flags["wilayah_unknown"] = any_region & wil["wilayah_flag"].eq("wilayah_unknown")
    flags["wilayah_ambiguous"] = any_region & wil["wilayah_flag"].eq("wilayah_ambiguous")

    # Migration
    tujuan = _per_value(get("kode_wilayah_tujuan"), lambda u: u.str.replace(r"\D", "", regex=True))
    out["kode_wilayah_tujuan"] = tujuan.where(tujuan.str.len() >= 2, None)
    out["pindah_keluar_dki"] = pd.Series(
        np.where(
            out["kode_wilayah_tujuan"].notna(),
            ~out["kode_wilayah_tujuan"].fillna("").str.startswith("31"),
            None,
        ),
        index=idx,
        dtype=object,
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
    jenjang = _per_value(
        get("jenjang"),
        lambda u: (
            u.str.upper()
            .str.replace(r"[^A-Z]", "", regex=True)
            .map(lambda v: JENJANG_ALIASES.get(v, v))
        ),
    )
    out["jenjang"] = jenjang.where(jenjang.isin(JENJANG), None)
    flags["value_unmapped:jenjang"] = jenjang.notna() & out["jenjang"].isna()
    out["nominal_bulanan"] = parse_amount(get("nominal_bulanan")).astype("Int64")
    flags["value_invalid:nominal_bulanan"] = (
        get("nominal_bulanan").notna() & out["nominal_bulanan"].isna()
    )

    columns = {col: out[col] for col in CLEAN_COLUMNS}
    for name, mask in flags.items():
        columns[f"_flag_{name}"] = pd.Series(mask.fillna(False).astype(bool).to_numpy(), index=idx)
    clean = pd.DataFrame(columns, copy=False)  # no copy, no consolidation of the wide frame
    clean.index = pd.RangeIndex(len(clean))
    return clean, quarantine


# C0 controls and DEL except TAB, CR and LF (line breaks have their own reason); RE2 syntax (pyarrow)
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
LINE_BREAK = r"[\r\n\x{85}\x{2028}\x{2029}]"
SUSPICIOUS = r"[\x00-\x08\x0a-\x1f\x7f\x{85}\x{2028}\x{2029}]"  # CONTROL or LINE_BREAK
HOSTILE_REASONS = ("field_too_long", "control_character", "line_break_in_field")


def _hostile_values(
    field: dict[str, pd.Series], max_chars: int
) -> tuple[dict[str, pd.Series], dict[str, pd.Series]]:
    """Mapped values that no register holds legitimately: longer than `max_chars` (intake_rules.yaml),
    a control character (NUL, ESC...), a line break inside the value (a name or an id over two
    lines; also what a stray quote that merged rows leaves behind).

    Returns the rows per reason, and per field the cells to blank (only fields that have any).
    Vectorised with pyarrow (RE2 in C++): millions of cells per second."""
    index = next(iter(field.values())).index if field else pd.RangeIndex(0)
    rows = {reason: np.zeros(len(index), dtype=bool) for reason in HOSTILE_REASONS}
    cells: dict[str, pd.Series] = {}

    def mask(array) -> np.ndarray:
        return pc.fill_null(array, False).to_numpy(zero_copy_only=False).astype(bool)

    for name, values in field.items():
        cells_text = values.to_numpy(dtype=object)
        cells_text = (
            np.where([isinstance(v, str) for v in cells_text], cells_text, None)
            if not all(v is None or isinstance(v, str) for v in cells_text[:1000])
            else cells_text
        )
        arr = pa.array(cells_text, type=pa.string(), from_pandas=True)
        long = mask(pc.greater(pc.utf8_length(arr), max_chars))
        odd = mask(pc.match_substring_regex(arr, SUSPICIOUS))
        if not long.any() and not odd.any():
            continue  # the usual case: one length pass and one regex pass per column
        control = mask(pc.match_substring_regex(arr, CONTROL)) & ~long
        line_break = mask(pc.match_substring_regex(arr, LINE_BREAK)) & ~long
        bad = long | control | line_break
        rows["field_too_long"] |= long
        rows["control_character"] |= control
        rows["line_break_in_field"] |= line_break
        cells[name] = pd.Series(bad, index=index)
    return {reason: pd.Series(m, index=index) for reason, m in rows.items()}, cells


def _bounded(value, max_chars: int):
    """A raw value as kept in the quarantine: at most `max_chars` characters, so a 10 MB cell is not
    copied around; the provider still sees where it starts and how long it was."""
    if isinstance(value, str) and len(value) > max_chars:
        return value[:max_chars] + f"... [{len(value)} characters]"
    return value


def _quarantine(
    raw: pd.DataFrame,
    source: SourceSpec,
    record_id: pd.Series,
    row_number: pd.Series,
    nama: pd.Series,
    hostile: dict[str, pd.Series] | None = None,
    max_chars: int = 1000,
    repeated_rows: set[int] | None = None,
) -> tuple[pd.DataFrame, pd.Series]:
    """The rows nobody can use, with the reason and the raw values, and the mask of those rows."""
    hostile = hostile or {}
    repeated = (
        record_id.notna() & record_id.duplicated(keep=False)
        if repeated_rows is None
        else row_number.isin(repeated_rows)
    )
    # Every row of a repeated id: we cannot tell which copy is right, and (source, record_id) must
    # name one row downstream, so the provider corrects it.
    checks = [  # the first that applies is the reason
        ("unreadable_row", raw["_parse_error"].notna()),
        *((reason, hostile[reason]) for reason in HOSTILE_REASONS if reason in hostile),
        ("blank_record_id", record_id.isna()),
        ("blank_name", nama.isna() | nama.eq("")),
        ("duplicate_record_id", repeated),
    ]
    reasons = np.full(len(raw), None, dtype=object)
    for label, applies in reversed(checks):
        reasons[applies.to_numpy(dtype=bool)] = label
    reason = pd.Series(reasons, index=raw.index, dtype=object)

    bad = reason.notna()
    provenance = [c for c in raw.columns if c.startswith("_")]
    raw_json = raw.loc[bad].drop(columns=provenance).to_dict(orient="records") if bad.any() else []
    quarantine = pd.DataFrame(
        {
            "source": source.name,
            "record_id": record_id[bad].to_numpy(dtype=object),
            "row_number": row_number[bad].to_numpy(),
            "reason": reason[bad].to_numpy(dtype=object),
            "raw_values": [
                json.dumps(
                    {k: _bounded(v, max_chars) for k, v in r.items()},
                    ensure_ascii=False,
                    default=str,
                )
                for r in raw_json
            ],
        },
        columns=QUARANTINE_COLUMNS,
    )
    return quarantine, bad
