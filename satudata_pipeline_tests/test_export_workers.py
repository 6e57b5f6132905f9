"""The offices' workbooks are written by worker processes: same files as one process, errors
reported without the data, nothing staged left behind."""

from __future__ import annotations

import duckdb
import openpyxl
import pytest
from fixtures.programs_warehouse import FIXTURE_SNAPSHOT, build_fixture_warehouse

from satudata_pipeline import config
from satudata_pipeline.contract.program_rules import load_rules
from satudata_pipeline.programs import exports
from satudata_pipeline.programs.eligibility import build_eligible_not_enrolled
from satudata_pipeline.programs.verdicts import build_beneficiary_review


@pytest.fixture()
def warehouse():
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    build_beneficiary_review(conn, load_rules(), FIXTURE_SNAPSHOT)
    build_eligible_not_enrolled(conn, load_rules(), FIXTURE_SNAPSHOT)
    yield conn
    conn.close()


def _cells(path):
    """Every cell of every sheet, but the cover's "written at" time."""
    wb = openpyxl.load_workbook(path)
    out = {}
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.value is not None and not (ws.title == "Ringkasan" and c.row == 7):
                    out[(ws.title, c.coordinate)] = (c.value, c.number_format, c.quotePrefix)
    return out


def test_worker_processes_write_the_same_files_as_one_process(warehouse, tmp_path, monkeypatch):
    monkeypatch.setenv("SATUDATA_EXPORT_WORKERS", "1")
    one = exports.export_programs(warehouse, tmp_path / "one")
    monkeypatch.setenv("SATUDATA_EXPORT_WORKERS", "3")
    three = exports.export_programs(warehouse, tmp_path / "three")
    assert set(one) == set(three) == {"KAJ", "KJMU", "KJP", "KLJ", "KPDJ"}
    for program in one:
        a, b = one[program], three[program]
        assert {k: v for k, v in a.items() if k not in ("xlsx", "csv")} == {
            k: v for k, v in b.items() if k not in ("xlsx", "csv")
        }
        assert [p.name for p in a["csv"]] == [p.name for p in b["csv"]]
        for pa_, pb in zip(a["csv"], b["csv"], strict=True):
            assert pa_.read_bytes() == pb.read_bytes()
        assert _cells(a["xlsx"]) == _cells(b["xlsx"])
        folder_a, folder_b = tmp_path / "one" / program, tmp_path / "three" / program
        assert sorted(p.name for p in folder_a.iterdir()) == sorted(
            p.name for p in folder_b.iterdir()
        )
        for name in (f"{program}_calon_layak.csv",):
            if (folder_a / name).exists():
                assert (folder_a / name).read_bytes() == (folder_b / name).read_bytes()
    assert sum(info["candidates"] for info in one.values()) > 0  # candidate lists were written too
    # the staged rows are gone
    for root in (tmp_path / "one", tmp_path / "three"):
        assert not [p for p in root.rglob(f"{exports.STAGING_PREFIX}*")]


def test_a_failing_writer_names_the_error_not_the_cell(tmp_path, monkeypatch):
    """A worker's error reaches the run as its type and place, never its message (it can quote a
    cell, e.g. `invalid literal for int(): 'SITI AMINAH'`)."""
    monkeypatch.setenv("SATUDATA_EXPORT_WORKERS", "2")
    conn = duckdb.connect()
    bad, good = tmp_path / "bad.parquet", tmp_path / "good.parquet"
    conn.execute(
        f"COPY (SELECT 'SITI AMINAH' AS peringkat, '3171****0001' AS nik_masked, 'SITI AMINAH' AS nama, "
        f"'lansia' AS target_group, 'K' AS kota, 'C' AS kecamatan, 'L' AS kelurahan, "
        f"300000 AS nominal_bulanan, false AS stale_record) TO '{bad}' (FORMAT parquet)"
    )
    conn.execute(
        f"COPY (SELECT 1 AS peringkat, '3171****0001' AS nik_masked, 'BUDI' AS nama, "
        f"'lansia' AS target_group, 'K' AS kota, 'C' AS kecamatan, 'L' AS kelurahan, "
        f"300000 AS nominal_bulanan, false AS stale_record) TO '{good}' (FORMAT parquet)"
    )
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    jobs = [
        {"kind": "candidates", "program": "A", "folder": str(tmp_path / "A"), "rows": str(good), "cells": 9},
        {"kind": "candidates", "program": "B", "folder": str(tmp_path / "B"), "rows": str(bad), "cells": 9},
    ]  # fmt: skip
    with pytest.raises(exports.ExportError) as err:
        exports._run_jobs(jobs)
    assert "ValueError" in str(err.value) and "['B']" in str(err.value)
    assert "SITI" not in str(err.value)
    # the same jobs, the bad row fixed, run in two workers and come back in order
    jobs[1]["rows"] = str(good)
    results = exports._run_jobs(jobs)
    assert [r["rows"] for r in results] == [1, 1]
    assert [r["csv"].parent.name for r in results] == ["A", "B"]


