"""One raw asset per declared source, generated from sources.yaml, with its freshness check beside it.

Adding a source is a YAML edit: the factory below turns every entry into an asset `raw_<name>` that
lands the file as delivered (all text) in `raw.<name>` plus provenance.
"""

import dagster as dg
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from satudata_pipeline.contract.sources import ContractError, Delivery, SourceSpec, check_files
from satudata_pipeline.sources.completeness import FILE_STATS, build_completeness_gate
from satudata_pipeline.sources.readers import (
    PARSE_ERROR,
    ROW_NUMBER,
    SourceBatches,
    file_sha256,
)
from satudata_pipeline.warehouse import transaction

# Sources whose staleness makes every verdict unsafe: a stale death or move list keeps paying the
# dead and the departed, so these block publishing.
BLOCKING_FRESHNESS_KINDS = {"death_registry", "migration_registry"}

KIND_LABELS = {
    "civil_registry": "civil registry (Dukcapil population)",
    "death_registry": "death registry (Dukcapil deaths)",
    "migration_registry": "migration registry (Dukcapil moves)",
    "welfare_registry": "welfare registry (DTKS / P3KE / DTSEN)",
    "program_roster": "program roster",
    "review_decision": "review decisions handed back (keep / remove on roster rows)",
    "link_decision": "link decisions handed back (same person or not, on two records)",
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
    def raw_asset(
        context: dg.AssetExecutionContext, warehouse: DuckDBResource
    ) -> dg.MaterializeResult:
        # Re-check the whole delivery (headers only, cheap) so a broken file stops the run before
        # this source is written, even if the code location was loaded before the file changed.
        check_files(delivery)
        path = delivery.file_path(source)
        digest = file_sha256(path)
        batches = SourceBatches(delivery, source)
        with warehouse.get_connection() as conn:
            conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
            # batch by batch into the table, all or nothing: a file that turns out unreadable
            # half way leaves the previous table
            n = unreadable = 0
            names: list[str] = []
            with transaction(conn):
                for i, batch in enumerate(batches):
                    table = _with_provenance(batch, source, digest)
                    names = table.column_names
                    n += table.num_rows
                    unreadable += table.num_rows - table.column(PARSE_ERROR).null_count
                    into = (
                        f'CREATE OR REPLACE TABLE raw."{source.name}" AS'
                        if i == 0
                        else f'INSERT INTO raw."{source.name}"'
                    )
                    conn.register("_incoming", table)
                    try:
                        conn.execute(f"{into} SELECT * FROM _incoming ORDER BY {ROW_NUMBER}")
                    finally:
                        conn.unregister("_incoming")
            stats = batches.stats
            if stats is None:  # set when the last batch has been read
                raise RuntimeError(f"{source.name}: the file was not read to its end")
            record_file_stats(conn, source, digest, stats)
        context.log.info(f"{source.name}: {n} rows landed ({unreadable} unreadable)")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": n,
                "unreadable_rows": unreadable,
                "physical_records": stats.physical_records
                if stats.physical_records is not None
                else n,
                "multiline_records": stats.multiline_rows,
                # CSV: "arrow" (a plain file), "python", or "arrow+python" (plain up to a point)
                **({"csv_reader": batches.reader} if batches.reader else {}),
                "file": source.path,
                "file_sha256": digest,
                "extracted_at": str(source.extracted_at),
                "days_old_at_snapshot": delivery.days_old(source),
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(name, "VARCHAR") for name in names]
                ),
                "table": f'raw."{source.name}"',
            },
            data_version=dg.DataVersion(digest),
        )

    return raw_asset


def _with_provenance(batch: pa.Table, source: SourceSpec, digest: str) -> pa.Table:
    """A batch of the file with the columns that say where it came from."""
    n = batch.num_rows
    return (
        batch.append_column("_source", pa.array([source.name] * n, pa.string()))
        .append_column("_file_name", pa.array([source.path] * n, pa.string()))
        .append_column("_file_hash", pa.array([digest] * n, pa.string()))
        .append_column("_extracted_at", pa.array([source.extracted_at] * n, pa.date32()))
    )


def _freshness_check(delivery: Delivery, source: SourceSpec) -> dg.AssetChecksDefinition:
    blocking = source.kind in BLOCKING_FRESHNESS_KINDS
    severity = dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN

    @dg.asset_check(
        asset=raw_key(source),
        name="extract_is_fresh",
        blocking=blocking,
        description=(
            f"The extract is fresh: snapshot date minus extract date is at most "
            f"{delivery.freshness_limit(source)} days (freshness_days in sources.yaml, capped by the "
            f"operator's ceiling for {source.kind} in intake_rules.yaml). Severity {severity.value}"
            + (
                "; blocking, because stale deaths or moves make every verdict unsafe."
                if blocking
                else "."
            )
        ),
    )
    def freshness() -> dg.AssetCheckResult:
        age = delivery.days_old(source)
        limit = delivery.freshness_limit(source)
        return dg.AssetCheckResult(
            passed=age <= limit,
            severity=severity,
            description=None
            if age <= limit
            else (
                f"{source.name} was extracted {age} days before the snapshot; limit {limit} days"
                + (
                    " (the operator's ceiling for its kind in intake_rules.yaml)"
                    if limit < source.freshness_days
                    else ""
                )
                + (
                    ": nothing is published from a stale death or migration registry."
                    if blocking
                    else ": its rows may be out of date (published with this warning)."
                )
            ),
            metadata={
                "days_old": age,
                "limit_days": limit,
                "freshness_days": source.freshness_days,
                "extracted_at": str(source.extracted_at),
                "snapshot_date": str(delivery.snapshot_date),
            },
        )

    return freshness


def record_file_stats(conn, source: SourceSpec, digest: str, stats) -> None:
    """One row per source: what its file held (rows, physical records, merged or cut records), read
    by the completeness gate (sources/completeness.py)."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS intake")
    conn.execute(f"""CREATE TABLE IF NOT EXISTS {FILE_STATS} (
        source VARCHAR, file VARCHAR, file_sha256 VARCHAR, rows BIGINT, physical_records BIGINT,
        multiline_rows BIGINT, longest_record_lines BIGINT, longest_record_row BIGINT,
        longest_record_line BIGINT, cut_row BIGINT, cut_line BIGINT)""")
    with transaction(conn):  # the gate never sees a source without its row
        conn.execute(f"DELETE FROM {FILE_STATS} WHERE source = ?", [source.name])
        conn.execute(
            f"INSERT INTO {FILE_STATS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                source.name,
                source.path,
                digest,
                stats.rows,
                stats.physical_records,
                stats.multiline_rows,
                stats.longest_record_lines,
                stats.longest_record_row,
                stats.longest_record_line,
                stats.cut_row,
                stats.cut_line,
            ],
        )


def build_source_assets(
    delivery: Delivery,
) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    """The raw asset and freshness check of every source, and the completeness gate after them."""
    assets = [_raw_asset(delivery, s) for s in delivery.sources]
    checks = [_freshness_check(delivery, s) for s in delivery.sources]
    return [*assets, build_completeness_gate(delivery)], checks


def sources_defs(delivery: Delivery) -> dg.Definitions:
    """The sources stage as Definitions (merged in satudata_pipeline/definitions.py)."""
    assets, checks = build_source_assets(delivery)
    return dg.Definitions(assets=assets, asset_checks=checks)


__all__ = ["build_source_assets", "raw_key", "ContractError", "BLOCKING_FRESHNESS_KINDS"]
