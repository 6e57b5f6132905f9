"""The data directory contract: `sources.yaml` parsed into typed models and checked against the files.

Everything here runs before the warehouse is touched, so a broken delivery fails the run (or the code
location load) with an error that names the source, the file and the column, and never a person's
data. See docs/data-contract.md for the user's view of the same rules.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import stat
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

KINDS = (
    "civil_registry",
    "death_registry",
    "migration_registry",
    "welfare_registry",
    "program_roster",
    "review_decision",
    "link_decision",
)
Kind = Literal[
    "civil_registry",
    "death_registry",
    "migration_registry",
    "welfare_registry",
    "program_roster",
    "review_decision",
    "link_decision",
]
# Decisions people hand back (contract section 4): not person-bearing, never linked or published as
# persons; they carry no person fields (no name, no NIK), only what identifies the row or the pair.
DECISION_KINDS = ("review_decision", "link_decision")
PERSON_KINDS = tuple(k for k in KINDS if k not in DECISION_KINDS)

PERSON_FIELDS = (
    "record_id",
    "nik",
    "no_kk",
    "nama",
    "jenis_kelamin",
    "tempat_lahir",
    "tanggal_lahir",
    "alamat",
    "rt",
    "rw",
    "kelurahan",
    "kecamatan",
    "kota",
    "kode_kelurahan",
    "tanggal_pemutakhiran",
)
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "civil_registry": (),
    "death_registry": ("tanggal_meninggal",),
    "migration_registry": ("tanggal_pindah", "kode_wilayah_tujuan"),
    "welfare_registry": ("desil", "disabilitas", "punya_mobil", "njop_di_atas_1m"),
    "program_roster": ("jenjang", "nominal_bulanan", "tanggal_mulai"),
    "review_decision": (
        "program",
        "record_id",
        "decision",
        "decided_by",
        "decided_at",
        "reason",
        "note",
    ),
    "link_decision": (
        "source_a",
        "record_id_a",
        "source_b",
        "record_id_b",
        "same_person",
        "decided_by",
        "decided_at",
        "note",
    ),
}
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "civil_registry": ("record_id", "nama"),
    "death_registry": ("record_id", "nama", "tanggal_meninggal"),
    "migration_registry": ("record_id", "nama", "tanggal_pindah", "kode_wilayah_tujuan"),
    "welfare_registry": ("record_id", "nama"),
    "program_roster": ("record_id", "nama"),
    "review_decision": ("program", "record_id", "decision", "decided_by", "decided_at"),
    "link_decision": (
        "source_a",
        "record_id_a",
        "source_b",
        "record_id_b",
        "same_person",
        "decided_by",
        "decided_at",
    ),
}
FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "xlsx",
}


class ContractError(ValueError):
    """A delivery that does not meet the data contract. The message names where, never what."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        file: str | None = None,
        column: str | None = None,
        row: int | None = None,
    ):
        where = []
        if source:
            where.append(f"source '{_short(source)}'")
        if file:
            where.append(f"file '{_short(file)}'")
        if column:
            where.append(f"column '{_short(column)}'")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.source, self.file, self.column, self.row = source, file, column, row


