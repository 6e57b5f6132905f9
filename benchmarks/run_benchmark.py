"""Speed, memory and accuracy of the whole pipeline at scale, side by side with bare Splink (issue #7).

    .venv/bin/python benchmarks/run_benchmark.py --persons 100000 --seed 7
    .venv/bin/python benchmarks/run_benchmark.py --persons 1000000 --seed 11 --profile

For one size and seed, in one invocation, on the same data:

1. generate: `satudata_pipeline.synthetic.generate` (timed, in its own process; `--reuse-data` skips
   it when the delivery already exists);
2. pipeline: `satudata run --data-dir <data> --retrain`, the CLI a user runs, which executes the
   published Dagster job `satudata_full_determination` in a fresh state folder (warehouse, models,
   Dagster instance). Its process tree's RSS is sampled every 0.2 s; each step's wall time comes from
   the run's STEP_START / STEP_SUCCESS events in the run's own Dagster instance, rows out from the
   `dagster/row_count` metadata and rows in from the upstream assets' row counts. `--profile`
   attaches py-spy (if installed) to the run for a sampled profile (the profile's own CPU use shows
   in the times: the 2-core machine gives it part of a core);
3. baseline: a bare Splink 5 `dedupe_only` of the same person rows (`link.person_records`, copied
   into a separate DuckDB file) with a standard model: first and last name, birth date, street
   address, kelurahan; prior from deterministic rules, u by random sampling, m by EM; predict,
   cluster at 0.95. Timed and memory-sampled the same way;
4. scores against the ground truth in `<data>/truth/`: pairwise P/R/F1 of both (overall and for
   pairs involving a record without a valid NIK, `link.evaluation.pairwise_scores`) and the verdict
   accuracy with per-reason precision/recall (`programs.evaluation.verdict_accuracy`).

Results: benchmarks/results/<date>-<persons>-<seed>.{json,md}; benchmarks/results/LATEST.md is the
newest run's markdown. Work files (data, warehouse) go to benchmarks/work/ (git-ignored).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
VENV_BIN = Path(sys.executable).parent
TARGET_REMOVE_REASONS = ("deceased", "moved_out")  # remove recall 1.0, precision >= 0.995
# 2: Dukcapil NIKs at the real density of same-day births, twins, namesakes (issue 14); 3: no family
# card holds one name twice (docs/synthetic-data.md); results
# without the field were made by generator 1 (unique NIKs, no planted namesakes)
GENERATOR_VERSION = 3


class Sampler:
    """Samples the RSS of a process tree (and the machine's load) every 0.2 s."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.samples: list[tuple[float, int]] = []
        self.load: list[float] = []
        self.cpu_other: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        tick = 0
        while not self._stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                rss = 0
                for p in procs:
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.samples.append((time.time(), rss))
            except psutil.Error:
                break
            if tick % 25 == 0:  # every 5 s
                self.load.append(os.getloadavg()[0])
            tick += 1
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
        return max((r for t, r in self.samples if start - 0.2 <= t <= end + 0.2), default=0)

    def load_summary(self) -> dict:
        if not self.load:
            return {}
        return {"mean": round(sum(self.load) / len(self.load), 2), "max": round(max(self.load), 2)}


def run_measured(cmd: list[str], env: dict, *, profile_to: Path | None = None, ok_codes=(0,)):
    """Run cmd, sample its memory; returns (seconds, peak bytes, sampler, exit code)."""
    started = time.monotonic()
    sys_before = psutil.cpu_times()
    ru_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    spy = None
    if profile_to is not None:
        py_spy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
        if py_spy:
            spy = subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(proc.pid),
                    "--rate",
                    "20",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(profile_to),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        else:
            print("  (py-spy not installed: no profile)", flush=True)
    with Sampler(proc.pid) as mem:
        code = proc.wait()
    wall = time.monotonic() - started
    ru_after, sys_after = resource.getrusage(resource.RUSAGE_CHILDREN), psutil.cpu_times()
    own = (ru_after.ru_utime - ru_before.ru_utime) + (ru_after.ru_stime - ru_before.ru_stime)
    busy = (
        sum(sys_after)
        - sum(sys_before)
        - (sys_after.idle - sys_before.idle)
        - (getattr(sys_after, "iowait", 0) - getattr(sys_before, "iowait", 0))
    )
    # CPU seconds used per wall second: by the measured process, and by everything else (incl. py-spy)
    mem.cpu = {
        "own_cpu_s": round(own, 1),
        "own_cores": round(own / wall, 2) if wall else None,
        "other_cores": round(max(busy - own, 0) / wall, 2) if wall else None,
    }
    if spy is not None:
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.terminate()
    if code not in ok_codes:
        raise SystemExit(f"{' '.join(map(str, cmd[:4]))}... failed with exit code {code}")
    return time.monotonic() - started, mem.peak, mem, code


# ---- stages run in their own process -------------------------------------------------------------


def stage_generate(args) -> None:
    from satudata_pipeline.synthetic import generate

    summary = generate(args.persons, seed=args.seed, out=Path(args.data_dir))
    Path(args.out).write_text(json.dumps(summary, default=str))


BASELINE_COLUMNS = """
    unique_id,
    nama_depan AS first_name,
    nama_belakang AS last_name,
    nama AS full_name,
    tanggal_lahir,
    alamat,
    kode_kelurahan
"""


def stage_baseline(args) -> None:
    """Bare Splink 5: dedupe every person row with a standard model, cluster at 0.95.

    Input: the cleaned person rows (`link.person_records` of the pipeline's warehouse), copied into
    a separate DuckDB file, so Splink gets the same rows the pipeline links (and the cleaning for
    free). No NIK, no family card: names, birth date and address, as issue #7 defines the baseline.
    """
    import duckdb
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    timings = {}
    t0 = time.monotonic()
    Path(args.baseline_db).unlink(missing_ok=True)
    conn = duckdb.connect(args.baseline_db)
    conn.execute(f"ATTACH '{args.warehouse}' AS wh (READ_ONLY)")
    conn.execute(
        f"CREATE TABLE bench_input AS SELECT {BASELINE_COLUMNS} FROM wh.link.person_records"
    )
    conn.execute("DETACH wh")
    n = conn.execute("SELECT count(*) FROM bench_input").fetchall()[0][0]
    timings["load_s"] = time.monotonic() - t0

    t1 = time.monotonic()
    db_api = DuckDBAPI(connection=conn)
    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("last_name").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("tanggal_lahir", input_is_string=False),
            cl.JaroWinklerAtThresholds("alamat", [0.95, 0.88]),
            cl.ExactMatch("kode_kelurahan").configure(term_frequency_adjustments=True),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("first_name", "tanggal_lahir"),
            block_on("last_name", "tanggal_lahir"),
            block_on("full_name", "kode_kelurahan"),
            block_on("alamat", "first_name"),
        ],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(
        db_api.register("bench_input", table_name="bench_input"), settings, log_level=30
    )
    linker.training.estimate_probability_two_random_records_match(
        [
            block_on("first_name", "last_name", "tanggal_lahir"),
            block_on("full_name", "tanggal_lahir", "alamat"),
        ],
        recall=0.8,
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=1)
    # EM blocks chosen so the number of training pairs stays in the millions at 1M persons (first +
    # last name alone gives ~876M pairs at 1M: popular names); full name + kelurahan trains birth date
    # and address, birth date + kelurahan trains the names.
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("full_name", "kode_kelurahan")
    )
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("tanggal_lahir", "kode_kelurahan")
    )
    timings["train_s"] = time.monotonic() - t1

    t2 = time.monotonic()
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    timings["predict_s"] = time.monotonic() - t2
    t3 = time.monotonic()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, 0.95)
    conn.execute(
        f"CREATE OR REPLACE TABLE bench_clusters AS SELECT unique_id, cluster_id FROM {clusters.physical_name}"
    )
    timings["cluster_s"] = time.monotonic() - t3
    timings["rows_in"] = n
    timings["pairs"] = conn.execute(f"SELECT count(*) FROM {predictions.physical_name}").fetchall()[
        0
    ][0]
    timings["clusters"] = conn.execute(
        "SELECT count(DISTINCT cluster_id) FROM bench_clusters"
    ).fetchall()[0][0]
    timings["total_s"] = time.monotonic() - t0
    conn.close()
    Path(args.out).write_text(json.dumps(timings))


