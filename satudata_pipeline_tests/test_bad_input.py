"""Bad deliveries through the real raw + clean assets: refused with a clear error, or landed with flags.

Already covered elsewhere and not repeated here: duplicate mapped header, mapped column missing, empty
file, unknown program in the YAML (test_contract.py); BOM / delimiter detection / truncated line /
header-only at the reader level (test_sources_readers.py); blank names and duplicate record_ids in
quarantine (test_clean_assets.py::test_rows_are_cleaned_or_quarantined); NIK repair rules
(test_clean_nik.py); date formats (test_clean_dates.py). This file runs the *assets* on each case.

Every refusal must name the source, the file, the column (and the row where one applies) and must
never contain the personal value that caused it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from fixtures.resources import run_resources

from satudata_pipeline.clean.assets import build_clean_assets
from satudata_pipeline.contract.sources import ContractError, check_files, parse_delivery
from satudata_pipeline.sources.assets import build_source_assets

HEADER = "ID,NIK,NAMA,TGL_LHR,NO_KK,RT,ALAMAT,KEL,KEC,KOTA"
GOOD = "1,3171014501900001,Siti Aminah,05-01-1990,3171010101090001,001,Jl. Kenari No. 1,Gambir,Gambir,Jakarta Pusat"


def yaml_for(path: str = "penduduk.csv", extra: str = "", kind: str = "civil_registry") -> str:
    return textwrap.dedent(f"""\
        snapshot_date: 2026-11-01
        sources:
          - name: penduduk
            kind: {kind}
            path: {path}
            extracted_at: 2026-10-28
            date_format: "%d-%m-%Y"
        {textwrap.indent(extra, "    ")}
            columns:
              record_id: ID
              nik: NIK
              nama: NAMA
              tanggal_lahir: TGL_LHR
              no_kk: NO_KK
              rt: RT
              alamat: ALAMAT
              kelurahan: KEL
              kecamatan: KEC
              kota: KOTA
        """)


def delivery_dir(
    tmp_path: Path, body: bytes | str, yaml: str | None = None, name: str = "penduduk.csv"
) -> Path:
    data = tmp_path / "delivery"
    data.mkdir(exist_ok=True)
    (data / "sources.yaml").write_text(yaml or yaml_for(name))
    (data / name).write_bytes(body.encode("utf-8") if isinstance(body, str) else body)
    return data


def materialize(data: Path, warehouse: Path, programs=("KJP",), run_config=None):
    """parse + file checks (what the code location does at load), then the raw and clean assets."""
    delivery = parse_delivery(data, set(programs))
    check_files(delivery)
    raw_assets, raw_checks = build_source_assets(delivery)
    clean_assets, clean_checks = build_clean_assets(delivery)
    return dg.materialize(
        [*raw_assets, *clean_assets, *raw_checks, *clean_checks],
        resources=run_resources(warehouse, data),
        raise_on_error=False,
        run_config=run_config,
    )


def run_ok(tmp_path: Path, body: bytes | str, yaml: str | None = None):
    result = materialize(delivery_dir(tmp_path, body, yaml), tmp_path / "w.duckdb")
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks.get("no_row_lost") is True
    return duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)


def refusal(tmp_path: Path, body: bytes | str, yaml: str | None = None) -> str:
    """The ContractError raised at load (parse/check_files) or by the raw asset, as text."""
    data = delivery_dir(tmp_path, body, yaml)
    try:
        result = materialize(data, tmp_path / "w.duckdb")
    except ContractError as exc:
        return str(exc)
    assert not result.success, "the delivery was expected to be refused"
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures
    error = failures[0].step_failure_data.error
    while error.cause is not None and "ContractError" not in error.cls_name:
        error = error.cause
    assert error.cls_name == "ContractError", error.to_string()
    return error.message


def clean_rows(conn, columns: str = "*"):
    return conn.execute(f"SELECT {columns} FROM clean.penduduk ORDER BY row_number").fetchall()


# ---- refused, with a message that names where and never what --------------------------------
def test_latin1_file_read_as_utf8_is_refused(tmp_path):
    body = (
        HEADER
        + "\n"
        + GOOD
        + "\n"
        + GOOD.replace("1,3171", "2,3172").replace("Siti Aminah", "Andr\u00e9 Sihombing")
        + "\n"
    ).encode("latin-1")
    message = refusal(tmp_path, body)
    assert "source 'penduduk'" in message and "file 'penduduk.csv'" in message
    assert "cannot decode the" in message and "as utf-8" in message and "encoding:" in message
    assert "Andr" not in message and "Sihombing" not in message


def test_wrong_delimiter_declared_names_the_missing_column(tmp_path):
    body = (HEADER + "\n" + GOOD + "\n").replace(",", ";")
    message = refusal(tmp_path, body, yaml_for(extra='delimiter: ","'))
    assert (
        "source 'penduduk'" in message
        and "file 'penduduk.csv'" in message
        and "column '" in message
    )
    assert "Siti" not in message and "3171014501900001" not in message


def test_unknown_program_in_a_roster_names_source_file_and_column(tmp_path):
    yaml = yaml_for(kind="program_roster", extra="program: BANSOS_X")
    message = refusal(tmp_path, HEADER + "\n" + GOOD + "\n", yaml)
    assert "source 'penduduk', file 'penduduk.csv', column 'program'" in message
    assert "unknown program 'BANSOS_X'" in message


# ---- landed, flagged or quarantined ------------------------------------------------------------
def test_bom_and_semicolons_are_read(tmp_path):
    body = "\ufeff" + (HEADER + "\n" + GOOD + "\n").replace(",", ";")
    conn = run_ok(tmp_path, body.encode("utf-8"))
    assert clean_rows(conn, "record_id, nama") == [("1", "SITI AMINAH")]


def test_comma_file_with_declared_semicolon_is_refused_not_guessed(tmp_path):
    message = refusal(tmp_path, HEADER + "\n" + GOOD + "\n", yaml_for(extra='delimiter: ";"'))
    assert (
        "source 'penduduk'" in message
        and "file 'penduduk.csv'" in message
        and "column '" in message
    )


def gate_message(result) -> str:
    """The completeness gate's explanation (its blocking check failed, nothing cleaned)."""
    [gate] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "delivery_is_complete"
    ]
    assert gate.passed is False
    assert "clean_penduduk" not in {
        e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
    }
    return gate.description


