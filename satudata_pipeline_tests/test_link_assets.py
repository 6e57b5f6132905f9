"""Materialize the link and golden assets in-process with Dagster on generated clean tables."""

from __future__ import annotations

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from fixtures import linkage

from satudata_pipeline import config
from satudata_pipeline.golden.assets import build_golden_assets
from satudata_pipeline.link import evaluation, model
from satudata_pipeline.link.assets import build_link_assets
from satudata_pipeline.resources import SparkResource


def _defs(sources):
    clean_keys = [dg.AssetKey(f"clean_{s}") for s in sources]
    specs = [dg.AssetSpec(k) for k in clean_keys]
    return specs, build_link_assets(clean_keys, list(sources)) + build_golden_assets()


def _materialize(db, sources, run_config=None, instance=None):
    specs, defs = _defs(sources)
    assets = [d for d in defs if not isinstance(d, dg.AssetChecksDefinition)]
    checks = [d for d in defs if isinstance(d, dg.AssetChecksDefinition)]
    return dg.materialize(
        [*specs, *assets, *checks],
        resources={"warehouse": DuckDBResource(database=str(db)), "spark": SparkResource()},
        run_config=run_config,
        instance=instance,
        selection=dg.AssetSelection.assets(*[a.key for a in assets]),
    )


def _meta(result, key):
    mats = [m for m in result.asset_materializations_for_node(key)]
    return mats[-1].metadata


def test_materialize_link_and_golden(tmp_path, isolated_state):
    frames, truth = linkage.generate(200, seed=3)
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as conn:
        linkage.load_clean_tables(conn, frames)
        conn.execute(
            "CREATE TABLE clean.quarantine (source VARCHAR, record_id VARCHAR, "
            "row_number BIGINT, reason VARCHAR, raw_values VARCHAR)"
        )
        conn.execute("INSERT INTO clean.quarantine VALUES ('kjp', 'Q1', 9, 'blank_name', '{}')")

    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(db, list(frames), instance=instance)
    assert result.success
    checks = result.get_asset_check_evaluations()
    blocking_or_error = [c for c in checks if c.check_name != "linkage_model_fully_trained"]
    assert blocking_or_error and all(c.passed for c in blocking_or_error), [
        (c.check_name, c.metadata) for c in checks
    ]

    model_meta = _meta(result, "linkage_model")
    # the WARN check reports what the model meta says (a small delivery leaves levels unobserved)
    (trained_check,) = [c for c in checks if c.check_name == "linkage_model_fully_trained"]
    assert trained_check.severity == dg.AssetCheckSeverity.WARN
    assert trained_check.metadata["levels_floored"].value == model_meta["levels_floored"].value
    assert trained_check.passed is (
        model_meta["levels_floored"].value == 0 and model_meta["comparisons_not_trained"].value == 0
    )
    assert model_meta["trained_this_run"].value is True
    assert "Exact NIK" in model_meta["m_u_parameters"].value
    assert (isolated_state / "models").exists() and model.latest_model_path() is not None
    pairs_meta = _meta(result, "match_pairs")
    assert pairs_meta["pairs_exact_nik"].value > 0 and pairs_meta["pairs_probabilistic"].value > 0
    for name in ("match_weights_chart", "m_u_parameters_chart"):
        assert name in model_meta
        # the UI links each chart through the reports server (`satudata ui`) or the proxy
        assert model_meta[f"{name}_url"].value == config.report_url(
            isolated_state / model_meta[name].value.removeprefix("<state>/")
        )
    for name in ("comparison_viewer", "waterfall_chart", "match_weights_histogram"):
        assert name in pairs_meta
        shown = pairs_meta[name].value  # relative to the state folder: no machine path in the UI
        assert shown.startswith("<state>/reports/runs/")
        assert (isolated_state / shown.removeprefix("<state>/")).stat().st_size > 1000
    # metadata never carries personal data
    text = " ".join(str(v.value) for m in (model_meta, pairs_meta) for v in m.values())
    assert "SANTOSO" not in text and "3171" not in text and str(isolated_state) not in text
    # the long steps log their phases into the run (counts and times only)
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    phases = [
        m for m in logs if m.startswith(("match_pairs: ", "person_clusters: ", "golden_person: "))
    ]
    assert any("Splink scored the candidate pairs" in m for m in phases)
    assert any(m.startswith("person_clusters: clusters formed (records ") for m in phases)
    assert all(" s (step so far " in m and "SANTOSO" not in m for m in phases)

    with duckdb.connect(str(db)) as conn:
        n_rows = sum(len(f) for f in frames.values())
        assert (
            conn.execute("SELECT count(*) FROM staging.person_source_link").fetchall()[0][0]
            == n_rows + 1
        )
        scores = evaluation.pairwise_scores(conn, truth)
        assert scores["f1"] > 0.95
        ids_before = dict(
            conn.execute(
                "SELECT unique_id, person_id FROM staging.person_source_link WHERE person_id IS NOT NULL"
            ).fetchall()
        )

    # second run: the saved model is reused, ids do not move
    result2 = _materialize(db, list(frames))
    assert result2.success
    assert _meta(result2, "linkage_model")["trained_this_run"].value is False
    with duckdb.connect(str(db)) as conn:
        ids_after = dict(
            conn.execute(
                "SELECT unique_id, person_id FROM staging.person_source_link WHERE person_id IS NOT NULL"
            ).fetchall()
        )
        assert ids_after == ids_before
        assert (
            conn.execute(
                "SELECT count(*) FROM staging.person_id_changes WHERE reason <> 'created'"
            ).fetchall()[0][0]
            == 0
        )

    # retrain on request (Config flag)
    result3 = _materialize(
        db, list(frames), run_config={"ops": {"linkage_model": {"config": {"retrain": True}}}}
    )
    assert _meta(result3, "linkage_model")["trained_this_run"].value is True


def test_cluster_size_check_follows_the_runs_max_cluster_size(tmp_path, isolated_state):
    """person_clusters_size_sane judges the clusters by the max_cluster_size they were built with
    (the run's PersonClustersConfig), not by the default."""
    frames, _truth = linkage.generate(60, seed=5)
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as conn:
        linkage.load_clean_tables(conn, frames)
    specs, defs = _defs(frames)
    assets = [d for d in defs if not isinstance(d, dg.AssetChecksDefinition)]
    checks = [d for d in defs if isinstance(d, dg.AssetChecksDefinition)]
    result = dg.materialize(
        [*specs, *assets, *checks],
        resources={"warehouse": DuckDBResource(database=str(db)), "spark": SparkResource()},
        run_config={"ops": {"person_clusters": {"config": {"max_cluster_size": 1}}}},
        selection=dg.AssetSelection.assets(
            "person_records", "linkage_model", "match_pairs", "person_clusters"
        ),
        raise_on_error=False,
    )
    (check,) = [
        c
        for c in result.get_asset_check_evaluations()
        if c.check_name == "person_clusters_size_sane"
    ]
    assert check.metadata["limit"].value == 2
    largest = check.metadata["largest_cluster"].value
    assert check.passed is (largest <= 2)
