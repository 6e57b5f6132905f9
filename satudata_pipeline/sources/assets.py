"""One raw asset per declared source, generated from sources.yaml, with its freshness check beside it.

Adding a source is a YAML edit: the factory below turns every entry into an asset `raw_<name>` that
lands the file as delivered (all text) in `raw.<name>` plus provenance.
"""

import dagster as dg
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from satudata_pipeline.contract.sources import ContractError, Delivery, SourceSpec, check_files
from satudata_pipeline.sources.readers import PARSE_ERROR, ROW_NUMBER, file_sha256, read_source

# Sources whose staleness makes every verdict unsafe: a stale death or move list keeps paying the
# dead and the departed, so these block publishing.
BLOCKING_FRESHNESS_KINDS = {"death_registry", "migration_registry"}

KIND_LABELS = {
    "civil_registry": "civil registry (Dukcapil population)",
    "death_registry": "death registry (Dukcapil deaths)",
    "migration_registry": "migration registry (Dukcapil moves)",
    "welfare_registry": "welfare registry (DTKS / P3KE / DTSEN)",
    "program_roster": "program roster",
}


def raw_key(source: SourceSpec) -> dg.AssetKey:
    return dg.AssetKey(f"raw_{source.name}")


def _raw_asset(delivery: Delivery, source: SourceSpec) -> dg.AssetsDefinition:
    label = KIND_LABELS[source.kind] + (f" of {source.program}" if source.program else "")

    @dg.asset(
        key=raw_key(source),
        group_name="sources",
        kinds={"duckdb", source.file_format},
        description=(
            f"The {label} as delivered in `{source.path}` (extracted {source.extracted_at}), "
            "every cell kept as text, plus provenance (file, hash, extract date, row number)."
        ),
        tags={"satudata/source_kind": source.kind},
        metadata={"source": source.name, "kind": source.kind, "file": source.path},
    )
    def raw_asset(context: dg.AssetExecutionContext, warehouse: DuckDBResource) -> dg.MaterializeResult:
        # Re-check the whole delivery (headers only, cheap) so a broken file stops the run before
        # this source is written, even if the code location was loaded before the file changed.
        check_files(delivery)
        path = delivery.file_path(source)
        table = read_source(delivery, source)
        digest = file_sha256(path)
        n = table.num_rows
        table = (
            table.append_column("_source", pa.array([source.name] * n, pa.string()))
            .append_column("_file_name", pa.array([source.path] * n, pa.string()))
            .append_column("_file_hash", pa.array([digest] * n, pa.string()))
            .append_column("_extracted_at", pa.array([source.extracted_at] * n, pa.date32()))
        )
        unreadable = n - table.column(PARSE_ERROR).null_count
        with warehouse.get_connection() as conn:
            conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
            conn.register("_incoming", table)
            conn.execute(f'CREATE OR REPLACE TABLE raw."{source.name}" AS SELECT * FROM _incoming ORDER BY {ROW_NUMBER}')
            conn.unregister("_incoming")
        context.log.info(f"{source.name}: {n} rows landed ({unreadable} unreadable)")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": n,
                "unreadable_rows": unreadable,
                "file": source.path,
                "file_sha256": digest,
                "extracted_at": str(source.extracted_at),
                "days_old_at_snapshot": delivery.days_old(source),
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(name, "VARCHAR") for name in table.column_names]
                ),
                "table": f'raw."{source.name}"',
            },
            data_version=dg.DataVersion(digest),
        )

    return raw_asset


def _freshness_check(delivery: Delivery, source: SourceSpec) -> dg.AssetChecksDefinition:
    blocking = source.kind in BLOCKING_FRESHNESS_KINDS
    severity = dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN

    @dg.asset_check(
        asset=raw_key(source),
        name="extract_is_fresh",
        blocking=blocking,
        description=(
            f"The extract is fresh: snapshot date minus extract date is at most {source.freshness_days} days "
            f"(freshness_days in sources.yaml). Severity {severity.value}"
            + ("; blocking, because stale deaths or moves make every verdict unsafe." if blocking else ".")
        ),
    )
    def freshness() -> dg.AssetCheckResult:
        age = delivery.days_old(source)
        return dg.AssetCheckResult(
            passed=age <= source.freshness_days,
            severity=severity,
            description=None if age <= source.freshness_days else (
                f"{source.name} was extracted {age} days before the snapshot; limit {source.freshness_days}."
            ),
            metadata={
                "days_old": age,
                "freshness_days": source.freshness_days,
                "extracted_at": str(source.extracted_at),
                "snapshot_date": str(delivery.snapshot_date),
            },
        )

    return freshness


def build_source_assets(delivery: Delivery) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    assets = [_raw_asset(delivery, s) for s in delivery.sources]
    checks = [_freshness_check(delivery, s) for s in delivery.sources]
    return assets, checks


__all__ = ["build_source_assets", "raw_key", "ContractError", "BLOCKING_FRESHNESS_KINDS"]
