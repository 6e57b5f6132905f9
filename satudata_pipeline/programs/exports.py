"""Files for the program offices: one folder per program under `config.exports_dir()`.

    <exports>/<PROGRAM>/<PROGRAM>_review.xlsx          sheets "Ringkasan" (cover), "Keterangan" (legend),
                                                       then one sheet per kota
    <exports>/<PROGRAM>/<PROGRAM>_<kode_kota>_<kota>.csv   one file per kota (UTF-8 with BOM, `;`-separated)
    <exports>/<PROGRAM>/<PROGRAM>_calon_layak.{xlsx,csv}   eligible people not enrolled, best-ranked first

Written for an Indonesian program office (docs/programs.md, "Files for the program offices"):
Indonesian headers (`EXPORT_COLUMNS`), verdicts as tetap / hapus / tinjau, every reason as an
Indonesian label with its code (`meninggal (deceased)`) and the bare codes in `kode_alasan` for
machines. The CSV is what Excel with Indonesian regional settings opens by double-click (`;` as
separator, a BOM so it reads UTF-8).

Safe by construction: no cell can run as a formula. In the CSV every text cell that starts with
`= + - @`, TAB, CR or LF gets a leading `'` (OWASP, "CSV Injection"); in the xlsx every text cell is
written with `write_string` (such cells also get Excel's quote prefix) and the workbook never
converts strings to formulas, numbers or links.

Only what an office needs to act on a row: the roster's record_id, masked NIK (`3171********0001`),
name, jenjang, kota/kecamatan, verdict, reasons and amounts. No welfare attributes (desil, disability,
assets), no evidence text, no person_id, no birth date: `check_export_privacy` refuses (with
`ExportPrivacyError`, before anything is written) a column list or an unmasked NIK that breaks that.

How (docs/scale.md): everything that needs the warehouse, including every check that can refuse an
export, runs first (`_prepare_program`), and stages each list's rows as Parquet beside the exports;
then the files are written from those in `SATUDATA_EXPORT_WORKERS` worker processes
(`export_worker.py`), because an xlsx is written one cell at a time in Python.

Next to the program folders (docs/reliability.md):

    <exports>/_manifest.json                   which publication (run_id of main.publication_log) the
                                               folders were written from, and when
    <exports>/_arsip/<YYYY-MM-DD>-<PROGRAM>/   the folder of a program that is no longer published,
                                               moved aside on that day (never deleted, never left in place)
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import xlsxwriter

from satudata_pipeline.programs.reasons import REASON_CODES, REASONS, VERDICTS
from satudata_pipeline.programs.summary import load_wilayah
from satudata_pipeline.programs.verdicts import REVIEW_TABLE
from satudata_pipeline.warehouse import table_exists

# (column of main.beneficiary_review or of the wilayah join, header in the files)
_COLUMN_SOURCES = [
    ("program", "program"),
    ("source", "sumber"),
    ("record_id", "id_baris"),
    ("nik_masked", "nik_disamarkan"),
    ("nama", "nama"),
    ("jenjang", "jenjang"),
    ("kota", "kota"),
    ("kecamatan", "kecamatan"),
    ("verdict", "keputusan"),
    ("reasons", "alasan"),
    ("reasons", "kode_alasan"),
    ("nominal_bulanan", "nominal_bulanan"),
    ("tanggal_mulai", "tanggal_mulai"),
]
EXPORT_COLUMNS = [header for _, header in _COLUMN_SOURCES]
_SOURCE_COLUMNS = list(dict.fromkeys(src for src, _ in _COLUMN_SOURCES))
# columns that must never appear in an export (checked at write time by check_export_privacy)
FORBIDDEN_COLUMNS = {
    "desil", "disabilitas", "disabilitas_any", "punya_mobil", "njop_di_atas_1m", "welfare_evidence",
    "evidence", "bukti", "person_id", "tanggal_lahir", "umur", "no_kk", "alamat", "nik", "nik_raw",
}  # fmt: skip
# a masked NIK: first and last four characters kept, at least four starred; or (short) all starred
MASKED_NIK = r"^(.{4}\*{4,}.{4}|\*+)$"

VERDICT_LABELS = {"keep": "tetap", "remove": "hapus", "review": "tinjau"}
VERDICT_MEANING = {
    "keep": "Tidak ada temuan terhadap baris ini: lanjutkan pembayaran.",
    "remove": "Bukti pasti (meninggal, pindah keluar DKI, usia, terdaftar ganda): hentikan pembayaran "
    "setelah pemberitahuan biasa.",
    "review": "Perlu diperiksa petugas (lapangan atau registri) sebelum memutuskan.",
}
# code: (Indonesian label, what it means, what the officer should do), from the one table of
# reason codes (programs/reasons.yaml); docs/verdict-rules.md
REASON_LEGEND: dict[str, tuple[str, str, str]] = {
    code: (r.label_id, r.meaning_id, r.action_id) for code, r in REASONS.items()
}

SUMMARY_SHEET = "Ringkasan"
LEGEND_SHEET = "Keterangan"
NO_KOTA = "Tanpa wilayah"
EXCEL_MAX_ROWS = 1_048_575  # minus the header row
CSV_DELIMITER = ";"
CSV_ENCODING = "utf-8-sig"  # UTF-8 with a BOM: Excel reads the file as UTF-8
# a text cell starting with one of these is a formula (or becomes one) in a spreadsheet
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
MIN_WIDTH, MAX_WIDTH = 8, 60
# text stays text: no string becomes a formula, number or link (the files' injection safety)
WORKBOOK_OPTIONS = {
    "constant_memory": True,
    "strings_to_numbers": False,
    "strings_to_formulas": False,
    "strings_to_urls": False,
}
WORKER_MODULE = "satudata_pipeline.programs.export_worker"
WORKER_PREFIX = "export worker:"  # the line a failing worker prints (export_worker.main)
STAGING_PREFIX = ".staging-"  # rows staged for the writers, removed when the export ends


class ExportError(RuntimeError):
    """The exports cannot be written as documented (raised before anything of the program is written)."""


class ExportPrivacyError(ExportError):
    """An export would carry data an office must not get (a forbidden column, an unmasked NIK)."""


def neutralise(text: str) -> str:
    """The CSV form of a text cell: a leading `'` when it starts like a formula (OWASP's advice)."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def check_reason_legend(codes: Iterable[str] = REASON_CODES) -> None:
    """Every reason code has an Indonesian label and legend line (else the legend would drift)."""
    missing = sorted(set(codes) - set(REASON_LEGEND))
    if missing:
        raise ExportError(
            f"exports: no Indonesian label in exports.REASON_LEGEND for reason code(s) {missing}"
        )


def check_export_privacy(conn: duckdb.DuckDBPyConnection, program: str, select: str) -> None:
    """Refuse an export that would carry more than an office needs (not an `assert`: it must hold under -O).

    Checks the columns the query really returns (and those it reads) against EXPORT_COLUMNS and
    FORBIDDEN_COLUMNS, and that every NIK is masked. The message names the program, columns and
    counts, never a value."""
    returned = [d[0] for d in conn.execute(f"SELECT * FROM ({select}) LIMIT 0").description]
    forbidden = sorted(FORBIDDEN_COLUMNS & (set(returned) | set(EXPORT_COLUMNS)))
    if forbidden:
        raise ExportPrivacyError(
            f"exports of program {program}: refused, forbidden column(s) {forbidden}"
        )
    if returned != _SOURCE_COLUMNS:
        raise ExportPrivacyError(
            f"exports of program {program}: refused, the query returns columns {returned}, "
            f"expected exactly {_SOURCE_COLUMNS}"
        )
    unmasked = conn.execute(
        f"SELECT count(*) FROM ({select}) WHERE nik_masked IS NOT NULL "
        f"AND NOT regexp_full_match(nik_masked, '{MASKED_NIK}')"
    ).fetchall()[0][0]
    if unmasked:
        raise ExportPrivacyError(
            f"exports of program {program}: refused, {unmasked} row(s) of column nik_masked of "
            f"{REVIEW_TABLE} are not masked"
        )


def _short_kota(name: str | None) -> str:
    if not name:
        return NO_KOTA
    return re.sub(r"^(Kota|Kabupaten) Administrasi ", "", name).strip()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


def _export_select(program: str) -> str:
    return f"""
        SELECT b.program, b.source, b.record_id, b.nik_masked, b.nama, b.jenjang,
               coalesce(k.nama, b.kode_kota) AS kota, coalesce(kc.nama, b.kode_kecamatan) AS kecamatan,
               b.verdict, b.reasons, b.nominal_bulanan, b.tanggal_mulai
        FROM {REVIEW_TABLE} b
        LEFT JOIN _wilayah k ON k.kode = b.kode_kota
        LEFT JOIN _wilayah kc ON kc.kode = b.kode_kecamatan
        WHERE b.program = '{program.replace("'", "''")}'
    """


def reason_label(code: str) -> str:
    """`meninggal (deceased)`: the Indonesian label, with the code for whoever asks the data team."""
    return f"{REASON_LEGEND[code][0]} ({code})"


def _export_row(values: tuple) -> list:
    """A row of the query (`_SOURCE_COLUMNS`) as the row of the files (`EXPORT_COLUMNS`), unneutralised."""
    (
        program,
        source,
        record_id,
        nik,
        nama,
        jenjang,
        kota,
        kecamatan,
        verdict,
        reasons,
        nominal,
        mulai,
    ) = values
    reasons = list(reasons or [])
    return [
        program,
        source,
        record_id,
        nik,
        nama,
        jenjang,
        kota,
        kecamatan,
        VERDICT_LABELS[verdict],
        ", ".join(reason_label(r) for r in reasons),
        ", ".join(reasons),
        nominal,
        mulai,
    ]


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralise(value)
    return value.isoformat() if isinstance(value, dt.date) else value


class _Sheet:
    """One worksheet written row by row (constant memory), every text cell as a string, widths fitted."""

    def __init__(self, wb: xlsxwriter.Workbook, name: str, formats: dict):
        self.ws, self.formats = wb.add_worksheet(name), formats
        self.widths: dict[int, int] = {}

    def text(self, row: int, col: int, value: str, fmt: str | None = None) -> None:
        if value.startswith(FORMULA_PREFIXES):
            fmt = (fmt or "") + "quote"
        self.ws.write_string(row, col, value, self.formats.get(fmt))
        self._fit(col, len(value))

    def number(self, row: int, col: int, value: int, fmt: str = "money") -> None:
        self.ws.write_number(row, col, value, self.formats[fmt])
        self._fit(col, len(f"{value:,}") + (2 if fmt == "money" else 0))

    def date(self, row: int, col: int, value: dt.date) -> None:
        self.ws.write_datetime(row, col, value, self.formats["date"])
        self._fit(col, 10)

    def cell(self, row: int, col: int, value: object, fmt: str | None = None) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | dt.date):
            self.text(row, col, str(value), fmt)
        elif isinstance(value, dt.date):
            self.date(row, col, value)
        else:
            self.number(row, col, value, fmt or "money")

    def row(self, row: int, values: Sequence, fmt: str | None = None) -> None:
        for col, value in enumerate(values):
            self.cell(row, col, value, fmt)

    def _fit(self, col: int, length: int) -> None:
        self.widths[col] = max(self.widths.get(col, 0), length)

    def fit_columns(self, fixed: dict[int, int] | None = None) -> None:
        for col, length in self.widths.items():
            width = (fixed or {}).get(col) or min(max(length + 2, MIN_WIDTH), MAX_WIDTH)
            self.ws.set_column(col, col, width)


