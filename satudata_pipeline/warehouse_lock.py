"""One writer per warehouse: an exclusive OS lock next to the DuckDB file, held for a whole run.

DuckDB allows one writer per file, but each step opens its own connection, so two runs on one
warehouse (two `satudata run`, or a CLI run next to a scheduled one) would interleave their steps and
publish each other's staging tables. `max_concurrent_runs: 1` only orders the daemon's queue. So the
warehouse resource (`WarehouseResource`, the `warehouse` resource of every asset) takes an exclusive
`fcntl.flock` on `<warehouse>.lock` when a run initialises its resources (once per run: the job runs
with the in-process executor) and releases it when the run ends. That covers every way a run starts:
`satudata run`, a run launched from the UI, the monthly schedule and the new-delivery sensor. The
kernel releases the lock when the holding process dies, however it dies.

A second run waits up to `SATUDATA_LOCK_WAIT_SECONDS` (default 300; 0 = fail at once), then fails
with a message naming the warehouse and the holder (its run id, pid and start time, written into the
lock file; no personal data).

When a run gets the lock, no live run holds it. Every other run of the instance that is still
STARTING/STARTED/CANCELING on this warehouse and whose process is gone died (SIGKILL, power cut):
it is reported failed through the instance API, so the daemon's queue (one run at a time) moves on.
Then the exports are compared with the latest publication (`main.publication_log`) and rebuilt when
they are behind (a run killed after its publish commit but before its exports).

flock belongs to the open file description: one process must not take it twice (the CLI therefore
never takes it itself; the resource does, once per run).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LOCK_WAIT_ENV = "SATUDATA_LOCK_WAIT_SECONDS"
DEFAULT_LOCK_WAIT_SECONDS = 300.0
POLL_SECONDS = 0.5

# run tags: which warehouse a run writes, and the process that runs it (set by the CLI when it
# creates the run, and by the resource when the run takes the lock)
TAG_WAREHOUSE_FILE = "satudata/warehouse_file"
TAG_PID = "satudata/pid"


class WarehouseBusy(RuntimeError):
    """Another run holds the warehouse. The message names the warehouse and the holder (no personal data)."""


def lock_path(warehouse: Path | str) -> Path:
    warehouse = Path(warehouse)
    return warehouse.with_name(warehouse.name + ".lock")


def lock_wait_seconds() -> float:
    """`SATUDATA_LOCK_WAIT_SECONDS`: how long a run waits for the warehouse (0 = fail at once)."""
    value = os.environ.get(LOCK_WAIT_ENV, "").strip()
    if not value:
        return DEFAULT_LOCK_WAIT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(
            f"{LOCK_WAIT_ENV} must be a number of seconds (0 = fail at once)"
        ) from None
    if seconds < 0:
        raise ValueError(f"{LOCK_WAIT_ENV} must be 0 or more")
    return seconds


@dataclass(frozen=True)
class Holder:
    run_id: str
    pid: int
    started_at: str

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid}, holding it since {self.started_at})"


def read_holder(warehouse: Path | str) -> Holder | None:
    """Who holds (or last held) the lock, from the lock file; None when unknown."""
    try:
        data = json.loads(lock_path(warehouse).read_text() or "null")
        return (
            Holder(str(data["run_id"]), int(data["pid"]), str(data["started_at"])) if data else None
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class WarehouseLock:
    """An exclusive flock on `<warehouse>.lock` (created owner-only). Use `acquire()` / `release()`."""

    def __init__(self, warehouse: Path | str):
        self.warehouse = Path(warehouse)
        self.path = lock_path(self.warehouse)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(
        self,
        run_id: str,
        wait_seconds: float,
        on_wait: Callable[[Holder | None], None] | None = None,
    ) -> float:
        """Take the lock, waiting at most `wait_seconds`. Returns the seconds waited.

        Raises `WarehouseBusy` naming the warehouse and the holder when it is still held."""
        if self._fd is not None:
            raise RuntimeError("this warehouse lock is already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        started = time.monotonic()
        deadline = started + wait_seconds
        told = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                holder = read_holder(self.warehouse)
                now = time.monotonic()
                if now >= deadline:
                    who = holder.describe() if holder else "another run (holder not recorded yet)"
                    raise WarehouseBusy(
                        f"the warehouse {self.warehouse} is in use by {who}; "
                        f"waited {now - started:.0f} s ({LOCK_WAIT_ENV}={wait_seconds:g}). "
                        "One run writes a warehouse at a time: start this run again when that one has "
                        f"finished (lock file {self.path})."
                    )
                if not told and on_wait is not None:
                    on_wait(holder)
                    told = True
                time.sleep(min(POLL_SECONDS, max(deadline - now, 0.01)))
            record = {
                "run_id": run_id,
                "pid": os.getpid(),
                "started_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
        except BaseException:
            os.close(fd)  # closing the descriptor also drops a lock taken just before a failure
            raise
        self._fd = fd
        return time.monotonic() - started

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # the holder is gone: nobody is named any more
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> WarehouseLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# --------------------------------------------------------------------------------------------
# recovery of runs whose process died
# --------------------------------------------------------------------------------------------
def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def recover_dead_runs(instance, warehouse: Path | str, current_run_id: str) -> list[str]:
    """Report failed every other in-progress run of `instance` on this warehouse whose process is gone.

    Call only while holding the warehouse lock: then no live run holds it, so an in-progress run
    that recorded its pid and whose process no longer exists died without ending its run. A run
    whose process is still alive (e.g. releasing the lock and about to record its success) is left
    alone. Returns the run ids reported failed."""
    import dagster as dg

    in_progress = [
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ]
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=in_progress, tags={TAG_WAREHOUSE_FILE: str(Path(warehouse))})
    )
    recovered = []
    for run in runs:
        if run.run_id == current_run_id:
            continue
        try:
            pid = int(run.tags.get(TAG_PID, "0"))
        except ValueError:
            continue
        if not pid or pid_alive(pid):
            continue
        instance.report_run_failed(
            run,
            message=(
                f"satudata: the process of this run (pid {pid}) is gone (killed or crashed) while the run "
                f"was {run.status.value}; run {current_run_id} found it when it took the warehouse "
                f"{warehouse}, and marked it failed so that the queue moves on. Whatever this run "
                "published before it died is in main.publication_log; the exports are rebuilt from the "
                "latest publication (docs/reliability.md)."
            ),
        )
        recovered.append(run.run_id)
    return recovered


__all__ = [
    "DEFAULT_LOCK_WAIT_SECONDS",
    "Holder",
    "LOCK_WAIT_ENV",
    "TAG_PID",
    "TAG_WAREHOUSE_FILE",
    "WarehouseBusy",
    "WarehouseLock",
    "lock_path",
    "lock_wait_seconds",
    "pid_alive",
    "read_holder",
    "recover_dead_runs",
]
