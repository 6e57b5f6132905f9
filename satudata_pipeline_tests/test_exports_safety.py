"""Office exports that cannot run formulas, say what they are, and refuse to carry private data.

Hostile text (a roster id `=HYPERLINK(...)`, names starting with `+`, `@`, TAB or CR, a kecamatan code
`-1+2`) reaches the CSV with a leading `'` and the xlsx as plain strings; the legend covers every
reason code; the privacy guard is a real check (it holds under `python -O`) and refuses before
anything is written.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import openpyxl
import pytest
from fixtures.programs_warehouse import FIXTURE_SNAPSHOT, build_fixture_warehouse
from openpyxl.utils.escape import unescape

from satudata_pipeline.contract.program_rules import load_rules
from satudata_pipeline.programs import exports
from satudata_pipeline.programs.exports import (
    EXPORT_COLUMNS,
    FORMULA_PREFIXES,
    REASON_LEGEND,
    ExportError,
    ExportPrivacyError,
    check_reason_legend,
    export_programs,
    neutralise,
)
from satudata_pipeline.programs.verdicts import (
    REASON_CODES,
    REMOVE_REASONS,
    build_beneficiary_review,
)

HOSTILE = {  # record_id -> (nama, kode_kecamatan)
    '=HYPERLINK("http://x","y")': ("+Orang Plus", "-1+2"),
    "@SUM(A1:A9)": ("@Orang At", None),
    "KLJ-TAB": ("\tOrang Tab", None),
    "KLJ-CR": ("\rOrang CR", None),
}


@pytest.fixture()
def warehouse():
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    build_beneficiary_review(conn, load_rules(), FIXTURE_SNAPSHOT)
    yield conn
    conn.close()


@pytest.fixture()
def hostile(warehouse, tmp_path):
    """KLJ rows 021-024 (Jakarta Pusat) renamed to hostile ids and names, then exported."""
    for (record_id, (nama, kecamatan)), old in zip(
        HOSTILE.items(), ["KLJ-021", "KLJ-022", "KLJ-023", "KLJ-024"]
    ):
        n = warehouse.execute(
            "UPDATE main.beneficiary_review SET record_id = ?, nama = ?, "
            "kode_kecamatan = coalesce(?, kode_kecamatan) WHERE program = 'KLJ' AND record_id = ?",
            [record_id, nama, kecamatan, old],
        ).fetchall()[0][0]
        assert n == 1, old
    return export_programs(warehouse, tmp_path / "exports", ["KLJ"])["KLJ"]


def _csv_rows(paths):
    rows = []
    for path in paths:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            rows += list(csv.DictReader(fh, delimiter=";"))
    return rows


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "\n=1"])
def test_neutralise_prefixes_every_formula_start(text):
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize(
    "text", ["Orang P21", "3171********0001", "KLJ-021", "SD", "", "'quoted", " =1"]
)
def test_neutralise_leaves_ordinary_text(text):
    assert neutralise(text) == text


def test_csv_cells_that_could_start_a_formula_get_a_quote(hostile):
    rows = {r["id_baris"]: r for r in _csv_rows(hostile["csv"])}
    for record_id, (nama, kecamatan) in HOSTILE.items():
        row = rows[neutralise(record_id)]
        assert row["id_baris"] == ("'" + record_id if record_id[0] in "=@" else record_id)
        assert row["nama"] == "'" + nama
        if kecamatan:
            assert row["kecamatan"] == "'" + kecamatan
    # no cell of any CSV starts like a formula
    for row in _csv_rows(hostile["csv"]):
        assert not [k for k, v in row.items() if v.startswith(FORMULA_PREFIXES)], row["id_baris"]
    ordinary = next(r for r in rows.values() if r["id_baris"] == "KLJ-025")
    assert ordinary["nama"] == "ORANG P25" and ordinary["nik_disamarkan"] == "3171********0025"


def test_xlsx_cells_are_strings_never_formulas(hostile):
    wb = openpyxl.load_workbook(hostile["xlsx"])
    ws = wb["Jakarta Pusat"]
    header = [c.value for c in ws[1]]
    found = {}
    for row in ws.iter_rows(min_row=2):
        cells = dict(zip(header, row))
        found[cells["id_baris"].value] = cells
    for record_id, (nama, kecamatan) in HOSTILE.items():
        cells = found[record_id]  # written as it is, not prefixed
        for cell, expected in [(cells["id_baris"], record_id), (cells["nama"], nama)] + (
            [(cells["kecamatan"], kecamatan)] if kecamatan else []
        ):
            # (a control character is stored as Excel's `_x000D_` escape, which Excel reads back as CR)
            assert cell.data_type == "s" and unescape(cell.value) == expected
            # Excel's quote prefix keeps a formula-like text a text even when the cell is edited
            assert cell.quotePrefix == expected.startswith(FORMULA_PREFIXES)
    for sheet in wb:
        assert not [c.coordinate for row in sheet.iter_rows() for c in row if c.data_type == "f"], (
            sheet.title
        )
    with zipfile.ZipFile(hostile["xlsx"]) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/")]
        assert len(sheets) == 4
        assert not [n for n in sheets if b"<f>" in z.read(n) or b"<f " in z.read(n)]
        assert not [
            n
            for n in z.namelist()
            if "externalLink" in n or "hyperlink" in z.read(n).decode("latin-1")
        ]


def test_summary_sheet_names_the_delivery_publication_and_totals(warehouse, tmp_path):
    warehouse.execute("CREATE TABLE main.publication_log (run_id VARCHAR, published_at TIMESTAMP)")
    warehouse.execute(
        "INSERT INTO main.publication_log VALUES ('run-old', '2026-11-02 08:00:00'), "
        "('run-abc123', '2026-11-03 09:30:00')"
    )
    result = export_programs(warehouse, tmp_path / "exports", ["KLJ"])["KLJ"]
    ws = openpyxl.load_workbook(result["xlsx"])["Ringkasan"]
    values = {r[0]: r[1:] for r in ws.iter_rows(values_only=True) if r[0]}
    assert values["Program"][0] == "KLJ"
    assert values["Tanggal data (snapshot kiriman)"][0] == FIXTURE_SNAPSHOT.isoformat()
    assert values["Publikasi (run id)"][0] == "run-abc123"
    assert values["Tanggal publikasi"][0].startswith("2026-11-03 09:30:00")
    assert values["Jumlah baris"][0] == "12"
    # totals: rows and rupiah per verdict and overall, as numbers
    assert values["Jumlah semua"][1:4] == (12, 3_600_000, 43_200_000)
    assert values["Jumlah hapus"][1] + values["Jumlah tetap"][1] + values["Jumlah tinjau"][1] == 12
    assert values["meninggal"][:2] == ("deceased", 3)


def test_legend_sheet_explains_every_reason_code(hostile):
    ws = openpyxl.load_workbook(hostile["xlsx"])["Keterangan"]
    rows = [r for r in ws.iter_rows(values_only=True)]
    by_code = {r[1]: r for r in rows if r[1] in REASON_CODES}
    assert set(by_code) == set(REASON_CODES) and "amount_above_rule" in by_code
    for code, (label, verdict, meaning, action) in (
        (c, (r[0], r[2], r[3], r[4])) for c, r in by_code.items()
    ):
        assert label == REASON_LEGEND[code][0] and meaning and action, code
        assert verdict.startswith("hapus" if code in REMOVE_REASONS else "tinjau"), code
    verdicts = {r[1]: r[0] for r in rows if r[1] in ("keep", "remove", "review")}
    assert verdicts == {"keep": "tetap", "remove": "hapus", "review": "tinjau"}


def test_a_reason_code_without_a_label_is_refused():
    check_reason_legend()  # the shipped codes all have one
    with pytest.raises(ExportError, match=r"no Indonesian label .* \['new_code'\]"):
        check_reason_legend([*REASON_CODES, "new_code"])


def test_unknown_reason_in_the_table_is_refused_before_writing(warehouse, tmp_path):
    warehouse.execute(
        "UPDATE main.beneficiary_review SET reasons = ['made_up'] WHERE record_id = 'KLJ-021'"
    )
    with pytest.raises(ExportError, match="made_up"):
        export_programs(warehouse, tmp_path / "exports", ["KLJ"])
    assert not (tmp_path / "exports" / "KLJ").exists()


def test_an_unmasked_nik_is_refused_before_anything_is_written(warehouse, tmp_path):
    warehouse.execute(
        "UPDATE main.beneficiary_review SET nik_masked = '3171010101010021' "
        "WHERE record_id = 'KLJ-021'"
    )
    with pytest.raises(ExportPrivacyError) as err:
        export_programs(warehouse, tmp_path / "exports", ["KLJ"])
    assert "program KLJ" in str(err.value) and "1 row(s)" in str(err.value)
    assert "3171010101010021" not in str(err.value)
    assert not (tmp_path / "exports" / "KLJ").exists()


def test_a_forbidden_column_is_refused(warehouse, tmp_path, monkeypatch):
    original = exports._export_select
    monkeypatch.setattr(
        exports, "_export_select", lambda p: original(p).replace("b.nama,", "b.nama, b.person_id,")
    )
    with pytest.raises(ExportPrivacyError, match=r"forbidden column\(s\) \['person_id'\]"):
        export_programs(warehouse, tmp_path / "exports", ["KLJ"])
    monkeypatch.setattr(
        exports,
        "_export_select",
        lambda p: original(p).replace("b.nama,", "b.nama, b.kode_kelurahan,"),
    )
    with pytest.raises(ExportPrivacyError, match="expected exactly"):
        export_programs(warehouse, tmp_path / "exports", ["KLJ"])
    assert not (tmp_path / "exports" / "KLJ").exists()


def test_the_privacy_guard_holds_under_python_O(tmp_path):
    """An `assert` would vanish under -O; the guard must not."""
    code = """
