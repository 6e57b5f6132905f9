"""Speed, memory and accuracy of the whole pipeline at scale, side by side with bare Splink.

    .venv/bin/python benchmarks/run_benchmark.py --persons 100000 --seed 7
    .venv/bin/python benchmarks/run_benchmark.py --persons 1000000 --seed 11

For one size and seed it: generates the delivery (timed, in its own process), runs the published
Dagster job exactly as `satudata run` does (in its own process, sampling its memory, timing every
step from the run's events), scores links and verdicts against the ground truth, then runs a bare
Splink 5 deduplication of the same person rows with a standard model (names, birth date, address;
u by random sampling, m by EM), timed and scored the same way. Results go to
benchmarks/results/<date>-<persons>-<seed>.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


class PeakMemory:
    """Samples the RSS of a process tree every 0.2 s; keeps the series for per-step peaks."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                rss = self.proc.memory_info().rss + sum(
                    c.memory_info().rss for c in self.proc.children(recursive=True)
                )
                self.samples.append((time.time(), rss))
            except psutil.Error:
                break
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        return max((r for _, r in self.samples), default=0)

    def peak_between(self, start: float, end: float) -> int:
        return max((r for t, r in self.samples if start <= t <= end + 0.2), default=0)


def run_measured(cmd: list[str], env: dict) -> tuple[float, int, PeakMemory]:
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    with PeakMemory(proc.pid) as mem:
        code = proc.wait()
    if code != 0:
        raise SystemExit(f"{' '.join(cmd[:3])}... failed with exit code {code}")
    return time.monotonic() - started, mem.peak, mem


# ---- stages run in their own process -------------------------------------------------------------

def stage_generate(args) -> None:
    from satudata_pipeline.synthetic import generate

    generate(args.persons, seed=args.seed, out=Path(args.data_dir))


def stage_pipeline(args) -> None:
    """The published job, as `satudata run` runs it; writes step timings to --out."""
    import dagster as dg

    from satudata_pipeline.automation import FULL_JOB
    from satudata_pipeline.contract.sources import load_delivery
    from satudata_pipeline.definitions import build_defs

    defs = build_defs(load_delivery(Path(args.data_dir)), warehouse=args.warehouse)
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(FULL_JOB).execute_in_process(instance=instance, raise_on_error=False)
        steps: dict[str, dict] = {}
        for event in result.all_events:
            if event.step_key is None:
                continue
            record = steps.setdefault(event.step_key, {})
            ts = event.timestamp if hasattr(event, "timestamp") else None
            if event.event_type_value == "STEP_START":
                record["start"] = ts
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                record["end"] = ts
                record["status"] = event.event_type_value
            elif event.event_type_value == "ASSET_MATERIALIZATION":
                md = event.event_specific_data.materialization.metadata
                rc = md.get("dagster/row_count")
                if rc is not None:
                    record["rows_out"] = int(rc.value)
    Path(args.out).write_text(json.dumps({"success": result.success, "steps": steps}))


def stage_baseline(args) -> None:
    """Bare Splink 5: dedupe every person row with a standard model, cluster at 0.95."""
    import duckdb
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    conn = duckdb.connect(args.warehouse)
    conn.execute("""
        CREATE OR REPLACE TABLE bench_baseline_input AS
        SELECT unique_id, nama AS full_name, first_name, last_name,
               tanggal_lahir, alamat, kode_kelurahan
        FROM link.person_records
    """)
    timings = {}
    t0 = time.monotonic()
    db_api = DuckDBAPI(connection=conn)
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("last_name").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("tanggal_lahir", input_is_string=False),
            cl.LevenshteinAtThresholds("alamat", 2),
            cl.ExactMatch("kode_kelurahan"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("first_name", "tanggal_lahir"),
            block_on("last_name", "tanggal_lahir"),
            block_on("full_name", "kode_kelurahan"),
        ],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(db_api.register("bench_baseline_input"), settings)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("first_name", "last_name", "tanggal_lahir")], recall=0.8
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("tanggal_lahir"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("first_name", "last_name"))
    timings["train_s"] = time.monotonic() - t0
    t1 = time.monotonic()
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, 0.95)
    conn.execute(f"CREATE OR REPLACE TABLE bench_baseline_clusters AS SELECT unique_id, cluster_id FROM {clusters.physical_name}")
    timings["predict_cluster_s"] = time.monotonic() - t1
    timings["total_s"] = time.monotonic() - t0
    Path(args.out).write_text(json.dumps(timings))


# ---- scoring -----------------------------------------------------------------------------------

def score(warehouse: str, truth_dir: Path) -> dict:
    import duckdb
    import pandas as pd

    from satudata_pipeline.link.evaluation import pairwise_scores
    from satudata_pipeline.programs.evaluation import verdict_accuracy

    records = pd.read_csv(truth_dir / "records.csv", dtype=str, keep_default_na=False)
    records = records[records["person_key"] != ""]
    verdicts = pd.read_csv(truth_dir / "verdicts.csv", dtype=str, keep_default_na=False)
    conn = duckdb.connect(warehouse)
    ours = pairwise_scores(conn, records)
    verdict = verdict_accuracy(conn, verdicts)
    conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
    conn.execute("CREATE OR REPLACE VIEW link.person_clusters_ours AS SELECT * FROM link.person_clusters")
    # score the baseline with the same function by pointing it at the baseline clusters
    conn.execute("ALTER TABLE link.person_clusters RENAME TO person_clusters_saved")
    try:
        conn.execute("CREATE TABLE link.person_clusters AS SELECT unique_id, cluster_id::VARCHAR AS cluster_id FROM bench_baseline_clusters")
        baseline = pairwise_scores(conn, records)
    finally:
        conn.execute("DROP TABLE IF EXISTS link.person_clusters")
        conn.execute("ALTER TABLE link.person_clusters_saved RENAME TO person_clusters")
        conn.execute("DROP VIEW IF EXISTS link.person_clusters_ours")
    return {"linkage": ours, "baseline_linkage": baseline, "verdicts": verdict}


