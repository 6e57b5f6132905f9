"""The completeness gate: nothing is cleaned, linked or published from an incomplete delivery.

It runs right after the raw stage (every clean asset depends on it), so a delivery that lost a
source, a file cut in half or a death registry reduced to its header stops the run within seconds,
before anything downstream is written. What blocks (limits in contract/intake_rules.yaml):

- a delivery with program rosters that holds no rows of a kind every verdict depends on (civil,
  death and migration registries, a welfare registry): no override, deliver the registry;
- a CSV record spanning more lines than allowed (a stray quote merged the rows after it), or a file
  that ends in the middle of a record (cut during export or transfer): no override, fix the file;
- a source that was in the last publication and is now missing, a source with 0 rows, or a source
  whose row count fell by more than the allowed share since the last publication: blocks unless the
  operator accepts it for this run (`satudata run --accept SOURCE`, or the run config
  `ops: {delivery_completeness: {config: {accept: [SOURCE]}}}` in the UI launchpad).

Every finding and acceptance is written to `staging.delivery_sources`, published with the lists as
`main.publication_sources` (golden/publish.py): which sources each publication was made from, with
how many rows, and what the operator accepted. A first publication (none before) has nothing to
compare with: only the kind, zero-row and file rules apply.
"""

from dataclasses import dataclass

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from satudata_pipeline.contract.intake import IntakeRules, load_intake_rules
from satudata_pipeline.contract.sources import DECISION_KINDS, Delivery
from satudata_pipeline.golden.publish import DELIVERY_SOURCES
from satudata_pipeline.golden.publish import SOURCES_TABLE as PUBLICATION_SOURCES
from satudata_pipeline.warehouse import table_exists

COMPLETENESS_KEY = dg.AssetKey("delivery_completeness")
CHECK_NAME = "delivery_is_complete"
FILE_STATS = "intake.file_stats"
KIND_WORDS = {
    "civil_registry": "civil registry (Dukcapil population)",
    "death_registry": "death registry",
    "migration_registry": "migration registry",
    "welfare_registry": "welfare registry (DTKS / P3KE / DTSEN)",
    "program_roster": "program roster",
    "review_decision": "review decisions handed back",
    "link_decision": "link decisions handed back",
}
KIND_WHY = {
    "civil_registry": "without it nobody can be confirmed a resident of DKI",
    "death_registry": "without it every dead recipient is kept and paid",
    "migration_registry": "without it every recipient who left DKI is kept and paid",
    "welfare_registry": "without it nobody's welfare status (desil) can be checked",
}
ACCEPTABLE = {"missing", "empty", "dropped"}
COLUMNS = [
    "source",
    "kind",
    "program",
    "file",
    "rows",
    "physical_records",
    "previous_rows",
    "days_old",
    "freshness_limit_days",
    "finding",
    "blocks",
    "accepted",
    "message",
]


class CompletenessConfig(dg.Config):
    accept: list[str] = Field(
        default_factory=list,
        description=(
            "Source names whose absence, emptiness or drop in rows since the last publication the operator "
            "accepts for THIS run (e.g. a roster that really shrank). Recorded with the publication in "
            "main.publication_sources. CLI: satudata run --accept SOURCE."
        ),
    )


@dataclass
class Finding:
    source: str | None
    kind: str
    code: str
    message: str

    @property
    def acceptable(self) -> bool:
        return self.code in ACCEPTABLE


def previous_publication(
    conn: duckdb.DuckDBPyConnection,
) -> dict[str, tuple[str | None, int]] | None:
    """{source: (kind, rows)} of the last publication, or None when nothing was ever published.

    A warehouse published before publication_sources existed: the rows per source of the published
    main.person_source_link (one row per delivered row, quarantined ones included)."""
    if not table_exists(conn, "main.publication_log"):
        return None
    last = conn.execute(
        "SELECT run_id FROM main.publication_log ORDER BY published_at DESC LIMIT 1"
    ).fetchall()
    if not last:
        return None
    if table_exists(conn, PUBLICATION_SOURCES):
        rows = conn.execute(
            f"SELECT source, kind, rows FROM {PUBLICATION_SOURCES} WHERE run_id = ? AND source IS NOT NULL "
            "AND finding IS DISTINCT FROM 'missing'",
            [last[0][0]],
        ).fetchall()
        if rows:
            return {s: (k, int(n)) for s, k, n in rows}
    if table_exists(conn, "main.person_source_link"):
        rows = conn.execute(
            "SELECT source, count(*) FROM main.person_source_link GROUP BY source"
        ).fetchall()
        return {s: (None, int(n)) for s, n in rows}
    return None


