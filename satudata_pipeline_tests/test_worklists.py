"""Office worklists: what they hold, what is locked, the shipped mapping, `decisions add`, the officer."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
import shutil
from pathlib import Path

import duckdb
import openpyxl
import pytest
import yaml
from fixtures.programs_warehouse import FIXTURE_SNAPSHOT, build_fixture_warehouse

from satudata_pipeline import cli
from satudata_pipeline.contract.program_rules import load_rules
from satudata_pipeline.programs import worklists
from satudata_pipeline.programs.exports import REASON_LEGEND, ExportPrivacyError
from satudata_pipeline.programs.verdicts import BENEFICIARY_REVIEW_COLUMNS, build_beneficiary_review
from satudata_pipeline.synthetic import officer
from satudata_pipeline.synthetic.generate import VERDICT_COLUMNS

MASKED = re.compile(r"^\d{4}\*{8}\d{4}$")
REPO_DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture()
def fixture_conn():
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    build_beneficiary_review(conn, load_rules(), FIXTURE_SNAPSHOT)
    yield conn
    conn.close()


def _rows(ws) -> list[dict]:
    header = [c.value for c in ws[1]]
    return [
        dict(zip(header, r)) for r in ws.iter_rows(min_row=2, values_only=True) if r[2] is not None
    ]


def test_worklist_holds_every_review_and_remove_row_in_indonesian(fixture_conn, tmp_path):
    res = worklists.write_worklist(fixture_conn, "KLJ", tmp_path)
    expected = {
        r[0]: r[1]
        for r in fixture_conn.execute(
            "SELECT record_id, verdict FROM main.beneficiary_review WHERE program = 'KLJ' "
            "AND verdict IN ('review', 'remove')"
        ).fetchall()
    }
    wb = openpyxl.load_workbook(res["xlsx"])
    assert wb.sheetnames == [
        worklists.COVER_SHEET,
        worklists.WORKLIST_SHEET,
        "Keterangan",
        worklists.CHOICES_SHEET,
    ]
    ws = wb[worklists.WORKLIST_SHEET]
    assert [c.value for c in ws[1]] == worklists.WORKLIST_COLUMNS
    rows = _rows(ws)
    assert res["rows"] == len(rows) == len(expected) == 8
    assert {r["id_baris"]: r["hasil_sistem"] for r in rows} == {
        k: {"review": "tinjau", "remove": "hapus"}[v] for k, v in expected.items()
    }
    klj002 = next(r for r in rows if r["id_baris"] == "KLJ-002")
    assert (
        klj002["alasan_sistem"] == REASON_LEGEND["deceased"][0]
        and klj002["kode_alasan"] == "deceased"
    )
    assert klj002["kelurahan"] == "Gambir" and klj002["kota"] == "Jakarta Pusat"
    assert all(MASKED.match(r["nik_disamarkan"]) for r in rows if r["nik_disamarkan"])
    assert all(r[h] is None for r in rows for h in worklists.INPUT_COLUMNS)  # nothing pre-filled
    assert (
        res["backlog"]["waiting"] == 8
        and res["backlog"]["oldest_since"] == FIXTURE_SNAPSHOT.isoformat()
    )


def test_dropdowns_validations_protection_and_unlocked_input_cells(fixture_conn, tmp_path):
    res = worklists.write_worklist(fixture_conn, "KLJ", tmp_path)
    wb = openpyxl.load_workbook(res["xlsx"])
    ws = wb[worklists.WORKLIST_SHEET]
    assert ws.protection.sheet is True
    assert wb[worklists.CHOICES_SHEET].protection.sheet is True
    col = {
        h: openpyxl.utils.get_column_letter(i + 1) for i, h in enumerate(worklists.WORKLIST_COLUMNS)
    }
    last = 1 + res["rows"]
    dvs = {str(dv.sqref): dv for dv in ws.data_validations.dataValidation}
    keputusan = dvs[f"{col['keputusan']}2:{col['keputusan']}{last}"]
    assert keputusan.type == "list" and keputusan.formula1 == '"tetap,hapus"'
    alasan = dvs[f"{col['alasan']}2:{col['alasan']}{last}"]
    assert alasan.type == "list" and alasan.formula1.startswith(f"'{worklists.CHOICES_SHEET}'!$A$2")
    assert dvs[f"{col['tanggal']}2:{col['tanggal']}{last}"].type == "date"
    assert dvs[f"{col['petugas']}2:{col['petugas']}{last}"].type == "textLength"
    # the dropdown's list holds exactly the decision reasons, in Indonesian
    choices = [r[0] for r in wb[worklists.CHOICES_SHEET].iter_rows(min_row=2, values_only=True)]
    assert choices == list(worklists.decision_reason_labels().values())
    assert "sanggah diterima" in choices and "dipastikan masih hidup" in choices
    n_locked = len(worklists.WORKLIST_COLUMNS) - len(worklists.INPUT_COLUMNS)
    for r in range(1, last + 1):
        for j, header in enumerate(worklists.WORKLIST_COLUMNS, start=1):
            cell = ws.cell(r, j)
            if r == 1 or j <= n_locked:
                assert cell.protection.locked, (r, header)
            else:
                assert not cell.protection.locked, (r, header)


def test_worklist_is_formula_safe_and_refuses_an_unmasked_nik(fixture_conn, tmp_path):
    fixture_conn.execute(
        'UPDATE main.beneficiary_review SET nama = \'=HYPERLINK("http://x","y")\' '
        "WHERE record_id = 'KLJ-002'"
    )
    res = worklists.write_worklist(fixture_conn, "KLJ", tmp_path)
    ws = openpyxl.load_workbook(res["xlsx"])[worklists.WORKLIST_SHEET]
    cell = next(ws.cell(r, 5) for r in range(2, ws.max_row + 1) if ws.cell(r, 3).value == "KLJ-002")
    assert cell.data_type == "s" and cell.value.startswith("=") and cell.quotePrefix
    fixture_conn.execute(
        "UPDATE main.beneficiary_review SET nik_masked = '3171000000000002' "
        "WHERE record_id = 'KLJ-002'"
    )
    with pytest.raises(ExportPrivacyError, match="not masked"):
        worklists.write_worklist(fixture_conn, "KLJ", tmp_path / "again")
    assert not (tmp_path / "again").exists()


def _fill(path: Path, decisions: dict[str, tuple]) -> None:
    wb = openpyxl.load_workbook(path)
    ws = wb[worklists.WORKLIST_SHEET]
    col = {c.value: c.column for c in ws[1]}
    for r in range(2, ws.max_row + 1):
        rid = ws.cell(r, col["id_baris"]).value
        if rid in decisions:
            for header, value in zip(worklists.INPUT_COLUMNS, decisions[rid]):
                ws.cell(r, col[header]).value = value
    wb.save(path)


def read_canonical(data_dir: Path, entry: dict) -> list[dict]:
    """Read a decision file as the pipeline reads a source: the contract's reader with the mapping's
    columns, then its values (exact words) onto the canonical values."""
    from satudata_pipeline.contract.sources import Delivery, SourceSpec
    from satudata_pipeline.sources.readers import read_source

    spec = SourceSpec.model_construct(
        **{
            **SourceSpec.model_construct().__dict__,
            "encoding": "utf-8",
            "delimiter": None,
            "format": None,
            "values": {},
            **entry,
        }
    )
    delivery = Delivery.model_construct(
        snapshot_date=FIXTURE_SNAPSHOT, sources=[spec], data_dir=data_dir
    )
    table = read_source(delivery, spec).to_pylist()
    out = []
    for row in table:
        canon = {field: row.get(column) for field, column in entry["columns"].items()}
        for field, words in entry["values"].items():
            if canon.get(field) is not None:
                canon[field] = words.get(canon[field], canon[field])
        out.append(canon)
    return out


def test_filled_worklist_reads_back_as_canonical_review_decisions(fixture_conn, tmp_path):
    res = worklists.write_worklist(fixture_conn, "KLJ", tmp_path)
    labels = worklists.decision_reason_labels()
    _fill(
        res["xlsx"],
        {
            "KLJ-002": (
                "tetap",
                labels["confirmed_alive"],
                "PTG-07",
                dt.datetime(2026, 11, 5),
                "masih hidup",
            ),
            "KLJ-003": ("hapus", labels["moved_out"], "PTG-07", dt.datetime(2026, 11, 6), None),
        },
    )
    fragment = yaml.safe_load(res["mapping"].read_text())
    (entry,) = fragment["sources"]
    assert entry["kind"] == "review_decision" and entry["sheet"] == worklists.WORKLIST_SHEET
    assert set(entry["columns"]) == {
        "program",
        "record_id",
        "decision",
        "decided_by",
        "decided_at",
        "reason",
        "note",
    }
    rows = read_canonical(tmp_path, entry)
    assert len(rows) == res["rows"]  # every row comes back; undecided ones carry no decision
    decided = {r["record_id"]: r for r in rows if r["decision"] is not None}
    assert decided == {
        "KLJ-002": {
            "program": "KLJ",
            "record_id": "KLJ-002",
            "decision": "keep",
            "decided_by": "PTG-07",
            "decided_at": "2026-11-05",
            "reason": "confirmed_alive",
            "note": "masih hidup",
        },
        "KLJ-003": {
            "program": "KLJ",
            "record_id": "KLJ-003",
            "decision": "remove",
            "decided_by": "PTG-07",
            "decided_at": "2026-11-06",
            "reason": "moved_out",
            "note": None,
        },
    }
    # every word the dropdowns offer maps onto a canonical value
    allowed = set(REASON_LEGEND) | {
        "appeal_upheld",
        "confirmed_alive",
        "confirmed_resident",
        "other",
    }
    assert set(entry["values"]["reason"].values()) == allowed
    assert set(entry["values"]["reason"]) >= set(labels.values())
    assert set(entry["values"]["decision"].values()) == {"keep", "remove"}


def test_decided_rows_leave_the_worklist_and_reopened_ones_show_the_old_decision(
    fixture_conn, tmp_path
):
    fixture_conn.execute(
        "UPDATE main.beneficiary_review SET decision = 'keep', decided_by = 'PTG-1', "
        "decided_at = DATE '2026-10-20', decision_status = 'applied', verdict = 'keep' "
        "WHERE record_id = 'KLJ-009'"
    )
    fixture_conn.execute(
        "UPDATE main.beneficiary_review SET decision = 'keep', decided_by = 'PTG-2', "
        "decided_at = DATE '2026-10-21', decision_status = 'reopened' WHERE record_id = 'KLJ-002'"
    )
    fixture_conn.execute(
        "UPDATE main.beneficiary_review SET decision = 'remove', decided_by = 'PTG-2', "
        "decided_at = DATE '2026-10-21', decision_status = 'applied' WHERE record_id = 'KLJ-003'"
    )
    res = worklists.write_worklist(fixture_conn, "KLJ", tmp_path)
    rows = {
        r["id_baris"]: r
        for r in _rows(openpyxl.load_workbook(res["xlsx"])[worklists.WORKLIST_SHEET])
    }
    assert "KLJ-009" not in rows and "KLJ-003" not in rows and len(rows) == 6  # settled by a person
    assert (
        rows["KLJ-002"]["keputusan_sebelumnya"]
        == "tetap oleh PTG-2, 2026-10-21; dibuka lagi: ada bukti baru"
    )
    assert all(r["keputusan_sebelumnya"] is None for k, r in rows.items() if k != "KLJ-002")
    assert worklists.backlog(fixture_conn)["KLJ"]["waiting"] == 6


def test_backlog_counts_waiting_rows_per_program(fixture_conn):
    stats = worklists.backlog(fixture_conn)
    expected = dict(
        fixture_conn.execute(
            "SELECT program, count(*) FROM main.beneficiary_review WHERE verdict IN ('review', 'remove') "
            "GROUP BY 1"
        ).fetchall()
    )
    assert {p: s["waiting"] for p, s in stats.items()} == expected
    assert stats["KLJ"]["review"] == 3 and stats["KLJ"]["remove"] == 5
    md = worklists.backlog_markdown(stats)
    assert "| KLJ | 8 | 3 | 5 | 2026-11-01 |" in md


def test_backlog_since_the_first_determination_of_the_current_review_streak(fixture_conn):
    # a history of three determinations: KLJ-009 in review since September, left in October, back in
    # November (waits since November); KLJ-002 in review since September
    from satudata_pipeline.history import store

    store.ensure_tables(fixture_conn)  # the history's own schema
    fixture_conn.execute(
        "INSERT INTO history.determinations BY NAME SELECT * FROM (VALUES "
        "(1, DATE '2026-09-01'), (2, DATE '2026-10-01'), (3, DATE '2026-11-01')) "
        "t(determination_id, snapshot_date)"
    )
    fixture_conn.execute(
        "INSERT INTO history.review_rows BY NAME SELECT * FROM (VALUES "
        "(1, 'KLJ', 'KLJ-009', 'review'), (2, 'KLJ', 'KLJ-009', 'keep'), "
        "(3, 'KLJ', 'KLJ-009', 'review'), (1, 'KLJ', 'KLJ-002', 'review'), "
        "(2, 'KLJ', 'KLJ-002', 'review'), (3, 'KLJ', 'KLJ-002', 'remove')) "
        "t(determination_id, program, record_id, verdict)"
    )
    since = dict(
        ((p, r), d)
        for p, r, d in fixture_conn.execute(worklists.waiting_since_sql(fixture_conn)).fetchall()
    )
    assert since[("KLJ", "KLJ-009")] == dt.date(2026, 11, 1)
    assert since[("KLJ", "KLJ-002")] == dt.date(2026, 9, 1)
    stats = worklists.backlog(fixture_conn, programs=["KLJ"])
    assert (
        stats["KLJ"]["oldest_since"] == "2026-09-01" and stats["KLJ"]["by_months_waiting"]["2"] == 1
    )


# ---------------------------------------------------------------------------------- decisions add
def _delivery(tmp_path: Path) -> Path:
    d = tmp_path / "delivery"
    shutil.copytree(REPO_DATA, d, ignore=shutil.ignore_patterns("truth"))
    return d


def test_decisions_add_registers_copies_and_refuses_duplicates(fixture_conn, tmp_path, capsys):
    res = worklists.write_worklist(fixture_conn, "KLJ", tmp_path / "exports" / "KLJ")
    d = _delivery(tmp_path)
    before = (d / "sources.yaml").read_text()
    assert cli.main(["decisions", "add", str(res["xlsx"]), "--data-dir", str(d)]) == 0
    text = (d / "sources.yaml").read_text()
    assert text.startswith(before)  # appended: the delivery's own text and comments kept
    raw = yaml.safe_load(text)
    entry = raw["sources"][-1]
    assert entry["name"] == "keputusan_klj_20261101" and entry["kind"] == "review_decision"
    assert entry["path"] == "keputusan/keputusan_klj_20261101.xlsx"
    assert (d / entry["path"]).read_bytes() == res["xlsx"].read_bytes()
    assert entry["extracted_at"] <= raw["snapshot_date"]
    assert entry["columns"] == worklists.DECISION_MAPPING
    # the same file again: refused, nothing changed
    assert cli.main(["decisions", "add", str(res["xlsx"]), "--data-dir", str(d)]) == 2
    assert "already in sources.yaml" in capsys.readouterr().err
    assert (d / "sources.yaml").read_text() == text
    # the same content under another name: still refused
    assert (
        cli.main(["decisions", "add", str(res["xlsx"]), "--data-dir", str(d), "--name", "lagi"])
        == 2
    )
    assert "already registered as source 'keputusan_klj_20261101'" in capsys.readouterr().err
    # a second, different file of the same determination: with --name
    _fill(
        res["xlsx"],
        {"KLJ-002": ("tetap", "lainnya (tulis di catatan)", "PTG-1", dt.datetime(2026, 11, 2), "")},
    )
    assert (
        cli.main(
            [
                "decisions",
                "add",
                str(res["xlsx"]),
                "--data-dir",
                str(d),
                "--name",
                "keputusan_klj_2",
            ]
        )
        == 0
    )
    assert [s["name"] for s in yaml.safe_load((d / "sources.yaml").read_text())["sources"]][
        -2:
    ] == ["keputusan_klj_20261101", "keputusan_klj_2"]


def test_decisions_add_needs_a_mapping_and_a_named_delivery(
    fixture_conn, tmp_path, capsys, monkeypatch
):
    res = worklists.write_worklist(fixture_conn, "KLJ", tmp_path / "x")
    monkeypatch.delenv("SATUDATA_DATA_DIR", raising=False)
    assert cli.main(["decisions", "add", str(res["xlsx"])]) == 2
    assert "--data-dir" in capsys.readouterr().err
    d = _delivery(tmp_path)
    lone = tmp_path / "lone.xlsx"
    shutil.copyfile(res["xlsx"], lone)
    before = (d / "sources.yaml").read_text()
    assert cli.main(["decisions", "add", str(lone), "--data-dir", str(d)]) == 2
    assert "no mapping lone.sources.yaml" in capsys.readouterr().err
    assert (d / "sources.yaml").read_text() == before and not (d / "keputusan").exists()


# ---------------------------------------------------------------------------------- the officer
def _big_review(conn: duckdb.DuckDBPyConnection, n: int = 60) -> None:
    """A review table of `n` KJP rows (review and remove) with masked NIKs."""
    cols = ", ".join(f"{c} {t}" for c, t in BENEFICIARY_REVIEW_COLUMNS.items())
    conn.execute(f"CREATE OR REPLACE TABLE main.beneficiary_review ({cols})")
    conn.execute(f"""
        INSERT INTO main.beneficiary_review (program, source, record_id, verdict, reasons, nominal_bulanan,
               kode_kota, kode_kecamatan, kode_kelurahan, nik_masked, nama, snapshot_date)
        SELECT 'KJP', 'kjp', 'KJP-' || lpad(i::VARCHAR, 4, '0'),
               CASE WHEN i % 3 = 0 THEN 'remove' ELSE 'review' END,
               CASE WHEN i % 3 = 0 THEN ['deceased'] WHEN i % 3 = 1 THEN ['stale_record']
                    ELSE ['welfare_too_high'] END,
               250000, '31.71', '31.71.01', '31.71.01.1001', '3171********' || lpad(i::VARCHAR, 4, '0'),
               'Orang ' || i, DATE '2026-11-01'
        FROM range(1, {n + 1}) t(i)""")


def _truth_dir(tmp_path: Path, n: int = 60) -> Path:
    t = tmp_path / "truth"
    t.mkdir()
    with open(t / "verdicts.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(VERDICT_COLUMNS)  # the generator's truth/verdicts.csv header
        for i in range(1, n + 1):
            # truth: the deaths are real except every ninth; the welfare rows are confirmed too high
            verdict, reasons = (
                ("remove", "deceased")
                if i % 3 == 0 and i % 9
                else ("keep", "")
                if i % 3 == 0
                else ("review", "stale_record")
                if i % 3 == 1
                else ("review", "welfare_too_high")
            )
            w.writerow(["KJP", "kjp", i, f"KJP-{i:04d}", f"P{i}", verdict, reasons, "", 250000])
    return t


def test_correct_decision_rule():
    assert officer.correct_decision("remove", ["deceased"], "remove", ["deceased"], []) == (
        "remove",
        "deceased",
    )
    assert officer.correct_decision("remove", ["deceased"], "keep", [], []) == (
        "keep",
        "confirmed_alive",
    )
    assert officer.correct_decision("review", ["moved_out"], "keep", [], []) == (
        "keep",
        "confirmed_resident",
    )
    assert officer.correct_decision("remove", ["age_ineligible"], "keep", [], []) == (
        "keep",
        "appeal_upheld",
    )
    assert officer.correct_decision("review", ["stale_record"], "review", ["stale_record"], []) == (
        "keep",
        "other",
    )
    assert officer.correct_decision(
        "review", ["welfare_too_high"], "review", ["welfare_too_high"], []
    ) == ("remove", "welfare_too_high")
    assert officer.correct_decision(
        "review", ["stale_record"], "review", ["stale_record"], ["not_in_any_registry"]
    ) == ("remove", "identity_unresolved")


def test_officer_fills_deterministically_with_a_few_wrong_and_malformed(tmp_path):
    conn = duckdb.connect()
    _big_review(conn)
    worklists.write_worklists(conn, tmp_path / "exports", ["KJP"])
    truth = _truth_dir(tmp_path)
    a = officer.play_officer(tmp_path / "exports", truth, tmp_path / "a", seed=5)
    b = officer.play_officer(tmp_path / "exports", truth, tmp_path / "b", seed=5)
    assert (
        cli.main(
            [
                "decisions",
                "officer",
                "--exports",
                str(tmp_path / "exports"),
                "--truth",
                str(truth),
                "--out",
                str(tmp_path / "c"),
                "--seed",
                "6",
            ]
        )
        == 0
    )
    key_a = (tmp_path / "a" / officer.KEY_FILE).read_text()
    assert key_a == (tmp_path / "b" / officer.KEY_FILE).read_text() and a == b
    assert key_a != (tmp_path / "c" / officer.KEY_FILE).read_text()
    assert a == {
        "files": 1,
        "undecided": 6,
        "wrong": 2,
        "bad_decision_word": 1,
        "missing_officer": 1,
        "unknown_record": 1,
        "correct": 60 - 6 - 2 - 2,
    }
    assert (tmp_path / "a" / "KJP" / worklists.mapping_name("KJP")).is_file()
    key = {r["record_id"]: r for r in csv.DictReader(open(tmp_path / "a" / officer.KEY_FILE))}
    rows = {
        r["id_baris"]: r
        for r in _rows(
            openpyxl.load_workbook(tmp_path / "a" / "KJP" / "KJP_keputusan.xlsx")[
                worklists.WORKLIST_SHEET
            ]
        )
    }
    labels = worklists.decision_reason_labels()
    for rid, k in key.items():
        row = rows[rid]
        if k["action"] == "undecided":
            assert row["keputusan"] is None and row["petugas"] is None
        elif k["action"] == "bad_decision_word":
            assert row["keputusan"] == officer.BAD_DECISION_WORD
        elif k["action"] == "missing_officer":
            assert row["petugas"] is None and row["keputusan"] in ("tetap", "hapus")
        elif k["action"] == "unknown_record":
            assert rid.startswith(officer.UNKNOWN_RECORD_PREFIX) and row["nama"] is None
        else:
            assert row["keputusan"] == {"keep": "tetap", "remove": "hapus"}[k["decision"]]
            assert row["alasan"] == labels[k["reason"]] and row["petugas"].startswith("PTG-KJP-")
            assert row["tanggal"] == dt.datetime.combine(dt.date.today(), dt.time())
    # correct rows follow the truth: a real death removed, a false one kept as confirmed alive
    correct = {rid: k for rid, k in key.items() if k["action"] == "correct"}
    for rid, k in correct.items():
        i = int(rid.split("-")[1])
        want = (
            ("remove", "deceased")
            if i % 3 == 0 and i % 9
            else ("keep", "confirmed_alive")
            if i % 3 == 0
            else ("keep", "other")
            if i % 3 == 1
            else ("remove", "welfare_too_high")
        )
        assert (k["decision"], k["reason"]) == want, rid
    for rid, k in key.items():
        if k["action"] == "wrong":
            i = int(rid.split("-")[1])
            assert k["reason"] == "other"
    conn.close()


# ---------------------------------------------------------------------------------- link review
MODEL = {
    "probability_two_random_records_match": 0.001,
    "comparisons": [
        {
            "output_column_name": "nama",
            "comparison_levels": [
                {
                    "sql_condition": '"nama_l" IS NULL OR "nama_r" IS NULL',
                    "label_for_charts": "nama is NULL",
                    "is_null_level": True,
                },
                {
                    "sql_condition": '"nama_l" = "nama_r"',
                    "label_for_charts": "Exact match on nama",
                    "m_probability": 0.9,
                    "u_probability": 0.001,
                },
                {
                    "sql_condition": "ELSE",
                    "label_for_charts": "All other comparisons",
                    "m_probability": 0.1,
                    "u_probability": 0.999,
                },
            ],
        },
        {
            "output_column_name": "tanggal_lahir",
            "comparison_levels": [
                {
                    "sql_condition": '"tanggal_lahir_l" IS NULL OR "tanggal_lahir_r" IS NULL',
                    "label_for_charts": "tanggal_lahir is NULL",
                    "is_null_level": True,
                },
                {
                    "sql_condition": '"tanggal_lahir_l" = "tanggal_lahir_r"',
                    "label_for_charts": "Exact date of birth",
                    "m_probability": 0.8,
                    "u_probability": 0.01,
                },
                {
                    "sql_condition": "ELSE",
                    "label_for_charts": "All other comparisons",
                    "m_probability": 0.2,
                    "u_probability": 0.99,
                },
            ],
        },
    ],
}


def _link_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Thirteen records: a chain held by one 0.97 link (r2-r3), a triangle (no bridge), two joins in the
    band, a pair below it, a pair above it, and an exact-NIK link."""
    conn.execute("CREATE SCHEMA link")
    conn.execute("""CREATE TABLE link.person_records AS SELECT 'src:' || i AS unique_id, 'src' AS source,
        'R' || i AS record_id, CASE WHEN i IN (7, 8) THEN 'BUDI SANTOSO' ELSE 'ORANG ' || i END AS nama,
        '3171' || lpad(i::VARCHAR, 12, '0') AS nik, DATE '1990-01-01' + i::INTEGER AS tanggal_lahir,
        'GAMBIR' AS kelurahan, '31.71.01.1001' AS kode_kelurahan FROM range(1, 14) t(i)""")
    clusters = {
        1: 1,
        2: 1,
        3: 1,
        4: 4,
        5: 4,
        6: 4,
        7: 7,
        8: 8,
        9: 9,
        10: 10,
        11: 11,
        12: 12,
        13: 12,
    }
    conn.execute("CREATE TABLE link.person_clusters (unique_id VARCHAR, cluster_id VARCHAR)")
    conn.executemany(
        "INSERT INTO link.person_clusters VALUES (?, ?)",
        [[f"src:{k}", f"src:{v}"] for k, v in clusters.items()],
    )
    conn.execute(
        "CREATE TABLE link.match_pairs (unique_id_l VARCHAR, unique_id_r VARCHAR, match_probability "
        "DOUBLE, match_weight DOUBLE, link_method VARCHAR, match_probability_without_nik DOUBLE)"
    )
    pairs = [
        (1, 2, 1.0, "exact_nik"),
        (2, 3, 0.97, "probabilistic"),
        (4, 5, 0.96, "probabilistic"),
        (5, 6, 0.9995, "probabilistic"),
        (4, 6, 0.98, "probabilistic"),
        (7, 8, 0.90, "probabilistic"),
        (1, 9, 0.85, "probabilistic"),
        (10, 11, 0.70, "probabilistic"),
        (12, 13, 0.9995, "probabilistic"),
    ]
    conn.executemany(
        "INSERT INTO link.match_pairs VALUES (?, ?, ?, NULL, ?, NULL)",
        [[f"src:{a}", f"src:{b}", p, m] for a, b, p, m in pairs],
    )
    conn.execute(
        "CREATE TABLE link.linkage_model (model_json VARCHAR, meta_json VARCHAR, loaded_at TIMESTAMP)"
    )
    conn.execute("INSERT INTO link.linkage_model VALUES (?, '{}', now())", [json.dumps(MODEL)])


