"""The history of one roster row, or of one person, over every determination (`satudata history`).

What a person reads: the determination (number, snapshot date, when published, run), the verdict,
reasons, the decision (with its decided_at and decision_status: only 'applied' is the verdict)
and the amount, with the NIK masked and no name.
"""

from __future__ import annotations

import duckdb

from satudata_pipeline.history.store import DETERMINATIONS, REVIEW_ROWS
from satudata_pipeline.history.versions import _exists

HISTORY_COLUMNS = (
    "determination_id",
    "snapshot_date",
    "published_at",
    "run_id",
    "program",
    "source",
    "record_id",
    "person_id",
    "nik_masked",
    "verdict",
    "reasons",
    "pipeline_verdict",
    "decision",
    "decision_reason",
    "decided_by",
    "decided_at",
    "decision_status",
    "nominal_bulanan",
    "delivery_fingerprint",
)


def _history(conn: duckdb.DuckDBPyConnection, where: str, params: list) -> list[dict]:
    if not (_exists(conn, DETERMINATIONS) and _exists(conn, REVIEW_ROWS)):
        return []
    cols = ", ".join(
        f"d.{c}"
        if c in ("snapshot_date", "published_at", "run_id", "delivery_fingerprint")
        else f"r.{c}"
        for c in HISTORY_COLUMNS
    )
    rows = conn.execute(
        f"SELECT {cols} FROM {REVIEW_ROWS} r JOIN {DETERMINATIONS} d USING (determination_id) "
        f"WHERE {where} ORDER BY r.determination_id, r.program, r.source, r.record_id",
        params,
    ).fetchall()
    return [dict(zip(HISTORY_COLUMNS, r)) for r in rows]


def row_history(conn: duckdb.DuckDBPyConnection, program: str, record_id: str) -> list[dict]:
    """Every determination of one roster row (program + record_id), oldest first."""
    return _history(conn, "r.program = ? AND r.record_id = ?", [program, str(record_id)])


def earlier_ids(conn: duckdb.DuckDBPyConnection, person_id: str) -> list[str]:
    """Ids that became `person_id` (merges and splits logged in golden.person_id_changes), transitively."""
    if not _exists(conn, "golden.person_id_changes"):
        return []
    found, frontier = {person_id}, [person_id]
    while frontier:
        rows = conn.execute(
            "SELECT DISTINCT old_person_id FROM golden.person_id_changes WHERE new_person_id IN "
            f"({', '.join('?' * len(frontier))}) AND old_person_id IS NOT NULL",
            frontier,
        ).fetchall()
        frontier = [r[0] for r in rows if r[0] not in found]
        found.update(frontier)
    return sorted(found - {person_id})


def person_history(conn: duckdb.DuckDBPyConnection, person_id: str) -> list[dict]:
    """Every determination of every roster row of one person (stable person_id, and the ids that were
    merged into it), oldest first."""
    ids = [person_id, *earlier_ids(conn, person_id)]
    return _history(conn, f"r.person_id IN ({', '.join('?' * len(ids))})", ids)


def determinations(conn: duckdb.DuckDBPyConnection) -> list[dict]:
    """Every determination, oldest first (the list `satudata history` prints without a row)."""
    if not _exists(conn, DETERMINATIONS):
        return []
    cols = (
        "determination_id",
        "snapshot_date",
        "published_at",
        "run_id",
        "delivery_fingerprint",
        "model_version",
        "rules_version",
        "review_rows",
    )
    rows = conn.execute(
        f"SELECT {', '.join(cols)} FROM {DETERMINATIONS} ORDER BY determination_id"
    ).fetchall()
    return [dict(zip(cols, r)) for r in rows]


def format_rows(rows: list[dict]) -> str:
    """A plain-text table of a row's or person's history (masked NIK, no name)."""
    header = [
        "#",
        "snapshot",
        "published",
        "run",
        "program",
        "record_id",
        "nik",
        "verdict",
        "reasons",
        "decision",
        "amount",
    ]
    lines = [header]
    for r in rows:
        decision = r["decision"] or ""
        status = r["decision_status"]
        if decision or status:
            # only an 'applied' decision is the verdict; reopened / contradicted ones are shown, not applied
            word = status or "status unknown"
            if status != "applied":
                word += ", not applied"
            decided = f" {r['decided_at']}" if r["decided_at"] else ""
            decision = (
                f"{decision or '-'}{decided} [{word}] (pipeline: {r['pipeline_verdict'] or '?'}; "
                f"by {r['decided_by'] or '?'})"
            )
        lines.append(
            [
                str(r["determination_id"]),
                str(r["snapshot_date"] or ""),
                str(r["published_at"])[:16] if r["published_at"] else "",
                (r["run_id"] or "")[:8],
                r["program"] or "",
                r["record_id"] or "",
                r["nik_masked"] or "",
                r["verdict"] or "",
                ",".join(r["reasons"] or []) or "-",
                decision or "-",
                f"{r['nominal_bulanan']:,}".replace(",", ".")
                if r["nominal_bulanan"] is not None
                else "",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)
