"""Incremental linkage at scale: a full run vs an incremental run on next month's delivery (issue 17).

    .venv/bin/python benchmarks/incremental.py --persons 100000 --seed 7

1. generate a delivery (month 0) and next month's (`synthetic.next_month`, about 2% of rows changed);
2. warehouse A: run month 0 (full: no previous state; trains the model), then month 1
   (incremental: the state of month 0 is reused);
3. warehouse B (fresh, the same saved model copied over): run month 1 (full: no previous state);
4. compare A and B: the pairs above the match threshold, the clusters, the verdicts.

Each run is the published job executed in this process (like `satudata run`); the times are wall
seconds per step from the run's STEP_SUCCESS events (duration) and, since the machine is shared, the
process CPU seconds (user + system, DuckDB's threads included) between each step's STEP_START and
its STEP_SUCCESS (steps run one after another in this process): `cpu_steps`, `cpu_seconds`. Results: printed as JSON and
written to benchmarks/results/<date>-incremental-<persons>-<seed>.json. Work files go to
benchmarks/work/incremental-<persons>-<seed>/ (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LINK_STEPS = ("person_records", "linkage_model", "match_pairs", "person_clusters")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class StepCPU(logging.Handler):
    """Process CPU seconds per step, from the STEP_START / STEP_SUCCESS lines of the run's log."""

    LINE = re.compile(r" - ([\w.\[\]-]+) - (STEP_START|STEP_SUCCESS) - ")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.started: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        m = self.LINE.search(record.getMessage())
        if not m:
            return
        if m.group(2) == "STEP_START":
            self.started[m.group(1)] = _cpu()
        elif m.group(1) in self.started:
            self.cpu[m.group(1)] = round(_cpu() - self.started.pop(m.group(1)), 2)


def run(data_dir: Path, state: Path) -> dict:
    """The full job on `data_dir` with state folder `state`: wall seconds, per step, and the
    match_pairs metadata (mode, counts)."""
    import duckdb  # noqa: F401  (imported before dagster, as the CLI does)
    from dagster import DagsterEventType
    from dagster import _loggers as dagster_loggers

    from satudata_pipeline.automation import FULL_JOB
    from satudata_pipeline.contract.sources import load_delivery
    from satudata_pipeline.definitions import build_defs

    os.environ["SATUDATA_STATE_DIR"] = str(state)
    state.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.time(), _cpu()
    cpu = StepCPU()
    console = dagster_loggers.create_console_logger

    def console_with_cpu(name, level):  # the run's default console logger, also feeding StepCPU
        logger = console(name, level)
        logger.addHandler(cpu)
        return logger

    dagster_loggers.create_console_logger = console_with_cpu
    try:
        defs = build_defs(load_delivery(data_dir), warehouse=str(state / "warehouse.duckdb"))
        result = defs.resolve_job_def(FULL_JOB).execute_in_process(raise_on_error=True)
    finally:
        dagster_loggers.create_console_logger = console
    wall, cpu_total = time.time() - t0, _cpu() - c0
    steps, meta = {}, {}
    for ev in result.all_events:
        if ev.event_type == DagsterEventType.STEP_SUCCESS:
            steps[ev.step_key] = round(ev.event_specific_data.duration_ms / 1000, 2)
    for e in result.get_asset_materialization_events():
        if e.asset_key.to_user_string() == "match_pairs":
            md = e.step_materialization_data.materialization.metadata
            meta = {
                k: v.value
                for k, v in md.items()
                if k.startswith(("linkage_mode", "records_", "pairs_", "scoring_"))
            }
    return {
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu_total, 1),
        "steps": steps,
        "cpu_steps": cpu.cpu,
        "link_stage_seconds": round(sum(steps.get(s, 0) for s in LINK_STEPS), 1),
        "match_pairs": meta,
    }


def compare(a: Path, b: Path) -> dict:
    import duckdb

    queries = {
        "pairs": "SELECT unique_id_l, unique_id_r, link_method, round(match_probability, 9) "
        "FROM link.match_pairs ORDER BY 1, 2",
        "clusters": "SELECT list(unique_id ORDER BY unique_id) AS m FROM link.person_clusters "
        "GROUP BY cluster_id ORDER BY m",
        "verdicts": "SELECT source, record_id, verdict, reasons FROM main.beneficiary_review "
        "ORDER BY 1, 2",
    }
    out = {}
    for name, sql in queries.items():
        with (
            duckdb.connect(str(a), read_only=True) as ca,
            duckdb.connect(str(b), read_only=True) as cb,
        ):
            ra, rb = ca.execute(sql).fetchall(), cb.execute(sql).fetchall()
        out[name] = {"incremental": len(ra), "full": len(rb), "identical": ra == rb}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work")
    args = ap.parse_args(argv)

    from satudata_pipeline import config
    from satudata_pipeline.synthetic import generate
    from satudata_pipeline.synthetic.next_month import next_month

    os.umask(config.OWNER_ONLY_UMASK)
    work = args.work / f"incremental-{args.persons}-{args.seed}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    res: dict = {
        "persons": args.persons,
        "seed": args.seed,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="minutes"),
    }
    t = time.time()
    generate(args.persons, args.seed, work / "month0")
    res["generate_seconds"] = round(time.time() - t, 1)
    t = time.time()
    nm = next_month(work / "month0", work / "month1")
    res["next_month_seconds"] = round(time.time() - t, 1)
    res["next_month"] = {k: nm[k] for k in ("rows", "changes", "rows_changed_share")}
    res["month0_full_A"] = run(work / "month0", work / "A")
    res["month1_incremental_A"] = run(work / "month1", work / "A")
    (work / "B").mkdir()
    shutil.copytree(work / "A" / "models", work / "B" / "models")
    res["month1_full_B"] = run(work / "month1", work / "B")
    res["same_result"] = compare(work / "A" / "warehouse.duckdb", work / "B" / "warehouse.duckdb")
    inc, full = res["month1_incremental_A"], res["month1_full_B"]
    res["ratio_end_to_end"] = round(inc["wall_seconds"] / full["wall_seconds"], 3)
    res["ratio_cpu_end_to_end"] = round(inc["cpu_seconds"] / full["cpu_seconds"], 3)
    res["ratio_match_pairs"] = round(inc["steps"]["match_pairs"] / full["steps"]["match_pairs"], 3)
    res["ratio_link_stage"] = round(inc["link_stage_seconds"] / full["link_stage_seconds"], 3)
    out = (
        ROOT
        / "benchmarks"
        / "results"
        / (f"{dt.date.today().isoformat()}-incremental-{args.persons}-{args.seed}.json")
    )
    out.write_text(json.dumps(res, indent=2), encoding="utf-8")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
