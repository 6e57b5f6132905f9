"""Linkage on a small generated set of clean tables: person records, deterministic pass, Splink,
clusters and the pairwise evaluation."""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import pandas as pd
import pytest
from fixtures import linkage
from fixtures.clean_tables import write_clean_table

from satudata_pipeline.link import clusters, evaluation, matching, model
from satudata_pipeline.link import splink_settings as ss


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    mp = pytest.MonkeyPatch()
    mp.setenv("SATUDATA_STATE_DIR", str(state))
    frames, truth = linkage.generate(400, seed=11)
    conn = duckdb.connect(str(tmp_path_factory.mktemp("wh") / "w.duckdb"))
    linkage.load_clean_tables(conn, frames)
    n = matching.build_person_records(conn, list(frames))
    summary = model.train_model(conn)
    with matching.splink_session(conn) as db_api:
        _linker, pred = matching.predict(db_api, summary.settings, 0.5)
        result = matching.write_match_pairs(conn, pred.physical_name, 0.5)
    clusters.build_person_clusters(conn, 0.95, 30)
    conn.register("truth_df", truth)
    conn.execute(
        "CREATE TABLE truth AS SELECT source || ':' || record_id AS unique_id, person_key "
        "FROM truth_df"
    )
    yield conn, frames, truth, n, summary, result
    conn.close()
    mp.undo()


def test_person_records_union_every_clean_row(linked):
    conn, frames, _truth, n, *_ = linked
    assert n == sum(len(df) for df in frames.values())
    uid, dup = conn.execute(
        "SELECT count(DISTINCT unique_id), count(*) - count(DISTINCT unique_id) "
        "FROM link.person_records"
    ).fetchall()[0]
    assert uid == n and dup == 0


def test_derived_columns():
    conn = duckdb.connect()
    write_clean_table(
        conn,
        "a",
        [
            dict(
                record_id="r1",
                nama="SITI  aminah NUR",
                nik="3171014501900001",
                nik_valid=True,
                tanggal_lahir=dt.date(1990, 1, 5),
            )
        ],
    )
    matching.build_person_records(conn, ["a"])
    got = conn.execute("""SELECT unique_id, source, nama, nama_depan, nama_belakang, nama_sorted,
                                 tahun_lahir, nik_dob, nik_valid, kind
                          FROM link.person_records""").fetchall()
    assert got == [
        (
            "a:r1",
            "a",
            "SITI AMINAH NUR",
            "SITI",
            "NUR",
            "AMINAH NUR SITI",
            1990,
            "450190",
            True,
            None,
        )
    ]


def test_deterministic_pass_only_conclusive_pairs(linked):
    conn, *_ = linked
    bad = conn.execute("""
        SELECT count(*) FROM link.match_pairs p
        JOIN link.person_records l ON l.unique_id = p.unique_id_l
        JOIN link.person_records r ON r.unique_id = p.unique_id_r
        WHERE p.link_method = 'exact_nik'
          AND NOT (l.nik_valid AND r.nik_valid AND l.nik = r.nik
                   AND l.tanggal_lahir = r.tanggal_lahir)
    """).fetchall()[0][0]
    assert bad == 0
    n_det, wrong = conn.execute("""
        SELECT count(*), count(*) FILTER (WHERE tl.person_key <> tr.person_key)
        FROM link.match_pairs p
        JOIN truth tl ON tl.unique_id = p.unique_id_l JOIN truth tr ON tr.unique_id = p.unique_id_r
        WHERE p.link_method = 'exact_nik'
    """).fetchall()[0]
    assert n_det > 100 and wrong == 0


def test_family_members_sharing_a_nik_are_not_linked(linked):
    conn, *_ = linked
    shared, merged = conn.execute("""
        SELECT count(*), count(*) FILTER (WHERE cl.cluster_id = cr.cluster_id)
        FROM link.person_records l
        JOIN link.person_records r ON l.nik = r.nik AND l.unique_id < r.unique_id
        JOIN truth tl ON tl.unique_id = l.unique_id JOIN truth tr ON tr.unique_id = r.unique_id
        JOIN link.person_clusters cl ON cl.unique_id = l.unique_id
        JOIN link.person_clusters cr ON cr.unique_id = r.unique_id
        WHERE tl.person_key <> tr.person_key
    """).fetchall()[0]
    assert shared > 5, "the generator should borrow some NIKs inside families"
    assert merged == 0


def test_splink_links_obvious_variants(linked):
    conn, _f, truth, *_ = linked
    # name typo / reordered words / missing NIK of the same person end up together
    missed, total = conn.execute("""
        SELECT count(*) FILTER (WHERE cl.cluster_id <> cr.cluster_id), count(*)
        FROM link.person_records l
        JOIN link.person_records r ON l.unique_id < r.unique_id
             AND l.tanggal_lahir = r.tanggal_lahir AND l.nama_sorted = r.nama_sorted
        JOIN truth tl ON tl.unique_id = l.unique_id JOIN truth tr ON tr.unique_id = r.unique_id
        JOIN link.person_clusters cl ON cl.unique_id = l.unique_id
        JOIN link.person_clusters cr ON cr.unique_id = r.unique_id
        WHERE tl.person_key = tr.person_key
    """).fetchall()[0]
    assert total > 100 and missed <= 0.01 * total
    scores = evaluation.pairwise_scores(conn, truth)
    assert scores["precision"] >= 0.98
    assert scores["recall"] >= 0.95
    assert scores["f1_no_valid_nik"] >= 0.93


def test_clusters_cover_every_record_once(linked):
    conn, *_ = linked
    n, distinct, bad_id = conn.execute("""
        SELECT count(*), count(DISTINCT unique_id),
               count(*) FILTER (WHERE cluster_id <> min_uid)
        FROM (SELECT *, min(unique_id) OVER (PARTITION BY cluster_id) AS min_uid
              FROM link.person_clusters)
    """).fetchall()[0]
    assert (
        n == distinct == conn.execute("SELECT count(*) FROM link.person_records").fetchall()[0][0]
    )
    assert bad_id == 0


def test_model_parameters_and_save_load(linked, tmp_path):
    _conn, _f, _t, _n, summary, _r = linked
    path = model.save_model(summary, run_id="r", model_dir=tmp_path)
    assert model.latest_model_path(tmp_path) == path
    settings, meta = model.load_model(path)
    assert meta["fingerprint"] and meta["training_pairs"]
    params = {(r["comparison"], r["level"]): r for r in model.parameters_table(settings)}
    exact_nik = params[("nik", "Exact NIK")]
    assert exact_nik["match_weight"] > 5
    borrowed = [r for k, r in params.items() if k[0] == "nik" and "borrowed" in k[1]]
    assert borrowed and borrowed[0]["match_weight"] == 0


