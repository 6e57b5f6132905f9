"""Re-deliver a data directory in the shape another provider could have sent it.

`reshape(src, dst, seed)` reads every source of the delivery in `src` (through its own
`sources.yaml`), decodes each mapped field to its meaning (a date, a sex, a yes/no, a number, a code),
and writes the same rows in `dst` with other column names, column order, extra unmapped columns,
file type, encoding, delimiter, date representation and value codes, plus the `sources.yaml` that
maps the new shape. Row order and record ids are kept and `truth/` is copied, so the ground truth
(keys `source, row_number, record_id`) still holds.

Only representations the data contract (docs/data-contract.md) or a documented cleaner accepts are
produced; docs/synthetic-data.md ("Foreign deliveries") lists them. Nothing here imports the
pipeline but the canonical field names (contract/schema.py): the reader below is independent of `satudata_pipeline.sources.readers`, so a shape the
pipeline cannot read shows up as a failure, not as two copies of the same bug.

The same (src, seed) always gives the same files.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from satudata_pipeline.contract.schema import BOOL_FIELDS, DATE_FIELDS

__all__ = ["reshape", "TRANSFORMS"]

ID_NUMBER_FIELDS = ("nik", "no_kk")
XLSX_MAX_ROWS = 30_000  # a provider does not send 1M rows in a workbook, and openpyxl is slow

# --- the vocabulary ---------------------------------------------------------------------------
# Per canonical field, provider column-name stems (words); a per-source style renders them.
FIELD_STEMS: dict[str, list[tuple[str, ...]]] = {
    "record_id": [
        ("id",),
        ("id", "penerima"),
        ("no", "registrasi"),
        ("no", "reg"),
        ("id", "art"),
        ("kode", "unik"),
        ("id", "data"),
        ("no", "urut", "data"),
    ],
    "nik": [
        ("nik",),
        ("no", "nik"),
        ("nomor", "induk", "kependudukan"),
        ("nik", "ktp"),
        ("no", "ktp"),
        ("nik", "penerima"),
    ],
    "no_kk": [("no", "kk"), ("nomor", "kk"), ("nokk",), ("nomor", "kartu", "keluarga"), ("kk",)],
    "nama": [
        ("nama",),
        ("nama", "lengkap"),
        ("nm", "penerima"),
        ("nama", "penerima"),
        ("nama", "lgkp"),
        ("nama", "art"),
        ("nama", "kpm"),
    ],
    "jenis_kelamin": [
        ("jenis", "kelamin"),
        ("jk",),
        ("jns", "kel"),
        ("kelamin",),
        ("sex",),
        ("l/p",),
    ],
    "tempat_lahir": [("tempat", "lahir"), ("tmp", "lahir"), ("tmpt", "lhr"), ("tempat", "lhr")],
    "tanggal_lahir": [
        ("tanggal", "lahir"),
        ("tgl", "lahir"),
        ("tgl", "lhr"),
        ("tgllahir",),
        ("tanggal", "lahir", "art"),
    ],
    "alamat": [
        ("alamat",),
        ("alamat", "lengkap"),
        ("almt",),
        ("alamat", "domisili"),
        ("alamat", "rumah"),
    ],
    "rt": [("rt",), ("no", "rt"), ("rt", "domisili")],
    "rw": [("rw",), ("no", "rw"), ("rw", "domisili")],
    "kelurahan": [("kelurahan",), ("kel",), ("nama", "kel"), ("desa/kelurahan",), ("nm", "kel")],
    "kecamatan": [("kecamatan",), ("kec",), ("nama", "kec"), ("nm", "kec")],
    "kota": [
        ("kota",),
        ("kabupaten/kota",),
        ("kab/kota",),
        ("nama", "kab"),
        ("wilayah",),
        ("kota", "adm"),
    ],
    "kode_kelurahan": [
        ("kode", "kelurahan"),
        ("kd", "kel"),
        ("kode", "wilayah"),
        ("kode", "kel"),
        ("kdkel",),
        ("kode", "desa"),
    ],
    "tanggal_pemutakhiran": [
        ("tgl", "update"),
        ("tanggal", "pemutakhiran"),
        ("tgl", "verval"),
        ("tgl", "verifikasi"),
        ("last", "update"),
        ("tanggal", "perbaikan"),
    ],
    "tanggal_meninggal": [
        ("tgl", "meninggal"),
        ("tanggal", "kematian"),
        ("tgl", "mati"),
        ("tgl", "wafat"),
    ],
    "tanggal_pindah": [("tgl", "pindah"), ("tanggal", "pindah"), ("tgl", "skpwni")],
    "kode_wilayah_tujuan": [
        ("kode", "wilayah", "tujuan"),
        ("kd", "wil", "tujuan"),
        ("kode", "tujuan"),
        ("wilayah", "tujuan"),
    ],
    "desil": [
        ("desil",),
        ("desil", "kesejahteraan"),
        ("peringkat", "desil"),
        ("kelompok", "desil"),
    ],
    "disabilitas": [
        ("disabilitas",),
        ("penyandang", "disabilitas"),
        ("difabel",),
        ("sts", "disabilitas"),
    ],
    "punya_mobil": [
        ("punya", "mobil"),
        ("kepemilikan", "mobil"),
        ("aset", "mobil"),
        ("memiliki", "mobil"),
    ],
    "njop_di_atas_1m": [
        ("njop", "di", "atas", "1m"),
        ("njop", "gt", "1m"),
        ("njop", "lebih", "1", "m"),
        ("aset", "njop", "1m"),
    ],
    "jenjang": [("jenjang",), ("jenjang", "pendidikan"), ("tingkat",), ("jenjang", "sekolah")],
    "nominal_bulanan": [
        ("nominal",),
        ("nilai", "bantuan"),
        ("besaran",),
        ("nominal", "per", "bulan"),
        ("jml", "bantuan"),
    ],
    "tanggal_mulai": [
        ("tmt",),
        ("tgl", "mulai"),
        ("tanggal", "mulai", "bantuan"),
        ("tmt", "bantuan"),
        ("tgl", "aktif"),
    ],
}
JUNK_STEMS = [
    ("no",),
    ("keterangan",),
    ("ket",),
    ("status", "verval"),
    ("operator",),
    ("tgl", "input"),
    ("sumber", "data"),
    ("catatan",),
    ("flag", "ganda"),
    ("periode",),
    ("kode", "batch"),
    ("petugas",),
    ("status", "data"),
]
JUNK_TEXT = [
    "",
    "-",
    "OK",
    "VALID",
    "PERLU VERIFIKASI",
    "BARU",
    "LAMA",
    "SIKS-NG",
    "MANUAL",
    "IMPORT 2026",
]
STYLES = ("UPPER_SNAKE", "Title Case", "lower_snake", "UPPER SPACE", "CamelCase")

# Sex codes: (male, female, contract understands without a map)
SEX_CODES = [
    ("L", "P", True),
    ("LAKI-LAKI", "PEREMPUAN", True),
    ("PRIA", "WANITA", True),
    ("M", "F", True),
    ("Laki-laki", "Perempuan", False),
    ("1", "2", False),
    ("LK", "PR", False),
    ("Lk", "Pr", False),
    ("Pria", "Wanita", False),
    ("L", "W", False),
]
# Yes/no codes: (yes, no, in the contract's list: true/false, 1/0, Ya/Tidak, Y/T in any case)
BOOL_CODES = [
    ("true", "false", True),
    ("TRUE", "FALSE", True),
    ("1", "0", True),
    ("Ya", "Tidak", True),
    ("YA", "TIDAK", True),
    ("Y", "T", True),
    ("y", "t", True),
    ("Y", "N", False),
    ("1", "2", False),
    ("Ada", "Tidak Ada", False),
    ("Yes", "No", False),
    ("YA", "TDK", False),
]
# strftime formats for text dates (English month names, as Excel writes them in the C locale).
DATE_FORMATS = [
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%d-%m-%Y",
    "%Y%m%d",
    "%d.%m.%Y",
    "%m/%d/%Y",
    "%Y/%m/%d",
    "%d-%b-%Y",
    "%d %B %Y",
    "%Y-%m-%d %H:%M:%S",
]
XLSX_DATE_NUMFMT = ["dd/mm/yyyy", "yyyy-mm-dd", "d mmm yyyy", "dd-mm-yyyy", "m/d/yyyy"]
ENCODINGS = ["utf-8", "utf-8-sig", "cp1252", "latin-1"]
DELIMITERS = [",", ";", "|", "\t"]
JENJANG_CODES = {"SD": "1", "SMP": "2", "SMA": "3", "SMK": "4", "PKBM": "5", "PT": "6"}
JENJANG_WORDS = {
    "SD": "Sekolah Dasar",
    "SMP": "Sekolah Menengah Pertama",
    "SMA": "Sekolah Menengah Atas",
    "SMK": "Sekolah Menengah Kejuruan",
    "PKBM": "Paket (PKBM)",
    "PT": "Perguruan Tinggi",
}

TRANSFORMS = {
    "column names": "every column renamed (UPPER_SNAKE, Title Case, lower_snake, UPPER SPACE, CamelCase; "
    "Indonesian abbreviations), order shuffled",
    "junk columns": "1-4 unmapped columns, one header twice, sometimes a blank-headed index column",
    "file type": "csv / parquet / xlsx (xlsx up to 30k rows), other extensions (.txt, .tsv, .CSV, .pq, "
    ".dat with format:), sometimes in a sub-folder",
    "csv": "encoding utf-8 / utf-8-sig (declared utf-8 or utf-8-sig) / cp1252 / latin-1 (only when every "
    "character is representable), or utf-16 for tab-separated .txt; delimiter , ; | TAB declared or "
    "left to detection; LF or CRLF; minimal or full quoting",
    "dates": "text in one of DATE_FORMATS (declared), native date32/timestamp or xlsx date cells, Excel serials",
    "sex": "one of SEX_CODES, `values:` map unless the contract understands the pair",
    "yes/no": "one of BOOL_CODES per field (map unless in the contract's list), native booleans, 1/0 numbers",
    "codes": "kode_kelurahan dotted / undotted / numeric cell; kode_wilayah_tujuan dotted or not; RT/RW "
    "padded to 1-3 digits or numeric cells; desil number / text / `Desil N` with a map; jenjang as "
    "is, numeric codes or words with a map; nominal as number, text, float cell or `Rp 300.000`",
    "record_id": "kept as text, or a number cell when every id is all digits without a leading zero",
    "nik/no_kk": "text; in csv sometimes with Excel's leading apostrophe; in parquet sometimes int64 "
    "(or float64 when every value is exact in a double)",
}


class Raw(str):
    """A value the reshaper could not decode: written back exactly as delivered."""


# --- reading the original delivery --------------------------------------------------------------


def _csv_delim(spec: dict, header_line: str) -> str:
    d = spec.get("delimiter")
    if d:
        return "\t" if d in ("\\t", "tab", "TAB") else d
    counts = {c: header_line.count(c) for c in (",", ";", "|", "\t")}
    best = max(counts, key=lambda c: counts[c])
    return best if counts[best] else ","


def _read(path: Path, spec: dict) -> tuple[list[str], list[list[Any]]]:
    """Header and columns (python values; '' and whitespace-free blanks kept as delivered)."""
    fmt = spec.get("format") or {".parquet": "parquet", ".pq": "parquet", ".xlsx": "xlsx"}.get(
        path.suffix.lower(), "csv"
    )
    if fmt == "csv":
        enc = spec.get("encoding") or "utf-8"
        if enc.lower().replace("_", "-") in ("utf-8", "utf8"):
            enc = "utf-8-sig"
        text = path.read_text(encoding=enc)
        first = text.split("\n", 1)[0]
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=_csv_delim(spec, first)))
        header, body = (
            rows[0],
            [r for r in rows[1:] if r and not (len(r) == 1 and not r[0].strip())],
        )
        cols = [[(r[i] if i < len(r) else "") or None for r in body] for i in range(len(header))]
        return header, cols
    if fmt == "parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(path)
        return list(t.column_names), [t.column(c).to_pylist() for c in t.column_names]
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        ws = wb[spec["sheet"]] if spec.get("sheet") else wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        header = ["" if v is None else str(v).strip() for v in next(it)]
        body = [
            r
            for r in it
            if r is not None
            and not all(v is None or (isinstance(v, str) and not v.strip()) for v in r)
        ]
    finally:
        wb.close()
    return header, [[(r[i] if i < len(r) else None) for r in body] for i in range(len(header))]


_SEX_DEFAULT = {
    "L": "L",
    "LK": "L",
    "LAKI-LAKI": "L",
    "LAKI LAKI": "L",
    "PRIA": "L",
    "M": "L",
    "P": "P",
    "PR": "P",
    "PEREMPUAN": "P",
    "WANITA": "P",
    "F": "P",
    "W": "P",
}
_BOOL_DEFAULT = {
    "TRUE": True,
    "1": True,
    "YA": True,
    "Y": True,
    "FALSE": False,
    "0": False,
    "TIDAK": False,
    "T": False,
}


def _yaml_text(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _mapped(v: Any, vmap: dict[str, str]) -> Any:
    if v is None or not vmap:
        return v
    s = _yaml_text(v) if not isinstance(v, (dt.date,)) else v
    if isinstance(s, str):
        if s in vmap:
            return vmap[s]
        folded = {k.strip().upper(): x for k, x in vmap.items()}
        if s.strip().upper() in folded:
            return folded[s.strip().upper()]
    return v


def _decode(field: str, values: list[Any], spec: dict) -> list[Any]:
    """Delivered values of one mapped field -> meaning (date, 'L'/'P', bool, int, str) or Raw."""
    vmap = {
        _yaml_text(k): _yaml_text(x)
        for k, x in ((spec.get("values") or {}).get(field) or {}).items()
    }
    fmt = spec.get("date_format") or "%Y-%m-%d"
    out: list[Any] = []
    for v in values:
        v = _mapped(v, vmap)
        if isinstance(v, str) and not v.strip():
            v = None if field not in ("nama", "record_id") else v  # keep blank names as delivered
        if v is None:
            out.append(None)
            continue
        if field in DATE_FIELDS:
            if isinstance(v, dt.datetime):
                out.append(v.date())
            elif isinstance(v, dt.date):
                out.append(v)
            else:
                s = str(v).strip()
                for f in (fmt, "%Y-%m-%d"):
                    try:
                        out.append(dt.datetime.strptime(s, f).date())
                        break
                    except ValueError:
                        continue
                else:
                    out.append(Raw(s))
        elif field == "jenis_kelamin":
            s = _yaml_text(v).strip().upper()
            out.append(_SEX_DEFAULT.get(s, Raw(str(v))))
        elif field in BOOL_FIELDS:
            if isinstance(v, bool):
                out.append(v)
            else:
                s = _yaml_text(v).strip().upper()
                s = s[:-2] if s.endswith(".0") else s
                out.append(_BOOL_DEFAULT.get(s, Raw(str(v))))
        elif field in ("desil", "nominal_bulanan", "rt", "rw"):
            if isinstance(v, bool):
                out.append(Raw(str(v)))
            elif isinstance(v, int):
                out.append(v)
            elif isinstance(v, float) and v.is_integer():
                out.append(int(v))
            else:
                m = re.fullmatch(r"0*(\d{1,12})", str(v).strip())
                out.append(int(m.group(1)) if m else Raw(str(v)))
        elif field in ID_NUMBER_FIELDS:
            out.append(
                str(int(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)
            )
        elif field in ("kode_kelurahan", "kode_wilayah_tujuan"):
            s = (
                str(int(v))
                if isinstance(v, (int, float)) and not isinstance(v, bool)
                else str(v).strip()
            )
            out.append(s.replace(".", "") if re.fullmatch(r"\d+(\.\d+)*", s) else Raw(s))
        else:
            out.append(v)
    return out


# --- choosing and applying a shape ----------------------------------------------------------------


def _style(words: tuple[str, ...], style: str) -> str:
    if style == "UPPER_SNAKE":
        return "_".join(w.upper() for w in words)
    if style == "lower_snake":
        return "_".join(w.lower() for w in words)
    if style == "UPPER SPACE":
        return " ".join(w.upper() for w in words)
    if style == "CamelCase":
        return "".join(w[:1].upper() + w[1:].lower() for w in words)
    small, acronyms = {"di", "per"}, {"nik", "kk", "rt", "rw", "tmt", "njop", "l/p", "id", "skpwni"}
    return " ".join(
        w if w in small else w.upper() if w in acronyms else w[:1].upper() + w[1:] for w in words
    )


def _words(name: str) -> tuple[str, ...]:
    parts = re.findall(r"[A-Za-z0-9/]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", name))
    return tuple(p.lower() for p in parts) or ("kolom",)


class _Names:
    """Unique header names (case-insensitive), with a deliberate duplicate allowed."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, name: str) -> str:
        base, k = name, 2
        while name.strip().upper() in self.used or not name.strip():
            name = f"{base}{'_' if '_' in base or base.isupper() else ' '}{k}"
            k += 1
        self.used.add(name.strip().upper())
        return name


