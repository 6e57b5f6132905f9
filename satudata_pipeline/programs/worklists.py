"""Worklists for the program offices: the rows that need a person, to fill in and hand back.

    <exports>/<PROGRAM>/<PROGRAM>_keputusan.xlsx            sheets "Petunjuk" (cover, backlog), "Daftar kerja"
                                                            (one row per `review` and `remove` row), "Keterangan"
                                                            (legend), "Pilihan" (the dropdown lists, protected)
    <exports>/<PROGRAM>/<PROGRAM>_keputusan.sources.yaml    the mapping that makes the returned workbook a
                                                            `review_decision` source (data contract section 4)

Why: `review` rows need an officer's finding and every `remove` can be appealed (sanggah). The office
fills keputusan (tetap/hapus), alasan, petugas (officer id, never a name), tanggal and catatan; every
other cell is locked (sheet protection without password: it prevents accidents, not intent) so
the rows still name the roster row they came from when the file comes back. The shipped mapping
translates the Indonesian words back to the contract's canonical values, so the returned file needs
no editing: `satudata decisions add FILE` registers it in the delivery (docs/review-loop.md).

Same safety as the lists (programs/exports.py): every text cell written as a string (quote prefix
where it starts like a formula), masked NIK only (`check_export_privacy` style check before writing),
no welfare attributes, no evidence text with record ids: the evidence is said with the reason labels.

Backlog: how many rows wait for a decision and since which determination (`backlog`): from the
history of determinations (`history.review_rows`) when the warehouse has it, else from the current
beneficiary_review only (then every waiting row waits "since this determination").
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import xlsxwriter
import yaml

from satudata_pipeline.contract.schema import require_columns
from satudata_pipeline.programs.exports import (
    EXCEL_MAX_ROWS,
    FORBIDDEN_COLUMNS,
    MASKED_NIK,
    REASON_LEGEND,
    VERDICT_LABELS,
    ExportError,
    ExportPrivacyError,
    _formats,
    _legend_sheet,
    _Sheet,
    _short_kota,
    check_reason_legend,
)
from satudata_pipeline.programs.verdicts import REVIEW_TABLE
from satudata_pipeline.warehouse import table_exists

WORKLIST_SHEET = "Daftar kerja"
COVER_SHEET = "Petunjuk"
CHOICES_SHEET = "Pilihan"
WORKLIST_VERDICTS = ("review", "remove")

# office word -> canonical decision (data contract section 4)
DECISION_WORDS = {"tetap": "keep", "hapus": "remove"}
# decision reasons the contract allows besides the reason codes: code -> Indonesian label
EXTRA_DECISION_REASONS = {
    "appeal_upheld": "sanggah diterima",
    "confirmed_alive": "dipastikan masih hidup",
    "confirmed_resident": "dipastikan tinggal di DKI",
    "other": "lainnya (tulis di catatan)",
}


def decision_reason_labels() -> dict[str, str]:
    """Every decision reason the dropdown offers: code -> Indonesian label (unique labels)."""
    labels = {code: REASON_LEGEND[code][0] for code in sorted(REASON_LEGEND)}
    labels.update(EXTRA_DECISION_REASONS)
    if len(set(labels.values())) != len(labels):
        raise ExportError("worklists: two decision reasons share an Indonesian label")
    return labels


# (source column, header, locked?) of sheet "Daftar kerja"; the last five are filled by the office
LOCKED_COLUMNS = [
    ("program", "program"),
    ("source", "sumber"),
    ("record_id", "id_baris"),
    ("nik_masked", "nik_disamarkan"),
    ("nama", "nama"),
    ("kota", "kota"),
    ("kecamatan", "kecamatan"),
    ("kelurahan", "kelurahan"),
    ("verdict", "hasil_sistem"),
    ("reasons", "alasan_sistem"),
    ("reasons", "kode_alasan"),
    ("nominal_bulanan", "nominal_bulanan"),
    ("waiting_since", "menunggu_sejak"),
    ("previous_decision", "keputusan_sebelumnya"),
]
INPUT_COLUMNS = ["keputusan", "alasan", "petugas", "tanggal", "catatan"]
WORKLIST_COLUMNS = [h for _, h in LOCKED_COLUMNS] + INPUT_COLUMNS
_SELECT_COLUMNS = list(dict.fromkeys(c for c, _ in LOCKED_COLUMNS))
# canonical review_decision field -> header of "Daftar kerja"
DECISION_MAPPING = {
    "program": "program",
    "record_id": "id_baris",
    "decision": "keputusan",
    "decided_by": "petugas",
    "decided_at": "tanggal",
    "reason": "alasan",
    "note": "catatan",
}
DATE_FORMAT = "%Y-%m-%d"
EARLIEST_DECISION = dt.date(2020, 1, 1)
LATEST_DECISION = dt.date(2099, 12, 31)
OFFICER_ID_MAX = 64
NOTE_MAX = 500


def worklist_name(program: str) -> str:
    return f"{program}_keputusan.xlsx"


def mapping_name(program: str) -> str:
    return f"{program}_keputusan.sources.yaml"


def source_name(program: str, snapshot: str | None) -> str:
    """The source name the mapping proposes: `keputusan_<program>_<yyyymmdd>` (one per determination)."""
    import re

    day = (snapshot or "").replace("-", "")
    return re.sub(r"[^a-z0-9_]+", "_", f"keputusan_{program.lower()}_{day}".strip("_"))


def decision_values() -> dict[str, dict[str, str]]:
    """`values:` of the mapping: the office's words -> canonical values (matched ignoring case and
    surrounding spaces; a value not in the map, such as a bare reason code, passes as it is)."""
    return {
        "decision": dict(DECISION_WORDS),
        "reason": {label: code for code, label in decision_reason_labels().items()},
    }


def mapping(program: str, snapshot: str | None) -> dict:
    """The `sources:` entry that reads a returned worklist as a `review_decision` source."""
    return {
        "name": source_name(program, snapshot),
        "kind": "review_decision",
        "path": worklist_name(program),
        "format": "xlsx",
        "sheet": WORKLIST_SHEET,
        "extracted_at": dt.date.fromisoformat(snapshot) if snapshot else dt.date.today(),
        "freshness_days": 366,
        "date_format": DATE_FORMAT,
        "description": f"keputusan kantor program {program} atas daftar kerja determinasi {snapshot or '-'}",
        "columns": dict(DECISION_MAPPING),
        "values": decision_values(),
    }


def write_mapping(path: Path, program: str, snapshot: str | None) -> Path:
    """Write `<PROGRAM>_keputusan.sources.yaml`: a sources.yaml fragment holding the one entry."""
    head = (
        f"# Mapping of {worklist_name(program)} when it comes back filled in: a review_decision source\n"
        "# (data contract section 4). Register it in a delivery with\n"
        f"#   satudata decisions add {worklist_name(program)} --data-dir <delivery>\n"
        "# or paste the entry below under `sources:` of its sources.yaml and copy the file next to it.\n"
    )
    body = yaml.safe_dump(
        {"sources": [mapping(program, snapshot)]}, sort_keys=False, allow_unicode=True
    )
    path.write_text(head + body, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# backlog: how many rows wait for a decision, and since when
# --------------------------------------------------------------------------------------------------
# the columns the backlog reads: of the review (published or staged), and of the history once it
# exists (a table without one of them is a SchemaError naming it; no switch on which columns exist)
_REVIEW_READ = ("program", "record_id", "verdict", "snapshot_date", "decision_status")
_HISTORY_READ = {
    "history.review_rows": (
        "program",
        "record_id",
        "determination_id",
        "verdict",
        "decision_status",
    ),
    "history.determinations": ("determination_id", "snapshot_date"),
}


def waiting_since_sql(conn: duckdb.DuckDBPyConnection, review: str = REVIEW_TABLE) -> str:
    """SELECT program, record_id, waiting_since (DATE) for every row of `review` that waits (a row
    a decision settles, `decision_status = 'applied'`, does not).

    With `history.review_rows` + `history.determinations`: the snapshot date of the first
    determination of the row's current unbroken run of review/remove verdicts (a row that left review
    and came back waits from its return). Before the first publication: the row's own snapshot date."""
    require_columns(conn, review, _REVIEW_READ, "worklists")
    base = (
        f"SELECT b.program, b.record_id, b.snapshot_date FROM {review} b "
        f"WHERE b.verdict IN ('review', 'remove') AND coalesce(b.decision_status, '') <> 'applied'"
    )
    if not table_exists(conn, "history.review_rows"):
        return f"SELECT program, record_id, snapshot_date AS waiting_since FROM ({base})"
    for table, needed in _HISTORY_READ.items():
        require_columns(conn, table, needed, "worklists")
    # per row and determination: waiting or not (a decision applied settles it); the current streak
    # starts after the last determination in which it did not wait
    return f"""
        WITH h AS (
            SELECT r.program, r.record_id, d.snapshot_date,
                   r.verdict IN ('review', 'remove') AND coalesce(r.decision_status, '') <> 'applied'
                       AS waiting
            FROM history.review_rows r JOIN history.determinations d USING (determination_id)
        ), last_settled AS (
            SELECT program, record_id, max(snapshot_date) AS settled
            FROM h WHERE NOT waiting GROUP BY ALL
        ), streak AS (
            SELECT h.program, h.record_id, min(h.snapshot_date) AS since
            FROM h LEFT JOIN last_settled s USING (program, record_id)
            WHERE h.waiting AND (s.settled IS NULL OR h.snapshot_date > s.settled) GROUP BY ALL
        )
        SELECT b.program, b.record_id, least(coalesce(s.since, b.snapshot_date), b.snapshot_date) AS waiting_since
        FROM ({base}) b LEFT JOIN streak s USING (program, record_id)
    """


