"""Clean assets (one per source), the quarantine, and the checks that prove no row was lost."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from satudata_pipeline.clean.chunks import clean_source, quarantine_table
from satudata_pipeline.contract.schema import (
    CLEAN_COLUMNS,
    DATE_FIELDS,
    QUALITY_FLAGS,
    column_type,
)
from satudata_pipeline.contract.sources import Delivery, SourceSpec
from satudata_pipeline.history import intake as history_intake
from satudata_pipeline.history import versions as history_versions
from satudata_pipeline.resources import DeliveryResource
from satudata_pipeline.sources.assets import raw_key
from satudata_pipeline.sources.completeness import COMPLETENESS_KEY
from satudata_pipeline.warehouse import all_rows, one_row

QUARANTINE_KEY = dg.AssetKey("quarantine")


def clean_key(source: SourceSpec) -> dg.AssetKey:
    return dg.AssetKey(f"clean_{source.name}")


def _clean_asset(loaded: Delivery, source: SourceSpec) -> dg.AssetsDefinition:
    """The clean asset of one source of the delivery the code location loaded (`loaded`)."""

    @dg.asset(
        key=clean_key(source),
        # the completeness gate first: nothing is cleaned (so nothing linked or published) from an
        # incomplete delivery
        deps=[raw_key(source), COMPLETENESS_KEY],
        group_name="clean",
        kinds={"duckdb", "pandas"},
        description=(
            f"`{source.name}` in the one canonical person schema: NIK checked (structure, region, "
            "birth date, sex), names without titles and old spelling, dates parsed, addresses and "
            "region codes standardised, a quality flag per problem. Unusable rows go to quarantine."
        ),
        tags={"satudata/source_kind": source.kind},
    )
    def clean_asset(
        context: dg.AssetExecutionContext,
        warehouse: DuckDBResource,
        delivery: DeliveryResource,
    ) -> dg.MaterializeResult:
        table = f'clean."{source.name}"'
        with warehouse.get_connection() as conn:
            # dates after the snapshot are impossible: the run's snapshot date (delivery resource)
            work = clean_source(conn, source, delivery.snapshot())
            raw_n, clean_n, quarantined_n, nik_valid = one_row(
                conn,
                f'SELECT (SELECT count(*) FROM raw."{source.name}"), (SELECT count(*) FROM {table}), '
                f"(SELECT count(*) FROM {quarantine_table(source.name)}), "
                f"(SELECT count(*) FILTER (WHERE nik_valid) FROM {table})",
            )
            reasons = dict(
                all_rows(
                    conn,
                    f"SELECT reason, count(*) FROM {quarantine_table(source.name)} "
                    "GROUP BY reason ORDER BY reason",
                )
            )
            flag_counts = dict(
                conn.execute(
                    f"SELECT f, count(*) FROM (SELECT unnest(quality_flags) AS f FROM {table}) "
                    "GROUP BY f ORDER BY f"
                ).fetchall()
            )
            # section 5: this delivery's rows against the last published one, before anything is linked
            history_versions.stage_delivery_file(
                conn,
                source.name,
                source.path,
                history_versions.raw_file_hash(conn, source.name),
                history_versions.sha256_file(loaded.yaml_path),
            )
            changes = history_intake.detect_source_changes(conn, source.name)
        context.log.info(history_intake.describe(source.name, changes))
        context.log.info(f"{source.name}: {clean_n} clean rows, {quarantined_n} quarantined")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": clean_n,
                "raw_rows": raw_n,
                "quarantined_rows": quarantined_n,
                "quarantine_reasons": dg.MetadataValue.json(
                    {k: int(v) for k, v in reasons.items()}
                ),
                "quality_flags": dg.MetadataValue.json({k: int(v) for k, v in flag_counts.items()}),
                "nik_valid_share": round(nik_valid / clean_n, 4) if clean_n else 0.0,
                # raw rows unchanged since the last clean run keep their clean row (clean/chunks.py)
                "raw_rows_cleaned": work["rows_cleaned"],
                "raw_rows_reused": work["rows_reused"],
                "changes_since_last_publication": history_intake.describe(source.name, changes),
                **{f"rows_{k}": changes[k] for k in history_intake.CHANGES},
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(c, column_type(c)) for c in CLEAN_COLUMNS]
                    + [dg.TableColumn(*QUALITY_FLAGS)]
                ),
                "table": f'clean."{source.name}"',
            }
        )

    return clean_asset


def _conservation_check(source: SourceSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=clean_key(source),
        name="no_row_lost",
        blocking=True,
        description="Conservation: every delivered row is either cleaned or quarantined (raw = clean + quarantine).",
    )
    def no_row_lost(warehouse: DuckDBResource) -> dg.AssetCheckResult:
        with warehouse.get_connection() as conn:
            raw_n, clean_n, q_n, q_ids = one_row(
                conn,
                f'SELECT (SELECT count(*) FROM raw."{source.name}"), (SELECT count(*) FROM clean."{source.name}"), '
                f"(SELECT count(*) FROM {quarantine_table(source.name)}), "
                f'(SELECT count(*) FROM (SELECT row_number FROM (SELECT row_number FROM clean."{source.name}" UNION ALL '
                f"SELECT row_number FROM {quarantine_table(source.name)}) GROUP BY row_number HAVING count(*) > 1))",
            )
        return dg.AssetCheckResult(
            passed=raw_n == clean_n + q_n and not q_ids,
            metadata={"raw_rows": raw_n, "clean_rows": clean_n, "quarantined_rows": q_n},
        )

    return no_row_lost


def unparseable_columns(conn, source: SourceSpec, max_share: float, min_rows: int) -> list[dict]:
    """Per mapped date or amount column: non-empty values, how many failed to parse, the share, the
    first row number that failed, and whether that blocks (share above `max_share` and at least
    `min_rows` rows: a handful of typos in a small source is not a wrong format)."""
    table = f'clean."{source.name}"'
    fields = [
        (f, f"date_unparseable:{f}", [f"date_impossible:{f}"])
        for f in sorted(DATE_FIELDS)
        if f in source.columns
    ]
    if "nominal_bulanan" in source.columns:
        fields.append(("nominal_bulanan", "value_invalid:nominal_bulanan", []))
    out = []
    for name, flag, other_flags in fields:
        flagged = "list_contains(quality_flags, $flag)"
        present = f"{name} IS NOT NULL OR {flagged} OR list_has_any(quality_flags, CAST($others AS VARCHAR[]))"
        total, bad, first = one_row(
            conn,
            f"SELECT count(*) FILTER (WHERE {present}), count(*) FILTER (WHERE {flagged}), "
            f"min(row_number) FILTER (WHERE {flagged}) FROM {table}",
            {"flag": flag, "others": other_flags},
        )
        share = bad / total if total else 0.0
        out.append(
            {
                "field": name,
                "column": source.columns[name],
                "values": int(total),
                "unparseable": int(bad),
                "share": round(share, 4),
                "first_row": first,
                "blocks": bad >= min_rows and share > max_share,
            }
        )
    return out


def _parse_share_check(source: SourceSpec) -> dg.AssetChecksDefinition:
    from satudata_pipeline.contract.intake import load_intake_rules

    limits = load_intake_rules().values

    @dg.asset_check(
        asset=clean_key(source),
        name="mapped_values_parse",
        blocking=True,
        description=(
            f"Blocking: at most {limits.max_unparseable_share:.0%} of the non-empty values of each mapped date or "
            "amount column fail to parse (intake_rules.yaml); more means the column's date_format or mapping "
            "is wrong, and e.g. a death registry whose dates cannot be read decides nothing."
        ),
    )
    def mapped_values_parse(warehouse: DuckDBResource) -> dg.AssetCheckResult:
        with warehouse.get_connection() as conn:
            columns = unparseable_columns(
                conn, source, limits.max_unparseable_share, limits.min_unparseable_rows
            )
        blocking = [c for c in columns if c["blocks"]]
        fmt = f"date_format '{source.date_format or '%Y-%m-%d'}'"
        lines = [
            f"{source.name} ({source.path}), column '{c['column']}' ({c['field']}): {c['unparseable']} of "
            f"{c['values']} non-empty values ({c['share']:.0%}) cannot be read"
            + (f" as {fmt}" if c["field"] in DATE_FIELDS else " as an amount")
            + f", the first at row {c['first_row']}; the limit is {limits.max_unparseable_share:.0%}. "
            "Correct the column's date_format or mapping in sources.yaml, or the file."
            for c in blocking
        ]
        return dg.AssetCheckResult(
            passed=not blocking,
            severity=dg.AssetCheckSeverity.ERROR,
            description="\n".join(lines) if lines else None,
            metadata={
                "columns": dg.MetadataValue.json(
                    {
                        c["field"]: {
                            k: c[k]
                            for k in ("column", "values", "unparseable", "share", "first_row")
                        }
                        for c in columns
                    }
                )
            },
        )

    return mapped_values_parse


def _nik_validity_check(source: SourceSpec, min_share: float) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=clean_key(source),
        name="nik_validity_share",
        description=(
            f"At least {min_share:.0%} of the rows carry a structurally valid NIK; fewer means the extract "
            "or its column mapping is probably broken (WARN)."
        ),
    )
    def nik_validity(warehouse: DuckDBResource) -> dg.AssetCheckResult:
        with warehouse.get_connection() as conn:
            total, valid = one_row(
                conn,
                f'SELECT count(*), count(*) FILTER (WHERE nik_valid) FROM clean."{source.name}"',
            )
        share = valid / total if total else 0.0
        return dg.AssetCheckResult(
            passed=share >= min_share,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"rows": total, "valid_nik": valid, "share": round(share, 4)},
        )

    return nik_validity


def _quarantine_asset(delivery: Delivery) -> dg.AssetsDefinition:
    @dg.asset(
        key=QUARANTINE_KEY,
        deps=[clean_key(s) for s in delivery.person_sources],
        group_name="clean",
        kinds={"duckdb"},
        description=(
            "Every delivered row that could not be used (no name, no id, a repeated id, an unreadable "
            "line), from all sources, with the reason and the raw values, for the provider to fix."
        ),
    )
    def quarantine(warehouse: DuckDBResource) -> dg.MaterializeResult:
        union = " UNION ALL ".join(
            f"SELECT * FROM {quarantine_table(s.name)}" for s in delivery.person_sources
        )
        with warehouse.get_connection() as conn:
            conn.execute(
                f"CREATE OR REPLACE TABLE clean.quarantine AS {union} ORDER BY source, row_number"
            )
            counts = conn.execute(
                "SELECT source, reason, count(*) FROM clean.quarantine GROUP BY ALL ORDER BY ALL"
            ).fetchall()
        total = sum(c for _, _, c in counts)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": total,
                "by_source_and_reason": dg.MetadataValue.json(
                    {f"{s}/{r}": int(c) for s, r, c in counts}
                ),
                "table": "clean.quarantine",
            }
        )

    return quarantine


def build_clean_assets(delivery: Delivery, min_nik_share: float = 0.5) -> tuple[list, list]:
    # decisions handed back are cleaned and checked by the decisions stage (satudata_pipeline/decisions)
    persons = delivery.person_sources
    assets = [_clean_asset(delivery, s) for s in persons] + [_quarantine_asset(delivery)]
    checks = [_conservation_check(s) for s in persons]
    checks += [_parse_share_check(s) for s in persons]
    checks += [_nik_validity_check(s, min_nik_share) for s in persons]
    return assets, checks


def clean_defs(delivery: Delivery) -> dg.Definitions:
    """The clean stage as Definitions (merged in satudata_pipeline/definitions.py)."""
    assets, checks = build_clean_assets(delivery)
    return dg.Definitions(assets=assets, asset_checks=checks)