def assess(
    conn: duckdb.DuckDBPyConnection,
    delivery: Delivery,
    accept: set[str] | frozenset = frozenset(),
    rules: IntakeRules | None = None,
) -> pd.DataFrame:
    """One row per delivered source (+ one per source missing since the last publication, + one per
    required kind without rows), with the finding that blocks it, if any, and whether it was accepted."""
    rules = rules or load_intake_rules()
    limits = rules.completeness
    max_lines = rules.records.max_record_lines
    stats = {}
    if table_exists(conn, FILE_STATS):
        cols = [d[0] for d in conn.execute(f"SELECT * FROM {FILE_STATS} LIMIT 0").description]
        for row in conn.execute(f"SELECT * FROM {FILE_STATS}").fetchall():
            stats[row[0]] = dict(zip(cols, row))
    previous = previous_publication(conn)
    out: list[dict] = []

    def add(source, kind, program, file, rows, physical, prev, finding: Finding | None, **extra):
        out.append(
            {
                "source": source,
                "kind": kind,
                "program": program,
                "file": file,
                "rows": rows,
                "physical_records": physical,
                "previous_rows": prev,
                "days_old": extra.get("days_old"),
                "freshness_limit_days": extra.get("limit"),
                "finding": finding.code if finding else None,
                "blocks": finding is not None and not (finding.acceptable and source in accept),
                "accepted": finding is not None and finding.acceptable and source in accept,
                "message": finding.message if finding else None,
            }
        )

    rows_by_kind: dict[str, int] = {}
    for s in delivery.sources:
        st = stats.get(s.name)
        if st is None:
            raise dg.Failure(
                f"source '{s.name}': its raw asset has not landed the file in this run"
            )
        rows = int(st["rows"])
        rows_by_kind[s.kind] = rows_by_kind.get(s.kind, 0) + rows
        prev = previous.get(s.name, (None, None))[1] if previous else None
        where = f"{s.name} ({s.path})"
        finding = None
        if (st["longest_record_lines"] or 1) > max_lines:
            finding = Finding(
                s.name,
                s.kind,
                "merged_records",
                (
                    f"{where}: row {st['longest_record_row']}, starting on line {st['longest_record_line']}, spans "
                    f"{st['longest_record_lines']} lines (at most {max_lines} allowed): a stray or missing quote "
                    f"merged the rows after it into one ({st['physical_records']} lines read as {rows} rows). "
                    "Fix the quote and deliver again."
                ),
            )
        elif st["cut_row"] is not None:
            finding = Finding(
                s.name,
                s.kind,
                "file_cut",
                (
                    f"{where}: the file ends in the middle of row {st['cut_row']} (line {st['cut_line']}): it was "
                    "cut off during export or transfer, so rows after it may be missing. Deliver the whole file."
                ),
            )
        elif s.is_decision:
            # decisions handed back come when people decide: a delivery without them, or with fewer
            # than last month, is normal (those already applied stay in force: docs/decisions.md)
            finding = None
        elif rows == 0:
            finding = Finding(
                s.name,
                s.kind,
                "empty",
                (
                    f"{where}: holds no rows (only a header)"
                    + (f"; the last publication had {prev}" if prev else "")
                    + f". If it is really empty this month, accept it: satudata run --accept {s.name}"
                ),
            )
        elif (
            prev is not None
            and prev - rows >= max(limits.min_rows_dropped, 1)
            and (prev - rows) / prev > limits.max_row_drop_share
        ):
            finding = Finding(
                s.name,
                s.kind,
                "dropped",
                (
                    f"{where}: {rows} rows, the last publication had {prev} ({(prev - rows) / prev:.0%} fewer; "
                    f"more than {limits.max_row_drop_share:.0%} is treated as a truncated or partial extract). "
                    f"If the source really shrank, accept it: satudata run --accept {s.name}"
                ),
            )
        add(
            s.name,
            s.kind,
            s.program,
            s.path,
            rows,
            st["physical_records"],
            prev,
            finding,
            days_old=delivery.days_old(s),
            limit=delivery.freshness_limit(s),
        )

    names = {s.name for s in delivery.sources}
    for name, (kind, prev) in sorted((previous or {}).items()):
        if name not in names and kind not in DECISION_KINDS:
            add(
                name,
                kind,
                None,
                None,
                0,
                None,
                prev,
                Finding(
                    name,
                    kind or "",
                    "missing",
                    (
                        f"{name}: was in the last publication ({prev} rows) but is not in this delivery's sources.yaml. "
                        f"If it was dropped on purpose, accept it: satudata run --accept {name}"
                    ),
                ),
            )

    if any(s.kind == "program_roster" for s in delivery.sources):
        for kind in limits.required_kinds_with_rosters:
            if rows_by_kind.get(kind, 0) == 0:
                declared = any(s.kind == kind for s in delivery.sources)
                add(
                    None,
                    kind,
                    None,
                    None,
                    0,
                    None,
                    None,
                    Finding(
                        None,
                        kind,
                        "kind_missing",
                        (
                            f"no {KIND_WORDS[kind]} rows: the delivery has program rosters but "
                            + (
                                "its " + kind + " source(s) are empty"
                                if declared
                                else "no " + kind + " source"
                            )
                            + f"; {KIND_WHY.get(kind, 'every verdict depends on it')}. No list is published without it: "
                            "deliver the registry (this cannot be accepted)."
                        ),
                    ),
                )
    frame = pd.DataFrame(out, columns=COLUMNS)
    return frame


