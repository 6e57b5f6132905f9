"""What the offices get back about their decisions: the rows that were set aside, and why.

    <exports>/<PROGRAM>/keputusan_ditolak_<PROGRAM>.csv   review decisions on that program's rows
    <exports>/_keputusan_ditolak.csv                      review decisions naming no known program
    <exports>/_keputusan_ditolak_tautan.csv               link decisions

Indonesian headers, `;`-separated UTF-8 with a BOM like the other exports, no cell that can run as a
formula. Only the keys the office itself sent (file, row, program, record ids, date) and the reason:
no name, no NIK, no officer id, no note.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import duckdb

from satudata_pipeline.decisions.intake import SET_ASIDE, _exists

REASON_LABELS = {
    "unreadable_row": "baris tidak terbaca",
    "malformed_program": "program kosong",
    "malformed_record_id": "id baris kosong",
    "malformed_decision": "keputusan bukan tetap/hapus",
    "malformed_reason": "alasan tidak dikenal",
    "malformed_decided_by": "petugas kosong atau bukan kode petugas",
    "malformed_decided_at": "tanggal kosong, tidak terbaca, atau di masa depan",
    "malformed_source": "sumber kosong",
    "malformed_same_person": "orang sama bukan ya/tidak",
    "same_record": "kedua sisi menunjuk baris yang sama",
    "unknown_program": "program tidak dikenal",
    "unknown_source": "sumber tidak dikenal",
    "unknown_record": "baris tidak ditemukan",
    "not_in_roster": "baris tidak lagi ada di daftar penerima",
    "ambiguous_record": "id baris ada di dua daftar program ini",
    "contradiction": "bertentangan dengan keputusan lain pada tanggal yang sama",
    "superseded": "digantikan keputusan yang lebih baru",
}
REVIEW_HEADERS = [
    "sumber_keputusan",
    "baris",
    "program",
    "id_baris",
    "tanggal_keputusan",
    "alasan_ditolak",
    "kode_alasan",
]
LINK_HEADERS = [
    "sumber_keputusan",
    "baris",
    "sumber_a",
    "id_a",
    "sumber_b",
    "id_b",
    "tanggal_keputusan",
    "alasan_ditolak",
    "kode_alasan",
]
ROOT_REVIEW = "_keputusan_ditolak.csv"
ROOT_LINK = "_keputusan_ditolak_tautan.csv"


def program_file(program: str) -> str:
    return f"keputusan_ditolak_{program}.csv"


def _label(code: str) -> str:
    return f"{REASON_LABELS.get(code, code)}"


def _write_csv(path: Path, headers: list[str], rows: list[list]) -> None:
    from satudata_pipeline.programs.exports import neutralise

    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(headers)
        for row in rows:
            w.writerow(
                [
                    ""
                    if v is None
                    else neutralise(v)
                    if isinstance(v, str)
                    else (v.isoformat() if hasattr(v, "isoformat") else v)
                    for v in row
                ]
            )
    os.replace(tmp, path)


def write_set_aside_reports(
    conn: duckdb.DuckDBPyConnection, program_root: Path, out_root: Path, programs: list[str]
) -> dict[str, int]:
    """Write the set-aside reports: per program into `program_root/<PROGRAM>/` (the folder being
    exported), the rest into `out_root`. A report of the previous run that has nothing to say this
    time is removed. Returns {program or file name: rows}."""
    counts: dict[str, int] = {}
    rows = (
        conn.execute(f"""
        SELECT source, row_number, program, record_id, decided_at, reason, kind,
               source_a, record_id_a, source_b, record_id_b
        FROM {SET_ASIDE} ORDER BY source, row_number""").fetchall()
        if _exists(conn, SET_ASIDE)
        else []
    )
    review = [r for r in rows if r[6] == "review_decision"]
    link = [r for r in rows if r[6] == "link_decision"]
    exported = set(programs)
    for program in programs:
        mine = [
            [r[0], r[1], r[2], r[3], r[4], _label(r[5]), r[5]] for r in review if r[2] == program
        ]
        if mine and (program_root / program).is_dir():
            _write_csv(program_root / program / program_file(program), REVIEW_HEADERS, mine)
            counts[program] = len(mine)
    rest = [
        [r[0], r[1], r[2], r[3], r[4], _label(r[5]), r[5]] for r in review if r[2] not in exported
    ]
    links = [[r[0], r[1], r[7], r[8], r[9], r[10], r[4], _label(r[5]), r[5]] for r in link]
    out_root.mkdir(parents=True, exist_ok=True)
    for name, headers, body in (
        (ROOT_REVIEW, REVIEW_HEADERS, rest),
        (ROOT_LINK, LINK_HEADERS, links),
    ):
        if body:
            _write_csv(out_root / name, headers, body)
            counts[name] = len(body)
        else:
            (out_root / name).unlink(missing_ok=True)
    return counts
