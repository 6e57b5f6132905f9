"""Shared by test_publish_atomic.py and test_rerun_identical.py: run the whole graph, snapshot what is published."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from satudata_pipeline.golden.publish import LOG_TABLE, PUBLISHED

# the history of determinations (docs/monthly.md): appended by every publication, untouched otherwise
HISTORY_TABLES = [
    "history.determinations",
    "history.review_rows",
    "history.source_row_hashes",
    "main.determination_changes",
]
# everything a consumer of the warehouse sees: the published tables, the id registry and the history
SNAPSHOT_TABLES = [p.published for p in PUBLISHED] + [
    "golden.person_id_registry",
    "golden.person_id_members",
    "golden.person_id_changes",
    LOG_TABLE,
    *HISTORY_TABLES,
]


def run_job(data_dir: Path, warehouse: Path, raise_on_error: bool = False):
    """The full determination in-process (ephemeral Dagster instance), as the CLI runs it."""
    from satudata_pipeline.automation import FULL_JOB
    from satudata_pipeline.contract.sources import load_delivery
    from satudata_pipeline.definitions import build_defs

    defs = build_defs(load_delivery(data_dir), warehouse=str(warehouse))
    return defs.resolve_job_def(FULL_JOB).execute_in_process(raise_on_error=raise_on_error)


def connect(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """A connection with the configuration of the Dagster DuckDB resource: after a step failed in this
    process, dagster_duckdb has not closed its connection (no try/finally around its `yield`), and DuckDB
    refuses a second connection to the same file with a different configuration (e.g. read_only)."""
    return duckdb.connect(str(warehouse), config={"custom_user_agent": "dagster"})


def snapshot(warehouse: Path, tables=SNAPSHOT_TABLES) -> dict[str, tuple[list, list]]:
    """{table: (column names and types, every row in stored order)}."""
    with connect(warehouse) as conn:
        return {
            t: (
                conn.execute(f"DESCRIBE {t}").fetchall(),
                conn.execute(f"SELECT * FROM {t}").fetchall(),
            )
            for t in tables
        }


def assert_consistent(warehouse: Path) -> None:
    """Every person_id of the published links and review exists in the published golden person, and the
    id registry's members are exactly the golden persons."""
    with connect(warehouse) as conn:
        for table in (
            "main.person_source_link",
            "main.beneficiary_review",
            "programs.eligible_not_enrolled",
        ):
            orphans = conn.execute(
                f"SELECT count(*) FROM {table} t WHERE t.person_id IS NOT NULL "
                "AND t.person_id NOT IN (SELECT person_id FROM main.golden_person)"
            ).fetchall()[0][0]
            assert orphans == 0, f"{table}: {orphans} person_id(s) not in main.golden_person"
        diff = conn.execute(
            "SELECT count(*) FROM ((SELECT DISTINCT person_id FROM golden.person_id_members) "
            "EXCEPT (SELECT person_id FROM main.golden_person))"
        ).fetchall()[0][0]
        assert diff == 0
        assert conn.execute("SELECT count(*) FROM main.golden_person").fetchall()[0][0] > 0


def materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def copy_state(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def drop_last_rows(path: Path, n: int) -> None:
    """Remove the last n data lines of a csv (the delivery changed: fewer roster/death rows)."""
    data = path.read_bytes()
    lines = data.rstrip(b"\r\n").split(b"\n")
    path.write_bytes(b"\n".join(lines[:-n]) + b"\n")


def changed_delivery(src: Path, dst: Path) -> Path:
    """A copy of a generated delivery with fewer death-registry and KAJ roster rows."""
    shutil.copytree(src, dst)
    drop_last_rows(dst / "dukcapil_kematian.csv", 5)
    drop_last_rows(dst / "roster_kaj.csv", 5)
    return dst


__all__ = [
    "HISTORY_TABLES",
    "SNAPSHOT_TABLES",
    "assert_consistent",
    "changed_delivery",
    "connect",
    "copy_state",
    "materialized",
    "run_job",
    "snapshot",
    "dg",
]


@contextmanager
def generated_delivery(root: Path):
    """A generated delivery (600 persons, seed 5) and an empty state folder used for the duration."""
    from satudata_pipeline.synthetic import generate

    delivery = root / "delivery"
    generate(600, seed=5, out=delivery)
    state = root / "state"
    state.mkdir(parents=True)  # DuckDB does not create the folder of the warehouse file
    saved = os.environ.get("SATUDATA_STATE_DIR")
    os.environ["SATUDATA_STATE_DIR"] = str(state)
    try:
        yield delivery, state
    finally:
        if saved is None:
            os.environ.pop("SATUDATA_STATE_DIR", None)
        else:
            os.environ["SATUDATA_STATE_DIR"] = saved
