"""What the Dagster UI shows about months and changes: counts only, never a person's data."""

from __future__ import annotations

import datetime as dt

from satudata_pipeline.history.store import CHANGES

RUN_TAG_SNAPSHOT = "satudata/snapshot_date"  # on every run launched by the CLI and the sensor
RUN_TAG_MONTH = "satudata/determination_for"


def month_label(snapshot: dt.date | str | None) -> str:
    """'2026-11' for a snapshot date of 2026-11-01 (the month the determination is for)."""
    if snapshot is None:
        return "unknown"
    return str(snapshot)[:7]


def determination_label(snapshot: dt.date | str | None, determination_id: int | None) -> str:
    """'determination for 2026-11 (no. 3 in this warehouse)'."""
    label = f"determination for {month_label(snapshot)}"
    return label + (f" (no. {determination_id} in this warehouse)" if determination_id else "")


def changes_markdown(counts: dict[str, dict[str, int]], previous: int | None) -> str:
    """A table of counts per program and change; says so when there is nothing to compare with."""
    if previous is None:
        return "First determination in this warehouse: nothing to compare with."
    if not counts:
        return f"No roster rows, now or in determination {previous}: nothing changed."
    header = "| program | " + " | ".join(CHANGES) + " |\n|---|" + "---:|" * len(CHANGES)
    lines = [
        f"| {p} | " + " | ".join(f"{c.get(k, 0):,}".replace(",", ".") for k in CHANGES) + " |"
        for p, c in sorted(counts.items())
    ]
    return f"Against determination {previous}:\n\n" + header + "\n" + "\n".join(lines)


def change_totals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """{change: rows over every program}."""
    return {k: sum(c.get(k, 0) for c in counts.values()) for k in CHANGES}
