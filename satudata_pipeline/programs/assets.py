"""Dagster assets of the programs stage (group `programs`).

    beneficiary_review      main.beneficiary_review            (+ blocking checks)
    eligible_not_enrolled   programs.eligible_not_enrolled
    program_summary         programs.program_summary + reports/programs/run_summary.{html,md}
    program_exports         exports/<PROGRAM>/*.xlsx|*.csv

Re-running one program: the assets are *not* partitioned (a partitioned asset cannot share an
ordinary one-shot `materialize()` run with the unpartitioned upstream graph, and duplicate
enrollment across mutually exclusive programs needs every roster anyway). Instead
`beneficiary_review` and `program_exports` take a run config `programs: [KJP]`: the verdicts of every
roster are computed (cheap, vectorised) but only the listed programs' rows are deleted and
re-inserted, and only their export folders rewritten. Empty list (the default) = all programs.

The snapshot date comes from the delivery (`satudata_pipeline.contract.sources.load_delivery()`)
through `current_snapshot_date()`, which tests replace with monkeypatch; a run config
`snapshot_date: "2026-11-01"` overrides it.
"""


from datetime import date

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from satudata_pipeline import config as paths
from satudata_pipeline.contract.program_rules import ProgramRules, load_rules
from satudata_pipeline.programs import eligibility, exports, summary, verdicts

GROUP = "programs"
UPSTREAM_GOLDEN = dg.AssetKey("golden_person")
UPSTREAM_LINK = dg.AssetKey("person_source_link")

CHECK_DECEASED = "no_deceased_or_moved_keep"
CHECK_DOUBLE = "no_double_enrollment_keep"


def current_snapshot_date() -> date:
    """The delivery's snapshot date (sources.yaml). Replace with monkeypatch in tests."""
    from satudata_pipeline.contract.sources import load_delivery  # written by the sources stage

    value = load_delivery().snapshot_date
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def current_rules() -> ProgramRules:
    """The program rules of this run (the shipped rules.yaml)."""
    return load_rules()


class ProgramsConfig(dg.Config):
    programs: list[str] = Field(
        default_factory=list, description="program codes to recompute / re-export; empty = all programs"
    )
    snapshot_date: str | None = Field(
        default=None, description="override the delivery's snapshot date (YYYY-MM-DD); normally left empty"
    )


class SnapshotConfig(dg.Config):
    snapshot_date: str | None = Field(default=None, description="override the delivery's snapshot date")


def _snapshot(cfg: ProgramsConfig | SnapshotConfig) -> date:
    if cfg.snapshot_date:
        return date.fromisoformat(cfg.snapshot_date)
    return current_snapshot_date()


