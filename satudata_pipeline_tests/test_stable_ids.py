"""Stable person ids: reruns, additions, removals, corrections, merges and splits."""

from __future__ import annotations

import duckdb
import pytest

from satudata_pipeline.golden import stable_ids


def _run(conn, clusters: dict[str, list[str]], run_id: str) -> dict[str, str]:
    """Write link.person_clusters from {cluster_id: [unique_id...]}, assign ids, return
    {unique_id: person_id}."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS link")
    conn.execute(
        "CREATE OR REPLACE TABLE link.person_clusters (unique_id VARCHAR, cluster_id VARCHAR)"
    )
    rows = [(u, min(members)) for members in clusters.values() for u in members]
    conn.executemany("INSERT INTO link.person_clusters VALUES (?, ?)", rows)
    stable_ids.assign_person_ids(conn, run_id)
    return dict(
        conn.execute(
            "SELECT c.unique_id, i.person_id FROM link.person_clusters c "
            "JOIN golden.person_ids i USING (cluster_id)"
        ).fetchall()
    )


def _changes(conn, run_id):
    return sorted(
        conn.execute(
            "SELECT old_person_id, new_person_id, reason FROM golden.person_id_changes "
            "WHERE run_id = ?",
            [run_id],
        ).fetchall(),
        key=str,
    )


@pytest.fixture
def conn():
    c = duckdb.connect()
    yield c
    c.close()


BASE = {"a": ["s:1", "s:2"], "b": ["s:3"], "c": ["s:4", "s:5", "s:6"], "d": ["t:1"]}


def test_ids_are_opaque_and_sequential(conn):
    ids = _run(conn, BASE, "r1")
    assert sorted(set(ids.values())) == ["P000000001", "P000000002", "P000000003", "P000000004"]
    assert ids["s:1"] == ids["s:2"] and ids["s:1"] != ids["s:3"]
    # numbered in order of the clusters' smallest unique_id
    assert ids["s:1"] == "P000000001" and ids["t:1"] == "P000000004"
    assert [r for r in _changes(conn, "r1") if r[2] != "created"] == []
    assert len(_changes(conn, "r1")) == 4


def test_rerun_identical_keeps_every_id_and_logs_nothing(conn):
    first = _run(conn, BASE, "r1")
    second = _run(conn, BASE, "r2")
    assert first == second
    assert _changes(conn, "r2") == []


def test_deterministic_on_a_fresh_warehouse():
    a, b = duckdb.connect(), duckdb.connect()
    assert _run(a, BASE, "x") == _run(b, BASE, "y")


def test_additions_removals_corrections_keep_unaffected_ids(conn):
    first = _run(conn, BASE, "r1")
    changed = {
        "a": ["s:1", "s:2", "u:9"],  # a new record joins a person
        "b": ["s:3"],
        "c": ["s:4", "s:6"],  # s:5 removed (corrected away)
        "e": ["s:5"],  # ... and is now its own person
        "f": ["u:1"],
    }  # a brand new person; t:1 gone entirely
    second = _run(conn, changed, "r2")
    for uid in ("s:1", "s:2", "s:3", "s:4", "s:6"):
        assert second[uid] == first[uid]
    assert second["u:9"] == first["s:1"]
    assert second["s:5"] not in first.values() and second["u:1"] not in first.values()
    ch = _changes(conn, "r2")
    assert (first["s:4"], second["s:5"], "split_from") in ch
    assert (None, second["u:1"], "created") in ch
    assert (first["t:1"], None, "removed") in ch
    retired = dict(
        conn.execute("SELECT person_id, retired_run FROM golden.person_id_registry").fetchall()
    )
    assert retired[first["t:1"]] == "r2" and retired[first["s:1"]] is None


def test_merge_keeps_the_older_id_and_logs(conn):
    first = _run(conn, BASE, "r1")
    merged = {"ab": ["s:1", "s:2", "s:3"], "c": ["s:4", "s:5", "s:6"], "d": ["t:1"]}
    second = _run(conn, merged, "r2")
    older, younger = sorted([first["s:1"], first["s:3"]])
    assert {second["s:1"], second["s:3"]} == {older}
    assert _changes(conn, "r2") == [(younger, older, "merged_into")]
    # merge where the larger part holds the younger id: the older still wins
    third = _run(
        conn, {"x": ["s:1", "s:2", "s:3", "t:1", "t:2", "t:3"], "c": ["s:4", "s:5", "s:6"]}, "r3"
    )
    assert third["t:1"] == older
    assert _changes(conn, "r3") == [(first["t:1"], older, "merged_into")]


def test_split_keeps_the_largest_part_and_logs(conn):
    first = _run(conn, BASE, "r1")
    split = {"a": ["s:1", "s:2"], "b": ["s:3"], "c1": ["s:4"], "c2": ["s:5", "s:6"], "d": ["t:1"]}
    second = _run(conn, split, "r2")
    assert second["s:5"] == second["s:6"] == first["s:4"]
    assert second["s:4"] not in first.values()
    assert _changes(conn, "r2") == [(first["s:4"], second["s:4"], "split_from")]


def test_split_tie_goes_to_the_part_with_smallest_unique_id(conn):
    _run(conn, {"a": ["s:1", "s:2", "s:3", "s:4"]}, "r1")
    second = _run(conn, {"x": ["s:3", "s:4"], "y": ["s:1", "s:2"]}, "r2")
    assert second["s:1"] == "P000000001" and second["s:3"] == "P000000002"


def test_tables_survive_and_are_never_dropped(conn):
    _run(conn, BASE, "r1")
    stable_ids.ensure_tables(conn)  # idempotent
    assert conn.execute("SELECT count(*) FROM golden.person_id_registry").fetchall()[0][0] == 4
    assert conn.execute("SELECT count(*) FROM golden.person_id_members").fetchall()[0][0] == 7


def test_publishing_the_registry_writes_only_what_changed():
    """publish.apply_registry (issue 17): the published registry ends with the same rows as a full
    copy of the staging registry after a merge (retired ids updated), new clusters (ids added) and an
    id dropped from staging; old ids keep their stored order, and a second apply writes nothing."""
    from satudata_pipeline.golden import publish

    conn = duckdb.connect()
    _run(conn, BASE, "run1")
    publish.stage_id_state(conn)  # golden -> staging
    # in staging: c and d merge (one id retired), two new clusters, and one id vanishes entirely
    conn.execute(
        "CREATE OR REPLACE TABLE link.person_clusters (unique_id VARCHAR, cluster_id VARCHAR)"
    )
    clusters = {"a": ["s:1", "s:2"], "b": ["s:3"], "c": ["s:4", "s:5", "s:6", "t:1"]}
    clusters |= {"e": ["u:1"], "f": ["u:2", "u:3"]}
    conn.executemany(
        "INSERT INTO link.person_clusters VALUES (?, ?)",
        [(u, min(m)) for m in clusters.values() for u in m],
    )
    stable_ids.assign_person_ids(conn, "run2", schema="staging")
    dropped = conn.execute(
        "SELECT person_id FROM staging.person_id_registry WHERE retired_run IS NULL ORDER BY seq LIMIT 1"
    ).fetchall()[0][0]
    conn.execute("DELETE FROM staging.person_id_registry WHERE person_id = ?", [dropped])
    before = [
        r[0]
        for r in conn.execute("SELECT person_id FROM golden.person_id_registry").fetchall()
        if r[0] != dropped
    ]

    counts = publish.apply_registry(conn)

    assert counts == {"deleted": 1, "updated": 1, "added": 2}
    published = conn.execute("SELECT * FROM golden.person_id_registry").fetchall()
    staged = conn.execute("SELECT * FROM staging.person_id_registry").fetchall()
    assert sorted(published, key=str) == sorted(staged, key=str)
    assert [r[0] for r in published][: len(before)] == before  # old ids in their stored order
    assert [r[3] for r in published][len(before) :] == sorted(
        r[3] for r in published[len(before) :]
    )
    assert [r for r in published if r[2] == "run2"]  # the merged-away id is retired
    assert publish.apply_registry(conn) == {"deleted": 0, "updated": 0, "added": 0}
