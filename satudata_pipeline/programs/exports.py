"""Files for the program offices: one folder per program under `config.exports_dir()`.

    <exports>/<PROGRAM>/<PROGRAM>_review.xlsx          sheet "Ringkasan" (summary) + one sheet per kota
    <exports>/<PROGRAM>/<PROGRAM>_<kode_kota>_<kota>.csv   one file per kota (UTF-8, comma-separated, header row)

Only what an office needs to act on a row: the roster's record_id, masked NIK (`3171********0001`),
name, jenjang, kota/kecamatan, verdict, reasons and amounts. No welfare attributes (desil, disability,
assets), no evidence text, no person_id, no birth date.

Next to the program folders (docs/reliability.md):

    <exports>/_manifest.json                   which publication (run_id of main.publication_log) the
                                               folders were written from, and when
    <exports>/_arsip/<YYYY-MM-DD>-<PROGRAM>/   the folder of a program that is no longer published,
                                               moved aside on that day (never deleted, never left in place)
"""

from __future__ import annotations

import datetime as dt
import json
import os
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
    present = published_programs(conn)
    wanted = [p for p in present if not programs or p in set(programs)]
    out_root.mkdir(parents=True, exist_ok=True)
    return {p: export_program(conn, p, out_root) for p in wanted}


MANIFEST = "_manifest.json"
ARCHIVE = "_arsip"
PUBLICATION_LOG = "main.publication_log"


def latest_publication(conn: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
    """(run_id, published_at) of the latest row of main.publication_log; None before the first publish."""
    n = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = 'publication_log'"
    ).fetchall()[0][0]
    if not n:
        return None
    rows = conn.execute(
        f"SELECT run_id, CAST(published_at AS VARCHAR) FROM {PUBLICATION_LOG} ORDER BY published_at DESC LIMIT 1"
    ).fetchall()
    return (rows[0][0], rows[0][1]) if rows else None


def read_manifest(out_root: Path) -> dict:
    """The exports manifest ({} when there is none or it cannot be read)."""
    try:
        data = json.loads((out_root / MANIFEST).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_manifest(out_root: Path, publication: tuple[str, str] | None, written: dict[str, dict]) -> dict:
    """Record the publication the exports follow (replaced atomically: a reader never sees half a file)."""
    previous = read_manifest(out_root)
    now = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    programs = {p: v for p, v in (previous.get("programs") or {}).items() if (out_root / p).is_dir()}
    for program, info in written.items():
        programs[program] = {"rows": info["rows"], "files": 1 + len(info["csv"]), "written_at": now,
                             "publication_run_id": publication[0] if publication else None}
    manifest = {
        "publication_run_id": publication[0] if publication else None,
        "published_at": publication[1] if publication else None,
        "written_at": now,
        "programs": dict(sorted(programs.items())),
    }
    tmp = out_root / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, out_root / MANIFEST)
    return manifest


def exports_behind(conn: duckdb.DuckDBPyConnection, out_root: Path) -> tuple[str, str | None] | None:
    """(latest publication run_id, run_id the exports follow) when the exports lag the publication, else None."""
    latest = latest_publication(conn)
    if latest is None:
        return None
    follows = read_manifest(out_root).get("publication_run_id")
    return None if follows == latest[0] else (latest[0], follows)


def is_program_folder(path: Path) -> bool:
    """A program's export folder (not the manifest, the archive or a temporary folder)."""
    return path.is_dir() and not path.is_symlink() and not path.name.startswith((".", "_"))


def retire_unpublished(out_root: Path, published_programs: Sequence[str],
                       today: dt.date | None = None) -> dict[str, Path]:
    """Move the folder of every program that is no longer published to `_arsip/<date>-<PROGRAM>/`.

    An office must not keep working from a list that is no longer produced, and nothing is deleted
    (a folder moved aside the same day twice gets a `-2`, `-3`... suffix). Returns {program: new path}."""
    keep = set(published_programs)
    day = (today or dt.date.today()).isoformat()
    moved: dict[str, Path] = {}
    for folder in sorted(out_root.iterdir()) if out_root.exists() else []:
        if not is_program_folder(folder) or folder.name in keep:
            continue
        archive = out_root / ARCHIVE
        archive.mkdir(exist_ok=True)
        target, n = archive / f"{day}-{folder.name}", 1
        while target.exists():
            n += 1
            target = archive / f"{day}-{folder.name}-{n}"
        folder.rename(target)
        moved[folder.name] = target
    return moved


def published_programs(conn: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in conn.execute(f"SELECT DISTINCT program FROM {REVIEW_TABLE} ORDER BY 1").fetchall()]


__all__ = ["ARCHIVE", "EXPORT_COLUMNS", "FORBIDDEN_COLUMNS", "MANIFEST", "export_program", "export_programs",
           "exports_behind", "latest_publication", "published_programs", "read_manifest",
           "retire_unpublished", "write_manifest"]
