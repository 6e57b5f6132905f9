"""Read a delivered file as text, row by row, without losing or guessing anything.

Every cell comes back as a string exactly as delivered (None for an empty cell). Rows that cannot be
read as a whole (a truncated last line, too many fields) are kept with `_parse_error` set, so the
clean stage can quarantine them with a reason instead of dropping them.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from satudata_pipeline.contract.sources import (
    ContractError,
    Delivery,
    SourceSpec,
    csv_delimiter,
    open_text,
)

csv.field_size_limit(64 * 1024 * 1024)
ROW_NUMBER = "_row_number"
LINE_NUMBER = "_line_number"  # CSV: the physical line where the record starts (header = line 1)
PARSE_ERROR = "_parse_error"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def unique_headers(header: list[str], keep: AbstractSet[str] = frozenset()) -> list[str]:
    """Header names made unique and non-empty, ignoring case as DuckDB does.

    Unmapped duplicates (`NIK` beside `nik`, two `KETERANGAN`) happen in merged spreadsheets: the
    mapped names in `keep` stay as they are, any other colliding name gets a `__N` suffix.
    """
    names = [h.strip() or f"column_{i + 1}" for i, h in enumerate(header)]
    taken = {n.lower() for n in names if n in keep}
    out: list[str] = []
    for name in names:
        if name in keep and name.lower() in taken and name not in out:
            out.append(name)
            continue
        candidate, n = name, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{name}__{n}"
        taken.add(candidate.lower())
        out.append(candidate)
    return out


def _mapped(source: SourceSpec) -> set[str]:
    return {c.strip() for c in source.columns.values()}


@dataclass(frozen=True)
class ReadStats:
    """What the file held, counted while reading it, for the completeness gate.

    For a CSV, `physical_records` are its non-blank lines after the header; every parsed row spans
    at least one of them, so `physical_records - rows` lines were absorbed into records spanning
    several lines (a quoted line break, or a stray quote that swallowed the rows after it)."""

    rows: int
    physical_records: int | None = None  # CSV only
    multiline_rows: int = 0
    longest_record_lines: int = 1
    longest_record_row: int | None = None
    longest_record_line: int | None = None
    cut_row: int | None = None  # the file ends in the middle of this record (CSV only)
    cut_line: int | None = None


BATCH_ROWS = 100_000  # rows per batch handed to the warehouse (~0.2 GB of Python strings)
ARROW_BLOCK_BYTES = 16 << 20  # bytes of a CSV parsed at once by Arrow's reader


class _NotPlain(Exception):
    """The CSV is not plain from here on: Python's csv module reads the rest (SourceBatches._csv)."""