# ---- the run's events ------------------------------------------------------------------------------


def step_records(dagster_home: Path, data_dir: Path, warehouse: Path) -> tuple[dict, dict]:
    """Per step of the (only) run in the benchmark's Dagster instance: start, end, status, rows."""
    os.environ["DAGSTER_HOME"] = str(Path(dagster_home).resolve())
    os.environ["SATUDATA_WAREHOUSE"] = str(warehouse)
    os.environ["SATUDATA_DATA_DIR"] = str(data_dir)
    import dagster as dg

    from satudata_pipeline.contract.sources import load_delivery
    from satudata_pipeline.definitions import build_defs

    graph = build_defs(load_delivery(data_dir)).resolve_asset_graph()
    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        events = instance.all_logs(run.run_id)
        run_info = {"run_id": run.run_id, "status": str(run.status.value)}
    steps: dict[str, dict] = {}
    rows_by_asset: dict[dg.AssetKey, int] = {}
    assets_by_step: dict[str, list] = collections.defaultdict(list)
    failed_checks = []
    for ev in events:
        if ev.step_key is None or ev.dagster_event is None:
            continue
        rec = steps.setdefault(ev.step_key, {})
        kind = ev.dagster_event.event_type_value
        if kind == "STEP_START":
            rec["start"] = ev.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            rec["end"] = ev.timestamp
            rec["status"] = kind
        elif kind == "ASSET_MATERIALIZATION":
            mat = ev.dagster_event.event_specific_data.materialization
            assets_by_step[ev.step_key].append(mat.asset_key)
            rc = mat.metadata.get("dagster/row_count")
            if rc is not None:
                rows_by_asset[mat.asset_key] = int(rc.value)
        elif kind == "ASSET_CHECK_EVALUATION":
            data = ev.dagster_event.event_specific_data
            evaluation = getattr(data, "asset_check_evaluation", data)
            if not evaluation.passed:
                failed_checks.append(
                    f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name} ({evaluation.severity.value})"
                )
    _rows_from_tables(rows_by_asset, [a for keys in assets_by_step.values() for a in keys])
    for key, rec in steps.items():
        mine = assets_by_step.get(key, [])
        rec["assets"] = [a.to_user_string() for a in mine]
        if mine:
            if all(a in rows_by_asset for a in mine):
                rec["rows_out"] = sum(rows_by_asset[a] for a in mine)
            parents = {p for a in mine for p in graph.get(a).parent_keys} - set(mine)
            known = [rows_by_asset[p] for p in parents if p in rows_by_asset]
            rec["rows_in"] = (
                sum(known) if known else None
            )  # parents without rows (e.g. the model) add nothing
            rec["inputs"] = sorted(p.to_user_string() for p in parents)
    run_info["failed_checks"] = failed_checks
    return steps, run_info