def write_delivery_sources(conn: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS staging")
    conn.register("_delivery_sources", frame)
    conn.execute(f"""CREATE OR REPLACE TABLE {DELIVERY_SOURCES} AS SELECT
        CAST(source AS VARCHAR) AS source, CAST(kind AS VARCHAR) AS kind, CAST(program AS VARCHAR) AS program,
        CAST(file AS VARCHAR) AS file, CAST(rows AS BIGINT) AS rows, CAST(physical_records AS BIGINT) AS physical_records,
        CAST(previous_rows AS BIGINT) AS previous_rows, CAST(days_old AS INTEGER) AS days_old,
        CAST(freshness_limit_days AS INTEGER) AS freshness_limit_days, CAST(finding AS VARCHAR) AS finding,
        CAST(blocks AS BOOLEAN) AS blocks, CAST(accepted AS BOOLEAN) AS accepted, CAST(message AS VARCHAR) AS message
        FROM _delivery_sources ORDER BY source NULLS LAST, kind""")
    conn.unregister("_delivery_sources")


def explain(frame: pd.DataFrame) -> str | None:
    """The operator's explanation of a blocked delivery (None when nothing blocks)."""
    blocking = frame[frame["blocks"]]
    if blocking.empty:
        return None
    lines = [f"Nothing is published from this delivery ({len(blocking)} problem(s)):"]
    lines += [f"  - {m}" for m in blocking["message"]]
    return "\n".join(lines)


def build_completeness_gate(delivery: Delivery) -> dg.AssetsDefinition:
    from satudata_pipeline.sources.assets import raw_key

    @dg.asset(
        key=COMPLETENESS_KEY,
        deps=[raw_key(s) for s in delivery.sources],
        group_name="sources",
        kinds={"duckdb"},
        description=(
            "The completeness gate, right after the raw stage: a delivery with rosters must hold a civil, "
            "death, migration and welfare registry; no source of the last publication may be missing, empty "
            "or much smaller unless the operator accepts it (run config `accept`, CLI --accept); no CSV may "
            "hold merged or cut records. Writes staging.delivery_sources (published as "
            "main.publication_sources). Every clean asset depends on it."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                CHECK_NAME,
                asset=COMPLETENESS_KEY,
                blocking=True,
                description=(
                    "Blocking: the delivery is complete (every required kind has rows, no source missing, empty or "
                    "dropped beyond the limit without the operator's acceptance, no merged or cut CSV records)."
                ),
            )
        ],
    )
    def delivery_completeness(
        context: dg.AssetExecutionContext, config: CompletenessConfig, warehouse: DuckDBResource
    ):
        accept = set(config.accept)
        with warehouse.get_connection() as conn:
            frame = assess(conn, delivery, accept)
            write_delivery_sources(conn, frame)
        message = explain(frame)
        accepted = sorted(frame.loc[frame["accepted"], "source"].dropna())
        unused = sorted(accept - set(accepted))
        if message:
            context.log.error(message)
        if accepted:
            context.log.warning("accepted by the operator for this run: " + ", ".join(accepted))
        if unused:
            context.log.warning(
                "--accept named source(s) with nothing to accept: " + ", ".join(unused)
            )
        findings = frame[frame["finding"].notna()]
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(frame),
                "rows_by_source": dg.MetadataValue.json(
                    {
                        s: int(n)
                        for s, n in frame.dropna(subset=["source"])[["source", "rows"]].values
                    }
                ),
                "accepted": ", ".join(accepted) or "none",
                "table": DELIVERY_SOURCES,
            }
        )
        yield dg.AssetCheckResult(
            check_name=CHECK_NAME,
            passed=message is None,
            severity=dg.AssetCheckSeverity.ERROR,
            description=message
            or (
                f"complete; accepted by the operator: {', '.join(accepted)}"
                if accepted
                else "complete"
            ),
            metadata={
                "findings": dg.MetadataValue.json(
                    [
                        {
                            "source": r.source,
                            "kind": r.kind,
                            "finding": r.finding,
                            "accepted": bool(r.accepted),
                        }
                        for r in findings.itertuples()
                    ]
                ),
                "accepted": ", ".join(accepted) or "none",
                "accept_unused": ", ".join(unused) or "none",
            },
        )

    return delivery_completeness


__all__ = [
    "COMPLETENESS_KEY",
    "CHECK_NAME",
    "DELIVERY_SOURCES",
    "PUBLICATION_SOURCES",
    "CompletenessConfig",
    "assess",
    "build_completeness_gate",
    "explain",
    "previous_publication",
]