def _fmt_date(d: dt.date, fmt: str) -> str:
    if "%H" in fmt:
        return dt.datetime(d.year, d.month, d.day).strftime(fmt)
    return d.strftime(fmt)


def _excel_serial(d: dt.date) -> int:
    return (d - dt.date(1899, 12, 30)).days


def _dotted_kel(s: str) -> str:
    return f"{s[:2]}.{s[2:4]}.{s[4:6]}.{s[6:]}" if len(s) == 10 else s


def _dotted_region(s: str) -> str:
    parts = [s[i : i + 2] for i in range(0, min(len(s), 6), 2)] + ([s[6:]] if len(s) > 6 else [])
    return ".".join(parts)


def _rupiah(n: int) -> str:
    return "Rp " + f"{n:,}".replace(",", ".")


class Cell:
    """Typed cell values of one output column: kind in str, int, float, date, datetime, bool."""

    def __init__(self, values: list[Any], kind: str = "str"):
        self.values, self.kind = values, kind


def _encode_source(
    spec: dict, header: list[str], cols: list[list[Any]], n_rows: int, rng: random.Random
) -> tuple[dict, list[str], list[Cell], dict]:
    """Choose a shape for one source. Returns (new yaml entry, new header, cells, shape summary)."""
    fmt = rng.choices(
        ["csv", "parquet", "xlsx"], weights=[5, 3, 2 if n_rows <= XLSX_MAX_ROWS else 0]
    )[0]
    style = rng.choice(STYLES)
    shape: dict[str, Any] = {"format": fmt, "style": style}
    mapped = {c: f for f, c in spec["columns"].items()}
    by_name = dict(zip(header, cols))
    fields = {f: _decode(f, by_name[c], spec) for f, c in spec["columns"].items()}
    entry: dict[str, Any] = {k: spec[k] for k in ("name", "kind", "program") if spec.get(k)}
    values: dict[str, dict[str, str]] = {}

    # dates: one representation per file, like a real export
    has_raw_date = any(isinstance(v, Raw) for f in DATE_FIELDS if f in fields for v in fields[f])
    date_reps = ["text"] * 5 + ["serial"] + (["native"] * 6 if fmt != "csv" else [])
    date_rep = "text" if has_raw_date else rng.choice(date_reps)
    date_format = (
        (spec.get("date_format") or "%Y-%m-%d") if has_raw_date else rng.choice(DATE_FORMATS)
    )
    shape["dates"] = date_rep if date_rep != "text" else f"text {date_format}"
    native_date_kind = rng.choice(["date", "datetime"])
    id_rep = rng.choice(
        ["text"] * 3
        + (["apostrophe"] if fmt == "csv" else [])
        + (["int", "float"] if fmt == "parquet" else [])
    )
    numeric_cells = fmt != "csv" and rng.random() < 0.6

    out_cols: list[tuple[str, Cell, str | None]] = []  # (name stem/None, cell, canonical field)
    for f, vals in fields.items():
        cell: Cell
        if f in DATE_FIELDS:
            if any(isinstance(v, Raw) for v in vals) or date_rep == "text":
                cell = Cell(
                    [
                        v if isinstance(v, Raw) or v is None else _fmt_date(v, date_format)
                        for v in vals
                    ]
                )
            elif date_rep == "serial":
                ok = all(v is None or v >= dt.date(1900, 3, 1) for v in vals)
                cell = (
                    Cell(
                        [None if v is None else _excel_serial(v) for v in vals],
                        "int" if fmt != "csv" else "str",
                    )
                    if ok
                    else Cell([None if v is None else _fmt_date(v, date_format) for v in vals])
                )
                if fmt == "csv":
                    cell.values = [None if v is None else str(v) for v in cell.values]
            else:
                cell = Cell(vals, native_date_kind)
        elif f == "jenis_kelamin":
            m, p, understood = rng.choice(SEX_CODES)
            shape["sex"] = f"{m}/{p}"
            if not understood or rng.random() < 0.2:
                values[f] = {m: "L", p: "P"}
            codes = [m if v == "L" else p if v == "P" else v for v in vals]
            if numeric_cells and m.isdigit():
                cell = Cell([int(c) if c in (m, p) else c for c in codes], "int")
            else:
                cell = Cell(codes)
        elif f in BOOL_FIELDS:
            r = rng.random()
            if fmt != "csv" and r < 0.25:
                cell = Cell(vals, "bool")
                shape[f] = "native bool"
            elif fmt != "csv" and r < 0.4:
                cell = Cell([int(v) if isinstance(v, bool) else v for v in vals], "int")
                shape[f] = "1/0 numbers"
            else:
                yes, no, understood = rng.choice(BOOL_CODES)
                shape[f] = f"{yes}/{no}"
                if not understood:
                    values[f] = {yes: "true", no: "false"}
                cell = Cell([yes if v is True else no if v is False else v for v in vals])
        elif f in ID_NUMBER_FIELDS:
            digits = [v for v in vals if v is not None]
            rep = id_rep
            if rep in ("int", "float") and not all(
                re.fullmatch(r"[1-9]\d{0,17}", v) for v in digits
            ):
                rep = "text"
            if rep == "float" and not all(int(v) < 2**53 for v in digits):
                rep = "int"
            shape[f] = rep
            if rep == "apostrophe":
                cell = Cell([None if v is None else "'" + v for v in vals])
            elif rep == "int":
                cell = Cell([None if v is None else int(v) for v in vals], "int")
            elif rep == "float":
                cell = Cell([None if v is None else float(int(v)) for v in vals], "float")
            else:
                cell = Cell(vals)
        elif (
            f == "record_id"
            and fmt != "csv"
            and rng.random() < 0.5
            and all(isinstance(v, str) and re.fullmatch(r"[1-9]\d{0,14}", v) for v in vals)
        ):
            shape[f] = "number"  # an all-digit id without leading zeros, as a spreadsheet stores it
            cell = Cell([int(v) for v in vals], "int")
        elif f == "kode_kelurahan":
            rep = rng.choice(["dotted", "undotted"] + (["number"] if fmt != "csv" else []))
            shape[f] = rep
            if rep == "number":
                cell = Cell(
                    [int(v) if v is not None and not isinstance(v, Raw) else v for v in vals], "int"
                )
            elif rep == "dotted":
                cell = Cell(
                    [
                        _dotted_kel(v) if v is not None and not isinstance(v, Raw) else v
                        for v in vals
                    ]
                )
            else:
                cell = Cell(vals)
        elif f == "kode_wilayah_tujuan":
            dotted = rng.random() < 0.5
            shape[f] = "dotted" if dotted else "digits"
            cell = Cell(
                [
                    _dotted_region(v) if dotted and v is not None and not isinstance(v, Raw) else v
                    for v in vals
                ]
            )
        elif f in ("rt", "rw"):
            pad = shape.setdefault(
                "rt_rw_pad", rng.choice([0, 2, 3] + (["number"] if numeric_cells else []))
            )
            if pad == "number":
                cell = Cell(vals, "int")
            else:
                cell = Cell([str(v).zfill(pad) if isinstance(v, int) else v for v in vals])
        elif f == "desil":
            rep = (
                rng.choice(["number", "text", "label"])
                if fmt != "csv"
                else rng.choice(["text", "label"])
            )
            shape[f] = rep
            if rep == "number":
                cell = Cell(vals, "int")
            elif rep == "label":
                values[f] = {f"Desil {k}": str(k) for k in range(1, 11)}
                cell = Cell([f"Desil {v}" if isinstance(v, int) else v for v in vals])
            else:
                cell = Cell([str(v) if isinstance(v, int) else v for v in vals])
        elif f == "nominal_bulanan":
            rep = rng.choice(["text", "rupiah"] + (["number", "float"] if fmt != "csv" else []))
            shape[f] = rep
            if rep == "number":
                cell = Cell(vals, "int")
            elif rep == "float":
                cell = Cell([float(v) if isinstance(v, int) else v for v in vals], "float")
            elif rep == "rupiah":
                cell = Cell([_rupiah(v) if isinstance(v, int) else v for v in vals])
            else:
                cell = Cell([str(v) if isinstance(v, int) else v for v in vals])
        elif f == "jenjang":
            rep = rng.choice(["as is", "lower", "codes", "words"])
            shape[f] = rep
            present = sorted({v for v in vals if isinstance(v, str)})
            if rep == "codes" and set(present) <= set(JENJANG_CODES):
                values[f] = {JENJANG_CODES[j]: j for j in present}
                cell = Cell(
                    [JENJANG_CODES.get(v, v) if isinstance(v, str) else v for v in vals],
                    "int" if numeric_cells else "str",
                )
                if numeric_cells:
                    cell.values = [
                        int(v) if isinstance(v, str) and v.isdigit() else v for v in cell.values
                    ]
            elif rep == "words" and set(present) <= set(JENJANG_WORDS):
                values[f] = {JENJANG_WORDS[j]: j for j in present}
                cell = Cell([JENJANG_WORDS.get(v, v) if isinstance(v, str) else v for v in vals])
            elif rep == "lower":
                cell = Cell([v.lower() if isinstance(v, str) else v for v in vals])
            else:
                cell = Cell(vals)
        else:
            cell = Cell([v if not isinstance(v, (dt.date,)) else v.isoformat() for v in vals])
        out_cols.append((f, cell, f))

    # unmapped columns of the original, renamed in the new style
    for name, vals in zip(header, cols):
        if name in mapped:
            continue
        out_cols.append(
            (name, Cell([v.isoformat() if isinstance(v, dt.date) else v for v in vals]), None)
        )

    # junk: 1-4 extra columns, one of them twice, sometimes a blank-headed index column
    junk = rng.sample(JUNK_STEMS, rng.randint(1, 4))
    junk_cells = []
    for stem in junk:
        kind = rng.choice(["seq", "text", "date", "blank"])
        if kind == "seq":
            v: list = list(range(1, n_rows + 1))
            v = v if fmt != "csv" else [str(x) for x in v]
            junk_cells.append((stem, Cell(v, "int" if fmt != "csv" else "str")))
        elif kind == "text":
            junk_cells.append((stem, Cell([rng.choice(JUNK_TEXT) or None for _ in range(n_rows)])))
        elif kind == "date":
            base = dt.date(2025, 1, 1)
            junk_cells.append(
                (
                    stem,
                    Cell(
                        [
                            (base + dt.timedelta(days=rng.randrange(600))).isoformat()
                            for _ in range(n_rows)
                        ]
                    ),
                )
            )
        else:
            junk_cells.append((stem, Cell([None] * n_rows)))
    # the same header twice (csv and xlsx only: pandas, Spark and pyarrow refuse to write such parquet)
    dup_stem = junk_cells[0][0]
    if fmt != "parquet":
        junk_cells.append((dup_stem, Cell([rng.choice(JUNK_TEXT) or None for _ in range(n_rows)])))
    index_col = fmt != "parquet" and rng.random() < 0.25
    shape["junk_columns"] = len(junk_cells) + int(index_col)

    # names: mapped first (so they get the plain stems), junk may reuse a stem only as the duplicate
    names = _Names()
    columns: dict[str, str] = {}
    named: list[tuple[str, Cell]] = []
    for stem_or_name, cell, f in out_cols:
        if f is not None:
            nm = names.take(_style(rng.choice(FIELD_STEMS[f]), style))
            columns[f] = nm
        else:
            nm = names.take(_style(_words(stem_or_name), style))
        named.append((nm, cell))
    dup_name: str | None = None
    for i, (stem, cell) in enumerate(junk_cells):
        if fmt != "parquet" and i == len(junk_cells) - 1:
            nm = dup_name  # type: ignore[assignment]  # set by an earlier junk cell whenever this branch runs
        else:
            nm = names.take(_style(stem, style))
            dup_name = dup_name or nm
        named.append((nm, cell))
    rng.shuffle(named)
    if index_col:
        named.insert(
            0,
            (
                "",
                Cell(
                    list(range(n_rows)) if fmt == "xlsx" else [str(i) for i in range(n_rows)],
                    "int" if fmt == "xlsx" else "str",
                ),
            ),
        )
    shape["duplicate_header"] = dup_name if fmt != "parquet" else None
    entry["columns"] = {f: columns[f] for f in spec["columns"]}
    if values:
        entry["values"] = values
    entry["_date_format"] = None if date_rep in ("native", "serial") else date_format
    return entry, [n for n, _ in named], [c for _, c in named], shape