class SourceBatches:
    """The file of `source` as tables of at most `batch_rows` rows, in row order: strings plus
    `_row_number`, `_line_number`, `_parse_error`, so Python never holds the whole file (an xlsx
    sheet, at most 1,048,576 rows by its format, comes as one table). At least one table, empty
    for an empty file. `stats` is set once the batches are exhausted; a file that cannot be read
    raises ContractError part way, so the caller writes nothing it has not finished."""

    def __init__(self, delivery: Delivery, source: SourceSpec, batch_rows: int | None = None):
        batch_rows = batch_rows or BATCH_ROWS
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        self.path = delivery.file_path(source)
        self.source = source
        self.batch_rows = batch_rows
        self.stats: ReadStats | None = None
        self.reader: str | None = None  # CSV: "arrow", "python" or "arrow+python" (from a row on)

    def __iter__(self) -> Iterator[pa.Table]:
        fmt = self.source.file_format
        if fmt == "csv":
            yield from self._csv()
            return
        parts = (
            _parquet_batches(self.path, self.source, self.batch_rows)
            if fmt == "parquet"
            else iter([_read_xlsx(self.path, self.source)])
        )
        n = 0
        for table in parts:
            n += table.num_rows
            yield table
        self.stats = ReadStats(rows=n)

    def _csv(self) -> Iterator[pa.Table]:
        """Arrow's CSV reader (in C++, on all cores) while the file is plain: every record one line
        with every field, no blank line, no cell with a quote or a line break. From the first batch
        that is not, Python's csv module reads the rest (and says why rows are malformed, where
        records span lines, where the file is cut): the same rows, numbers and statistics either
        way (test_sources_readers.py compares them), in about a third of the time for a plain file."""
        done = 0
        try:
            for table in self._csv_arrow():
                done += table.num_rows
                yield table
            self.reader = "arrow"
            return
        except _NotPlain:
            pass
        self.reader = "arrow+python" if done else "python"
        yield from self._csv_python(skip=done)

    def _csv_arrow(self) -> Iterator[pa.Table]:
        """Plain batches of the file by Arrow; raises _NotPlain before the first batch that is not."""
        source, path = self.source, self.path
        with open_text(path, source) as fh:
            try:
                first = fh.readline()
            except UnicodeDecodeError:
                raise _NotPlain from None
        if not first.endswith(("\n", "\r")) or first.count('"') % 2:
            # no line after the header (empty, or header-only without a line break), or a header
            # line that ends inside quotes (Arrow would read the header over several lines)
            raise _NotPlain
        delimiter = csv_delimiter(source, first)
        header = next(csv.reader([first], delimiter=delimiter))
        width = len(header)
        if width < 2 or len(delimiter) != 1:
            raise _NotPlain  # one column: a blank line and an empty cell look alike
        keep = _mapped(source)
        names = [f"c{i}" for i in range(width)]
        encoding = source.encoding.lower().replace("_", "-")
        n = 0
        try:
            reader = pa_csv.open_csv(
                str(path),
                read_options=pa_csv.ReadOptions(
                    skip_rows=1,
                    column_names=names,
                    block_size=ARROW_BLOCK_BYTES,
                    encoding="utf8" if encoding in ("utf-8", "utf8", "utf-8-sig") else encoding,
                ),
                parse_options=pa_csv.ParseOptions(
                    delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=False
                ),
                convert_options=pa_csv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.string()),
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )
            for batch in reader:
                for start in range(0, batch.num_rows, self.batch_rows):
                    part = batch.slice(start, self.batch_rows)
                    columns = part.columns
                    if not _plain(columns):
                        raise _NotPlain
                    k = part.num_rows
                    yield _table(
                        header, columns, [None] * k, n, keep, list(range(n + 2, n + k + 2))
                    )
                    n += k
        except (pa.ArrowInvalid, UnicodeDecodeError, LookupError):
            raise _NotPlain from None
        if n == 0:
            yield _table(header, [[] for _ in range(width)], [], 0, keep, [])
        self.stats = ReadStats(rows=n, physical_records=n)

    def _csv_python(self, skip: int = 0) -> Iterator[pa.Table]:
        """The file by Python's csv module; the first `skip` rows are read (for the statistics) but
        not yielded again."""
        source, path = self.source, self.path
        n = 0
        longest, longest_row, longest_line, multiline = 1, None, None, 0
        cut_row = cut_line = None
        keep = _mapped(source)
        with open_text(path, source) as fh:
            try:
                first = fh.readline()
                delimiter = csv_delimiter(source, first)
                header = next(csv.reader([first], delimiter=delimiter))
                width = len(header)
                columns: list[list] = [[] for _ in range(width)]
                errors: list = []
                lines: list = []
                reader = csv.reader(fh, delimiter=delimiter, strict=False)
                blank = 0
                consumed = 0  # physical lines after the header read so far (reader.line_num)
                row: list = []
                last: list = []  # the last row's cells, its error and start line
                last_error, last_line = None, None
                yielded = skip > 0
                for row in reader:
                    start = consumed + 2  # line 1 is the header
                    span = reader.line_num - consumed
                    consumed = reader.line_num
                    if not row or (len(row) == 1 and not row[0].strip()):
                        blank += span
                        continue  # blank line: not a row
                    n += 1
                    if span > 1:
                        multiline += 1
                        if span > longest:
                            longest, longest_row, longest_line = span, n, start
                    if len(row) == width:
                        last_error = None
                    else:
                        last_error = f"expected {width} fields, found {len(row)} (line {start})"
                        row = (row + [None] * width)[:width]
                    last = [value if value not in ("",) else None for value in row]
                    last_line = start
                    if n <= skip:
                        continue  # yielded already by Arrow's reader
                    errors.append(last_error)
                    lines.append(start)
                    for i, value in enumerate(last):
                        columns[i].append(value)
                    if len(errors) == self.batch_rows:
                        yield _table(header, columns, errors, n - len(errors), keep, lines)
                        yielded = True
                        columns, errors, lines = [[] for _ in range(width)], [], []
                # The file ends in the middle of a record: an unclosed quote ran to the end of the
                # file (its last field swallowed the final line break), or the last line has no
                # line break and too few fields (the transfer was cut).
                if n and row:
                    tail = next((v for v in reversed(last) if v is not None), "")
                    no_newline = not _ends_with_newline(path)
                    if tail.endswith(("\n", "\r")) or (no_newline and last_error is not None):
                        cut_row, cut_line = n, last_line
                if errors or not yielded:
                    yield _table(header, columns, errors, n - len(errors), keep, lines)
            except UnicodeDecodeError as exc:
                raise ContractError(
                    f"cannot decode the file as {source.encoding} ({exc.reason} near data row "
                    f"{n + 1}); set `encoding:` to the file's real encoding (e.g. latin-1, cp1252, "
                    "utf-8-sig)",
                    source=source.name,
                    file=source.path,
                ) from None
            except csv.Error as exc:
                raise ContractError(
                    f"unreadable CSV ({exc})", source=source.name, file=source.path, row=n + 1
                ) from None
        self.stats = ReadStats(
            rows=n,
            physical_records=consumed - blank,
            multiline_rows=multiline,
            longest_record_lines=longest,
            longest_record_row=longest_row,
            longest_record_line=longest_line,
            cut_row=cut_row,
            cut_line=cut_line,
        )


