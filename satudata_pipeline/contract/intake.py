"""The operator's intake limits (`intake_rules.yaml`): freshness ceilings, completeness, record limits.

These limits belong to whoever runs the determination, not to the delivery: a delivery can ask for a
stricter limit (a shorter `freshness_days`) but never switch one off. See the comments in the YAML
for why each limit is what it is, and docs/data-contract.md for the user's view.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

INTAKE_RULES = Path(__file__).resolve().parent / "intake_rules.yaml"
KIND_NAMES = (
    "civil_registry",
    "death_registry",
    "migration_registry",
    "welfare_registry",
    "program_roster",
    "review_decision",
    "link_decision",
)


class IntakeRulesError(ValueError):
    """The operator's intake rules are missing or invalid (names the file and the field)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourcesYamlLimits(_Strict):
    max_bytes: int = Field(gt=0)


class Completeness(_Strict):
    required_kinds_with_rosters: tuple[str, ...]
    max_row_drop_share: float = Field(ge=0, le=1)
    min_rows_dropped: int = Field(ge=0)


class RecordLimits(_Strict):
    max_record_lines: int = Field(ge=1)


class ValueLimits(_Strict):
    max_unparseable_share: float = Field(ge=0, le=1)
    min_unparseable_rows: int = Field(ge=1)


class FieldLimits(_Strict):
    max_chars: int = Field(gt=0)


DEFAULT_OFFICER_ID = r"^(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{1,64}$"


class DecisionLimits(_Strict):
    # decided_by must be an officer id, never a name (docs/decisions.md, docs/privacy.md)
    officer_id_pattern: str = DEFAULT_OFFICER_ID


class IntakeRules(_Strict):
    sources_yaml: SourcesYamlLimits
    freshness_ceiling_days: dict[str, int]
    completeness: Completeness
    records: RecordLimits
    values: ValueLimits
    fields: FieldLimits
    decisions: DecisionLimits = DecisionLimits()

    def ceiling(self, kind: str) -> int:
        return self.freshness_ceiling_days[kind]


def load_intake_rules(path: Path | None = None) -> IntakeRules:
    """The intake rules (the shipped file unless `path`); cached per path."""
    return _load(str(path or INTAKE_RULES))


@lru_cache(maxsize=8)
def _load(path: str) -> IntakeRules:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise IntakeRulesError(
            f"{path}: cannot read the intake rules ({type(exc).__name__})"
        ) from None
    try:
        rules = IntakeRules(**(raw or {}))
    except (ValidationError, TypeError) as exc:
        raise IntakeRulesError(f"{path}: invalid intake rules: {exc}") from None
    try:
        re.compile(rules.decisions.officer_id_pattern)
    except re.error as exc:
        raise IntakeRulesError(
            f"{path}: decisions.officer_id_pattern is not a regular expression ({exc})"
        ) from None
    missing = sorted(set(KIND_NAMES) - set(rules.freshness_ceiling_days))
    unknown = sorted(set(rules.freshness_ceiling_days) - set(KIND_NAMES))
    bad_kinds = sorted(set(rules.completeness.required_kinds_with_rosters) - set(KIND_NAMES))
    if missing or unknown or bad_kinds:
        raise IntakeRulesError(
            f"{path}: freshness_ceiling_days needs exactly the kinds {list(KIND_NAMES)} "
            f"(missing {missing}, unknown {unknown}); unknown required kinds {bad_kinds}"
        )
    return rules


__all__ = ["INTAKE_RULES", "IntakeRules", "IntakeRulesError", "load_intake_rules"]
