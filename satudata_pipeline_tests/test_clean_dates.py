"""parse_dates, plus the scalar value parsers of values.py (booleans, ints, Rupiah amounts)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from satudata_pipeline.clean.dates import parse_dates
from satudata_pipeline.clean.values import parse_amount, parse_bool, parse_int

SNAP = dt.date(2025, 6, 30)
T = pd.Timestamp


@pytest.mark.parametrize(
    ("raw", "fmt", "value", "flag"),
    [
        ("1990-01-05", None, T("1990-01-05"), None),
        (" 1990-01-05 ", None, T("1990-01-05"), None),
        ("1990-01-05 00:00:00", None, T("1990-01-05"), None),  # as pandas writes
        ("1990-01-05T08:30:00", None, T("1990-01-05"), None),
        ("05-01-1990", "%d-%m-%Y", T("1990-01-05"), None),
        ("05/01/1990", "%d/%m/%Y", T("1990-01-05"), None),
        ("1990-01-05", "%d/%m/%Y", T("1990-01-05"), None),  # ISO always accepted
        ("36892", None, T("2001-01-01"), None),  # Excel serial
        ("36892.0", None, T("2001-01-01"), None),
        (36892, None, T("2001-01-01"), None),
        (36892.0, None, T("2001-01-01"), None),
        ("32878", "%d/%m/%Y", T("1990-01-05"), None),
        ("61", None, T("1900-03-01"), None),
        ("1", None, T("1900-01-01"), None),
        ("60", None, pd.NaT, "impossible"),  # Excel's fictitious 1900-02-29
        ("80001", None, pd.NaT, "unparseable"),  # outside the serial range
        (dt.date(1990, 1, 5), None, T("1990-01-05"), None),
        (dt.datetime(1990, 1, 5, 14, 0), None, T("1990-01-05"), None),
        (T("1985-07-17"), None, T("1985-07-17"), None),
        (np.datetime64("1970-01-01"), None, T("1970-01-01"), None),
        ("2001-02-31", None, pd.NaT, "impossible"),
        ("31-02-2001", "%d-%m-%Y", pd.NaT, "impossible"),
        ("2001-13-01", None, pd.NaT, "impossible"),
        ("1899-12-31", None, pd.NaT, "impossible"),
        (dt.date(1850, 1, 1), None, pd.NaT, "impossible"),
        (dt.date(1, 1, 1), None, pd.NaT, "impossible"),
        ("9999-12-31", None, pd.NaT, "impossible"),
        ("2030-01-01", None, pd.NaT, "impossible"),  # after the snapshot
        ("05/01/1990", None, pd.NaT, "unparseable"),  # not the source's format
        ("kemarin", None, pd.NaT, "unparseable"),
        ("0", None, pd.NaT, "unparseable"),
        ("", None, pd.NaT, None),
        ("-", None, pd.NaT, None),
        (None, None, pd.NaT, None),
        (np.nan, None, pd.NaT, None),
    ],
)
def test_parse_dates(raw, fmt, value, flag):
    out = parse_dates(pd.Series([raw], dtype=object), fmt, SNAP, not_after_snapshot=True)
    assert list(out.columns) == ["value", "flag"]
    assert out["value"].dtype == "datetime64[ns]"
    got = out["value"].iloc[0]
    assert (pd.isna(got) and pd.isna(value)) or got == value
    assert out["flag"].iloc[0] == flag


def test_future_dates_allowed_without_flag():
    out = parse_dates(pd.Series(["2030-01-01"]), None, SNAP)
    assert out["value"].iloc[0] == T("2030-01-01") and out["flag"].iloc[0] is None


def test_datetime64_input_fast_path():
    s = pd.Series(
        pd.to_datetime(["2001-01-01 10:00", None, "1800-01-01", "2099-01-01"], format="ISO8601")
    )
    out = parse_dates(s, None, SNAP, not_after_snapshot=True)
    assert out["value"].tolist()[0] == T("2001-01-01")
    assert out["flag"].tolist() == [None, None, "impossible", "impossible"]


def test_index_kept_and_repeats():
    s = pd.Series(["1990-01-05", "x", "1990-01-05", None], index=[5, 6, 7, 8])
    out = parse_dates(s, None, SNAP)
    assert list(out.index) == [5, 6, 7, 8]
    assert out["flag"].tolist() == [None, "unparseable", None, None]


# ---- values.py ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value", "unmapped"),
    [
        ("Ya", True, False),
        ("YA", True, False),
        ("y", True, False),
        ("Yes", True, False),
        ("true", True, False),
        ("1", True, False),
        ("1.0", True, False),
        (1, True, False),
        (True, True, False),
        ("Tidak", False, False),
        ("T", False, False),  # T = Tidak
        ("tdk", False, False),
        ("No", False, False),
        ("FALSE", False, False),
        ("0", False, False),
        (0.0, False, False),
        ("Tidak Ada", False, False),
        ("mungkin", None, True),
        ("2", None, True),
        ("", None, False),
        (None, None, False),
    ],
)
def test_parse_bool(raw, value, unmapped):
    vals, flag = parse_bool(pd.Series([raw], dtype=object))
    assert vals.dtype == "boolean" and flag.dtype == bool
    got = vals.iloc[0]
    assert (got is pd.NA and value is None) or got == value
    assert bool(flag.iloc[0]) is unmapped


def test_parse_bool_mapping_override():
    vals, flag = parse_bool(
        pd.Series(["Punya", "tidak punya", "T"]), {"punya": True, "TIDAK PUNYA": False}
    )
    assert vals.tolist() == [True, False, False] and not flag.any()


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("3", 3),
        ("3.0", 3),
        (" 3 ", 3),
        ("03", 3),
        (3.0, 3),
        (7, 7),
        ("10", 10),
        ("0", 0),
        ("3.5", None),
        ("tiga", None),
        ("-1", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_int(raw, value):
    out = parse_int(pd.Series([raw], dtype=object))
    assert out.dtype == "Int64"
    assert (out.iloc[0] is pd.NA and value is None) or out.iloc[0] == value


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("Rp 250.000", 250000),
        ("Rp250.000,-", 250000),
        ("RP. 250.000", 250000),
        ("250000", 250000),
        ("250,000", 250000),
        ("1.500.000,00", 1500000),
        ("1,500,000.00", 1500000),
        ("IDR 300,000.00", 300000),
        ("Rp 1 500 000", 1500000),
        ("600000.0", 600000),
        (250000.0, 250000),
        (250000, 250000),
        ("Rp 0", 0),
        ("dua ratus", None),
        ("1.50.000", None),
        ("-250000", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_amount(raw, value):
    out = parse_amount(pd.Series([raw], dtype=object))
    assert out.dtype == "Int64"
    assert (out.iloc[0] is pd.NA and value is None) or out.iloc[0] == value