def read_source(delivery: Delivery, source: SourceSpec) -> pa.Table:
    """The file of `source` as one table of strings plus `_row_number`, `_line_number`,
    `_parse_error` (small files and tests; the raw assets stream `SourceBatches`)."""
    return read_source_with_stats(delivery, source)[0]


def read_source_with_stats(delivery: Delivery, source: SourceSpec) -> tuple[pa.Table, ReadStats]:
    batches = SourceBatches(delivery, source)
    table = pa.concat_tables(list(batches))
    if batches.stats is None:  # set when the last batch has been read
        raise RuntimeError(f"{source.name}: the file was not read to its end")
    return table, batches.stats


def _plain(columns: list) -> bool:
    """No cell with a quote or a line break (where Arrow's and Python's readers could differ, or a
    record spans lines) and no row of empty cells only (Arrow's form of a blank line)."""
    empty_row = None
    for column in columns:
        if pc.any(pc.match_substring_regex(column, '["\r\n]')).as_py():
            return False
        nulls = pc.is_null(column)
        empty_row = nulls if empty_row is None else pc.and_(empty_row, nulls)
    return empty_row is None or not pc.any(empty_row).as_py()


def _table(
    header: list[str],
    columns: list[list],
    errors: list,
    offset: int,
    keep: set[str],
    lines: list | None = None,
) -> pa.Table:
    """One batch: rows `offset + 1` .. `offset + len(errors)` of the file."""
    n = len(errors)
    names = unique_headers(header, keep)
    arrays = [
        col if isinstance(col, pa.Array) else pa.array(col, type=pa.string()) for col in columns
    ]
    arrays.append(pa.array(range(offset + 1, offset + n + 1), type=pa.int64()))
    arrays.append(pa.array(lines if lines is not None else [None] * n, type=pa.int64()))
    arrays.append(pa.array(errors, type=pa.string()))
    return pa.table(arrays, names=[*names, ROW_NUMBER, LINE_NUMBER, PARSE_ERROR])


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return True
        fh.seek(-1, 2)
        return fh.read(1) in (b"\n", b"\r")


def _cell_text(value) -> str | None:
    """Text of a parquet/xlsx cell: dates as ISO, integral floats without `.0`."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        if value.is_integer() and abs(value) < 2**63:
            return str(int(value))
        return repr(value)
    return str(value)


def _parquet_batches(path: Path, source: SourceSpec, batch_rows: int) -> Iterator[pa.Table]:
    import pyarrow.parquet as pq

    def unreadable(exc: Exception) -> ContractError:
        return ContractError(
            f"unreadable parquet file ({type(exc).__name__})", source=source.name, file=source.path
        )

    try:
        parquet = pq.ParquetFile(path)
        header = list(parquet.schema_arrow.names)
        batches = parquet.iter_batches(batch_size=batch_rows)
    except Exception as exc:
        raise unreadable(exc) from None
    n = 0
    yielded = False
    while True:
        try:
            batch = next(batches, None)
        except Exception as exc:
            raise unreadable(exc) from None
        if batch is None:
            break
        columns = [_parquet_text(batch.column(i)) for i in range(len(header))]
        rows = batch.num_rows
        yield _table(header, columns, [None] * rows, n, _mapped(source))
        yielded = True
        n += rows
    if not yielded:
        yield _table(header, [[] for _ in header], [], 0, _mapped(source))


def _parquet_text(col) -> list:
    """A parquet column's cells as text (None for blank)."""
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        values = col.to_pylist()
    elif pa.types.is_integer(col.type):
        values = col.cast(pa.string()).to_pylist()
    else:
        values = [_cell_text(v) for v in col.to_pylist()]
    return [v if (v is None or v.strip()) else None for v in values]


def _read_xlsx(path: Path, source: SourceSpec) -> pa.Table:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        ws = wb[source.sheet] if source.sheet else wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header = ["" if v is None else str(v).strip() for v in next(rows)]
        width = len(header)
        columns: list[list] = [[] for _ in range(width)]
        errors: list = []
        n = 0
        for row in rows:
            if row is None or all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
                continue
            n += 1
            extra = [v for v in row[width:] if v is not None]
            errors.append(f"{len(extra)} value(s) beyond the header" if extra else None)
            row = (tuple(row) + (None,) * width)[:width]
            for i, value in enumerate(row):
                columns[i].append(_cell_text(value))
    finally:
        wb.close()
    while header and header[-1] == "" and all(v is None for v in columns[len(header) - 1]):
        header.pop()
        columns.pop()
    return _table(header, columns, errors, 0, _mapped(source))
