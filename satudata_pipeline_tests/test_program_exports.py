"""Exports for the program offices: masked NIKs, no welfare attributes, one file/sheet per kota, in Indonesian."""

from __future__ import annotations

import re

import duckdb
import openpyxl
import pandas as pd
import pytest
from fixtures.programs_warehouse import FIXTURE_SNAPSHOT, build_fixture_warehouse

from satudata_pipeline.contract.program_rules import load_rules
from satudata_pipeline.programs.eligibility import build_eligible_not_enrolled
from satudata_pipeline.programs.exports import (
    EXPORT_COLUMNS,
    FORBIDDEN_COLUMNS,
    REASON_LEGEND,
    VERDICT_LABELS,
    export_programs,
)
from satudata_pipeline.programs.summary import build_program_summary, write_run_summary
from satudata_pipeline.programs.verdicts import build_beneficiary_review

MASKED = re.compile(r"^\d{4}\*{8}\d{4}$")


def read_export_csv(path):
    """How a machine reads an office CSV: `;`-separated, UTF-8 with BOM."""
    return pd.read_csv(path, dtype=str, sep=";", encoding="utf-8-sig")


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
    assert sorted(p.name for p in klj["csv"]) == [
        "KLJ_31_71_jakarta_pusat.csv",
        "KLJ_31_74_jakarta_selatan.csv",
    ]
    wb = openpyxl.load_workbook(klj["xlsx"], read_only=True)
    assert wb.sheetnames == ["Ringkasan", "Keterangan", "Jakarta Pusat", "Jakarta Selatan"]
    total = sum(len(read_export_csv(p)) for p in klj["csv"])
    assert total == klj["rows"] == 12


def test_no_welfare_columns_and_masked_nik(exported):
    conn, result, root = exported
    welfare_values = {"desil", "dtks/", "njop", "punya_mobil", "disabilitas", "kematian/"}
    labels = {
        reason for code in REASON_LEGEND for reason in (code, f"{REASON_LEGEND[code][0]} ({code})")
    }
    for info in result.values():
        for path in info["csv"]:
            df = read_export_csv(path)
            assert list(df.columns) == EXPORT_COLUMNS
            assert not FORBIDDEN_COLUMNS & set(df.columns)
            assert df.nik_disamarkan.dropna().map(lambda v: bool(MASKED.match(v))).all(), path
            # the reason columns hold only legend labels and codes; no other column holds welfare words
            for col in ("alasan", "kode_alasan"):
                assert set(df[col].dropna().str.split(", ").explode()) <= labels, (path, col)
            blob = df.drop(columns=["alasan", "kode_alasan"]).to_csv(index=False).lower()
            assert not any(w in blob for w in welfare_values), path
            assert "317100000000" not in path.read_text(encoding="utf-8-sig")  # no full NIK
        sheets = pd.read_excel(info["xlsx"], sheet_name=None, dtype=str)
        for name, df in sheets.items():
            if name in ("Ringkasan", "Keterangan"):
                continue
            assert list(df.columns) == EXPORT_COLUMNS
            assert df.nik_disamarkan.dropna().map(lambda v: bool(MASKED.match(v))).all()


def test_row_content_in_indonesian_with_the_codes_kept(exported):
    conn, result, root = exported
    df = pd.concat(read_export_csv(p) for p in result["KLJ"]["csv"])
    row = df[df.id_baris == "KLJ-021"].iloc[0]
    assert row.keputusan == "hapus"
    assert row.alasan == (
        "meninggal (deceased), data belum dimutakhirkan (stale_record), "
        "tingkat kesejahteraan di atas batas (welfare_too_high)"
    )
    assert row.kode_alasan == "deceased, stale_record, welfare_too_high"
    assert (
        row.nik_disamarkan == "3171********0021"
        and row.nama == "ORANG P21"
        and row.nominal_bulanan == "300000"
    )
    assert row.kota == "Kota Administrasi Jakarta Pusat" and row.tanggal_mulai == "2019-01-01"
    assert set(df.keputusan) == {"tetap", "hapus", "tinjau"}
    assert df[df.keputusan == "tetap"].alasan.isna().all()
    kjp = pd.concat(read_export_csv(p) for p in result["KJP"]["csv"])
    assert "KJP-Q01" in set(
        kjp.id_baris
    )  # the unresolved quarantined row is listed (without a kota)
    # the CSV rows agree with the published table row for row
    n = conn.execute(
        "SELECT count(*) FROM main.beneficiary_review WHERE program = 'KJP'"
    ).fetchall()[0][0]
    assert len(kjp) == n == result["KJP"]["rows"]
    by_verdict = dict(
        conn.execute(
            "SELECT verdict, count(*) FROM main.beneficiary_review WHERE program = 'KJP' GROUP BY 1"
        ).fetchall()
    )
    assert kjp.keputusan.value_counts().to_dict() == {
        VERDICT_LABELS[v]: c for v, c in by_verdict.items()
    }


def test_csv_is_semicolon_separated_utf8_with_bom(exported):
    _, result, _ = exported
    raw = result["KLJ"]["csv"][0].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfprogram;sumber;id_baris;nik_disamarkan;nama;")
    assert raw.count(b"\r\n") == 1 + len(read_export_csv(result["KLJ"]["csv"][0]))


