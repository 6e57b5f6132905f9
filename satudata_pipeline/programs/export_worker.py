"""A worker process that writes office workbooks: `python -m satudata_pipeline.programs.export_worker
JOBS RESULTS`.

`exports._run_jobs` starts one per CPU for the xlsx writing, which is pure Python, one cell at a
time. A fresh interpreter rather than a fork of the run (whose DuckDB threads may hold locks) or
multiprocessing's spawn (which re-runs the caller's main script). JOBS is a pickle of the job dicts
of `exports._prepare_program` (plain data: paths, counts, the cover's figures; the rows themselves
are staged as Parquet); RESULTS receives the list of their results. On failure the worker prints
the error's type and where it happened, never its message (which could quote a cell), and exits 1.
"""

from __future__ import annotations

import pickle
import sys
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    jobs_path, results_path = Path(argv[0]), Path(argv[1])
    from satudata_pipeline.programs.exports import WORKER_PREFIX, _write_job

    jobs = pickle.loads(jobs_path.read_bytes())
    try:
        results = [_write_job(job) for job in jobs]
    except Exception as exc:  # noqa: BLE001 - reported without its message (personal data)
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        programs = sorted({job["program"] for job in jobs})
        print(
            f"{WORKER_PREFIX} {type(exc).__name__} at {where} (programs {programs})",
            file=sys.stderr,
        )
        return 1
    results_path.write_bytes(pickle.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
