"""The generator plays the officer: it fills a run's worklists from the synthetic ground truth.

Why: the review loop (worklist -> officer -> `satudata decisions add` -> rerun) must be exercised by
tests and the benchmark without a person. The officer knows the truth (`truth/verdicts.csv`,
`truth/records.csv`) and decides most rows correctly, leaves some undecided, gets a few wrong and
writes a few malformed ones (the kinds a real file brings: an unknown record, a word that is not
tetap/hapus, no officer id), all deterministic by seed. Every row it touched is listed in
`officer_key.csv` (record ids and what it did, no NIK, no name) so a test can check what the
pipeline made of each one. Decisions are dated `decided_at` (default: today): a decision answers
the determination published on or before its date (docs/decisions.md), so it is dated after the
worklist it fills.

The officer's rule for a correct decision (docs/review-loop.md):
- hapus when the truth holds conclusive evidence: the person is a ghost (in no registry), died or
  moved out of DKI (registered or not), is outside the program's age range or enrolled twice, or
  the field visit confirms welfare above the cut-off or an excluding asset;
- tetap otherwise (stale verification renewed, not yet in DTKS, disability certificate shown...),
  with `dipastikan masih hidup` / `dipastikan tinggal di DKI` where the system suspected a death or a
  move, `sanggah diterima` where it said hapus.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import zlib
from pathlib import Path

import numpy as np
import openpyxl

from satudata_pipeline.programs.worklists import (
    WORKLIST_SHEET,
    decision_reason_labels,
    mapping_name,
    worklist_name,
)

REMOVE_FIRST = ("deceased", "moved_out", "age_ineligible", "duplicate_enrollment")
CONFIRMED_INELIGIBLE = ("welfare_too_high", "asset_exclusion")
TRUE_STATE_REASON = {
    "not_in_any_registry": "identity_unresolved",
    "unregistered_death": "deceased",
    "unregistered_move_out": "moved_out",
}
UNDECIDED_SHARE = 0.10
WRONG_SHARE = 0.03
MALFORMED = ("unknown_record", "bad_decision_word", "missing_officer")
BAD_DECISION_WORD = "ya"
UNKNOWN_RECORD_PREFIX = "TIDAK-ADA-"
KEY_FILE = "officer_key.csv"
KEY_COLUMNS = ["program", "record_id", "action", "decision", "reason"]


def correct_decision(
    pipeline_verdict: str,
    pipeline_reasons: list[str],
    truth_verdict: str,
    truth_reasons: list[str],
    true_state: list[str],
) -> tuple[str, str]:
    """(decision keep|remove, reason code) that an officer who knows the truth writes."""
    for state in true_state:
        if state in TRUE_STATE_REASON:
            return "remove", TRUE_STATE_REASON[state]
    for code in REMOVE_FIRST:
        if code in truth_reasons and truth_verdict in ("remove", "review"):
            return "remove", code
    if truth_verdict == "review":
        for code in CONFIRMED_INELIGIBLE:
            if code in truth_reasons:
                return "remove", code
    if "deceased" in pipeline_reasons:
        return "keep", "confirmed_alive"
    if "moved_out" in pipeline_reasons:
        return "keep", "confirmed_resident"
    return "keep", "appeal_upheld" if pipeline_verdict == "remove" else "other"


def _split(text) -> list[str]:
    return [t for t in str(text or "").split(";") if t]


def _truth(truth_dir: Path) -> dict[tuple[str, str], dict]:
    with open(truth_dir / "verdicts.csv", encoding="utf-8", newline="") as fh:
        return {(r["program"], r["record_id"]): r for r in csv.DictReader(fh)}


def _rng(seed: int, program: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(program.encode())])


def fill_worklist(
    path: Path,
    out_path: Path,
    truth: dict[tuple[str, str], dict],
    seed: int,
    decided_at: dt.date | None = None,
) -> list[dict]:
    """Fill one worklist into `out_path`; returns the officer key rows (what was done to each row)."""
    wb = openpyxl.load_workbook(path)
    ws = wb[WORKLIST_SHEET]
    header = [c.value for c in ws[1]]
    col = {h: i + 1 for i, h in enumerate(header)}
    labels = decision_reason_labels()
    words = {"keep": "tetap", "remove": "hapus"}
    rows = list(range(2, ws.max_row + 1))
    rows = [r for r in rows if ws.cell(r, col["id_baris"]).value]
    program = ws.cell(rows[0], col["program"]).value if rows else path.name.split("_")[0]
    rng = _rng(seed, program)
    known = [
        r
        for r in rows
        if (ws.cell(r, col["program"]).value, str(ws.cell(r, col["id_baris"]).value)) in truth
    ]
    order = rng.permutation(len(known))
    n = len(known)
    n_undecided = int(round(n * UNDECIDED_SHARE))
    n_wrong = max(1, int(round(n * WRONG_SHARE))) if n >= 20 else 0
    n_bad = 1 if n >= 10 else 0
    undecided = {known[i] for i in order[:n_undecided]}
    wrong = {known[i] for i in order[n_undecided : n_undecided + n_wrong]}
    bad_word = {known[i] for i in order[n_undecided + n_wrong : n_undecided + n_wrong + n_bad]}
    no_officer = {
        known[i] for i in order[n_undecided + n_wrong + n_bad : n_undecided + n_wrong + 2 * n_bad]
    }
    officers = [f"PTG-{program}-{i:02d}" for i in range(1, 4)]
    key: list[dict] = []
    day = decided_at
    for r in known:
        pid, rid = ws.cell(r, col["program"]).value, str(ws.cell(r, col["id_baris"]).value)
        if r in undecided:
            key.append(
                {
                    "program": pid,
                    "record_id": rid,
                    "action": "undecided",
                    "decision": "",
                    "reason": "",
                }
            )
            continue
        t = truth[(pid, rid)]
        verdict = {"tinjau": "review", "hapus": "remove", "tetap": "keep"}[
            ws.cell(r, col["hasil_sistem"]).value
        ]
        decision, reason = correct_decision(
            verdict,
            _split(str(ws.cell(r, col["kode_alasan"]).value or "").replace(", ", ";")),
            t["verdict"],
            _split(t["reasons"]),
            _split(t["true_state"]),
        )
        action = "correct"
        if r in wrong:
            decision, reason, action = (
                ("keep" if decision == "remove" else "remove"),
                "other",
                "wrong",
            )
        word = words[decision]
        officer: str | None = officers[int(rng.integers(len(officers)))]
        if r in bad_word:
            word, action = BAD_DECISION_WORD, "bad_decision_word"
        if r in no_officer:
            officer, action = None, "missing_officer"
        when = day or dt.date.today()
        ws.cell(r, col["keputusan"]).value = word
        ws.cell(r, col["alasan"]).value = labels[reason]
        ws.cell(r, col["petugas"]).value = officer
        ws.cell(r, col["tanggal"]).value = dt.datetime.combine(when, dt.time())
        ws.cell(r, col["tanggal"]).number_format = "yyyy-mm-dd"
        ws.cell(r, col["catatan"]).value = (
            "kunjungan lapangan" if action != "wrong" else "diperiksa"
        )
        key.append(
            {
                "program": pid,
                "record_id": rid,
                "action": action,
                "decision": decision,
                "reason": reason,
            }
        )
    if n_bad and rows:
        # a decision on a record the roster does not hold (a typed row at the end of the sheet)
        r = ws.max_row + 1
        rid = f"{UNKNOWN_RECORD_PREFIX}{int(rng.integers(10_000, 99_999))}"
        ws.cell(r, col["program"]).value = program
        ws.cell(r, col["id_baris"]).value = rid
        ws.cell(r, col["keputusan"]).value = "tetap"
        ws.cell(r, col["alasan"]).value = labels["other"]
        ws.cell(r, col["petugas"]).value = officers[0]
        ws.cell(r, col["tanggal"]).value = dt.datetime.combine(day or dt.date.today(), dt.time())
        key.append(
            {
                "program": program,
                "record_id": rid,
                "action": "unknown_record",
                "decision": "keep",
                "reason": "other",
            }
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(out_path)
    return key


def _records_truth(truth_dir: Path) -> dict[tuple[str, str], str]:
    with open(truth_dir / "records.csv", encoding="utf-8", newline="") as fh:
        return {
            (r["source"], r["record_id"]): r["person_key"]
            for r in csv.DictReader(fh)
            if r["person_key"]
        }


def fill_link_review(
    path: Path,
    out_path: Path,
    persons: dict[tuple[str, str], str],
    seed: int,
    decided_at: dt.date | None = None,
) -> list[dict]:
    """Fill a link review workbook: orang_sama = ya when the truth says one person, with the same mix
    of undecided, wrong and malformed rows as the worklists. Key rows carry `a|b` as record_id."""
    from satudata_pipeline.link import review_pairs

    wb = openpyxl.load_workbook(path)
    ws = wb[review_pairs.SHEET]
    col = {c.value: c.column for c in ws[1]}
    rows = [r for r in range(2, ws.max_row + 1) if ws.cell(r, col["id_a"]).value]
    rng = _rng(seed, "tautan")
    order = rng.permutation(len(rows))
    n = len(rows)
    n_undecided = int(round(n * UNDECIDED_SHARE))
    n_wrong = max(1, int(round(n * WRONG_SHARE))) if n >= 20 else 0
    n_bad = 1 if n >= 10 else 0
    picks = [rows[i] for i in order]
    undecided = set(picks[:n_undecided])
    wrong = set(picks[n_undecided : n_undecided + n_wrong])
    bad_word = set(picks[n_undecided + n_wrong : n_undecided + n_wrong + n_bad])
    no_officer = set(picks[n_undecided + n_wrong + n_bad : n_undecided + n_wrong + 2 * n_bad])
    when = dt.datetime.combine(decided_at or dt.date.today(), dt.time())
    key = []
    for r in rows:
        sa, ia = ws.cell(r, col["sumber_a"]).value, str(ws.cell(r, col["id_a"]).value)
        sb, ib = ws.cell(r, col["sumber_b"]).value, str(ws.cell(r, col["id_b"]).value)
        pair = f"{sa}:{ia}|{sb}:{ib}"
        if r in undecided:
            key.append(
                {
                    "program": "tautan",
                    "record_id": pair,
                    "action": "undecided",
                    "decision": "",
                    "reason": "",
                }
            )
            continue
        pa, pb = persons.get((sa, ia)), persons.get((sb, ib))
        same = pa is not None and pa == pb
        action = "correct"
        if r in wrong:
            same, action = not same, "wrong"
        word = "ya" if same else "tidak"
        officer: str | None = f"PTG-DUKCAPIL-{int(rng.integers(1, 4)):02d}"
        if r in bad_word:
            word, action = "mungkin", "bad_decision_word"
        if r in no_officer:
            officer, action = None, "missing_officer"
        ws.cell(r, col["orang_sama"]).value = word
        ws.cell(r, col["petugas"]).value = officer
        ws.cell(r, col["tanggal"]).value = when
        key.append(
            {
                "program": "tautan",
                "record_id": pair,
                "action": action,
                "decision": "same" if same else "different",
                "reason": "",
            }
        )
    if n_bad:
        r = ws.max_row + 1
        first = rows[0]
        ws.cell(r, col["sumber_a"]).value = ws.cell(first, col["sumber_a"]).value
        ws.cell(
            r, col["id_a"]
        ).value = f"{UNKNOWN_RECORD_PREFIX}{int(rng.integers(10_000, 99_999))}"
        ws.cell(r, col["sumber_b"]).value = ws.cell(first, col["sumber_b"]).value
        ws.cell(r, col["id_b"]).value = ws.cell(first, col["id_b"]).value
        ws.cell(r, col["orang_sama"]).value = "tidak"
        ws.cell(r, col["petugas"]).value = "PTG-DUKCAPIL-01"
        ws.cell(r, col["tanggal"]).value = when
        key.append(
            {
                "program": "tautan",
                "record_id": f"{ws.cell(r, col['sumber_a']).value}:"
                f"{ws.cell(r, col['id_a']).value}|{ws.cell(r, col['sumber_b']).value}:{ws.cell(r, col['id_b']).value}",
                "action": "unknown_record",
                "decision": "different",
                "reason": "",
            }
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(out_path)
    return key


def play_officer(
    exports_dir: Path,
    truth_dir: Path,
    out_dir: Path,
    seed: int = 18,
    decided_at: dt.date | None = None,
) -> dict:
    """Fill every `<PROGRAM>/<PROGRAM>_keputusan.xlsx` under `exports_dir` into `out_dir/<PROGRAM>/`
    (with its mapping copied next to it) and write `out_dir/officer_key.csv`. Returns counts."""
    truth = _truth(Path(truth_dir))
    key: list[dict] = []
    files = 0
    for folder in sorted(
        p for p in Path(exports_dir).iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    ):
        program = folder.name
        src = folder / worklist_name(program)
        if not src.is_file():
            continue
        dest = Path(out_dir) / program / worklist_name(program)
        key += fill_worklist(src, dest, truth, seed, decided_at)
        if (folder / mapping_name(program)).is_file():
            shutil.copyfile(folder / mapping_name(program), dest.parent / mapping_name(program))
        files += 1
    from satudata_pipeline.link import review_pairs

    link_file = Path(exports_dir) / review_pairs.WORKBOOK
    if link_file.is_file() and (Path(truth_dir) / "records.csv").is_file():
        dest = Path(out_dir) / review_pairs.WORKBOOK
        key += fill_link_review(link_file, dest, _records_truth(Path(truth_dir)), seed, decided_at)
        if (link_file.parent / review_pairs.MAPPING).is_file():
            shutil.copyfile(
                link_file.parent / review_pairs.MAPPING, dest.parent / review_pairs.MAPPING
            )
        files += 1
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(out_dir) / KEY_FILE, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=KEY_COLUMNS)
        w.writeheader()
        w.writerows(key)
    counts: dict[str, int] = {"files": files}
    for k in key:
        name = ("tautan_" if k["program"] == "tautan" else "") + k["action"]
        counts[name] = counts.get(name, 0) + 1
    return counts


__all__ = ["KEY_FILE", "MALFORMED", "correct_decision", "fill_worklist", "play_officer"]
