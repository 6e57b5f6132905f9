"""Write, audit, publish: a run that fails or is killed at any step leaves the previous publication intact.

One full run on a small generated delivery is published once (module fixture); every test starts from a
copy of that warehouse, runs again on a *changed* delivery (fewer death-registry and KAJ rows, so the
new run really computes different lists) and breaks the run somewhere:

- a step in the middle raises (program_summary, after the new golden person and review were staged);
- a blocking check fails (published_lists must not run);
- the cross-table audit of the publish step finds inconsistent staging tables;
- the publish transaction itself fails half-way (after some tables were already replaced in it);
- the process is killed with SIGKILL inside the publish transaction, just before COMMIT;
- `satudata run` is killed with SIGKILL once the linkage step started (then a rerun must succeed).

Each time the published tables, the id registry and the publication log are compared row for row with
the snapshot of the previous publication, and checked for consistency with each other.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from publish_helpers import (
    assert_consistent,
    changed_delivery,
    connect,
    copy_state,
    generated_delivery,
    materialized,
    run_job,
    snapshot,
)

from satudata_pipeline import config
from satudata_pipeline.golden import publish


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A delivery (600 persons, seed 5), a state folder with its published warehouse and trained model."""
    with generated_delivery(tmp_path_factory.mktemp("publish_atomic")) as (delivery, state):
        result = run_job(delivery, state / "warehouse.duckdb")
    assert result.success
    assert "published_lists" in materialized(result)
    assert_consistent(state / "warehouse.duckdb")
    return {"delivery": delivery, "state": state, "snapshot": snapshot(state / "warehouse.duckdb")}


@pytest.fixture
def second(published, tmp_path, monkeypatch):
    """A copy of the published state (warehouse + model) and a changed delivery, for a second run."""
    state = copy_state(published["state"], tmp_path / "state")
    monkeypatch.setenv("SATUDATA_STATE_DIR", str(state))
    return {
        "state": state,
        "warehouse": state / "warehouse.duckdb",
        "delivery": changed_delivery(published["delivery"], tmp_path / "delivery"),
    }


def _staged_review(warehouse: Path) -> list:
    with connect(warehouse) as conn:
        return conn.execute("SELECT * FROM staging.beneficiary_review").fetchall()


def assert_previous_publication_intact(published, warehouse: Path) -> None:
    after = snapshot(warehouse)
    for table, (schema, rows) in published["snapshot"].items():
        assert after[table][0] == schema, f"{table}: columns changed"
        assert after[table][1] == rows, f"{table}: rows changed"
    assert_consistent(warehouse)


def test_a_step_failing_in_the_middle_publishes_nothing(published, second, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure in program_summary")

    monkeypatch.setattr("satudata_pipeline.programs.summary.build_program_summary", broken)
    result = run_job(second["delivery"], second["warehouse"])
    assert not result.success
    done = materialized(result)
    assert {"golden_person", "person_source_link", "beneficiary_review"} <= done
    assert "published_lists" not in done and "program_exports" not in done
    # the run did stage new lists ...
    assert (
        _staged_review(second["warehouse"]) != published["snapshot"]["main.beneficiary_review"][1]
    )
    # ... but the published ones, the id registry and the log are the previous publication's
    assert_previous_publication_intact(published, second["warehouse"])


def test_a_failing_blocking_check_publishes_nothing(published, second, monkeypatch):
    monkeypatch.setattr(
        "satudata_pipeline.programs.verdicts.check_no_double_enrollment_keep",
        lambda conn, rules=None, **kw: (
            1,
            pd.DataFrame([{"program": "KAJ", "source": "kaj", "record_id": "x"}]),
        ),
    )
    result = run_job(second["delivery"], second["warehouse"])
    assert not result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["no_double_enrollment_keep"] is False
    assert "published_lists" not in materialized(result)
    assert_previous_publication_intact(published, second["warehouse"])


def _stage_different_lists(warehouse: Path) -> None:
    """Make the staging tables differ from the published ones (as a new run would), consistently."""
    with connect(warehouse) as conn:
        conn.execute(
            "UPDATE staging.beneficiary_review SET verdict = 'review' WHERE verdict = 'keep'"
        )
        conn.execute("DELETE FROM staging.program_summary WHERE reason = 'ALL'")


def test_the_publish_transaction_failing_half_way_rolls_everything_back(
    published, second, monkeypatch
):
    """program_summary is copied after golden_person, the links, the review and the eligible list were
    already replaced inside the transaction: make its copy fail."""
    _stage_different_lists(second["warehouse"])
    broken = tuple(
        publish.Published(p.name, p.schema, "no_such_column", p.required)
        if p.name == "program_summary"
        else p
        for p in publish.PUBLISHED
    )
    monkeypatch.setattr(publish, "PUBLISHED", broken)
    with connect(second["warehouse"]) as conn, pytest.raises(duckdb.BinderException):
        publish.publish(conn, "half-way")
    assert_previous_publication_intact(published, second["warehouse"])


def test_the_audit_refuses_inconsistent_staging_tables(published, second):
    with connect(second["warehouse"]) as conn:
        conn.execute(
            "UPDATE staging.beneficiary_review SET person_id = 'P999999999' "
            "WHERE person_id IS NOT NULL AND rowid = (SELECT min(rowid) FROM staging.beneficiary_review "
            "WHERE person_id IS NOT NULL)"
        )
        with pytest.raises(publish.PublishError) as err:
            publish.publish(conn, "test-run")
    assert "review_to_unknown_person=1" in str(err.value)
    assert_previous_publication_intact(published, second["warehouse"])


KILL_AT_COMMIT = """
import os, signal, sys
import duckdb
from satudata_pipeline.golden import publish

class KillAtCommit:
    '''Runs every statement, but kills the process (SIGKILL) when publish() is about to COMMIT.'''
    def __init__(self, conn):
        self.conn = conn
    def execute(self, sql, *args):
        if sql.strip().upper() == "COMMIT":
            sys.stdout.write("about to commit\\n"); sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.conn.execute(sql, *args)

publish.publish(KillAtCommit(duckdb.connect(sys.argv[1])), "killed-run")
"""


def test_killed_inside_the_publish_transaction(published, second):
    warehouse = second["warehouse"]
    _stage_different_lists(warehouse)
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AT_COMMIT, str(warehouse)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=config.PROJECT_DIR,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "about to commit" in proc.stdout
    assert_previous_publication_intact(published, warehouse)
    # control: the same publish, not killed, does change the published review
    with connect(warehouse) as conn:
        publish.publish(conn, "not-killed")
        assert (
            conn.execute(
                "SELECT count(*) FROM main.beneficiary_review WHERE verdict = 'keep'"
            ).fetchall()[0][0]
            == 0
        )
    assert_consistent(warehouse)


# --------------------------------------------------------------------------------------------
# `satudata run` killed with SIGKILL
# --------------------------------------------------------------------------------------------
def _satudata() -> list[str]:
    exe = Path(sys.executable).parent / "satudata"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "satudata_pipeline.cli"]