def _rows_from_tables(rows_by_asset: dict, assets: list) -> None:
    """Assets without `dagster/row_count`: count the warehouse table of the same name, if any."""
    import duckdb

    missing = [a for a in dict.fromkeys(assets) if a not in rows_by_asset]
    if not missing:
        return
    conn = duckdb.connect(os.environ["SATUDATA_WAREHOUSE"], read_only=True)
    try:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = current_database()"
        ).fetchall()
        by_name: dict[str, list[str]] = collections.defaultdict(list)
        for schema, name in tables:
            by_name[name].append(schema)
        for a in missing:
            name = a.path[-1]
            schemas = by_name.get(name, [])
            if schemas:
                schema = "main" if "main" in schemas else schemas[0]
                rows_by_asset[a] = conn.execute(
                    f'SELECT count(*) FROM "{schema}"."{name}"'
                ).fetchall()[0][0]
    finally:
        conn.close()


# ---- profile -----------------------------------------------------------------------------------------


def summarise_profile(raw: Path, steps: dict) -> dict:
    """py-spy raw (collapsed) stacks -> samples per step (by the asset or check function Dagster
    calls) and the top frames, inclusive, of the heaviest step. Idle samples are not recorded."""
    if not raw.exists():
        return {}
    step_names = set(steps)
    per_step: collections.Counter = collections.Counter()
    inclusive: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    leaf: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    total = 0

    def short(frame: str) -> str:
        return frame.replace(str(ROOT) + "/", "")

    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        # the user function Dagster calls for the step: the frame after `invoke_compute_fn`
        funcs = [f.split(" (")[0].rsplit(".", 1)[-1] for f in frames]
        step, below = "<outside steps>", []
        if "invoke_compute_fn" in funcs:
            i = funcs.index("invoke_compute_fn")
            if i + 1 < len(funcs):
                step = funcs[i + 1]
                below = frames[i + 2 :]
                if step not in step_names:  # a factory's function (one per source)
                    step = f"{step} (all steps built by it)"
        per_step[step] += n
        for f in dict.fromkeys(
            short(f).rsplit(":", 1)[0] + ")" if ":" in f else short(f) for f in below
        ):
            inclusive[step][f] += n  # by function (line numbers dropped), once per sample
        leaf[step][short(frames[-1])] += n
    out = {
        "samples": total,
        "rate_hz": 20,
        "per_step_samples": dict(per_step.most_common()),
        "top_steps": {},
    }
    for step, n in per_step.most_common():
        if step == "<outside steps>" or len(out["top_steps"]) >= 3:
            continue
        out["top_steps"][step] = {
            "samples": n,
            "inclusive": inclusive[step].most_common(20),
            "leaf": leaf[step].most_common(10),
        }
    return out


