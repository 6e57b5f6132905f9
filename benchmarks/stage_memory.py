"""Peak memory and wall time of a few assets, run one after another on an existing delivery.

For measuring one stage without the whole run (issue 16: the intake and clean stages before and
after they stream). Each asset runs alone (its upstream tables must already be in the warehouse,
or be earlier in the list); the process's RSS is sampled every 0.1 s. CPU seconds (all threads)
beside wall seconds: on a busy machine they compare two versions better than wall time.

    SATUDATA_MEMORY_GB=2 nice -n 5 .venv/bin/python benchmarks/stage_memory.py \\
        --data-dir /path/to/delivery --warehouse /tmp/w.duckdb raw_dukcapil_penduduk clean_dukcapil_penduduk
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import psutil


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("assets", nargs="+")
    args = parser.parse_args()
    os.environ["SATUDATA_DATA_DIR"] = args.data_dir
    os.environ["SATUDATA_WAREHOUSE"] = args.warehouse

    import dagster as dg

    from satudata_pipeline.definitions import defs

    proc = psutil.Process()
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.1)

    threading.Thread(target=sample, daemon=True).start()
    job = defs.resolve_implicit_global_asset_job_def()
    instance = dg.DagsterInstance.ephemeral()
    out = []
    for name in args.assets:
        peak[0] = proc.memory_info().rss
        start, cpu = time.monotonic(), proc.cpu_times()
        result = job.execute_in_process(
            asset_selection=[dg.AssetKey(name)], instance=instance, raise_on_error=True
        )
        seconds = time.monotonic() - start
        used = proc.cpu_times()
        cpu_seconds = used.user + used.system - cpu.user - cpu.system  # DuckDB's threads included
        out.append(
            {
                "asset": name,
                "seconds": round(seconds, 1),
                "cpu_seconds": round(cpu_seconds, 1),
                "peak_rss_mb": round(peak[0] / 2**20),
                "success": result.success,
            }
        )
        print(json.dumps(out[-1]), flush=True)
    done.set()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