def test_link_review_offers_only_uncertain_links_that_change_a_person():
    from satudata_pipeline.link import review_pairs

    conn = duckdb.connect()
    _link_schema(conn)
    pairs = review_pairs.select_pairs(conn)
    # r2-r3 is the only link holding r3 to its cluster (split?); r7-r8 and r1-r9 would merge two
    # persons (join?); the triangle's links, the pair below 0.80, the pair above 0.999 and the NIK
    # link are not offered
    assert [(a, b, k) for a, b, _, k in pairs] == [
        ("src:2", "src:3", "split"),
        ("src:7", "src:8", "join"),
        ("src:1", "src:9", "join"),
    ]
    # a pair somebody answered is not asked again
    conn.execute("CREATE SCHEMA decisions")
    conn.execute(
        "CREATE TABLE decisions.link_in_force AS SELECT 'src:7' AS unique_id_a, 'src:8' AS unique_id_b, "
        "FALSE AS same_person"
    )
    assert [(a, b) for a, b, *_ in review_pairs.select_pairs(conn)] == [
        ("src:2", "src:3"),
        ("src:1", "src:9"),
    ]
    words = review_pairs.explain(conn, pairs)
    text, p = words[("src:7", "src:8")]
    assert "nama: Exact match on nama -> x900,0 (bobot +9.8)" in text
    assert "tanggal lahir: All other comparisons -> x0,202 (bobot -2.3)" in text
    assert "awal: dua catatan acak orang yang sama 1 banding 999" in text
    prior = math.log2(0.001 / 0.999)
    assert p == pytest.approx(1 / (1 + 2 ** -(prior + math.log2(900) + math.log2(0.2 / 0.99))))
    assert "peluang yang dipakai 0.900" in text
    conn.close()