class _DataSheets:
    """Rows of one list over as many sheets as Excel's row limit needs (`name_for(part)` names the
    part-th), each with the bold header row frozen; filters and widths are set by `close()`."""

    def __init__(self, wb: xlsxwriter.Workbook, formats: dict, headers: list[str], name_for):
        self.wb, self.formats, self.headers, self.name_for = wb, formats, headers, name_for
        self.done: list[tuple[_Sheet, int]] = []
        self.sheet: _Sheet | None = None
        self.written = 0

    def next_row(self) -> tuple[_Sheet, int]:
        """The sheet and row index for the next data row (a new sheet when this one is full)."""
        if self.sheet is None or self.written >= EXCEL_MAX_ROWS:
            if self.sheet is not None:
                self.done.append((self.sheet, self.written))
            self.sheet = _Sheet(self.wb, self.name_for(len(self.done) + 1), self.formats)
            self.sheet.row(0, self.headers, "bold")
            self.sheet.ws.freeze_panes(1, 0)
            self.written = 0
        self.written += 1
        return self.sheet, self.written

    def close(self) -> None:
        if self.sheet is not None:
            self.done.append((self.sheet, self.written))
            self.sheet = None
        for sheet, last in self.done:
            sheet.ws.autofilter(0, 0, last, len(self.headers) - 1)
            sheet.fit_columns()


