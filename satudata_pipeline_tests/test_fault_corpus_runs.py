"""Fault corpus, runs (issue 13): what happens to the publication when runs collide, die or change shape.

The shipped sample is published once with `satudata run` into a temporary state folder (session
fixture: warehouse, model, exports, reports and the persistent Dagster instance). Every case works on
a copy of that state folder and asserts the exit code, the message, and the published tables:
"byte-identical" means the sha256 of `SELECT * ... ORDER BY ALL` of main.golden_person,
main.person_source_link and main.beneficiary_review equals the sample publication's.

| case | expected |
|---|---|
| three `satudata run` at once | one writer at a time; the third (wait 0) fails at once (exit 3), naming the holder |
| a run killed (SIGKILL) before the publish commit | publication byte-identical; reported failed at the next start |
| a run killed (SIGKILL) after the publish commit | it stays published; the next start fails it, rebuilds the exports |
| a program no longer published | its export folder moves to `_arsip/<date>-<PROGRAM>/` |
| file modes | state folder 0700, nothing under it readable by group or others |
| nominal_bulanan 999,999,999,999 | review with `amount_above_rule`, never keep |
| `satudata ui` gets SIGTERM | no process of its group is left |
"""

from __future__ import annotations

import csv
import datetime as dt
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from satudata_pipeline import config
from satudata_pipeline.warehouse_lock import (
    LOCK_WAIT_ENV,
    WarehouseBusy,
    WarehouseLock,
    lock_path,
    pid_alive,
    read_holder,
)

SAMPLE = config.PROJECT_DIR / "data"
HASHED = ("main.golden_person", "main.person_source_link", "main.beneficiary_review")
RUN_LINE = re.compile(r"^run ([0-9a-f-]{36}): (succeeded|FAILED|not started)", re.M)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _satudata() -> list[str]:
    exe = Path(sys.executable).parent / "satudata"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "satudata_pipeline.cli"]


def _env(state: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "SATUDATA_STATE_DIR": str(state),
        "DAGSTER_HOME": str(state / "dagster_home"),
        **extra,
    }
    for k in ("SATUDATA_WAREHOUSE", "SATUDATA_RETRAIN", "SATUDATA_DATA_DIR"):
        env.pop(k, None)
    return env


def _start(state: Path, delivery: Path, name: str, **extra: str) -> tuple[subprocess.Popen, Path]:
    log = state.parent / f"{name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*_satudata(), "run", "--data-dir", str(delivery)],
            env=_env(state, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=config.PROJECT_DIR,
        )
    return proc, log


def _run_id(log: Path) -> str:
    found = RUN_LINE.findall(log.read_text())
    assert found, f"no run summary line in {log.name}"
    return found[-1][0]


def _connect(warehouse: Path) -> duckdb.DuckDBPyConnection:
    # the configuration of the Dagster DuckDB resource (see publish_helpers.connect)
    return duckdb.connect(str(warehouse), config={"custom_user_agent": "dagster"})


def publication_hash(warehouse: Path) -> dict[str, str]:
    with _connect(warehouse) as conn:
        return {
            t: hashlib.sha256(
                repr(conn.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()).encode()
            ).hexdigest()
            for t in HASHED
        }


def publication_log(warehouse: Path) -> list[tuple]:
    with _connect(warehouse) as conn:
        return conn.execute(
            "SELECT run_id, golden_person, person_source_link, beneficiary_review "
            "FROM main.publication_log ORDER BY published_at"
        ).fetchall()


def _step_started(home: Path, step: str, run_id_prefix: str = "") -> bool:
    for db in glob.glob(str(home / "history" / "runs" / f"{run_id_prefix}*.db")):
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
                n = con.execute(
                    "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'STEP_START' "
                    "AND step_key = ?",
                    [step],
                ).fetchone()[0]
        except sqlite3.Error:
            continue
        if n:
            return True
    return False