def test_link_review_workbook_is_locked_masked_and_maps_to_link_decisions(tmp_path):
    from satudata_pipeline.link import review_pairs

    conn = duckdb.connect()
    _link_schema(conn)
    res = review_pairs.write_link_review(conn, tmp_path, "2026-11-01")
    assert (res["pairs"], res["join"], res["split"]) == (3, 2, 1)
    wb = openpyxl.load_workbook(res["xlsx"])
    ws = wb[review_pairs.SHEET]
    assert ws.protection.sheet is True and [c.value for c in ws[1]] == review_pairs.COLUMNS
    rows = [dict(zip(review_pairs.COLUMNS, r)) for r in ws.iter_rows(min_row=2, values_only=True)]
    assert len(rows) == 3
    assert all(MASKED.match(r[f"nik_disamarkan_{s}"]) for r in rows for s in "ab")
    assert "3171000000000007" not in res["xlsx"].read_bytes().decode("latin-1")
    col = {h: i + 1 for i, h in enumerate(review_pairs.COLUMNS)}
    assert (
        not ws.cell(2, col["orang_sama"]).protection.locked
        and ws.cell(2, col["penjelasan"]).protection.locked
    )
    dv = {str(d.sqref): d for d in ws.data_validations.dataValidation}
    letter = openpyxl.utils.get_column_letter(col["orang_sama"])
    assert dv[f"{letter}2:{letter}4"].formula1 == '"ya,tidak"'
    # filled and read back through the contract's reader with the shipped mapping
    ws.cell(3, col["orang_sama"]).value = "tidak"
    ws.cell(3, col["petugas"]).value = "PTG-9"
    ws.cell(3, col["tanggal"]).value = dt.datetime(2026, 11, 3)
    wb.save(res["xlsx"])
    (entry,) = yaml.safe_load(res["mapping"].read_text())["sources"]
    assert entry["kind"] == "link_decision" and set(entry["columns"]) == {
        "source_a",
        "record_id_a",
        "source_b",
        "record_id_b",
        "same_person",
        "decided_by",
        "decided_at",
        "note",
    }
    decided = [r for r in read_canonical(res["xlsx"].parent, entry) if r["same_person"] is not None]
    assert decided == [
        {
            "source_a": "src",
            "record_id_a": "R7",
            "source_b": "src",
            "record_id_b": "R8",
            "same_person": "false",
            "decided_by": "PTG-9",
            "decided_at": "2026-11-03",
            "note": None,
        }
    ]
    conn.close()


