"""The `warehouse` resource: DuckDB, plus what every run must do before and after its steps.

Every run of the code location (the CLI's `satudata run`, a run launched from the UI, the schedule,
the sensor) executes its steps in one process (in-process executor) and initialises this resource
once, before its first step, and tears it down after its last. So the resource is where a run

1. makes its files owner-only (umask 077, state folder 0700, warehouse file 0600);
2. takes the warehouse lock (`warehouse_lock.WarehouseLock`), waiting at most
   `SATUDATA_LOCK_WAIT_SECONDS`, and records the run's pid as a run tag;
3. reports failed every run whose process died while it held the warehouse
   (`warehouse_lock.recover_dead_runs`), so the daemon's queue moves on;
4. rebuilds the exports when they lag the latest publication (a run killed after its publish commit);

and releases the lock when the run ends, whatever the outcome. See docs/reliability.md.

Beside it, three small resources carry what a run reads from its configuration (README, "Settings"):
`delivery` (the data directory and its snapshot date), `program_rules` (the rules file) and
`run_settings` (the stale-share limit, retrain and full-relink switches). definitions.py wires them with
`dg.EnvVar`, so the environment variables keep working and are resolved when a run starts; assets and
checks read these resources, never os.environ.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from dagster import ConfigurableResource, InitResourceContext
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr

from satudata_pipeline import config, warehouse_lock
from satudata_pipeline.contract.program_rules import ProgramRules, load_rules
from satudata_pipeline.contract.sources import Delivery, parse_delivery


class WarehouseResource(DuckDBResource):
    """DuckDB warehouse held by one run at a time (an exclusive lock on `<warehouse>.lock`)."""

    lock_wait_seconds: float | None = Field(
        default=None,
        description="seconds a run waits for the warehouse lock; empty = SATUDATA_LOCK_WAIT_SECONDS (default 300)",
    )

    memory_gb: float | None = Field(
        default=None,
        description="DuckDB's memory budget (GB) for every connection of a run; empty = SATUDATA_MEMORY_GB (default half the machine's memory)",
    )
    spill_dir: str | None = Field(
        default=None,
        description="where DuckDB spills what does not fit; empty = SATUDATA_SPILL_DIR (default <state>/spill)",
    )

    def duckdb_settings(self) -> dict[str, str]:
        """Memory budget and spill folder: this resource's fields, else the environment's settings."""
        settings = config.duckdb_settings()
        if self.memory_gb is not None:
            if self.memory_gb < 0.5:
                raise ValueError("the warehouse's memory_gb must be at least 0.5")
            settings["memory_limit"] = f"{self.memory_gb:g}GB"
        if self.spill_dir:
            settings["temp_directory"] = str(config.private_dir(Path(self.spill_dir).expanduser()))
        return settings

    @contextlib.contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator[WarehouseResource]:
        if self.database == ":memory:":
            with super().yield_for_execution(context) as resource:
                yield resource
            return
        config.owner_only()
        warehouse = Path(self.database).expanduser().resolve()
        run_id = context.run.run_id if context.run is not None else "no-run"
        log = context.log
        if log is None:  # Dagster always gives a resource of a run its log manager
            raise RuntimeError("the warehouse resource needs a Dagster run context")
        wait = (
            self.lock_wait_seconds
            if self.lock_wait_seconds is not None
            else warehouse_lock.lock_wait_seconds()
        )

        def on_wait(holder):
            who = holder.describe() if holder else "another run"
            log.warning(
                f"the warehouse {warehouse} is in use by {who}: waiting up to {wait:g} s for it"
            )

        lock = warehouse_lock.WarehouseLock(warehouse)
        waited = lock.acquire(run_id, wait, on_wait=on_wait)
        try:
            log.info(f"warehouse lock taken ({lock.path}) after {waited:.1f} s")
            config.restrict_file(warehouse)
            instance = context.instance
            if instance is not None and context.run is not None:
                instance.add_run_tags(
                    run_id,
                    {
                        warehouse_lock.TAG_WAREHOUSE_FILE: str(warehouse),
                        warehouse_lock.TAG_PID: str(os.getpid()),
                    },
                )
                for dead in warehouse_lock.recover_dead_runs(instance, warehouse, run_id):
                    log.warning(
                        f"run {dead} died while it held this warehouse (its process is gone): "
                        "reported failed"
                    )
            self._catch_up_exports(run_id, log)
            with super().yield_for_execution(context) as resource:
                yield resource
        finally:
            lock.release()

    @contextlib.contextmanager
    def get_connection(self) -> Iterator:
        """A connection with the run's memory budget and spill folder (config.duckdb_settings)."""
        with super().get_connection() as conn:
            if self.database != ":memory:" or "SATUDATA_MEMORY_GB" in os.environ:
                for name, value in self.duckdb_settings().items():
                    conn.execute(f"SET {name} = ?", [value])
            yield conn

    def _catch_up_exports(self, run_id: str, log) -> None:
        """Rebuild the exports from the latest publication when they lag it (never fails the run:
        the run's own export step writes them again)."""
        from satudata_pipeline.programs import exports
        from satudata_pipeline.programs.assets import export_atomically

        out_root = config.exports_dir()
        try:
            with self.get_connection() as conn:
                behind = exports.exports_behind(conn, out_root)
                if behind is None:
                    return
                latest, follows = behind
                result = export_atomically(conn, out_root, None, run_id)
        except Exception as exc:  # noqa: BLE001 (logged; the export step of this run retries)
            log.warning(
                f"the exports lag the latest publication and could not be rebuilt now "
                f"({type(exc).__name__}); this run's export step writes them again"
            )
            return
        why = (
            (
                f"followed publication {follows}, but the latest is {latest} (a run ended after publishing, "
                "before its exports)"
            )
            if follows
            else f"recorded no publication (no {exports.MANIFEST})"
        )
        log.warning(
            f"the exports {why}: rebuilt {len(result.written)} program folder(s) from publication {latest}"
            + (f", archived {', '.join(sorted(result.retired))}" if result.retired else "")
        )