def test_truncated_last_line_stops_the_run_at_the_completeness_gate(tmp_path):
    """A file that ends in the middle of a row was cut in transfer: rows after it may be missing."""
    truncated = GOOD.replace("1,3171", "2,3172").split(",Jl.")[0]  # cut off mid-row, no newline
    result = materialize(
        delivery_dir(tmp_path, HEADER + "\n" + GOOD + "\n" + truncated), tmp_path / "w.duckdb"
    )
    assert not result.success
    message = gate_message(result)
    assert "penduduk (penduduk.csv): the file ends in the middle of row 2 (line 3)" in message
    assert "Siti" not in message and "3172" not in message


def test_short_row_inside_the_file_is_quarantined_as_unreadable_row(tmp_path):
    short = GOOD.replace("1,3171", "2,3172").split(",Jl.")[
        0
    ]  # too few fields, but the file goes on
    conn = run_ok(
        tmp_path,
        HEADER + "\n" + GOOD + "\n" + short + "\n" + GOOD.replace("1,3171", "3,3173") + "\n",
    )
    assert clean_rows(conn, "record_id") == [("1",), ("3",)]
    q = conn.execute(
        "SELECT source, record_id, row_number, reason FROM clean.quarantine"
    ).fetchall()
    assert q == [("penduduk", "2", 2, "unreadable_row")]