def backlog(
    conn: duckdb.DuckDBPyConnection, review: str = REVIEW_TABLE, programs: list[str] | None = None
) -> dict[str, dict]:
    """Per program: rows waiting for a decision (review and remove rows no decision settles), by
    verdict, the oldest waiting-since date and the rows by age in months. Counts only."""
    since = waiting_since_sql(conn, review)
    rows = conn.execute(f"""
        SELECT w.program, b.verdict, w.waiting_since, b.snapshot_date, count(*)
        FROM ({since}) w JOIN {review} b USING (program, record_id)
        GROUP BY ALL ORDER BY ALL
    """).fetchall()
    out: dict[str, dict] = {}
    for program, verdict, since_d, snap, n in rows:
        if programs and program not in programs:
            continue
        p = out.setdefault(
            program,
            {"waiting": 0, "review": 0, "remove": 0, "oldest_since": None, "by_months_waiting": {}},
        )
        p["waiting"] += n
        p[verdict] = p.get(verdict, 0) + n
        if since_d is not None:
            p["oldest_since"] = min(filter(None, [p["oldest_since"], since_d.isoformat()]))
            months = (snap.year - since_d.year) * 12 + snap.month - since_d.month if snap else 0
            key = str(max(months, 0))
            p["by_months_waiting"][key] = p["by_months_waiting"].get(key, 0) + n
    return out


