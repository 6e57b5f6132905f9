"""Dagster assets of the link stage: person_records, linkage_model, match_pairs, person_clusters."""

import contextlib
import json
import time

import dagster as dg
from dagster import AssetExecutionContext
from dagster_duckdb import DuckDBResource
from pydantic import Field

from satudata_pipeline import config as paths
from satudata_pipeline.contract.sources import Delivery
from satudata_pipeline.link import clusters as clusters_mod
from satudata_pipeline.link import incremental, matching, model, reports, spark_engine
from satudata_pipeline.progress import Progress
from satudata_pipeline.resources import RunSettingsResource, SparkResource
from satudata_pipeline.warehouse import one_row, scalar

GROUP = "link"


class LinkageModelConfig(dg.Config):
    retrain: bool = Field(
        default=False,
        description="Train the Splink model again even if a saved model exists "
        "(also: the run_settings resource's retrain, environment variable SATUDATA_RETRAIN=1).",
    )


class MatchPairsConfig(dg.Config):
    match_threshold: float = Field(
        default=0.5,
        description="Splink pairs with match_probability at or above this are kept in "
        "link.match_pairs (clustering applies its own, higher threshold).",
    )
    deterministic_name_jaro_winkler: float = Field(
        default=0.9,
        description="Deterministic pass: same valid NIK + same birth date + names at least this "
        "similar (or the same words) link without the model.",
    )
    report_sample_size: int = Field(
        default=50, description="Pairs nearest the cluster threshold shown in the HTML reports."
    )
    report_threshold: float = Field(
        default=0.95, description="Probability around which report sample pairs are chosen."
    )
    full_relink: bool = Field(
        default=False,
        description="Score every candidate pair again instead of only new and changed records "
        "(also: the run_settings resource's full_relink, environment variable SATUDATA_FULL_RELINK=1; "
        "`satudata run --full` sets this option). A full "
        "relink also runs by itself when the model, its settings, the cleaning rules or the "
        "blocking changed, or when the warehouse holds no previous linkage state.",
    )


class PersonClustersConfig(dg.Config):
    cluster_threshold: float = Field(
        default=0.95,
        description="Records are the same person when joined by a chain of links at or above "
        "this match probability (deterministic NIK links always count).",
    )
    max_cluster_size: int = Field(
        default=30,
        description="Clusters larger than this are re-clustered with stronger links only.",
    )


def _md_table(rows: list[dict]) -> str:
    if not rows:
        return "(empty)"
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join("" if r[c] is None else str(r[c]) for c in cols) + " |")
    return "\n".join(out)


def _current_model(conn) -> tuple[dict, dict]:
    rows = conn.execute(
        "SELECT model_json, meta_json FROM link.linkage_model ORDER BY loaded_at DESC LIMIT 1"
    ).fetchall()
    if not rows:
        raise dg.Failure("link.linkage_model is empty: materialize linkage_model first")
    return json.loads(rows[0][0]), json.loads(rows[0][1])


