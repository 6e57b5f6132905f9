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
from satudata_pipeline.automation import automation_defs
from satudata_pipeline.checks.staleness import staleness_defs
from satudata_pipeline.clean.assets import QUARANTINE_KEY, clean_defs
from satudata_pipeline.contract.sources import Delivery, load_delivery
from satudata_pipeline.decisions.assets import decision_defs
from satudata_pipeline.golden.assets import golden_defs
from satudata_pipeline.link.assets import link_defs
from satudata_pipeline.programs.assets import program_defs
from satudata_pipeline.progress import step_progress_logger
from satudata_pipeline.resources import SparkResource, WarehouseResource
from satudata_pipeline.sources.assets import sources_defs

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
    """Each stage's Definitions (its module's `*_defs`), merged, with owners and the monthly
    freshness policy set by group, and what every run shares: the warehouse, loggers, executor."""
    runtime = dg.Definitions(
        resources={
            "warehouse": WarehouseResource(database=warehouse or str(config.warehouse_path())),
            # the linkage engine (SATUDATA_ENGINE); a Spark session only when it is `spark`
            "spark": SparkResource(),
        },
        # `satudata_steps` prints "step n of N" on the terminal of `satudata run` (which turns it on in
        # its run config); defined here so the CLI's job is the code location's job, snapshot and all
        loggers={"console": dg.colored_console_logger, "satudata_steps": step_progress_logger()},
        # DuckDB allows one writer per file: every step of a run executes in one process, one
        # after another, so no two steps ever hold the file at once; and the warehouse resource,
        # initialised once per run, holds the warehouse lock so that no two runs interleave.
        executor=dg.in_process_executor,
    )
    stages = [
        sources_defs(delivery),
        clean_defs(delivery),
        decision_defs(delivery),
        link_defs(delivery),
        golden_defs(),
        program_defs(),
        staleness_defs(delivery),
    ]
    return dg.Definitions.merge(*map(_owned, stages), automation_defs(delivery), runtime)


def _owned(stage: dg.Definitions) -> dg.Definitions:
    """A stage's assets with owners and freshness policy set by group (`dg.map_asset_specs`: the
    Definitions method of the same name is still a preview API)."""
    given = list(stage.assets or [])
    defined = [a for a in given if isinstance(a, dg.AssetsDefinition)]
    assert len(defined) == len(given), "a stage defines its assets with @dg.asset"
    assets = list(dg.map_asset_specs(_with_ownership_and_freshness, defined))
    return dg.Definitions(assets=assets, asset_checks=stage.asset_checks)


config.owner_only()
defs = build_defs(load_delivery())

__all__ = ["defs", "build_defs", "QUARANTINE_KEY"]
