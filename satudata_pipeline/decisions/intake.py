"""Decisions handed back (data contract section 4): read, check, set aside or store, resolve.

A decision file is small (an office's worklist), so its rows are checked in pandas; what they are
checked against (the program rules, this delivery's rosters and records, the last publication) and
where they go (the `decisions` schema) is in DuckDB.

- `decisions.review_decisions` / `decisions.link_decisions`: every decision that passed its checks,
  from every delivery, accumulated (a re-delivered file adds nothing: rows are kept once). This is
  why a decision stays in force in later runs without its file.
- `decisions.review_in_force` / `decisions.link_in_force`: per roster row / per pair of records the
  decision in force: the latest `decided_at`; two different outcomes on that date are a
  contradiction and neither is in force (a roster row then has `contradicted` set, goes to review,
  and shows the decision in force before, if any).
- `decisions.set_aside`: this delivery's decision rows that were not applied, with the reason code,
  the source and row number, and only the keys the office sent (program, record ids; never a name).

Everything is checked before anything is written, and written in one transaction.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from satudata_pipeline.clean.dates import parse_dates
from satudata_pipeline.clean.transform import _apply_values
from satudata_pipeline.clean.values import parse_bool
from satudata_pipeline.contract.sources import ContractError, Delivery, SourceSpec

SCHEMA = "decisions"
REVIEW_STORE = f"{SCHEMA}.review_decisions"
LINK_STORE = f"{SCHEMA}.link_decisions"
REVIEW_IN_FORCE = f"{SCHEMA}.review_in_force"
LINK_IN_FORCE = f"{SCHEMA}.link_in_force"
SET_ASIDE = f"{SCHEMA}.set_aside"

DECISIONS = ("keep", "remove")
# the pipeline's reason codes (docs/verdict-rules.md) and the outcomes only a person can establish
PERSON_REASONS = ("appeal_upheld", "confirmed_alive", "confirmed_resident", "other")
# a 16-digit number in a note is most likely a NIK: scrubbed before the note is stored
NIK_IN_TEXT = re.compile(r"(?<![0-9])[0-9]{16}(?![0-9])")
NIK_SCRUBBED = "[NIK dihapus]"


def officer_id() -> re.Pattern:
    """decided_by's pattern: an officer id, never a name (contract/intake_rules.yaml decisions.officer_id_pattern;
    default letters, digits, - and _ with at least one digit)."""
    from satudata_pipeline.contract.intake import load_intake_rules

    return re.compile(load_intake_rules().decisions.officer_id_pattern)


def scrub_note(note: object) -> str | None:
    """The note as stored: one line at most MAX_NOTE long, 16-digit numbers (a NIK) replaced."""
    if note is None or (isinstance(note, float) and pd.isna(note)):
        return None
    return NIK_IN_TEXT.sub(NIK_SCRUBBED, str(note))[:MAX_NOTE]


MAX_KEY = 64  # longest program code / record id / source name kept in the set-aside report
MAX_NOTE = 500

# Set-aside reason codes, in the order a row is checked (the first that applies is reported).
SET_ASIDE_REASONS = {
    "unreadable_row": "the row could not be read from the file",
    "malformed_program": "program is empty",
    "malformed_record_id": "record_id is empty",
    "malformed_decision": "decision is neither keep nor remove (after the `values:` map)",
    "malformed_reason": "reason is not a reason code, appeal_upheld, confirmed_alive, confirmed_resident or other",
    "malformed_decided_by": "decided_by is empty or not an officer id (intake_rules.yaml decisions.officer_id_pattern)",
    "malformed_decided_at": "decided_at is empty, not a date in the source's date_format, or in the future",
    "malformed_source": "source_a or source_b is empty",
    "malformed_same_person": "same_person is not a yes/no value",
    "same_record": "both sides name the same record",
    "unknown_program": "the program is not in the program rules",
    "unknown_source": "the source is not a person-bearing source of this delivery",
    "unknown_record": "no such record in this delivery (nor, for a roster row, in the last publication)",
    "not_in_roster": "the roster row was in the last publication but is not in this delivery's roster",
    "ambiguous_record": "two rosters of the program carry this record_id",
    "contradiction": "another decision on the same row or pair, same decided_at, other outcome",
    "superseded": "a later decision on the same row or pair is in force",
}

SET_ASIDE_COLUMNS = {
    "source": "VARCHAR",
    "kind": "VARCHAR",
    "row_number": "BIGINT",
    "reason": "VARCHAR",
    "program": "VARCHAR",
    "record_id": "VARCHAR",
    "source_a": "VARCHAR",
    "record_id_a": "VARCHAR",
    "source_b": "VARCHAR",
    "record_id_b": "VARCHAR",
    "decided_at": "DATE",
}
# who decided, when, and where the decision came from: the same in both stores
_DECIDED_AND_PROVENANCE = {
    "decided_by": "VARCHAR",
    "decided_at": "DATE",
    "note": "VARCHAR",
    "source": "VARCHAR",
    "row_number": "BIGINT",
    "file_sha256": "VARCHAR",
    "snapshot_date": "DATE",
    "stored_at": "TIMESTAMP",
}
REVIEW_COLUMNS = {
    "program": "VARCHAR",
    "record_id": "VARCHAR",
    "decision": "VARCHAR",
    "reason": "VARCHAR",
    **_DECIDED_AND_PROVENANCE,
    # the roster the decided row belongs to (one when stored, else the row is ambiguous_record): a
    # second roster of the program with the same record_id does not inherit the decision
    "roster_source": "VARCHAR",
}
LINK_COLUMNS = {
    "unique_id_a": "VARCHAR",
    "unique_id_b": "VARCHAR",
    "same_person": "BOOLEAN",
    **_DECIDED_AND_PROVENANCE,
}
REVIEW_KEY = (
    "program",
    "roster_source",
    "record_id",
    "decision",
    "reason",
    "decided_by",
    "decided_at",
    "note",
)
LINK_KEY = ("unique_id_a", "unique_id_b", "same_person", "decided_by", "decided_at", "note")


def review_reasons() -> tuple[str, ...]:
    from satudata_pipeline.programs.verdicts import REASON_CODES

    return tuple(REASON_CODES) + PERSON_REASONS


@dataclass
class IntakeResult:
    stored_review: int = 0  # new review decisions stored by this run
    stored_link: int = 0
    in_force_review: int = 0  # decisions in force after this run (all deliveries)
    in_force_link: int = 0
    set_aside: dict[str, int] = field(default_factory=dict)  # reason -> rows of this delivery
    rows_read: int = 0
    unanswered: int = 0  # rows of returned worklists left empty (not decisions, not set aside)


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------
def mapped_frame(
    conn: duckdb.DuckDBPyConnection, delivery: Delivery, source: SourceSpec
) -> pd.DataFrame:
    """The source's landed rows (raw.<name>) as canonical fields (text, `values:` applied) plus
    `row_number` and `unreadable`. A mapped column missing from the file is a ContractError."""
    present = [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw' AND table_name = ? "
            "ORDER BY ordinal_position",
            [source.name],
        ).fetchall()
    ]
    if not present:
        raise ContractError(
            "the file has not been landed (raw table missing)", source=source.name, file=source.path
        )
    by_stripped = {c.strip(): c for c in present}
    cols = []
    for fld, column in source.columns.items():
        if column.strip() not in by_stripped:
            raise ContractError(
                f"mapped column for field '{fld}' is missing from the file",
                source=source.name,
                file=source.path,
                column=column,
            )
        cols.append(f'"{by_stripped[column.strip()]}" AS "{fld}"')
    frame = conn.execute(
        f"SELECT {', '.join(cols)}, _row_number AS row_number, _parse_error IS NOT NULL AS unreadable "
        f'FROM raw."{source.name}" ORDER BY _row_number'
    ).df()
    for fld in source.columns:
        text = frame[fld].astype(object).where(frame[fld].notna(), None)
        text = text.map(lambda v: v.strip() if isinstance(v, str) else v)
        text = text.where(text.map(lambda v: v is not None and v != ""), None)
        if fld in source.values:
            text = _apply_values(text, source.values[fld])
        frame[fld] = text
    return frame


def _bounded(series: pd.Series, limit: int = MAX_KEY) -> pd.Series:
    """A key as sent, for the report: one line, at most `limit` characters."""
    return series.map(
        lambda v: (
            None
            if v is None or (isinstance(v, float) and pd.isna(v))
            else str(v).replace("\n", " ").replace("\r", " ")[:limit]
        )
    )


def _dates(frame: pd.DataFrame, source: SourceSpec, today: dt.date) -> pd.Series:
    parsed = parse_dates(frame["decided_at"], source.date_format)
    value = parsed["value"].where(parsed["value"] <= pd.Timestamp(today))
    return value.dt.date.where(value.notna(), None)


def _first_reason(frame: pd.DataFrame, checks: list[tuple[str, pd.Series]]) -> pd.Series:
    reason = pd.Series(None, index=frame.index, dtype=object)
    for code, bad in checks:
        reason = reason.where(reason.notna() | ~bad.fillna(False).astype(bool), code)
    return reason


# ------------------------------------------------------------------------------------------------
# checking one file
# ------------------------------------------------------------------------------------------------
@dataclass
class Context:
    """What decisions are checked against (read once per run)."""

    program_codes: set[str]
    rosters: pd.DataFrame  # program, source, record_id of this delivery's roster rows
    published: pd.DataFrame  # program, record_id of the last publication
    person_sources: set[str]
    records: RecordIds  # which unique_ids are this delivery's person records
    today: dt.date


class RecordIds:
    """Membership in `link.person_records.unique_id`, asked of the warehouse for the few ids a
    decision file names (the records themselves, millions, are never loaded into Python)."""

    def __init__(self, conn: duckdb.DuckDBPyConnection | None):
        self.conn = conn  # None: no person records (every id is unknown)

    def known(self, ids: pd.Series) -> set[str]:
        wanted = pd.DataFrame({"id": pd.Series(ids, dtype=object).dropna().unique()})
        if self.conn is None or wanted.empty:
            return set()
        self.conn.register("_decision_ids", wanted)
        try:
            rows = self.conn.execute(
                "SELECT d.id FROM _decision_ids d SEMI JOIN link.person_records r ON r.unique_id = d.id"
            ).fetchall()
        finally:
            self.conn.unregister("_decision_ids")
        return {r[0] for r in rows}


def load_context(
    conn: duckdb.DuckDBPyConnection,
    delivery: Delivery,
    program_codes: set[str],
    today: dt.date | None = None,
) -> Context:
    have = _exists(conn, "link.person_records")
    rosters = (
        conn.execute(
            "SELECT program, source, CAST(record_id AS VARCHAR) AS record_id FROM link.person_records "
            "WHERE kind = 'program_roster'"
        ).df()
        if have
        else pd.DataFrame(columns=["program", "source", "record_id"])
    )
    # roster rows that cleaning quarantined are roster rows too (published in review as
    # identity_unresolved): a person may decide on them
    quarantined = [
        conn.execute(
            f"SELECT DISTINCT ? AS program, ? AS source, CAST(record_id AS VARCHAR) AS record_id "
            f'FROM clean."{s.name}__quarantine" WHERE record_id IS NOT NULL',
            [s.program, s.name],
        ).df()
        for s in delivery.person_sources
        if s.kind == "program_roster" and _exists(conn, f"clean.{s.name}__quarantine")
    ]
    if quarantined:
        rosters = pd.concat([rosters, *quarantined], ignore_index=True).drop_duplicates()
    records = RecordIds(conn if have else None)
    published = (
        conn.execute(
            "SELECT DISTINCT program, CAST(record_id AS VARCHAR) AS record_id FROM main.beneficiary_review"
        ).df()
        if _exists(conn, "main.beneficiary_review")
        else pd.DataFrame(columns=["program", "record_id"])
    )
    # the person-bearing sources: those declared in this delivery, and those whose records were linked
    sources = {s.name for s in delivery.person_sources} | (
        {r[0] for r in conn.execute("SELECT DISTINCT source FROM link.person_records").fetchall()}
        if have
        else set()
    )
    return Context(program_codes, rosters, published, sources, records, today or dt.date.today())


def check_review_rows(frame: pd.DataFrame, source: SourceSpec, ctx: Context) -> pd.DataFrame:
    """Every row of a review_decision file with its canonical values and `set_aside` (a reason code,
    or None for a row that may be stored)."""
    f = frame.copy()
    for opt in ("reason", "note"):
        if opt not in f:
            f[opt] = None
    f["decision"] = f["decision"].map(lambda v: v.lower() if isinstance(v, str) else v)
    f["reason"] = f["reason"].map(lambda v: v.lower() if isinstance(v, str) else v)
    codes = {c.upper(): c for c in ctx.program_codes}  # program codes in any case
    f["program"] = f["program"].map(lambda v: codes.get(v.upper(), v) if isinstance(v, str) else v)
    f["decided_at_date"] = _dates(f, source, ctx.today)
    pattern = officer_id()
    roster_n = (
        ctx.rosters.groupby(["program", "record_id"]).size().rename("n_rosters").reset_index()
    )
    f = f.merge(roster_n, how="left", on=["program", "record_id"])
    one = ctx.rosters.drop_duplicates(["program", "record_id"], keep=False).rename(
        columns={"source": "roster_source"}
    )
    f = f.merge(
        one[["program", "record_id", "roster_source"]], how="left", on=["program", "record_id"]
    )
    pub = ctx.published.assign(in_published=True).drop_duplicates(["program", "record_id"])
    f = f.merge(pub, how="left", on=["program", "record_id"])
    f["in_published"] = f["in_published"].eq(True)
    reasons = review_reasons()
    f["set_aside"] = _first_reason(
        f,
        [
            ("unreadable_row", f["unreadable"]),
            ("malformed_program", f["program"].isna()),
            ("malformed_record_id", f["record_id"].isna()),
            ("malformed_decision", ~f["decision"].isin(DECISIONS)),
            ("malformed_reason", f["reason"].notna() & ~f["reason"].isin(reasons)),
            (
                "malformed_decided_by",
                ~f["decided_by"].map(lambda v: isinstance(v, str) and bool(pattern.fullmatch(v))),
            ),
            ("malformed_decided_at", f["decided_at_date"].isna()),
            ("unknown_program", ~f["program"].isin(ctx.program_codes)),
            ("not_in_roster", f["n_rosters"].isna() & f["in_published"]),
            ("unknown_record", f["n_rosters"].isna()),
            ("ambiguous_record", f["n_rosters"].fillna(0) > 1),
        ],
    )
    f["note"] = f["note"].map(scrub_note)
    return f


def check_link_rows(frame: pd.DataFrame, source: SourceSpec, ctx: Context) -> pd.DataFrame:
    f = frame.copy()
    if "note" not in f:
        f["note"] = None
    same, unmapped = parse_bool(f["same_person"])
    pattern = officer_id()
    f["same_person_value"] = same.astype(object).where(same.notna(), None)
    f["decided_at_date"] = _dates(f, source, ctx.today)
    uid_a = f["source_a"].astype(object) + ":" + f["record_id_a"].astype(object)
    uid_b = f["source_b"].astype(object) + ":" + f["record_id_b"].astype(object)
    known = ctx.records.known(pd.concat([uid_a, uid_b]))
    f["unique_id_a"] = [
        min(a, b) if isinstance(a, str) and isinstance(b, str) else a for a, b in zip(uid_a, uid_b)
    ]
    f["unique_id_b"] = [
        max(a, b) if isinstance(a, str) and isinstance(b, str) else b for a, b in zip(uid_a, uid_b)
    ]
    f["set_aside"] = _first_reason(
        f,
        [
            ("unreadable_row", f["unreadable"]),
            ("malformed_source", f["source_a"].isna() | f["source_b"].isna()),
            ("malformed_record_id", f["record_id_a"].isna() | f["record_id_b"].isna()),
            ("malformed_same_person", f["same_person_value"].isna() | unmapped),
            (
                "malformed_decided_by",
                ~f["decided_by"].map(lambda v: isinstance(v, str) and bool(pattern.fullmatch(v))),
            ),
            ("malformed_decided_at", f["decided_at_date"].isna()),
            ("same_record", uid_a == uid_b),
            (
                "unknown_source",
                ~f["source_a"].isin(ctx.person_sources) | ~f["source_b"].isin(ctx.person_sources),
            ),
            ("unknown_record", ~uid_a.isin(known) | ~uid_b.isin(known)),
        ],
    )
    f["note"] = f["note"].map(scrub_note)
    return f


# ------------------------------------------------------------------------------------------------
# storing and resolving
# ------------------------------------------------------------------------------------------------
def _exists(conn: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = qualified.split(".", 1)
    return bool(
        conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchall()[0][0]
    )


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for table, cols in (
        (REVIEW_STORE, REVIEW_COLUMNS),
        (LINK_STORE, LINK_COLUMNS),
        (SET_ASIDE, SET_ASIDE_COLUMNS),
    ):
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(f'{c} {t}' for c, t in cols.items())})"
        )
        for c, t in cols.items():  # a store written before a column existed (its rows: NULL)
            conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {c} {t}")


def _key_match(key: tuple[str, ...], a: str, b: str) -> str:
    return " AND ".join(f"{a}.{k} IS NOT DISTINCT FROM {b}.{k}" for k in key)


RESOLVE_REVIEW = f"""
    WITH per_date AS (
        SELECT program, roster_source, record_id, decided_at, count(DISTINCT decision) > 1 AS contradicted
        FROM {REVIEW_STORE} WHERE roster_source IS NOT NULL GROUP BY ALL
    ),
    latest AS (
        SELECT * FROM per_date
        QUALIFY decided_at = max(decided_at) OVER (PARTITION BY program, roster_source, record_id)
    ),
    -- the decision in force before a contradiction: the latest date with one outcome
    settled AS (
        SELECT s.* FROM {REVIEW_STORE} s
        JOIN per_date d USING (program, roster_source, record_id, decided_at)
        WHERE NOT d.contradicted
        QUALIFY decided_at = max(decided_at) OVER (PARTITION BY program, roster_source, record_id)
        -- the same outcome twice on one date: one row, deterministically
            AND row_number() OVER (PARTITION BY program, roster_source, record_id
                                   ORDER BY decided_at DESC, decided_by, reason NULLS LAST, note NULLS LAST,
                                            source) = 1
    )
    SELECT l.program, l.roster_source, l.record_id, s.decision, s.reason AS decision_reason, s.decided_by,
           s.decided_at, s.note, s.source,
           -- two outcomes on the latest date: the row goes to review with the previous decision shown
           l.contradicted, CASE WHEN l.contradicted THEN l.decided_at END AS contradicted_at
    FROM latest l
    LEFT JOIN settled s USING (program, roster_source, record_id)
