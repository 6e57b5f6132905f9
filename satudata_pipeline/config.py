"""Where things are: the data directory, the warehouse and the state folder.

Read from the environment every time (not at import) so the CLI, `dagster dev` and tests all see the
same settings and a test can point the pipeline elsewhere with monkeypatch.

Everything under the state folder holds personal data (docs/privacy.md): the folders are created
owner-only (0700) and every run works with umask 077 (`owner_only()`), so the warehouse, exports and
reports are readable by the account that runs satudata only.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
REFERENCE_WILAYAH = PACKAGE_DIR / "contract" / "wilayah_dki_jakarta.csv"
PROGRAM_RULES = PACKAGE_DIR / "programs" / "rules.yaml"


def data_dir() -> Path:
    """The data directory of this run: SATUDATA_DATA_DIR, else the sample shipped under data/."""
    value = os.environ.get("SATUDATA_DATA_DIR")
    return Path(value).expanduser().resolve() if value else PROJECT_DIR / "data"


def program_rules_path() -> Path:
    """The program rules file: SATUDATA_PROGRAM_RULES, else the shipped programs/rules.yaml. Read
    when the code location loads (the delivery's roster program codes are checked against it); a run
    reads the same variable through the `program_rules` resource."""
    value = os.environ.get("SATUDATA_PROGRAM_RULES")
    return Path(value).expanduser().resolve() if value else PROGRAM_RULES


OWNER_ONLY_UMASK = 0o077


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) owner-only, and take group/other access off it if it has any."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_mode & 0o077 and st.st_uid == os.getuid():
        path.chmod(0o700)
    return path


def restrict_file(path: Path) -> None:
    """Take group/other access off a file we own (e.g. a warehouse written before umask 077)."""
    for p in (path, path.with_name(path.name + ".wal")):
        try:
            st = p.stat()
        except OSError:
            continue
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            p.chmod(st.st_mode & 0o700)


def owner_only() -> None:
    """umask 077 for this process (every file it creates is owner-only) and a private state folder."""
    os.umask(OWNER_ONLY_UMASK)
    state_dir()


def state_dir() -> Path:
    """Folder for the warehouse, trained models and reports (git ignores it), owner-only (0700)."""
    value = os.environ.get("SATUDATA_STATE_DIR")
    path = Path(value).expanduser().resolve() if value else PROJECT_DIR / ".state"
    return private_dir(path)


def warehouse_path() -> Path:
    """The DuckDB file: SATUDATA_WAREHOUSE, else `<state>/warehouse.duckdb`."""
    value = os.environ.get("SATUDATA_WAREHOUSE")
    path = Path(value).expanduser().resolve() if value else state_dir() / "warehouse.duckdb"
    if not path.parent.exists():
        private_dir(path.parent)
    return path


def model_dir() -> Path:
    return private_dir(state_dir() / "models")


def reports_dir() -> Path:
    return private_dir(state_dir() / "reports")


RUN_REPORTS = "runs"
DEFAULT_REPORT_RETENTION = 12


def run_reports_dir(run_id: str | None) -> Path:
    """`<reports>/runs/<run id>/`: everything one run reports (linkage charts, run summary), kept together."""
    safe = "".join(ch for ch in (run_id or "adhoc") if ch.isalnum() or ch in "-_") or "adhoc"
    return private_dir(reports_dir() / RUN_REPORTS / safe)


def report_retention() -> int:
    """How many runs' report folders are kept (SATUDATA_REPORT_RETENTION, default 12: a year of months)."""
    value = os.environ.get("SATUDATA_REPORT_RETENTION", "").strip()
    if not value:
        return DEFAULT_REPORT_RETENTION
    try:
        keep = int(value)
    except ValueError:
        raise ValueError(
            f"SATUDATA_REPORT_RETENTION must be a whole number of runs, got {value!r}"
        ) from None
    if keep < 1:
        raise ValueError("SATUDATA_REPORT_RETENTION must be at least 1 (the current run's reports)")
    return keep


def prune_run_reports(keep_run: str | None, keep: int | None = None) -> list[str]:
    """Delete the oldest run report folders beyond the retention; never the folder of `keep_run`.

    A Splink report set is about 5 MB a run; without pruning a monthly pipeline piles them up forever.
    Returns the names of the folders removed."""
    import shutil

    keep = report_retention() if keep is None else keep
    root = reports_dir() / RUN_REPORTS
    if not root.is_dir():
        return []
    current = run_reports_dir(keep_run).name if keep_run else None
    folders = sorted(
        (p for p in root.iterdir() if p.is_dir() and p.name != current),
        key=lambda p: (p.stat().st_mtime, p.name),
        reverse=True,
    )
    removed = []
    for old in folders[max(keep - (1 if current else 0), 0) :]:
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old.name)
    return removed


