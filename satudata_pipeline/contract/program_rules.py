"""Program rules: the pydantic model of `satudata_pipeline/programs/rules.yaml` and its validation.

The rules file is written for policy officers: one entry per program with its legal basis and its
parameters (age range, monthly amount, desil cut-off, mutual exclusions ...). Everything the verdict
and eligibility SQL needs comes from here, so adding a program is a YAML edit.

    rules = load_rules()                 # the shipped file, or load_rules(Path("my_rules.yaml"))
    rules.codes()                        # {"KJP", "KJMU", ...}  (used by the sources.yaml validator)
    rules.program("KJP").amount_for("SMA")

Errors are `ProgramRulesError` (a ValueError) whose message names the file and every offending field,
e.g. ``rules.yaml: programs.KJP.age: min (22) is greater than max (21)``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from satudata_pipeline.contract.schema import JENJANG

PROGRAM_CODE_PATTERN = r"^[A-Z][A-Z0-9_]{0,31}$"


class ProgramRulesError(ValueError):
    """The rules file is missing, unreadable or invalid. The message names the file and fields."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgeRange(_Strict):
    """Completed years at the snapshot date, both ends inclusive; a missing end is open."""

    min: int | None = Field(default=None, ge=0, le=130)
    max: int | None = Field(default=None, ge=0, le=130)

    @model_validator(mode="after")
    def _ordered(self) -> AgeRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self

    def contains(self, age: int | None) -> bool:
        if age is None:
            return False
        return (self.min is None or age >= self.min) and (self.max is None or age <= self.max)

    def label(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.min}-{self.max}"
        if self.min is not None:
            return f"{self.min}+"
        if self.max is not None:
            return f"0-{self.max}"
        return "any"


class LegalBasis(_Strict):
    """A legal instrument. `number` stays empty (and status `to_be_confirmed`) unless known for sure."""

    instrument: str = "Peraturan Gubernur Provinsi DKI Jakarta"
    number: str | None = None
    year: int | None = Field(default=None, ge=1945, le=2100)
    title: str
    status: Literal["confirmed", "to_be_confirmed"] = "to_be_confirmed"
    note: str | None = None

    def citation(self) -> str:
        num = f" Nomor {self.number}" if self.number else ""
        yr = f" Tahun {self.year}" if self.year else ""
        tbc = "" if self.status == "confirmed" else " (to be confirmed)"
        return f"{self.instrument}{num}{yr} tentang {self.title}{tbc}"


class TargetGroup(_Strict):
    """One group a program serves, used to find eligible people who are not enrolled (any group)."""

    name: str
    age: AgeRange | None = None
    requires_disability: bool = False


class CommonRules(_Strict):
    """Rules shared by every program unless the program overrides them."""

    desil_max: int = Field(default=4, ge=1, le=10, description="highest eligible desil (1-10)")
    staleness_months: int = Field(default=12, ge=1, le=120)
    exclude_car_owners: bool = True
    exclude_njop_above_1bn: bool = True