def test_officer_fills_link_review_from_the_truth(tmp_path):
    from satudata_pipeline.link import review_pairs

    conn = duckdb.connect()
    _link_schema(conn)
    review_pairs.write_link_review(conn, tmp_path / "exports", "2026-11-01")
    truth = tmp_path / "truth"
    truth.mkdir()
    with open(truth / "verdicts.csv", "w") as fh:
        fh.write(
            "program,source,row_number,record_id,person_key,verdict,reasons,true_state,nominal_bulanan\n"
        )
    with open(
        truth / "records.csv", "w"
    ) as fh:  # r2 and r3 one person, r7 and r8 two, r1 and r9 one
        fh.write("source,row_number,record_id,person_key,expected_quarantine,nik_noise\n")
        for i, key in {1: "P1", 2: "P2", 3: "P2", 7: "P7", 8: "P8", 9: "P1"}.items():
            fh.write(f"src,{i},R{i},{key},,ok\n")
    counts = officer.play_officer(tmp_path / "exports", truth, tmp_path / "out", seed=1)
    assert counts == {
        "files": 1,
        "tautan_correct": 3,
    }  # three pairs: too few for deliberate mistakes
    ws = openpyxl.load_workbook(tmp_path / "out" / review_pairs.WORKBOOK)[review_pairs.SHEET]
    got = {
        (r[review_pairs.COLUMNS.index("id_a")], r[review_pairs.COLUMNS.index("id_b")]): r[
            review_pairs.COLUMNS.index("orang_sama")
        ]
        for r in ws.iter_rows(min_row=2, values_only=True)
    }
    assert got == {("R2", "R3"): "ya", ("R7", "R8"): "tidak", ("R1", "R9"): "ya"}
    assert (tmp_path / "out" / review_pairs.MAPPING).is_file()
    conn.close()


