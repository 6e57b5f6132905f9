"""Two runs on the same delivery publish identical tables: same ids, same verdicts, same row order.

The row order of every published table is defined by `satudata_pipeline.golden.publish.PUBLISHED`
(docs/reliability.md): the test checks that the stored order is that ORDER BY, and that the second
run's tables equal the first's row for row (the publication log excepted, and no id change logged).
"""

from __future__ import annotations

import pytest
from publish_helpers import (
    HISTORY_TABLES,
    SNAPSHOT_TABLES,
    assert_consistent,
    connect,
    generated_delivery,
    run_job,
    snapshot,
)

from satudata_pipeline.golden.publish import LOG_TABLE, PUBLISHED


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    with generated_delivery(tmp_path_factory.mktemp("rerun")) as (delivery, state):
        warehouse = state / "warehouse.duckdb"
        assert run_job(delivery, warehouse).success
        first = snapshot(warehouse)
        first_exports = {
            p.relative_to(state): p.read_bytes() for p in sorted((state / "exports").rglob("*.csv"))
        }
        assert run_job(delivery, warehouse).success
        second = snapshot(warehouse)
        second_exports = {
            p.relative_to(state): p.read_bytes() for p in sorted((state / "exports").rglob("*.csv"))
        }
    return {
        "first": first,
        "second": second,
        "warehouse": warehouse,
        "exports": (first_exports, second_exports),
    }


@pytest.mark.parametrize(
    "table", [t for t in SNAPSHOT_TABLES if t != LOG_TABLE and t not in HISTORY_TABLES]
)
def test_published_table_identical(two_runs, table):
    first_schema, first_rows = two_runs["first"][table]
    second_schema, second_rows = two_runs["second"][table]
    assert second_schema == first_schema
    assert len(first_rows) > 0, f"{table} is empty: the comparison would prove nothing"
    if table == "golden.person_id_members":  # run_id says which run last assigned the membership
        drop = [c[0] for c in first_schema].index("run_id")
        first_rows = [r[:drop] + r[drop + 1 :] for r in first_rows]
        second_rows = [r[:drop] + r[drop + 1 :] for r in second_rows]
    assert second_rows == first_rows  # same ids, same verdicts, same order


def test_second_run_logged_a_publication_and_no_id_change(two_runs):
    log = two_runs["second"][LOG_TABLE][1]
    assert len(log) == 2
    columns = [c[0] for c in two_runs["second"][LOG_TABLE][0]]
    assert log[1][columns.index("person_id_changes")] == 0
    assert log[0][columns.index("golden_person")] == log[1][columns.index("golden_person")]
    assert_consistent(two_runs["warehouse"])


def test_rerun_is_a_determination_of_its_own_with_nothing_changed(two_runs):
    """The history records both runs: the same delivery, model and rules; no change between them; the
    second run's intake found every row unchanged."""
    with connect(two_runs["warehouse"]) as conn:
        dets = conn.execute(
            "SELECT determination_id, delivery_fingerprint, model_version, rules_version, "
            "review_rows FROM history.determinations ORDER BY 1"
        ).fetchall()
        changes = conn.execute("SELECT count(*) FROM main.determination_changes").fetchall()[0][0]
        intake = conn.execute(
            "SELECT sum(new), sum(changed), sum(gone), sum(unchanged) "
            "FROM main.source_change_counts"
        ).fetchall()[0]
    assert [d[0] for d in dets] == [1, 2]
    assert dets[0][1:] == dets[1][1:] and dets[0][1] is not None and dets[0][4] > 0
    assert changes == 0
    assert intake[:3] == (0, 0, 0) and intake[3] > 0


@pytest.mark.parametrize("published", PUBLISHED, ids=lambda p: p.published)
def test_stored_row_order_is_the_documented_order(two_runs, published):
    with connect(two_runs["warehouse"]) as conn:
        stored = conn.execute(f"SELECT * FROM {published.published}").fetchall()
        ordered = conn.execute(
            f"SELECT * FROM {published.published} ORDER BY {published.order_by}"
        ).fetchall()
    assert stored == ordered


def test_exports_identical(two_runs):
    first, second = two_runs["exports"]
    assert first and first.keys() == second.keys()
    assert all(first[k] == second[k] for k in first)
