"""Date parsing for delivered date columns.

`parse_dates` tries, in order, and each step only on what the previous ones could not parse:
  1. native values (datetime, date, pandas Timestamp, numpy datetime64) from parquet/xlsx;
  2. the source's strftime format (default ISO `%Y-%m-%d`);
  3. ISO 8601 date-times (`2001-02-03 00:00:00` as pandas writes them, `2001-02-03T00:00:00`);
  4. Excel serial day numbers 1..80000 (`36892`, `36892.0`, or native int/float) with Excel's
     1900 leap-year bug honoured (serial 60 = the non-existent 1900-02-29 is impossible).

Flags (value is NaT whenever a flag is set):
  None          parsed, or blank / null spellings (blank is not flagged; the caller sees NaT)
  `impossible`  date-shaped but no such day (2001-02-31, month 13), before 1900-01-01, outside
                the datetime64[ns] range, or after `snapshot` when `not_after_snapshot=True`
  `unparseable` anything else
Runs on the distinct values; parsing itself is `pd.to_datetime(..., errors="coerce")`.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd

from satudata_pipeline.clean.values import as_text, on_uniques

__all__ = ["DATE_FLAGS", "parse_dates"]

DATE_FLAGS = ("unparseable", "impossible")
MIN_DATE = pd.Timestamp("1900-01-01")
EXCEL_SERIAL_MIN, EXCEL_SERIAL_MAX = 1, 80000

_ISO_SHAPED = r"\d{4}-\d{1,2}-\d{1,2}"


def _shape_regex(date_format: str) -> str:
    """Regex for text written in `date_format` (or ISO) whatever the numbers: such text that does
    not parse names a day that does not exist (31 Feb, month 13) and is `impossible`."""
    fields = {
        "%Y": r"\d{4}",
        "%m": r"\d{1,2}",
        "%d": r"\d{1,2}",
        "%y": r"\d{2}",
        "%H": r"\d{1,2}",
        "%M": r"\d{1,2}",
        "%S": r"\d{1,2}",
    }
    out, i = [], 0
    while i < len(date_format):
        tok = date_format[i : i + 2]
        if tok in fields:
            out.append(fields[tok])
            i += 2
        elif date_format[i] == "%":
            return "^" + _ISO_SHAPED + r"(?:[ T].*)?$"  # other directives: only ISO is shaped
        else:
            out.append(re.escape(date_format[i]))
            i += 1
    return "^(?:" + "".join(out) + "|" + _ISO_SHAPED + r")(?:[ T].*)?$"


_SERIAL = r"^\d{1,5}(?:\.\d+)?$"


def _excel_serial(num: pd.Series) -> pd.Series:
    """Excel serial numbers (float Series) -> datetime64; outside 1..80000 or serial 60 -> NaT."""
    idx = num.index
    num = pd.to_numeric(num, errors="coerce").astype("Float64")
    num = pd.Series(np.floor(num.to_numpy(dtype=float, na_value=np.nan)), index=idx)
    ok = (num >= EXCEL_SERIAL_MIN) & (num <= EXCEL_SERIAL_MAX) & (num != 60)
    # Serials before 60 count from 1899-12-31, later ones (after the fictitious 29 Feb 1900)
    # from 1899-12-30.
    origin = np.where(num < 60, np.datetime64("1899-12-31"), np.datetime64("1899-12-30"))
    days = num.where(ok).to_numpy(dtype=float)
    out = origin.astype("datetime64[ns]") + pd.to_timedelta(days, unit="D").to_numpy()
    return pd.Series(out, index=idx)


def _parse_uniques(u: pd.Series, date_format: str) -> pd.DataFrame:
    n = len(u)
    value = pd.Series(pd.NaT, index=u.index, dtype="datetime64[ns]")
    impossible = pd.Series(False, index=u.index)

    # 1. native values
    is_native = (
        u.map(lambda v: isinstance(v, (dt.date, np.datetime64)), na_action="ignore")
        .fillna(False)
        .astype(bool)
    )
    is_number = (
        u.map(
            lambda v: (
                isinstance(v, (int, float, np.integer, np.floating))
                and not isinstance(v, (bool, np.bool_))
            ),
            na_action="ignore",
        )
        .fillna(False)
        .astype(bool)
    )
    if is_native.any():
        nat = pd.to_datetime(u[is_native].map(_to_ts), errors="coerce")
        value[is_native] = nat
        impossible[is_native] = nat.isna().to_numpy(
            dtype=bool
        )  # e.g. year 1 / 9999 outside the ns range
    if is_number.any():
        value[is_number] = _excel_serial(u[is_number].astype(float))
        impossible[is_number] = (np.floor(u[is_number].astype(float)) == 60).to_numpy(dtype=bool)

    # text
    text = as_text(u.where(~(is_native | is_number)))
    todo = text.notna()
    if todo.any():
        parsed = pd.to_datetime(text.where(todo), format=date_format, errors="coerce")
        value = value.fillna(parsed)
        rest = todo & value.isna()
        if rest.any():
            iso = pd.to_datetime(
                text.where(rest & text.str.match(r"^\d{4}-\d{2}-\d{2}").fillna(False)),
                format="ISO8601",
                errors="coerce",
            )
            value = value.fillna(iso)
            rest = todo & value.isna()
        if rest.any():
            serial = text.where(rest & text.str.fullmatch(_SERIAL).fillna(False))
            value = value.fillna(_excel_serial(serial))
            impossible |= (serial.str.replace(r"\..*$", "", regex=True) == "60").fillna(False)
            rest = todo & value.isna()
        shaped = text.str.match(_shape_regex(date_format)).fillna(False)
        impossible |= rest & shaped

    blank = u.isna() | (text.isna() & ~(is_native | is_number))
    unparseable = ~blank & value.isna() & ~impossible
    value = value.dt.normalize()
    # Nullable booleans, so that taking them back to the rows (nulls: NA) stays boolean.
    return pd.DataFrame(
        {
            "value": value.to_numpy(),
            "impossible": pd.array(impossible.to_numpy(dtype=bool), dtype="boolean"),
            "unparseable": pd.array(unparseable.to_numpy(dtype=bool), dtype="boolean"),
        },
        index=range(n),
    )


def _to_ts(v):
    try:
        ts = pd.Timestamp(v)
        return ts.tz_localize(None) if ts.tzinfo is not None else ts
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
        return pd.NaT


def parse_dates(
    raw: pd.Series,
    date_format: str | None = None,
    snapshot: dt.date | None = None,
    *,
    not_after_snapshot: bool = False,
) -> pd.DataFrame:
    """Parse a delivered date column.

    raw                 object Series of strings / native dates / numbers / None
    date_format         the source's strftime format; None means ISO `%Y-%m-%d`
    snapshot            extraction date of the delivery
    not_after_snapshot  True for dates that cannot lie in the future of the snapshot (birth,
                        death, move dates): later dates are `impossible`

    Returns a DataFrame on raw's index with `value` (datetime64[ns], midnight, NaT when blank or
    flagged) and `flag` (object: None, `unparseable` or `impossible`).
    """
    raw = pd.Series(raw)
    fmt = date_format or "%Y-%m-%d"
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        value = pd.Series(raw.dt.tz_localize(None) if raw.dt.tz is not None else raw)
        value = value.astype("datetime64[ns]").dt.normalize()
        flag = pd.Series(None, index=raw.index, dtype=object)
        impossible = pd.Series(False, index=raw.index)
    else:
        res = on_uniques(raw.astype(object), lambda u: _parse_uniques(u, fmt))
        value = pd.to_datetime(res["value"]).astype("datetime64[ns]")
        impossible = res["impossible"].astype("boolean").fillna(False).astype(bool)
        unparse = res["unparseable"].astype("boolean").fillna(False).astype(bool)
        flag = pd.Series(np.where(unparse, "unparseable", None), index=raw.index, dtype=object)  # type: ignore[call-overload]  # numpy stubs reject None

    too_early = (value < MIN_DATE).fillna(False)
    impossible = impossible | too_early
    if not_after_snapshot and snapshot is not None:
        impossible = impossible | (value > pd.Timestamp(snapshot)).fillna(False)
    flag = flag.mask(impossible, "impossible")
    value = value.mask(impossible)
    out = pd.DataFrame({"value": value.astype("datetime64[ns]"), "flag": flag}, index=raw.index)
    out["flag"] = out["flag"].astype(object).where(out["flag"].notna(), None)
    return out
