"""Linkage on a small generated set of clean tables: person records, deterministic pass, Splink,
clusters and the pairwise evaluation."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from satudata_pipeline.link import clusters, evaluation, matching, model, testdata


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    mp = pytest.MonkeyPatch()
    mp.setenv("SATUDATA_STATE_DIR", str(state))
    frames, truth = testdata.generate(400, seed=11)
    conn = duckdb.connect(str(tmp_path_factory.mktemp("wh") / "w.duckdb"))
    testdata.load_clean_tables(conn, frames)
    n = matching.build_person_records(conn, list(frames))
    summary = model.train_model(conn)
    with matching.splink_session(conn) as db_api:
        _linker, pred = matching.predict(db_api, summary.settings, 0.5)
        result = matching.write_match_pairs(conn, pred.physical_name, 0.5)
    clusters.build_person_clusters(conn, 0.95, 30)
    conn.register("truth_df", truth)
    conn.execute("CREATE TABLE truth AS SELECT source || ':' || record_id AS unique_id, person_key "
                 "FROM truth_df")
    yield conn, frames, truth, n, summary, result
    conn.close()
    mp.undo()


def test_person_records_union_every_clean_row(linked):
    conn, frames, _truth, n, *_ = linked
    assert n == sum(len(df) for df in frames.values())
    uid, dup = conn.execute(
        "SELECT count(DISTINCT unique_id), count(*) - count(DISTINCT unique_id) "
        "FROM link.person_records").fetchall()[0]
    assert uid == n and dup == 0


def test_derived_columns():
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA clean")
    conn.execute("""CREATE TABLE clean.a AS SELECT 'r1' record_id, 'SITI  aminah NUR' nama,
                    '3171014501900001' nik, true nik_valid, DATE '1990-01-05' tanggal_lahir""")
    matching.build_person_records(conn, ["a"])
    got = conn.execute("""SELECT unique_id, source, nama, nama_depan, nama_belakang, nama_sorted,
                                 tahun_lahir, nik_dob, nik_valid, kind
                          FROM link.person_records""").fetchall()
    assert got == [("a:r1", "a", "SITI AMINAH NUR", "SITI", "NUR", "AMINAH NUR SITI", 1990,
                    "450190", True, None)]


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
    assert n == distinct == conn.execute("SELECT count(*) FROM link.person_records").fetchall()[0][0]
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


def test_giant_cluster_is_split():
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA link")
    ids = [f"s:{i:03d}" for i in range(40)]
    conn.execute("CREATE TABLE link.person_records AS SELECT unnest(?) AS unique_id, "
                 "'welfare_registry' AS kind, NULL::VARCHAR AS nik, false AS nik_valid", [ids])
    # a chain of weak links glues 40 records; strong links only inside pairs
    rows = [(ids[i], ids[i + 1], 0.999999 if i % 2 == 0 else 0.96, "probabilistic")
            for i in range(39)]
    conn.execute("CREATE TABLE link.match_pairs (unique_id_l VARCHAR, unique_id_r VARCHAR, "
                 "match_probability DOUBLE, match_weight DOUBLE, link_method VARCHAR)")
    conn.executemany("INSERT INTO link.match_pairs VALUES (?, ?, ?, NULL, ?)", rows)
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
    truth = pd.DataFrame({"source": ["s"] * 6, "record_id": ["1", "2", "3", "4", "5", "6"],
                          "person_key": ["A", "A", "B", "C", "C", "C"]})
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
    result = clusters.build_person_clusters(conn, cluster_threshold=0.95, max_cluster_size=30)
    got = dict(conn.execute("SELECT unique_id, cluster_id FROM link.person_clusters").fetchall())
    assert got["dtks:9"] == got["dukcapil:2"] != got["dukcapil:1"]
    assert result.reclustered >= 1