def test_header_only_file_stops_the_run_unless_accepted(tmp_path):
    data = delivery_dir(tmp_path, HEADER + "\n")
    result = materialize(data, tmp_path / "w.duckdb")
    assert not result.success
    assert "penduduk (penduduk.csv): holds no rows (only a header)" in gate_message(result)
    accepted = materialize(
        data,
        tmp_path / "w.duckdb",
        run_config={"ops": {"delivery_completeness": {"config": {"accept": ["penduduk"]}}}},
    )
    assert accepted.success
    conn = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert clean_rows(conn) == []
    assert conn.execute('SELECT count(*) FROM raw."penduduk"').fetchall()[0][0] == 0
    assert conn.execute(
        "SELECT source, finding, accepted FROM staging.delivery_sources"
    ).fetchall() == [("penduduk", "empty", True)]


def test_latin1_past_the_header_is_refused_by_the_raw_asset(tmp_path):
    """Bad bytes deep in the file (past what the load-time header check reads): the raw asset refuses it."""
    rows = "".join(GOOD.replace("1,3171", f"{i},3171", 1) + "\n" for i in range(10, 3010))
    bad = GOOD.replace("1,3171", "2,3172").replace("Siti Aminah", "Andr\u00e9 Sihombing")
    message = refusal(tmp_path, (HEADER + "\n" + rows + bad + "\n").encode("latin-1"))
    assert "source 'penduduk'" in message and "file 'penduduk.csv'" in message
    assert (
        "cannot decode the file as utf-8" in message and "data row" in message
    )  # row: approximate (buffered)
    assert "Andr" not in message and "Sihombing" not in message