def backlog_markdown(stats: dict[str, dict]) -> str:
    """The backlog as a Markdown table for Dagster metadata (counts only)."""
    lines = [
        "| program | menunggu | tinjau | hapus | sejak (tertua) | 0 bln | 1-2 bln | 3+ bln |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for program, s in sorted(stats.items()):
        b = {int(k): v for k, v in s["by_months_waiting"].items()}
        lines.append(
            f"| {program} | {s['waiting']:,} | {s.get('review', 0):,} | {s.get('remove', 0):,} | "
            f"{s['oldest_since'] or '-'} | {b.get(0, 0):,} | {b.get(1, 0) + b.get(2, 0):,} | "
            f"{sum(v for k, v in b.items() if k >= 3):,} |"
        )
    return "\n".join(lines).replace(",", ".")


# --------------------------------------------------------------------------------------------------
# the workbook
# --------------------------------------------------------------------------------------------------
def _previous_decision_sql() -> str:
    """A decision that new evidence reopened, in words (`tetap oleh PTG-1, 2026-11-05; dibuka lagi: ...`)."""
    return (
        "CASE WHEN b.decision_status = 'reopened' THEN "
        "CASE b.decision WHEN 'keep' THEN 'tetap' WHEN 'remove' THEN 'hapus' ELSE b.decision END "
        "|| ' oleh ' || coalesce(b.decided_by, '-') || ', ' || coalesce(CAST(b.decided_at AS VARCHAR), '-') "
        "|| '; dibuka lagi: ada bukti baru' END"
    )


def _worklist_select(conn: duckdb.DuckDBPyConnection, program: str, review: str) -> str:
    since = waiting_since_sql(conn, review)  # checks the review's columns first
    require_columns(conn, review, ("decision", "decided_by", "decided_at"), "worklists")
    return f"""
        SELECT b.program, b.source, b.record_id, b.nik_masked, b.nama,
               coalesce(k.nama, b.kode_kota) AS kota, coalesce(kc.nama, b.kode_kecamatan) AS kecamatan,
               coalesce(kl.nama, b.kode_kelurahan) AS kelurahan, b.verdict, b.reasons, b.nominal_bulanan,
               w.waiting_since, {_previous_decision_sql()} AS previous_decision
        FROM {review} b
        LEFT JOIN ({since}) w USING (program, record_id)
        LEFT JOIN _wilayah k ON k.kode = b.kode_kota
        LEFT JOIN _wilayah kc ON kc.kode = b.kode_kecamatan
        LEFT JOIN _wilayah kl ON kl.kode = b.kode_kelurahan
        WHERE b.program = '{program.replace("'", "''")}' AND b.verdict IN ('review', 'remove')
          AND coalesce(b.decision_status, '') <> 'applied'
    """


def check_worklist_privacy(conn: duckdb.DuckDBPyConnection, program: str, select: str) -> None:
    """Refuse (before anything is written) a worklist with a forbidden column or an unmasked NIK."""
    returned = [d[0] for d in conn.execute(f"SELECT * FROM ({select}) LIMIT 0").description]
    if returned != _SELECT_COLUMNS or FORBIDDEN_COLUMNS & (set(returned) | set(WORKLIST_COLUMNS)):
        raise ExportPrivacyError(f"worklist of program {program}: refused, columns {returned}")
    unmasked = conn.execute(
        f"SELECT count(*) FROM ({select}) WHERE nik_masked IS NOT NULL "
        f"AND NOT regexp_full_match(nik_masked, '{MASKED_NIK}')"
    ).fetchall()[0][0]
    if unmasked:
        raise ExportPrivacyError(
            f"worklist of program {program}: refused, {unmasked} NIK(s) not masked"
        )


def _labels(reasons) -> tuple[str, str]:
    reasons = list(reasons or [])
    return ", ".join(REASON_LEGEND[r][0] for r in reasons), ", ".join(reasons)


def write_worklist(
    conn: duckdb.DuckDBPyConnection,
    program: str,
    folder: Path,
    publication: tuple[str, str] | None = None,
    review: str = REVIEW_TABLE,
) -> dict:
    """Write `<PROGRAM>_keputusan.xlsx` and its mapping into `folder`; returns paths and counts.

    Needs the temp table `_wilayah` (programs.summary.load_wilayah)."""
    from satudata_pipeline.programs.summary import load_wilayah

    load_wilayah(conn)
    select = _worklist_select(conn, program, review)
    check_reason_legend()
    check_worklist_privacy(conn, program, select)
    n_rows = conn.execute(f"SELECT count(*) FROM ({select})").fetchall()[0][0]
    if n_rows > EXCEL_MAX_ROWS:
        raise ExportError(
            f"worklist of program {program}: {n_rows} rows exceed one sheet's "
            f"{EXCEL_MAX_ROWS} rows; export it per kota"
        )
    reasons_seen = {
        r
        for (rs,) in conn.execute(f"SELECT DISTINCT reasons FROM ({select})").fetchall()
        for r in (rs or [])
    }
    check_reason_legend(reasons_seen)
    snapshot = conn.execute(
        f"SELECT CAST(max(snapshot_date) AS VARCHAR) FROM {review} WHERE program = ?", [program]
    ).fetchall()[0][0]
    stats = backlog(conn, review, [program]).get(
        program,
        {"waiting": 0, "review": 0, "remove": 0, "oldest_since": None, "by_months_waiting": {}},
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / worklist_name(program)
    wb = xlsxwriter.Workbook(
        str(path),
        {
            "constant_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    formats = _formats(wb)
    formats["input"] = wb.add_format({"locked": False, "bg_color": "#FFF2CC"})
    formats["inputdate"] = wb.add_format(
        {"locked": False, "bg_color": "#FFF2CC", "num_format": "yyyy-mm-dd"}
    )
    formats["boldinput"] = wb.add_format({"bold": True, "bg_color": "#FFE699"})
    _cover_sheet(wb, formats, program, snapshot, publication, n_rows, stats)
    labels = decision_reason_labels()
    _worklist_sheet(conn, wb, formats, select, n_rows, labels)
    _legend_sheet(wb, formats)
    _choices_sheet(wb, formats, labels)
    wb.close()
    yaml_path = write_mapping(folder / mapping_name(program), program, snapshot)
    return {"xlsx": path, "mapping": yaml_path, "rows": n_rows, "backlog": stats}


def _cover_sheet(wb, formats, program, snapshot, publication, n_rows, stats) -> None:
    s = _Sheet(wb, COVER_SHEET, formats)
    s.text(0, 0, f"Daftar kerja keputusan program {program}", "bold")
    r = 2
    for label, value in [
        ("Program", program),
        ("Tanggal data (snapshot kiriman)", snapshot or "tidak diketahui"),
        ("Publikasi (run id)", publication[0] if publication else "belum dipublikasikan"),
        (
            "Tanggal publikasi (isi tanggal keputusan sesudahnya)",
            str(publication[1])[:10] if publication else "belum dipublikasikan",
        ),
        ("Baris yang perlu keputusan", f"{n_rows:,}".replace(",", ".")),
        ("  di antaranya tinjau", f"{stats.get('review', 0):,}".replace(",", ".")),
        ("  di antaranya hapus (dapat disanggah)", f"{stats.get('remove', 0):,}".replace(",", ".")),
        ("Menunggu sejak (tertua)", stats.get("oldest_since") or "-"),
    ]:
        s.text(r, 0, label, "bold")
        s.text(r, 1, str(value))
        r += 1
    r += 1
    for line in [
        f"Cara mengisi: di lembar '{WORKLIST_SHEET}', isi hanya kolom berwarna kuning.",
        "keputusan: tetap (pembayaran berlanjut) atau hapus (pembayaran dihentikan), pilih dari daftar.",
        "alasan: pilih dari daftar (mis. 'sanggah diterima', 'dipastikan masih hidup', 'meninggal').",
        "petugas: ID petugas (NIP atau kode petugas), bukan nama.",
        "tanggal: tanggal keputusan (YYYY-MM-DD).",
        "catatan: keterangan singkat, tanpa NIK atau data pribadi lain.",
        "Baris yang belum diputuskan biarkan kosong: baris itu tetap menunggu pada determinasi berikutnya.",
        "Kolom lain terkunci. Jangan menambah, menghapus atau mengganti nama kolom dan lembar.",
        "Kirim kembali file ini ke tim data; tim data mendaftarkannya dengan "
        "'satudata decisions add' (pemetaan: file .sources.yaml di folder yang sama).",
    ]:
        s.text(r, 0, line)
        r += 1
    s.fit_columns({0: 40, 1: 40})


def _worklist_sheet(conn, wb, formats, select, n_rows, labels) -> None:
    s = _Sheet(wb, WORKLIST_SHEET, formats)
    ws = s.ws
    n_locked = len(LOCKED_COLUMNS)
    for j, header in enumerate(WORKLIST_COLUMNS):
        s.text(0, j, header, "boldinput" if j >= n_locked else "bold")
    ws.freeze_panes(1, 3)
    money_col = WORKLIST_COLUMNS.index("nominal_bulanan")
    since_col = WORKLIST_COLUMNS.index("menunggu_sejak")
    prev_col = WORKLIST_COLUMNS.index("keputusan_sebelumnya")
    date_col = WORKLIST_COLUMNS.index("tanggal")
    cur = conn.execute(
        f"SELECT * FROM ({select}) ORDER BY kota NULLS LAST, kecamatan NULLS LAST, "
        "kelurahan NULLS LAST, verdict DESC, record_id"
    )
    r = 0
    while batch := cur.fetchmany(10_000):
        for (
            program,
            source,
            record_id,
            nik,
            nama,
            kota,
            kecamatan,
            kelurahan,
            verdict,
            reasons,
            nominal,
            since,
            previous,
        ) in batch:
            r += 1
            label_text, codes = _labels(reasons)
            values = [
                program,
                source,
                record_id,
                nik,
                nama,
                _short_kota(kota),
                kecamatan,
                kelurahan,
                VERDICT_LABELS[verdict],
                label_text,
                codes,
            ]
            for j, v in enumerate(values):
                if v not in (None, ""):
                    s.text(r, j, str(v))
            if previous:
                s.text(r, prev_col, previous)
            if nominal is not None:
                s.number(r, money_col, int(nominal))
            if since is not None:
                s.date(r, since_col, since)
            for j in range(n_locked, len(WORKLIST_COLUMNS)):
                ws.write_blank(r, j, None, formats["inputdate" if j == date_col else "input"])
    last = max(r, 1)
    col = {h: i for i, h in enumerate(WORKLIST_COLUMNS)}
    ws.data_validation(
        1,
        col["keputusan"],
        last,
        col["keputusan"],
        {
            "validate": "list",
            "source": list(DECISION_WORDS),
            "error_title": "keputusan",
            "error_message": "Pilih tetap atau hapus.",
        },
    )
    ws.data_validation(
        1,
        col["alasan"],
        last,
        col["alasan"],
        {
            "validate": "list",
            "source": f"='{CHOICES_SHEET}'!$A$2:$A${len(labels) + 1}",
            "error_title": "alasan",
            "error_message": "Pilih alasan dari daftar.",
        },
    )
    ws.data_validation(
        1,
        col["petugas"],
        last,
        col["petugas"],
        {
            "validate": "length",
            "criteria": "between",
            "minimum": 1,
            "maximum": OFFICER_ID_MAX,
            "input_title": "petugas",
            "input_message": "ID petugas (bukan nama)",
            "error_title": "petugas",
            "error_message": f"ID petugas, 1-{OFFICER_ID_MAX} karakter.",
        },
    )
    ws.data_validation(
        1,
        col["tanggal"],
        last,
        col["tanggal"],
        {
            "validate": "date",
            "criteria": "between",
            "minimum": dt.datetime.combine(EARLIEST_DECISION, dt.time()),
            "maximum": dt.datetime.combine(LATEST_DECISION, dt.time()),
            "input_title": "tanggal",
            "input_message": "Tanggal keputusan, YYYY-MM-DD",
            "error_title": "tanggal",
            "error_message": "Isi tanggal yang sah (YYYY-MM-DD).",
        },
    )
    ws.data_validation(
        1,
        col["catatan"],
        last,
        col["catatan"],
        {
            "validate": "length",
            "criteria": "<=",
            "value": NOTE_MAX,
            "error_title": "catatan",
            "error_message": f"Paling banyak {NOTE_MAX} karakter.",
        },
    )
    ws.autofilter(0, 0, last, len(WORKLIST_COLUMNS) - 1)
    s.fit_columns({col["alasan"]: 30, col["petugas"]: 14, col["tanggal"]: 12, col["catatan"]: 40})
    ws.protect(
        "",
        {
            "autofilter": True,
            "format_columns": True,
            "format_rows": True,
            "select_locked_cells": True,
            "select_unlocked_cells": True,
        },
    )


def _choices_sheet(wb, formats, labels: dict[str, str]) -> None:
    s = _Sheet(wb, CHOICES_SHEET, formats)
    s.row(0, ["alasan", "kode"], "bold")
    for i, (code, label) in enumerate(labels.items(), start=1):
        s.text(i, 0, label)
        s.text(i, 1, code)
    s.fit_columns()
    s.ws.protect("")


def write_worklists(
    conn: duckdb.DuckDBPyConnection,
    out_root: Path,
    programs: list[str],
    publication: tuple[str, str] | None = None,
) -> dict[str, dict]:
    """One worklist (and mapping) per program, in `out_root/<PROGRAM>/`."""
    return {p: write_worklist(conn, p, out_root / p, publication) for p in programs}


__all__ = [
    "CHOICES_SHEET",
    "COVER_SHEET",
    "DECISION_MAPPING",
    "DECISION_WORDS",
    "INPUT_COLUMNS",
    "WORKLIST_COLUMNS",
    "WORKLIST_SHEET",
    "backlog",
    "backlog_markdown",
    "decision_reason_labels",
    "decision_values",
    "mapping",
    "mapping_name",
    "source_name",
    "waiting_since_sql",
    "worklist_name",
    "write_mapping",
    "write_worklist",
    "write_worklists",
]


# --------------------------------------------------------------------------------------------------
# registering a returned file in a delivery (`satudata decisions add`)
# --------------------------------------------------------------------------------------------------
DECISION_KINDS = ("review_decision", "link_decision")
DECISIONS_FOLDER = "keputusan"  # inside the data directory


class RegisterError(ValueError):
    """A returned file that cannot be registered; the message names the file and what to do."""


def find_mapping(file: Path) -> Path:
    """The mapping shipped with `file`: `<stem>.sources.yaml` next to it (as written by the exports)."""
    candidate = file.with_name(file.stem + ".sources.yaml")
    if candidate.is_file():
        return candidate
    raise RegisterError(
        f"{file.name}: no mapping {candidate.name} next to it; pass --mapping "
        "(the .sources.yaml shipped with the worklist or link review file)"
    )


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def register_decision_file(
    file: Path,
    data_dir: Path,
    mapping_path: Path | None = None,
    name: str | None = None,
    today: dt.date | None = None,
) -> dict:
    """Add a returned worklist / link review file to the delivery in `data_dir` as a decision source.

    Copies the file to `<data_dir>/keputusan/<name><suffix>` and appends the shipped mapping's entry
    (with that path, and `extracted_at` = the file's date, at most the delivery's snapshot date) to
    sources.yaml. Refuses, before writing anything, a file already registered (same content), a
    source name already taken, a mapping that is not one decision source. The new sources.yaml is
    validated against the data contract; if it fails, the delivery is restored as it was."""
    import shutil

    from satudata_pipeline.contract.sources import KINDS, ContractError, load_delivery

    file, data_dir = Path(file), Path(data_dir)
    if not file.is_file():
        raise RegisterError(f"{file}: not a file")
    yaml_path = data_dir / "sources.yaml"
    if not yaml_path.is_file():
        raise RegisterError(f"{data_dir}: no sources.yaml (not a data directory)")
    mapping_path = Path(mapping_path) if mapping_path else find_mapping(file)
    try:
        fragment = yaml.safe_load(mapping_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RegisterError(
            f"{mapping_path.name}: cannot read the mapping ({type(exc).__name__})"
        ) from None
    entries = fragment.get("sources") if isinstance(fragment, dict) else None
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        raise RegisterError(f"{mapping_path.name}: expected `sources:` with exactly one entry")
    entry = dict(entries[0])
    if entry.get("kind") not in DECISION_KINDS:
        raise RegisterError(f"{mapping_path.name}: kind must be one of {list(DECISION_KINDS)}")
    raw = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    existing = raw.get("sources") or []
    snapshot = raw.get("snapshot_date")
    snapshot = snapshot if isinstance(snapshot, dt.date) else dt.date.fromisoformat(str(snapshot))
    entry["name"] = name or entry.get("name")
    if any(s.get("name") == entry["name"] for s in existing if isinstance(s, dict)):
        raise RegisterError(
            f"source name '{entry['name']}' is already in {yaml_path.name}: this file (or "
            "an earlier one of the same determination) is registered; pass --name to add "
            "another file of the same determination"
        )
    digest = _sha256(file)
    for s in existing:
        if not isinstance(s, dict) or s.get("kind") not in DECISION_KINDS or not s.get("path"):
            continue
        other = data_dir / s["path"]
        if other.is_file() and _sha256(other) == digest:
            raise RegisterError(
                f"{file.name} is already registered as source '{s.get('name')}' "
                f"({s['path']}): the same file is not added twice"
            )
    target = data_dir / DECISIONS_FOLDER / f"{entry['name']}{file.suffix.lower()}"
    if target.exists():
        raise RegisterError(
            f"{target.relative_to(data_dir)} already exists in the delivery; pass --name"
        )
    file_day = dt.date.fromtimestamp(file.stat().st_mtime)
    entry["path"] = target.relative_to(data_dir).as_posix()
    entry["extracted_at"] = min(today or file_day, file_day, snapshot)
    before = yaml_path.read_bytes()
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(file, target)
    try:
        _append_source(yaml_path, entry)
        if entry["kind"] in KINDS:  # the contract knows decision kinds: the delivery and its files
            load_delivery(data_dir)
    except (ContractError, ValueError, OSError) as exc:
        yaml_path.write_bytes(before)
        target.unlink(missing_ok=True)
        raise RegisterError(
            f"{file.name}: the delivery would not be valid with it, nothing changed:\n{exc}"
        ) from None
    return {
        "name": entry["name"],
        "kind": entry["kind"],
        "path": entry["path"],
        "extracted_at": entry["extracted_at"].isoformat(),
    }


def _append_source(yaml_path: Path, entry: dict) -> None:
    """Append `entry` to `sources:`, keeping the file's text (comments, order) when `sources:` is its
    last top-level key; else rewrite it through YAML (leading comment lines kept)."""
    text = yaml_path.read_text(encoding="utf-8")
    top = [
        line
        for line in text.splitlines()
        if line and not line[0].isspace() and not line.startswith(("#", "-"))
    ]
    item = yaml.safe_dump([entry], sort_keys=False, allow_unicode=True, default_flow_style=False)
    if top and top[-1].split(":")[0].strip() == "sources":
        indent = ""
        for line in text.splitlines():  # the indentation of the existing list items
            stripped = line.lstrip()
            if stripped.startswith("- ") and line[: len(line) - len(stripped)].strip() == "":
                indent = line[: len(line) - len(stripped)]
                break
        item = "".join(indent + line + "\n" if line else "\n" for line in item.splitlines())
        yaml_path.write_text(text + ("" if text.endswith("\n") else "\n") + item, encoding="utf-8")
        return
    raw = yaml.safe_load(text)
    raw.setdefault("sources", []).append(entry)
    comments = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    yaml_path.write_text(
        comments + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