"""
RESOLVE_LINK = f"""
    WITH latest AS (
        SELECT * FROM {LINK_STORE}
        QUALIFY decided_at = max(decided_at) OVER (PARTITION BY unique_id_a, unique_id_b)
    ),
    judged AS (
        SELECT *, count(DISTINCT same_person) OVER (PARTITION BY unique_id_a, unique_id_b) > 1 AS contradicted
        FROM latest
    )
    SELECT unique_id_a, unique_id_b, same_person, decided_by, decided_at, note, source
    FROM judged WHERE NOT contradicted
    QUALIFY row_number() OVER (PARTITION BY unique_id_a, unique_id_b ORDER BY decided_by, note NULLS LAST, source) = 1
"""


# The fields a person fills in. A returned worklist carries every row it listed; a row with all of
# them empty was not answered: not a decision and not set aside, it waits for the next worklist
# (docs/review-loop.md).
ANSWER_FIELDS = {
    "review_decision": ("decision", "reason", "decided_by", "decided_at", "note"),
    "link_decision": ("same_person", "decided_by", "decided_at", "note"),
}


def unanswered(frame: pd.DataFrame, kind: str) -> pd.Series:
    """Rows of a decision file in which nothing was filled in (readable rows only)."""
    cols = [c for c in ANSWER_FIELDS[kind] if c in frame]
    return frame[cols].isna().all(axis=1) & ~frame["unreadable"].astype(bool)


def take_in_decisions(
    conn: duckdb.DuckDBPyConnection,
    delivery: Delivery,
    program_codes: set[str],
    file_hashes: dict[str, str] | None = None,
    today: dt.date | None = None,
) -> IntakeResult:
    """Check every decision file of the delivery, store the decisions that pass, set the others aside
    with a reason, and resolve the decisions in force. Reads every file before writing anything."""
    ctx = load_context(conn, delivery, program_codes, today)
    checked: list[tuple[SourceSpec, pd.DataFrame]] = []
    unanswered_rows = 0
    for source in delivery.decision_sources:  # a missing column raises here, before any write
        frame = mapped_frame(conn, delivery, source)
        blank = unanswered(frame, source.kind)
        unanswered_rows += int(blank.sum())
        frame = frame[~blank].reset_index(drop=True)
        check = check_review_rows if source.kind == "review_decision" else check_link_rows
        checked.append((source, check(frame, source, ctx)))
    hashes = file_hashes or {}
    result = IntakeResult(
        rows_read=sum(len(f) for _, f in checked) + unanswered_rows, unanswered=unanswered_rows
    )
    review_new = [
        _review_rows(s, f, hashes.get(s.name), delivery.snapshot_date)
        for s, f in checked
        if s.kind == "review_decision"
    ]
    link_new = [
        _link_rows(s, f, hashes.get(s.name), delivery.snapshot_date)
        for s, f in checked
        if s.kind == "link_decision"
    ]
    review_new = pd.concat(review_new, ignore_index=True) if review_new else _empty(REVIEW_COLUMNS)
    link_new = pd.concat(link_new, ignore_index=True) if link_new else _empty(LINK_COLUMNS)
    aside = [_set_aside_rows(s, f[f["set_aside"].notna()]) for s, f in checked]
    aside = pd.concat(aside, ignore_index=True) if aside else _empty(SET_ASIDE_COLUMNS)

    conn.execute("BEGIN TRANSACTION")
    try:
        ensure_tables(conn)
        _backfill_roster_source(conn)
        stage_decision_files(conn, delivery, hashes)
        result.stored_review = _store(conn, REVIEW_STORE, REVIEW_COLUMNS, REVIEW_KEY, review_new)
        result.stored_link = _store(conn, LINK_STORE, LINK_COLUMNS, LINK_KEY, link_new)
        conn.execute(
            f"CREATE OR REPLACE TABLE {REVIEW_IN_FORCE} AS {RESOLVE_REVIEW} "
            "ORDER BY program, roster_source, record_id"
        )
        conn.execute(
            f"CREATE OR REPLACE TABLE {LINK_IN_FORCE} AS {RESOLVE_LINK} ORDER BY unique_id_a, unique_id_b"
        )
        # this delivery's valid rows that are not the decision in force: contradicted or superseded
        _typed_temp(conn, "_review_new", review_new, REVIEW_COLUMNS)
        _typed_temp(conn, "_link_new", link_new, LINK_COLUMNS)
        not_applied = conn.execute(f"""
            SELECT n.source, 'review_decision' AS kind, n.row_number,
                   CASE WHEN n.decided_at = m.latest THEN 'contradiction' ELSE 'superseded' END AS reason,
                   n.program, n.record_id, NULL AS source_a, NULL AS record_id_a, NULL AS source_b,
                   NULL AS record_id_b, n.decided_at
            FROM _review_new n
            JOIN (SELECT program, roster_source, record_id, max(decided_at) AS latest FROM {REVIEW_STORE}
                  GROUP BY ALL) m
              USING (program, roster_source, record_id)
            LEFT JOIN {REVIEW_IN_FORCE} f
              ON f.program = n.program AND f.roster_source = n.roster_source AND f.record_id = n.record_id
             AND f.decided_at = n.decided_at
             AND f.decision = n.decision
            WHERE f.program IS NULL
            UNION ALL
            SELECT n.source, 'link_decision', n.row_number,
                   CASE WHEN n.decided_at = m.latest THEN 'contradiction' ELSE 'superseded' END,
                   NULL, NULL, split_part(n.uid_sent_a, ':', 1), substr(n.uid_sent_a, length(split_part(n.uid_sent_a, ':', 1)) + 2),
                   split_part(n.uid_sent_b, ':', 1), substr(n.uid_sent_b, length(split_part(n.uid_sent_b, ':', 1)) + 2),
                   n.decided_at
            FROM (SELECT *, unique_id_a AS uid_sent_a, unique_id_b AS uid_sent_b FROM _link_new) n
            JOIN (SELECT unique_id_a, unique_id_b, max(decided_at) AS latest FROM {LINK_STORE} GROUP BY ALL) m
              USING (unique_id_a, unique_id_b)
            LEFT JOIN {LINK_IN_FORCE} f
              ON f.unique_id_a = n.unique_id_a AND f.unique_id_b = n.unique_id_b
             AND f.decided_at = n.decided_at AND f.same_person = n.same_person
            WHERE f.unique_id_a IS NULL
        """).df()
        conn.execute("DROP TABLE _review_new")
        conn.execute("DROP TABLE _link_new")
        chained = _set_aside_chained_contradictions(conn)
        parts = [f for f in (aside, not_applied, chained) if len(f)]
        aside = pd.concat(parts, ignore_index=True) if parts else _empty(SET_ASIDE_COLUMNS)
        aside = aside.drop_duplicates(["source", "kind", "row_number"])
        _typed_temp(conn, "_aside", aside, SET_ASIDE_COLUMNS)
        conn.execute(
            f"CREATE OR REPLACE TABLE {SET_ASIDE} AS SELECT * FROM _aside ORDER BY source, row_number"
        )
        conn.execute("DROP TABLE _aside")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    result.in_force_review = conn.execute(
        f"SELECT count(*) FROM {REVIEW_IN_FORCE} WHERE NOT contradicted"
    ).fetchall()[0][0]
    result.in_force_link = conn.execute(f"SELECT count(*) FROM {LINK_IN_FORCE}").fetchall()[0][0]
    result.set_aside = dict(
        conn.execute(f"SELECT reason, count(*) FROM {SET_ASIDE} GROUP BY 1 ORDER BY 1").fetchall()
    )
    return result


def _backfill_roster_source(conn: duckdb.DuckDBPyConnection) -> None:
    """Decisions stored before `roster_source` existed: the roster of the one published row they were
    applied to (main.beneficiary_review). Where the publication holds none or two, the decision stays
    without a roster and applies to no row (docs/decisions.md: hand it in again)."""
    if not _exists(conn, "main.beneficiary_review"):
        return
    conn.execute(f"""
        UPDATE {REVIEW_STORE} s SET roster_source = p.source
        FROM (SELECT program, CAST(record_id AS VARCHAR) AS record_id, any_value(source) AS source
              FROM main.beneficiary_review GROUP BY ALL HAVING count(DISTINCT source) = 1) p
        WHERE s.roster_source IS NULL AND p.program = s.program AND p.record_id = s.record_id""")


def stage_decision_files(
    conn: duckdb.DuckDBPyConnection, delivery: Delivery, hashes: dict[str, str] | None = None
) -> None:
    """Record each decision file in `staging.delivery_files` (history/versions.py) like the clean
    stage records the person sources: the delivery fingerprint then covers the decisions, so two
    deliveries that differ only by a decision file are not taken for a rerun of one another."""
    from satudata_pipeline.history import versions

    if not delivery.decision_sources:
        return
    yaml_sha = versions.sha256_file(delivery.yaml_path)
    for source in delivery.decision_sources:
        digest = (
            (hashes or {}).get(source.name)
            or versions.raw_file_hash(conn, source.name)
            or versions.sha256_file(delivery.file_path(source))
        )
        versions.stage_delivery_file(conn, source.name, source.path, digest, yaml_sha)


def _set_aside_chained_contradictions(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Not-same-person decisions in force whose two records same-person decisions join through a
    chain (A=B, B=C, A!=C), both records in this delivery: such a decision cannot be applied (a
    person's same-person decision is never cut), so it is taken out of `link_in_force` and set aside
    as `contradiction` (reported back every run until a later decision settles it). Returns the
    set-aside rows (the stored decision's source file and row)."""
    if not _exists(conn, "link.person_records"):
        return _empty(SET_ASIDE_COLUMNS)
    rows = conn.execute(f"""
        SELECT d.unique_id_a, d.unique_id_b, d.same_person FROM {LINK_IN_FORCE} d
        SEMI JOIN link.person_records a ON a.unique_id = d.unique_id_a
        SEMI JOIN link.person_records b ON b.unique_id = d.unique_id_b
        ORDER BY 1, 2""").fetchall()
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, same in rows:
        if same:
            parent[find(a)] = find(b)
    bad = [(a, b) for a, b, same in rows if not same and find(a) == find(b)]
    if not bad:
        return _empty(SET_ASIDE_COLUMNS)
    conn.register(
        "_chained", pd.DataFrame(bad, columns=["unique_id_a", "unique_id_b"], dtype=object)
    )
    try:
        out = conn.execute(f"""
            SELECT s.source, 'link_decision' AS kind, min(s.row_number) AS row_number,
                   'contradiction' AS reason, NULL AS program, NULL AS record_id,
                   split_part(s.unique_id_a, ':', 1) AS source_a,
                   substr(s.unique_id_a, length(split_part(s.unique_id_a, ':', 1)) + 2) AS record_id_a,
                   split_part(s.unique_id_b, ':', 1) AS source_b,
                   substr(s.unique_id_b, length(split_part(s.unique_id_b, ':', 1)) + 2) AS record_id_b,
                   s.decided_at
            FROM {LINK_STORE} s
            JOIN {LINK_IN_FORCE} f ON f.unique_id_a = s.unique_id_a AND f.unique_id_b = s.unique_id_b
             AND f.decided_at = s.decided_at AND f.same_person = s.same_person
            SEMI JOIN _chained c ON c.unique_id_a = s.unique_id_a AND c.unique_id_b = s.unique_id_b
            GROUP BY ALL""").df()
        conn.execute(
            f"DELETE FROM {LINK_IN_FORCE} d USING _chained c "
            "WHERE d.unique_id_a = c.unique_id_a AND d.unique_id_b = c.unique_id_b"
        )
    finally:
        conn.unregister("_chained")
    for col in ("source_a", "record_id_a", "source_b", "record_id_b"):
        out[col] = _bounded(out[col])
    return out