def _kill_at(proc: subprocess.Popen, home: Path, step: str, timeout: float = 300) -> int:
    known = set(glob.glob(str(home / "history" / "runs" / "*.db")))
    deadline = time.monotonic() + timeout
    while True:
        new = [
            Path(p).name
            for p in glob.glob(str(home / "history" / "runs" / "*.db"))
            if p not in known
        ]
        if any(_step_started(home, step, n.removesuffix(".db")) for n in new):
            break
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before step {step} started")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"step {step} did not start within {timeout} s")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    return proc.wait(timeout=60)


def _new_run_id(home: Path, before: set[str]) -> str:
    new = (
        {Path(p).stem for p in glob.glob(str(home / "history" / "runs" / "*.db"))}
        - before
        - {"index"}
    )
    assert len(new) == 1, new
    return new.pop()


def _run_dbs(home: Path) -> set[str]:
    return {Path(p).stem for p in glob.glob(str(home / "history" / "runs" / "*.db"))}


def next_start(state: Path, monkeypatch) -> tuple[dg.ExecuteInProcessResult, list[str]]:
    """A run starts on this state folder (here: re-exporting from the publication, as a run launched
    from the UI would) in the persistent instance. Returns the result and the run's log messages."""
    from satudata_pipeline.automation import FULL_JOB
    from satudata_pipeline.contract.sources import load_delivery
    from satudata_pipeline.definitions import build_defs

    monkeypatch.setenv("SATUDATA_STATE_DIR", str(state))
    defs = build_defs(load_delivery(SAMPLE), warehouse=str(state / "warehouse.duckdb"))
    with dg.DagsterInstance.from_config(str(state / "dagster_home")) as instance:
        result = defs.resolve_job_def(FULL_JOB).execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey("program_exports")],
            raise_on_error=False,
        )
        messages = [
            r.event_log_entry.user_message
            for r in instance.get_records_for_run(result.run_id, limit=10000).records
        ]
    return result, messages


def run_status(state: Path, run_id: str) -> tuple[str, list[str]]:
    with dg.DagsterInstance.from_config(str(state / "dagster_home")) as instance:
        run = instance.get_run_by_id(run_id)
        messages = [
            r.event_log_entry.dagster_event.message or ""
            for r in instance.get_records_for_run(run_id, limit=100000).records
            if r.event_log_entry.dagster_event
            and r.event_log_entry.dagster_event.event_type_value == "PIPELINE_FAILURE"
        ]
        in_progress = instance.get_runs_count(
            dg.RunsFilter(
                statuses=[
                    dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.STARTED,
                    dg.DagsterRunStatus.CANCELING,
                ]
            )
        )
    return run.status.value, messages + [f"in_progress={in_progress}"]


def _copy_state(published: dict, dst: Path) -> Path:
    shutil.copytree(published["state"], dst, symlinks=True)
    return dst


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def published(tmp_path_factory) -> dict:
    """The sample published once by `satudata run` into a fresh state folder."""
    root = tmp_path_factory.mktemp("fault_corpus_runs")
    state = root / "state"
    proc, log = _start(state, SAMPLE, "sample")
    rc = proc.wait(timeout=900)
    assert rc == 0, log.read_text()[-3000:]
    warehouse = state / "warehouse.duckdb"
    with _connect(warehouse) as conn:
        kjp_keep = conn.execute(
            "SELECT record_id FROM main.beneficiary_review WHERE program = 'KJP' "
            "AND verdict = 'keep' ORDER BY record_id LIMIT 1"
        ).fetchall()[0][0]
    return {
        "state": state,
        "root": root,
        "run_id": _run_id(log),
        "hash": publication_hash(warehouse),
        "log": publication_log(warehouse),
        "kjp_keep": kjp_keep,
    }


@pytest.fixture(scope="session")
def delivery_999(published) -> Path:
    """The sample, with one KJP row kept in the sample publication now paid Rp999,999,999,999 a month."""
    from satudata_pipeline.contract.sources import load_delivery

    out = published["root"] / "delivery_999"
    shutil.copytree(SAMPLE, out)
    spec = load_delivery(out).source("kjp_plus")
    path = out / spec.path
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    rid, amount = (
        header.index(spec.columns["record_id"]),
        header.index(spec.columns["nominal_bulanan"]),
    )
    hits = [r for r in rows[1:] if r[rid] == published["kjp_keep"]]
    assert len(hits) == 1
    hits[0][amount] = "999999999999"
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return out


