"""Incremental linkage (issue 17): next month's delivery linked incrementally on a warehouse that holds
last month's linkage gives the same links and verdicts as a full run on a fresh warehouse with the
same model; a full relink runs when asked or when the model / cleaning rules change."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from publish_helpers import connect, run_job

from satudata_pipeline import config
from satudata_pipeline.clean import fingerprint as clean_fingerprint
from satudata_pipeline.link import incremental as inc
from satudata_pipeline.synthetic import generate
from satudata_pipeline.synthetic.next_month import next_month

PAIRS = (
    "SELECT unique_id_l, unique_id_r, link_method, round(match_probability, 9) "
    "FROM link.match_pairs ORDER BY 1, 2"
)
CLUSTERS = (
    "SELECT list(unique_id ORDER BY unique_id) AS m FROM link.person_clusters "
    "GROUP BY cluster_id ORDER BY m"
)
VERDICTS = "SELECT source, record_id, verdict, reasons FROM main.beneficiary_review ORDER BY 1, 2"


def match_pairs_metadata(result) -> dict:
    for e in result.get_asset_materialization_events():
        if e.asset_key.to_user_string() == "match_pairs":
            md = e.step_materialization_data.materialization.metadata
            return {k: v.value for k, v in md.items()}
    raise AssertionError("match_pairs was not materialized")


def query(warehouse: Path, sql: str) -> list:
    with connect(warehouse) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def months(tmp_path_factory):
    """Month 0 then month 1 on warehouse A (full, then incremental); month 1 on a fresh warehouse B
    with A's saved model (full)."""
    root = tmp_path_factory.mktemp("incremental")
    generate(600, seed=5, out=root / "month0")
    next_month(root / "month0", root / "month1")
    saved = os.environ.get("SATUDATA_STATE_DIR")
    out = {"root": root}
    try:
        a, b = root / "A", root / "B"
        a.mkdir()
        os.environ["SATUDATA_STATE_DIR"] = str(a)
        out["month0"] = match_pairs_metadata(run_job(root / "month0", a / "wh.duckdb", True))
        out["month1"] = match_pairs_metadata(run_job(root / "month1", a / "wh.duckdb", True))
        shutil.copytree(a / "models", b / "models")
        os.environ["SATUDATA_STATE_DIR"] = str(b)
        out["fresh"] = match_pairs_metadata(run_job(root / "month1", b / "wh.duckdb", True))
    finally:
        if saved is None:
            os.environ.pop("SATUDATA_STATE_DIR", None)
        else:
            os.environ["SATUDATA_STATE_DIR"] = saved
    out["A"], out["B"] = a / "wh.duckdb", b / "wh.duckdb"
    return out


def test_modes_and_reasons(months):
    assert months["month0"]["linkage_mode"] == "full"
    assert months["month0"]["linkage_mode_reason"] == "no previous linkage state in the warehouse"
    assert months["month1"]["linkage_mode"] == "incremental"
    assert months["fresh"]["linkage_mode"] == "full"


def test_incremental_counts_follow_the_month(months):
    """New records are the rows the month added, gone records its exits; unchanged records keep
    their pairs (carried), and only pairs touching a new or changed record are found by blocking."""
    changes = pd.read_csv(
        months["root"] / "month1" / "truth" / "changes.csv", dtype=str, keep_default_na=False
    )
    added = changes[
        changes.kind.isin(["birth", "move_in", "death", "move_out", "enrollment"])
        | ((changes.kind == "move_within") & (changes.source == "dukcapil_pindah"))
    ]
    md = months["month1"]
    assert md["records_new"] == len(added)
    assert md["records_gone"] == (changes.kind == "exit").sum()
    corrected = changes.kind.isin(["correction"]) | (
        (changes.kind == "move_within") & (changes.source == "dukcapil_penduduk")
    )
    assert 1 <= md["records_changed"] <= corrected.sum()
    total = md["records_new"] + md["records_changed"] + md["records_unchanged"]
    assert total == months["fresh"]["records_new"]  # every record of month 1, once
    assert md["records_unchanged"] > 0.95 * total
    assert md["pairs_carried"] > 10 * md["pairs_scored"] > 0
    assert months["fresh"]["pairs_carried"] == 0


@pytest.mark.parametrize("sql", [PAIRS, CLUSTERS, VERDICTS], ids=["pairs", "clusters", "verdicts"])
def test_incremental_equals_full_relink(months, sql):
    incremental, full = query(months["A"], sql), query(months["B"], sql)
    assert len(full) > 0
    assert incremental == full


def test_state_is_kept_in_link_state(months):
    rows = query(months["A"], "SELECT mode, configuration, counts FROM link_state.meta")
    assert len(rows) == 1 and rows[0][0] == "incremental"
    assert set(json.loads(rows[0][1])) == {
        "state_version",
        "model",
        "model_specification",
        "blocking",
        "match_settings",
        "cleaning_rules",
    }
    n_records = query(months["A"], "SELECT count(*) FROM link.person_records")[0][0]
    assert query(months["A"], "SELECT count(*) FROM link_state.records")[0][0] == n_records
    # every stored pair joins two current records
    assert (
        query(
            months["A"],
            """SELECT count(*) FROM link_state.pairs p
        ANTI JOIN link.person_records r ON r.unique_id = p.unique_id_l""",
        )[0][0]
        == 0
    )


def test_full_flag_forces_a_full_relink_with_the_same_result(months, monkeypatch):
    before = query(months["A"], PAIRS)
    monkeypatch.setenv("SATUDATA_STATE_DIR", str(months["A"].parent))
    monkeypatch.setenv("SATUDATA_FULL_RELINK", "1")
    md = match_pairs_metadata(run_job(months["root"] / "month1", months["A"], True))
    assert md["linkage_mode"] == "full"
    assert "requested" in md["linkage_mode_reason"]
    assert (
        md["records_unchanged"]
        == months["month1"]["records_unchanged"]
        + months["month1"]["records_new"]
        + months["month1"]["records_changed"]
    )
    assert query(months["A"], PAIRS) == before


