"""The Spark engine (SATUDATA_ENGINE=spark, docs/spark.md): the model's SQL rewritten for Spark, and
the link stage on local Spark giving the DuckDB engine's pairs, clusters and person ids.

The first tests need only sqlglot. The others run Splink on a local Spark session (one for the
module, two shuffle partitions) and are skipped when pyspark or a Java runtime is missing;
.ci/run installs both (./scripts/setup.sh --spark)."""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import pytest
import sqlglot
from fixtures import linkage
from fixtures.resources import run_resources
from fixtures.spark import needs_spark

from satudata_pipeline import config
from satudata_pipeline.golden.assets import build_golden_assets
from satudata_pipeline.link import model
from satudata_pipeline.link import splink_settings as ss
from satudata_pipeline.link.assets import build_link_assets
from satudata_pipeline.link.spark_engine import spark_settings, to_spark_sql, with_duckdb_sql
from satudata_pipeline.resources import SparkResource

DUCKDB_ONLY = (
    "list_intersect",
    "regexp_full_match",
    "jaro_winkler_similarity",
    "jarowinkler_similarity",
    "regexp_split_to_array",
    "list_bool_or",
    "list_transform",
    "list_filter",
    "len(",
    '"',
)


def _spec() -> dict:
    return ss.settings_creator().create_settings_dict("duckdb")


def test_every_condition_of_the_model_is_rewritten_for_spark():
    spec = _spec()
    converted = spark_settings(spec)
    conditions = [
        lv["sql_condition"] for c in converted["comparisons"] for lv in c["comparison_levels"]
    ]
    rules = [r["blocking_rule"] for r in converted["blocking_rules_to_generate_predictions"]]
    assert len(conditions) == sum(len(c["comparison_levels"]) for c in spec["comparisons"])
    for sql in conditions + rules:
        if sql == "ELSE":
            continue
        lowered = sql.lower()
        assert not [f for f in DUCKDB_ONLY if f in lowered], sql
        sqlglot.parse_one(sql, read="spark")  # valid Spark SQL
    joined = " ".join(conditions).lower()
    for spark_name in ("size(", "array_intersect(", "jaro_winkler(", "exists(", "rlike"):
        assert spark_name in joined


def test_rewritten_functions():
    assert (
        to_spark_sql("len(list_intersect(a_l, a_r)) >= 1") == "SIZE(ARRAY_INTERSECT(a_l, a_r)) >= 1"
    )
    assert to_spark_sql("length(nama_l) = 3") == "LENGTH(nama_l) = 3"  # strings keep length
    assert to_spark_sql("regexp_full_match(w, '[0-9]+')") == "w RLIKE '^(?:[0-9]+)$'"
    assert (
        to_spark_sql("jaro_winkler_similarity(a_l, a_r) >= 0.9") == "JARO_WINKLER(a_l, a_r) >= 0.9"
    )
    assert (
        to_spark_sql("list_bool_or(list_transform(ys, lambda y: y = 'A'))")
        == "EXISTS(ys, y -> y = 'A')"
    )
    assert to_spark_sql('l."nik" = r."nik"') == "l.`nik` = r.`nik`"
    assert to_spark_sql("ELSE") == "ELSE"


def test_a_model_trained_on_spark_is_saved_in_duckdb_sql():
    spec = _spec()
    trained = spark_settings(spec)
    trained["comparisons"][0]["comparison_levels"][1]["m_probability"] = 0.42
    back = with_duckdb_sql(trained, spec)
    assert back["comparisons"][0]["comparison_levels"][1]["m_probability"] == 0.42
    level = back["comparisons"][0]["comparison_levels"][1]
    original = spec["comparisons"][0]["comparison_levels"][1]
    if "m_probability" in original:
        level["m_probability"] = original["m_probability"]
    else:
        del level["m_probability"]
    assert back.pop("sql_dialect") == "duckdb"
    assert json.dumps(back, sort_keys=True) == json.dumps(spec, sort_keys=True)
    broken = spark_settings(spec)
    broken["comparisons"][0]["comparison_levels"].pop()
    with pytest.raises(RuntimeError, match="another number of levels"):
        with_duckdb_sql(broken, spec)


def test_engine_setting(monkeypatch):
    monkeypatch.delenv("SATUDATA_ENGINE", raising=False)
    assert config.engine() == "duckdb"
    assert SparkResource().engine_name() == "duckdb"
    monkeypatch.setenv("SATUDATA_ENGINE", "Spark")
    assert SparkResource().engine_name() == "spark"
    assert SparkResource(engine="duckdb").engine_name() == "duckdb"  # the resource field wins
    monkeypatch.setenv("SATUDATA_ENGINE", "oracle")
    with pytest.raises(ValueError, match="SATUDATA_ENGINE must be one of duckdb, spark"):
        config.engine()
    with pytest.raises(ValueError, match="engine must be one of"):
        SparkResource(engine="presto").engine_name()
    monkeypatch.setenv("SATUDATA_SPARK_MASTER", "spark://h:7077")
    assert SparkResource().master_url() == "spark://h:7077"
    assert SparkResource(master="sc://h:15002").is_connect()


