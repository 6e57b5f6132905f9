"""The `decisions` asset: decisions handed back, checked and stored before clustering uses them.

It sits in the link stage because link decisions constrain `person_clusters` and review decisions
are checked against the roster rows of `person_records`; it exists in every delivery, with or without
decision files, because stored decisions stay in force (docs/decisions.md).
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from satudata_pipeline.contract.sources import Delivery, check_files
from satudata_pipeline.decisions import intake
from satudata_pipeline.resources import ProgramRulesResource
from satudata_pipeline.sources.assets import raw_key
from satudata_pipeline.sources.completeness import COMPLETENESS_KEY

DECISIONS_KEY = dg.AssetKey("decisions")


def build_decision_assets(delivery: Delivery) -> list:
    sources = delivery.decision_sources

    @dg.asset(
        key=DECISIONS_KEY,
        group_name="link",
        deps=[*(raw_key(s) for s in sources), COMPLETENESS_KEY, "person_records"],
        kinds={"duckdb"},
        description=(
            "Decisions people handed back (review_decision, link_decision sources): each row checked "
            "and either stored in decisions.review_decisions / decisions.link_decisions (kept across "
            "deliveries) or set aside with a reason in decisions.set_aside; the decisions in force "
            "(latest decided_at; a tie with another outcome is a contradiction) in "
            "decisions.review_in_force and decisions.link_in_force (docs/decisions.md)."
        ),
    )
    def decisions(
        context: dg.AssetExecutionContext,
        warehouse: DuckDBResource,
        program_rules: ProgramRulesResource,
    ) -> dg.MaterializeResult:
        from satudata_pipeline.sources.readers import file_sha256

        check_files(delivery)  # a mapped column gone since the code location loaded: stop here
        hashes = {s.name: file_sha256(delivery.file_path(s)) for s in sources}
        with warehouse.get_connection() as conn:
            res = intake.take_in_decisions(conn, delivery, program_rules.load().codes(), hashes)
        context.log.info(
            f"decisions: {res.rows_read} rows read, {res.stored_review} review and {res.stored_link} link "
            f"decisions newly stored, {sum(res.set_aside.values())} set aside"
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": res.in_force_review + res.in_force_link,
                "decision_files": len(sources),
                "rows_read": res.rows_read,
                "review_decisions_stored_this_run": res.stored_review,
                "link_decisions_stored_this_run": res.stored_link,
                "review_decisions_in_force": res.in_force_review,
                "link_decisions_in_force": res.in_force_link,
                "set_aside": sum(res.set_aside.values()),
                "set_aside_by_reason": dg.MetadataValue.json(res.set_aside),
            }
        )

    @dg.asset_check(
        asset=DECISIONS_KEY,
        name="no_decision_set_aside",
        blocking=False,
        description=(
            "Warns when decision rows of this delivery were set aside (unknown program or record, a row no "
            "longer in the roster, a contradiction, a malformed value...), counted per reason; the office "
            "gets them back in exports/<PROGRAM>/keputusan_ditolak_<PROGRAM>.csv. The other decisions apply."
        ),
    )
    def no_decision_set_aside(warehouse: DuckDBResource) -> dg.AssetCheckResult:
        with warehouse.get_connection() as conn:
            rows = (
                conn.execute(
                    f"SELECT reason, count(*) FROM {intake.SET_ASIDE} GROUP BY 1 ORDER BY 1"
                ).fetchall()
                if intake._exists(conn, intake.SET_ASIDE)
                else []
            )
        by_reason = {r: int(n) for r, n in rows}
        return dg.AssetCheckResult(
            passed=not by_reason,
            severity=dg.AssetCheckSeverity.WARN,
            description=None
            if not by_reason
            else (
                f"{sum(by_reason.values())} decision row(s) set aside: "
                + ", ".join(f"{r} {n}" for r, n in by_reason.items())
            ),
            metadata={
                "set_aside": sum(by_reason.values()),
                "by_reason": dg.MetadataValue.json(by_reason),
            },
        )

    return [decisions, no_decision_set_aside]


def decision_defs(delivery: Delivery) -> dg.Definitions:
    """The decisions stage as Definitions (merged in satudata_pipeline/definitions.py)."""
    defs = build_decision_assets(delivery)
    return dg.Definitions(
        assets=[d for d in defs if not isinstance(d, dg.AssetChecksDefinition)],
        asset_checks=[d for d in defs if isinstance(d, dg.AssetChecksDefinition)],
    )