def _legend_sheet(wb: xlsxwriter.Workbook, formats: dict) -> None:
    """Sheet "Keterangan": what each verdict and each reason code means and what the officer does."""
    s = _Sheet(wb, LEGEND_SHEET, formats)
    s.text(0, 0, "Keterangan keputusan dan alasan", "bold")
    s.row(2, ["keputusan", "kode", "arti"], "bold")
    r = 3
    for code in VERDICTS:
        s.row(r, [VERDICT_LABELS[code], code, VERDICT_MEANING[code]])
        r += 1
    r += 1
    s.row(r, ["alasan", "kode_alasan", "keputusan", "arti", "tindakan petugas"], "bold")
    for code in REASON_CODES:
        r += 1
        label, meaning, action = REASON_LEGEND[code]
        s.row(r, [label, code, REASONS[code].verdict_id, meaning, action], "wrap")
    r += 2
    s.text(
        r,
        0,
        "Kolom nik_disamarkan: hanya 4 angka pertama dan 4 angka terakhir NIK; cari baris di daftar "
        "program Anda dengan id_baris. File tidak memuat data kesejahteraan (desil, aset, disabilitas) "
        "maupun tanggal lahir; bukti per baris dapat diminta ke tim data.",
    )
    s.text(
        r + 1,
        0,
        "Di file CSV, teks yang diawali = + - @ diberi tanda ' di depannya agar tidak dijalankan "
        "sebagai rumus.",
    )
    s.fit_columns({0: 34, 3: 60, 4: 60})


def _formats(wb: xlsxwriter.Workbook) -> dict:
    return {
        "bold": wb.add_format({"bold": True}),
        "wrap": wb.add_format({"text_wrap": True, "valign": "top"}),
        "quote": wb.add_format({"quote_prefix": True}),
        "boldquote": wb.add_format({"bold": True, "quote_prefix": True}),
        "wrapquote": wb.add_format({"text_wrap": True, "valign": "top", "quote_prefix": True}),
        "money": wb.add_format({"num_format": '"Rp"#,##0'}),
        "boldmoney": wb.add_format({"bold": True, "num_format": '"Rp"#,##0'}),
        "count": wb.add_format({"num_format": "#,##0"}),
        "boldcount": wb.add_format({"bold": True, "num_format": "#,##0"}),
        "date": wb.add_format({"num_format": "yyyy-mm-dd"}),
    }