def test_a_changed_model_or_cleaning_rule_forces_a_full_relink(months, monkeypatch, tmp_path):
    with duckdb.connect(str(months["B"]), read_only=True) as conn:
        settings = json.loads(
            conn.execute("SELECT model_json FROM link.linkage_model").fetchall()[0][0]
        )
        stored = inc.previous_configuration(conn)
        current = inc.configuration(settings, [], 0.5, 0.9)
        assert current == stored
        assert inc.choose_mode(conn, current, False).mode == "incremental"
        # another model (one m probability moved): full, and the reason names the model
        retrained = json.loads(json.dumps(settings))
        level = retrained["comparisons"][0]["comparison_levels"][1]
        level["m_probability"] = level["m_probability"] * 0.9
        plan = inc.choose_mode(conn, inc.configuration(retrained, [], 0.5, 0.9), False)
        assert (plan.mode, plan.reason) == ("full", "changed since the previous linkage: model")
        # another cleaning rule file
        rules = tmp_path / "clean"
        shutil.copytree(config.PACKAGE_DIR / "clean", rules)
        (rules / "name_rules.yaml").write_text(
            (rules / "name_rules.yaml").read_text(encoding="utf-8") + "\n# edited\n",
            encoding="utf-8",
        )
        monkeypatch.setattr(
            clean_fingerprint,
            "CLEANING_INPUTS",
            [rules, config.REFERENCE_WILAYAH],
        )
        plan = inc.choose_mode(conn, inc.configuration(settings, [], 0.5, 0.9), False)
        assert (plan.mode, plan.reason) == (
            "full",
            "changed since the previous linkage: cleaning_rules",
        )
        # another match threshold
        plan = inc.choose_mode(conn, inc.configuration(settings, [], 0.6, 0.9), False)
        assert plan.mode == "full" and "match_settings" in plan.reason


def test_a_failed_state_write_leaves_the_previous_state(months, tmp_path):
    copy = tmp_path / "wh.duckdb"
    shutil.copy(months["B"], copy)
    with duckdb.connect(str(copy)) as conn:
        before = [
            conn.execute(f"SELECT * FROM link_state.{t} ORDER BY ALL").fetchall()
            for t in ("records", "pairs", "meta")
        ]
        # the scratch tables of a run are missing half-way: the transaction rolls back
        conn.execute(
            "CREATE TEMP TABLE _link_fp AS SELECT unique_id, fp, ref_tf_nama AS tf_nama "
            "FROM link_state.records"
        )
        conn.execute("CREATE TEMP TABLE _link_new_pairs AS SELECT * FROM link_state.pairs LIMIT 1")
        with pytest.raises(duckdb.CatalogException, match="_link_carried"):
            inc.write_state(conn, inc.Plan("full", "test", {"model": "other"}), "run-x")
        after = [
            conn.execute(f"SELECT * FROM link_state.{t} ORDER BY ALL").fetchall()
            for t in ("records", "pairs", "meta")
        ]
    assert after == before


def test_records_whose_name_became_much_rarer_are_rescored():
    """The name-frequency guard (link/incremental.py): an unchanged record whose name is now more
    than 2^CARRY_MARGIN_BITS times rarer than when its pairs were found is scored again."""
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA link")
    conn.execute("""CREATE TABLE link.person_records AS SELECT * FROM (VALUES
        ('a:1', 'SITI', DATE '1990-01-01'), ('a:2', 'SITI', DATE '1990-01-01'),
        ('a:3', 'BUDI', DATE '1980-01-01'), ('a:4', 'ANI', DATE '1970-01-01'),
        ('a:5', 'ANI', DATE '1971-01-01'), ('a:6', 'ANI', DATE '1972-01-01'),
        ('a:7', 'ANI', DATE '1973-01-01')) t(unique_id, nama, tanggal_lahir)""")
    inc._fingerprints(conn, ["nama", "tanggal_lahir"])
    conn.execute("CREATE SCHEMA link_state")
    # last month: SITI was ten times more frequent; BUDI's birth date was another; a:9 is gone
    conn.execute("""CREATE TABLE link_state.records AS
        SELECT unique_id, fp, CASE WHEN nama = 'SITI' THEN tf_nama * 10 ELSE tf_nama END AS ref_tf_nama
        FROM _link_fp JOIN link.person_records USING (unique_id) WHERE unique_id <> 'a:3'
        UNION ALL SELECT 'a:3', 'other', 0.1 UNION ALL SELECT 'a:9', 'x', 0.1""")
    conn.execute("DELETE FROM link_state.records WHERE unique_id = 'a:7'")
    counts = inc.classify(conn, ["nama", "tanggal_lahir"])
    status = dict(conn.execute("SELECT unique_id, status FROM _link_class").fetchall())
    assert status == {
        "a:1": "name_frequency",
        "a:2": "name_frequency",
        "a:3": "changed",
        "a:4": "unchanged",
        "a:5": "unchanged",
        "a:6": "unchanged",
        "a:7": "new",
    }
    assert counts == {
        "records_new": 1,
        "records_changed": 1,
        "records_unchanged": 5,
        "records_rescored_name_rarer": 2,
        "records_gone": 1,
    }


def test_carry_threshold_is_two_bits_below_the_match_threshold():
    assert inc.carry_threshold(0.5) == pytest.approx(0.2)
    assert inc.carry_threshold(0.5, margin_bits=0) == pytest.approx(0.5)
