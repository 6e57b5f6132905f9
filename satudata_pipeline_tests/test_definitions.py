"""The code location as a whole: a snapshot of every asset spec and check, schedules and the sensor."""

from __future__ import annotations

import json
import os
import shutil

import dagster as dg
import pytest

from satudata_pipeline import config
from satudata_pipeline.automation import FULL_JOB
from satudata_pipeline.contract.sources import load_delivery
from satudata_pipeline.definitions import build_defs

SNAPSHOT = config.PROJECT_DIR / "satudata_pipeline_tests" / "snapshots" / "asset_graph.json"
STAGES = ["sources", "clean", "link", "golden", "programs"]


def graph_snapshot(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        out[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "kinds": sorted(node.kinds),
            "owners": list(node.owners),
            "fresh_monthly": node.freshness_policy is not None,
            "checks": sorted(
                f"{ck.name}{' (blocking)' if graph.get_check_spec(ck).blocking else ''}"
                for ck in graph.get_check_keys_for_assets({key})
            ),
        }
    return out


@pytest.fixture(scope="module")
def sample_defs():
    return build_defs(load_delivery(config.PROJECT_DIR / "data"), warehouse=":memory:")


def test_asset_graph_matches_snapshot(sample_defs):
    """Any change to assets, deps, groups, owners or checks shows up here for review.
    Refresh after an intended change: SATUDATA_UPDATE_SNAPSHOTS=1 pytest -k snapshot"""
    current = graph_snapshot(sample_defs)
    if os.environ.get("SATUDATA_UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_every_asset_is_in_a_stage_group_with_owner_and_description(sample_defs):
    graph = sample_defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name in STAGES, key
        assert node.owners, key
        assert node.description and len(node.description) > 30, key


@pytest.mark.parametrize(
    ("factories", "group"),
    [
        (["sources.assets:sources_defs"], "sources"),
        (["clean.assets:clean_defs"], "clean"),
        (["link.assets:link_defs", "decisions.assets:decision_defs"], "link"),
        (["golden.assets:golden_defs"], "golden"),
        (["programs.assets:program_defs"], "programs"),
    ],
)
def test_each_stage_factory_returns_the_definitions_of_its_own_stage(sample_defs, factories, group):
    """definitions.py merges the stages' Definitions: each holds its own group's assets and checks,
    and together they are the code location (nothing defined twice, nothing left out)."""
    import importlib
    import inspect

    parts = []
    for factory in factories:
        module, name = factory.split(":")
        make = getattr(importlib.import_module(f"satudata_pipeline.{module}"), name)
        parts.append(make(load_delivery()) if inspect.signature(make).parameters else make())
    stage = dg.Definitions.merge(*parts)
    keys = {a.key for a in stage.assets or [] for a in getattr(a, "specs", [a])}
    graph = sample_defs.resolve_asset_graph()
    in_group = {k for k in graph.get_all_asset_keys() if graph.get(k).group_name == group}
    assert keys == in_group
    checked = {c.asset_key for d in stage.asset_checks or [] for c in d.check_specs}
    assert checked <= keys | {dg.AssetKey("quarantine")}


def test_every_check_has_a_description(sample_defs):
    for checks_def in sample_defs.asset_checks or []:
        for spec in checks_def.check_specs:
            assert spec.description, spec.key


def test_one_raw_and_one_clean_asset_per_declared_source(sample_defs):
    keys = {k.to_user_string() for k in sample_defs.resolve_asset_graph().get_all_asset_keys()}
    for source in load_delivery(config.PROJECT_DIR / "data").sources:
        assert f"raw_{source.name}" in keys and f"clean_{source.name}" in keys


def test_published_assets_carry_the_monthly_freshness_policy(sample_defs):
    graph = sample_defs.resolve_asset_graph()
    for name in ("golden_person", "person_source_link", "beneficiary_review"):
        assert graph.get(dg.AssetKey(name)).freshness_policy is not None, name


def test_monthly_schedule_targets_the_full_job(sample_defs):
    schedule = sample_defs.resolve_schedule_def("monthly_determination")
    assert schedule.cron_schedule == "0 2 1 * *"
    assert schedule.execution_timezone == "Asia/Jakarta"
    assert schedule.job_name == FULL_JOB


def test_new_delivery_sensor_runs_each_delivery_once(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(config.PROJECT_DIR / "data", data, ignore=shutil.ignore_patterns("truth"))
    defs = build_defs(load_delivery(data), warehouse=":memory:")
    sensor = defs.resolve_sensor_def("new_delivery")
    with dg.instance_for_test() as instance:
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert len(first.run_requests) == 1
        run_key = first.run_requests[0].run_key
        again = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=first.cursor)
        )
        assert again.run_requests == [] and again.skip_message == "no new delivery"
        # a new delivery: one file re-delivered with another row
        roster = data / load_delivery(data).source("kjp_plus").path
        roster.write_text(roster.read_text() + roster.read_text().splitlines()[-1] + "\n")
        new = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=again.cursor or first.cursor)
        )
        assert len(new.run_requests) == 1 and new.run_requests[0].run_key != run_key


def test_only_one_run_at_a_time_in_the_cli_instance(tmp_path, monkeypatch):
    from satudata_pipeline.cli import dagster_home

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("SATUDATA_STATE_DIR", str(tmp_path))
    home = dagster_home()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1


_SNAPSHOT_ID = (
    "from satudata_pipeline.definitions import defs\n"
    "from satudata_pipeline.automation import FULL_JOB\n"
    "print(defs.resolve_job_def(FULL_JOB).get_job_snapshot().snapshot_id)\n"
)


def test_job_snapshot_is_the_same_in_every_process():
    """A run stored by one process (CLI, schedule) and the code server's job must have one snapshot id,
    or the UI calls every re-execution 'a different version of the job' (dagster_patches.py)."""
    import subprocess
    import sys

    ids = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _SNAPSHOT_ID],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        ids.add(out.stdout.strip().splitlines()[-1])
    assert len(ids) == 1, ids
