"""Files for the program offices: one folder per program under `config.exports_dir()`.

    <exports>/<PROGRAM>/<PROGRAM>_review.xlsx          sheet "Ringkasan" (summary) + one sheet per kota
    <exports>/<PROGRAM>/<PROGRAM>_<kode_kota>_<kota>.csv   one file per kota (UTF-8, comma-separated, header row)

Only what an office needs to act on a row: the roster's record_id, masked NIK (`3171********0001`),
name, jenjang, kota/kecamatan, verdict, reasons and amounts. No welfare attributes (desil, disability,
assets), no evidence text, no person_id, no birth date.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import duckdb
import xlsxwriter

from satudata_pipeline.programs.summary import load_wilayah
from satudata_pipeline.programs.verdicts import REVIEW_TABLE

EXPORT_COLUMNS = [
    "program",
    "source",
    "record_id",
    "nik",
    "nama",
    "jenjang",
    "kota",
    "kecamatan",
    "verdict",
    "reasons",
    "nominal_bulanan",
    "tanggal_mulai",
]
# columns that must never appear in an export (checked by the tests and at write time)
FORBIDDEN_COLUMNS = {
    "desil", "disabilitas", "disabilitas_any", "punya_mobil", "njop_di_atas_1m", "welfare_evidence",
    "evidence", "person_id", "tanggal_lahir", "umur", "no_kk", "alamat", "nik_raw",
}  # fmt: skip

SUMMARY_SHEET = "Ringkasan"
NO_KOTA = "Tanpa wilayah"
EXCEL_MAX_ROWS = 1_048_575  # minus the header row


def _short_kota(name: str | None) -> str:
    if not name:
        return NO_KOTA
    return re.sub(r"^(Kota|Kabupaten) Administrasi ", "", name).strip()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


def _export_select(program: str) -> str:
    assert not (FORBIDDEN_COLUMNS & set(EXPORT_COLUMNS))
    return f"""
        SELECT b.program, b.source, b.record_id, b.nik_masked AS nik, b.nama, b.jenjang,
               coalesce(k.nama, b.kode_kota) AS kota, coalesce(kc.nama, b.kode_kecamatan) AS kecamatan,
               b.verdict, array_to_string(b.reasons, ', ') AS reasons, b.nominal_bulanan, b.tanggal_mulai
        FROM {REVIEW_TABLE} b
        LEFT JOIN _wilayah k ON k.kode = b.kode_kota
        LEFT JOIN _wilayah kc ON kc.kode = b.kode_kecamatan
        WHERE b.program = '{program.replace("'", "''")}'
    """


def export_program(conn: duckdb.DuckDBPyConnection, program: str, out_root: Path) -> dict:
    """Write one program's xlsx and csv files (replacing the folder's previous files)."""
    folder = out_root / program
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    select = _export_select(program)
    kotas = conn.execute(
        f"""SELECT b.kode_kota, any_value(k.nama), count(*) FROM {REVIEW_TABLE} b
            LEFT JOIN _wilayah k ON k.kode = b.kode_kota WHERE b.program = ?
            GROUP BY b.kode_kota ORDER BY b.kode_kota NULLS LAST""",
        [program],
    ).fetchall()
    summary = conn.execute(
        f"""SELECT coalesce(kota, '{NO_KOTA}'), verdict, count(*), coalesce(sum(nominal_bulanan), 0)
            FROM ({select}) GROUP BY ALL ORDER BY 1, 2"""
    ).fetchall()
    reasons = conn.execute(
        f"""SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM {REVIEW_TABLE} WHERE program = ?)
            GROUP BY 1 ORDER BY 1""",
        [program],
    ).fetchall()

    xlsx_path = folder / f"{program}_review.xlsx"
    wb = xlsxwriter.Workbook(str(xlsx_path), {"constant_memory": True, "strings_to_numbers": False})
    bold = wb.add_format({"bold": True})
    money = wb.add_format({"num_format": "#,##0"})
    datefmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    ws = wb.add_worksheet(SUMMARY_SHEET)
    ws.write_row(0, 0, ["Program", program], bold)
    ws.write_row(2, 0, ["kota", "verdict", "baris", "nominal_bulanan", "nominal_tahunan"], bold)
    row = 3
    for kota, verdict, n, monthly in summary:
        ws.write_row(row, 0, [kota, verdict, n])
        ws.write_number(row, 3, int(monthly), money)
        ws.write_number(row, 4, int(monthly) * 12, money)
        row += 1
    row += 1
    ws.write_row(row, 0, ["alasan (reason)", "baris"], bold)
    for reason, n in reasons:
        row += 1
        ws.write_row(row, 0, [reason, n])
    ws.set_column(0, 0, 28)
    ws.set_column(1, 4, 16)

    csv_files = []
    used_sheets = {SUMMARY_SHEET}
    for kode, nama, n in kotas:
        short = _short_kota(nama or kode)
        where = "b.kode_kota IS NULL" if kode is None else f"b.kode_kota = '{kode.replace(chr(39), '')}'"
        query = f"SELECT * FROM ({select} AND {where}) ORDER BY kecamatan NULLS LAST, verdict, record_id"
        csv_path = folder / f"{program}_{_slug(kode or 'na')}_{_slug(short)}.csv"
        conn.execute(f"COPY ({query}) TO '{str(csv_path).replace(chr(39), chr(39) * 2)}' (HEADER, DELIMITER ',')")
        csv_files.append(csv_path)
        # xlsx: stream rows; split a kota over several sheets if it exceeds Excel's row limit
        cur = conn.execute(query)
        if True:
            part, written, sheet = 0, EXCEL_MAX_ROWS, None
            while True:
                batch = cur.fetchmany(10_000)
                if not batch:
                    break
                for values in batch:
                    if written >= EXCEL_MAX_ROWS:
                        part += 1
                        name = short[:31] if part == 1 else f"{short[:26]} ({part})"
                        while name in used_sheets:
                            name = name[:28] + f"~{len(used_sheets)}"
                        used_sheets.add(name)
                        sheet = wb.add_worksheet(name)
                        sheet.write_row(0, 0, EXPORT_COLUMNS, bold)
                        sheet.set_column(0, len(EXPORT_COLUMNS) - 1, 16)
                        sheet.freeze_panes(1, 0)
                        written = 0
                    written += 1
                    for j, v in enumerate(values):
                        if v is None:
                            continue
                        col = EXPORT_COLUMNS[j]
                        if col == "nominal_bulanan":
                            sheet.write_number(written, j, int(v), money)
                        elif col == "tanggal_mulai":
                            sheet.write_datetime(written, j, v, datefmt)
                        else:
                            sheet.write_string(written, j, str(v))
    wb.close()
    return {"xlsx": xlsx_path, "csv": csv_files, "rows": sum(k[2] for k in kotas), "kota": len(kotas)}


def export_programs(
    conn: duckdb.DuckDBPyConnection, out_root: Path, programs: Sequence[str] | None = None
) -> dict[str, dict]:
    """Export every program present in beneficiary_review (or only `programs`)."""
    load_wilayah(conn)
    present = [
        r[0] for r in conn.execute(f"SELECT DISTINCT program FROM {REVIEW_TABLE} ORDER BY 1").fetchall()
    ]
    wanted = [p for p in present if not programs or p in set(programs)]
    out_root.mkdir(parents=True, exist_ok=True)
    return {p: export_program(conn, p, out_root) for p in wanted}


__all__ = ["EXPORT_COLUMNS", "FORBIDDEN_COLUMNS", "export_program", "export_programs"]