class ProgramRulesResource(dg.ConfigurableResource):
    """The program rules a run decides with (SATUDATA_PROGRAM_RULES, default the shipped rules.yaml)."""

    path: str = Field(
        default=str(config.PROGRAM_RULES),
        description="the program rules YAML; default the shipped satudata_pipeline/programs/rules.yaml",
    )

    def load(self) -> ProgramRules:
        """The rules, validated (ProgramRulesError names the file and the entry)."""
        return load_rules(Path(self.path).expanduser())


class DeliveryResource(dg.ConfigurableResource):
    """The delivery a run determines, and the one place its snapshot date is read from.

    The code location generates the sources and clean assets from this directory's sources.yaml when
    it loads (definitions.py), so `build_defs` gives this resource that same directory: the assets
    and the dates they are computed at always come from one delivery."""

    data_dir: str = Field(description="the delivery's data directory (SATUDATA_DATA_DIR)")
    snapshot_date: str | None = Field(
        default=None,
        description="override sources.yaml's snapshot date (YYYY-MM-DD) for the whole run; "
        "normally empty",
    )

    def load(self) -> Delivery:
        """The delivery's sources.yaml, parsed (its files and program codes were checked when the
        code location loaded; the steps that read a file check it again)."""
        return parse_delivery(Path(self.data_dir).expanduser())

    def snapshot(self) -> dt.date:
        """The date the run determines at: the override, else sources.yaml's snapshot_date."""
        if self.snapshot_date:
            try:
                return dt.date.fromisoformat(self.snapshot_date)
            except ValueError:
                raise ValueError(
                    f"the delivery resource's snapshot_date must be YYYY-MM-DD, got {self.snapshot_date!r}"
                ) from None
        return self.load().snapshot_date


TRUE_WORDS = {"1", "true", "yes", "y"}
DEFAULT_MAX_STALE_SHARE = 0.25


class RunSettingsResource(dg.ConfigurableResource):
    """Switches an operator sets for every run until unset (README, "Settings").

    Text fields, read as the environment variables always were: a flag is on for 1 / true / yes / y
    (any case), anything else is off; Dagster's own boolean parsing would turn `no` on."""

    max_stale_share: str = Field(
        default=str(DEFAULT_MAX_STALE_SHARE),
        description="share of stale persons / recipients above which the staleness checks warn "
        "(SATUDATA_MAX_STALE_SHARE)",
    )
    retrain: str = Field(
        default="",
        description="1: retrain the Splink model on every run (SATUDATA_RETRAIN); `satudata run "
        "--retrain` sets the linkage_model config for one run instead",
    )
    full_relink: str = Field(
        default="",
        description="1: relink every record on every run (SATUDATA_FULL_RELINK); `satudata run "
        "--full` sets the match_pairs config for one run instead",
    )

    def stale_share_limit(self) -> float:
        value = self.max_stale_share.strip()
        if not value:
            return DEFAULT_MAX_STALE_SHARE
        try:
            share = float(value)
        except ValueError:
            raise ValueError(
                f"SATUDATA_MAX_STALE_SHARE must be a share between 0 and 1, got {value!r}"
            ) from None
        if not 0 <= share <= 1:
            raise ValueError(f"SATUDATA_MAX_STALE_SHARE must be between 0 and 1, got {value!r}")
        return share

    def retrain_every_run(self) -> bool:
        return self.retrain.strip().lower() in TRUE_WORDS

    def full_relink_every_run(self) -> bool:
        return self.full_relink.strip().lower() in TRUE_WORDS


__all__ = [
    "DeliveryResource",
    "ProgramRulesResource",
    "RunSettingsResource",
    "WarehouseResource",
]


DEFAULT_SPARK_MASTER = "local[2]"
DEFAULT_SPARK_DRIVER_MEMORY = "2g"
# Shuffle partitions of a local session: Spark's 200 are for clusters; on a few local cores each
# partition is a task with its own overhead (the sample's linkage takes 3x longer with 200).
LOCAL_SHUFFLE_PARTITIONS = 8


