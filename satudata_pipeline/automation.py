"""The full determination job, its monthly schedule, and the sensor that runs a new delivery once.

A run requested by the schedule or the sensor waits in the daemon's queue (one run at a time; runs
of `satudata run` are in the same instance, so it waits for them too), and when it starts it takes
the warehouse lock like every other run (satudata_pipeline/resources.py). Should the warehouse still
be held (a run of another Dagster instance), it waits up to SATUDATA_LOCK_WAIT_SECONDS and then fails
naming the holder: re-execute it from the UI (the sensor runs each delivery once).
"""

from __future__ import annotations

import hashlib
import json

import dagster as dg

from satudata_pipeline.contract.sources import Delivery

FULL_JOB = "satudata_full_determination"


def delivery_fingerprint(delivery: Delivery) -> str:
    """Changes when sources.yaml or any file it names changes (content of the yaml, size+mtime of files)."""
    h = hashlib.sha256(delivery.yaml_path.read_bytes())
    for source in delivery.sources:
        path = delivery.file_path(source)
        stat = path.stat() if path.exists() else None
        h.update(
            json.dumps(
                [
                    source.name,
                    source.path,
                    stat.st_size if stat else -1,
                    stat.st_mtime_ns if stat else -1,
                ]
            ).encode()
        )
    return h.hexdigest()[:20]


def month_tags(delivery: Delivery) -> dict[str, str]:
    """Run tags naming the month a run determines: satudata/snapshot_date, satudata/determination_for.

    Read afresh from the data directory (the delivery may have changed since the code location
    loaded); empty when it cannot be read."""
    from satudata_pipeline.contract.sources import ContractError, load_delivery
    from satudata_pipeline.history.metadata import RUN_TAG_MONTH, RUN_TAG_SNAPSHOT, month_label

    try:
        snapshot = load_delivery(delivery.data_dir, check=False).snapshot_date
    except (ContractError, OSError):
        return {}
    return {RUN_TAG_SNAPSHOT: str(snapshot), RUN_TAG_MONTH: month_label(snapshot)}


def build_automation(delivery: Delivery):
    job = dg.define_asset_job(
        FULL_JOB,
        selection=dg.AssetSelection.all(),
        description=(
            "The whole monthly determination: land every source, clean, link, build the golden person, "
            "decide every roster row and export the lists. Blocking checks stop it before publishing."
        ),
        tags={"satudata/warehouse": "main"},
    )

    @dg.schedule(
        name="monthly_determination",
        job=job,
        cron_schedule="0 2 1 * *",  # 02:00 on the 1st: after the month's extracts are cut
        execution_timezone="Asia/Jakarta",
        description="Rebuild every list on the first of each month (the payment cycle).",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    def schedule(context: dg.ScheduleEvaluationContext):
        # the run names the month it determines (docs/monthly.md); an unreadable delivery still gets its
        # run, which then fails naming the problem
        return dg.RunRequest(tags=month_tags(delivery))

    @dg.sensor(
        name="new_delivery",
        job=job,
        minimum_interval_seconds=60,
        description=(
            "Starts the full determination when a new delivery lands in the data directory (a changed "
            "sources.yaml or a changed file). The run key is the delivery's fingerprint: one delivery runs once."
        ),
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def new_delivery(context: dg.SensorEvaluationContext):
        from satudata_pipeline.contract.sources import ContractError, load_delivery

        try:
            current = load_delivery(delivery.data_dir, check=False)
            fingerprint = delivery_fingerprint(current)
        except (ContractError, OSError) as exc:
            return dg.SkipReason(f"delivery not readable yet: {exc}")
        if context.cursor == fingerprint:
            return dg.SkipReason("no new delivery")
        context.update_cursor(fingerprint)
        return dg.RunRequest(
            run_key=f"delivery-{fingerprint}",
            tags={"satudata/delivery": fingerprint, **month_tags(current)},
        )

    return [job], [schedule], [new_delivery]


def automation_defs(delivery: Delivery) -> dg.Definitions:
    """The published job, its monthly schedule and the new-delivery sensor as Definitions."""
    jobs, schedules, sensors = build_automation(delivery)
    return dg.Definitions(jobs=jobs, schedules=schedules, sensors=sensors)
