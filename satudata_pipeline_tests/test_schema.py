"""The one clean schema (contract/schema.py): the clean stage, the linkage input and the fixtures all
have it, and the school levels the clean stage keeps are the levels the program rules may price."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest
import yaml
from fixtures import linkage
from fixtures.programs_warehouse import build_fixture_warehouse
from test_clean_assets import materialize_front

from satudata_pipeline.clean.transform import clean_frame
from satudata_pipeline.config import PROGRAM_RULES
from satudata_pipeline.contract.program_rules import ProgramRules
from satudata_pipeline.contract.schema import (
    BOOL_FIELDS,
    CLEAN_SCHEMA,
    DATE_FIELDS,
    JENJANG,
    LINKED_COLUMNS,
    QUALITY_FLAGS,
)
from satudata_pipeline.contract.sources import SourceSpec
from satudata_pipeline.link.matching import build_person_records

SCHEMA = [*CLEAN_SCHEMA.items(), QUALITY_FLAGS]


def _described(conn, table: str) -> list[tuple[str, str]]:
    return [(name, kind) for name, kind, *_ in conn.execute(f"DESCRIBE {table}").fetchall()]


def test_fields_are_columns_of_the_schema():
    assert DATE_FIELDS == (
        "tanggal_lahir",
        "tanggal_pemutakhiran",
        "tanggal_meninggal",
        "tanggal_pindah",
        "tanggal_mulai",
    )
    assert all(CLEAN_SCHEMA[f] == "BOOLEAN" for f in BOOL_FIELDS)
    assert set(LINKED_COLUMNS) <= set(CLEAN_SCHEMA) | {QUALITY_FLAGS[0]}
    assert len(set(LINKED_COLUMNS)) == len(LINKED_COLUMNS)


def test_the_clean_table_is_created_from_the_schema(tiny_delivery, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    assert materialize_front(tiny_delivery, warehouse).success
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert _described(conn, "clean.penduduk") == SCHEMA


def test_jenjang_kept_by_cleaning_is_what_the_rules_may_price():
    roster = SourceSpec(
        name="kjp",
        kind="program_roster",
        program="KJP",
        path="kjp.csv",
        extracted_at=dt.date(2026, 10, 28),
        columns={"record_id": "ID", "nama": "NAMA", "jenjang": "JENJANG"},
    )
    raw = pd.DataFrame(
        {
            "ID": ["1", "2", "3", "4"],
            "NAMA": ["Siti", "Budi", "Dewi", "Rina"],
            "JENJANG": ["MTs", "SLB", "SLTA", "smk"],
            "_row_number": [1, 2, 3, 4],
            "_parse_error": [None] * 4,
        }
    )
    clean, quarantine = clean_frame(raw, roster, dt.date(2026, 11, 1))
    assert quarantine.empty
    assert clean.jenjang.tolist() == ["SMP", "SLB", None, "SMK"]
    assert clean["_flag_value_unmapped:jenjang"].tolist() == [False, False, True, False]
    rules = yaml.safe_load(PROGRAM_RULES.read_text(encoding="utf-8"))
    rules["programs"]["KJP"]["amount_by_jenjang"] = dict.fromkeys(JENJANG, 1)
    assert ProgramRules.model_validate(rules).program("KJP").amount_for("SLB") == 1


def test_fixtures_are_built_through_the_schema():
    frames, _ = linkage.generate(20, seed=1)
    conn = duckdb.connect()
    linkage.load_clean_tables(conn, frames)
    assert _described(conn, "clean.dukcapil") == SCHEMA
    build_person_records(conn, sorted(frames))
    production = _described(conn, "link.person_records")
    programs = duckdb.connect()
    build_fixture_warehouse(programs)
    assert _described(programs, "clean.dukcapil_penduduk") == SCHEMA
    # link.person_records of the programs fixture is the production table, no column added or left out
    assert _described(programs, "link.person_records") == production


def test_person_records_refuse_a_clean_table_of_another_shape():
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA clean")
    conn.execute("CREATE TABLE clean.a AS SELECT 'r1' AS record_id, 'SITI' AS nama")
    with pytest.raises(
        ValueError,
        match=r"clean\.a lacks column\(s\) of the clean schema: source, kind, program, nik,",
    ):
        build_person_records(conn, ["a"])
    assert conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'link'"
    ).fetchall() == [(0,)]