class SparkResource(ConfigurableResource):
    """The linkage engine and, with `spark`, the Spark session that trains the model and scores the
    candidate pairs (docs/spark.md). The session is built on first use only: a run on the DuckDB
    engine (the default) never starts a JVM. Empty fields fall back to the SATUDATA_* settings."""

    engine: str | None = Field(
        default=None,
        description="duckdb or spark; empty = SATUDATA_ENGINE (default duckdb)",
    )
    master: str | None = Field(
        default=None,
        description="Spark master URL (local[2], spark://host:7077, yarn, k8s://...) or a Spark "
        "Connect endpoint (sc://host:15002); empty = SATUDATA_SPARK_MASTER (default local[2])",
    )
    driver_memory: str | None = Field(
        default=None,
        description="memory of the Spark driver (the whole of a local session), e.g. 4g; empty = "
        "SATUDATA_SPARK_DRIVER_MEMORY (default 2g)",
    )
    spark_dir: str | None = Field(
        default=None,
        description="Spark's scratch folder (spill, checkpoints, Parquet exchanged with the "
        "warehouse); empty = SATUDATA_SPARK_DIR (default <state>/spark). On a cluster: a path "
        "the driver, the executors and this process all reach",
    )
    shuffle_partitions: int | None = Field(
        default=None,
        description="spark.sql.shuffle.partitions; empty = 8 on a local master, Spark's own "
        "default (200) elsewhere",
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict, description="further Spark settings (name -> value)"
    )

    _session: Any = PrivateAttr(default=None)

    def engine_name(self) -> str:
        value = (self.engine or "").strip().lower() or config.engine()
        if value not in config.ENGINES:
            raise ValueError(
                f"the spark resource's engine must be one of {', '.join(config.ENGINES)}, "
                f"got {value!r}"
            )
        return value

    def master_url(self) -> str:
        return (
            self.master
            or os.environ.get("SATUDATA_SPARK_MASTER", "").strip()
            or (DEFAULT_SPARK_MASTER)
        )

    def scratch_dir(self) -> Path:
        if self.spark_dir:
            return config.private_dir(Path(self.spark_dir).expanduser().resolve())
        return config.spark_dir()

    def is_connect(self) -> bool:
        return self.master_url().startswith("sc://")

    def session(self):
        """The Spark session, built on first call (the Splink similarity functions' jar added, the
        scratch folder and checkpoints under `scratch_dir()`)."""
        if self._session is None:
            self._session = build_spark_session(
                self.master_url(),
                self.driver_memory
                or os.environ.get("SATUDATA_SPARK_DRIVER_MEMORY", "").strip()
                or DEFAULT_SPARK_DRIVER_MEMORY,
                self.scratch_dir(),
                self.shuffle_partitions,
                self.spark_conf,
            )
        return self._session

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._session is not None and not self.is_connect():
            self._session.stop()
        self._session = None


def build_spark_session(
    master: str,
    driver_memory: str,
    scratch: Path,
    shuffle_partitions: int | None = None,
    conf: dict[str, str] | None = None,
):
    """A SparkSession for Splink: a local or cluster master (the jar of Splink's string-similarity
    functions shipped to it), or a Spark Connect endpoint (the jar must be on the server). Fails
    with the missing piece named when pyspark or a Java runtime is absent."""
    import shutil

    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise RuntimeError(
            "SATUDATA_ENGINE=spark needs pyspark: install the spark extra "
            "(./scripts/setup.sh --spark, docs/spark.md)"
        ) from None
    builder = SparkSession.builder.appName("satudata")
    if master.startswith("sc://"):
        builder = builder.remote(master)
    else:
        if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
            raise RuntimeError(
                "SATUDATA_ENGINE=spark needs a Java runtime (17 or newer) for a local or "
                "cluster master: ./scripts/setup.sh --spark installs Debian's "
                "openjdk-17-jre-headless (docs/spark.md)"
            )
        from splink.backends.spark import similarity_jar_location

        local = master.startswith("local")
        builder = (
            builder.master(master)
            .config("spark.jars", similarity_jar_location())
            .config("spark.driver.memory", driver_memory)
            .config("spark.local.dir", str(config.private_dir(scratch / "local")))
        )
        if local:
            # a local session listens on loopback only, without the web UI or progress bars
            builder = (
                builder.config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.driver.host", "127.0.0.1")
            )
            shuffle_partitions = shuffle_partitions or LOCAL_SHUFFLE_PARTITIONS
    builder = builder.config("spark.sql.session.timeZone", "UTC")
    if shuffle_partitions:
        builder = builder.config("spark.sql.shuffle.partitions", str(int(shuffle_partitions)))
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    if not master.startswith("sc://"):
        session.sparkContext.setCheckpointDir(str(config.private_dir(scratch / "checkpoints")))
        session.sparkContext.setLogLevel("ERROR")
    return session


__all__ = ["WarehouseResource", "SparkResource", "build_spark_session"]
