"""The one Definitions of the code location: every stage, the warehouse, schedules and sensors.

Assets of the sources and clean stages are generated from the data directory's sources.yaml, so the
delivery is parsed and validated here, when the code location loads: a broken delivery shows up as a
load error naming the source, file and column, before anything runs.

What reads what (README, "Settings"): the data directory (SATUDATA_DATA_DIR) and the program rules
file (SATUDATA_PROGRAM_RULES) are read here, when the code location loads, because the asset graph
is generated from the delivery and its roster program codes are checked against the rules. Everything
a run reads at run time comes from the resources wired below: `delivery` (the same directory, the
snapshot date), `program_rules`, `run_settings` (SATUDATA_MAX_STALE_SHARE, SATUDATA_RETRAIN,
SATUDATA_FULL_RELINK) as `dg.EnvVar`s resolved when the run starts, and `warehouse`.

Loading the code location also sets umask 077 (`config.owner_only()`): every process that loads it
(the webserver's code server, the daemon, a launched run) creates owner-only files. The `warehouse`
resource holds the warehouse lock for the whole of every run (satudata_pipeline/resources.py).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

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
from satudata_pipeline.resources import (
    DEFAULT_MAX_STALE_SHARE,
    DeliveryResource,
    ProgramRulesResource,
    RunSettingsResource,
    SparkResource,
    WarehouseResource,
)
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


# SparkResource field -> the setting of the README it reads
SPARK_SETTINGS = {
    "engine": "SATUDATA_ENGINE",
    "master": "SATUDATA_SPARK_MASTER",
    "driver_memory": "SATUDATA_SPARK_DRIVER_MEMORY",
    "spark_dir": "SATUDATA_SPARK_DIR",
}


def _spark_settings() -> dict[str, Any]:
    """The SparkResource fields whose setting is set, as EnvVars; unset ones keep their defaults."""
    return {field: dg.EnvVar(name) for field, name in SPARK_SETTINGS.items() if name in os.environ}


def _env(name: str, default: str) -> str:
    """`dg.EnvVar(name)` when the variable is set (Dagster resolves it when a run starts and the UI
    shows where the value comes from), else the default: these settings are optional, and an
    EnvVar of an unset variable would fail the run."""
    return dg.EnvVar(name) if name in os.environ else default


def run_resources(delivery: Delivery, warehouse: str | None = None) -> dict:
    """The resources every run gets: the warehouse, the delivery the asset graph was generated
    from, the program rules and the operator's settings (environment variables of the README)."""
    return {
        "warehouse": WarehouseResource(database=warehouse or str(config.warehouse_path())),
        # the graph's own delivery, not SATUDATA_DATA_DIR again: one delivery per run
        "delivery": DeliveryResource(data_dir=str(delivery.data_dir)),
        "program_rules": ProgramRulesResource(
            path=_env("SATUDATA_PROGRAM_RULES", str(config.PROGRAM_RULES))
        ),
        "run_settings": RunSettingsResource(
            max_stale_share=_env("SATUDATA_MAX_STALE_SHARE", str(DEFAULT_MAX_STALE_SHARE)),
            retrain=_env("SATUDATA_RETRAIN", ""),
            full_relink=_env("SATUDATA_FULL_RELINK", ""),
        ),
        # the linkage engine (SATUDATA_ENGINE); a Spark session only when it is `spark`. Settings
        # that are set are wired as EnvVars (shown in the launchpad); unset ones keep the defaults
        "spark": SparkResource(**_spark_settings()),
    }


def build_defs(delivery: Delivery, warehouse: str | None = None) -> dg.Definitions:
    """Each stage's Definitions (its module's `*_defs`), merged, with owners and the monthly
    freshness policy set by group, and what every run shares: resources, loggers, executor."""
    runtime = dg.Definitions(
        resources=run_resources(delivery, warehouse),
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
        staleness_defs(),
    ]
    return dg.Definitions.merge(*map(_owned, stages), automation_defs(delivery), runtime)


def _owned(stage: dg.Definitions) -> dg.Definitions:
    """A stage's assets with owners and freshness policy set by group (`dg.map_asset_specs`: the
    Definitions method of the same name is still a preview API)."""
    given = list(stage.assets or [])
    defined = [a for a in given if isinstance(a, dg.AssetsDefinition)]
    if len(defined) != len(given):
        raise TypeError("a stage defines its assets with @dg.asset (an AssetsDefinition)")
    assets = list(dg.map_asset_specs(_with_ownership_and_freshness, defined))
    return dg.Definitions(assets=assets, asset_checks=stage.asset_checks)


config.owner_only()
defs = build_defs(load_delivery())

__all__ = ["defs", "build_defs", "QUARANTINE_KEY"]