# columns the cluster step reads from link.person_records (the tests below build minimal tables)
_RECORD_COLUMNS = {
    "kind": "VARCHAR",
    "nik": "VARCHAR",
    "nik_valid": "BOOLEAN",
    "nama": "VARCHAR",
    "nama_sorted": "VARCHAR",
    "tanggal_lahir": "DATE",
    "jenis_kelamin": "VARCHAR",
    "kode_kelurahan": "VARCHAR",
    "kelurahan": "VARCHAR",
    "kode_kecamatan": "VARCHAR",
    "kode_wilayah_tujuan": "VARCHAR",
    "alamat": "VARCHAR",
    "alamat_nomor": "VARCHAR",
}


def _pad_person_records(conn):
    have = {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'link' AND table_name = 'person_records'"
        ).fetchall()
    }
    for col, typ in _RECORD_COLUMNS.items():
        if col not in have:
            conn.execute(f"ALTER TABLE link.person_records ADD COLUMN {col} {typ}")
    if "source" not in have:  # unique_id is source:record_id
        conn.execute("ALTER TABLE link.person_records ADD COLUMN source VARCHAR")
        conn.execute("UPDATE link.person_records SET source = split_part(unique_id, ':', 1)")


def test_giant_cluster_is_split():
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA link")
    ids = [f"s:{i:03d}" for i in range(40)]
    conn.execute(
        "CREATE TABLE link.person_records AS SELECT unnest(?) AS unique_id, "
        "'welfare_registry' AS kind, NULL::VARCHAR AS nik, false AS nik_valid",
        [ids],
    )
    # a chain of weak links glues 40 records; strong links only inside pairs
    rows = [
        (ids[i], ids[i + 1], 0.999999 if i % 2 == 0 else 0.96, "probabilistic") for i in range(39)
    ]
    conn.execute(
        "CREATE TABLE link.match_pairs (unique_id_l VARCHAR, unique_id_r VARCHAR, "
        "match_probability DOUBLE, match_weight DOUBLE, link_method VARCHAR)"
    )
    conn.executemany("INSERT INTO link.match_pairs VALUES (?, ?, ?, NULL, ?)", rows)
    _pad_person_records(conn)
    res = clusters.build_person_clusters(conn, 0.95, max_cluster_size=10)
    assert res.max_size == 2 and res.n_clusters == 20 and res.reclustered == 1
    res = clusters.build_person_clusters(conn, 0.95, max_cluster_size=50)
    assert res.max_size == 40 and res.n_clusters == 1


def test_pairwise_scores_combinatorics():
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA link")
    conn.execute("""CREATE TABLE link.person_clusters AS SELECT * FROM (VALUES
        ('s:1','c1'),('s:2','c1'),('s:3','c1'),('s:4','c4'),('s:5','c4'),('s:6','c6'))
        t(unique_id, cluster_id)""")
    conn.execute("""CREATE TABLE link.person_records AS SELECT * FROM (VALUES
        ('s:1',true),('s:2',true),('s:3',false),('s:4',true),('s:5',false),('s:6',true))
        t(unique_id, nik_valid)""")
    truth = pd.DataFrame(
        {
            "source": ["s"] * 6,
            "record_id": ["1", "2", "3", "4", "5", "6"],
            "person_key": ["A", "A", "B", "C", "C", "C"],
        }
    )
    s = evaluation.pairwise_scores(conn, truth)
    # predicted pairs: c1 3 + c4 1 = 4; true pairs: A 1 + C 3 = 4; TP: (c1,A) 1 + (c4,C) 1 = 2
    assert (s["predicted_pairs"], s["true_pairs"], s["true_positive_pairs"]) == (4, 4, 2)
    assert s["precision"] == pytest.approx(0.5) and s["recall"] == pytest.approx(0.5)
    # pairs touching a record without a valid NIK: predicted c1: 3-1=2, c4: 1-0=1 -> 3;
    # true: A 0, C 3-1=2 -> 2; TP: (c1,A) 0, (c4,C) 1 -> 1
    assert s["precision_no_valid_nik"] == pytest.approx(1 / 3)
    assert s["recall_no_valid_nik"] == pytest.approx(1 / 2)


def test_two_civil_registry_persons_are_not_glued_by_a_weak_link():
    """Father and son of the same name: two population-register rows with different valid NIKs,
    joined only through a middle-strength link, are split; the strong link of the son stays."""
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA link")
    conn.execute("""CREATE TABLE link.person_records AS SELECT * FROM (VALUES
        ('dukcapil:1', 'civil_registry', '3171010101700001', true),
        ('dukcapil:2', 'civil_registry', '3171010101990002', true),
        ('dtks:9', 'welfare_registry', NULL, false)) t(unique_id, kind, nik, nik_valid)""")
    conn.execute("""CREATE TABLE link.match_pairs AS SELECT * FROM (VALUES
        ('dtks:9', 'dukcapil:1', 0.96, 'probabilistic'),
        ('dtks:9', 'dukcapil:2', 0.9995, 'probabilistic')) t(unique_id_l, unique_id_r, match_probability, link_method)""")
    _pad_person_records(conn)
    result = clusters.build_person_clusters(conn, cluster_threshold=0.95, max_cluster_size=30)
    got = dict(conn.execute("SELECT unique_id, cluster_id FROM link.person_clusters").fetchall())
    assert got["dtks:9"] == got["dukcapil:2"] != got["dukcapil:1"]
    assert result.reclustered >= 1