def shown_path(path: Path) -> str:
    """A path as metadata shows it: relative to the state folder (no machine paths in the UI)."""
    try:
        return "<state>/" + str(Path(path).resolve().relative_to(state_dir()))
    except ValueError:
        return Path(path).name


DEFAULT_REPORTS_PORT = 3001


def reports_port() -> int:
    """Port `satudata ui` serves the reports folder on (SATUDATA_REPORTS_PORT, default 3001; 0 = off)."""
    value = os.environ.get("SATUDATA_REPORTS_PORT", "").strip()
    try:
        return int(value) if value else DEFAULT_REPORTS_PORT
    except ValueError:
        raise ValueError(f"SATUDATA_REPORTS_PORT must be a port number, got {value!r}") from None


def report_url(path: Path) -> str | None:
    """The link the UI shows for a file under the reports folder: SATUDATA_REPORTS_URL (the address
    a browser reaches the reports at, e.g. through the reverse proxy), else the loopback address
    `satudata ui` serves them on. None for a file outside the reports folder."""
    from urllib.parse import quote

    try:
        rel = Path(path).resolve().relative_to(reports_dir().resolve())
    except ValueError:
        return None
    base = os.environ.get("SATUDATA_REPORTS_URL", "").strip()
    if not base:
        base = f"http://127.0.0.1:{reports_port()}/"
    return base.rstrip("/") + "/" + quote(rel.as_posix())


def exports_dir() -> Path:
    return private_dir(state_dir() / "exports")


def machine_memory_gb() -> float:
    """Physical memory of this machine in GB (cgroup limits are not read: set SATUDATA_MEMORY_GB)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError, AttributeError):
        return 8.0


def memory_gb() -> float:
    """DuckDB's memory budget in GB: SATUDATA_MEMORY_GB, else half of the machine's memory.

    Half, not DuckDB's own 80%: Python, pandas and Splink live beside DuckDB in the run's process.
    What does not fit spills to `spill_dir()`, so peak memory follows this setting, not the
    population (docs/scale.md)."""
    value = os.environ.get("SATUDATA_MEMORY_GB", "").strip()
    if not value:
        return round(max(1.0, machine_memory_gb() / 2), 1)
    try:
        gb = float(value)
    except ValueError:
        raise ValueError(f"SATUDATA_MEMORY_GB must be a number of GB, got {value!r}") from None
    if gb < 0.5:
        raise ValueError("SATUDATA_MEMORY_GB must be at least 0.5")
    return gb


def spill_dir() -> Path:
    """Where DuckDB spills what does not fit in `memory_gb()`: SATUDATA_SPILL_DIR, else `<state>/spill`."""
    value = os.environ.get("SATUDATA_SPILL_DIR")
    return private_dir(Path(value).expanduser().resolve() if value else state_dir() / "spill")


def duckdb_settings() -> dict[str, str]:
    """The DuckDB settings every warehouse connection of a run gets (memory budget, spill folder)."""
    return {
        "memory_limit": f"{memory_gb():g}GB",
        "temp_directory": str(spill_dir()),
    }


ENGINES = ("duckdb", "spark")


def engine() -> str:
    """Where the model is trained and the candidate pairs scored: SATUDATA_ENGINE, `duckdb` (the
    default: the warehouse itself) or `spark` (a Spark session, docs/spark.md)."""
    value = os.environ.get("SATUDATA_ENGINE", "").strip().lower() or "duckdb"
    if value not in ENGINES:
        raise ValueError(f"SATUDATA_ENGINE must be one of {', '.join(ENGINES)}, got {value!r}")
    return value


def spark_dir() -> Path:
    """Spark's scratch space (shuffle spill, Splink's checkpoints, the Parquet exchanged with the
    warehouse): SATUDATA_SPARK_DIR, else `<state>/spark` (personal data: owner-only)."""
    value = os.environ.get("SATUDATA_SPARK_DIR")
    return private_dir(Path(value).expanduser().resolve() if value else state_dir() / "spark")


def export_workers() -> int:
    """Processes that write the offices' workbooks at once: SATUDATA_EXPORT_WORKERS, else the CPUs
    this process may use (at most 8). Writing xlsx is pure Python, one cell at a time, so it scales
    with processes, not threads; each worker streams its rows and holds little memory."""
    value = os.environ.get("SATUDATA_EXPORT_WORKERS", "").strip()
    if not value:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
        return max(1, min(cpus, 8))
    try:
        workers = int(value)
    except ValueError:
        raise ValueError(
            f"SATUDATA_EXPORT_WORKERS must be a whole number of processes, got {value!r}"
        ) from None
    if workers < 1:
        raise ValueError("SATUDATA_EXPORT_WORKERS must be at least 1")
    return workers
