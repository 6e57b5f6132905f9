"""The whole graph on the shipped sample, as a user runs it: the published job, every check, the UI.

One run of the full determination (module-scoped: it is the slow part) in a persistent Dagster
instance, then: outcome assertions on the published tables, ERROR checks fail the suite, no personal
data in the event log, and the real webserver on 127.0.0.1 serving every asset and check with a status.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from satudata_pipeline import config

SAMPLE = config.PROJECT_DIR / "data"


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    state = tmp_path_factory.mktemp("state")
    env = {
        "DAGSTER_HOME": str(home),
        "SATUDATA_STATE_DIR": str(state),
        "SATUDATA_DATA_DIR": str(SAMPLE),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    os.environ.pop("SATUDATA_WAREHOUSE", None)
    try:
        from satudata_pipeline.automation import FULL_JOB
        from satudata_pipeline.cli import dagster_home, failed_error_checks, launch_in_code_location
        from satudata_pipeline.contract.sources import load_delivery
        from satudata_pipeline.definitions import build_defs

        dagster_home()
        defs = build_defs(load_delivery(SAMPLE), warehouse=str(state / "warehouse.duckdb"))
        with dg.DagsterInstance.get() as instance:
            # the way `satudata run` runs it: in this process, as a run of the code location
            result = launch_in_code_location(instance, run_config={}, tags={})
            assert result.dagster_run.job_name == FULL_JOB
            events = [
                r.event_log_entry
                for r in instance.get_records_for_run(result.run_id, limit=100000).records
            ]
        yield {
            "result": result,
            "defs": defs,
            "failed_error_checks": failed_error_checks(result),
            "events": events,
            "home": home,
            "state": state,
            "warehouse": state / "warehouse.duckdb",
            "env": env,
        }
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_full_run_succeeds_with_no_error_check_failing(sample_run):
    assert sample_run["result"].success
    assert sample_run["failed_error_checks"] == []


def test_every_asset_materialized(sample_run):
    materialized = {e.asset_key for e in sample_run["result"].get_asset_materialization_events()}
    graph = sample_run["defs"].resolve_asset_graph()
    assert set(graph.get_all_asset_keys()) == materialized


def test_published_tables_follow_the_contract(sample_run):
    conn = duckdb.connect(str(sample_run["warehouse"]), read_only=True)
    link = conn.execute(
        "SELECT source, record_id, person_id, link_method, match_probability FROM main.person_source_link"
    ).df()
    truth = pd.read_csv(SAMPLE / "truth" / "records.csv", dtype=str)
    # none lost: one link row per delivered row of every source
    assert len(link) == len(truth)
    linked = link[link.link_method != "quarantined"]
    # only rows quarantined for a repeated record_id may share a key
    assert not linked.duplicated(["source", "record_id"]).any()
    assert link.loc[link.link_method != "quarantined", "person_id"].notna().all()
    golden = conn.execute("SELECT * FROM main.golden_person").df()
    assert golden.person_id.is_unique
    assert set(link.person_id.dropna()) == set(golden.person_id)
    review = conn.execute(
        "SELECT program, record_id, person_id, verdict, reasons, nominal_bulanan FROM main.beneficiary_review"
    ).df()
    assert set(review.verdict) <= {"keep", "remove", "review"}
    rosters = conn.execute(
        "SELECT count(*) FROM link.person_records WHERE kind = 'program_roster'"
    ).fetchall()[0][0]
    quarantined_rosters = conn.execute(
        "SELECT count(*) FROM clean.quarantine q JOIN main.person_source_link l USING (source, record_id) "
        "WHERE l.link_method = 'quarantined' AND q.source IN (SELECT DISTINCT source FROM link.person_records WHERE kind='program_roster')"
    ).fetchall()[0][0]
    assert len(review) == rosters + quarantined_rosters
    assert (review.loc[review.verdict == "keep", "reasons"].map(len) == 0).all()


PUBLISHED_BY_ASSET = {
    "golden_person": "main.golden_person",
    "person_source_link": "main.person_source_link",
    "beneficiary_review": "main.beneficiary_review",
    "eligible_not_enrolled": "programs.eligible_not_enrolled",
    "program_summary": "programs.program_summary",
}


def test_published_tables_carry_table_name_and_described_column_schema(sample_run):
    """Every column of every published table is described (contract/published_columns.yaml) and
    the asset shows the published table's name, schema and row count in the UI."""
    conn = duckdb.connect(str(sample_run["warehouse"]), read_only=True)
    meta = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in sample_run["result"].get_asset_materialization_events()
    }
    for asset, table in PUBLISHED_BY_ASSET.items():
        md = meta[asset]
        assert md["dagster/table_name"].value == table
        columns = {c.name: c for c in md["dagster/column_schema"].value.columns}
        published = [r[0] for r in conn.execute(f"DESCRIBE {table}").fetchall()]
        assert list(columns) == published, table
        undescribed = [n for n, c in columns.items() if not c.description]
        assert not undescribed, f"{table}: columns without a description {undescribed}"
        assert (
            md["dagster/row_count"].value
            == conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        )
    assert (
        "dagster/row_count" not in meta["published_lists"]
    )  # not a table: its rows per table instead
    assert "| beneficiary_review |" in meta["published_lists"]["rows_by_table"].value
    conn.close()