def _event_case(
    residents: list[tuple],
    event: tuple,
    links: list[tuple] = (),
    address: dict[str, str] | None = None,
    others: list[tuple] = (),
):
    """link.person_records of civil-registry residents and one record left alone (a death record
    unless the tuple says otherwise), with the columns the sole-candidate step reads; `address`:
    street lines by unique_id; `others`: more records shaped like `event`. Returns the connection
    after clustering."""
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA link")
    conn.execute("""CREATE TABLE link.person_records (unique_id VARCHAR, kind VARCHAR, nama VARCHAR,
        tanggal_lahir DATE, jenis_kelamin VARCHAR, nik VARCHAR, nik_valid BOOLEAN,
        kode_kelurahan VARCHAR, kode_kecamatan VARCHAR, kode_wilayah_tujuan VARCHAR, alamat VARCHAR)""")
    address = address or {}
    for uid, nama, dob, sex, nik, kel in residents:
        conn.execute(
            "INSERT INTO link.person_records VALUES (?, 'civil_registry', ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
            [uid, nama, dob, sex, nik, nik is not None, kel, kel[:8], address.get(uid)],
        )
    for uid, kind, nama, dob, sex, nik, kel, *dest in [event, *others]:
        conn.execute(
            "INSERT INTO link.person_records VALUES (?, ?, ?, ?, ?, ?, false, ?, ?, ?, ?)",
            [
                uid,
                kind,
                nama,
                dob,
                sex,
                nik,
                kel,
                kel[:8] if kel else None,
                dest[0] if dest else None,
                address.get(uid),
            ],
        )
    conn.execute(f"""CREATE TABLE link.person_records_x AS SELECT *,
        split_part(unique_id, ':', 1) AS source,
        array_to_string(list_sort(list_distinct(string_split(nama, ' '))), ' ') AS nama_sorted,
        {matching.ALAMAT_NOMOR_SQL} AS alamat_nomor, NULL::VARCHAR AS kelurahan
        FROM link.person_records""")
    conn.execute("DROP TABLE link.person_records")
    conn.execute("ALTER TABLE link.person_records_x RENAME TO person_records")
    conn.execute(
        "CREATE TABLE link.match_pairs (unique_id_l VARCHAR, unique_id_r VARCHAR, "
        "match_probability DOUBLE, match_weight DOUBLE, link_method VARCHAR)"
    )
    for a, b, p in links:
        conn.execute(
            "INSERT INTO link.match_pairs VALUES (?, ?, ?, NULL, 'probabilistic')", [a, b, p]
        )
    result = clusters.build_person_clusters(conn, 0.95, 30)
    return conn, result


def _same_cluster(conn, a, b) -> bool:
    got = dict(conn.execute("SELECT unique_id, cluster_id FROM link.person_clusters").fetchall())
    return got[a] == got[b]


KEL, OTHER_KEL = "31.75.07.1002", "31.75.07.1003"


def test_death_record_without_nik_joins_the_only_resident_of_that_name():
    residents = [
        ("pop:1", "NUR SAIPUL", "2021-12-10", "L", "3175071012210003", KEL),
        ("pop:2", "NUR SAIPUL", "1980-01-01", "L", "3175070101800004", OTHER_KEL),
        ("pop:3", "SITI AMINAH", "1990-05-05", "P", "3175074505900001", KEL),
    ]
    conn, result = _event_case(
        residents, ("mati:1", "death_registry", "NUR SAIPUL", None, "L", None, KEL)
    )
    assert result.assigned == 1 and _same_cluster(conn, "mati:1", "pop:1")
    assert conn.execute(
        "SELECT unique_id, resident_unique_id FROM link.assignments"
    ).fetchall() == [("mati:1", "pop:1")]
    # one typo in a single name still points at one resident
    conn, result = _event_case(
        residents, ("mati:1", "death_registry", "SITI AMINA", None, None, None, KEL)
    )
    assert result.assigned == 1 and _same_cluster(conn, "mati:1", "pop:3")


def test_move_back_into_dki_is_looked_for_at_its_destination():
    residents = [
        ("pop:1", "DEWI", "2018-03-05", "P", "3175014503180015", "31.75.01.1004"),
        ("pop:2", "DEWI", "2018-03-05", "P", "3175014503180016", "31.75.01.1005"),
    ]
    event = ("pindah:1", "migration_registry", "DEWI", "2018-03-05", "P", None, None, "3175011004")
    conn, result = _event_case(residents, event)
    assert result.assigned == 1 and _same_cluster(conn, "pindah:1", "pop:1")
    # a destination outside DKI says nothing about where to look
    conn, result = _event_case(residents, event[:-1] + ("3273070001",))
    assert result.assigned == 0


@pytest.mark.parametrize(
    "residents, event",
    [
        # two residents of that name in the kelurahan: ambiguous
        (
            [
                ("pop:1", "NUR SAIPUL", "2021-12-10", "L", "3175071012210003", KEL),
                ("pop:2", "NUR SAIPUL", "1980-01-01", "L", "3175070101800004", KEL),
            ],
            ("mati:1", "death_registry", "NUR SAIPUL", None, "L", None, KEL),
        ),
        # a name only contained in the resident's longer name is not enough
        (
            [("pop:1", "MARYAM PUTRI", "1979-11-08", "P", "1375064811790026", KEL)],
            ("mati:1", "death_registry", "MARYAM", None, "P", None, KEL),
        ),
        # birth dates two digits apart say another person
        (
            [("pop:1", "AGUS", "1975-05-27", "L", "3216122705750005", KEL)],
            ("mati:1", "death_registry", "AGUS", "1972-06-27", "L", None, KEL),
        ),
        # a NIK two digits away (even one failing validation) says another person
        (
            [("pop:1", "AISYAH", "2013-12-21", "P", "3171016112130025", KEL)],
            ("mati:1", "death_registry", "AISYAH", "2013-12-21", "P", "3171016111130024", KEL),
        ),
        # other sex
        (
            [("pop:1", "NUR SAIPUL", "2021-12-10", "L", "3175071012210003", KEL)],
            ("mati:1", "death_registry", "NUR SAIPUL", None, "P", None, KEL),
        ),
        # the only namesake lives in another kelurahan
        (
            [("pop:1", "NUR SAIPUL", "2021-12-10", "L", "3175071012210003", OTHER_KEL)],
            ("mati:1", "death_registry", "NUR SAIPUL", None, "L", None, KEL),
        ),
    ],
)
def test_death_record_is_not_assigned_on_weak_or_ambiguous_evidence(residents, event):
    conn, result = _event_case(residents, event)
    assert result.assigned == 0
    assert all(not _same_cluster(conn, "mati:1", r[0]) for r in residents)


def test_death_record_of_two_namesakes_is_a_possible_death_of_each():
    residents = [
        ("pop:1", "SUKIRMAN SAPUTRA", "2026-02-11", "L", "3175051102260031", KEL),
        ("pop:2", "SUKIRMAN SAPUTRA", "2018-12-30", "L", "3471053012180006", KEL),
        ("pop:3", "SUKIRMAN", "2013-05-08", "L", "3175050805130016", KEL),
    ]
    conn, result = _event_case(
        residents, ("mati:1", "death_registry", "SUKIRMAN SAPUTRA", None, "L", None, KEL)
    )
    assert result.assigned == 0 and result.possible_deaths == 1
    assert conn.execute(
        "SELECT unique_id, resident_unique_id, candidates FROM link.possible_deaths ORDER BY 2"
    ).fetchall() == [("mati:1", "pop:1", 2), ("mati:1", "pop:2", 2)]
    # a name that fits many residents says nothing about any one of them
    many = [(f"pop:{i}", "BUDI", f"19{50 + i}-01-01", "L", None, KEL) for i in range(1, 5)]
    conn, result = _event_case(many, ("mati:1", "death_registry", "BUDI", None, "L", None, KEL))
    assert result.assigned == 0
    assert conn.execute("SELECT count(*) FROM link.possible_deaths").fetchall()[0][0] == 0