def machine() -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
    }


def commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
    except Exception:
        return "unknown"


def write_markdown(result: dict, path: Path) -> None:
    lines = [
        f"# Benchmark: {result['persons']:,} persons, seed {result['seed']}",
        "",
        f"Date {result['date']}, commit `{result['commit']}`, machine: {result['machine']['cpu_count']} cores, "
        f"{result['machine']['memory_gb']} GB, {result['machine']['platform']}, Python {result['machine']['python']}.",
        "",
        "| stage | wall s | peak RSS MB |",
        "|---|---:|---:|",
        f"| generate (synthetic delivery) | {result['generate']['seconds']:.1f} | {result['generate']['peak_mb']:.0f} |",
        f"| pipeline end to end (published job) | {result['pipeline']['seconds']:.1f} | {result['pipeline']['peak_mb']:.0f} |",
        f"| bare Splink baseline | {result['baseline']['seconds']:.1f} | {result['baseline']['peak_mb']:.0f} |",
        "",
        f"**Ratio** pipeline end to end / bare Splink: **{result['ratio']:.2f}x**",
        "",
        "| linkage | precision | recall | F1 | F1 without valid NIK |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, key in (("satudata", "linkage"), ("bare Splink", "baseline_linkage")):
        s = result["scores"][key]
        lines.append(f"| {label} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['f1_no_valid_nik']:.4f} |")
    v = result["scores"]["verdicts"]
    lines += ["", f"Verdict accuracy: **{v['accuracy']:.4f}** over {v.get('rows', 'all')} roster rows.", "",
              "| reason | precision | recall | support |", "|---|---:|---:|---:|"]
    for reason, s in sorted(v["per_reason"].items()):
        lines.append(f"| {reason} | {s['precision']:.4f} | {s['recall']:.4f} | {s.get('support', '')} |")
    lines += ["", "## Where the time goes (per step of the published job)", "", "| step | wall s | peak RSS MB | rows out |", "|---|---:|---:|---:|"]
    for step, s in sorted(result["pipeline"]["steps"].items(), key=lambda kv: -kv[1].get("seconds", 0)):
        lines.append(f"| {step} | {s.get('seconds', 0):.1f} | {s.get('peak_mb', 0):.0f} | {s.get('rows_out', '')} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "work"))
    parser.add_argument("--stage", choices=["generate", "pipeline", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        {"generate": stage_generate, "pipeline": stage_pipeline, "baseline": stage_baseline}[args.stage](args)
        return 0

    work = Path(args.work) / f"{args.persons}-{args.seed}"
    data_dir, state = work / "data", work / "state"
    state.mkdir(parents=True, exist_ok=True)
    warehouse = state / "warehouse.duckdb"
    for stale in (warehouse, Path(str(warehouse) + ".wal")):
        stale.unlink(missing_ok=True)
    env = {**os.environ, "SATUDATA_STATE_DIR": str(state), "SATUDATA_DATA_DIR": str(data_dir),
           "SATUDATA_WAREHOUSE": str(warehouse), "SATUDATA_RETRAIN": "1"}
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--persons", str(args.persons), "--seed", str(args.seed), "--data-dir", str(data_dir), "--warehouse", str(warehouse)]

    print(f"generating {args.persons:,} persons (seed {args.seed}) ...", flush=True)
    gen_s, gen_peak, _ = run_measured([*me, "--stage", "generate", *common], env)
    print(f"  {gen_s:.1f} s, peak {gen_peak / 2**20:.0f} MB", flush=True)

    print("running the published job ...", flush=True)
    steps_file = state / "steps.json"
    pipe_s, pipe_peak, pipe_mem = run_measured([*me, "--stage", "pipeline", *common, "--out", str(steps_file)], env)
    run = json.loads(steps_file.read_text())
    steps = {}
    for key, s in run["steps"].items():
        if "start" in s and "end" in s:
            steps[key] = {"seconds": s["end"] - s["start"], "peak_mb": pipe_mem.peak_between(s["start"], s["end"]) / 2**20,
                          "rows_out": s.get("rows_out")}
    print(f"  {pipe_s:.1f} s, peak {pipe_peak / 2**20:.0f} MB, success={run['success']}", flush=True)

    print("running bare Splink on the same rows ...", flush=True)
    base_file = state / "baseline.json"
    base_s, base_peak, _ = run_measured([*me, "--stage", "baseline", *common, "--out", str(base_file)], env)
    print(f"  {base_s:.1f} s, peak {base_peak / 2**20:.0f} MB", flush=True)

    scores = score(str(warehouse), data_dir / "truth")
    result = {
        "persons": args.persons, "seed": args.seed, "date": dt.date.today().isoformat(), "commit": commit(),
        "machine": machine(),
        "generate": {"seconds": gen_s, "peak_mb": gen_peak / 2**20},
        "pipeline": {"seconds": pipe_s, "peak_mb": pipe_peak / 2**20, "success": run["success"], "steps": steps},
        "baseline": {"seconds": base_s, "peak_mb": base_peak / 2**20, **json.loads(base_file.read_text())},
        "ratio": pipe_s / base_s if base_s else None,
        "scores": scores,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"{result['date']}-{args.persons}-{args.seed}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    write_markdown(result, stem.with_suffix(".md"))
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