import duckdb, sys
from satudata_pipeline.contract.program_rules import load_rules
from satudata_pipeline.programs.exports import ExportPrivacyError, export_programs
from fixtures.programs_warehouse import FIXTURE_SNAPSHOT, build_fixture_warehouse
from satudata_pipeline.programs.verdicts import build_beneficiary_review
assert False  # proves asserts are off
"""
    code = (
        code.replace(
            "assert False  # proves asserts are off",
            """
conn = duckdb.connect(); build_fixture_warehouse(conn); build_beneficiary_review(conn, load_rules(), FIXTURE_SNAPSHOT)
conn.execute("UPDATE main.beneficiary_review SET nik_masked = '3171010101010021'")
try:
    export_programs(conn, __import__('pathlib').Path(sys.argv[1]))
except ExportPrivacyError:
    sys.exit(7)
""",
        )
        + "\nassert False\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    proc = subprocess.run(
        [sys.executable, "-O", "-c", code, str(tmp_path / "x")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 7, proc.stderr[-2000:]


def test_columns_are_the_documented_indonesian_headers():
    assert EXPORT_COLUMNS == [
        "program",
        "sumber",
        "id_baris",
        "nik_disamarkan",
        "nama",
        "jenjang",
        "kota",
        "kecamatan",
        "keputusan",
        "alasan",
        "kode_alasan",
        "nominal_bulanan",
        "tanggal_mulai",
    ]