@pytest.fixture(scope="module")
def three_at_once(published, delivery_999, tmp_path_factory) -> dict:
    """Run A (the sample) starts; a second later B (delivery_999, default wait) and C (wait 0) start."""
    state = _copy_state(published, tmp_path_factory.mktemp("three_at_once") / "state")
    a, log_a = _start(state, SAMPLE, "A")
    deadline = time.monotonic() + 120
    while (
        read_holder(state / "warehouse.duckdb") is None
    ):  # A initialised its resources: it holds the lock
        assert a.poll() is None and time.monotonic() < deadline, (
            "run A did not take the warehouse lock"
        )
        time.sleep(0.1)
    time.sleep(1)
    b, log_b = _start(state, delivery_999, "B")
    c, log_c = _start(state, SAMPLE, "C", **{LOCK_WAIT_ENV: "0"})
    rcs = {name: p.wait(timeout=900) for name, p in (("A", a), ("B", b), ("C", c))}
    return {
        "state": state,
        "rc": rcs,
        "pid_a": a.pid,
        "log": {"A": log_a.read_text(), "B": log_b.read_text(), "C": log_c.read_text()},
        "run_id": {"A": _run_id(log_a), "B": _run_id(log_b), "C": _run_id(log_c)},
    }


# --------------------------------------------------------------------------------------------
# the lock itself
# --------------------------------------------------------------------------------------------
def test_warehouse_lock_is_exclusive_names_the_holder_and_frees_on_release(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    first = WarehouseLock(warehouse)
    first.acquire("run-aaaa", 0)
    assert read_holder(warehouse).run_id == "run-aaaa" and read_holder(warehouse).pid == os.getpid()
    assert stat.S_IMODE(lock_path(warehouse).stat().st_mode) == 0o600
    second = WarehouseLock(
        warehouse
    )  # another open file description: a second run, even in this process
    with pytest.raises(WarehouseBusy) as busy:
        second.acquire("run-bbbb", 0)
    message = str(busy.value)
    assert (
        str(warehouse) in message and "run run-aaaa" in message and f"pid {os.getpid()}" in message
    )
    started = time.monotonic()
    with pytest.raises(WarehouseBusy):
        second.acquire("run-bbbb", 1.0)
    assert time.monotonic() - started >= 1.0
    first.release()
    assert read_holder(warehouse) is None
    assert second.acquire("run-bbbb", 0) < 1.0
    second.release()


def test_invalid_lock_wait_setting_is_refused_before_the_run(tmp_path):
    out = subprocess.run(
        [*_satudata(), "run", "--data-dir", str(SAMPLE)],
        capture_output=True,
        text=True,
        env=_env(tmp_path / "state", **{LOCK_WAIT_ENV: "soon"}),
        timeout=300,
    )
    assert out.returncode == 2
    assert f"invalid setting: {LOCK_WAIT_ENV} must be a number of seconds" in out.stderr
    assert not (tmp_path / "state" / "warehouse.duckdb").exists()


# --------------------------------------------------------------------------------------------
# the corpus
# --------------------------------------------------------------------------------------------
def test_two_runs_at_once_the_second_waits_and_publishes_after_the_first(published, three_at_once):
    state, ids, rc = three_at_once["state"], three_at_once["run_id"], three_at_once["rc"]
    warehouse = state / "warehouse.duckdb"
    assert rc["A"] == 0 and rc["B"] == 0, three_at_once["log"]
    log_b = three_at_once["log"]["B"]
    assert f"is in use by run {ids['A']}" in log_b and "waiting up to 300 s" in log_b
    # exactly one publication per run, in order: the sample's, A's, B's (never C's)
    log = publication_log(warehouse)
    assert [r[0] for r in log] == [published["run_id"], ids["A"], ids["B"]]
    assert log[1][1:] == published["log"][0][1:]  # A published the sample's rows, not B's
    # no step of B ran while A was running: B's first step starts after A's last step ended
    with dg.DagsterInstance.from_config(str(state / "dagster_home")) as instance:

        def steps(run_id):
            return [
                r.event_log_entry.timestamp
                for r in instance.get_records_for_run(run_id, limit=100000).records
                if r.event_log_entry.dagster_event
                and r.event_log_entry.dagster_event.event_type_value.startswith("STEP_")
            ]

        assert max(steps(ids["A"])) < min(steps(ids["B"]))
    # the last publication is B's delivery: its changed row, and the tables agree with each other
    with _connect(warehouse) as conn:
        verdict = conn.execute(
            "SELECT verdict FROM main.beneficiary_review WHERE program = 'KJP' AND record_id = ?",
            [published["kjp_keep"]],
        ).fetchall()
        orphans = conn.execute(
            "SELECT count(*) FROM main.beneficiary_review b WHERE b.person_id IS NOT NULL "
            "AND b.person_id NOT IN (SELECT person_id FROM main.golden_person)"
        ).fetchall()[0][0]
    assert verdict == [("review",)] and orphans == 0
    assert (
        publication_hash(warehouse)["main.golden_person"] == published["hash"]["main.golden_person"]
    )


def test_a_run_that_finds_the_warehouse_busy_with_wait_0_fails_at_once_and_publishes_nothing(
    published, three_at_once
):
    state, ids = three_at_once["state"], three_at_once["run_id"]
    assert three_at_once["rc"]["C"] == 3
    message = three_at_once["log"]["C"]
    warehouse = state / "warehouse.duckdb"
    assert (
        f"run {ids['C']}: not started: the warehouse {warehouse} is in use by run {ids['A']}"
        in message
    )
    assert f"(pid {three_at_once['pid_a']}, holding it since " in message
    assert "waited 0 s (SATUDATA_LOCK_WAIT_SECONDS=0)" in message
    assert ids["C"] not in [r[0] for r in publication_log(state / "warehouse.duckdb")]
    status, _ = run_status(state, ids["C"])
    assert status == "FAILURE"


def test_a_roster_amount_of_999_999_999_999_goes_to_review_with_its_reason(
    published, three_at_once
):
    """The row B changed (kept in the sample publication) is reviewed, with the reason and amounts in words."""
    with _connect(three_at_once["state"] / "warehouse.duckdb") as conn:
        row = conn.execute(
            "SELECT verdict, reasons, evidence, nominal_bulanan, nominal_aturan "
            "FROM main.beneficiary_review WHERE program = 'KJP' AND record_id = ?",
            [published["kjp_keep"]],
        ).fetchall()
    assert len(row) == 1
    verdict, reasons, evidence, nominal, rule = row[0]
    assert (verdict, reasons, nominal) == ("review", ["amount_above_rule"], 999_999_999_999)
    assert rule in (250_000, 300_000, 420_000, 450_000)  # KJP's amount for the row's jenjang
    assert (
        f"amount_above_rule: roster pays Rp999,999,999,999 a month, the program rule says Rp{rule:,}"
        in evidence
    )
    # the KJP office sees it in its export, as review
    exported = [
        r
        for p in (three_at_once["state"] / "exports" / "KJP").glob("KJP_31_*.csv")
        for r in _export_rows(p)
        if r["id_baris"] == published["kjp_keep"]
    ]
    assert [(r["keputusan"], r["alasan"], r["kode_alasan"]) for r in exported] == [
        ("tinjau", "nominal di atas aturan (amount_above_rule)", "amount_above_rule")
    ]


def test_run_killed_before_the_publish_commit_leaves_the_publication_and_does_not_block_the_queue(
    published, delivery_999, tmp_path, monkeypatch
):
    state = _copy_state(published, tmp_path / "state")
    home = state / "dagster_home"
    before = _run_dbs(home)
    proc, _ = _start(state, delivery_999, "killed_before")
    assert _kill_at(proc, home, "beneficiary_review") == -signal.SIGKILL
    killed = _new_run_id(home, before)
    assert publication_hash(state / "warehouse.duckdb") == published["hash"]
    assert run_status(state, killed)[0] == "STARTED"  # what blocked the daemon's queue
    result, messages = next_start(state, monkeypatch)
    assert result.success
    status, failure = run_status(state, killed)
    assert status == "FAILURE" and failure[-1] == "in_progress=0"
    assert any("the process of this run" in m and "is gone" in m for m in failure)
    assert any(f"run {killed} died while it held this warehouse" in m for m in messages)
    assert publication_hash(state / "warehouse.duckdb") == published["hash"]
    assert [r[0] for r in publication_log(state / "warehouse.duckdb")] == [published["run_id"]]


def test_run_killed_after_the_publish_commit_is_recovered_and_its_exports_rebuilt(
    published, delivery_999, tmp_path, monkeypatch
):
    state = _copy_state(published, tmp_path / "state")
    home, warehouse, exports = state / "dagster_home", state / "warehouse.duckdb", state / "exports"
    before = _run_dbs(home)
    proc, _ = _start(state, delivery_999, "killed_after")
    assert _kill_at(proc, home, "program_exports") == -signal.SIGKILL
    killed = _new_run_id(home, before)
    # it published (the commit happened), the exports still follow the sample publication
    assert [r[0] for r in publication_log(warehouse)] == [published["run_id"], killed]
    assert publication_hash(warehouse) != published["hash"]
    assert (
        json.loads((exports / "_manifest.json").read_text())["publication_run_id"]
        == published["run_id"]
    )
    result, messages = next_start(state, monkeypatch)
    assert result.success
    status, failure = run_status(state, killed)
    assert status == "FAILURE" and failure[-1] == "in_progress=0"
    assert any(
        f"the exports followed publication {published['run_id']}, but the latest is {killed}" in m
        for m in messages
    )
    assert json.loads((exports / "_manifest.json").read_text())["publication_run_id"] == killed
    exported = [
        r
        for p in (exports / "KJP").glob("KJP_31_*.csv")
        for r in _export_rows(p)
        if r["id_baris"] == published["kjp_keep"]
    ]
    assert [r["keputusan"] for r in exported] == ["tinjau"]
    assert not [p for p in exports.iterdir() if p.name.startswith(".")]


def test_a_program_no_longer_published_has_its_export_folder_archived(
    published, tmp_path, monkeypatch
):
    state = _copy_state(published, tmp_path / "state")
    exports = state / "exports"
    old_xlsx = (exports / "KAJ" / "KAJ_review.xlsx").read_bytes()
    # the publication of a delivery without the KAJ roster
    with _connect(state / "warehouse.duckdb") as conn:
        conn.execute("DELETE FROM main.beneficiary_review WHERE program = 'KAJ'")
    result, messages = next_start(state, monkeypatch)
    assert result.success
    archived = exports / "_arsip" / f"{dt.date.today().isoformat()}-KAJ"
    assert not (exports / "KAJ").exists()
    assert (archived / "KAJ_review.xlsx").read_bytes() == old_xlsx and list(archived.glob("*.csv"))
    assert sorted(p.name for p in exports.iterdir() if p.is_dir()) == [
        "KJMU",
        "KJP",
        "KLJ",
        "KPDJ",
        "_arsip",
    ]
    assert "KAJ" not in json.loads((exports / "_manifest.json").read_text())["programs"]
    assert any(
        f"program KAJ is no longer published: its export folder was moved to {archived}" in m
        for m in messages
    )
    # retired twice the same day: kept side by side, never overwritten
    (exports / "KAJ").mkdir()
    from satudata_pipeline.programs.exports import retire_unpublished

    moved = retire_unpublished(exports, ["KJMU", "KJP", "KLJ", "KPDJ"])
    assert moved == {"KAJ": exports / "_arsip" / f"{dt.date.today().isoformat()}-KAJ-2"}
    assert (archived / "KAJ_review.xlsx").exists()


def _export_rows(path: Path) -> list[dict]:
    """The rows of an office CSV (`;`-separated, UTF-8 with BOM: docs/programs.md)."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=";"))


def _modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]
    }


def test_warehouse_exports_and_reports_are_owner_only(published, tmp_path, monkeypatch):
    state = published["state"]
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for sub in (
        "warehouse.duckdb",
        "warehouse.duckdb.lock",
        "exports",
        "reports",
        "models",
        "dagster_home",
    ):
        assert (state / sub).exists(), sub
    leaky = {k: oct(v) for k, v in _modes(state).items() if v & 0o077}
    assert leaky == {}
    # a state folder written before (0755 folders, 0644 files) is made private by the next run
    copy = _copy_state(published, tmp_path / "state")
    copy.chmod(0o755)
    (copy / "warehouse.duckdb").chmod(0o644)
    (copy / "exports").chmod(0o755)
    result, _ = next_start(copy, monkeypatch)
    assert result.success
    assert stat.S_IMODE(copy.stat().st_mode) == 0o700
    assert stat.S_IMODE((copy / "warehouse.duckdb").stat().st_mode) == 0o600
    assert stat.S_IMODE((copy / "exports").stat().st_mode) == 0o700
    assert all(not m & 0o077 for m in _modes(copy / "exports" / "KJP").values())


# --------------------------------------------------------------------------------------------
# satudata ui
# --------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(p.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(p.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def test_satudata_ui_sigterm_leaves_no_children(tmp_path):
    from satudata_pipeline.cli import group_members

    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to find the processes of the UI")
    port = _free_port()
    env = _env(tmp_path / "state", SATUDATA_DATA_DIR=str(SAMPLE))
    proc = subprocess.Popen(
        [*_satudata(), "ui", "--port", str(port)],
        env=env,
        cwd=config.PROJECT_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, up = time.monotonic() + 180, False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql",
                    data=b'{"query": "{ version }"}',
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=5) as r:
                    up = bool(json.loads(r.read()).get("data"))
            except (OSError, ValueError):
                pass
            if up:
                break
            time.sleep(1)
        if not up:
            pytest.skip("the Dagster webserver did not come up in this environment")
        (dev,) = _children(proc.pid)  # `dagster dev`, leader of its own process group
        members = group_members(dev)
        assert (
            dev in members and len(members) >= 3
        )  # dagster dev, the webserver, the daemon (+ code servers)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 128 + signal.SIGTERM
        left = [p for p in members if pid_alive(p)]
        assert left == [] and group_members(dev) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_recovery_reports_only_runs_whose_process_is_gone():
    """Unit level: of two STARTED runs on the warehouse, the one whose process is alive is left alone."""
    from satudata_pipeline.warehouse_lock import TAG_PID, TAG_WAREHOUSE_FILE, recover_dead_runs

    @dg.op
    def noop():
        return None

    @dg.job
    def job():
        noop()

    gone = subprocess.Popen(["true"])
    gone.wait()
    warehouse = "/tmp/some/warehouse.duckdb"
    with dg.DagsterInstance.ephemeral() as instance:
        runs = {}
        for name, pid, where in (
            ("alive", os.getpid(), warehouse),
            ("dead", gone.pid, warehouse),
            ("elsewhere", gone.pid, "/tmp/other/warehouse.duckdb"),
        ):
            run = instance.create_run_for_job(
                job_def=job,
                tags={TAG_WAREHOUSE_FILE: where, TAG_PID: str(pid)},
                status=dg.DagsterRunStatus.STARTED,
            )
            runs[name] = run.run_id
        assert recover_dead_runs(instance, warehouse, "current-run") == [runs["dead"]]
        status = {k: instance.get_run_by_id(v).status for k, v in runs.items()}
    assert status == {
        "alive": dg.DagsterRunStatus.STARTED,
        "dead": dg.DagsterRunStatus.FAILURE,
        "elsewhere": dg.DagsterRunStatus.STARTED,
    }