def build_link_assets(
    clean_asset_keys: list[dg.AssetKey], source_names: list[str], cluster_deps: tuple = ()
) -> list:
    """Assets + checks of the link stage for the given clean assets / source names; `cluster_deps`
    adds upstream assets of person_clusters (the `decisions` asset, whose link decisions it obeys)."""
    source_names = list(source_names)

    @dg.asset(
        name="person_records",
        group_name=GROUP,
        deps=list(clean_asset_keys),
        kinds={"duckdb"},
        description="Every cleaned row of every source in one table (link.person_records), "
        "with the fields used to recognise the same person: name words, birth date parts, NIK.",
    )
    def person_records(context: AssetExecutionContext, warehouse: DuckDBResource):
        progress = Progress(context.log, "person_records")
        with warehouse.get_connection() as conn:
            n = matching.build_person_records(conn, source_names)
            progress("records of every person-bearing source in one table", records=n)
            by_source = conn.execute(
                "SELECT source, count(*), count(*) FILTER (WHERE nik_valid) "
                "FROM link.person_records GROUP BY 1 ORDER BY 1"
            ).fetchall()
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": n,
                "records_by_source": dg.MetadataValue.md(
                    _md_table(
                        [{"source": s, "records": c, "with_valid_nik": v} for s, c, v in by_source]
                    )
                ),
                "share_with_valid_nik": round(sum(v for _, _, v in by_source) / n, 4) if n else 0.0,
            }
        )

    @dg.asset(
        name="linkage_model",
        group_name=GROUP,
        deps=["person_records"],
        kinds={"splink", "duckdb"},
        description="The probabilistic matching model (Splink): how much agreement on name, birth "
        "date, NIK, sex, family card, address and kelurahan says two records are one person. "
        "Trained once and reused; retrain with the `retrain` option or SATUDATA_RETRAIN=1.",
    )
    def linkage_model(
        context: AssetExecutionContext,
        config: LinkageModelConfig,
        warehouse: DuckDBResource,
        run_settings: RunSettingsResource,
        spark: SparkResource,
    ):
        from splink import Linker

        path = model.latest_model_path()
        trained = False
        engine = spark.engine_name()
        with warehouse.get_connection() as conn:
            if config.retrain or run_settings.retrain_every_run() or path is None:
                t0 = time.time()
                if engine == "spark":
                    with spark_engine.spark_linkage(conn, spark) as on_spark:
                        summary = model.train_model(conn, spark=on_spark)
                else:
                    summary = model.train_model(conn)
                path = model.save_model(summary, run_id=context.run.run_id)
                trained = True
                context.log.info(
                    f"trained Splink model on {engine} in {time.time() - t0:.1f}s -> "
                    f"{paths.shown_path(path)}"
                )
            settings, meta = model.load_model(path)
            conn.execute("CREATE SCHEMA IF NOT EXISTS link")
            conn.execute("""CREATE TABLE IF NOT EXISTS link.linkage_model (
                model_path VARCHAR, fingerprint VARCHAR, trained_at VARCHAR,
                loaded_at TIMESTAMP, model_json VARCHAR, meta_json VARCHAR)""")
            conn.execute("DELETE FROM link.linkage_model")
            conn.execute(
                "INSERT INTO link.linkage_model VALUES (?, ?, ?, now(), ?, ?)",
                [
                    str(path),
                    meta.get("fingerprint"),
                    meta.get("trained_at"),
                    json.dumps(settings),
                    json.dumps(meta),
                ],
            )
            out_dir = reports.run_report_dir(context.run.run_id)
            with matching.splink_session(conn) as db_api:
                sdf = matching.register_person_records(db_api, limit=10)  # charts need no data
                linker = Linker(sdf, settings, log_level=None)
                charts = reports.write_model_charts(linker, out_dir)
        params = model.parameters_table(settings)
        md = {
            "model_path": dg.MetadataValue.path(paths.shown_path(path)),
            "trained_this_run": trained,
            "linkage_engine": engine,
            "fingerprint": meta.get("fingerprint"),
            "trained_at": meta.get("trained_at"),
            "probability_two_random_records_match": float(
                settings.get("probability_two_random_records_match") or 0
            ),
            "m_u_parameters": dg.MetadataValue.md(_md_table(params)),
            "training_pairs": dg.MetadataValue.json(meta.get("training_pairs", {})),
            # what this delivery could not train, and the levels given a floor (no data values)
            "not_trained": dg.MetadataValue.md(_md_table(meta.get("not_trained", []))),
            "floored_levels": dg.MetadataValue.md(_md_table(meta.get("floored_levels", []))),
            "levels_floored": len(meta.get("floored_levels", [])),
            "comparisons_not_trained": len(meta.get("not_trained", [])),
        }
        md.update(reports.report_metadata(charts))
        return dg.MaterializeResult(metadata=md)

    @dg.asset(
        name="match_pairs",
        group_name=GROUP,
        deps=["linkage_model", "person_records"],
        kinds={"splink", "duckdb"},
        description="Pairs of records judged to be the same person: conclusive NIK matches "
        "(same valid NIK, same birth date, agreeing name) and the model's scored pairs.",
    )
    def match_pairs(
        context: AssetExecutionContext,
        config: MatchPairsConfig,
        warehouse: DuckDBResource,
        run_settings: RunSettingsResource,
        spark: SparkResource,
    ):
        progress = Progress(context.log, "match_pairs")
        engine = spark.engine_name()
        with warehouse.get_connection() as conn, contextlib.ExitStack() as stack:
            settings, _meta = _current_model(conn)
            out_dir = reports.run_report_dir(context.run.run_id)
            charts: dict = {}
            extra_rules, sparse = matching.sparse_id_blocking(conn)
            on_spark = (
                stack.enter_context(spark_engine.spark_linkage(conn, spark))
                if engine == "spark"
                else None
            )
            with matching.splink_session(conn) as db_api:
                progress(f"blocking rules chosen (engine: {engine})", extra_rules=len(extra_rules))
                plan, scored = incremental.score(
                    db_api,
                    settings,
                    config.match_threshold,
                    config.deterministic_name_jaro_winkler,
                    extra_rules,
                    config.full_relink or run_settings.full_relink_every_run(),
                    spark=on_spark,
                )
                progress(
                    f"Splink scored the candidate pairs ({plan.mode}: {plan.reason})",
                    scored=scored.pairs_scored,
                    carried=scored.pairs_carried,
                    seconds=round(scored.seconds, 1),
                )
                result = matching.write_match_pairs(
                    conn,
                    scored.predictions_table,
                    config.match_threshold,
                    config.deterministic_name_jaro_winkler,
                )
                progress(
                    "pairs written",
                    exact_nik=result.n_deterministic,
                    probabilistic=result.n_probabilistic,
                )
                state = incremental.write_state(conn, plan, context.run.run_id)
                progress("linkage state kept for the next delivery", **state)
                # the histogram's SQL reads its input by Splink's templated name
                df_pred = db_api.table_to_splink_dataframe(
                    "__splink__df_predict", scored.predictions_table
                )
                charts.update(
                    reports.write_pair_reports(
                        scored.linker,
                        db_api,
                        scored.predictions_table,
                        config.report_threshold,
                        out_dir,
                        config.report_sample_size,
                    )
                )
                charts.update(reports.write_histogram(scored.linker, df_pred, out_dir))
                progress("review charts written", charts=len(charts))
            hist = conn.execute("""
                SELECT floor(match_weight)::INTEGER AS w, count(*) FROM link.match_pairs
                WHERE match_weight IS NOT NULL GROUP BY 1 ORDER BY 1
            """).fetchall()
            n = scalar(conn, "SELECT count(*) FROM link.match_pairs")
        md = {
            "dagster/row_count": n,
            "pairs_exact_nik": result.n_deterministic,
            "pairs_probabilistic": result.n_probabilistic,
            "pairs_vetoed_names_and_birth_dates_disagree": result.n_vetoed,
            # a delivery without NIK: the extra blocking rules used / skipped (pair counts only)
            "sparse_id_blocking": dg.MetadataValue.json(sparse),
            # incremental linkage (link/incremental.py): which mode ran, why, and how much was reused
            "linkage_engine": engine,
            "linkage_mode": plan.mode,
            "linkage_mode_reason": plan.reason,
            **{k: v for k, v in plan.counts.items()},
            "scoring_seconds": round(scored.seconds, 2),
            "scoring_seconds_by_part": dg.MetadataValue.json(scored.phases),
            "match_weight_histogram": dg.MetadataValue.md(
                _md_table([{"match_weight_from": w, "pairs": c} for w, c in hist])
            ),
            "reports_dir": dg.MetadataValue.path(paths.shown_path(out_dir)),
        }
        md.update(reports.report_metadata(charts))
        return dg.MaterializeResult(metadata=md)

    @dg.asset(
        name="person_clusters",
        group_name=GROUP,
        deps=["match_pairs", *cluster_deps],
        kinds={"duckdb"},
        description="Groups of records that are one person (link.person_clusters): records "
        "joined by links above the cluster threshold, oversized groups split again; records left "
        "without a population-register row join their sole candidate resident, if there is "
        "exactly one (link.assignments). Link decisions handed back are constraints: same person "
        "joins, not the same person splits at the weakest links (docs/decisions.md).",
    )
    def person_clusters(
        context: AssetExecutionContext, config: PersonClustersConfig, warehouse: DuckDBResource
    ):
        progress = Progress(context.log, "person_clusters")
        with warehouse.get_connection() as conn:
            res = clusters_mod.build_person_clusters(
                conn, config.cluster_threshold, config.max_cluster_size
            )
        progress(
            "clusters formed",
            records=res.n_records,
            persons=res.n_clusters,
            reclustered=res.reclustered,
            assigned_to_sole_candidate=res.assigned,
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": res.n_records,
                "clusters": res.n_clusters,
                "largest_cluster": res.max_size,
                "oversized_clusters_reclustered": res.reclustered,
                "records_assigned_to_sole_candidate": res.assigned,
                # of those: roster / welfare rows placed with one of two residents of their home
                "records_placed_by_dominant_link": res.placed_by_dominant_link,
                "records_placed_by_only_link": res.placed_by_only_link,
                # death / move records whose tie identifies the person (only these can remove)
                "event_records_conclusive": res.events_conclusive,
                "event_records_not_conclusive": res.events_inconclusive,
                "death_records_left_as_possible_deaths": res.possible_deaths,
                "link_decisions_joined": res.decisions_joined,
                "link_decisions_split": res.decisions_split,
                "link_decisions_in_conflict": res.decisions_conflicting,
                "cluster_size_distribution": dg.MetadataValue.md(
                    _md_table(
                        [
                            {"records_per_person": k, "persons": v}
                            for k, v in res.size_distribution.items()
                        ]
                    )
                ),
                "cluster_threshold": config.cluster_threshold,
                "max_cluster_size": config.max_cluster_size,
            }
        )

    @dg.asset_check(
        asset="person_clusters",
        blocking=True,
        description="Every person record is in exactly one cluster.",
    )
    def person_clusters_cover_every_record(warehouse: DuckDBResource):
        with warehouse.get_connection() as conn:
            missing, dup = one_row(
                conn,
                """
                SELECT (SELECT count(*) FROM link.person_records r
                        ANTI JOIN link.person_clusters c USING (unique_id)),
                       (SELECT count(*) FROM (SELECT unique_id FROM link.person_clusters
                                              GROUP BY 1 HAVING count(*) > 1))
            """,
            )
        return dg.AssetCheckResult(
            passed=missing == 0 and dup == 0,
            metadata={"records_missing": missing, "records_in_several_clusters": dup},
        )

    @dg.asset_check(
        asset="person_clusters",
        blocking=True,
        description="No giant cluster: the largest cluster stays within a sane size "
        "(a family card or a repeated NIK must not glue many people together).",
    )
    def person_clusters_size_sane(
        context: dg.AssetCheckExecutionContext, warehouse: DuckDBResource
    ):
        # the limit follows the max_cluster_size the clusters were built with (this run's config,
        # recorded in their materialization), not the default
        event = context.instance.get_latest_materialization_event(dg.AssetKey("person_clusters"))
        used = (
            event.asset_materialization.metadata.get("max_cluster_size")
            if event is not None and event.asset_materialization is not None
            else None
        )
        max_size = used.value if used is not None else PersonClustersConfig().max_cluster_size
        limit = int(max_size) * 2
        with warehouse.get_connection() as conn:
            largest = scalar(
                conn,
                """
                SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM link.person_clusters
                                                 GROUP BY cluster_id)
            """,
            )
        return dg.AssetCheckResult(
            passed=largest <= limit, metadata={"largest_cluster": largest, "limit": limit}
        )

    @dg.asset_check(
        asset="linkage_model",
        blocking=False,
        description="Warns when the model has comparisons training could not estimate "
        "or levels it never observed (given a bounded floor weight instead): the "
        "links still run, but those weights are priors, not estimates.",
    )
    def linkage_model_fully_trained(warehouse: DuckDBResource):
        with warehouse.get_connection() as conn:
            _settings, meta = _current_model(conn)
        not_trained = meta.get("not_trained", [])
        floored = meta.get("floored_levels", [])
        return dg.AssetCheckResult(
            passed=not not_trained and not floored,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "comparisons_not_trained": len(not_trained),
                "levels_floored": len(floored),
                "not_trained": dg.MetadataValue.md(_md_table(not_trained)),
                "floored_levels": dg.MetadataValue.md(_md_table(floored)),
            },
        )

    @dg.asset_check(
        asset="match_pairs",
        blocking=False,
        description="Each pair appears once, with unique_id_l < unique_id_r.",
    )
    def match_pairs_well_formed(warehouse: DuckDBResource):
        with warehouse.get_connection() as conn:
            bad, dup = one_row(
                conn,
                """
                SELECT count(*) FILTER (WHERE unique_id_l >= unique_id_r),
                       count(*) - count(DISTINCT (unique_id_l, unique_id_r))
                FROM link.match_pairs
            """,
            )
        return dg.AssetCheckResult(
            passed=bad == 0 and dup == 0, metadata={"misordered": bad, "duplicates": dup}
        )

    return [
        person_records,
        linkage_model,
        match_pairs,
        person_clusters,
        person_clusters_cover_every_record,
        person_clusters_size_sane,
        linkage_model_fully_trained,
        match_pairs_well_formed,
    ]


def link_defs(delivery: Delivery) -> dg.Definitions:
    """The link stage over the delivery's person sources as Definitions; person_clusters waits for the
    `decisions` asset (link decisions handed back are constraints of the clustering)."""
    from satudata_pipeline.clean.assets import clean_key

    persons = delivery.person_sources
    defs = build_link_assets(
        [clean_key(s) for s in persons], [s.name for s in persons], cluster_deps=("decisions",)
    )
    return dg.Definitions(
        assets=[d for d in defs if not isinstance(d, dg.AssetChecksDefinition)],
        asset_checks=[d for d in defs if isinstance(d, dg.AssetChecksDefinition)],
    )
