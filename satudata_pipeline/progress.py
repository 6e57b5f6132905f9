"""Progress of a long step in its run log: each phase with counts and elapsed time.

A step of the full province runs for minutes; without this the run log is silent between "started"
and "finished". Only counts are logged, never a value of the data (docs/privacy.md).
"""

from __future__ import annotations

import time


class Progress:
    def __init__(self, log, step: str):
        self.log, self.step = log, step
        self.started = self.last = time.monotonic()

    def __call__(self, phase: str, **counts: float) -> None:
        now = time.monotonic()
        shown = ", ".join(
            f"{k.replace('_', ' ')} {int(v):,}".replace(",", ".") for k, v in counts.items()
        )
        self.log.info(
            f"{self.step}: {phase}{f' ({shown})' if shown else ''} in {now - self.last:.1f} s "
            f"(step so far {now - self.started:.1f} s)"
        )
        self.last = now


def step_progress_logger(total_steps: int | None = None, out=None):
    """A Dagster logger for `satudata run`: `step n of N` as each step starts and ends, with the
    elapsed time of the step and of the run, printed to `out` (stdout). It reads only Dagster's own
    step events, never a message of the assets."""
    import logging
    import sys

    import dagster as dg

    stream = out or sys.stdout

    class _StepHandler(logging.Handler):
        def __init__(self, total: int):
            super().__init__(logging.DEBUG)
            self.total = total
            self.run_started = time.monotonic()
            self.started: dict[str, float] = {}
            self.finished = 0

        def emit(self, record: logging.LogRecord) -> None:
            event = (getattr(record, "dagster_meta", None) or {}).get("dagster_event")
            kind = getattr(event, "event_type_value", None)
            step = getattr(event, "step_key", None)
            if not step or kind not in (
                "STEP_START",
                "STEP_SUCCESS",
                "STEP_FAILURE",
                "STEP_SKIPPED",
            ):
                return
            now = time.monotonic()
            run = f"{int(now - self.run_started) // 60}:{int(now - self.run_started) % 60:02d}"
            if kind == "STEP_START":
                self.started[step] = now
                stream.write(f"[{run}] step {self.finished + 1} of {self.total}: {step} ...\n")
            else:
                self.finished += 1
                took = now - self.started.pop(step, now)
                what = {
                    "STEP_SUCCESS": "done",
                    "STEP_FAILURE": "FAILED",
                    "STEP_SKIPPED": "skipped",
                }[kind]
                stream.write(
                    f"[{run}] step {self.finished} of {self.total}: {step} {what} in {took:.1f} s\n"
                )
            stream.flush()

    @dg.logger(None, description="satudata run: step n of N with elapsed times, on the terminal")
    def _steps(init_context):
        logger = logging.getLogger("satudata.cli.steps")
        logger.handlers = [_StepHandler(total_steps or len(init_context.job_def.graph.node_dict))]
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        return logger

    return _steps
