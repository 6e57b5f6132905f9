"""Booleans, small integers and Rupiah amounts as delivered in spreadsheets and CSV exports.

Every parser is vectorised: values are factorised, the (few) distinct values are parsed with
pandas string methods, and the result is taken back to the rows. Nothing here raises on bad input;
unparseable values become NA.

This module also holds the small helpers the other cleaning modules share (`on_uniques`,
`as_text`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "BOOL_FALSE",
    "BOOL_TRUE",
    "as_text",
    "aligned",
    "ascii_upper",
    "on_unique_rows",
    "on_uniques",
    "parse_amount",
    "parse_bool",
    "parse_int",
]

# Upper-cased, trimmed spellings. `T` is *Tidak* (false): registries code yes/no as Y/T.
BOOL_TRUE = frozenset({"TRUE", "1", "1.0", "Y", "YA", "YES", "ADA", "BENAR", "IYA"})
BOOL_FALSE = frozenset(
    {"FALSE", "0", "0.0", "T", "TDK", "TIDAK", "N", "NO", "F", "TIDAK ADA", "BUKAN", "SALAH", "GAK"}
)

# Text that means "nothing delivered".
BLANK_TOKENS = frozenset({"", "-", "--", "NAN", "NONE", "NULL", "NA", "N/A", "NAT", "<NA>"})


def on_uniques(raw: pd.Series, func: Callable[[pd.Series], pd.Series | pd.DataFrame]):
    """Apply a vectorised `func` to the distinct non-null values of `raw` and broadcast back.

    `func` receives a Series of the uniques (object dtype, default RangeIndex) and must return a
    Series or DataFrame of the same length in the same order. Rows whose value is null get NA
    (None in the object columns of the result).
    """
    raw = pd.Series(raw)
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    uniq = pd.Series(np.asarray(uniques, dtype=object), dtype=object)
    if len(uniq):
        out = func(uniq)
    else:
        out = func(pd.Series([], dtype=object))
    # One extra all-NA row at position len(out) serves the -1 sentinel (nulls).
    n = len(out)
    # (a dtype comparison per column, not a type() check)
    object_columns = (out.dtypes == object).to_numpy() if isinstance(out, pd.DataFrame) else None  # noqa: E721
    out = out.reset_index(drop=True).reindex(range(n + 1))
    if object_columns is not None:
        out.iloc[n, np.flatnonzero(object_columns)] = None
    elif out.dtype == object:
        out.iloc[n] = None
    taken = out.take(np.where(codes < 0, n, codes))
    taken.index = raw.index
    return taken


def on_unique_rows(columns: Sequence[pd.Series], func: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """`on_uniques` for a row function of several columns (equal length, matched by position).

    `func` receives one Series per column holding the distinct combinations of values (nulls
    included, default RangeIndex) and must return a DataFrame with one row per combination in the
    same order. The result is taken back to every row, on the first column's index.
    """
    columns = [pd.Series(c) for c in columns]
    n = len(columns[0])
    codes = np.zeros(n, dtype=np.int64)
    for col in columns:
        col_codes, col_uniques = pd.factorize(col, use_na_sentinel=True)
        # Combine with the codes so far (both < n, so no overflow), then renumber densely.
        codes, _ = pd.factorize(codes * (len(col_uniques) + 1) + (col_codes + 1))
    first_rows = np.unique(codes, return_index=True)[
        1
    ]  # codes count up in order of first appearance
    out = func(*(col.iloc[first_rows].reset_index(drop=True) for col in columns))
    taken = out.reset_index(drop=True).take(codes)
    taken.index = columns[0].index
    return taken


def as_text(values: pd.Series) -> pd.Series:
    """Object Series -> pandas 'string' Series, trimmed; blanks and null spellings become NA.

    Python floats that hold a whole number are written without the `.0` (xlsx readers return
    3.0 for 3), other scalars with `str`.
    """
    values = pd.Series(values, dtype=object)

    def _one(v):
        if v is None:
            return None
        if isinstance(v, float):
            if v != v:  # NaN
                return None
            if v.is_integer() and abs(v) < 1e18:
                return str(int(v))
            return repr(v)
        if isinstance(v, (bool, np.bool_)):
            return "1" if v else "0"
        return str(v)

    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        values = values.map(_one, na_action="ignore")
    # One pass in Python over the cells (no per-step pandas passes): this runs on whole columns.
    cells = np.fromiter(
        (_trimmed(v) if isinstance(v, str) else None for v in values.to_numpy(dtype=object)),
        dtype=object,
        count=len(values),
    )
    return pd.Series(pd.array(cells, dtype="string"), index=values.index, name=values.name)


def _trimmed(value: str) -> str | None:
    """`value` trimmed, or None when it is blank or a null spelling."""
    value = value.strip()
    if len(value) <= 5 and value.upper() in BLANK_TOKENS:
        return None
    return value


def parse_bool(
    raw: pd.Series, mapping: Mapping[str, bool] | None = None
) -> tuple[pd.Series, pd.Series]:
    """Yes/no values -> (values as pandas 'boolean', unmapped flag as numpy bool).

    Accepts true/false, 1/0, Ya/Tidak, Y/T (T = Tidak), Yes/No, Ada/Tidak ada, case-insensitive,
    and native bools/ints. `mapping` adds or overrides spellings (keys compared upper-cased and
    trimmed). A blank value is NA and not flagged; a non-blank value that maps to nothing is NA
    and flagged True in the second Series.
    """
    raw = pd.Series(raw)
    table: dict[str, bool] = {k: True for k in BOOL_TRUE}
    table.update({k: False for k in BOOL_FALSE})
    if mapping:
        table.update({str(k).strip().upper(): bool(v) for k, v in mapping.items()})

    def _parse(u: pd.Series) -> pd.DataFrame:
        text = as_text(u).str.upper().str.replace(r"\s+", " ", regex=True)
        val = text.map(table, na_action="ignore")
        blank = text.isna()
        return pd.DataFrame(
            {"value": val.astype("boolean"), "unmapped": (~blank & val.isna()).astype(bool)}
        )

    out = on_uniques(raw, _parse)
    values = out["value"].astype("boolean")
    unmapped = out["unmapped"].astype("boolean").fillna(False).astype(bool)
    values.name = raw.name
    unmapped.name = raw.name
    return values, unmapped


_INT_RE = r"^[+]?0*(\d{1,18})(?:[.,]0+)?$"


def parse_int(raw: pd.Series) -> pd.Series:
    """Integers as text -> pandas 'Int64': "3", "3.0", " 3 ", "03"; anything else (3.5, "tiga",
    negative numbers, blanks) is NA."""
    raw = pd.Series(raw)

    def _parse(u: pd.Series) -> pd.Series:
        text = as_text(u).str.replace(" ", "", regex=False)
        digits = text.str.extract(_INT_RE, expand=False)
        return pd.to_numeric(digits, errors="coerce").astype("Int64")

    out = on_uniques(raw, _parse).astype("Int64")
    out.name = raw.name
    return out


def parse_amount(raw: pd.Series) -> pd.Series:
    """Rupiah amounts -> pandas 'Int64'.

    "Rp 250.000", "250000", "250,000", "1.500.000,00", "Rp250.000,-", "IDR 300,000.00" all parse.
    A separator followed by exactly three digits is a thousands separator; when both '.' and ','
    occur, the last one is the decimal mark. Decimals are rounded half-up to whole rupiah.
    Negative or non-numeric values are NA.
    """
    raw = pd.Series(raw)

    def _parse(u: pd.Series) -> pd.Series:
        text = as_text(u).str.upper()
        text = text.str.replace(r"^(RP|IDR)\.?", "", regex=True)
        text = text.str.replace(r"[,.]-$", "", regex=True)
        text = text.str.replace(r"[\s']", "", regex=True)
        ok = text.str.fullmatch(r"\d[\d.,]*")
        text = text.where(ok.fillna(False))
        last_dot = text.str.rfind(".")
        last_com = text.str.rfind(",")
        has_dot = last_dot >= 0
        has_com = last_com >= 0
        # decimal mark: the last separator when both kinds occur; a lone separator followed by
        # 1-2 digits at the end ("250000.5", "3,50"); otherwise none.
        tail_short = text.str.contains(r"[.,]\d{1,2}$", regex=True)
        lone_kind = has_dot ^ has_com
        n_sep = text.str.count(r"[.,]")
        dec = pd.Series(None, index=text.index, dtype="string")
        both = (has_dot & has_com).fillna(False)
        dec = dec.mask(both & (last_dot > last_com), ".").mask(both & (last_com > last_dot), ",")
        single_decimal = (lone_kind & (n_sep == 1) & tail_short).fillna(False)
        dec = dec.mask(single_decimal & has_dot.fillna(False), ".")
        dec = dec.mask(single_decimal & has_com.fillna(False), ",")
        # split integer and fraction parts
        int_part = text.copy()
        frac = pd.Series("", index=text.index, dtype="string")
        for mark in (".", ","):
            sel = (dec == mark).fillna(False)
            if sel.any():
                parts = text[sel].str.rsplit(mark, n=1, expand=True)
                int_part[sel] = parts[0]
                frac[sel] = parts[1]
        thousands_ok = int_part.str.fullmatch(r"\d{1,3}([.,]\d{3})*|\d+")
        int_digits = int_part.str.replace(r"[.,]", "", regex=True).where(thousands_ok.fillna(False))
        frac_ok = frac.str.fullmatch(r"\d*").fillna(False)
        int_digits = int_digits.where(frac_ok & (int_digits.str.len() <= 15).fillna(False))
        value = pd.to_numeric(int_digits, errors="coerce")
        round_up = frac.str.slice(0, 1).isin(list("56789")).fillna(False)
        value = value + round_up.astype(int).where(value.notna())
        return value.astype("Int64")

    out = on_uniques(raw, _parse).astype("Int64")
    out.name = raw.name
    return out


def ascii_upper(text: pd.Series) -> pd.Series:
    """'string' Series -> upper-case ASCII: NFKD-decompose, drop what has no ASCII form (so
    é -> E, ß -> nothing), then upper-case. Apostrophes are removed without a space (MA'RUF ->
    MARUF)."""
    text = pd.Series(text, dtype="string")
    cells = np.fromiter(
        (
            _ascii_upper_one(v) if isinstance(v, str) else None
            for v in text.to_numpy(dtype=object, na_value=None)
        ),
        dtype=object,
        count=len(text),
    )
    return pd.Series(pd.array(cells, dtype="string"), index=text.index, name=text.name)


def _ascii_upper_one(value: str) -> str:
    if not value.isascii():  # NFKD leaves ASCII text as it is
        value = (
            unicodedata.normalize("NFKD", value).encode("ascii", errors="ignore").decode("ascii")
        )
    return value.upper().replace("'", "").replace("`", "")


def aligned(values, index: pd.Index, what: str) -> pd.Series:
    """`values` (Series, array, list) as a Series on `index`, matched by position, not by label.

    Raises ValueError (naming only the argument, never a value) on a length mismatch."""
    if isinstance(values, pd.Series):
        if len(values) != len(index):
            raise ValueError(f"{what} has {len(values)} rows, expected {len(index)}")
        return pd.Series(values.array, index=index, name=values.name)
    arr = pd.array(values) if not isinstance(values, np.ndarray) else values
    if len(arr) != len(index):
        raise ValueError(f"{what} has {len(arr)} rows, expected {len(index)}")
    return pd.Series(arr, index=index)