def test_a_refused_export_leaves_every_folder_as_it_was_and_nothing_staged(warehouse, tmp_path):
    """KLJ is refused after KAJ, KJMU and KJP passed their checks: their previous files stay."""
    root = tmp_path / "exports"
    before = exports.export_programs(warehouse, root)
    kaj = {p.name: p.read_bytes() for p in (root / "KAJ").iterdir()}
    assert before["KAJ"]["rows"] > 0 and kaj
    warehouse.execute(
        "UPDATE main.beneficiary_review SET nik_masked = '3171010101010021' WHERE program = 'KLJ'"
    )
    with pytest.raises(exports.ExportPrivacyError):
        exports.export_programs(warehouse, root)
    assert {p.name: p.read_bytes() for p in (root / "KAJ").iterdir()} == kaj
    assert not [p for p in root.rglob(f"{exports.STAGING_PREFIX}*")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", 1), ("4", 4), (" 2 ", 2), ("0", ValueError), ("-1", ValueError), ("two", ValueError)],
)
def test_export_workers_setting(monkeypatch, value, expected):
    monkeypatch.setenv("SATUDATA_EXPORT_WORKERS", value)
    if expected is ValueError:
        with pytest.raises(ValueError, match="SATUDATA_EXPORT_WORKERS"):
            config.export_workers()
    else:
        assert config.export_workers() == expected


def test_export_workers_default_is_the_usable_cpus(monkeypatch):
    monkeypatch.delenv("SATUDATA_EXPORT_WORKERS", raising=False)
    assert 1 <= config.export_workers() <= 8


def test_a_list_longer_than_excels_row_limit_goes_on_over_numbered_sheets(tmp_path, monkeypatch):
    """Each sheet holds at most EXCEL_MAX_ROWS data rows under its own header (a limit of 3 here,
    1,048,575 in Excel); the CSV holds them all."""
    monkeypatch.setattr(exports, "EXCEL_MAX_ROWS", 3)
    conn = duckdb.connect()
    rows = tmp_path / "rows.parquet"
    conn.execute(
        f"COPY (SELECT i AS peringkat, '3171****0001' AS nik_masked, 'ORANG ' || i AS nama, "
        f"'lansia' AS target_group, 'K' AS kota, 'C' AS kecamatan, 'L' AS kelurahan, "
        f"300000 AS nominal_bulanan, false AS stale_record FROM range(1, 8) t(i) ORDER BY i) "
        f"TO '{rows}' (FORMAT parquet)"
    )
    job = {"kind": "candidates", "program": "KLJ", "folder": str(tmp_path), "rows": str(rows)}
    out = exports._write_job({**job, "cells": 63})
    assert out["rows"] == 7
    wb = openpyxl.load_workbook(out["xlsx"])
    assert wb.sheetnames == ["Calon layak", "Calon layak (2)", "Calon layak (3)"]
    names = [[r[2] for r in ws.iter_rows(min_row=2, values_only=True)] for ws in wb.worksheets]
    assert names == [
        ["ORANG 1", "ORANG 2", "ORANG 3"],
        ["ORANG 4", "ORANG 5", "ORANG 6"],
        ["ORANG 7"],
    ]
    assert all(ws["A1"].value == "peringkat" and ws.freeze_panes == "A2" for ws in wb.worksheets)
    assert [ws.auto_filter.ref for ws in wb.worksheets] == ["A1:I4", "A1:I4", "A1:I2"]
    assert len(out["csv"].read_text(encoding="utf-8-sig").splitlines()) == 8