def build_program_assets() -> list:
    """The four assets of the programs stage (checks are declared on `beneficiary_review`)."""

    @dg.asset(
        name="beneficiary_review",
        group_name=GROUP,
        deps=[UPSTREAM_GOLDEN, UPSTREAM_LINK],
        description=(
            "One row per program roster row: verdict keep/remove/review, every reason code that applies "
            "with its evidence, and the monthly amount (main.beneficiary_review; see docs/verdict-rules.md)."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                CHECK_DECEASED,
                asset="beneficiary_review",
                blocking=True,
                description=(
                    "No roster row is kept whose golden person is recorded dead, or moved out of DKI, on or "
                    "before the snapshot date (re-derived from main.golden_person, independently of the reasons)."
                ),
            ),
            dg.AssetCheckSpec(
                CHECK_DOUBLE,
                asset="beneficiary_review",
                blocking=True,
                description=(
                    "No person has two keep rows in one program, nor keep rows in two mutually exclusive "
                    "programs (e.g. KJP and KJMU)."
                ),
            ),
        ],
        kinds={"duckdb", "sql"},
    )
    def beneficiary_review(
        context: dg.AssetExecutionContext, config: ProgramsConfig, warehouse: DuckDBResource
    ) -> dg.MaterializeResult:
        rules = current_rules()
        snapshot = _snapshot(config)
        programs = list(config.programs) or None
        with warehouse.get_connection() as conn:
            written = verdicts.build_beneficiary_review(conn, rules, snapshot, programs)
            stats = verdicts.review_stats(conn, programs)
            n_dead, dead_sample = verdicts.check_no_deceased_or_moved_keep(conn)
            n_double, double_sample = verdicts.check_no_double_enrollment_keep(conn, rules)
        context.log.info(f"beneficiary_review: {written} rows for {programs or 'all programs'}")
        checks = [
            dg.AssetCheckResult(
                check_name=CHECK_DECEASED,
                passed=n_dead == 0,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "violations": n_dead,
                    "sample_keys": dg.MetadataValue.json(dead_sample.astype(str).to_dict("records")),
                },
            ),
            dg.AssetCheckResult(
                check_name=CHECK_DOUBLE,
                passed=n_double == 0,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "violations": n_double,
                    "sample_keys": dg.MetadataValue.json(double_sample.astype(str).to_dict("records")),
                },
            ),
        ]
        return dg.MaterializeResult(
            metadata={
                "rows": written,
                "snapshot_date": snapshot.isoformat(),
                "programs_recomputed": ", ".join(programs) if programs else "all",
                "by_verdict": dg.MetadataValue.json(stats["by_verdict"]),
                "by_reason": dg.MetadataValue.json(stats["by_reason"]),
                "by_program": dg.MetadataValue.json(stats["by_program"]),
                "monthly_rupiah_remove": stats["monthly_rupiah_remove"],
                "monthly_rupiah_review": stats["monthly_rupiah_review"],
                "annual_rupiah_at_stake": 12 * (stats["monthly_rupiah_remove"] + stats["monthly_rupiah_review"]),
                "rules_file": str(rules.source_path),
            },
            check_results=checks,
        )

    @dg.asset(
        name="eligible_not_enrolled",
        group_name=GROUP,
        deps=["beneficiary_review", UPSTREAM_GOLDEN],
        description=(
            "Per program, people who meet its rules but hold no row in its roster (nor in an excluding "
            "program), ranked lowest desil first (programs.eligible_not_enrolled)."
        ),
        kinds={"duckdb", "sql"},
    )
    def eligible_not_enrolled(config: SnapshotConfig, warehouse: DuckDBResource) -> dg.MaterializeResult:
        rules = current_rules()
        snapshot = _snapshot(config)
        with warehouse.get_connection() as conn:
            n = eligibility.build_eligible_not_enrolled(conn, rules, snapshot)
            per_program = eligibility.eligible_stats(conn)
        return dg.MaterializeResult(
            metadata={
                "rows": n,
                "snapshot_date": snapshot.isoformat(),
                "by_program": dg.MetadataValue.json(per_program),
            }
        )

    @dg.asset(
        name="program_summary",
        group_name=GROUP,
        deps=["beneficiary_review", "eligible_not_enrolled"],
        description=(
            "Money at stake: rows, monthly and annual rupiah of remove and review rows per program, kota, "
            "kecamatan and reason (programs.program_summary), and the run summary report."
        ),
        kinds={"duckdb", "sql", "html"},
    )
    def program_summary(warehouse: DuckDBResource) -> dg.MaterializeResult:
        with warehouse.get_connection() as conn:
            n = summary.build_program_summary(conn)
            money = summary.money_at_stake(conn)
            eligible_counts = (
                eligibility.eligible_stats(conn)
                if verdicts.table_exists(conn, eligibility.ELIGIBLE_TABLE)
                else None
            )
            report = summary.write_run_summary(conn, paths.reports_dir() / "programs", eligible_counts)
        return dg.MaterializeResult(
            metadata={
                "rows": n,
                "money_at_stake": dg.MetadataValue.json(money),
                "annual_rupiah_at_stake": sum(
                    v for p in money.values() for k, v in p.items() if k.endswith("_annual_rupiah")
                ),
                "run_summary": dg.MetadataValue.path(str(report["html"])),
                "run_summary_url": dg.MetadataValue.url(report["html"].as_uri()),
                "summary": dg.MetadataValue.md(report["markdown"]),
            }
        )

    @dg.asset(
        name="program_exports",
        group_name=GROUP,
        deps=["beneficiary_review"],
        description=(
            "Per program, an xlsx (summary sheet + one sheet per kota) and one csv per kota for the program "
            "office: masked NIK, name, verdict, reasons, amount; no welfare attributes."
        ),
        kinds={"xlsx", "csv"},
    )
    def program_exports(config: ProgramsConfig, warehouse: DuckDBResource) -> dg.MaterializeResult:
        out_root = _exports_root()
        with warehouse.get_connection() as conn:
            written = exports.export_programs(conn, out_root, list(config.programs) or None)
        return dg.MaterializeResult(
            metadata={
                "exports_dir": dg.MetadataValue.path(str(out_root)),
                "programs": ", ".join(written) or "none",
                "files": sum(1 + len(v["csv"]) for v in written.values()),
                "rows_by_program": dg.MetadataValue.json({p: v["rows"] for p, v in written.items()}),
            }
        )

    return [beneficiary_review, eligible_not_enrolled, program_summary, program_exports]


def _exports_root():
    return paths.exports_dir()