def _summary_sheet(wb, formats, program: str, about: dict, summary: list, reasons: list) -> None:
    """Sheet "Ringkasan": which delivery, publication and run; rows and rupiah per kota and verdict; reasons."""
    s = _Sheet(wb, SUMMARY_SHEET, formats)
    s.text(0, 0, f"Ringkasan program {program}", "bold")
    r = 2
    for label, value in [
        ("Program", program),
        ("Tanggal data (snapshot kiriman)", about["snapshot"] or "tidak diketahui"),
        ("Publikasi (run id)", about["run_id"] or "belum dipublikasikan"),
        ("Tanggal publikasi", about["published_at"] or "belum dipublikasikan"),
        ("Dibuat pada", about["written_at"]),
        ("Jumlah baris", f"{about['rows']:,}".replace(",", ".")),
        *_backlog_lines(about.get("backlog")),
    ]:
        s.text(r, 0, label, "bold")
        s.text(r, 1, str(value))
        r += 1
    s.text(
        r,
        0,
        "Arti keputusan dan alasan: lembar Keterangan. Baris per kota: lembar masing-masing kota.",
    )
    r += 2
    s.row(r, ["kota", "keputusan", "baris", "nominal bulanan", "nominal tahunan"], "bold")
    totals: dict[str, list[int]] = {}
    for kota, verdict, n, monthly in summary:
        r += 1
        s.text(r, 0, kota)
        s.text(r, 1, VERDICT_LABELS[verdict])
        s.number(r, 2, n, "count")
        s.number(r, 3, int(monthly))
        s.number(r, 4, int(monthly) * 12)
        t = totals.setdefault(verdict, [0, 0])
        t[0], t[1] = t[0] + n, t[1] + int(monthly)
    for verdict, (n, monthly) in [
        *((v, totals[v]) for v in VERDICTS if v in totals),
        ("", [sum(t[0] for t in totals.values()), sum(t[1] for t in totals.values())]),
    ]:
        r += 1
        s.text(r, 0, "Jumlah" + (f" {VERDICT_LABELS[verdict]}" if verdict else " semua"), "bold")
        s.number(r, 2, n, "boldcount")
        s.number(r, 3, monthly, "boldmoney")
        s.number(r, 4, monthly * 12, "boldmoney")
    r += 2
    s.row(r, ["alasan", "kode_alasan", "baris"], "bold")
    for reason, n in reasons:
        r += 1
        s.text(r, 0, REASON_LEGEND[reason][0])
        s.text(r, 1, reason)
        s.number(r, 2, n, "count")
    s.fit_columns({0: 34})


def _backlog_lines(stats: dict | None) -> list[tuple[str, str]]:
    """Cover lines of the review backlog (programs/worklists.py), when it was computed."""
    if stats is None:
        return []
    return [
        ("Menunggu keputusan petugas (baris)", f"{stats['waiting']:,}".replace(",", ".")),
        ("Menunggu sejak (tertua)", stats.get("oldest_since") or "-"),
        (
            "Daftar kerja untuk diisi",
            "file *_keputusan.xlsx di folder ini"
            if stats.get("waiting")
            else "tidak ada baris yang menunggu",
        ),
    ]


def _copy_to_parquet(conn: duckdb.DuckDBPyConnection, query: str, path: Path, params=None) -> str:
    """Rows of `query`, in its order, as a Parquet file the writers stream (no warehouse needed)."""
    target = str(path).replace("'", "''")
    conn.execute(f"COPY ({query}) TO '{target}' (FORMAT parquet)", params or [])
    return str(path)