# ---- scoring -----------------------------------------------------------------------------------


def score(warehouse: Path, baseline_db: Path, truth_dir: Path) -> dict:
    import duckdb
    import pandas as pd

    from satudata_pipeline.link.evaluation import pairwise_scores
    from satudata_pipeline.programs.evaluation import verdict_accuracy

    records = pd.read_csv(truth_dir / "records.csv", dtype=str, keep_default_na=False)
    records = records[records["person_key"] != ""]
    verdicts = pd.read_csv(truth_dir / "verdicts.csv", dtype=str, keep_default_na=False)
    conn = duckdb.connect(str(warehouse), read_only=True)
    try:
        ours = pairwise_scores(conn, records)
        verdict = verdict_accuracy(conn, verdicts)
        baseline = None
        if baseline_db.exists():
            conn.execute(f"ATTACH '{baseline_db}' AS bl (READ_ONLY)")
            baseline = pairwise_scores(conn, records, clusters_table="bl.main.bench_clusters")
    finally:
        conn.close()
    return {"linkage": ours, "baseline_linkage": baseline, "verdicts": verdict}


# ---- report ------------------------------------------------------------------------------------


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model or platform.processor() or platform.machine(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": _versions(),
    }


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("dagster", "duckdb", "splink", "pandas"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def commit() -> str:
    try:
        sha = subprocess.check_output(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True
        ).strip()
        dirty = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", "satudata_pipeline"], cwd=ROOT
        ).returncode
        return sha + ("+dirty" if dirty else "")
    except Exception:
        return "unknown"


def _f(x, digits=4):
    return "n/a" if x is None else f"{x:.{digits}f}"


LINK_STEPS = ("person_records", "linkage_model", "match_pairs", "person_clusters")


def removals_of(v: dict) -> dict:
    """The removal figures of a verdict score; derived from the confusion matrix and per-reason counts
    for results written before `verdict_accuracy` reported them."""
    if v.get("removals"):
        return v["removals"]
    conf = v.get("confusion", {})
    removed = sum(row.get("remove", 0) for row in conf.values())
    wrongful = sum(
        n for t, row in conf.items() if t != "remove" for p, n in row.items() if p == "remove"
    )
    missed = sum(n for p, n in conf.get("remove", {}).items() if p != "remove")
    pr = v.get("per_reason", {})
    return {
        "removals": removed,
        "wrongful_removals": wrongful,
        "wrongful_share": wrongful / removed if removed else None,
        "wrongful_by_reason": {},
        "true_removals_missed": missed,
        "missed_by_reason": {},
        "deceased_precision": pr.get("deceased", {}).get("precision"),
        "identity_unresolved_precision": pr.get("identity_unresolved", {}).get("precision"),
    }


def removals_row(v: dict) -> str:
    r = removals_of(v)
    share = "" if r["wrongful_share"] is None else f" ({100 * r['wrongful_share']:.1f}%)"
    by = lambda d: ", ".join(f"{k} {n:,}" for k, n in sorted(d.items())) or "-"  # noqa: E731
    return (
        f"| {r['removals']:,} | **{r['wrongful_removals']:,}**{share} | {by(r['wrongful_by_reason'])} | "
        f"**{r['true_removals_missed']:,}** | {by(r['missed_by_reason'])} | {_f(r['deceased_precision'])} | "
        f"{_f(r['identity_unresolved_precision'])} |"
    )