# --- writers --------------------------------------------------------------------------------------


def _cell_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def _write_csv(
    path: Path,
    header: list[str],
    cells: list[Cell],
    rng: random.Random,
    spec_entry: dict,
    shape: dict,
) -> None:
    tab_txt = path.suffix.lower() in (".txt", ".tsv")
    delim = "\t" if tab_txt and path.suffix.lower() == ".tsv" else rng.choice(DELIMITERS)
    crlf = rng.random() < 0.4
    quote_all = rng.random() < 0.25
    buf = io.StringIO(newline="")
    w = csv.writer(
        buf,
        delimiter=delim,
        lineterminator="\r\n" if crlf else "\n",
        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
    )
    w.writerow(header)
    cols = [[_cell_text(v) for v in c.values] for c in cells]
    w.writerows(zip(*cols))
    text = buf.getvalue()
    candidates = ENCODINGS + (["utf-16"] if delim == "\t" and path.suffix.lower() == ".txt" else [])
    enc = rng.choice(candidates)
    try:
        data = text.encode(enc)
    except UnicodeEncodeError:
        enc, data = "utf-8", text.encode("utf-8")
    path.write_bytes(data)
    declared = enc
    if enc == "utf-8-sig" and rng.random() < 0.5:
        declared = "utf-8"  # the contract: a BOM in a file declared utf-8 is handled
    if enc == "cp1252" and rng.random() < 0.3:
        declared = "windows-1252"
    if declared != "utf-8" or rng.random() < 0.5:
        spec_entry["encoding"] = declared
    if rng.random() < 0.7:
        spec_entry["delimiter"] = delim  # else the pipeline detects it from the header
    shape.update(
        encoding=enc,
        declared_encoding=spec_entry.get("encoding"),
        delimiter=delim,
        delimiter_declared="delimiter" in spec_entry,
        crlf=crlf,
        quote_all=quote_all,
    )