def _parquet_rows(path: str, batch_rows: int = 10_000) -> Iterator[tuple]:
    """The rows of a staged Parquet file as tuples, in file order, a batch at a time."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        yield from zip(*(column.to_pylist() for column in batch.columns))


def _prepare_program(
    conn: duckdb.DuckDBPyConnection,
    program: str,
    out_root: Path,
    publication: tuple[str, str] | None,
    staging: Path,
) -> list[dict]:
    """The part of one program's export that needs the warehouse; returns the jobs that write it.

    Everything that can refuse the export (privacy, unknown verdict or reason code, an unmasked NIK
    in the changes or the candidates) is checked here, before any folder is touched
    (`_fresh_folders`, once every program is prepared). The rows go to
    Parquet files in `staging`, in the order the files list them, so the writers (`_write_job`,
    possibly in other processes) need no warehouse connection."""
    select = _export_select(program)
    check_reason_legend()
    check_export_privacy(conn, program, select)
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
    unknown_verdicts = sorted({v for _, v, _, _ in summary} - set(VERDICT_LABELS), key=str)
    if unknown_verdicts:
        raise ExportError(
            f"exports of program {program}: verdict(s) {unknown_verdicts} have no Indonesian label"
        )
    check_reason_legend(r for r, _ in reasons)
    snapshot = conn.execute(
        f"SELECT CAST(max(snapshot_date) AS VARCHAR) FROM {REVIEW_TABLE} WHERE program = ?",
        [program],
    ).fetchall()[0][0]
    about = {
        "snapshot": snapshot,
        "run_id": publication[0] if publication else None,
        "published_at": publication[1] if publication else None,
        "rows": sum(k[2] for k in kotas),
        "written_at": dt.datetime.now().astimezone().isoformat(sep=" ", timespec="seconds"),
    }
    from satudata_pipeline.programs.worklists import backlog  # the worklists import this module

    about["backlog"] = backlog(conn, REVIEW_TABLE, [program]).get(program, {"waiting": 0})
    staging = Path(tempfile.mkdtemp(prefix=f"{_slug(program)}-", dir=staging))
    changes = _prepare_changes(conn, program, staging / "changes.parquet")
    folder = out_root / program
    candidates = (
        _prepare_candidates(conn, program, folder, staging, CANDIDATE_TABLE)
        if table_exists(conn, CANDIDATE_TABLE)
        else None
    )
    rows = _copy_to_parquet(
        conn,
        f"{select} ORDER BY b.kode_kota NULLS LAST, kecamatan NULLS LAST, verdict, record_id",
        staging / "rows.parquet",
    )
    review = {
        "kind": "review",
        "program": program,
        "folder": str(folder),
        "rows": rows,
        "kotas": kotas,
        "about": about,
        "summary": summary,
        "reasons": reasons,
        "changes": changes,
        "cells": about["rows"] * len(EXPORT_COLUMNS)
        + (changes["rows"] * len(CHANGE_HEADERS) if changes else 0),
    }
    return [review, candidates] if candidates else [review]


def _fresh_folders(jobs: list[dict]) -> None:
    """Empty (or create) the folders the jobs write to: the previous files of a program go only
    once every program of the call has passed its checks."""
    for folder in dict.fromkeys(Path(job["folder"]) for job in jobs):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)


def _write_job(job: dict) -> dict:
    """Write the files of one job of `_prepare_program` (runs in a worker process)."""
    return _write_review(job) if job["kind"] == "review" else _write_candidates(job)


def _run_jobs(jobs: list[dict]) -> list[dict]:
    """Run the writing jobs in `config.export_workers()` processes (in this one when one is enough);
    results in the order of `jobs`. The jobs are shared out largest first, each to the least loaded
    worker; a worker is a fresh interpreter (`export_worker`), so nothing of the run's memory or
    DuckDB threads is copied into it."""
    from satudata_pipeline import config

    workers = min(len(jobs), config.export_workers())
    if workers <= 1:
        return [_write_job(job) for job in jobs]
    shares: list[list[int]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for i in sorted(range(len(jobs)), key=lambda i: -jobs[i]["cells"]):
        w = loads.index(min(loads))
        shares[w].append(i)
        loads[w] += jobs[i]["cells"] + 1
    results: dict[int, dict] = {}
    # the workers import this very package, installed or not (a checkout run in place)
    root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p),
    }
    with tempfile.TemporaryDirectory(prefix="satudata-export-") as tmp:
        running = []
        for w, share in enumerate(shares):
            jobs_file, results_file = Path(tmp) / f"jobs-{w}.pkl", Path(tmp) / f"results-{w}.pkl"
            jobs_file.write_bytes(pickle.dumps([jobs[i] for i in share]))
            proc = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, str(jobs_file), str(results_file)],
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            running.append((proc, share, results_file))
        failures = []
        for proc, share, results_file in running:
            _, err = proc.communicate()
            if proc.returncode != 0:
                # only the worker's own line (type and place); never a library's output, which
                # could quote a cell
                own = [line for line in err.splitlines() if line.startswith(WORKER_PREFIX)]
                failures.append(own[-1] if own else f"exit {proc.returncode}")
                continue
            results.update(zip(share, pickle.loads(results_file.read_bytes()), strict=True))
        if failures:
            raise ExportError(f"exports: a workbook writer failed: {'; '.join(failures)}")
    return [results[i] for i in range(len(jobs))]


def _program_result(jobs: list[dict], results: list[dict]) -> dict:
    by_kind = {job["kind"]: (job, result) for job, result in zip(jobs, results, strict=True)}
    review, written = by_kind["review"]
    candidates = by_kind.get("candidates", (None, None))[1]
    return {
        "xlsx": written["xlsx"],
        "csv": written["csv"],
        "rows": review["about"]["rows"],
        "kota": len(review["kotas"]),
        "candidates": candidates["rows"] if candidates else 0,
        "files": 1 + len(written["csv"]) + (2 if candidates else 0),
    }


def _staging(out_root: Path) -> tempfile.TemporaryDirectory:
    """A private folder beside the exports for the staged rows, removed when the export ends."""
    out_root.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=STAGING_PREFIX, dir=out_root)


def export_program(
    conn: duckdb.DuckDBPyConnection,
    program: str,
    out_root: Path,
    publication: tuple[str, str] | None = None,
) -> dict:
    """Write one program's xlsx and csv files (replacing the folder's previous files).

    Everything that can refuse the export (privacy, unknown verdict or reason code) is checked
    before the folder is touched."""
    load_wilayah(conn)
    with _staging(out_root) as staging:
        jobs = _prepare_program(conn, program, out_root, publication, Path(staging))
        _fresh_folders(jobs)
        return _program_result(jobs, _run_jobs(jobs))


def _write_review(job: dict) -> dict:
    """`<PROGRAM>_review.xlsx` (cover, legend, a sheet per kota, the changes) and a CSV per kota."""
    program, folder = job["program"], Path(job["folder"])
    xlsx_path = folder / f"{program}_review.xlsx"
    wb = xlsxwriter.Workbook(str(xlsx_path), WORKBOOK_OPTIONS)
    formats = _formats(wb)
    _summary_sheet(wb, formats, program, job["about"], job["summary"], job["reasons"])
    _legend_sheet(wb, formats)

    csv_files = []
    used_sheets = {SUMMARY_SHEET, LEGEND_SHEET}
    money_col, date_col = (
        EXPORT_COLUMNS.index("nominal_bulanan"),
        EXPORT_COLUMNS.index("tanggal_mulai"),
    )
    rows = _parquet_rows(job["rows"])
    for kode, nama, count in job["kotas"]:
        short = _short_kota(nama or kode)
        csv_path = folder / f"{program}_{_slug(kode or 'na')}_{_slug(short)}.csv"
        csv_files.append(csv_path)

        # xlsx: stream rows; split a kota over several sheets if it exceeds Excel's row limit
        def sheet_name(part: int, short: str = short) -> str:
            name = short[:31] if part == 1 else f"{short[:26]} ({part})"
            while name in used_sheets:
                name = name[:28] + f"~{len(used_sheets)}"
            used_sheets.add(name)
            return name

        sheets = _DataSheets(wb, formats, EXPORT_COLUMNS, sheet_name)
        with open(csv_path, "w", encoding=CSV_ENCODING, newline="") as fh:
            out = csv.writer(fh, delimiter=CSV_DELIMITER, lineterminator="\r\n")
            out.writerow(EXPORT_COLUMNS)
            for values in itertools.islice(rows, count):
                row = _export_row(values)
                out.writerow([_csv_cell(v) for v in row])
                sheet, written = sheets.next_row()
                for j, v in enumerate(row):
                    if v is None or v == "":
                        continue
                    if j == money_col:
                        sheet.number(written, j, int(v))
                    elif j == date_col:
                        sheet.date(written, j, v)
                    else:
                        sheet.text(written, j, str(v))
        sheets.close()
    if next(rows, None) is not None:  # the staged rows and the per-kota counts disagree
        raise RuntimeError(f"export of program {program}: more rows staged than counted per kota")
    if job["changes"]:
        _changes_sheet(wb, formats, job["changes"])
    wb.close()
    return {"xlsx": xlsx_path, "csv": csv_files}


CHANGES_SHEET = "Perubahan"
CHANGE_LABELS = {  # satudata_pipeline/history/store.py CHANGES, for the office
    "newly_removed": "baru dihapus",
    "reinstated": "dipulihkan (tetap lagi)",
    "newly_in_review": "baru perlu ditinjau",
    "left_review": "selesai ditinjau",
    "amount_changed": "nominal berubah",
    "new_row": "baris baru",
    "row_gone": "baris hilang",
}
CHANGE_HEADERS = [
    "perubahan",
    "sumber",
    "id_baris",
    "nik_disamarkan",
    "keputusan_sebelumnya",
    "keputusan_sekarang",
    "alasan_sekarang",
    "nominal_sebelumnya",
    "nominal_sekarang",
]


def _prepare_changes(conn: duckdb.DuckDBPyConnection, program: str, path: Path) -> dict | None:
    """The program's rows of main.determination_changes (masked NIK only, no name), staged for the
    "Perubahan" sheet; None for a warehouse without history. An unmasked NIK refuses the export."""
    from satudata_pipeline.history import store as history

    info = history.latest_info(conn)
    if info["determination_id"] is None or not table_exists(conn, history.CHANGES_TABLE):
        return None
    query = (
        f"SELECT change, source, record_id, nik_masked, verdict_before, verdict_after, reasons_after, "
        f"nominal_before, nominal_after FROM {history.CHANGES_TABLE} WHERE program = ? "
        "ORDER BY change, source, record_id"
    )
    unmasked = conn.execute(
        f"SELECT count(*) FROM ({query}) WHERE nik_masked IS NOT NULL AND NOT "
        f"regexp_full_match(nik_masked, '{MASKED_NIK}')",
        [program],
    ).fetchall()[0][0]
    if unmasked:
        raise ExportPrivacyError(
            f"changes sheet of program {program}: refused, {unmasked} NIK(s) not masked"
        )
    counts = dict(
        conn.execute(
            f"SELECT change, count(*) FROM {history.CHANGES_TABLE} WHERE program = ? GROUP BY 1",
            [program],
        ).fetchall()
    )
    return {
        "determination_id": info["determination_id"],
        "snapshot_date": info["snapshot_date"],
        "previous": info["previous_determination_id"],
        "table": history.CHANGES_TABLE,
        "counts": counts,
        "rows": sum(counts.values()),
        "path": _copy_to_parquet(conn, query, path, [program]),
    }


def _changes_sheet(wb: xlsxwriter.Workbook, formats: dict, changes: dict) -> int:
    """Sheet "Perubahan": the program's rows that changed since the previous determination (newly removed,
    reinstated, newly in / out of review, amount, new and gone rows), from main.determination_changes.
    Returns the rows written."""
    s = _Sheet(wb, CHANGES_SHEET, formats)
    previous = changes["previous"]
    s.text(0, 0, "Perubahan sejak penetapan sebelumnya", "bold")
    s.text(
        1,
        0,
        f"Penetapan no. {changes['determination_id']} (data {changes['snapshot_date']})"
        + (
            f" dibandingkan dengan penetapan no. {previous}."
            if previous
            else ": penetapan pertama, belum ada pembanding."
        ),
    )
    counts = {c: 0 for c in CHANGE_LABELS} | changes["counts"]
    for i, (code, label) in enumerate(CHANGE_LABELS.items()):
        s.text(3 + i, 0, label)
        s.number(3 + i, 1, counts[code], "count")
    top = 4 + len(CHANGE_LABELS)
    s.row(top, CHANGE_HEADERS, "bold")
    limit = EXCEL_MAX_ROWS - top - 2
    total = changes["rows"]
    for i, (
        change,
        source,
        record_id,
        nik,
        before,
        after,
        reasons,
        nom_before,
        nom_after,
    ) in enumerate(itertools.islice(_parquet_rows(changes["path"]), limit)):
        line = [
            CHANGE_LABELS.get(change, change),
            source,
            record_id,
            nik,
            VERDICT_LABELS.get(before, before or ""),
            VERDICT_LABELS.get(after, after or ""),
            ", ".join(reason_label(r) if r in REASON_LEGEND else r for r in (reasons or [])),
        ]
        for j, v in enumerate(line):
            if v:
                s.text(top + 1 + i, j, str(v))
        for j, v in ((7, nom_before), (8, nom_after)):
            if v is not None:
                s.number(top + 1 + i, j, int(v))
    if total > limit:
        s.text(
            top + 1 + limit,
            0,
            f"... {total - limit} baris lagi di tabel {changes['table']}",
        )
    s.fit_columns({0: 24})
    return min(total, limit)


# The eligible people not enrolled, for the office to reach: where they live (down to kelurahan), who
# they are (masked NIK, name), the group they qualify in and the amount. Their rank comes from the
# welfare registry; the desil itself, the age and the assets stay in the warehouse.
CANDIDATE_COLUMNS = [
    ("peringkat", "peringkat"),
    ("nik_masked", "nik_disamarkan"),
    ("nama", "nama"),
    ("target_group", "kelompok_sasaran"),
    ("kota", "kota"),
    ("kecamatan", "kecamatan"),
    ("kelurahan", "kelurahan"),
    ("nominal_bulanan", "nominal_bulanan"),
    ("stale_record", "perlu_verifikasi"),
]
CANDIDATE_SHEET = "Calon layak"
CANDIDATE_TABLE = "programs.eligible_not_enrolled"


def _candidate_select(program: str, table: str) -> str:
    return f"""
        SELECT e.peringkat, e.nik_masked, e.nama, e.target_group,
               coalesce(k.nama, e.kode_kota) AS kota, coalesce(kc.nama, e.kode_kecamatan) AS kecamatan,
               coalesce(kl.nama, e.kode_kelurahan) AS kelurahan, e.nominal_bulanan, e.stale_record
        FROM {table} e
        LEFT JOIN _wilayah k ON k.kode = e.kode_kota
        LEFT JOIN _wilayah kc ON kc.kode = e.kode_kecamatan
        LEFT JOIN _wilayah kl ON kl.kode = e.kode_kelurahan
        WHERE e.program = '{program.replace("'", "''")}'
    """


def _prepare_candidates(
    conn: duckdb.DuckDBPyConnection, program: str, folder: Path, staging: Path, table: str
) -> dict:
    """Check the candidate list (columns, masked NIK) and stage its rows, best-ranked first."""
    select = _candidate_select(program, table)
    returned = [d[0] for d in conn.execute(f"SELECT * FROM ({select}) LIMIT 0").description]
    if returned != [c for c, _ in CANDIDATE_COLUMNS] or FORBIDDEN_COLUMNS & set(returned):
        raise ExportPrivacyError(
            f"candidate export of program {program}: refused, columns {returned}"
        )
    unmasked, n = conn.execute(
        f"SELECT count(*) FILTER (nik_masked IS NOT NULL "
        f"AND NOT regexp_full_match(nik_masked, '{MASKED_NIK}')), count(*) FROM ({select})"
    ).fetchall()[0]
    if unmasked:
        raise ExportPrivacyError(
            f"candidate export of program {program}: refused, {unmasked} NIK(s) not masked"
        )
    return {
        "kind": "candidates",
        "program": program,
        "folder": str(folder),
        "rows": _copy_to_parquet(
            conn,
            f"SELECT * FROM ({select}) ORDER BY peringkat",
            staging / "candidates.parquet",
        ),
        "cells": n * len(CANDIDATE_COLUMNS),
    }


def export_candidates(
    conn: duckdb.DuckDBPyConnection,
    program: str,
    folder: Path,
    table: str = CANDIDATE_TABLE,
) -> dict:
    """`<PROGRAM>_calon_layak.xlsx` and `.csv`: the people who meet the program's rules and hold no
    row in its roster, best-ranked first; the same safety as the lists (no formula, NIK masked)."""
    load_wilayah(conn)
    with _staging(folder) as staging:
        return _write_candidates(_prepare_candidates(conn, program, folder, Path(staging), table))


def _write_candidates(job: dict) -> dict:
    program, folder = job["program"], Path(job["folder"])
    headers = [h for _, h in CANDIDATE_COLUMNS]
    xlsx_path, csv_path = (
        folder / f"{program}_calon_layak.xlsx",
        folder / f"{program}_calon_layak.csv",
    )
    wb = xlsxwriter.Workbook(str(xlsx_path), WORKBOOK_OPTIONS)
    formats = _formats(wb)
    money_col, rank_col = headers.index("nominal_bulanan"), headers.index("peringkat")
    flag_col = headers.index("perlu_verifikasi")
    sheets = _DataSheets(
        wb,
        formats,
        headers,
        lambda part: CANDIDATE_SHEET if part == 1 else f"{CANDIDATE_SHEET} ({part})",
    )
    n = 0
    with open(csv_path, "w", encoding=CSV_ENCODING, newline="") as fh:
        out = csv.writer(fh, delimiter=CSV_DELIMITER, lineterminator="\r\n")
        out.writerow(headers)
        for values in _parquet_rows(job["rows"]):
            row = list(values)
            row[flag_col] = "ya" if row[flag_col] else "tidak"
            out.writerow([_csv_cell(v) for v in row])
            n += 1
            sheet, written = sheets.next_row()
            for j, v in enumerate(row):
                if v is None or v == "":
                    continue
                if j in (money_col, rank_col):
                    sheet.number(written, j, int(v), "money" if j == money_col else "count")
                else:
                    sheet.text(written, j, str(v))
    if n == 0:  # no candidates: say so rather than leave an empty workbook
        sheet, written = sheets.next_row()
        sheet.text(written, 0, "Tidak ada calon yang memenuhi syarat dan belum terdaftar.")
    sheets.close()
    wb.close()
    return {"xlsx": xlsx_path, "csv": csv_path, "rows": n}


def export_programs(
    conn: duckdb.DuckDBPyConnection, out_root: Path, programs: Sequence[str] | None = None
) -> dict[str, dict]:
    """Export every program present in beneficiary_review (or only `programs`).

    Every program is checked and staged first (a refusal leaves every program's folder as it was),
    then the workbooks are written in parallel (`_run_jobs`). The Ringkasan sheet
    names the latest publication of main.publication_log (the one the files are written from, see
    export_atomically)."""
    load_wilayah(conn)
    present = published_programs(conn)
    wanted = [p for p in present if not programs or p in set(programs)]
    publication = latest_publication(conn)
    with _staging(out_root) as staging:
        prepared = {
            p: _prepare_program(conn, p, out_root, publication, Path(staging)) for p in wanted
        }
        jobs = [job for p in wanted for job in prepared[p]]
        _fresh_folders(jobs)
        results = iter(_run_jobs(jobs))
        return {
            p: _program_result(prepared[p], [next(results) for _ in prepared[p]]) for p in wanted
        }


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


def write_manifest(
    out_root: Path, publication: tuple[str, str] | None, written: dict[str, dict]
) -> dict:
    """Record the publication the exports follow (replaced atomically: a reader never sees half a file)."""
    previous = read_manifest(out_root)
    now = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    programs = {
        p: v for p, v in (previous.get("programs") or {}).items() if (out_root / p).is_dir()
    }
    for program, info in written.items():
        programs[program] = {
            "rows": info["rows"],
            "files": info.get("files", 1 + len(info["csv"])),
            "written_at": now,
            "publication_run_id": publication[0] if publication else None,
        }
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


def exports_behind(
    conn: duckdb.DuckDBPyConnection, out_root: Path
) -> tuple[str, str | None] | None:
    """(latest publication run_id, run_id the exports follow) when the exports lag the publication, else None."""
    latest = latest_publication(conn)
    if latest is None:
        return None
    follows = read_manifest(out_root).get("publication_run_id")
    return None if follows == latest[0] else (latest[0], follows)


def is_program_folder(path: Path) -> bool:
    """A program's export folder (not the manifest, the archive or a temporary folder)."""
    return path.is_dir() and not path.is_symlink() and not path.name.startswith((".", "_"))


def retire_unpublished(
    out_root: Path, published_programs: Sequence[str], today: dt.date | None = None
) -> dict[str, Path]:
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
    return [
        r[0]
        for r in conn.execute(f"SELECT DISTINCT program FROM {REVIEW_TABLE} ORDER BY 1").fetchall()
    ]


__all__ = [
    "ARCHIVE",
    "CSV_DELIMITER",
    "CSV_ENCODING",
    "EXPORT_COLUMNS",
    "ExportError",
    "ExportPrivacyError",
    "FORBIDDEN_COLUMNS",
    "FORMULA_PREFIXES",
    "LEGEND_SHEET",
    "MANIFEST",
    "REASON_LEGEND",
    "SUMMARY_SHEET",
    "VERDICT_LABELS",
    "check_export_privacy",
    "check_reason_legend",
    "export_program",
    "export_programs",
    "exports_behind",
    "latest_publication",
    "neutralise",
    "published_programs",
    "read_manifest",
    "reason_label",
    "retire_unpublished",
    "write_manifest",
]
