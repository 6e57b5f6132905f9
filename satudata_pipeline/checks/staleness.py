"""Record-level staleness: how many persons, and how many paid recipients, nobody has verified lately.

A source can be freshly extracted and still full of rows nobody has looked at for years (DTKS rows of
people who died or moved). These checks count, at the snapshot date, persons whose latest
verification over all sources is older than the rules' window, per source and per program, and warn
when the share passes a limit (the `run_settings` resource's max_stale_share, SATUDATA_MAX_STALE_SHARE).
The roster rows themselves get `stale_record` in beneficiary_review.

The snapshot date, the rules' window and the limit are read from the run's resources when the check
runs; the descriptions name the window of the rules loaded with the code location.
"""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource

from satudata_pipeline.contract.program_rules import load_rules
from satudata_pipeline.resources import (
    DEFAULT_MAX_STALE_SHARE,
    DeliveryResource,
    ProgramRulesResource,
    RunSettingsResource,
)
from satudata_pipeline.warehouse import all_rows, one_row


def build_staleness_checks(
    golden_table: str = "staging.golden_person",
    review_table: str = "staging.beneficiary_review",
    link_table: str = "staging.person_source_link",
) -> list[dg.AssetChecksDefinition]:
    # the assets write staging tables and `published_lists` publishes them (docs/reliability.md):
    # checks on an asset audit what that asset just wrote, i.e. the staging tables
    months = load_rules().common.staleness_months  # for the descriptions only
    default = f"{DEFAULT_MAX_STALE_SHARE:.0%}"

    @dg.asset_check(
        asset="golden_person",
        additional_deps=["person_source_link"],
        name="stale_persons",
        description=(
            f"Persons whose latest verification over all sources is more than {months} months before the "
            f"snapshot, counted per source; warns when more than SATUDATA_MAX_STALE_SHARE (default "
            f"{default}) of all persons are stale."
        ),
    )
    def stale_persons(
        warehouse: DuckDBResource,
        delivery: DeliveryResource,
        program_rules: ProgramRulesResource,
        run_settings: RunSettingsResource,
    ) -> dg.AssetCheckResult:
        limit = run_settings.stale_share_limit()
        snapshot = delivery.snapshot().isoformat()
        months = program_rules.load().common.staleness_months
        stale_sql = "(last_verified IS NULL OR last_verified < CAST($snapshot AS DATE) - to_months(CAST($months AS INTEGER)))"
        params = {"snapshot": snapshot, "months": months}
        with warehouse.get_connection() as conn:
            total, stale = one_row(
                conn,
                f"SELECT count(*), count(*) FILTER (WHERE {stale_sql}) FROM {golden_table}",
                params,
            )
            per_source = all_rows(
                conn,
                f"""SELECT l.source, count(DISTINCT g.person_id), count(DISTINCT g.person_id) FILTER (WHERE {stale_sql})
                FROM {golden_table} g JOIN {link_table} l USING (person_id)
                GROUP BY l.source ORDER BY l.source""",
                params,
            )
        share = stale / total if total else 0.0
        return dg.AssetCheckResult(
            passed=share <= limit,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "persons": total,
                "stale_persons": stale,
                "stale_share": round(share, 4),
                "limit": limit,
                "stale_by_source": dg.MetadataValue.json(
                    {s: {"persons": int(n), "stale": int(k)} for s, n, k in per_source}
                ),
            },
        )

    @dg.asset_check(
        asset="beneficiary_review",
        name="stale_recipients",
        description=(
            f"Roster rows whose person was not verified within {months} months (reason stale_record), per "
            f"program; warns when a program's share passes SATUDATA_MAX_STALE_SHARE (default {default})."
        ),
    )
    def stale_recipients(
        warehouse: DuckDBResource, run_settings: RunSettingsResource
    ) -> dg.AssetCheckResult:
        limit = run_settings.stale_share_limit()
        with warehouse.get_connection() as conn:
            rows = conn.execute(
                f"""SELECT program, count(*), count(*) FILTER (WHERE list_contains(reasons, 'stale_record'))
                FROM {review_table} GROUP BY program ORDER BY program"""
            ).fetchall()
        per_program = {
            p: {"rows": int(n), "stale": int(k), "share": round(k / n, 4) if n else 0.0}
            for p, n, k in rows
        }
        over = sorted(p for p, v in per_program.items() if v["share"] > limit)
        return dg.AssetCheckResult(
            passed=not over,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"stale share above {limit:.0%} in: {', '.join(over)}" if over else None,
            metadata={"by_program": dg.MetadataValue.json(per_program), "limit": limit},
        )

    return [stale_persons, stale_recipients]


def staleness_defs() -> dg.Definitions:
    """The freshness checks of the published records as Definitions."""
    return dg.Definitions(asset_checks=build_staleness_checks())
