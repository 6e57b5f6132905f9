"""What a run reads from its configuration, through the resources (satudata_pipeline/resources.py):
the switches as the environment variables always read them, the snapshot date from one place, the
staleness checks following both, and definitions.py wiring the environment variables as dg.EnvVar."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import pytest
from fixtures.programs_warehouse import FIXTURE_SNAPSHOT, build_fixture_warehouse
from fixtures.resources import run_resources

from satudata_pipeline import config
from satudata_pipeline.checks.staleness import build_staleness_checks
from satudata_pipeline.contract.program_rules import ProgramRulesError, load_rules
from satudata_pipeline.programs.verdicts import build_beneficiary_review
from satudata_pipeline.resources import DeliveryResource, ProgramRulesResource, RunSettingsResource


@pytest.mark.parametrize(
    ("value", "on"),
    [("1", True), ("true", True), ("YES", True), (" y ", True), ("", False), ("0", False),
     ("no", False), ("false", False), ("2", False)],
)  # fmt: skip
def test_switches_read_as_the_environment_variables_always_were(value, on):
    """`no` stays off (Dagster's own boolean parsing would turn it on)."""
    settings = RunSettingsResource(retrain=value, full_relink=value)
    assert settings.retrain_every_run() is on
    assert settings.full_relink_every_run() is on


@pytest.mark.parametrize(
    ("value", "limit", "error"),
    [("", 0.25, None), ("0.1", 0.1, None), ("0", 0.0, None), ("1", 1.0, None),
     ("lots", None, "must be a share between 0 and 1, got 'lots'"),
     ("1.5", None, "must be between 0 and 1")],
)  # fmt: skip
def test_max_stale_share(value, limit, error):
    settings = RunSettingsResource(max_stale_share=value)
    if error:
        with pytest.raises(ValueError, match=error):
            settings.stale_share_limit()
    else:
        assert settings.stale_share_limit() == limit


def test_the_snapshot_date_is_the_deliverys_unless_overridden(tiny_delivery):
    assert DeliveryResource(data_dir=str(tiny_delivery)).snapshot() == dt.date(2026, 11, 1)
    moved = DeliveryResource(data_dir=str(tiny_delivery), snapshot_date="2026-12-01")
    assert moved.snapshot() == dt.date(2026, 12, 1)
    with pytest.raises(ValueError, match="snapshot_date must be YYYY-MM-DD, got '1 Des'"):
        DeliveryResource(data_dir=str(tiny_delivery), snapshot_date="1 Des").snapshot()


def test_the_program_rules_resource_loads_its_file(tmp_path):
    assert ProgramRulesResource().load().codes() == load_rules().codes()
    broken = tmp_path / "rules.yaml"
    broken.write_text("programs: [")
    with pytest.raises(ProgramRulesError, match="rules.yaml: not valid YAML"):
        ProgramRulesResource(path=str(broken)).load()


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """The programs fixture warehouse with its beneficiary_review (2 of 27 persons stale)."""
    db = tmp_path_factory.mktemp("stale") / "w.duckdb"
    with duckdb.connect(str(db)) as conn:
        build_fixture_warehouse(conn)
        build_beneficiary_review(conn, load_rules(), FIXTURE_SNAPSHOT)
    return db


@pytest.mark.parametrize(
    ("snapshot", "max_stale_share", "stale", "passed"),
    [
        (FIXTURE_SNAPSHOT, "1", 2, True),
        (FIXTURE_SNAPSHOT, "0", 2, False),
        (FIXTURE_SNAPSHOT, "", 2, True),  # the default, 25%
        (FIXTURE_SNAPSHOT + dt.timedelta(days=3650), "0.5", 27, False),  # ten years on: all stale
    ],
)
def test_staleness_checks_follow_the_runs_settings_and_snapshot(
    reviewed, snapshot, max_stale_share, stale, passed
):
    checks = build_staleness_checks(
        "main.golden_person", "main.beneficiary_review", "main.person_source_link"
    )
    result = dg.materialize(
        [*(dg.AssetSpec(k) for k in ("golden_person", "beneficiary_review", "person_source_link")),
         *checks],
        resources=run_resources(
            reviewed, snapshot_date=snapshot.isoformat(), max_stale_share=max_stale_share
        ),
        selection=dg.AssetSelection.all_asset_checks(),
    )  # fmt: skip
    persons = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "stale_persons"
    )
    assert persons.metadata["persons"].value == 27
    assert persons.metadata["stale_persons"].value == stale
    assert persons.passed is passed


def test_definitions_wire_the_environment_variables_resolved_when_a_run_starts(monkeypatch):
    """The one test of the environment path: set variables become dg.EnvVar (resolved by Dagster
    when the run starts), unset ones the defaults."""
    from satudata_pipeline.contract.sources import load_delivery
    from satudata_pipeline.definitions import run_resources as wired

    monkeypatch.setenv("SATUDATA_RETRAIN", "yes")
    monkeypatch.delenv("SATUDATA_FULL_RELINK", raising=False)
    monkeypatch.delenv("SATUDATA_MAX_STALE_SHARE", raising=False)
    monkeypatch.delenv("SATUDATA_PROGRAM_RULES", raising=False)
    resources = wired(load_delivery(config.PROJECT_DIR / "data"), ":memory:")
    seen = {}

    @dg.asset
    def probe(run_settings: RunSettingsResource, delivery: DeliveryResource):
        seen.update(
            retrain=run_settings.retrain_every_run(),
            full=run_settings.full_relink_every_run(),
            limit=run_settings.stale_share_limit(),
            snapshot=delivery.snapshot(),
        )

    job = dg.Definitions(
        assets=[probe], resources=resources
    ).resolve_implicit_global_asset_job_def()
    assert job.execute_in_process().success
    assert seen == {"retrain": True, "full": False, "limit": 0.25, "snapshot": dt.date(2026, 11, 1)}
    monkeypatch.setenv("SATUDATA_RETRAIN", "no")  # read when the run starts, not when wired
    assert job.execute_in_process().success
    assert seen["retrain"] is False