def test_data_sheets_have_header_filter_frozen_row_and_fitted_widths(exported):
    _, result, _ = exported
    wb = openpyxl.load_workbook(result["KLJ"]["xlsx"])
    ws = wb["Jakarta Pusat"]
    assert [c.value for c in ws[1]] == EXPORT_COLUMNS
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:M{ws.max_row}" and ws.max_row == 11
    widths = {k: d.width for k, d in ws.column_dimensions.items()}
    assert widths["J"] > widths["A"] and all(
        8 <= w <= 61 for w in widths.values()
    )  # alasan wide, program narrow
    assert ws["L2"].number_format == '"Rp"#,##0' and isinstance(ws["L2"].value, int)


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


def test_run_summary_is_an_indonesian_page_with_html_tables(exported, tmp_path):
    conn, _, _ = exported
    build_program_summary(conn)
    report = write_run_summary(conn, tmp_path / "runs" / "r1", {"KLJ": 2}, run_id="r1")
    page = report["html"].read_text(encoding="utf-8")
    assert 'lang="id"' in page and "<pre>" not in page and "Ringkasan penetapan" in page
    assert "<th>Tetap</th>" in page and "<th>Hapus Rp/bulan</th>" in page and ">Jumlah<" in page
    assert (
        "meninggal" in page or "usia di luar ketentuan" in page
    )  # reasons in words, codes beside them
    assert report["html"].parent.name == "r1"


def test_old_run_reports_are_pruned_by_the_retention_setting(tmp_path, monkeypatch):
    import os

    from satudata_pipeline import config

    monkeypatch.setenv("SATUDATA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SATUDATA_REPORT_RETENTION", "3")
    for i in range(6):
        d = config.run_reports_dir(f"run-{i}")
        (d / "chart.html").write_text("x")
        os.utime(d, (1_000_000 + i, 1_000_000 + i))
    os.utime(config.run_reports_dir("run-0"), (1_000_000, 1_000_000))
    removed = config.prune_run_reports(keep_run="run-0")
    left = sorted(p.name for p in (tmp_path / "state" / "reports" / "runs").iterdir())
    # the current run's folder is never pruned, even when it is the oldest; two newest others stay
    assert left == ["run-0", "run-4", "run-5"] and sorted(removed) == ["run-1", "run-2", "run-3"]
    monkeypatch.setenv("SATUDATA_REPORT_RETENTION", "0")
    with pytest.raises(ValueError, match="SATUDATA_REPORT_RETENTION"):
        config.prune_run_reports(keep_run="run-0")


@pytest.fixture()
def exported_with_candidates(tmp_path):
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    build_beneficiary_review(conn, load_rules(), FIXTURE_SNAPSHOT)
    n = build_eligible_not_enrolled(conn, load_rules(), FIXTURE_SNAPSHOT)
    result = export_programs(conn, tmp_path / "exports")
    yield conn, result, n
    conn.close()


def test_eligible_not_enrolled_exported_per_office(exported_with_candidates):
    conn, result, n = exported_with_candidates
    per_program = dict(
        conn.execute(
            "SELECT program, count(*) FROM programs.eligible_not_enrolled GROUP BY 1"
        ).fetchall()
    )
    assert n > 0 and sum(per_program.values()) == n
    for program, info in result.items():
        folder = info["xlsx"].parent
        df = read_export_csv(folder / f"{program}_calon_layak.csv")
        assert len(df) == info["candidates"] == per_program.get(program, 0)
        assert list(df.columns) == [
            "peringkat",
            "nik_disamarkan",
            "nama",
            "kelompok_sasaran",
            "kota",
            "kecamatan",
            "kelurahan",
            "nominal_bulanan",
            "perlu_verifikasi",
        ]
        assert not FORBIDDEN_COLUMNS & set(df.columns)  # no desil, age or assets for the office
        assert df.nik_disamarkan.dropna().map(lambda v: bool(MASKED.match(v))).all()
        assert df.peringkat.astype(int).tolist() == sorted(df.peringkat.astype(int))
        assert set(df.perlu_verifikasi) <= {"ya", "tidak"}
        wb = openpyxl.load_workbook(folder / f"{program}_calon_layak.xlsx", read_only=True)
        rows = list(wb["Calon layak"].iter_rows(values_only=True))
        assert rows[0][0] == "peringkat"
        assert len(rows) - 1 == (len(df) if len(df) else 1)  # an empty list says so in one line
        assert info["files"] == 1 + len(info["csv"]) + 2


def test_candidate_export_neutralises_formulas_and_refuses_unmasked_nik(
    exported_with_candidates, tmp_path
):
    from satudata_pipeline.programs.exports import ExportPrivacyError, export_candidates

    conn, result, _ = exported_with_candidates
    program = conn.execute("SELECT program FROM programs.eligible_not_enrolled LIMIT 1").fetchall()[
        0
    ][0]
    conn.execute(
        "UPDATE programs.eligible_not_enrolled SET nama = '=HYPERLINK(\"http://x\")' WHERE program = ?",
        [program],
    )
    out = export_candidates(conn, program, tmp_path)
    df = read_export_csv(out["csv"])
    assert (df.nama == '\'=HYPERLINK("http://x")').all()
    wb = openpyxl.load_workbook(out["xlsx"])
    cell = wb["Calon layak"]["C2"]
    assert cell.data_type == "s" and cell.value.startswith("=") and cell.quotePrefix
    conn.execute(
        "UPDATE programs.eligible_not_enrolled SET nik_masked = '3171010101900001' WHERE program = ?",
        [program],
    )
    with pytest.raises(ExportPrivacyError, match="not masked"):
        export_candidates(conn, program, tmp_path)