def test_verdicts_match_ground_truth_on_the_sample(sample_run):
    from satudata_pipeline.programs.evaluation import verdict_accuracy

    conn = duckdb.connect(str(sample_run["warehouse"]), read_only=True)
    truth = pd.read_csv(SAMPLE / "truth" / "verdicts.csv", dtype=str, keep_default_na=False)
    scores = verdict_accuracy(conn, truth)
    assert scores["accuracy"] >= 0.95, scores
    for reason in ("deceased", "moved_out"):
        assert scores["per_reason"][reason]["recall"] >= 0.97, scores["per_reason"][reason]
        assert scores["per_reason"][reason]["precision"] >= 0.97, scores["per_reason"][reason]


def test_no_personal_data_in_the_event_log(sample_run):
    """Scan every event of the run (logs, metadata, check results) for the sample's NIKs and names."""
    persons = pd.read_parquet(SAMPLE / "truth" / "persons.parquet")
    nik_col = next(c for c in persons.columns if c.lower() == "nik")
    name_col = next(c for c in persons.columns if c.lower() in ("nama", "name", "nama_lengkap"))
    niks = set(persons[nik_col].dropna().astype(str))
    # full names of two tokens or more: single common tokens (e.g. "SITI") also occur in prose
    names = {n.upper() for n in persons[name_col].dropna().astype(str) if len(n.split()) >= 2}
    blob = "\n".join(dg.serialize_value(e) for e in sample_run["events"]).upper()
    leaked_niks = [n for n in niks if n in blob]
    leaked_names = [n for n in names if n in blob]
    assert not leaked_niks, f"{len(leaked_niks)} NIKs found in the event log"
    assert not leaked_names, f"{len(leaked_names)} names found in the event log"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def webserver(sample_run):
    port = _free_port()
    env = {**os.environ, **sample_run["env"], "SATUDATA_WAREHOUSE": str(sample_run["warehouse"])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_webserver",
            "-w",
            str(config.PROJECT_DIR / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=config.PROJECT_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                data = _graphql(port, "{ version }")
                if data.get("data"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("the Dagster webserver did not come up on 127.0.0.1")
            time.sleep(1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


ASSET_QUERY = """
{ assetNodes {
    assetKey { path } groupName description kinds
    assetMaterializations(limit: 1) { timestamp }
    assetChecksOrError { ... on AssetChecks { checks { name description blocking
        executionForLatestMaterialization { status } } } }
} }
"""


def test_cli_run_is_a_run_of_the_code_location(sample_run, webserver):
    """A run started by `satudata run` shows in the job's Runs tab and the timeline like a UI run."""
    data = _graphql(
        webserver,
        """{ pipelineOrError(params: {repositoryLocationName: "satudata",
        repositoryName: "__repository__", pipelineName: "satudata_full_determination"}) {
        ... on Pipeline { pipelineSnapshotId
            runs { runId status pipelineSnapshotId repositoryOrigin { repositoryLocationName } } } } }""",
    )
    job = data["data"]["pipelineOrError"]
    runs = {r["runId"]: r for r in job["runs"]}
    run = runs[sample_run["result"].run_id]
    assert (
        run["status"] == "SUCCESS"
        and run["repositoryOrigin"]["repositoryLocationName"] == "satudata"
    )
    # the run was stored by the CLI's process, the job is the code server's: one snapshot, so the UI
    # re-executes it without "a different version of the job" (satudata_pipeline/dagster_patches.py)
    assert run["pipelineSnapshotId"] == job["pipelineSnapshotId"]


def test_webserver_serves_every_asset_and_check_with_a_status(sample_run, webserver):
    nodes = _graphql(webserver, ASSET_QUERY)["data"]["assetNodes"]
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    graph = sample_run["defs"].resolve_asset_graph()
    expected = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert expected <= set(by_key)
    for key in expected:
        node = by_key[key]
        assert node["groupName"] in {"sources", "clean", "link", "golden", "programs"}, key
        assert node["description"], key
        assert node["assetMaterializations"], f"{key} has no materialization in the UI"
        for check in node["assetChecksOrError"].get("checks", []):
            assert check["description"], f"{key}:{check['name']}"
            status = (check["executionForLatestMaterialization"] or {}).get("status")
            assert status in {"SUCCEEDED", "FAILED", "SKIPPED"}, (
                f"{key}:{check['name']} has status {status}"
            )


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
    "--virtual-time-budget=20000",
]


def _browser(chromium: str, profile: Path, url: str, screenshot: Path) -> str:
    """Open `url` in headless Chromium: keep a screenshot, return the rendered page's visible text."""
    common = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    subprocess.run(
        [*common, f"--screenshot={screenshot}", url], check=True, timeout=120, capture_output=True
    )
    dom = subprocess.run(
        [*common, "--dump-dom", url], check=True, timeout=120, capture_output=True, text=True
    ).stdout
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def test_ui_pages_render_in_a_browser(sample_run, webserver, tmp_path):
    """The pages an operator opens after a run, rendered by a real browser (screenshots kept under
    <state>/ui_screenshots/ for CI): the lineage with its five stages, an asset page with its row
    count, and the asset's checks with their results."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip(
            "chromium is not installed (Debian package `chromium`): no browser test of the UI"
        )
    shots = config.state_dir() / "ui_screenshots"
    shots.mkdir(exist_ok=True)
    _graphql(
        webserver, "mutation { setNuxSeen }"
    )  # no first-visit newsletter dialog over the pages
    base = f"http://127.0.0.1:{webserver}"
    profile = tmp_path / "chrome"

    lineage = _browser(chromium, profile, f"{base}/asset-groups", shots / "lineage.png")
    assert "Global asset lineage" in lineage
    for group in ("sources", "clean", "link", "golden", "programs"):
        assert f" {group} " in lineage, group

    with duckdb.connect(str(sample_run["warehouse"]), read_only=True) as conn:
        rows = conn.execute("SELECT count(*) FROM main.beneficiary_review").fetchall()[0][0]
    asset = _browser(
        chromium, profile, f"{base}/assets/beneficiary_review", shots / "beneficiary_review.png"
    )
    assert re.search(rf"Row count {rows:,} ", asset), (
        "the asset page does not show the table's row count"
    )

    checks = _browser(
        chromium,
        profile,
        f"{base}/assets/beneficiary_review?view=checks",
        shots / "beneficiary_review_checks.png",
    )
    for name in ("no_deceased_or_moved_keep", "no_double_enrollment_keep"):
        assert re.search(rf"{name} {name} Succeeded", checks), name
    for png in ("lineage.png", "beneficiary_review.png", "beneficiary_review_checks.png"):
        assert (shots / png).stat().st_size > 10_000, png