def _write_parquet(
    path: Path, header: list[str], cells: list[Cell], rng: random.Random, shape: dict
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    large = rng.random() < 0.3
    arrays = []
    for c in cells:
        vals, kind = c.values, c.kind
        mixed = any(isinstance(v, Raw) for v in vals)
        if kind == "int" and not mixed:
            arr = pa.array(vals, type=pa.int64())
        elif kind == "float" and not mixed:
            arr = pa.array(vals, type=pa.float64())
        elif kind == "bool" and not mixed:
            arr = pa.array(vals, type=pa.bool_())
        elif kind == "date" and not mixed:
            arr = pa.array(vals, type=pa.date32())
        elif kind == "datetime" and not mixed:
            arr = pa.array(
                [None if v is None else dt.datetime(v.year, v.month, v.day) for v in vals],
                type=pa.timestamp(rng.choice(["ms", "us", "ns"])),
            )
        else:
            arr = pa.array(
                [None if v is None else _cell_text(v) for v in vals],
                type=pa.large_string() if large else pa.string(),
            )
        arrays.append(arr)
    compression = rng.choice(["snappy", "zstd", "gzip", "none"])
    row_group = rng.choice([None, 1000, 5000])
    pq.write_table(
        pa.Table.from_arrays(arrays, names=header),
        path,
        compression=compression,
        row_group_size=row_group,
    )
    shape.update(parquet_compression=compression, large_string=large, row_group_size=row_group)


def _write_xlsx(
    path: Path,
    header: list[str],
    cells: list[Cell],
    rng: random.Random,
    spec_entry: dict,
    name: str,
    shape: dict,
) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(
        str(path),
        {
            "constant_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    wb.set_properties({"title": name, "author": "provider", "created": dt.datetime(2026, 1, 1)})
    sheet = rng.choice(["Sheet1", "Data", "DATA", "Lampiran", "Rekap", name.upper()[:31]])
    if rng.random() < 0.3:
        info = wb.add_worksheet("Keterangan")
        info.write_string(0, 0, f"Data {name}, diekstrak untuk satudata")
        info.write_string(1, 0, "Kolom bertanda * wajib diisi")
        spec_entry["sheet"] = sheet
        shape["info_sheet_first"] = True
    elif rng.random() < 0.3:
        spec_entry["sheet"] = sheet
    ws = wb.add_worksheet(sheet)
    bold = wb.add_format({"bold": True})
    dfmt = wb.add_format({"num_format": rng.choice(XLSX_DATE_NUMFMT)})
    for j, h in enumerate(header):
        if h:
            ws.write_string(0, j, h, bold)
    n = len(cells[0].values) if cells else 0
    for i in range(n):
        for j, c in enumerate(cells):
            v = c.values[i]
            if v is None or (isinstance(v, str) and v == ""):
                continue
            if isinstance(v, bool):
                ws.write_boolean(i + 1, j, v)
            elif isinstance(v, (int, float)):
                ws.write_number(i + 1, j, v)
            elif isinstance(v, dt.date) and not isinstance(v, Raw):
                ws.write_datetime(i + 1, j, dt.datetime(v.year, v.month, v.day), dfmt)
            else:
                ws.write_string(i + 1, j, str(v))
    wb.close()
    shape["sheet"] = sheet


def _file_name(name: str, fmt: str, rng: random.Random, entry: dict) -> str:
    base = rng.choice(
        [name.upper(), f"{name}_export", f"EXTRACT_{name.upper()}_202610", f"data-{name}"]
    )
    if fmt == "csv":
        ext = rng.choice([".csv", ".csv", ".CSV", ".txt", ".tsv", ".dat"])
        if ext == ".dat":
            entry["format"] = "csv"
    elif fmt == "parquet":
        ext = rng.choice([".parquet", ".parquet", ".pq"])
    else:
        ext = ".xlsx"
    folder = rng.choice(["", "", "", "extract/"])
    return folder + base + ext


# --- the whole delivery -------------------------------------------------------------------------------


def reshape(src: Path, dst: Path, seed: int) -> dict:
    """Write the delivery in `src` into `dst` in another provider's shape. Returns the shapes chosen.

    `dst` is created (it must not hold a sources.yaml already, so a delivery is never overwritten by
    accident); `truth/` is copied unchanged.
    """
    src, dst = Path(src), Path(dst)
    if (dst / "sources.yaml").exists():
        raise FileExistsError(f"{dst} already holds a delivery")
    dst.mkdir(parents=True, exist_ok=True)
    doc = yaml.safe_load((src / "sources.yaml").read_text(encoding="utf-8"))
    rng = random.Random(seed)
    new_sources, shapes = [], {}
    for spec in doc["sources"]:
        srng = random.Random(f"{seed}:{spec['name']}")
        header, cols = _read(src / spec["path"], spec)
        n_rows = len(cols[0]) if cols else 0
        entry, new_header, cells, shape = _encode_source(spec, header, cols, n_rows, srng)
        fmt = shape["format"]
        path = _file_name(spec["name"], fmt, srng, entry)
        (dst / path).parent.mkdir(parents=True, exist_ok=True)
        shape["path"] = path
        extra: dict[str, Any] = {}
        if fmt == "csv":
            _write_csv(dst / path, new_header, cells, srng, extra, shape)
        elif fmt == "parquet":
            _write_parquet(dst / path, new_header, cells, srng, shape)
        else:
            _write_xlsx(dst / path, new_header, cells, srng, extra, spec["name"], shape)
        out = {k: entry[k] for k in ("name", "kind", "program") if k in entry}
        out["path"] = path
        if "format" in entry:
            out["format"] = entry["format"]
        for k in ("extracted_at", "freshness_days"):
            if k in spec:
                out[k] = spec[k]
        if entry["_date_format"] and (entry["_date_format"] != "%Y-%m-%d" or srng.random() < 0.5):
            out["date_format"] = entry["_date_format"]
        out.update(extra)
        out["columns"] = entry["columns"]
        if "values" in entry:
            out["values"] = entry["values"]
        new_sources.append(out)
        shapes[spec["name"]] = shape
    rng.shuffle(new_sources)  # the order of sources.yaml means nothing
    head = (
        f"# Delivery {src.name} re-shaped by satudata_pipeline.synthetic.reshape (seed={seed}).\n"
    )
    body = yaml.safe_dump(
        {"snapshot_date": doc["snapshot_date"], "sources": new_sources},
        sort_keys=False,
        allow_unicode=True,
    )
    (dst / "sources.yaml").write_text(head + body, encoding="utf-8")
    if (src / "truth").is_dir():
        shutil.copytree(src / "truth", dst / "truth", dirs_exist_ok=True)
    return {"seed": seed, "sources": shapes}
