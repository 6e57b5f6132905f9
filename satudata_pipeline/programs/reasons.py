"""The one table of reason codes (programs/reasons.yaml), and the SQL the verdict query takes from it.

Each code's flag, verdict, evidence text and Indonesian legend are written once in the YAML, where
a policy officer can review them; the verdict query (`programs/verdicts.py`), the exports' legend,
the decisions intake, the summaries and the evaluation all read them from here. The YAML is read
and checked once, at import: a code without a verdict, flag, evidence or Indonesian label is an
error naming the code and the field, before anything runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

REASONS_FILE = Path(__file__).with_name("reasons.yaml")
VERDICTS = ("keep", "remove", "review")

# A column of the verdict query (the evidence texts and flags name them)
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*$")
# {column}, {column:format}, {column|words}, {column:format|words}
_FIELD = re.compile(r"\{([a-z_][a-z0-9_]*)(?::([a-z0-9]+))?(?:\|([^{}]*))?\}")
_FORMATS = {
    "date": "strftime({}, '%Y-%m-%d')",
    "rupiah": "format('{{:,}}', {})",
    "3f": "printf('%.3f', {})",
}


class ReasonTableError(ValueError):
    """programs/reasons.yaml does not say what the verdict query needs (names the code and field)."""


@dataclass(frozen=True)
class EvidenceCase:
    when: str  # column of the verdict query selecting this case
    text: str  # the template (see reasons.yaml)


@dataclass(frozen=True)
class Reason:
    code: str
    verdict: str  # remove | review
    flag: str
    removes_when: str | None
    drifts: bool
    meaning: str
    legal_basis: str
    evidence: tuple[EvidenceCase, ...]
    label_id: str
    meaning_id: str
    action_id: str
    verdict_id: str  # the legend's verdict column (hapus / tinjau, or more)


def _text(code: str, entry: dict, key: str, where: str = "") -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ReasonTableError(f"{REASONS_FILE.name}: code {code}: {where}{key} missing or empty")
    return value.strip()


def _column(code: str, entry: dict, key: str, where: str = "") -> str:
    value = _text(code, entry, key, where)
    if not _COLUMN.match(value):
        raise ReasonTableError(
            f"{REASONS_FILE.name}: code {code}: {where}{key} {value!r} is not a column name"
        )
    return value


def _reason(code: str, entry: dict) -> Reason:
    if not isinstance(entry, dict):
        raise ReasonTableError(f"{REASONS_FILE.name}: code {code}: not a mapping")
    verdict = _text(code, entry, "verdict")
    if verdict not in ("remove", "review"):
        raise ReasonTableError(
            f"{REASONS_FILE.name}: code {code}: verdict {verdict!r} is not remove or review"
        )
    removes_when = _column(code, entry, "removes_when") if verdict == "remove" else None
    if verdict == "review" and "removes_when" in entry:
        raise ReasonTableError(f"{REASONS_FILE.name}: code {code}: a review code never removes")
    cases = entry.get("evidence")
    if not isinstance(cases, list) or not cases:
        raise ReasonTableError(f"{REASONS_FILE.name}: code {code}: evidence missing or empty")
    evidence = []
    for i, case in enumerate(cases):
        where = f"evidence[{i}]."
        if not isinstance(case, dict):
            raise ReasonTableError(f"{REASONS_FILE.name}: code {code}: {where[:-1]} not a mapping")
        text = _text(code, case, "text", where)
        if not text.startswith(code):
            raise ReasonTableError(
                f"{REASONS_FILE.name}: code {code}: {where}text must start with the code"
            )
        template_sql(text)  # a malformed template is an error here, not in the query
        evidence.append(EvidenceCase(_column(code, case, "when", where), text))
    legend = entry.get("id")
    if not isinstance(legend, dict):
        raise ReasonTableError(f"{REASONS_FILE.name}: code {code}: id (Indonesian legend) missing")
    return Reason(
        code=code,
        verdict=verdict,
        flag=_column(code, entry, "flag"),
        removes_when=removes_when,
        drifts=bool(entry.get("drifts", False)),
        meaning=_text(code, entry, "meaning"),
        legal_basis=_text(code, entry, "legal_basis"),
        evidence=tuple(evidence),
        label_id=_text(code, legend, "label", "id."),
        meaning_id=_text(code, legend, "meaning", "id."),
        action_id=_text(code, legend, "action", "id."),
        verdict_id=(
            _text(code, legend, "verdict", "id.")
            if "verdict" in legend
            else ("hapus" if verdict == "remove" else "tinjau")
        ),
    )


def load_reasons(path: Path = REASONS_FILE) -> dict[str, Reason]:
    """{code: Reason} of the table, in code order (alphabetical)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    codes = data.get("codes") if isinstance(data, dict) else None
    if not isinstance(codes, dict) or not codes:
        raise ReasonTableError(f"{path.name}: no `codes` mapping")
    bad = [c for c in codes if not isinstance(c, str) or not _COLUMN.match(c)]
    if bad:
        raise ReasonTableError(f"{path.name}: reason codes must be snake_case words: {bad}")
    return {code: _reason(code, codes[code]) for code in sorted(codes)}