def test_event_record_already_linked_or_resident_already_dead_is_left_alone():
    residents = [("pop:1", "UJU", "1963-10-18", "L", "3175091810630018", KEL)]
    # already linked to a resident by the model: nothing to assign
    conn, result = _event_case(
        residents,
        ("mati:1", "death_registry", "UJU", None, "L", None, KEL),
        links=[("mati:1", "pop:1", 0.99)],
    )
    assert result.assigned == 0 and _same_cluster(conn, "mati:1", "pop:1")
    # the only resident already has a death record: a second, unlinked one is not his
    conn, result = _event_case(residents, ("mati:2", "death_registry", "UJU", None, "L", None, KEL))
    conn.execute(
        "INSERT INTO link.person_records (unique_id, kind, nama, nama_sorted, jenis_kelamin, "
        "kode_kelurahan, kode_kecamatan, nik_valid) VALUES "
        "('mati:1', 'death_registry', 'UJU', 'UJU', 'L', ?, ?, false)",
        [KEL, KEL[:8]],
    )
    conn.execute(
        "INSERT INTO link.match_pairs VALUES ('mati:1', 'pop:1', 0.99, NULL, 'probabilistic')"
    )
    result = clusters.build_person_clusters(conn, 0.95, 30)
    assert result.assigned == 0 and not _same_cluster(conn, "mati:2", "pop:1")


@pytest.mark.parametrize("dob", ["1975-05-28", "1976-05-27"])
def test_death_record_with_a_birth_date_typo_joins_the_only_resident_of_that_name(dob):
    # one digit off (day, year) in the deceased's own kelurahan; the other namesake is far off
    residents = [
        ("pop:1", "AGUS", "1975-05-27", "L", "3216122705750005", KEL),
        ("pop:2", "AGUS", "1990-12-01", "L", "3216120112900001", KEL),
    ]
    conn, result = _event_case(residents, ("mati:1", "death_registry", "AGUS", dob, "L", None, KEL))
    assert result.assigned == 1 and _same_cluster(conn, "mati:1", "pop:1")


def test_death_record_with_swapped_day_and_month_joins_its_resident():
    residents = [
        ("pop:1", "ROSMAWATI TAMBUNAN", "2021-08-12", "P", "3173015208210022", KEL),
        ("pop:2", "ROSMAWATI TAMBUNAN", "2025-01-02", "P", "3173014201250003", KEL),
    ]
    conn, result = _event_case(
        residents, ("mati:1", "death_registry", "ROSMAWATI TAMBUNAN", "2021-12-08", "P", None, KEL)
    )
    assert result.assigned == 1 and _same_cluster(conn, "mati:1", "pop:1")


def test_move_record_needs_an_equal_birth_date():
    # a move record's kelurahan is where the person lived before: a namesake born close by may
    # still live there
    residents = [("pop:1", "AGUS", "1975-05-27", "L", "3216122705750005", KEL)]
    conn, result = _event_case(
        residents, ("pindah:1", "migration_registry", "AGUS", "1975-05-28", "L", None, KEL)
    )
    assert result.assigned == 0 and not _same_cluster(conn, "pindah:1", "pop:1")


HOME = {"pop:1": "JL BERINGIN NO 134", "pop:2": "JL BERINGIN NO 52"}
ROSTER_ROW = ("kjp:1", "program_roster", "MUHAMMAD FIRMANSYAH", None, "L", None, KEL)
NAMESAKES = [
    ("pop:1", "MUHAMMAD FIRMANSYAH", "2014-05-28", "L", "3174012805140015", KEL),
    ("pop:2", "MUHAMMAD FIRMANSYAH", "1990-01-11", "L", "3174011101900003", KEL),
]


def test_roster_row_with_one_link_to_a_resident_of_the_same_home_joins_them():
    conn, result = _event_case(
        NAMESAKES,
        ROSTER_ROW,
        links=[("kjp:1", "pop:1", 0.71)],
        address={**HOME, "kjp:1": "JL BERINGIN NO 134"},
    )
    assert result.assigned == 1 and _same_cluster(conn, "kjp:1", "pop:1")
    assert conn.execute(
        "SELECT unique_id, resident_unique_id, basis, match_probability FROM link.assignments"
    ).fetchall() == [("kjp:1", "pop:1", "link", 0.71)]


OWN_ROW = ("kjp:2", "program_roster", "MUHAMMAD FIRMANSYAH", "1990-01-11", "L", None, KEL)


@pytest.mark.parametrize(
    "links, roster_address, others",
    [
        # the only link goes to another house on the same street, whose resident has a KJP row
        # of their own (a ghost using a real name)
        (
            [("kjp:1", "pop:2", 0.71), ("kjp:2", "pop:2", 0.99)],
            "JL BERINGIN NO 134",
            [OWN_ROW],
        ),
        # ... or whose resident is linked to another KJP row too: neither is its only one
        (
            [("kjp:1", "pop:2", 0.71), ("kjp:2", "pop:2", 0.6)],
            "JL BERINGIN NO 134",
            [OWN_ROW],
        ),
        # links to two residents of the home: ambiguous
        ([("kjp:1", "pop:1", 0.71), ("kjp:1", "pop:2", 0.6)], None, []),
    ],
)
def test_roster_row_is_not_joined_on_a_link_to_another_home_or_to_two_residents(
    links, roster_address, others
):
    address = (
        {
            "pop:1": "JL BERINGIN NO 134",
            "pop:2": "JL BERINGIN NO 134",
            "kjp:1": "JL BERINGIN NO 134",
        }
        if roster_address is None
        else {**HOME, "kjp:1": roster_address}
    )
    # with NIKs and without (where the only-link placement applies)
    for residents in (NAMESAKES, [(*r[:4], None, r[5]) for r in NAMESAKES]):
        conn, _ = _event_case(residents, ROSTER_ROW, links=links, address=address, others=others)
        placed = conn.execute("SELECT * FROM link.assignments WHERE unique_id = 'kjp:1'")
        assert placed.fetchall() == []
        assert all(not _same_cluster(conn, "kjp:1", r[0]) for r in NAMESAKES)


