"""Dagster assets of the golden stage: golden_person and person_source_link.

Both write *staging* tables (`staging.golden_person`, `staging.person_source_link`, ids assigned on a
staging copy of the id registry); their blocking checks audit those, and the `published_lists` asset
publishes them to `main` together with the program lists (`satudata_pipeline.golden.publish`).
"""

import dagster as dg
from dagster import AssetExecutionContext
from dagster_duckdb import DuckDBResource

from satudata_pipeline.contract.published import table_metadata
from satudata_pipeline.golden import publish, stable_ids, survivorship
from satudata_pipeline.progress import Progress

GROUP = "golden"
GOLDEN = publish.staged("golden_person")
LINK = publish.staged("person_source_link")
IDS = f"{publish.STAGING}.person_ids"


def build_golden_assets() -> list:
    """golden_person, person_source_link and their checks."""

    @dg.asset(
        name="golden_person",
        group_name=GROUP,
        deps=["person_clusters", "person_records", "match_pairs"],
        kinds={"duckdb"},
        description="One record per real person (staging.golden_person, published to main.golden_person) "
        "with a stable person_id: "
        "identity from the civil registry where present, latest address, death and move-out "
        "status, welfare attributes from the latest DTKS/P3KE record, last verification date.",
    )
    def golden_person(context: AssetExecutionContext, warehouse: DuckDBResource):
        progress = Progress(context.log, "golden_person")
        with warehouse.get_connection() as conn:
            # ids are assigned on a staging copy of the published id state: the registry only
            # advances when this run is published
            publish.stage_id_state(conn)
            changes = stable_ids.assign_person_ids(conn, context.run.run_id, schema=publish.STAGING)
            progress(
                "stable person ids assigned",
                **{k: v for k, v in changes.items() if isinstance(v, int)},
            )
            n = survivorship.build_golden_person(conn, target=GOLDEN, ids_table=IDS)
            progress("surviving identity, life status, domicile and welfare chosen", persons=n)
            stats = conn.execute(f"""
                SELECT count(*) FILTER (WHERE NOT is_alive),
                       count(*) FILTER (WHERE NOT tinggal_di_dki),
                       count(*) FILTER (WHERE in_civil_registry),
                       count(*) FILTER (WHERE in_welfare_registry),
                       count(*) FILTER (WHERE list_contains(conflict_flags, 'multiple_valid_nik')),
                       count(*) FILTER (WHERE list_contains(conflict_flags, 'multiple_birth_dates'))
                FROM {GOLDEN}
            """).fetchall()[0]
            schema_md = table_metadata(conn, GOLDEN, "main.golden_person")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": n,
                "deceased": stats[0],
                "moved_out_of_dki": stats[1],
                "in_civil_registry": stats[2],
                "in_welfare_registry": stats[3],
                "conflict_multiple_valid_nik": stats[4],
                "conflict_multiple_birth_dates": stats[5],
                "person_id_changes": dg.MetadataValue.json(changes),
                **schema_md,
            }
        )

    @dg.asset(
        name="person_source_link",
        group_name=GROUP,
        deps=["golden_person", "person_clusters", "match_pairs", "quarantine"],
        kinds={"duckdb"},
        description="Which golden person each delivered row belongs to (staging.person_source_link, "
        "published to main.person_source_link), "
        "and how it was placed: exact NIK, probabilistic, singleton, or quarantined.",
    )
    def person_source_link(context: AssetExecutionContext, warehouse: DuckDBResource):
        with warehouse.get_connection() as conn:
            n = survivorship.build_person_source_link(conn, target=LINK, ids_table=IDS)
            by_method = conn.execute(
                f"SELECT link_method, count(*) FROM {LINK} GROUP BY 1 ORDER BY 1"
            ).fetchall()
            schema_md = table_metadata(conn, LINK, "main.person_source_link")
        md = {"dagster/row_count": n, **schema_md}
        md.update({f"rows_{m}": c for m, c in by_method})
        return dg.MaterializeResult(metadata=md)

    @dg.asset_check(
        asset="golden_person",
        blocking=True,
        description="person_id is unique and every golden person has records.",
    )
    def golden_person_unique(warehouse: DuckDBResource):
        with warehouse.get_connection() as conn:
            dup_id, empty = conn.execute(f"""
                SELECT count(*) - count(DISTINCT person_id),
                       count(*) FILTER (WHERE coalesce(n_records, 0) < 1)
                FROM {GOLDEN}
            """).fetchall()[0]
        return dg.AssetCheckResult(
            passed=dup_id == 0 and empty == 0,
            metadata={"duplicate_person_ids": dup_id, "persons_without_records": empty},
        )

    @dg.asset_check(
        asset="golden_person",
        blocking=False,
        description="Informational: golden persons sharing the same surviving valid "
        "NIK (possible missed links, or a borrowed NIK).",
    )
    def golden_person_duplicate_valid_nik(warehouse: DuckDBResource):
        with warehouse.get_connection() as conn:
            n = conn.execute(f"""
                SELECT count(*) FROM (SELECT g.nik FROM {GOLDEN} g
                    JOIN link.person_records r ON r.nik = g.nik AND r.nik_valid
                    GROUP BY g.nik HAVING count(DISTINCT g.person_id) > 1)
            """).fetchall()[0][0]
            total = conn.execute(f"SELECT count(*) FROM {GOLDEN}").fetchall()[0][0]
        share = n / total if total else 0.0
        return dg.AssetCheckResult(
            passed=share <= 0.01,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"niks_in_several_persons": n, "share_of_persons": round(share, 5)},
        )

    @dg.asset_check(
        asset="person_source_link",
        blocking=True,
        description="Conservation: one row per clean row and per quarantined row, "
        "none lost or duplicated; person_id NULL only for quarantined rows.",
    )
    def person_source_link_conservation(warehouse: DuckDBResource):
        with warehouse.get_connection() as conn:
            has_q = bool(
                conn.execute(
                    "SELECT count(*) FROM information_schema.tables "
                    "WHERE table_schema='clean' AND table_name='quarantine'"
                ).fetchall()[0][0]
            )
            expected = conn.execute("SELECT count(*) FROM link.person_records").fetchall()[0][0]
            if has_q:
                expected += conn.execute("SELECT count(*) FROM clean.quarantine").fetchall()[0][0]
            actual, null_ids, unknown_ids = conn.execute(f"""
                SELECT count(*),
                       count(*) FILTER (WHERE person_id IS NULL AND link_method <> 'quarantined'),
                       count(*) FILTER (WHERE person_id IS NOT NULL AND person_id NOT IN
                                        (SELECT person_id FROM {GOLDEN}))
                FROM {LINK}
            """).fetchall()[0]
        return dg.AssetCheckResult(
            passed=actual == expected and null_ids == 0 and unknown_ids == 0,
            metadata={
                "expected_rows": expected,
                "rows": actual,
                "unresolved_non_quarantined": null_ids,
                "person_id_not_in_golden_person": unknown_ids,
            },
        )

    return [
        golden_person,
        person_source_link,
        golden_person_unique,
        golden_person_duplicate_valid_nik,
        person_source_link_conservation,
    ]


def golden_defs() -> dg.Definitions:
    """The golden stage as Definitions (merged in satudata_pipeline/definitions.py)."""
    defs = build_golden_assets()
    return dg.Definitions(
        assets=[d for d in defs if not isinstance(d, dg.AssetChecksDefinition)],
        asset_checks=[d for d in defs if isinstance(d, dg.AssetChecksDefinition)],
    )
