"""Dagster assets of the programs stage (group `programs`).

    beneficiary_review      staging.beneficiary_review         (+ blocking checks)
    eligible_not_enrolled   staging.eligible_not_enrolled
    program_summary         staging.program_summary + reports/programs/run_summary.{html,md}
    published_lists         one transaction: staging.* -> main.golden_person, main.person_source_link,
                            main.beneficiary_review, programs.eligible_not_enrolled,
                            programs.program_summary, golden.person_id_* ; main.publication_log
    program_exports         exports/<PROGRAM>/*.xlsx|*.csv     (from the published tables)

Write, audit, publish (docs/reliability.md): the stages write staging tables, the blocking checks
audit them, and only `published_lists` touches the published tables, in one DuckDB transaction.
Exports are written after the publish, from the published tables, into a temporary folder that is
renamed into place per program.

Re-running one program: the assets are *not* partitioned (a partitioned asset cannot share an
ordinary one-shot `materialize()` run with the unpartitioned upstream graph, and duplicate
enrollment across mutually exclusive programs needs every roster anyway). Instead
`beneficiary_review` and `program_exports` take a run config `programs: [KJP]`: the verdicts of every
roster are computed (cheap, vectorised) but only the listed programs' rows are deleted and
re-inserted (in staging.beneficiary_review, then published), and only their export folders
rewritten. Empty list (the default) = all programs.

The snapshot date comes from the `delivery` resource (sources.yaml of the delivery the code location
loaded; its `snapshot_date` field overrides it for a whole run), the rules from the `program_rules`
resource (SATUDATA_PROGRAM_RULES, default the shipped rules.yaml): satudata_pipeline/resources.py.
"""

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from satudata_pipeline import config as paths
from satudata_pipeline.contract.published import table_metadata
from satudata_pipeline.decisions import report as decision_report
from satudata_pipeline.golden import publish
from satudata_pipeline.history import metadata as history_md
from satudata_pipeline.history import store as history
from satudata_pipeline.programs import eligibility, exports, summary, verdicts, worklists
from satudata_pipeline.resources import DeliveryResource, ProgramRulesResource

GROUP = "programs"
UPSTREAM_GOLDEN = dg.AssetKey("golden_person")
UPSTREAM_LINK = dg.AssetKey("person_source_link")

STAGING = publish.STAGING
STAGED_REVIEW = publish.staged("beneficiary_review")
STAGED_ELIGIBLE = publish.staged("eligible_not_enrolled")
STAGED_SUMMARY = publish.staged("program_summary")

CHECK_DECEASED = "no_deceased_or_moved_keep"
CHECK_DOUBLE = "no_double_enrollment_keep"


class ProgramsConfig(dg.Config):
    programs: list[str] = Field(
        default_factory=list,
        description="program codes to recompute / re-export; empty = all programs",
    )