def test_mixed_date_formats_are_flagged_and_excel_serials_parsed(tmp_path):
    rows = [
        GOOD,  # declared format
        GOOD.replace("1,3171", "2,3172").replace("05-01-1990", "1990/01/05"),  # another format
        GOOD.replace("1,3171", "3,3173").replace("05-01-1990", "5 Jan 1990"),  # words
        GOOD.replace("1,3171", "4,3174").replace("05-01-1990", "32874"),  # Excel serial: 1990-01-01
    ]
    conn = run_ok(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    got = {r[0]: (r[1], r[2]) for r in clean_rows(conn, "record_id, tanggal_lahir, quality_flags")}
    assert str(got["1"][0]) == "1990-01-05" and not any(f.startswith("date_") for f in got["1"][1])
    assert str(got["4"][0]) == "1990-01-01"
    for rid in ("2", "3"):  # not in the declared format: either understood, or NULL and flagged
        date, flags = got[rid]
        assert str(date) == "1990-01-05" or (
            date is None and "date_unparseable:tanggal_lahir" in flags
        ), rid


@pytest.mark.parametrize(
    "nik, reason",
    [
        ("317101450190000", "not_16_digits"),  # 15 digits
        ("31710145019000011", "not_16_digits"),  # 17 digits
        ("3.17E+15", None),  # scientific notation: digits lost, cannot be repaired
    ],
)
def test_bad_niks_are_invalid_and_flagged(tmp_path, nik, reason):
    conn = run_ok(tmp_path, HEADER + "\n" + GOOD.replace("3171014501900001", nik) + "\n")
    ((nik_clean, valid, why, flags),) = clean_rows(
        conn, "nik, nik_valid, nik_reason, quality_flags"
    )
    assert valid is False and "nik_invalid" in flags
    assert nik_clean is None or len(nik_clean) == 16
    if reason:
        assert why == reason
    else:
        assert why is not None


def test_leading_zeros_lost_in_no_kk_and_rt(tmp_path):
    rows = [
        GOOD,
        GOOD.replace("1,3171", "2,3172").replace("3171010101090001,001", "171010101090001,1"),
    ]
    conn = run_ok(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    got = {r[0]: r[1:] for r in clean_rows(conn, "record_id, no_kk, rt")}
    assert got["1"] == ("3171010101090001", 1)
    no_kk, rt = got["2"]
    assert rt == 1  # RT 001 and 1 are the same RT
    assert no_kk is None  # a 15-digit KK is not guessed back to 16 digits


def test_blank_names_and_duplicate_ids_in_a_larger_file(tmp_path):
    rows = [
        GOOD,
        GOOD.replace("1,3171", "2,3172").replace("Siti Aminah", "  "),
        GOOD.replace("1,3171", "3,3173"),
        GOOD.replace("1,3171", "3,3174"),
    ]
    conn = run_ok(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    assert clean_rows(conn, "record_id") == [("1",)]
    q = conn.execute(
        "SELECT record_id, row_number, reason FROM clean.quarantine ORDER BY row_number"
    ).fetchall()
    assert q == [
        ("2", 2, "blank_name"),
        ("3", 3, "duplicate_record_id"),
        ("3", 4, "duplicate_record_id"),
    ]


def test_huge_free_text_field(tmp_path):
    """A 5 MB alamat (the reader's field limit is 64 MB): landed in raw, quarantined as field_too_long
    (fields.max_chars of the intake rules), nothing lost, and no metadata of the run carries it."""
    huge = "Jl. Kenari " + "x" * (5 * 1024 * 1024)
    body = (
        HEADER
        + "\n"
        + GOOD
        + "\n"
        + GOOD.replace("1,3171", "2,3172").replace("Jl. Kenari No. 1", huge)
        + "\n"
    )
    data = delivery_dir(tmp_path, body)
    result = materialize(data, tmp_path / "w.duckdb")
    assert result.success
    conn = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert clean_rows(conn, "record_id") == [("1",)]
    assert conn.execute("SELECT record_id, reason FROM clean.quarantine").fetchall() == [
        ("2", "field_too_long")
    ]
    assert (
        conn.execute('SELECT max(length("ALAMAT")) FROM raw."penduduk"').fetchall()[0][0]
        > 5 * 1024 * 1024
    )
    for event in result.get_asset_materialization_events():
        assert "xxxxxxxxxx" not in str(event.event_specific_data.materialization.metadata).lower()


def test_quoted_line_break_in_a_name_is_quarantined_not_merged(tmp_path):
    """A legitimately quoted field over two lines is one record (not a merge that blocks), but a name
    with a line break is not a valid name: quarantined with its own reason, never linked."""
    split = GOOD.replace("1,3171", "2,3172").replace("Siti Aminah", '"Siti\nAminah"')
    third = GOOD.replace("1,3171", "3,3173")
    conn = run_ok(tmp_path, HEADER + "\n" + GOOD + "\n" + split + "\n" + third + "\n")
    assert clean_rows(conn, "record_id") == [("1",), ("3",)]
    assert conn.execute(
        "SELECT record_id, row_number, reason FROM clean.quarantine"
    ).fetchall() == [("2", 2, "line_break_in_field")]
    assert conn.execute(
        "SELECT rows, physical_records, finding FROM staging.delivery_sources"
    ).fetchall() == [(3, 4, None)]
    assert conn.execute(
        'SELECT _row_number, _line_number FROM raw."penduduk" ORDER BY 1'
    ).fetchall() == [(1, 2), (2, 3), (3, 5)]


def test_control_characters_and_over_long_values_are_quarantined(tmp_path):
    nul = GOOD.replace("1,3171", "2,3172").replace("Siti Aminah", "Siti\x00Aminah")
    esc = GOOD.replace("1,3171", "3,3173").replace("Jl. Kenari", "Jl.\x1b[31m Kenari")
    long = GOOD.replace("1,3171", "4,3174").replace("Siti Aminah", "A" * 5000)
    conn = run_ok(tmp_path, "\n".join([HEADER, GOOD, nul, esc, long]) + "\n")
    assert clean_rows(conn, "record_id") == [("1",)]
    q = conn.execute(
        "SELECT record_id, reason, length(raw_values) FROM clean.quarantine ORDER BY row_number"
    ).fetchall()
    assert [(r, reason) for r, reason, _ in q] == [
        ("2", "control_character"),
        ("3", "control_character"),
        ("4", "field_too_long"),
    ]
    assert q[2][2] < 1500  # the quarantine keeps the start of an over-long value, not all of it
