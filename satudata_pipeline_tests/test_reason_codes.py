"""The one table of reason codes (programs/reasons.yaml) and the parts of the verdict query, each
run alone on a few rows (table-driven)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb
import pytest
from fixtures.programs_warehouse import FIXTURE_SNAPSHOT, build_fixture_warehouse

import satudata_pipeline
from satudata_pipeline.contract.program_rules import load_rules
from satudata_pipeline.contract.schema import SchemaError
from satudata_pipeline.programs import exports, reasons, verdicts
from satudata_pipeline.programs.reasons import (
    REASON_CODES,
    REASONS,
    ReasonTableError,
    load_reasons,
    query_columns,
    template_sql,
)

PACKAGE = Path(satudata_pipeline.__file__).parent

# SQL that names a reason code: list_contains(reasons, 'x'), reason = 'x'
_CODE_IN_SQL = [
    re.compile(r"list_contains\(\s*[\w.]*reasons\s*,\s*'([a-z_]+)'\s*\)"),
    re.compile(r"\breasons?\s*=\s*'([a-z_]+)'"),
]
# ... and, in the verdict query, the codes its reasons list is built of
_LISTED = re.compile(r"THEN\s+'([a-z_]+)'\s+END")


def codes_in_sql(text: str) -> set[str]:
    return {m.group(1) for rx in _CODE_IN_SQL for m in rx.finditer(text)}


def _fixture() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    verdicts.register_rules(conn, load_rules())
    return conn


def test_every_code_the_sql_names_is_in_the_table():
    conn = _fixture()
    generated = verdicts.verdicts_sql(conn, FIXTURE_SNAPSHOT)
    listed = {m.group(1) for m in _LISTED.finditer(generated)}
    assert listed == set(REASON_CODES), "the verdict query lists exactly the table's codes"
    sources = {
        str(p.relative_to(PACKAGE)): codes_in_sql(p.read_text(encoding="utf-8"))
        for p in PACKAGE.rglob("*.py")
    }
    # the scan sees the codes written into SQL by hand (so this test can fail)
    assert "duplicate_enrollment" in sources["programs/verdicts.py"]
    assert "stale_record" in sources["checks/staleness.py"]
    unknown = {
        path: sorted(codes - set(REASON_CODES))
        for path, codes in sources.items()
        if codes - set(REASON_CODES)
    }
    assert unknown == {}, f"reason codes used in SQL but missing from reasons.yaml: {unknown}"


def test_the_scan_catches_a_code_missing_from_the_table():
    sql = "SELECT count(*) FILTER (WHERE list_contains(b.reasons, 'ghost_enrollment')) FROM x"
    assert codes_in_sql(sql) - set(REASON_CODES) == {"ghost_enrollment"}


def test_the_verdict_query_emits_only_the_table_codes():
    conn = _fixture()
    verdicts.build_beneficiary_review(conn, load_rules(), FIXTURE_SNAPSHOT)
    emitted = {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT unnest(reasons) FROM main.beneficiary_review"
        ).fetchall()
    }
    assert emitted == set(REASON_CODES)


def test_every_place_that_lists_codes_reads_the_table():
    assert verdicts.REASON_CODES is reasons.REASON_CODES
    assert set(verdicts.REMOVE_REASONS) | set(verdicts.REVIEW_REASONS) == set(REASON_CODES)
    assert set(exports.REASON_LEGEND) == set(REASON_CODES)
    assert exports.REASON_LEGEND["deceased"][0] == REASONS["deceased"].label_id
    assert verdicts.DRIFTING_REASONS == ("stale_record",)
    from satudata_pipeline.decisions.intake import review_reasons

    assert set(REASON_CODES) <= set(review_reasons())


def test_the_table_names_only_columns_of_the_verdict_query():
    conn = _fixture()
    conn.execute(f"CREATE TEMP TABLE _q AS {verdicts.verdicts_sql(conn, FIXTURE_SNAPSHOT)} LIMIT 0")
    # the columns of the query's last CTE (`reasoned`) are what the table may name
    sql = verdicts.verdicts_sql(conn, FIXTURE_SNAPSHOT)
    inner = sql[: sql.rindex("\nSELECT")] + "\nSELECT * FROM reasoned LIMIT 0"
    available = {d[0] for d in conn.execute(inner).description}
    assert query_columns() <= available


def test_removal_needs_conclusive_evidence_for_every_remove_code():
    for code, r in REASONS.items():
        if r.verdict == "remove":
            assert r.removes_when and r.removes_when != r.flag or code == "age_ineligible", code
        else:
            assert r.removes_when is None, code


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "reasons.yaml"
    p.write_text(text, encoding="utf-8")
    return p


GOOD = """
codes:
  x_code:
    verdict: review
    flag: f_x
    meaning: m
    legal_basis: b
    evidence:
      - when: f_x
        text: "x_code: {value}"
    id: {label: l, meaning: m, action: a}
