"""Exports for the program offices: masked NIKs, no welfare attributes, one file/sheet per kota."""

from __future__ import annotations

import re

import duckdb
import openpyxl
import pandas as pd
import pytest

from satudata_pipeline.contract.program_rules import load_rules
from satudata_pipeline.programs.exports import EXPORT_COLUMNS, FORBIDDEN_COLUMNS, export_programs
from satudata_pipeline.programs.summary import build_program_summary, write_run_summary
from satudata_pipeline.programs.testing import FIXTURE_SNAPSHOT, build_fixture_warehouse
from satudata_pipeline.programs.verdicts import build_beneficiary_review

MASKED = re.compile(r"^\d{4}\*{8}\d{4}$")


@pytest.fixture()
def exported(tmp_path):
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    build_beneficiary_review(conn, load_rules(), FIXTURE_SNAPSHOT)
    result = export_programs(conn, tmp_path / "exports")
    yield conn, result, tmp_path / "exports"
    conn.close()


def test_one_folder_per_program_with_xlsx_and_csv_per_kota(exported):
    conn, result, root = exported
    assert set(result) == {"KAJ", "KJMU", "KJP", "KLJ", "KPDJ"}
    klj = result["KLJ"]
    assert klj["xlsx"] == root / "KLJ" / "KLJ_review.xlsx"
    assert sorted(p.name for p in klj["csv"]) == ["KLJ_31_71_jakarta_pusat.csv", "KLJ_31_74_jakarta_selatan.csv"]
    wb = openpyxl.load_workbook(klj["xlsx"], read_only=True)
    assert wb.sheetnames == ["Ringkasan", "Jakarta Pusat", "Jakarta Selatan"]
    total = sum(len(pd.read_csv(p)) for p in klj["csv"])
    assert total == klj["rows"] == 12


def test_no_welfare_columns_and_masked_nik(exported):
    conn, result, root = exported
    welfare_values = {"desil", "dtks/", "njop", "punya_mobil", "disabilitas"}
    for program, info in result.items():
        for path in info["csv"]:
            df = pd.read_csv(path, dtype=str)
            assert list(df.columns) == EXPORT_COLUMNS
            assert not FORBIDDEN_COLUMNS & set(df.columns)
            assert df.nik.dropna().map(lambda v: bool(MASKED.match(v))).all(), path
            blob = path.read_text(encoding="utf-8").lower()
            assert not any(w in blob for w in welfare_values if w != "desil"), path
            assert "desil " not in blob and "317100000000" not in blob  # no evidence text, no full NIK
        sheets = pd.read_excel(info["xlsx"], sheet_name=None, dtype=str)
        for name, df in sheets.items():
            if name == "Ringkasan":
                continue
            assert list(df.columns) == EXPORT_COLUMNS
            assert df.nik.dropna().map(lambda v: bool(MASKED.match(v))).all()


def test_row_content(exported):
    conn, result, root = exported
    df = pd.concat(pd.read_csv(p, dtype=str) for p in result["KLJ"]["csv"])
    row = df[df.record_id == "KLJ-021"].iloc[0]
    assert row.verdict == "remove" and row.reasons == "deceased, stale_record, welfare_too_high"
    assert row.nik == "3171********0021" and row.nama == "Orang P21" and row.nominal_bulanan == "300000"
    kjp = pd.concat(pd.read_csv(p, dtype=str) for p in result["KJP"]["csv"])
    assert "KJP-Q01" in set(kjp.record_id)  # the unresolved quarantined row is listed (without a kota)


def test_rerun_replaces_files_and_subset(exported):
    conn, result, root = exported
    stray = root / "KLJ" / "old.csv"
    stray.write_text("x")
    again = export_programs(conn, root, ["KLJ"])
    assert set(again) == {"KLJ"} and not stray.exists()
    assert (root / "KJP" / "KJP_review.xlsx").exists()


def test_run_summary_has_no_personal_data(exported, tmp_path):
    conn, _, _ = exported
    build_program_summary(conn)
    report = write_run_summary(conn, tmp_path / "reports", {"KLJ": 2})
    html = report["html"].read_text(encoding="utf-8")
    assert html.count("<svg") == 5
    assert "Orang" not in html and "ORANG" not in html and "3171" not in html.replace("31.71", "")
    assert "| KLJ | 12 | 4 | 5 | 3 |" in report["markdown"]