def build_program_assets() -> list:
    """The four assets of the programs stage (checks are declared on `beneficiary_review`)."""

    @dg.asset(
        name="beneficiary_review",
        group_name=GROUP,
        deps=[UPSTREAM_GOLDEN, UPSTREAM_LINK],
        description=(
            "One row per program roster row: verdict keep/remove/review, every reason code that applies "
            "with its evidence, and the monthly amount (staging.beneficiary_review, published to "
            "main.beneficiary_review; see docs/verdict-rules.md)."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                CHECK_DECEASED,
                asset="beneficiary_review",
                blocking=True,
                description=(
                    "No roster row is kept whose golden person is recorded dead, or moved out of DKI, on or "
                    "before the snapshot date (re-derived from staging.golden_person, independently of the reasons)."
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
        context: dg.AssetExecutionContext,
        config: ProgramsConfig,
        warehouse: DuckDBResource,
        delivery: DeliveryResource,
        program_rules: ProgramRulesResource,
    ) -> dg.MaterializeResult:
        rules = program_rules.load()
        snapshot = delivery.snapshot()
        programs = list(config.programs) or None
        with warehouse.get_connection() as conn:
            # materialized on its own after a publication (the upstream stages not rerun): start
            # from the published tables
            publish.ensure_staging(
                conn, ("golden_person", "person_source_link", "beneficiary_review")
            )
            written = verdicts.build_beneficiary_review(
                conn, rules, snapshot, programs, schema=STAGING
            )
            stats = verdicts.review_stats(conn, programs, schema=STAGING)
            n_dead, dead_sample = verdicts.check_no_deceased_or_moved_keep(conn, schema=STAGING)
            n_double, double_sample = verdicts.check_no_double_enrollment_keep(
                conn, rules, schema=STAGING
            )
            schema_md = table_metadata(conn, STAGED_REVIEW, "main.beneficiary_review")
            waiting = worklists.backlog(conn, STAGED_REVIEW)
            decided = dict(
                conn.execute(
                    f"SELECT decision_status, count(*) FROM {STAGED_REVIEW} WHERE decision_status IS NOT NULL "
                    "GROUP BY 1"
                ).fetchall()
            )
            set_aside = (
                conn.execute("SELECT count(*) FROM decisions.set_aside").fetchall()[0][0]
                if verdicts.table_exists(conn, "decisions.set_aside")
                else 0
            )
            previous, changes = history.preview_changes(conn, STAGED_REVIEW)
        context.log.info(f"beneficiary_review: {written} rows for {programs or 'all programs'}")
        checks = [
            dg.AssetCheckResult(
                check_name=CHECK_DECEASED,
                passed=n_dead == 0,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "violations": n_dead,
                    "sample_keys": dg.MetadataValue.json(
                        dead_sample.astype(str).to_dict("records")
                    ),
                },
            ),
            dg.AssetCheckResult(
                check_name=CHECK_DOUBLE,
                passed=n_double == 0,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "violations": n_double,
                    "sample_keys": dg.MetadataValue.json(
                        double_sample.astype(str).to_dict("records")
                    ),
                },
            ),
        ]
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": written,
                "snapshot_date": snapshot.isoformat(),
                "determination_for": history_md.month_label(snapshot),
                "changes_since_last_determination": dg.MetadataValue.md(
                    history_md.changes_markdown(changes, previous)
                ),
                **{f"rows_{k}": v for k, v in history_md.change_totals(changes).items()},
                "programs_recomputed": ", ".join(programs) if programs else "all",
                "by_verdict": dg.MetadataValue.json(stats["by_verdict"]),
                "by_reason": dg.MetadataValue.json(stats["by_reason"]),
                "by_program": dg.MetadataValue.md(summary.verdicts_markdown(stats["by_program"])),
                "monthly_rupiah_remove": summary.rupiah(stats["monthly_rupiah_remove"]),
                "monthly_rupiah_review": summary.rupiah(stats["monthly_rupiah_review"]),
                "annual_rupiah_at_stake": summary.rupiah(
                    12 * (stats["monthly_rupiah_remove"] + stats["monthly_rupiah_review"])
                ),
                "rules_file": Path(str(rules.source_path)).name,
                # rows waiting for an officer's decision, and since which determination (docs/review-loop.md)
                "review_backlog": dg.MetadataValue.md(worklists.backlog_markdown(waiting)),
                "review_backlog_rows": sum(v["waiting"] for v in waiting.values()),
                # decisions handed back (docs/decisions.md)
                "decisions_applied": int(decided.get("applied", 0)),
                "decisions_reopened": int(decided.get("reopened", 0)),
                "decisions_contradicted": int(decided.get("contradicted", 0)),
                "decisions_set_aside": int(set_aside),
                **schema_md,
            },
            check_results=checks,
        )

    @dg.asset(
        name="eligible_not_enrolled",
        group_name=GROUP,
        deps=["beneficiary_review", UPSTREAM_GOLDEN],
        description=(
            "Per program, people who meet its rules but hold no row in its roster (nor in an excluding "
            "program), ranked lowest desil first (staging.eligible_not_enrolled, published to "
            "programs.eligible_not_enrolled)."
        ),
        kinds={"duckdb", "sql"},
    )
    def eligible_not_enrolled(
        warehouse: DuckDBResource, delivery: DeliveryResource, program_rules: ProgramRulesResource
    ) -> dg.MaterializeResult:
        rules = program_rules.load()
        snapshot = delivery.snapshot()
        with warehouse.get_connection() as conn:
            n = eligibility.build_eligible_not_enrolled(
                conn, rules, snapshot, schema=STAGING, target=STAGED_ELIGIBLE
            )
            per_program = eligibility.eligible_stats(conn, STAGED_ELIGIBLE)
            schema_md = table_metadata(conn, STAGED_ELIGIBLE, "programs.eligible_not_enrolled")
        return dg.MaterializeResult(
            metadata={
                **schema_md,
                "dagster/row_count": n,
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
            "kecamatan and reason (staging.program_summary, published to programs.program_summary), "
            "and the run summary report."
        ),
        kinds={"duckdb", "sql", "html"},
    )
    def program_summary(
        context: dg.AssetExecutionContext, warehouse: DuckDBResource
    ) -> dg.MaterializeResult:
        run_id = context.run.run_id
        with warehouse.get_connection() as conn:
            n = summary.build_program_summary(conn, review=STAGED_REVIEW, target=STAGED_SUMMARY)
            money = summary.money_at_stake(conn, STAGED_SUMMARY)
            eligible_counts = (
                eligibility.eligible_stats(conn, STAGED_ELIGIBLE)
                if verdicts.table_exists(conn, STAGED_ELIGIBLE)
                else None
            )
            report = summary.write_run_summary(
                conn,
                paths.run_reports_dir(run_id),
                eligible_counts,
                review=STAGED_REVIEW,
                run_id=run_id,
            )
            schema_md = table_metadata(conn, STAGED_SUMMARY, "programs.program_summary")
        pruned = paths.prune_run_reports(keep_run=run_id)
        if pruned:
            context.log.info(
                f"report retention ({paths.report_retention()} runs): removed {len(pruned)} "
                "older run report folder(s)"
            )
        return dg.MaterializeResult(
            metadata={
                **schema_md,
                "dagster/row_count": n,
                "money_at_stake": dg.MetadataValue.md(summary.money_markdown(money)),
                "annual_rupiah_at_stake": summary.rupiah(
                    sum(
                        v
                        for p in money.values()
                        for k, v in p.items()
                        if k.endswith("_annual_rupiah")
                    )
                ),
                # the page itself is a file in the run's report folder (no machine path in the UI);
                # its tables are shown here
                "run_summary": dg.MetadataValue.path(paths.shown_path(report["html"])),
                **(
                    {"run_summary_url": dg.MetadataValue.url(url)}
                    if (url := paths.report_url(report["html"]))
                    else {}
                ),
                "summary": dg.MetadataValue.md(report["markdown"]),
            }
        )

    @dg.asset(
        name="published_lists",
        group_name=GROUP,
        deps=[
            UPSTREAM_GOLDEN,
            UPSTREAM_LINK,
            "beneficiary_review",
            "eligible_not_enrolled",
            "program_summary",
        ],
        description=(
            "Publishes the audited staging tables in ONE DuckDB transaction: main.golden_person, "
            "main.person_source_link, main.beneficiary_review, programs.eligible_not_enrolled, "
            "programs.program_summary and the stable-id registry (golden.person_id_*), with a row in "
            "main.publication_log, and appends the determination to the history (history.*, "
            "main.determination_changes; docs/monthly.md). Runs only when every blocking check upstream passed; a failed or killed "
            "run leaves the previous publication intact (docs/reliability.md)."
        ),
        kinds={"duckdb"},
    )
    def published_lists(
        context: dg.AssetExecutionContext, warehouse: DuckDBResource
    ) -> dg.MaterializeResult:
        with warehouse.get_connection() as conn:
            counts = publish.publish(conn, context.run.run_id)
            latest = history.latest_info(conn)
        context.log.info("published: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        context.log.info(
            history_md.determination_label(latest["snapshot_date"], latest["determination_id"])
        )
        return dg.MaterializeResult(
            metadata={
                "publication_run_id": context.run.run_id,
                "determination": history_md.determination_label(
                    latest["snapshot_date"], latest["determination_id"]
                ),
                "determination_for": history_md.month_label(latest["snapshot_date"]),
                "determination_id": latest["determination_id"],
                "delivery_fingerprint": latest["delivery_fingerprint"] or "",
                "changes_since_last_determination": dg.MetadataValue.md(
                    history_md.changes_markdown(
                        latest["changes"], latest["previous_determination_id"]
                    )
                ),
                **{f"rows_{k}": v for k, v in history_md.change_totals(latest["changes"]).items()},
                # not a table of its own: the rows it published, per table
                "rows_by_table": dg.MetadataValue.md(
                    "| table | rows |\n|---|---:|\n"
                    + "\n".join(f"| {t} | {n:,} |".replace(",", ".") for t, n in counts.items())
                ),
            }
        )

    @dg.asset(
        name="program_exports",
        group_name=GROUP,
        deps=["published_lists"],
        description=(
            "Per program, for the program office in Indonesian: an xlsx (Ringkasan cover, Keterangan legend of "
            "the reason codes, one sheet per kota) and one csv per kota (`;`, UTF-8 with BOM): masked NIK, "
            "name, keputusan (tetap/hapus/tinjau), alasan, amount; no welfare attributes; no cell can run as "
            "a formula. Written from the "
            "published main.beneficiary_review, into a temporary folder renamed into place per program; "
            "folders of programs no longer published move to _arsip/<date>-<PROGRAM>/, and _manifest.json "
            "names the publication the exports follow. With them, the office worklist <PROGRAM>_keputusan.xlsx "
            "(review and remove rows to decide, returned as a review_decision source) and the link review "
            "tinjauan_tautan.xlsx (docs/review-loop.md)."
        ),
        kinds={"xlsx", "csv"},
    )
    def program_exports(
        context: dg.AssetExecutionContext, config: ProgramsConfig, warehouse: DuckDBResource
    ) -> dg.MaterializeResult:
        out_root = _exports_root()
        with warehouse.get_connection() as conn:
            result = export_atomically(
                conn, out_root, list(config.programs) or None, context.run.run_id
            )
        written = result.written
        for program, target in result.retired.items():
            context.log.warning(
                f"program {program} is no longer published: its export folder was moved to {target}"
            )
        return dg.MaterializeResult(
            metadata={
                "exports_dir": dg.MetadataValue.path(paths.shown_path(out_root)),
                "publication_run_id": result.manifest["publication_run_id"] or "",
                "retired_to_archive": ", ".join(sorted(result.retired)) or "none",
                "programs": ", ".join(written) or "none",
                "files": sum(v["files"] for v in written.values()),
                "eligible_not_enrolled_exported": dg.MetadataValue.md(
                    "| program | calon layak (baris) |\n|---|---:|\n"
                    + "\n".join(
                        f"| {p} | {v['candidates']:,} |".replace(",", ".")
                        for p, v in written.items()
                    )
                ),
                "rows_by_program": dg.MetadataValue.json(
                    {p: v["rows"] for p, v in written.items()}
                ),
                "worklist_rows_by_program": dg.MetadataValue.json(
                    {p: v.get("worklist_rows", 0) for p, v in written.items()}
                ),
                "link_review_pairs": dg.MetadataValue.json(
                    {k: result.link_review[k] for k in ("pairs", "join", "split")}
                    if result.link_review
                    else {}
                ),
                "review_backlog": dg.MetadataValue.md(
                    worklists.backlog_markdown(
                        {p: v["backlog"] for p, v in written.items() if "backlog" in v}
                    )
                ),
                # decision rows set aside, reported back per program (keputusan_ditolak_<PROGRAM>.csv)
                "decisions_set_aside_reported": dg.MetadataValue.json(result.decisions_set_aside),
            }
        )

    return [
        beneficiary_review,
        eligible_not_enrolled,
        program_summary,
        published_lists,
        program_exports,
    ]