@pytest.mark.parametrize("with_nik", [False, True])
def test_roster_row_and_a_resident_elsewhere_each_the_others_only_candidate_are_placed(with_nik):
    # the only link goes to another house, and that resident's only link to the roster is this
    # row: in a delivery without NIK, placed with them (a household that moved, an address typed
    # two ways), not identified; where NIKs are the norm the row may be a copy: left alone
    residents = NAMESAKES if with_nik else [(*r[:4], None, r[5]) for r in NAMESAKES]
    conn, result = _event_case(
        residents, ROSTER_ROW, links=[("kjp:1", "pop:2", 0.71)], address={**HOME, "kjp:1": "JL X 1"}
    )
    placed = conn.execute(
        "SELECT unique_id, resident_unique_id, basis, match_probability FROM link.assignments"
    ).fetchall()
    if with_nik:
        assert result.assigned == 0 and placed == []
        assert not _same_cluster(conn, "kjp:1", "pop:2")
    else:
        assert result.assigned == 1 and result.placed_by_only_link == 1
        assert _same_cluster(conn, "kjp:1", "pop:2")
        assert placed == [("kjp:1", "pop:2", "only_link", 0.71)]


def test_event_record_with_one_link_joins_that_resident():
    # the name differs too much for the name rule, the model still linked it (below the cluster
    # threshold) to one resident only: a death record is about a registered resident
    residents = [("pop:1", "JOGA WIJAJA", "1944-10-01", "L", "3173060110440016", KEL)]
    conn, result = _event_case(
        residents,
        ("mati:1", "death_registry", "YOGA WIJAYA", "1944-10-01", "L", None, KEL),
        links=[("mati:1", "pop:1", 0.8)],
    )
    assert result.assigned == 1 and _same_cluster(conn, "mati:1", "pop:1")


def test_links_outrank_the_name_rule():
    # the model linked the death record to the resident with its exact birth date; a namesake one
    # digit off also passes the name rule but does not make the record ambiguous
    residents = [
        ("pop:1", "SITI RAHMAWATI", "2014-07-26", "P", "3173016607140012", KEL),
        ("pop:2", "SITI RAHMAWATI", "2014-07-25", "P", "3173016507140003", KEL),
    ]
    event = ("mati:1", "death_registry", "SITI RAHMAWATI", "2014-07-26", "P", None, KEL)
    conn, result = _event_case(residents, event, links=[("mati:1", "pop:1", 0.9)])
    assert result.assigned == 1 and _same_cluster(conn, "mati:1", "pop:1")
    # without the link, the name rule alone finds two: a possible death of each
    conn, result = _event_case(residents, event)
    assert result.assigned == 0
    assert conn.execute("SELECT count(*) FROM link.possible_deaths").fetchall()[0][0] == 2


def test_borrowed_nik_and_same_address_conditions():
    """Same NIK with far-apart birth dates is a borrowed NIK even between namesakes (a parent and
    child of one name); a typo or swap in the birth date is not. Two addresses on one street are
    one home only with the same numbers."""
    from satudata_pipeline.link import splink_settings as ss

    conn = duckdb.connect()
    rows = [  # nik_l, nik_r, nama_l, nama_r, dob_l, dob_r, expected borrowed
        (
            "3175076402120027",
            "3175076402120027",
            "ROSLINA SITORUS",
            "ROSLINA SITORUS",
            "2005-04-23",
            "2012-02-24",
            True,
        ),
        (
            "3175076402120027",
            "3175076402120027",
            "ROSLINA SITORUS",
            "ROSLINA SITORUS",
            "2012-02-24",
            "2012-02-25",
            False,
        ),
        (
            "3175076402120027",
            "3175076402120027",
            "ROSLINA SITORUS",
            "ROSLINA SITORUS",
            "2012-02-24",
            None,
            False,
        ),
        # a birth year off by one is a registration error, not another person
        (
            "3374060208290014",
            "3374060208290014",
            "IBRAHIM HAFIZ",
            "IBRAHIM HAFIZ",
            "1929-08-02",
            "1930-08-02",
            False,
        ),
        (
            "3175076402120027",
            "3175076402120027",
            "ROSLINA SITORUS",
            "BUDI SANTOSO",
            "2012-02-24",
            None,
            True,
        ),
        (
            "3175076402120027",
            "3175076402120027",
            "ROSLINA SITORUS",
            "ROSLINA",
            "2012-02-24",
            "2012-02-24",
            False,
        ),
        # the owner's own NIK on a row without birth date, the name in another order with a typo,
        # or in the old spelling: one person, not a borrowed NIK
        (
            "3171056507650001",
            "3171056507650001",
            "PUTRI AISYA",
            "AISYAH PUTRI",
            None,
            "1965-07-25",
            False,
        ),
        (
            "3174035110030001",
            "3174035110030001",
            "AMINH SYIFA",
            "SYIFA AMINAH",
            None,
            "2003-10-11",
            False,
        ),
        (
            "3171021907650002",
            "3171021907650002",
            "BAYU PRASETYO",
            "BAJU PRASECO",
            None,
            "1965-07-19",
            False,
        ),
        # but one shared word of two otherwise different names is still another person
        (
            "3171056507650001",
            "3171056507650001",
            "PUTRI AMELIA",
            "AISYAH PUTRI",
            None,
            "1965-07-25",
            True,
        ),
    ]
    for *vals, want in rows:
        got = conn.execute(
            f"""SELECT {ss.BORROWED_NIK} FROM (SELECT ?::VARCHAR nik_l, ?::VARCHAR nik_r,
            ?::VARCHAR nama_l, ?::VARCHAR nama_r, ?::DATE tanggal_lahir_l, ?::DATE tanggal_lahir_r,
            list_sort(string_split(nama_l, ' ')) nama_tokens_l, list_sort(string_split(nama_r, ' ')) nama_tokens_r,
            array_to_string(nama_tokens_l, ' ') nama_sorted_l, array_to_string(nama_tokens_r, ' ') nama_sorted_r)""",
            vals,
        ).fetchall()[0][0]
        assert bool(got) is want, vals
    write_clean_table(
        conn,
        "a",
        [
            dict(record_id=r, alamat=a)
            for r, a in [
                ("r1", "Jl. Beringin No. 134"),
                ("r2", "JL BERINGIN NO 52"),
                ("r3", "JL BERINGIN NO 134"),
                ("r4", "JL BERINGIN NO 134 BLOK B7"),
            ]
        ],
    )
    matching.build_person_records(conn, ["a"])
    got = dict(
        conn.execute(f"""SELECT l.record_id || '-' || r.record_id, {ss.as_join_sql(ss.SAME_ADDRESS)}
        FROM link.person_records l, link.person_records r
        WHERE l.record_id = 'r3' AND r.record_id <> 'r3'""").fetchall()
    )
    assert got == {"r3-r1": True, "r3-r2": False, "r3-r4": False}


