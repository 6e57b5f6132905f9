"""Survivorship rules and person_source_link on hand-built records."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest
from fixtures.clean_tables import write_clean_table

from satudata_pipeline.golden import stable_ids, survivorship
from satudata_pipeline.link import matching

D = dt.date


def _clean(conn, name, kind, rows):
    write_clean_table(conn, name, [dict(row, kind=kind) for row in rows])


@pytest.fixture
def golden():
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA clean")
    base = dict(nik_valid=True, jenis_kelamin="P", tanggal_lahir=D(1980, 5, 1))
    _clean(
        conn,
        "dukcapil",
        "civil_registry",
        [
            dict(
                record_id="c1",
                nik="3171014105800001",
                nama="SITI AMINAH",
                alamat="JL LAMA 1",
                kode_kelurahan="31.71.01.1001",
                tanggal_pemutakhiran=D(2020, 1, 1),
                **base,
            ),
            dict(
                record_id="c2",
                nik="3171010101700002",
                nama="BUDI",
                alamat="JL B",
                kode_kelurahan="31.71.01.1001",
                tanggal_pemutakhiran=D(2024, 1, 1),
                nik_valid=True,
                jenis_kelamin="L",
                tanggal_lahir=D(1970, 1, 1),
            ),
        ],
    )
    _clean(
        conn,
        "dtks",
        "welfare_registry",
        [
            dict(
                record_id="w1",
                nik="3171014105800001",
                nama="SITI AMINA",
                alamat="JL BARU 2",
                kode_kelurahan="31.71.02.1002",
                tanggal_pemutakhiran=D(2025, 6, 1),
                desil=3,
                disabilitas=False,
                punya_mobil=False,
                njop_di_atas_1m=False,
                nik_valid=True,
                jenis_kelamin="P",
                tanggal_lahir=D(1980, 5, 2),
            ),
            dict(
                record_id="w2",
                nik="3171014105800009",
                nama="SITI AMINAH",
                alamat=None,
                kode_kelurahan=None,
                tanggal_pemutakhiran=D(2024, 6, 1),
                desil=1,
                disabilitas=True,
                punya_mobil=False,
                njop_di_atas_1m=False,
                **base,
            ),
        ],
    )
    _clean(
        conn,
        "kematian",
        "death_registry",
        [
            dict(
                record_id="d1",
                nik="3171010101700002",
                nama="BUDI",
                tanggal_meninggal=D(2025, 2, 2),
                tanggal_pemutakhiran=D(2025, 2, 3),
                nik_valid=True,
                jenis_kelamin="L",
                tanggal_lahir=D(1970, 1, 1),
            ),
        ],
    )
    _clean(
        conn,
        "pindah",
        "migration_registry",
        [
            dict(
                record_id="m1",
                nik="3171014105800001",
                nama="SITI AMINAH",
                tanggal_pindah=D(2024, 1, 1),
                kode_wilayah_tujuan="3273010001",
                pindah_keluar_dki=True,
                **base,
            ),
            dict(
                record_id="m2",
                nik="3171014105800001",
                nama="SITI AMINAH",
                tanggal_pindah=D(2025, 1, 1),
                kode_wilayah_tujuan="3174050001",
                pindah_keluar_dki=False,
                **base,
            ),
        ],
    )
    _clean(
        conn,
        "kjp",
        "program_roster",
        [
            dict(
                record_id="k1",
                nik=None,
                nama="ANAK",
                tanggal_pemutakhiran=D(2023, 1, 1),
                nik_valid=False,
                jenis_kelamin="L",
                tanggal_lahir=D(2012, 3, 3),
            ),
        ],
    )
    conn.execute("""CREATE TABLE clean.quarantine AS SELECT * FROM (VALUES
        ('kjp', 'k9', 5, 'blank_name', '{}')) t(source, record_id, row_number, reason, raw_values)""")
    matching.build_person_records(conn, ["dukcapil", "dtks", "kematian", "pindah", "kjp"])
    conn.execute("""CREATE TABLE link.person_clusters AS SELECT unique_id,
        CASE WHEN unique_id IN ('dukcapil:c2', 'kematian:d1') THEN 'dukcapil:c2'
             WHEN unique_id = 'kjp:k1' THEN 'kjp:k1' ELSE 'dtks:w1' END AS cluster_id
        FROM link.person_records""")
    conn.execute("""CREATE TABLE link.match_pairs AS SELECT * FROM (VALUES
        ('dukcapil:c2', 'kematian:d1', 1.0, NULL, 'exact_nik'),
        ('dtks:w1', 'dukcapil:c1', 0.999, 12.0, 'probabilistic'),
        ('dtks:w2', 'dukcapil:c1', 0.97, 6.0, 'probabilistic'),
        ('dukcapil:c1', 'pindah:m1', 1.0, NULL, 'exact_nik'),
        ('dukcapil:c1', 'pindah:m2', 1.0, NULL, 'exact_nik'))
        t(unique_id_l, unique_id_r, match_probability, match_weight, link_method)""")
    stable_ids.assign_person_ids(conn, "r1")
    survivorship.build_golden_person(conn)
    survivorship.build_person_source_link(conn)
    yield conn
    conn.close()


def _person(conn, uid):
    df = conn.execute(
        """SELECT g.* FROM main.golden_person g JOIN golden.person_ids i USING (person_id)
                         JOIN link.person_clusters c USING (cluster_id) WHERE c.unique_id = ?""",
        [uid],
    ).df()
    assert len(df) == 1
    return df.iloc[0]


def test_identity_from_civil_registry_even_if_older(golden):
    siti = _person(golden, "dukcapil:c1")
    assert siti["nama"] == "SITI AMINAH"
    assert siti["tanggal_lahir"] == pd.Timestamp(1980, 5, 1)
    assert siti["nik"] == "3171014105800001"
    assert set(siti["conflict_flags"]) == {"multiple_valid_nik", "multiple_birth_dates"}
    assert siti["n_records"] == 5 and siti["in_civil_registry"] and siti["in_welfare_registry"]


def test_address_from_latest_verified_record(golden):
    siti = _person(golden, "dukcapil:c1")
    assert siti["alamat"] == "JL BARU 2" and siti["kode_kelurahan"] == "31.71.02.1002"


def test_latest_welfare_record_and_any_disability(golden):
    siti = _person(golden, "dukcapil:c1")
    assert siti["desil"] == 3 and siti["welfare_evidence"] == "dtks/w1"
    assert not siti["disabilitas"] and siti["disabilitas_any"]
    assert siti["last_verified"] == pd.Timestamp(2025, 6, 1)


def test_latest_move_wins(golden):
    siti = _person(golden, "dukcapil:c1")
    assert siti["tinggal_di_dki"]  # moved out in 2024, back into DKI in 2025
    assert siti["move_evidence"] == "pindah/m2"


def test_death_registry(golden):
    budi = _person(golden, "dukcapil:c2")
    assert not budi["is_alive"] and budi["death_evidence"] == "kematian/d1"
    assert budi["tanggal_meninggal"] == pd.Timestamp(2025, 2, 2)
    assert _person(golden, "dukcapil:c1")["is_alive"]


def test_person_source_link_rows_and_methods(golden):
    rows = {
        r[0]: r[1:]
        for r in golden.execute(
            "SELECT unique_id, person_id, link_method, match_probability FROM main.person_source_link"
        ).fetchall()
    }
    assert len(rows) == 9  # 8 clean rows + 1 quarantined
    assert rows["kjp:k9"] == (None, "quarantined", None)
    assert rows["kjp:k1"][1:] == ("singleton", None)
    assert rows["dtks:w2"][1:] == ("probabilistic", 0.97)
    assert rows["dtks:w1"][1:] == ("probabilistic", 0.999)
    assert rows["dukcapil:c1"][1] == "exact_nik"
    assert rows["kematian:d1"][1:] == ("exact_nik", 1.0)
    assert golden.execute("SELECT count(*) FROM main.golden_person").fetchall()[0][0] == 3


def test_possible_death_evidence_only_for_the_living(golden):
    # a death record that could be SITI AMINAH (alive) or BUDI (already dead) or a namesake
    golden.execute("""CREATE TABLE link.possible_deaths AS SELECT * FROM (VALUES
        ('kematian2:x1', 'dukcapil:c1', 2), ('kematian2:x1', 'dukcapil:c2', 2))
        t(unique_id, resident_unique_id, candidates)""")
    survivorship.build_golden_person(golden)
    assert (
        _person(golden, "dukcapil:c1")["possible_death_evidence"]
        == "kematian2/x1 (one of 2 residents it can be)"
    )
    assert pd.isna(_person(golden, "dukcapil:c2")["possible_death_evidence"])


@pytest.mark.parametrize(
    ("basis", "method"),
    [
        ("link", "sole_candidate"),
        ("name_at_home", "sole_candidate"),
        ("dominant_link", "dominant_link"),
        ("only_link", "only_link"),
    ],
)
def test_sole_candidate_rows_say_so(golden, basis, method):
    golden.execute(f"""CREATE TABLE link.assignments AS SELECT * FROM (VALUES
        ('dtks:w2', 'dukcapil:c1', '{basis}', 0.7, 'dtks:w1'))
        t(unique_id, resident_unique_id, basis, match_probability, cluster_id)""")
    survivorship.build_person_source_link(golden)
    got = golden.execute(
        "SELECT link_method, match_probability FROM main.person_source_link "
        "WHERE unique_id = 'dtks:w2'"
    ).fetchall()
    assert got == [(method, 0.7)]