def _short(text: str, limit: int = 200) -> str:
    """A name from the delivery's YAML as it may appear in a message: bounded, one line."""
    text = str(text).replace("\n", " ").replace("\r", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


_TOKEN = re.compile(r"^[A-Za-z0-9_.\- ]{1,64}$")


def _safe_token(value: Any) -> str:
    """A key or name from the YAML, shown only when it looks like an identifier (never a payload)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and _TOKEN.match(value):
        return value
    return "(a key not shown)"


class SourceSpec(BaseModel):
    """One entry of `sources:` in sources.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_]+$", max_length=64)
    kind: Kind
    program: str | None = None
    path: str
    format: Literal["csv", "parquet", "xlsx"] | None = None
    extracted_at: dt.date
    freshness_days: int = Field(default=35, ge=0)
    date_format: str | None = None
    encoding: str = "utf-8"
    delimiter: str | None = None
    sheet: str | None = None
    description: str | None = None
    columns: dict[str, str]
    values: dict[str, dict[str, str]] = Field(default_factory=dict)

    @field_validator("encoding")
    @classmethod
    def _known_codec(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except (LookupError, ValueError, TypeError):
            raise ValueError(
                "unknown encoding; use a Python codec name (utf-8, latin-1, cp1252, utf-8-sig)"
            ) from None
        return value

    @field_validator("path")
    @classmethod
    def _relative_inside(cls, value: str) -> str:
        # Files stay inside the delivery: a relative path without `..` (symlinks and non-regular
        # files are refused where the file is opened, see `Delivery.file_path`).
        if not value or "\x00" in value:
            raise ValueError("path is empty or holds a NUL byte")
        if value.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", value):
            raise ValueError("path must be relative to the data directory (no absolute path, no ~)")
        if ".." in re.split(r"[\\/]", value):
            raise ValueError("path must stay inside the data directory (no '..')")
        return value

    @field_validator("values", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:
        # YAML reads `1: L` or `Ya: true` as int/bool keys and values; the contract means the text.
        if not isinstance(value, dict):
            return value
        return {
            field: {_yaml_text(k): _yaml_text(v) for k, v in (mapping or {}).items()}
            if isinstance(mapping, dict)
            else mapping
            for field, mapping in value.items()
        }

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> SourceSpec:
        person = () if self.kind in DECISION_KINDS else PERSON_FIELDS
        allowed = set(person) | set(KIND_FIELDS[self.kind])
        unknown = sorted(set(self.columns) - allowed)
        if unknown:
            raise ValueError(
                f"columns maps unknown canonical field(s) {[_safe_token(u) for u in unknown]} for kind "
                f"{self.kind}; allowed: {sorted(allowed)}"
            )
        missing = [f for f in REQUIRED_FIELDS[self.kind] if f not in self.columns]
        if missing:
            raise ValueError(f"required field(s) {missing} are not mapped in columns")
        if self.kind == "program_roster" and not self.program:
            raise ValueError("a program_roster needs `program:` (a program code of the rules)")
        if self.kind != "program_roster" and self.program:
            raise ValueError(
                "`program:` is only for kind program_roster (a review_decision maps its "
                "program column in `columns:`)"
            )
        unknown_values = sorted(set(self.values) - set(self.columns))
        if unknown_values:
            raise ValueError(
                f"values given for unmapped field(s) {[_safe_token(u) for u in unknown_values]}"
            )
        return self

    @property
    def is_decision(self) -> bool:
        """Decisions handed back (review_decision, link_decision): no person records."""
        return self.kind in DECISION_KINDS

    @property
    def file_format(self) -> str:
        if self.format:
            return self.format
        suffix = Path(self.path).suffix.lower()
        if suffix not in FORMATS:
            raise ContractError(
                f"cannot tell the format from extension '{suffix}'; set `format:` (csv, parquet, xlsx)",
                source=self.name,
                file=self.path,
            )
        return FORMATS[suffix]


def _yaml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Delivery(BaseModel):
    """A whole data directory: its snapshot date and its sources."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    snapshot_date: dt.date
    sources: list[SourceSpec] = Field(min_length=1)
    data_dir: Path
    description: str | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> Delivery:
        seen: set[str] = set()
        for s in self.sources:
            if s.name in seen:
                raise ValueError(f"duplicate source name '{s.name}'")
            seen.add(s.name)
        return self

    def freshness_limit(self, source: SourceSpec) -> int:
        """The operator's ceiling of the kind caps what the delivery asks for (intake_rules.yaml)."""
        from satudata_pipeline.contract.intake import load_intake_rules

        return min(source.freshness_days, load_intake_rules().ceiling(source.kind))

    def is_fresh(self, source: SourceSpec) -> bool:
        return self.days_old(source) <= self.freshness_limit(source)

    @property
    def person_sources(self) -> list[SourceSpec]:
        """The sources that carry person records (everything but the decisions handed back)."""
        return [s for s in self.sources if not s.is_decision]

    @property
    def decision_sources(self) -> list[SourceSpec]:
        return [s for s in self.sources if s.is_decision]

    def source(self, name: str) -> SourceSpec:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)

    def file_path(self, source: SourceSpec) -> Path:
        """The source's file, resolved; a ContractError if it leaves the data directory (a symlink
        out, a path that escaped the YAML checks) or is not a regular file (a folder, FIFO, device).
        Never opens the file: a FIFO would block."""
        root = Path(self.data_dir).resolve()
        path = (root / source.path).resolve()
        if not path.is_relative_to(root):
            raise ContractError(
                "the file lies outside the data directory (a symlink or path leading out); deliver "
                "the file itself inside the data directory",
                source=source.name,
                file=source.path,
            )
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise ContractError(
                "file not found in the data directory", source=source.name, file=source.path
            ) from None
        except OSError as exc:
            raise ContractError(
                f"file cannot be read ({type(exc).__name__})", source=source.name, file=source.path
            ) from None
        if not stat.S_ISREG(mode):
            raise ContractError(
                "not a regular file (a folder, pipe or device); deliver a plain file",
                source=source.name,
                file=source.path,
            )
        return path

    def days_old(self, source: SourceSpec) -> int:
        return (self.snapshot_date - source.extracted_at).days

    @cached_property
    def yaml_path(self) -> Path:
        return self.data_dir / "sources.yaml"


def parse_delivery(data_dir: Path, program_codes: set[str] | None = None) -> Delivery:
    """Parse and validate sources.yaml (structure only; see `check_files` for the files)."""
    from satudata_pipeline.contract.intake import load_intake_rules

    data_dir = Path(data_dir)
    yaml_path = data_dir / "sources.yaml"
    if not yaml_path.is_file():
        raise ContractError(f"no sources.yaml in data directory {data_dir}")
    limit = load_intake_rules().sources_yaml.max_bytes
    with open(yaml_path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ContractError(
            f"sources.yaml is larger than {limit} bytes (sources_yaml.max_bytes of the intake rules)",
            file=str(yaml_path),
        )
    try:
        raw = yaml.load(data.decode("utf-8"), Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError as exc:
        raise ContractError(
            f"sources.yaml is not UTF-8 (byte {exc.start})", file=str(yaml_path)
        ) from None
    except _AliasError as exc:
        raise ContractError(str(exc), file=str(yaml_path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ContractError(f"sources.yaml is not valid YAML{line}", file=str(yaml_path)) from None
    except RecursionError:
        raise ContractError("sources.yaml is nested too deeply", file=str(yaml_path)) from None
    if not isinstance(raw, dict):
        raise ContractError(
            "sources.yaml must be a mapping with snapshot_date and sources", file=str(yaml_path)
        )
    if "data_dir" in raw:
        raise ContractError(
            "sources.yaml is invalid:\n  data_dir: unknown field (not part of the data contract)",
            file=str(yaml_path),
        )
    try:
        delivery = Delivery.model_validate({**raw, "data_dir": data_dir})
    except ValidationError as exc:
        raise ContractError(_explain(exc, raw), file=str(yaml_path)) from None
    if program_codes is not None:
        for s in delivery.sources:
            if s.kind == "program_roster" and s.program not in program_codes:
                raise ContractError(
                    f"unknown program '{_safe_token(s.program)}'; the program rules define {sorted(program_codes)}",
                    source=s.name,
                    file=s.path,
                    column="program",
                )
    for s in delivery.sources:
        if s.extracted_at > delivery.snapshot_date:
            raise ContractError(
                f"extracted_at is {(s.extracted_at - delivery.snapshot_date).days} days after the "
                "snapshot_date: an extract cannot be cut after the date it describes; correct one of the two",
                source=s.name,
                file=s.path,
                column="extracted_at",
            )
    return delivery


class _AliasError(yaml.YAMLError):
    pass


class _NoAliasLoader(yaml.SafeLoader):
    """A SafeLoader that refuses YAML anchors and aliases (`&a`, `*a`, `<<: *a`).

    sources.yaml never needs them, and an alias bomb (a few lines that expand to gigabytes) must
    fail at the first alias, not after it expanded."""

    def compose_node(self, parent, index):  # noqa: D401 (PyYAML hook)
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AliasError(
                f"sources.yaml uses a YAML anchor or alias (& or *) at line {event.start_mark.line + 1}; "
                "write each value out in full"
            )
        return super().compose_node(parent, index)


def _explain(exc: ValidationError, raw: dict) -> str:
    """Turn pydantic errors into lines that name the source (by name, not index) and the field."""
    lines = []
    listed = raw.get("sources")
    sources: list = listed if isinstance(listed, list) else []
    errors = exc.errors(include_input=False, include_context=False, include_url=False)
    for err in errors[:20]:
        loc = list(err["loc"])
        where = ".".join(_safe_token(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
            idx = loc[1]
            entry = sources[idx] if idx < len(sources) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            name = (
                name
                if isinstance(name, str) and re.fullmatch(r"[a-z0-9_]{1,64}", name)
                else f"#{idx + 1}"
            )
            field = ".".join(_safe_token(p) for p in loc[2:]) or "(entry)"
            where = f"source '{name}', field '{field}'"
        # pydantic's messages say what was expected, not what was given; ours (ValueError) too
        msg = _short(err["msg"].removeprefix("Value error, "), 400)
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not part of the data contract)"
        elif err["type"] == "literal_error" and loc[-1] == "kind":
            msg = f"unknown kind; expected one of {list(KINDS)}"
        lines.append(f"{where}: {msg}")
    if len(errors) > 20:
        lines.append(f"... and {len(errors) - 20} more")
    return "sources.yaml is invalid:\n  " + "\n  ".join(lines)


# --- the files themselves -------------------------------------------------------------------------


def read_header(delivery: Delivery, source: SourceSpec) -> list[str]:
    """The column names of a source's file, read with its encoding, delimiter and format."""
    path = delivery.file_path(source)  # inside the data directory, a regular file
    fmt = source.file_format
    if fmt == "csv":
        with open_text(path, source) as fh:
            try:
                first = fh.readline()
            except UnicodeDecodeError as exc:
                raise ContractError(
                    f"cannot decode the header as {source.encoding} ({exc.reason} at byte {exc.start}); "
                    "set `encoding:` (e.g. latin-1, cp1252, utf-8-sig)",
                    source=source.name,
                    file=source.path,
                ) from None
        if not first.strip():
            raise ContractError(
                "file is empty (no header line)", source=source.name, file=source.path
            )
        return next(csv.reader([first], delimiter=csv_delimiter(source, first)))
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises several types for broken files
            raise ContractError(
                f"unreadable parquet file ({type(exc).__name__})",
                source=source.name,
                file=source.path,
            ) from None
    if fmt == "xlsx":
        from openpyxl import load_workbook

        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:
            raise ContractError(
                f"unreadable xlsx file ({type(exc).__name__})", source=source.name, file=source.path
            ) from None
        try:
            ws = wb[source.sheet] if source.sheet else wb.worksheets[0]
            row = next(ws.iter_rows(min_row=1, max_row=1, values_only=True), None)
        except KeyError:
            raise ContractError(
                f"no sheet named '{source.sheet}'", source=source.name, file=source.path
            ) from None
        finally:
            wb.close()
        if not row or all(v is None for v in row):
            raise ContractError(
                "file is empty (no header row)", source=source.name, file=source.path
            )
        return ["" if v is None else str(v).strip() for v in row]
    raise ContractError(f"unsupported format {fmt}", source=source.name, file=source.path)


def open_text(path: Path, source: SourceSpec) -> io.TextIOWrapper:
    # A BOM in a file declared utf-8 is what Excel writes; read it as utf-8-sig instead of a
    # header name starting with \ufeff.
    encoding = (
        "utf-8-sig"
        if source.encoding.lower().replace("_", "-") in ("utf-8", "utf8")
        else source.encoding
    )
    return open(path, encoding=encoding, newline="")


def csv_delimiter(source: SourceSpec, header_line: str) -> str:
    """The declared delimiter, else the one of `, ; | TAB` that splits the header most."""
    if source.delimiter:
        return "\t" if source.delimiter in ("\\t", "tab", "TAB") else source.delimiter
    counts = {d: header_line.count(d) for d in (",", ";", "|", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def check_files(delivery: Delivery) -> dict[str, list[str]]:
    """Every file exists and carries every mapped column exactly once. Returns headers by source."""
    headers: dict[str, list[str]] = {}
    for source in delivery.sources:
        header = read_header(delivery, source)
        stripped = [h.strip() for h in header]
        for field, column in source.columns.items():
            n = stripped.count(column.strip())
            if n == 0:
                raise ContractError(
                    f"mapped column for field '{field}' is missing from the file "
                    f"(the file has {len(header)} columns)",
                    source=source.name,
                    file=source.path,
                    column=column,
                )
            if n > 1:
                raise ContractError(
                    f"the header holds this column {n} times; cannot tell which one is '{field}'",
                    source=source.name,
                    file=source.path,
                    column=column,
                )
        headers[source.name] = header
    return headers


def load_delivery(data_dir: Path | None = None, *, check: bool = True) -> Delivery:
    """The delivery of the configured data directory, validated against the program rules and files."""
    from satudata_pipeline.config import data_dir as configured_data_dir
    from satudata_pipeline.contract.program_rules import load_rules

    delivery = parse_delivery(data_dir or configured_data_dir(), program_codes=load_rules().codes())
    if check:
        check_files(delivery)
    return delivery
