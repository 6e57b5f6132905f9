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

    def __call__(self, phase: str, **counts: int) -> None:
        now = time.monotonic()
        shown = ", ".join(f"{k.replace('_', ' ')} {int(v):,}".replace(",", ".") for k, v in counts.items())
        self.log.info(f"{self.step}: {phase}{f' ({shown})' if shown else ''} in {now - self.last:.1f} s "
                      f"(step so far {now - self.started:.1f} s)")
        self.last = now