@pytest.mark.parametrize(
    "nama_l, nama_r, level",
    [
        ("SITI AMINAH", "SITI AMINAH", "Exact match on nama"),
        ("AMINAH SITI", "SITI AMINAH", "Same words, other order or other spelling"),
        # old spelling as cleaning leaves it (TJ guessed as C, J kept) against the new spelling
        ("BAJU PRASECO", "BAYU PRASETYO", "Same words, other order or other spelling"),
        ("NJOMAN SUCIPTO", "NYOMAN SUCIPTO", "Same words, other order or other spelling"),
        (
            "SITI AMINAH",
            "SITI AMINA",
            "One typo (Damerau-Levenshtein 1) or Jaro-Winkler >= 0.94 (also with the words sorted)",
        ),
        (
            "PUTRI AISYA",
            "AISYAH PUTRI",
            "One typo (Damerau-Levenshtein 1) or Jaro-Winkler >= 0.94 (also with the words sorted)",
        ),
        ("SRI", "SRI MARYATI", "Words of one name contained in the other"),
        ("AGUS", "AGUS SUSILO", "Words of one name contained in the other"),
        ("SANTOSO BUDI", "BUDI HARTONO", "Shares at least one word"),
        ("SRI MARYATI", "AGUS SUSILO", "All other comparisons"),
        (None, "AGUS", "nama is NULL"),
    ],
)
def test_name_comparison_levels(nama_l, nama_r, level):
    """Which level of the name comparison a pair of cleaned names falls in (first that holds)."""
    from satudata_pipeline.link import splink_settings as ss

    comp = ss.name_comparison().get_comparison("duckdb")
    conn = duckdb.connect()
    frame = """(SELECT ?::VARCHAR nama_l, ?::VARCHAR nama_r,
        list_sort(string_split(nama_l, ' ')) nama_tokens_l, list_sort(string_split(nama_r, ' ')) nama_tokens_r,
        array_to_string(nama_tokens_l, ' ') nama_sorted_l, array_to_string(nama_tokens_r, ' ') nama_sorted_r)"""
    got = None
    for lvl in comp.comparison_levels:
        cond = lvl.sql_condition
        if (
            cond.strip().upper() == "ELSE"
            or conn.execute(
                f"SELECT coalesce({cond}, FALSE) FROM {frame}", [nama_l, nama_r]
            ).fetchall()[0][0]
        ):
            got = lvl.label_for_charts
            break
    assert got == level


@pytest.mark.parametrize(
    ("nama_l", "nama_r", "kel_l", "kel_r", "conclusive"),
    [
        # one name's words within the other's and two homes: a NIK copied from a namesake born the
        # same day (the record's own name and address, the namesake's NIK), left to the model
        ("MUHAMMAD", "MUHAMMAD RIZKY", "31.74.08.1006", "31.71.07.1007", False),
        ("FARHAN RAMADHAN", "FARHAN", "31.74.02.1001", "31.73.07.1004", False),
        # the same, in one kelurahan or with a kelurahan unknown: a shortened name of one person
        ("MUHAMMAD", "MUHAMMAD RIZKY", "31.71.07.1007", "31.71.07.1007", True),
        ("SRI", "SRI MARYATI", None, "31.71.07.1007", True),
        # as many words: one person who moved (a typo, reordered words, the same name)
        ("MUHAMAD RIZKI", "MUHAMMAD RIZKY", "31.74.08.1006", "31.71.07.1007", True),
        ("RIZKY MUHAMMAD", "MUHAMMAD RIZKY", "31.74.08.1006", "31.71.07.1007", True),
        ("SRI MARYATI", "SRI MARYATI", "31.74.08.1006", "31.71.07.1007", True),
        # names that do not agree are never conclusive
        ("SRI MARYATI", "AGUS SUSILO", "31.71.07.1007", "31.71.07.1007", False),
    ],
)
def test_deterministic_pass_names_and_places(nama_l, nama_r, kel_l, kel_r, conclusive):
    """The same valid NIK and birth date are conclusive with agreeing names, except a name with
    more words than the other in another kelurahan (matching.WORDS_AND_PLACE_DIFFER_SQL)."""
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA link")
    conn.execute(
        """CREATE TABLE link.person_records AS
        SELECT * REPLACE (list_sort(list_distinct(string_split(nama, ' '))) AS nama_tokens,
                          array_to_string(list_sort(list_distinct(string_split(nama, ' '))), ' ')
                              AS nama_sorted)
        FROM (VALUES ('a', ?, ?), ('b', ?, ?)) v(unique_id, nama, kode_kelurahan),
             (SELECT '3174084806110001' AS nik, true AS nik_valid,
                     DATE '2011-06-08' AS tanggal_lahir, NULL::VARCHAR[] AS nama_tokens,
                     NULL::VARCHAR AS nama_sorted)""",
        [nama_l, kel_l, nama_r, kel_r],
    )
    pairs = conn.execute(matching.deterministic_pairs_sql(0.9)).fetchall()
    assert pairs == ([("a", "b")] if conclusive else [])


def test_connected_components_cluster_id_is_smallest_member():
    conn = duckdb.connect()
    conn.execute("CREATE TABLE nodes AS SELECT unnest(['a', 'b', 'c', 'd', 'e', 'f']) AS unique_id")
    conn.execute(
        "CREATE TABLE edges AS SELECT * FROM (VALUES ('c', 'b'), ('b', 'a'), ('e', 'f'), "
        "('a', 'a')) t(x, y)"
    )
    clusters._components(conn, "SELECT unique_id FROM nodes", "SELECT x, y FROM edges", "out")
    got = dict(conn.execute("SELECT unique_id, cluster_id FROM out").fetchall())
    assert got == {"a": "a", "b": "a", "c": "a", "d": "d", "e": "e", "f": "e"}


