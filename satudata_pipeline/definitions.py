"""The one Definitions of the code location: every stage, the warehouse, schedules and sensors.

Assets of the sources and clean stages are generated from the data directory's sources.yaml, so the
delivery is parsed and validated here, when the code location loads: a broken delivery shows up as a
load error naming the source, file and column, before anything runs.

Loading the code location also sets umask 077 (`config.owner_only()`): every process that loads it
(the webserver's code server, the daemon, a launched run) creates owner-only files. The `warehouse`
resource holds the warehouse lock for the whole of every run (satudata_pipeline/resources.py).
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from satudata_pipeline import config, dagster_patches
from satudata_pipeline.automation import build_automation
from satudata_pipeline.checks.staleness import build_staleness_checks
from satudata_pipeline.clean.assets import QUARANTINE_KEY, build_clean_assets, clean_key
from satudata_pipeline.contract.sources import Delivery, load_delivery
from satudata_pipeline.decisions.assets import build_decision_assets
from satudata_pipeline.golden.assets import build_golden_assets
from satudata_pipeline.link.assets import build_link_assets
from satudata_pipeline.programs.assets import build_program_assets
from satudata_pipeline.progress import step_progress_logger
from satudata_pipeline.resources import WarehouseResource
from satudata_pipeline.sources.assets import build_source_assets

dagster_patches.apply()

# The determination follows the monthly payment cycle: by 09:00 WIB on the 2nd, the published
# results must have been rebuilt within the past 28 days, or the UI shows them overdue.
MONTHLY = dg.FreshnessPolicy.cron(
    deadline_cron="0 9 2 * *", lower_bound_delta=dt.timedelta(days=28), timezone="Asia/Jakarta"
)
PUBLISHED_GROUPS = {"golden", "programs"}
OWNERS = {
    "sources": ["team:data-intake"],
    "clean": ["team:data-intake"],
    "link": ["team:linkage"],
    "golden": ["team:linkage"],
    "programs": ["team:dinsos-programs"],
}


def _with_ownership_and_freshness(spec: dg.AssetSpec) -> dg.AssetSpec:
    return spec.replace_attributes(
        owners=spec.owners or OWNERS.get(spec.group_name or "", []),
        freshness_policy=MONTHLY if spec.group_name in PUBLISHED_GROUPS else spec.freshness_policy,
    )


def build_defs(delivery: Delivery, warehouse: str | None = None) -> dg.Definitions:
    source_assets, source_checks = build_source_assets(delivery)
    clean_assets, clean_checks = build_clean_assets(delivery)
    stage_defs = [
        *build_link_assets(
            [clean_key(s) for s in delivery.person_sources],
            [s.name for s in delivery.person_sources],
            cluster_deps=("decisions",),
        ),
        *build_decision_assets(delivery),
        *build_golden_assets(),
        *build_program_assets(),
    ]
    assets = [*source_assets, *clean_assets] + [
        d for d in stage_defs if not isinstance(d, dg.AssetChecksDefinition)
    ]
    assets = list(dg.map_asset_specs(_with_ownership_and_freshness, assets))
    checks = [*source_checks, *clean_checks] + [
        d for d in stage_defs if isinstance(d, dg.AssetChecksDefinition)
    ]
    checks += build_staleness_checks(delivery)
    jobs, schedules, sensors = build_automation(delivery)
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={
            "warehouse": WarehouseResource(database=warehouse or str(config.warehouse_path()))
        },
        # `satudata_steps` prints "step n of N" on the terminal of `satudata run` (which turns it on in
        # its run config); defined here so the CLI's job is the code location's job, snapshot and all
        loggers={"console": dg.colored_console_logger, "satudata_steps": step_progress_logger()},
        # DuckDB allows one writer per file: every step of a run executes in one process, one
        # after another, so no two steps ever hold the file at once; and the warehouse resource,
        # initialised once per run, holds the warehouse lock so that no two runs interleave.
        executor=dg.in_process_executor,
    )


config.owner_only()
defs = build_defs(load_delivery())

__all__ = ["defs", "build_defs", "QUARANTINE_KEY"]