# ---------------------------------------------------------------------------------- the whole loop
def _decisions_landed() -> bool:
    from satudata_pipeline.contract.sources import KINDS

    return "review_decision" in KINDS


@pytest.mark.skipif(
    not _decisions_landed(), reason="needs the review_decision source kind (docs/decisions.md)"
)
def test_decisions_add_refuses_a_returned_file_without_a_mapped_column(
    fixture_conn, tmp_path, capsys
):
    res = worklists.write_worklist(fixture_conn, "KLJ", tmp_path / "x")
    wb = openpyxl.load_workbook(res["xlsx"])
    ws = wb[worklists.WORKLIST_SHEET]
    next(
        c for c in ws[1] if c.value == "petugas"
    ).value = "nama_petugas"  # the office renamed a column
    wb.save(res["xlsx"])
    d = _delivery(tmp_path)
    before = (d / "sources.yaml").read_text()
    assert cli.main(["decisions", "add", str(res["xlsx"]), "--data-dir", str(d)]) == 2
    err = capsys.readouterr().err
    assert "column 'petugas'" in err and "decided_by" in err and "nothing changed" in err
    assert (d / "sources.yaml").read_text() == before and not list((d / "keputusan").glob("*"))


@pytest.mark.skipif(
    not _decisions_landed(), reason="needs the review_decision source kind (docs/decisions.md)"
)
def test_loop_export_officer_decisions_add_rerun(tmp_path):
    """Export the worklists, the officer fills them from the truth, `decisions add`, run again: decided rows
    carry their decision, every other row is unchanged, the malformed ones are set aside and reported."""
    from publish_helpers import connect, generated_delivery, run_job

    from satudata_pipeline import config
    from satudata_pipeline.link import review_pairs

    with generated_delivery(tmp_path) as (delivery, state):
        truth = tmp_path / "truth"
        shutil.move(delivery / "truth", truth)
        warehouse = state / "warehouse.duckdb"
        assert run_job(delivery, warehouse).success
        with connect(warehouse) as conn:
            before = {
                (p, r): (v, list(rs))
                for p, r, v, rs in conn.execute(
                    "SELECT program, record_id, verdict, reasons FROM main.beneficiary_review"
                ).fetchall()
            }
            evidence_before = dict(
                ((p, r), f)
                for p, r, f in conn.execute(
                    "SELECT program, record_id, evidence_fingerprint FROM main.beneficiary_review"
                ).fetchall()
            )
            backlog_before = sum(s["waiting"] for s in worklists.backlog(conn).values())
        exports = config.exports_dir()
        filled = tmp_path / "filled"
        counts = officer.play_officer(exports, truth, filled, seed=7)
        assert counts["correct"] > 0 and counts["unknown_record"] >= 1
        for folder in sorted(p for p in filled.iterdir() if p.is_dir()):
            assert (
                cli.main(
                    [
                        "decisions",
                        "add",
                        str(folder / worklists.worklist_name(folder.name)),
                        "--data-dir",
                        str(delivery),
                    ]
                )
                == 0
            )
        if (filled / review_pairs.WORKBOOK).is_file():
            assert (
                cli.main(
                    [
                        "decisions",
                        "add",
                        str(filled / review_pairs.WORKBOOK),
                        "--data-dir",
                        str(delivery),
                    ]
                )
                == 0
            )
        assert run_job(delivery, warehouse).success
        key = list(csv.DictReader(open(filled / officer.KEY_FILE)))
        with connect(warehouse) as conn:
            after = {
                (p, r): (v, list(rs), d, s)
                for p, r, v, rs, d, s in conn.execute(
                    "SELECT program, record_id, verdict, reasons, decision, decision_status "
                    "FROM main.beneficiary_review"
                ).fetchall()
            }
            evidence_after = dict(
                ((p, r), f)
                for p, r, f in conn.execute(
                    "SELECT program, record_id, evidence_fingerprint FROM main.beneficiary_review"
                ).fetchall()
            )
            aside = conn.execute(
                "SELECT program, record_id, reason FROM decisions.set_aside "
                "WHERE kind = 'review_decision'"
            ).fetchall()
            backlog_after = sum(s["waiting"] for s in worklists.backlog(conn).values())
    rows = [k for k in key if k["program"] != "tautan"]
    decided = {
        (k["program"], k["record_id"]): k["decision"]
        for k in rows
        if k["action"] in ("correct", "wrong")
    }
    assert decided
    reopened = 0
    for row, decision in decided.items():
        verdict, _, applied, status = after[row]
        if status == "reopened":
            # another decision changed this row's evidence (e.g. the earlier enrollment it duplicated was
            # removed): back to review with the decision shown, never silently applied
            assert (applied, verdict) == (decision, "review") and evidence_after[
                row
            ] != evidence_before[row], row
            reopened += 1
            continue
        assert (applied, status, verdict) == (decision, "applied", decision), row
    assert reopened <= max(1, len(decided) // 20)
    untouched = set(before) - set(decided)
    assert untouched and all(after[r][0] == before[r][0] and after[r][2] is None for r in untouched)
    reasons = {(p, r): reason for p, r, reason in aside}
    for k in rows:
        want = {
            "bad_decision_word": "malformed_decision",
            "missing_officer": "malformed_decided_by",
            "unknown_record": "unknown_record",
        }.get(k["action"])
        if want:
            assert reasons.get((k["program"], k["record_id"])) == want, k
    # ...and reported back to the office that sent them
    from satudata_pipeline.decisions.report import program_file

    for k in rows:
        if k["action"] in ("bad_decision_word", "missing_officer", "unknown_record"):
            report = (exports / k["program"] / program_file(k["program"])).read_text("utf-8-sig")
            assert k["record_id"] in report, k
    # undecided rows are not decisions: never set aside, still waiting
    undecided = {(k["program"], k["record_id"]) for k in rows if k["action"] == "undecided"}
    assert not undecided & set(reasons)
    assert backlog_after == backlog_before - len(decided) + reopened

    # Next month: the generator's next full delivery (deaths, moves, enrollments, corrections; no
    # decision files: decisions are stored) on the same warehouse. Every decision stays in force while
    # the evidence it answered is unchanged; where new evidence came, the row is back in review with
    # the decision shown; a death the pipeline now sees never leaves a decided row silently applied.
    import os

    from satudata_pipeline.synthetic.next_month import next_month

    shutil.move(truth, delivery / "truth")
    month1 = tmp_path / "month1"
    next_month(delivery, month1)
    saved = os.environ.get("SATUDATA_STATE_DIR")
    os.environ["SATUDATA_STATE_DIR"] = str(state)
    try:
        assert run_job(month1, warehouse).success
        with connect(warehouse) as conn:
            month = {
                (p, r): (v, list(rs), d, st, f)
                for p, r, v, rs, d, st, f in conn.execute(
                    "SELECT program, record_id, verdict, reasons, decision, decision_status, "
                    "evidence_fingerprint FROM main.beneficiary_review"
                ).fetchall()
            }
    finally:
        if saved is None:
            os.environ.pop("SATUDATA_STATE_DIR", None)
        else:
            os.environ["SATUDATA_STATE_DIR"] = saved
    still = [row for row in decided if row in month]
    assert len(still) >= 0.8 * len(decided)  # a month's exits leave most rows in the rosters
    kept_in_force = newly_dead = 0
    for row in still:
        verdict, reasons, decision, status, evidence = month[row]
        assert decision == decided[row], row  # shown, never dropped
        if status == "applied":
            assert verdict == decision and evidence == evidence_before[row], row
            kept_in_force += 1
        else:
            assert (status, verdict) == ("reopened", "review"), row
            assert evidence != evidence_before[row], row
        if "deceased" in reasons and "deceased" not in before[row][1]:
            assert status == "reopened", row
            newly_dead += 1
    assert kept_in_force >= 0.8 * len(still)