def test_levels_never_seen_in_random_pairs_get_the_rule_of_three_bound():
    settings = {
        "comparisons": [
            {
                "output_column_name": "nik",
                "comparison_levels": [
                    {"sql_condition": "null", "is_null_level": True},
                    {
                        "sql_condition": "a",
                        "label_for_charts": "fixed",
                        "m_probability": 0.5,
                        "u_probability": 0.5,
                        "fix_u_probability": True,
                    },
                    {"sql_condition": "b", "label_for_charts": "seen", "u_probability": 0.01},
                    {"sql_condition": "c", "label_for_charts": "unseen"},
                    {
                        "sql_condition": "d",
                        "label_for_charts": "unseen text",
                        "u_probability": "level not observed",
                    },
                ],
            }
        ]
    }
    changed = model.bound_unobserved_u(settings, 2e6)
    levels = settings["comparisons"][0]["comparison_levels"]
    assert changed == ["nik: unseen", "nik: unseen text"]
    assert [lv.get("u_probability") for lv in levels] == [None, 0.5, 0.01, 1.5e-6, 1.5e-6]


def test_trained_model_has_no_default_u(linked):
    *_, summary, _r = linked
    for comp in summary.settings["comparisons"]:
        for level in comp["comparison_levels"]:
            if not level.get("is_null_level"):
                assert isinstance(level.get("u_probability"), float), (
                    comp["output_column_name"],
                    level,
                )


def test_em_rule_samples_whole_blocks_above_the_budget(monkeypatch):
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA link")
    # 50 families of 4 (6 pairs each = 300 pairs) and 100 records without a family card
    conn.execute("""CREATE TABLE link.person_records AS
        SELECT i::VARCHAR AS unique_id, CASE WHEN i < 200 THEN 'KK' || (i // 4) END AS no_kk
        FROM range(300) t(i)""")
    rule, pairs, modulus, used = model.em_rule(conn, ("no_kk",))
    assert (pairs, modulus, used) == (300, 1, 300)
    monkeypatch.setattr(model.ss, "EM_MAX_PAIRS", 100)
    rule, pairs, modulus, used = model.em_rule(conn, ("no_kk",))
    assert (pairs, modulus) == (300, 3) and used % 6 == 0 and 0 < used < 300
    joined = conn.execute(
        f"SELECT count(*) FROM link.person_records l JOIN link.person_records r "
        f"ON {rule} AND l.unique_id < r.unique_id"
    ).fetchall()[0][0]
    assert joined == used


def test_cheap_guards_never_change_a_string_distance_result():
    """The guards put in front of Damerau-Levenshtein (lengths, NIK halves, date parts) are
    necessary conditions: the guarded and the plain expression agree on every pair."""
    import random

    from satudata_pipeline.link import splink_settings as ss

    rng = random.Random(5)

    def mutate(s: str, alphabet: str) -> str:
        s = list(s)
        for _ in range(rng.choice([0, 1, 1, 2])):
            op, i = rng.choice(["sub", "swap", "ins", "del"]), rng.randrange(len(s))
            if op == "sub":
                s[i] = rng.choice(alphabet)
            elif op == "swap" and i + 1 < len(s):
                s[i], s[i + 1] = s[i + 1], s[i]
            elif op == "ins":
                s.insert(i, rng.choice(alphabet))
            elif op == "del" and len(s) > 1:
                del s[i]
        return "".join(s)

    names = [("SITI AMINAH", mutate("SITI AMINAH", "AIUNS ")) for _ in range(300)]
    niks = []
    for _ in range(300):
        a = "".join(rng.choice("0123456789") for _ in range(16))
        b = list(a)
        i = rng.randrange(15)
        if rng.random() < 0.5:
            b[i], b[i + 1] = b[i + 1], b[i]
        else:
            b[rng.randrange(16)] = rng.choice("0123456789")
        if rng.random() < 0.3:
            b[rng.randrange(16)] = rng.choice("0123456789")
        niks.append((a, "".join(b)))
    import datetime as dt

    dates = []
    for _ in range(400):
        a = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(30000))
        b = a + dt.timedelta(
            days=rng.choice([0, 1, 9, 10, 20, 30, 31, 365, 3650, rng.randrange(-5000, 5000)])
        )
        dates.append((a, b))
    conn = duckdb.connect()
    conn.execute(
        "CREATE TABLE p (nama_l VARCHAR, nama_r VARCHAR, nik_l VARCHAR, nik_r VARCHAR, "
        "tanggal_lahir_l DATE, tanggal_lahir_r DATE)"
    )
    rows = [(n[0], n[1], k[0], k[1], d[0], d[1]) for n, k, d in zip(names, niks, dates)]
    conn.executemany("INSERT INTO p VALUES (?, ?, ?, ?, ?, ?)", rows)
    disagree = conn.execute(f"""
        SELECT count(*) FILTER (WHERE ({ss.NAME_DL1}) <> (damerau_levenshtein(nama_l, nama_r) <= 1)),
               count(*) FILTER (WHERE ({ss.NAME_DL2}) <> (damerau_levenshtein(nama_l, nama_r) <= 2)),
               count(*) FILTER (WHERE ({ss.NIK_ONE_TYPO}) <> (damerau_levenshtein(nik_l, nik_r) <= 1)),
               count(*) FILTER (WHERE ({ss.BIRTH_DATE_ONE_DIGIT}) <> (damerau_levenshtein(
                   CAST(tanggal_lahir_l AS VARCHAR), CAST(tanggal_lahir_r AS VARCHAR)) <= 1)),
               count(*) FILTER (WHERE damerau_levenshtein(nik_l, nik_r) <= 1),
               count(*) FILTER (WHERE damerau_levenshtein(CAST(tanggal_lahir_l AS VARCHAR),
                                                          CAST(tanggal_lahir_r AS VARCHAR)) = 1)
        FROM p""").fetchall()[0]
    assert disagree[:4] == (0, 0, 0, 0)
    assert disagree[4] > 50 and disagree[5] > 10  # the cases exercise both outcomes


def test_probability_without_the_nik_takes_the_nik_weight_out_of_real_predictions(linked):
    """The removal rules read `match_probability_without_nik`; on Splink's own predictions (not a
    fake table) a pair that agrees on a valid NIK must stand weaker without it, or a link made by
    the NIK alone would pass for one that holds without it."""
    conn, *_ = linked
    agree, weaker = conn.execute("""
        SELECT count(*), count(*) FILTER (WHERE mp.match_weight IS NOT NULL AND
               mp.match_probability_without_nik < mp.match_probability)
        FROM link.match_pairs mp
        JOIN link.person_records l ON l.unique_id = mp.unique_id_l
        JOIN link.person_records r ON r.unique_id = mp.unique_id_r
        WHERE l.nik_valid AND r.nik_valid AND l.nik = r.nik AND mp.match_weight IS NOT NULL
    """).fetchall()[0]
    assert agree > 50
    assert weaker == agree