def _exports_root():
    return paths.exports_dir()


INCOMING_PREFIX = ".incoming-"
OLD_PREFIX = ".old-"


@dataclass
class ExportResult:
    written: dict[str, dict]  # {program: {"xlsx", "csv", "rows", "kota", "candidates", "files"}}
    retired: dict[str, Path]  # {program: its folder in the archive}
    manifest: dict
    decisions_set_aside: dict = field(default_factory=dict)  # {program or root file: rows reported}
    link_review: dict | None = None  # {"xlsx", "mapping", "pairs", "join", "split"} or None


def export_atomically(
    conn, out_root: Path, programs: list[str] | None, run_id: str
) -> ExportResult:
    """Write the exports into `<exports>/.incoming-<run>/` and move each program folder into place.

    A program office never sees a half-written folder: a folder is either the previous complete
    export or the new complete one (the swap is two renames on the same file system; a crash between
    them leaves `.old-<PROGRAM>`, which the next export removes). Leftovers of killed runs are
    cleaned up first. Then the folder of every program that is no longer published is moved to
    `_arsip/<date>-<PROGRAM>/`, and `_manifest.json` records the publication (run_id of
    main.publication_log) the exports now follow."""
    out_root.mkdir(parents=True, exist_ok=True)
    for leftover in out_root.iterdir():
        if leftover.is_dir() and leftover.name.startswith((INCOMING_PREFIX, OLD_PREFIX)):
            shutil.rmtree(leftover, ignore_errors=True)
    incoming = out_root / f"{INCOMING_PREFIX}{run_id[:8]}-{os.getpid()}"
    written = exports.export_programs(conn, incoming, programs)
    # the office worklists (review and remove rows to decide) and their review_decision mapping
    for program, info in worklists.write_worklists(
        conn, incoming, list(written), exports.latest_publication(conn)
    ).items():
        written[program] = {
            **written[program],
            "worklist_rows": info["rows"],
            "backlog": info["backlog"],
            "files": written[program]["files"] + 2,
        }
    # decisions handed back that were set aside, back to the office that sent them (docs/decisions.md)
    set_aside = decision_report.write_set_aside_reports(conn, incoming, out_root, list(written))
    for program in written:
        final, old = out_root / program, out_root / f"{OLD_PREFIX}{program}"
        if final.exists():
            final.rename(old)
        (incoming / program).rename(final)
        shutil.rmtree(old, ignore_errors=True)
        written[program] = {
            **written[program],
            "xlsx": final / written[program]["xlsx"].name,
            "csv": [final / c.name for c in written[program]["csv"]],
        }
    shutil.rmtree(incoming, ignore_errors=True)
    link_review = write_link_review(conn, out_root)
    retired = exports.retire_unpublished(out_root, exports.published_programs(conn))
    manifest = exports.write_manifest(out_root, exports.latest_publication(conn), written)
    return ExportResult(written, retired, manifest, set_aside, link_review=link_review)


def write_link_review(conn, out_root: Path) -> dict | None:
    """The link review workbook (link/review_pairs.py) when the warehouse holds a linkage."""
    from satudata_pipeline.link import review_pairs

    have = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'link' AND "
        "table_name IN ('match_pairs', 'person_clusters', 'linkage_model', 'person_records')"
    ).fetchall()[0][0]
    if have < 4:
        return None
    snapshot = conn.execute(
        f"SELECT CAST(max(snapshot_date) AS VARCHAR) FROM {verdicts.REVIEW_TABLE}"
    ).fetchall()[0][0]
    return review_pairs.write_link_review(conn, out_root, snapshot)


def program_defs() -> dg.Definitions:
    """The programs stage as Definitions (merged in satudata_pipeline/definitions.py)."""
    defs = build_program_assets()
    return dg.Definitions(
        assets=[d for d in defs if not isinstance(d, dg.AssetChecksDefinition)],
        asset_checks=[d for d in defs if isinstance(d, dg.AssetChecksDefinition)],
    )