# --------------------------------------------------------------------------------------------
# evidence templates -> SQL
# --------------------------------------------------------------------------------------------
def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _field_sql(match: re.Match) -> str:
    column, fmt, default = match.groups()
    if fmt is not None and fmt not in _FORMATS:
        raise ReasonTableError(
            f"{REASONS_FILE.name}: unknown format {fmt!r} in {match.group(0)} "
            f"(known: {', '.join(_FORMATS)})"
        )
    expr = _FORMATS[fmt].format(column) if fmt else column
    return f"coalesce({expr}, {_literal(default)})" if default is not None else expr


def _concat_sql(text: str) -> list[str]:
    """The `||` operands of a template without optional parts ([...])."""
    parts: list[str] = []
    pos = 0
    for m in _FIELD.finditer(text):
        if m.start() > pos:
            parts.append(_literal(text[pos : m.start()]))
        parts.append(_field_sql(m))
        pos = m.end()
    if pos < len(text):
        parts.append(_literal(text[pos:]))
    stray = [p for p in parts if p.startswith("'") and re.search(r"[{}\[\]]", p)]
    if stray:
        raise ReasonTableError(f"{REASONS_FILE.name}: unbalanced {{}} or [] in {text!r}")
    return parts


def template_sql(text: str) -> str:
    """A SQL string expression for an evidence template (see reasons.yaml): a value that is unknown
    makes the whole text unknown, except inside [ ... ] (that part is left out) or with |words."""
    parts: list[str] = []
    pos = 0
    for m in re.finditer(r"\[([^\[\]]*)\]", text):
        if m.start() > pos:
            parts.extend(_concat_sql(text[pos : m.start()]))
        parts.append(f"coalesce({' || '.join(_concat_sql(m.group(1)))}, '')")
        pos = m.end()
    if pos < len(text):
        parts.extend(_concat_sql(text[pos:]))
    return " || ".join(parts)


def template_columns(text: str) -> set[str]:
    """The columns an evidence template reads."""
    return {m.group(1) for m in _FIELD.finditer(text)}


REASONS: dict[str, Reason] = load_reasons()
REASON_CODES: tuple[str, ...] = tuple(REASONS)
REMOVE_REASONS: tuple[str, ...] = tuple(c for c, r in REASONS.items() if r.verdict == "remove")
REVIEW_REASONS: tuple[str, ...] = tuple(c for c, r in REASONS.items() if r.verdict == "review")
# Reasons that come and go with the calendar alone (left out of the evidence fingerprint)
DRIFTING_REASONS: tuple[str, ...] = tuple(c for c, r in REASONS.items() if r.drifts)


def reasons_sql(reasons: dict[str, Reason] = REASONS) -> str:
    """The sorted VARCHAR[] of the codes a row lists (each code's `flag`)."""
    cases = ",\n        ".join(
        f"CASE WHEN {r.flag} THEN {_literal(c)} END" for c, r in reasons.items()
    )
    return f"list_filter([\n        {cases}\n    ], lambda x: x IS NOT NULL)::VARCHAR[]"


def removes_sql(reasons: dict[str, Reason] = REASONS) -> str:
    """TRUE when a remove code's evidence is conclusive (the row's verdict is remove)."""
    return " OR ".join(r.removes_when for r in reasons.values() if r.removes_when)


def evidence_sql(reasons: dict[str, Reason] = REASONS) -> str:
    """The evidence text: every listed code's case, in code order, joined with '; ' (NULL if none)."""
    per_code = []
    for r in reasons.values():
        whens = " ".join(f"WHEN {e.when} THEN {template_sql(e.text)}" for e in r.evidence)
        per_code.append(f"CASE {whens} END")
    return "nullif(concat_ws('; ',\n        " + ",\n        ".join(per_code) + "\n    ), '')"


def verdict_sql(remove_column: str = "f_remove", reasons_column: str = "reasons") -> str:
    """remove when a remove code is conclusive (`remove_column`: `removes_sql`), review when any
    code is listed, else keep."""
    return (
        f"CASE WHEN {remove_column} THEN 'remove' "
        f"WHEN len({reasons_column}) > 0 THEN 'review' ELSE 'keep' END"
    )


def query_columns(reasons: dict[str, Reason] = REASONS) -> set[str]:
    """Every column of the verdict query the table names (flags, cases, template values)."""
    out: set[str] = set()
    for r in reasons.values():
        out |= {r.flag, *([r.removes_when] if r.removes_when else [])}
        for e in r.evidence:
            out |= {e.when} | template_columns(e.text)
    return out


__all__ = [
    "DRIFTING_REASONS",
    "REASONS",
    "REASON_CODES",
    "REMOVE_REASONS",
    "REVIEW_REASONS",
    "Reason",
    "ReasonTableError",
    "VERDICTS",
    "evidence_sql",
    "load_reasons",
    "query_columns",
    "reasons_sql",
    "removes_sql",
    "template_sql",
    "verdict_sql",
]