def test_chunked_prediction_equals_unchunked(linked):
    """Splink's predict in 3 x 3 chunks (the memory bound at province scale) scores exactly the
    pairs of one unchunked predict, with the same weights."""
    conn, _frames, _truth, _n, summary, _result = linked
    out = {}
    for chunks in (1, 3):
        with matching.splink_session(conn) as db_api:
            _linker, pred = matching.predict(db_api, summary.settings, 0.01, chunks=chunks)
            out[chunks] = conn.execute(
                f"SELECT least(unique_id_l, unique_id_r), greatest(unique_id_l, unique_id_r), "
                f"round(match_weight, 9), round(mw_nik, 9) FROM {pred.physical_name} ORDER BY 1, 2"
            ).fetchall()
    assert len(out[1]) > 500
    assert out[3] == out[1]


def test_narrow_blocking_yields_splinks_blocked_pairs(linked):
    """compute_blocked_pairs (rule by rule on narrow tables) returns exactly the pairs and the
    match_key of Splink's own blocking, also with more than ten rules (match_key '10' sorts before
    '2' as text: the first rule must be found on the number)."""
    from splink import Linker, block_on

    conn, _frames, _truth, _n, summary, _result = linked
    extra = [block_on("tahun_lahir", "jenis_kelamin"), block_on("kode_kecamatan", "tahun_lahir")]
    settings = matching.with_extra_blocking(summary.settings, extra)
    assert len(settings["blocking_rules_to_generate_predictions"]) > 10
    with matching.splink_session(conn) as db_api:
        sdf = matching.register_person_records(db_api, model_settings=settings)
        linker = Linker(sdf, settings)
        got = {}
        for name, blocked in (
            ("splink", linker.inference.compute_blocked_pairs_for_predict()),
            ("narrow", matching.compute_blocked_pairs(db_api, linker)),
        ):
            got[name] = conn.execute(
                f"SELECT match_key::INTEGER, join_key_l, join_key_r FROM {blocked.physical_name} "
                "ORDER BY 2, 3"
            ).fetchall()
    keys = {k for k, _l, _r in got["splink"]}
    assert len(got["splink"]) > 1000 and max(keys) >= 10
    assert got["narrow"] == got["splink"]


def test_narrow_records_score_exactly_as_the_whole_table(linked):
    """Splink is given only the columns the model reads (the rest of `link.person_records` only
    slows its joins): the scored pairs and weights are those of the whole table, and the columns
    kept for survivorship and evidence are left out."""
    conn, _frames, _truth, _n, summary, _result = linked
    cols = matching.scoring_columns(conn, summary.settings)
    every = [r[0] for r in conn.execute("DESCRIBE link.person_records").fetchall()]
    assert cols[0] == "unique_id" and {"nik", "nama", "tanggal_lahir", "source"} <= set(cols)
    assert len(cols) < len(every)
    assert {"desil", "tanggal_meninggal", "record_id"} <= set(every) - set(cols)
    out = {}
    for narrow in (False, True):
        with matching.splink_session(conn) as db_api:
            sdf = matching.register_person_records(
                db_api, model_settings=summary.settings if narrow else None
            )
            registered = [
                r[0]
                for r in conn.execute(
                    f"DESCRIBE {matching.SPLINK_SCHEMA}.sd_person_records"
                ).fetchall()
            ]
            assert registered == (cols if narrow else every)
            from splink import Linker

            pred = Linker(sdf, summary.settings).inference.predict(threshold_match_probability=0.01)
            out[narrow] = conn.execute(
                f"SELECT least(unique_id_l, unique_id_r), greatest(unique_id_l, unique_id_r), "
                f"round(match_weight, 9) FROM {pred.physical_name} ORDER BY 1, 2"
            ).fetchall()
    assert len(out[True]) > 500
    assert out[True] == out[False]


def test_predict_chunks_follow_the_memory_budget_not_only_the_population():
    per_gb = matching.PREDICT_RECORDS_PER_GB
    assert matching.predict_chunks(1000, 4) == 1
    assert matching.predict_chunks(4 * per_gb, 4) == 1
    assert matching.predict_chunks(4 * per_gb + 1, 4) == 2
    # k x k chunks: k^2 follows the records per budget (the pairs grow with the records)
    assert matching.predict_chunks(16 * 4 * per_gb, 4) == 4
    assert matching.predict_chunks(20_000_000, 4) == math.ceil(math.sqrt(20_000_000 / (4 * per_gb)))
    assert matching.predict_chunks(20_000_000, 16) < matching.predict_chunks(20_000_000, 4)


def test_capped_blocks_flag_records_in_blocks_within_the_cap(monkeypatch):
    """blok_<rule> is true when the record's block of that capped rule holds at most BLOCK_CAP
    records, false above, NULL when a key is missing; the capped rule pairs only flagged records."""
    monkeypatch.setattr(ss, "BLOCK_CAP", 3)
    conn = duckdb.connect()
    born = dt.date(1990, 1, 5)
    rows = [dict(record_id=f"m{i}", nama=f"MUHAMMAD X{i}", tanggal_lahir=born) for i in range(4)]
    rows += [dict(record_id=f"s{i}", nama=f"SITI Y{i}", tanggal_lahir=born) for i in range(2)]
    rows += [dict(record_id="n1", nama="SITI Z", tanggal_lahir=None)]
    write_clean_table(conn, "a", rows)
    matching.build_person_records(conn, ["a"])
    flags = dict(
        conn.execute("SELECT record_id, blok_tgl_depan FROM link.person_records").fetchall()
    )
    assert flags == {"m0": False, "m1": False, "m2": False, "m3": False,
                     "s0": True, "s1": True, "n1": None}  # fmt: skip
    rule = ss.capped_block_on("tgl_depan").get_blocking_rule("duckdb").blocking_rule_sql
    pairs = conn.execute(
        f"SELECT l.record_id, r.record_id FROM link.person_records l "
        f"JOIN link.person_records r ON {rule} AND l.unique_id < r.unique_id"
    ).fetchall()
    assert pairs == [("s0", "s1")]
    # the other capped rules carry their flag too, and the rules use the flag of both records
    cols = {r[0] for r in conn.execute("DESCRIBE link.person_records").fetchall()}
    for name in ss.CAPPED_BLOCKS:
        assert ss.block_cap_column(name) in cols
        sql = ss.capped_block_on(name).get_blocking_rule("duckdb").blocking_rule_sql
        assert f"l.{ss.block_cap_column(name)} AND r.{ss.block_cap_column(name)}" in sql
