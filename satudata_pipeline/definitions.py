"""The one Definitions of the code location: every stage, the warehouse, schedules and sensors.

Assets of the sources and clean stages are generated from the data directory's sources.yaml, so the
delivery is parsed and validated here, when the code location loads: a broken delivery shows up as a
load error naming the source, file and column, before anything runs.
"""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource

from satudata_pipeline import config
from satudata_pipeline.automation import build_automation
from satudata_pipeline.clean.assets import QUARANTINE_KEY, build_clean_assets, clean_key
from satudata_pipeline.contract.sources import Delivery, load_delivery
from satudata_pipeline.golden.assets import build_golden_assets
from satudata_pipeline.link.assets import build_link_assets
from satudata_pipeline.programs.assets import build_program_assets
from satudata_pipeline.sources.assets import build_source_assets


def build_defs(delivery: Delivery, warehouse: str | None = None) -> dg.Definitions:
    source_assets, source_checks = build_source_assets(delivery)
    clean_assets, clean_checks = build_clean_assets(delivery)
    stage_defs = [
        *build_link_assets([clean_key(s) for s in delivery.sources], [s.name for s in delivery.sources]),
        *build_golden_assets(),
        *build_program_assets(),
    ]
    assets = [*source_assets, *clean_assets] + [d for d in stage_defs if not isinstance(d, dg.AssetChecksDefinition)]
    checks = [*source_checks, *clean_checks] + [d for d in stage_defs if isinstance(d, dg.AssetChecksDefinition)]
    jobs, schedules, sensors = build_automation(delivery)
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={"warehouse": DuckDBResource(database=warehouse or str(config.warehouse_path()))},
        # DuckDB allows one writer per file: every step of a run executes in one process, one
        # after another, so no two steps ever hold the file at once.
        executor=dg.in_process_executor,
    )


defs = build_defs(load_delivery())

__all__ = ["defs", "build_defs", "QUARANTINE_KEY"]