"""


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("verdict: review", "verdict: stop"),
            "code x_code: verdict 'stop' is not remove or review",
        ),
        (("verdict: review", "verdict: remove"), "code x_code: removes_when missing"),
        (("flag: f_x", "flag: f x"), "code x_code: flag 'f x' is not a column name"),
        (('text: "x_code: {value}"', 'text: "other: {value}"'), "text must start with the code"),
        (('text: "x_code: {value}"', 'text: "x_code: {value:euro}"'), "unknown format 'euro'"),
        (('text: "x_code: {value}"', 'text: "x_code: [{value}"'), "unbalanced"),
        (("id: {label: l, meaning: m, action: a}", "id: {meaning: m, action: a}"), "id.label"),
        (("    legal_basis: b\n", ""), "code x_code: legal_basis missing"),
    ],
)
def test_a_bad_table_is_an_error_naming_code_and_field(tmp_path, edit, message):
    assert load_reasons(_write(tmp_path, GOOD))["x_code"].verdict_id == "tinjau"
    with pytest.raises(ReasonTableError, match=re.escape(message)):
        load_reasons(_write(tmp_path, GOOD.replace(*edit)))


# (template, value, when, expected text)
TEMPLATES = [
    ("c: {v}", "a", None, "c: a"),
    ("c: {v}", None, None, None),  # an unknown value makes the text unknown
    ("c: {v|none}", None, None, "c: none"),
    ("c:[ at {v}]", None, None, "c:"),  # an optional part is left out
    ("c:[ at {v}]", "x", None, "c: at x"),
    ("c: {d:date}", None, date(2026, 3, 1), "c: 2026-03-01"),
    ("c: {d:date|never}", None, None, "c: never"),
    ("c: it's {v}", "x", None, "c: it's x"),
]


@pytest.mark.parametrize(("template", "v", "d", "expected"), TEMPLATES)
def test_evidence_templates(template, v, d, expected):
    conn = duckdb.connect()
    got = conn.execute(
        f"SELECT {template_sql(template)} FROM (SELECT ?::VARCHAR AS v, ?::DATE AS d, "
        "1234567::BIGINT AS n, 0.4::DOUBLE AS p)",
        [v, d],
    ).fetchall()[0][0]
    assert got == expected


def test_rupiah_and_probability_formats():
    conn = duckdb.connect()
    sql = template_sql("c: Rp{n:rupiah} with {p:3f}")
    got = conn.execute(f"SELECT {sql} FROM (SELECT 1234567::BIGINT AS n, 0.4::DOUBLE AS p)")
    assert got.fetchall()[0][0] == "c: Rp1,234,567 with 0.400"


# (birth, snapshot, completed years)
AGES = [
    ("2000-01-01", "2026-11-01", 26),
    ("1966-11-01", "2026-11-01", 60),  # birthday on the snapshot
    ("1966-11-02", "2026-11-01", 59),
    ("2004-02-29", "2025-02-28", 20),  # 29 February counts from 1 March in common years
    ("2004-02-29", "2025-03-01", 21),
]


@pytest.mark.parametrize(("birth", "snap", "age"), AGES)
def test_age_sql(birth, snap, age):
    sql = verdicts.age_sql(f"DATE '{birth}'", f"DATE '{snap}'")
    assert duckdb.connect().execute(f"SELECT {sql}").fetchall()[0][0] == age


@pytest.mark.parametrize(
    ("nik", "masked"),
    [
        ("3171014501900001", "3171********0001"),
        (" 3171014501900001 ", "3171********0001"),
        ("12345", "*****"),
        ("", None),
        (None, None),
    ],
)
def test_mask_nik_sql(nik, masked):
    sql = verdicts.mask_nik_sql("x")
    got = duckdb.connect().execute(f"SELECT {sql} FROM (SELECT ?::VARCHAR AS x)", [nik])
    assert got.fetchall()[0][0] == masked


# (event date, enrolled, verified by a program on, expected words)
CONTRADICTIONS = [
    ("2026-03-01", "2019-01-01", None, None),
    (
        "2026-03-01",
        "2026-04-01",
        None,
        "contradicted: this row enrolled 2026-04-01, after that date",
    ),
    (
        "2026-03-01",
        "2019-01-01",
        "2026-05-01",
        "contradicted: verified by kjp/K1 on 2026-05-01, after that date",
    ),
    ("2026-03-01", "2019-01-01", "2026-03-01", None),  # the same day does not contradict
    (None, "2026-04-01", "2026-05-01", None),
]


@pytest.mark.parametrize(("event", "mulai", "verified", "words"), CONTRADICTIONS)
def test_contradiction_sql(event, mulai, verified, words):
    sql = verdicts.contradiction_sql("f.event")
    got = duckdb.connect().execute(
        f"SELECT {sql} FROM (SELECT ?::DATE AS event, ?::DATE AS tanggal_mulai, "
        "?::DATE AS verified_alive, 'kjp/K1' AS verified_alive_by) f",
        [event, mulai, verified],
    )
    assert got.fetchall()[0][0] == words


def _life_tables(conn, records: list[tuple], evidence: list[tuple]) -> None:
    """link.person_records rows (uid, kind, died, moved, dest, keluar, verified), all of person P1."""
    conn.execute("CREATE SCHEMA link")
    conn.execute(
        "CREATE TABLE link.person_records (source VARCHAR, record_id VARCHAR, kind VARCHAR, "
        "tanggal_meninggal DATE, tanggal_pindah DATE, kode_wilayah_tujuan VARCHAR, "
        "pindah_keluar_dki BOOLEAN, tanggal_pemutakhiran DATE)"
    )
    conn.execute(
        "CREATE TABLE main.person_source_link (source VARCHAR, record_id VARCHAR, "
        "person_id VARCHAR, link_method VARCHAR)"
    )
    conn.execute(
        "CREATE TABLE link.event_evidence (unique_id VARCHAR, conclusive BOOLEAN, evidence VARCHAR)"
    )
    for uid, *values in records:
        source, record_id = uid.split(":")
        conn.execute(
            "INSERT INTO link.person_records VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [source, record_id, *values],
        )
        conn.execute(
            "INSERT INTO main.person_source_link VALUES (?, ?, 'P1', 'exact_nik')",
            [source, record_id],
        )
    for row in evidence:
        conn.execute("INSERT INTO link.event_evidence VALUES (?, ?, ?)", row)


SNAP = "DATE '2026-11-01'"

# (case, records, evidence rows, expected (date, evidence record, conclusive) or None)
DEATHS = [
    (
        "one conclusive death",
        [("mati:K1", "death_registry", "2026-03-01", None, None, None, None)],
        [("mati:K1", True, "same NIK")],
        (date(2026, 3, 1), "mati/K1", True),
    ),
    (
        "a death after the snapshot is not yet one",
        [("mati:K1", "death_registry", "2026-12-01", None, None, None, None)],
        [("mati:K1", True, None)],
        None,
    ),
    (
        "the conclusive record wins over an earlier one that is not",
        [
            ("mati:K1", "death_registry", "2026-01-01", None, None, None, None),
            ("mati:K2", "death_registry", "2026-03-01", None, None, None, None),
        ],
        [("mati:K1", False, "weak"), ("mati:K2", True, "same NIK")],
        (date(2026, 3, 1), "mati/K2", True),
    ),
    (
        "a record without an evidence row is not conclusive",
        [("sipil:C1", "civil_registry", "2026-02-01", None, None, None, None)],
        [],
        (date(2026, 2, 1), "sipil/C1", False),
    ),
    (
        "a civil row without a death is none",
        [("sipil:C1", "civil_registry", None, None, None, None, None)],
        [],
        None,
    ),
]


@pytest.mark.parametrize(("case", "records", "evidence", "expected"), DEATHS)
def test_death_at_snapshot(case, records, evidence, expected):
    conn = duckdb.connect()
    _life_tables(conn, records, evidence)
    rows = conn.execute(
        "SELECT tanggal_meninggal, death_evidence, death_conclusive FROM ("
        f"{verdicts.death_at_snapshot_sql(SNAP)})"
    ).fetchall()
    assert rows == ([expected] if expected else []), case


# (case, moves (uid, date, destination, keluar flag), expected (date, leaves DKI) or None)
MOVES = [
    ("one move out", [("pindah:M1", "2026-02-01", "3273010001", None)], (date(2026, 2, 1), True)),
    (
        "the latest move at the snapshot wins: back in DKI",
        [
            ("pindah:M1", "2024-01-01", "3273010001", None),
            ("pindah:M2", "2025-01-01", "3171010001", None),
        ],
        (date(2025, 1, 1), False),
    ),
    (
        "a move back after the snapshot is not seen",
        [
            ("pindah:M1", "2025-03-01", "3273010001", None),
            ("pindah:M2", "2026-12-01", "3174050001", None),
        ],
        (date(2025, 3, 1), True),
    ),
    (
        "the delivered flag wins",
        [("pindah:M1", "2026-02-01", "31.73", True)],
        (date(2026, 2, 1), True),
    ),
]


@pytest.mark.parametrize(("case", "moves", "expected"), MOVES)
def test_move_at_snapshot(case, moves, expected):
    conn = duckdb.connect()
    records = [(uid, "migration_registry", None, d, dest, k, None) for uid, d, dest, k in moves]
    _life_tables(conn, records, [])
    rows = conn.execute(
        f"SELECT tanggal_pindah, keluar FROM ({verdicts.move_at_snapshot_sql(SNAP)})"
    ).fetchall()
    assert rows == [expected], case


def test_latest_program_verification_at_snapshot():
    conn = duckdb.connect()
    _life_tables(
        conn,
        [
            ("kjp:A", "program_roster", None, None, None, None, "2026-01-01"),
            ("kjp:B", "program_roster", None, None, None, None, "2026-06-01"),
            ("kjp:C", "program_roster", None, None, None, None, "2026-12-01"),  # after the snapshot
            ("dtks:W", "welfare_registry", None, None, None, None, "2026-10-01"),  # not a sighting
        ],
        [],
    )
    rows = conn.execute(
        f"SELECT verified_alive, verified_alive_by FROM ({verdicts.verified_at_snapshot_sql(SNAP)})"
    ).fetchall()
    assert rows == [(date(2026, 6, 1), "kjp/B")]


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("link.person_records", "tanggal_meninggal"),
        ("main.golden_person", "possible_death_evidence"),
        ("main.person_source_link", "link_method"),
        ("link.match_pairs", "match_probability_without_nik"),
        ("link.event_evidence", "conclusive"),
    ],
)
def test_an_input_table_off_its_schema_fails_before_anything_is_written(table, column):
    conn = _fixture()
    conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    with pytest.raises(SchemaError, match=rf"table {re.escape(table)} lacks column\(s\) {column}"):
        verdicts.build_beneficiary_review(conn, load_rules(), FIXTURE_SNAPSHOT)
    assert not verdicts.table_exists(conn, "main.beneficiary_review")


def test_a_missing_input_table_is_named():
    conn = _fixture()
    conn.execute("DROP TABLE link.event_evidence")
    with pytest.raises(SchemaError, match=r"table link.event_evidence does not exist"):
        verdicts.build_beneficiary_review(conn, load_rules(), FIXTURE_SNAPSHOT)


def test_the_generator_and_the_benchmarks_know_only_the_table_codes():
    from satudata_pipeline.synthetic import officer, truth

    assert set(truth.REASON_CODES) <= set(REASON_CODES)
    assert set(officer.REMOVE_FIRST) | set(officer.CONFIRMED_INELIGIBLE) <= set(REASON_CODES)
    assert set(officer.TRUE_STATE_REASON.values()) <= set(REASON_CODES)


# (part, table it reads, a column it needs, the DDL of the table)
DECISION_PARTS = [
    (
        verdicts.decisions_in_force_sql,
        "decisions.review_in_force",
        "contradicted",
        "program VARCHAR, roster_source VARCHAR, record_id VARCHAR, decision VARCHAR, "
        "decision_reason VARCHAR, decided_by VARCHAR, decided_at DATE, contradicted BOOLEAN",
    ),
    (
        verdicts.previous_publication_sql,
        "main.beneficiary_review",
        "decision_fingerprint",
        "program VARCHAR, source VARCHAR, record_id VARCHAR, evidence_fingerprint VARCHAR, "
        "decision VARCHAR, decided_at DATE, decided_by VARCHAR, decision_fingerprint VARCHAR",
    ),
    (
        verdicts.decision_history_sql,
        "history.review_rows",
        "evidence_fingerprint",
        "program VARCHAR, source VARCHAR, record_id VARCHAR, decision VARCHAR, decided_at DATE, "
        "decided_by VARCHAR, evidence_fingerprint VARCHAR, decision_fingerprint VARCHAR, "
        "determination_id BIGINT",
    ),
]


@pytest.mark.parametrize(("part", "table", "column", "ddl"), DECISION_PARTS)
def test_decision_parts_read_empty_before_their_table_exists_and_need_its_columns(
    part, table, column, ddl
):
    conn = duckdb.connect()
    empty = conn.execute(f"SELECT count(*) FROM {part(conn)}").fetchall()[0][0]
    assert empty == 0
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {table.split('.')[0]}")
    conn.execute(f"CREATE TABLE {table} ({ddl})")
    if table == "history.review_rows":
        conn.execute(
            "CREATE TABLE history.determinations (determination_id BIGINT, published_at TIMESTAMP)"
        )
    assert conn.execute(f"SELECT count(*) FROM {part(conn)}").fetchall()[0][0] == 0
    conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    with pytest.raises(SchemaError, match=rf"{re.escape(table)} lacks column\(s\) {column}"):
        part(conn)