# --------------------------------------------------------------------------------------------
# On local Spark


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    """One local Spark session for the module (starting a JVM is the slow part)."""
    resource = SparkResource(
        engine="spark",
        master="local[2]",
        shuffle_partitions=2,
        spark_dir=str(tmp_path_factory.mktemp("spark")),
    )
    resource.session()
    yield resource
    resource.session().stop()


def _materialize(db, sources, spark_resource, run_config=None):
    clean_keys = [dg.AssetKey(f"clean_{s}") for s in sources]
    defs = build_link_assets(clean_keys, list(sources)) + build_golden_assets()
    assets = [d for d in defs if not isinstance(d, dg.AssetChecksDefinition)]
    checks = [d for d in defs if isinstance(d, dg.AssetChecksDefinition)]
    # the module's session is shared: Dagster's teardown would stop it after each run
    resources = {**run_resources(db), "spark": spark_resource}
    result = dg.materialize(
        [*[dg.AssetSpec(k) for k in clean_keys], *assets, *checks],
        resources=resources,
        run_config=run_config,
        selection=dg.AssetSelection.assets(*[a.key for a in assets]),
    )
    assert result.success
    return result


def _meta(result, key):
    return result.asset_materializations_for_node(key)[-1].metadata


def _linkage(db) -> dict:
    with duckdb.connect(str(db), read_only=True) as conn:
        return {
            "pairs": conn.execute(
                "SELECT unique_id_l, unique_id_r, link_method, round(match_probability, 9), "
                "round(match_probability_without_nik, 9) FROM link.match_pairs ORDER BY 1, 2"
            ).fetchall(),
            "clusters": conn.execute(
                "SELECT unique_id, cluster_id FROM link.person_clusters ORDER BY 1"
            ).fetchall(),
            "persons": conn.execute(
                "SELECT unique_id, person_id FROM staging.person_source_link ORDER BY 1"
            ).fetchall(),
        }


class _KeepSession(SparkResource):
    """The module's Spark resource without Dagster's teardown (which stops the session)."""

    def teardown_after_execution(self, context) -> None:
        return None


@needs_spark
def test_link_stage_on_spark_equals_duckdb(spark, tmp_path, isolated_state):
    frames, _truth = linkage.generate(150, seed=11)
    duck_db, spark_db = tmp_path / "duck.duckdb", tmp_path / "spark.duckdb"
    for db in (duck_db, spark_db):
        with duckdb.connect(str(db)) as conn:
            linkage.load_clean_tables(conn, frames)
    # the run's resource finds the module's session (getOrCreate) and leaves it running
    keep = _KeepSession(
        engine="spark", master="local[2]", shuffle_partitions=2, spark_dir=spark.spark_dir
    )

    # the DuckDB engine trains the model; the Spark engine scores every pair with the same model
    duck = _materialize(duck_db, list(frames), SparkResource(engine="duckdb"))
    assert _meta(duck, "match_pairs")["linkage_engine"].value == "duckdb"
    on_spark = _materialize(
        spark_db,
        list(frames),
        keep,
        run_config={"ops": {"match_pairs": {"config": {"full_relink": True}}}},
    )
    pairs_meta = _meta(on_spark, "match_pairs")
    assert pairs_meta["linkage_engine"].value == "spark"
    assert _meta(on_spark, "linkage_model")["trained_this_run"].value is False
    assert pairs_meta["pairs_scored"].value == _meta(duck, "match_pairs")["pairs_scored"].value
    expected, got = _linkage(duck_db), _linkage(spark_db)
    assert got["pairs"] and got["pairs"] == expected["pairs"]
    assert got["clusters"] == expected["clusters"]
    assert got["persons"] == expected["persons"]
    # the exchange folder (personal data) is gone after the step
    assert not any((spark.scratch_dir() / "exchange").iterdir())

    # train on Spark: the same specification and SQL, u from Spark's own random sample
    duck_model, _ = model.load_model(model.latest_model_path())
    retrained = _materialize(
        spark_db,
        list(frames),
        keep,
        run_config={
            "ops": {
                "linkage_model": {"config": {"retrain": True}},
                "match_pairs": {"config": {"full_relink": True}},
            }
        },
    )
    model_meta = _meta(retrained, "linkage_model")
    assert model_meta["trained_this_run"].value is True
    assert model_meta["linkage_engine"].value == "spark"
    spark_model, meta = model.load_model(model.latest_model_path())
    assert meta["fingerprint"] == ss.settings_fingerprint()

    def conditions(settings):
        return [
            [lv["sql_condition"] for lv in c["comparison_levels"]] for c in settings["comparisons"]
        ]

    assert conditions(spark_model) == conditions(duck_model)  # saved in DuckDB SQL
    assert (
        spark_model["blocking_rules_to_generate_predictions"]
        == duck_model["blocking_rules_to_generate_predictions"]
    )
    spark_prior = spark_model["probability_two_random_records_match"]
    duck_prior = duck_model["probability_two_random_records_match"]
    assert abs(spark_prior - duck_prior) / duck_prior < 0.05
    # the trained model links these records as the DuckDB-trained one does
    relinked = _linkage(spark_db)
    assert relinked["clusters"] == expected["clusters"]