def _step_started(home: Path, step: str) -> bool:
    """Read the run's Dagster event log (sqlite, readable while the run writes it) for STEP_START."""
    for db in glob.glob(str(home / "history" / "runs" / "*.db")):
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
                n = con.execute(
                    "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'STEP_START' AND step_key = ?",
                    [step],
                ).fetchone()[0]
        except sqlite3.Error:
            continue
        if n:
            return True
    return False


def _run_cli(
    delivery: Path, state: Path, home: Path, kill_at: str | None = None, timeout: float = 300
):
    env = {
        **os.environ,
        "SATUDATA_STATE_DIR": str(state),
        "SATUDATA_WAREHOUSE": str(state / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
    }
    env.pop("SATUDATA_RETRAIN", None)
    log = open(state.parent / f"cli-{kill_at or 'full'}.log", "w")
    proc = subprocess.Popen(
        [*_satudata(), "run", "--data-dir", str(delivery)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=config.PROJECT_DIR,
    )
    try:
        if kill_at is None:
            return proc.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while not _step_started(home, kill_at):
            if proc.poll() is not None:
                pytest.fail(f"the run ended (rc {proc.returncode}) before step {kill_at} started")
            if time.monotonic() > deadline:
                pytest.fail(f"step {kill_at} did not start within {timeout} s")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_satudata_run_killed_mid_way_leaves_the_publication_intact_and_a_rerun_succeeds(
    published, second, tmp_path
):
    state, warehouse = second["state"], second["warehouse"]
    # `satudata run` on the changed delivery, killed with SIGKILL once the linkage step started
    assert (
        _run_cli(second["delivery"], state, tmp_path / "dagster_home", kill_at="match_pairs")
        == -signal.SIGKILL
    )
    # the warehouse opens and the previous publication is intact
    assert_previous_publication_intact(published, warehouse)
    # a rerun succeeds and publishes the new lists (in-process: the CLI's persistent instance is slow)
    result = run_job(second["delivery"], warehouse)
    assert result.success
    after = snapshot(warehouse)
    assert (
        after["main.beneficiary_review"][1] != published["snapshot"]["main.beneficiary_review"][1]
    )
    assert len(after["main.publication_log"][1]) == 2
    assert_consistent(warehouse)
    # the exports were swapped in whole: no temporary folders left, every program folder complete
    exports = state / "exports"
    assert not [p for p in exports.iterdir() if p.name.startswith(".")]
    folders = [p for p in exports.iterdir() if p.is_dir()]
    assert folders and not [p for p in folders if p.name.startswith("_")]  # no program was retired
    for folder in folders:
        assert (folder / f"{folder.name}_review.xlsx").exists() and list(folder.glob("*.csv"))
    # ...and they say which publication they follow: the rerun's
    manifest = json.loads((exports / "_manifest.json").read_text())
    assert (
        manifest["publication_run_id"] == result.run_id == after["main.publication_log"][1][-1][0]
    )