class ProgramRule(_Strict):
    name: str
    description: str | None = None
    legal_basis: list[LegalBasis] = Field(default_factory=list)
    age: AgeRange | None = None
    amount: int | None = Field(default=None, ge=0, description="flat monthly amount in rupiah")
    amount_by_jenjang: dict[str, int] | None = None
    desil_max: int | None = Field(default=None, ge=1, le=10)
    staleness_months: int | None = Field(default=None, ge=1, le=120)
    exclude_car_owners: bool | None = None
    exclude_njop_above_1bn: bool | None = None
    requires_disability: bool = False
    excludes: list[str] = Field(default_factory=list)
    target_groups: list[TargetGroup] = Field(default_factory=list)
    household_of: list[str] = Field(default_factory=list)

    @field_validator("amount_by_jenjang")
    @classmethod
    def _amounts(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must name at least one jenjang")
        for jenjang, amount in value.items():
            if jenjang not in JENJANG:
                raise ValueError(
                    f"unknown jenjang {jenjang!r} (expected one of {', '.join(JENJANG)})"
                )
            if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
                raise ValueError(
                    f"amount for {jenjang} must be a non-negative whole number of rupiah, got {amount!r}"
                )
        return value

    @model_validator(mode="after")
    def _one_amount(self) -> ProgramRule:
        if (self.amount is None) == (self.amount_by_jenjang is None):
            raise ValueError("give exactly one of `amount` (flat) or `amount_by_jenjang`")
        return self

    def amount_for(self, jenjang: str | None) -> int | None:
        if self.amount is not None:
            return self.amount
        if self.amount_by_jenjang is None:  # _one_amount: one of the two is always given
            raise ValueError("a program rule without amount or amount_by_jenjang")
        return self.amount_by_jenjang.get((jenjang or "").upper())


class ProgramRules(_Strict):
    version: int = 1
    common: CommonRules = Field(default_factory=CommonRules)
    programs: dict[str, ProgramRule]
    source_path: str | None = Field(default=None, exclude=True)

    @field_validator("programs")
    @classmethod
    def _codes(cls, value: dict[str, ProgramRule]) -> dict[str, ProgramRule]:
        import re

        if not value:
            raise ValueError("at least one program is required")
        for code in value:
            if not re.match(PROGRAM_CODE_PATTERN, str(code)):
                raise ValueError(
                    f"program code {code!r} must be upper-case letters, digits or _ (e.g. KJP)"
                )
        return value

    @model_validator(mode="after")
    def _references(self) -> ProgramRules:
        problems = []
        codes = set(self.programs)
        for code, rule in self.programs.items():
            for field in ("excludes", "household_of"):
                for other in getattr(rule, field):
                    if other not in codes:
                        problems.append(
                            f"programs.{code}.{field}: unknown program {other!r} (known: {', '.join(sorted(codes))})"
                        )
                    elif other == code and field == "excludes":
                        problems.append(
                            f"programs.{code}.excludes: a program cannot exclude itself"
                        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # ---- helpers used by the SQL builders -------------------------------------------------
    def codes(self) -> set[str]:
        return set(self.programs)

    def program(self, code: str) -> ProgramRule:
        try:
            return self.programs[code]
        except KeyError:
            raise ProgramRulesError(
                f"unknown program {code!r}; known: {', '.join(sorted(self.programs))}"
            ) from None

    def effective(self, code: str) -> dict:
        """The parameters of one program with the common defaults filled in."""
        rule = self.program(code)
        c = self.common
        return {
            "desil_max": rule.desil_max if rule.desil_max is not None else c.desil_max,
            "staleness_months": rule.staleness_months
            if rule.staleness_months is not None
            else c.staleness_months,
            "exclude_car_owners": c.exclude_car_owners
            if rule.exclude_car_owners is None
            else rule.exclude_car_owners,
            "exclude_njop_above_1bn": (
                c.exclude_njop_above_1bn
                if rule.exclude_njop_above_1bn is None
                else rule.exclude_njop_above_1bn
            ),
        }

    def exclusion_pairs(self) -> set[tuple[str, str]]:
        """Mutually exclusive program pairs, symmetric (KJP excludes KJMU => both directions)."""
        pairs: set[tuple[str, str]] = set()
        for code, rule in self.programs.items():
            for other in rule.excludes:
                pairs.add((code, other))
                pairs.add((other, code))
        return pairs


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (a second `KJP:` would silently win otherwise)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ProgramRulesError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _format_errors(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = (
                "unknown field (check the spelling; allowed fields are listed in docs/programs.md)"
            )
        lines.append(f"{path}: {loc or '<top>'}: {msg}")
    return "invalid program rules:\n  " + "\n  ".join(lines)


def parse_rules(data: object, path: Path | str = "<rules>") -> ProgramRules:
    """Validate an already-parsed YAML document."""
    path = Path(path)
    if not isinstance(data, dict):
        raise ProgramRulesError(f"{path}: the file must be a mapping with `programs:` at the top")
    try:
        rules = ProgramRules.model_validate(data)
    except ValidationError as exc:
        raise ProgramRulesError(_format_errors(path, exc)) from None
    return rules.model_copy(update={"source_path": str(path)})


def load_rules(path: Path | None = None) -> ProgramRules:
    """Load and validate the program rules (default: `config.program_rules_path()`,
    SATUDATA_PROGRAM_RULES or the file shipped in `satudata_pipeline/programs`)."""
    if path is None:
        from satudata_pipeline.config import program_rules_path

        path = program_rules_path()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProgramRulesError(
            f"{path}: cannot read program rules ({exc.strerror or exc})"
        ) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except ProgramRulesError as exc:
        raise ProgramRulesError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ProgramRulesError(f"{path}: not valid YAML: {exc}") from None
    return parse_rules(data, path)


def age_at(birth: date | None, snapshot: date) -> int | None:
    """Completed years at `snapshot` (a 29 February birthday counts from 1 March in common years)."""
    if birth is None:
        return None
    return snapshot.year - birth.year - ((snapshot.month, snapshot.day) < (birth.month, birth.day))