def write_markdown(result: dict, path: Path) -> None:
    m, p, b = result["machine"], result["pipeline"], result["baseline"]
    link_s = sum(p["steps"].get(k, {}).get("seconds") or 0 for k in LINK_STEPS)
    gen = result["generate"]
    lines = [
        f"# Benchmark: {result['persons']:,} persons, seed {result['seed']}",
        "",
        f"{result['date']} ({result['started_utc']} UTC), commit `{result['commit']}`. Machine: {m['cpu_count']} cores "
        f"({m['cpu_model']}), {m['memory_gb']} GB RAM, {m['platform']}, Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + ".",
        "",
        f"Load (1-min load average, sampled every 5 s) during the pipeline: mean {p['load'].get('mean')}, "
        f"max {p['load'].get('max')}; during the baseline: mean {b.get('load', {}).get('mean')}, "
        f"max {b.get('load', {}).get('max')}. CPU cores used per wall second by the pipeline "
        f"{p.get('cpu', {}).get('own_cores')} and by all other processes {p.get('cpu', {}).get('other_cores')}; by the baseline "
        f"{b.get('cpu', {}).get('own_cores')}, others {b.get('cpu', {}).get('other_cores')} (2 cores in all: "
        "'others' above ~0.1 means other work, e.g. other engineers' test runs or py-spy, competed with the benchmark)."
        + (
            " The pipeline ran under py-spy (20 Hz, non-blocking)."
            if result.get("profiled")
            else ""
        ),
        "",
        f"Engine: {p.get('engine', 'duckdb')}; SATUDATA_MEMORY_GB: {p.get('memory_gb_setting') or 'not set (half the machine)'}; "
        f"model: {p.get('model', MODEL_TRAINED_IN_RUN)}.",
        "",
        f"Person rows linked: {p.get('person_records', 'n/a'):,}"
        if isinstance(p.get("person_records"), int)
        else "",
        "",
        "| stage | wall s | peak RSS MB |",
        "|---|---:|---:|",
        f"| generate (synthetic delivery) | {_f(gen.get('seconds'), 1)} | {_f(gen.get('peak_mb'), 0)} |",
        f"| **pipeline end to end** (`{_run_command(p)}`, published job) | **{p['seconds']:.1f}** | **{p['peak_mb']:.0f}** |",
        f"| **bare Splink baseline** (load + train + predict + cluster) | **{b['seconds']:.1f}** | **{b['peak_mb']:.0f}** |",
        f"| baseline: load / train / predict / cluster | {b.get('load_s', 0):.1f} / {b.get('train_s', 0):.1f} / "
        f"{b.get('predict_s', 0):.1f} / {b.get('cluster_s', 0):.1f} | |",
        "",
        f"Pipeline run: {p['run'].get('status')}; exit code {p['exit_code']}; failed checks: "
        f"{', '.join(p['run'].get('failed_checks') or []) or 'none'}.",
        "",
        f"**Ratio** pipeline end to end / bare Splink: **{_f(result['ratio'], 2)}x** (goal at 1M: <= 1.5x at equal or "
        f"better F1). Peak memory of the pipeline: **{p['peak_mb'] / 1024:.2f} GB** (goal at 1M: <= 8 GB).",
        "",
        f"For orientation only (not the goal's measure): the link stage alone ({', '.join(LINK_STEPS)}) took "
        f"{link_s:.1f} s, {_f(link_s / b['seconds'] if b.get('seconds') else None, 2)}x the baseline, which starts "
        "from the already cleaned rows.",
        "",
        "## Linkage accuracy (pairwise, against the truth)",
        "",
        "| linker | precision | recall | F1 | P no valid NIK | R no valid NIK | F1 no valid NIK | predicted pairs | true pairs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key in (("satudata", "linkage"), ("bare Splink", "baseline_linkage")):
        s = result["scores"].get(key)
        if s:
            lines.append(
                f"| {label} | {_f(s['precision'])} | {_f(s['recall'])} | **{_f(s['f1'])}** | "
                f"{_f(s['precision_no_valid_nik'])} | {_f(s['recall_no_valid_nik'])} | {_f(s['f1_no_valid_nik'])} | "
                f"{s['predicted_pairs']:,} | {s['true_pairs']:,} |"
            )
    v = result["scores"]["verdicts"]
    lines += [
        "",
        "## Verdicts",
        "",
        f"Verdict accuracy **{_f(v['accuracy'])}**, exact (verdict and reasons) {_f(v['exact_match'])}, over "
        f"{v['n_truth']:,} roster rows ({v['n_missing']} without a prediction, {v['n_extra']} extra).",
        "",
        "Confusion (true -> predicted): "
        + "; ".join(
            f"{t}: " + ", ".join(f"{pv} {n:,}" for pv, n in sorted(row.items()))
            for t, row in sorted(v["confusion"].items())
        ),
        "",
        "Removals (issue 14): a wrongful removal is a row removed whose true verdict is not remove (a "
        "living, eligible person cut off); a missed removal is a true removal not removed.",
        "",
        "| removals | living, eligible people removed | by reason given | true removals missed | by true reason | "
        "`deceased` flag precision | `identity_unresolved` precision |",
        "|---:|---:|---|---:|---|---:|---:|",
        removals_row(v),
        "",
        "Per reason: the reason listed (any verdict). For the remove reasons also the removal itself "
        "(the reason with the verdict remove; a possible death is listed as deceased but only reviewed); "
        "the target applies to the removal.",
        "",
        "| reason | support | tp | fp | fn | precision | recall | remove P | remove R | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for reason, s in sorted(v["per_reason"].items()):
        target = ""
        rp, rr = s.get("remove_precision"), s.get("remove_recall")
        if reason in TARGET_REMOVE_REASONS:
            met = (rr == 1.0 and (rp or 0) >= 0.995) if s["support"] else None
            target = "removal R 1.0, P >= 0.995: " + (
                "met" if met else "n/a" if met is None else "**missed**"
            )
        lines.append(
            f"| {reason} | {s['support']:,} | {s['tp']:,} | {s['fp']:,} | {s['fn']:,} | "
            f"{_f(s['precision'])} | {_f(s['recall'])} | {_f(rp) if rp is not None else ''} | "
            f"{_f(rr) if rr is not None else ''} | {target} |"
        )
    lines += [
        "",
        "## Where the time goes (steps of the published job, slowest first)",
        "",
        "| step | wall s | share | peak RSS MB | rows in | rows out |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    total = sum(s.get("seconds", 0) for s in p["steps"].values()) or 1
    for step, s in sorted(p["steps"].items(), key=lambda kv: -kv[1].get("seconds", 0)):
        rin = "" if s.get("rows_in") is None else f"{s['rows_in']:,}"
        rout = "" if s.get("rows_out") is None else f"{s['rows_out']:,}"
        lines.append(
            f"| {step} | {s.get('seconds', 0):.1f} | {100 * s.get('seconds', 0) / total:.1f}% | "
            f"{s.get('peak_mb', 0):.0f} | {rin} | {rout} |"
        )
    overhead = p["seconds"] - total
    lines.append(
        f"| (process start, definitions load, Dagster bookkeeping between steps) | {overhead:.1f} | | | | |"
    )
    prof = result.get("profile") or {}
    if prof.get("top_steps"):
        lines += [
            "",
            f"## Profile (py-spy, {prof['samples']:,} non-idle samples at {prof['rate_hz']} Hz)",
            "",
            "Samples per step (CPU-active time of the main thread; DuckDB's worker threads are not sampled): "
            + ", ".join(f"{k} {v}" for k, v in list(prof["per_step_samples"].items())[:14])
            + ".",
        ]
        for step, d in prof["top_steps"].items():
            lines += [
                "",
                f"### `{step}`: {d['samples']:,} samples",
                "",
                "| function under the step (inclusive) | samples |",
                "|---|---:|",
            ]
            lines += [f"| `{f}` | {n} |" for f, n in d["inclusive"]]
            lines += ["", "| leaf frame (self) | samples |", "|---|---:|"]
            lines += [f"| `{f}` | {n} |" for f, n in d["leaf"]]
    path.write_text("\n".join(lines) + "\n")


MODEL_TRAINED_IN_RUN = "trained in the run"


def _run_command(p: dict) -> str:
    """The CLI command a measured run used: it retrains unless it scored with a saved model."""
    retrained = p.get("model", MODEL_TRAINED_IN_RUN) == MODEL_TRAINED_IN_RUN
    return "satudata run --retrain" if retrained else "satudata run"


def run_pipeline(
    data_dir: Path,
    state: Path,
    warehouse: Path,
    env: dict,
    profile: bool,
    model_file: Path | None = None,
) -> dict:
    """`satudata run --retrain`, or with `model_file` (a saved model, copied into the state's model
    folder) `satudata run` scoring with that model: the run then trains nothing."""
    if model_file is not None:
        models = state / "models"
        models.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_file, models / model_file.name)
    mode = ["--retrain"] if model_file is None else []
    print(f"running the published job: satudata run {' '.join(mode)} ...", flush=True)
    code_version = commit()  # other people commit while a long run goes on: record what ran
    satudata = str(VENV_BIN / "satudata")
    profile_raw = state / "pipeline.pyspy.txt" if profile else None
    pipe_s, pipe_peak, pipe_mem, code = run_measured(
        [satudata, "run", "--data-dir", str(data_dir), *mode],
        env,
        profile_to=profile_raw,
        ok_codes=(0, 1),
    )
    steps_raw, run_info = step_records(state / "dagster_home", data_dir, warehouse)
    steps = {}
    for key, s in steps_raw.items():
        rec = {k: s.get(k) for k in ("status", "rows_in", "rows_out", "inputs", "assets")}
        if "start" in s and "end" in s:
            rec["seconds"] = s["end"] - s["start"]
            rec["peak_mb"] = pipe_mem.peak_between(s["start"], s["end"]) / 2**20
        steps[key] = rec
    person_records = steps.get("person_records", {}).get("rows_out")
    print(
        f"  {pipe_s:.1f} s, peak {pipe_peak / 2**20:.0f} MB, run {run_info['status']}, exit code {code}",
        flush=True,
    )
    pipeline = {
        "seconds": pipe_s,
        "peak_mb": pipe_peak / 2**20,
        "exit_code": code,
        "run": run_info,
        "load": pipe_mem.load_summary(),
        "cpu": pipe_mem.cpu,
        "person_records": person_records,
        "steps": steps,
    }

    pipeline["profiled"] = bool(profile)
    pipeline["commit"] = code_version
    pipeline["engine"] = env.get("SATUDATA_ENGINE") or "duckdb"
    pipeline["memory_gb_setting"] = env.get("SATUDATA_MEMORY_GB") or None
    pipeline["model"] = model_file.name if model_file is not None else MODEL_TRAINED_IN_RUN
    return pipeline


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "work"))
    parser.add_argument(
        "--reuse-data", action="store_true", help="skip generation if the delivery exists"
    )
    parser.add_argument("--profile", action="store_true", help="attach py-spy to the pipeline run")
    parser.add_argument(
        "--model",
        metavar="FILE",
        help="score with this saved model (satudata_pipeline models folder) instead of retraining; "
        "e.g. a DuckDB-trained model for a run with SATUDATA_ENGINE=spark",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare Splink baseline")
    parser.add_argument(
        "--reuse-pipeline",
        action="store_true",
        help="keep the delivery and the pipeline run (warehouse + measurements) of the last "
        "invocation with this size and seed; run only the baseline and the scoring",
    )
    parser.add_argument("--stage", choices=["generate", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-db", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument(
        "--render", metavar="JSON", help="only rewrite the markdown of a results JSON"
    )
    args = parser.parse_args()
    if args.render:
        src = Path(args.render)
        write_markdown(json.loads(src.read_text()), src.with_suffix(".md"))
        return 0
    if args.stage:
        {"generate": stage_generate, "baseline": stage_baseline}[args.stage](args)
        return 0

    started_utc = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    work = Path(args.work) / f"{args.persons}-{args.seed}"
    data_dir, state = work / "data", work / "state"
    saved = state / "pipeline_measurements.json"
    if args.reuse_pipeline:
        if not saved.exists():
            raise SystemExit(f"--reuse-pipeline: no {saved}")
    else:
        if state.exists():
            shutil.rmtree(state)  # a fresh warehouse, model folder and Dagster instance every time
        state.mkdir(parents=True)
    warehouse, baseline_db = state / "warehouse.duckdb", state / "baseline.duckdb"
    env = {
        **os.environ,
        "SATUDATA_STATE_DIR": str(state),
        "SATUDATA_DATA_DIR": str(data_dir),
        "SATUDATA_WAREHOUSE": str(warehouse),
        "DAGSTER_HOME": str(state / "dagster_home"),
    }
    env.pop("SATUDATA_RETRAIN", None)
    me = [sys.executable, str(Path(__file__).resolve())]
    common = [
        "--persons",
        str(args.persons),
        "--seed",
        str(args.seed),
        "--data-dir",
        str(data_dir),
        "--warehouse",
        str(warehouse),
        "--baseline-db",
        str(baseline_db),
    ]

    if args.reuse_pipeline:
        print(f"reusing the delivery and the pipeline run in {work}", flush=True)
        kept = json.loads(saved.read_text())
        gen, pipeline, started_utc = kept["generate"], kept["pipeline"], kept["started_utc"]
    elif (
        args.reuse_data
        and (data_dir / "sources.yaml").exists()
        and (data_dir / "truth" / "records.csv").exists()
    ):
        print(f"reusing the delivery in {data_dir}", flush=True)
        gen = {"seconds": None, "peak_mb": None, "reused": True}
    else:
        print(f"generating {args.persons:,} persons (seed {args.seed}) ...", flush=True)
        if data_dir.exists():
            shutil.rmtree(data_dir)
        gen_file = state / "generate.json"
        gen_s, gen_peak, _, _ = run_measured(
            [*me, "--stage", "generate", *common, "--out", str(gen_file)], env
        )
        gen = {
            "seconds": gen_s,
            "peak_mb": gen_peak / 2**20,
            "summary": json.loads(gen_file.read_text()),
        }
        print(f"  {gen_s:.1f} s, peak {gen_peak / 2**20:.0f} MB", flush=True)

    if not args.reuse_pipeline:
        pipeline = run_pipeline(
            data_dir,
            state,
            warehouse,
            env,
            args.profile,
            Path(args.model).resolve() if args.model else None,
        )
        saved.write_text(
            json.dumps(
                {"generate": gen, "pipeline": pipeline, "started_utc": started_utc}, default=str
            )
        )
    pipe_s = pipeline["seconds"]
    profile_raw = state / "pipeline.pyspy.txt" if args.profile or pipeline.get("profiled") else None

    baseline: dict = {"seconds": 0.0, "peak_mb": 0.0}
    if not args.no_baseline:
        print("running bare Splink on the same rows ...", flush=True)
        base_file = state / "baseline.json"
        base_s, base_peak, base_mem, _ = run_measured(
            [*me, "--stage", "baseline", *common, "--out", str(base_file)], env
        )
        baseline = {
            "seconds": base_s,
            "peak_mb": base_peak / 2**20,
            "load": base_mem.load_summary(),
            "cpu": base_mem.cpu,
            **json.loads(base_file.read_text()),
        }
        print(f"  {base_s:.1f} s, peak {base_peak / 2**20:.0f} MB", flush=True)

    print("scoring ...", flush=True)
    scores = score(warehouse, baseline_db, data_dir / "truth")
    result = {
        "persons": args.persons,
        "seed": args.seed,
        "date": dt.date.today().isoformat(),
        "started_utc": started_utc,
        "commit": pipeline.get("commit") or commit(),
        "baseline_commit": commit(),
        "machine": machine(),
        "profiled": bool(pipeline.get("profiled")),
        "generate": gen,
        "generator": GENERATOR_VERSION,
        "pipeline": pipeline,
        "baseline": baseline,
        "ratio": pipe_s / baseline["seconds"] if baseline.get("seconds") else None,
        "scores": scores,
        "profile": summarise_profile(profile_raw, pipeline["steps"]) if profile_raw else None,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"{result['date']}-{args.persons}-{args.seed}"
    for i in range(2, 100):  # a second run the same day gets its own file (-2, -3, ...)
        if not stem.with_suffix(".json").exists():
            break
        stem = RESULTS / f"{result['date']}-{args.persons}-{args.seed}-{i}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    write_markdown(result, stem.with_suffix(".md"))
    shutil.copyfile(stem.with_suffix(".md"), RESULTS / "LATEST.md")
    print(stem.with_suffix(".md").read_text())
    s, bs = scores["linkage"], scores.get("baseline_linkage") or {}
    print(
        f"ratio {_f(result['ratio'], 2)}x; F1 satudata {_f(s['f1'])}, bare Splink {_f(bs.get('f1'))}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