def _typed_temp(
    conn: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame, cols: dict[str, str]
) -> None:
    """`frame` as a temp table with the declared column types (an empty frame has no types)."""
    conn.register("_frame", frame)
    try:
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT "
            + ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in cols.items())
            + " FROM _frame"
        )
    finally:
        conn.unregister("_frame")


def _empty(cols: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})


def _review_rows(
    source: SourceSpec, f: pd.DataFrame, digest: str | None, snapshot: dt.date
) -> pd.DataFrame:
    ok = f[f["set_aside"].isna()]
    return pd.DataFrame(
        {
            "program": ok["program"],
            "record_id": ok["record_id"],
            "decision": ok["decision"],
            "reason": ok["reason"],
            "decided_by": ok["decided_by"],
            "decided_at": ok["decided_at_date"],
            "note": ok["note"],
            "source": source.name,
            "row_number": ok["row_number"],
            "file_sha256": digest,
            "snapshot_date": snapshot,
            "stored_at": pd.Timestamp.now(),
            "roster_source": ok["roster_source"],
        }
    )


def _link_rows(
    source: SourceSpec, f: pd.DataFrame, digest: str | None, snapshot: dt.date
) -> pd.DataFrame:
    ok = f[f["set_aside"].isna()]
    return pd.DataFrame(
        {
            "unique_id_a": ok["unique_id_a"],
            "unique_id_b": ok["unique_id_b"],
            "same_person": ok["same_person_value"].astype(object),
            "decided_by": ok["decided_by"],
            "decided_at": ok["decided_at_date"],
            "note": ok["note"],
            "source": source.name,
            "row_number": ok["row_number"],
            "file_sha256": digest,
            "snapshot_date": snapshot,
            "stored_at": pd.Timestamp.now(),
        }
    )


def _set_aside_rows(source: SourceSpec, f: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "source": source.name,
            "kind": source.kind,
            "row_number": f["row_number"],
            "reason": f["set_aside"],
        },
        index=f.index,
    )
    for col in ("program", "record_id", "source_a", "record_id_a", "source_b", "record_id_b"):
        out[col] = _bounded(f[col]) if col in f else None
    out["decided_at"] = f["decided_at_date"]
    return out


def _store(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    cols: dict[str, str],
    key: tuple[str, ...],
    rows: pd.DataFrame,
) -> int:
    """Insert the rows not stored yet (a re-delivered decision is stored once); returns how many."""
    if rows.empty:
        return 0
    conn.register("_incoming", rows)
    typed = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in cols.items())
    before = conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    conn.execute(f"""
        INSERT INTO {table} BY NAME
        SELECT * FROM (SELECT {typed} FROM _incoming) i
        WHERE NOT EXISTS (SELECT 1 FROM {table} s WHERE {_key_match(key, "s", "i")})
        QUALIFY row_number() OVER (PARTITION BY {", ".join(key)} ORDER BY source, row_number) = 1
    """)
    conn.unregister("_incoming")
    return conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] - before
