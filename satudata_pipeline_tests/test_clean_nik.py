"""clean_nik / validate_nik: table-driven cases with realistic NIKs (all synthetic)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from satudata_pipeline.clean.nik import NIK_REASONS, clean_and_validate_nik, clean_nik, validate_nik

# Woman born 5 Jan 1990 in Gambir, Jakarta Pusat (31.71.01): day 05 + 40 = 45.
WOMAN = "3171014501900001"
MAN = "3171010501900002"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (WOMAN, WOMAN),
        (f" {WOMAN} ", WOMAN),
        (f"'{WOMAN}", WOMAN),  # Excel text prefix
        (f'"{WOMAN}"', WOMAN),
        ("3171 0145 0190 0001", WOMAN),
        ("3171.0145.0190.0001", WOMAN),
        ("3171-0145-0190-0001", WOMAN),
        (f"{WOMAN}.0", WOMAN),  # float written as text
        (f"{WOMAN},00", WOMAN),
        (3171014501900001.0, WOMAN),  # native float from xlsx
        (3171014501900001, WOMAN),  # native int
        ("3.171014501900001E+15", WOMAN),  # sci notation carrying all 16 digits
        ("3.1710145019000010e15", WOMAN),  # extra digits are zeros: still exact
        ("3.17101E+15", None),  # digits lost: never invented
        ("3,17101E+15", None),
        ("317101450190000", None),  # 15 digits
        ("31710145019000011", None),  # 17 digits
        ("31710145O1900001", None),  # letter O
        ("", None),
        ("-", None),
        (None, None),
        (np.nan, None),
    ],
)
def test_clean_nik(raw, expected):
    out = clean_nik(pd.Series([raw], dtype=object))
    assert out.iloc[0] == expected if expected else out.iloc[0] is None


def test_clean_nik_keeps_index_and_is_object():
    s = pd.Series([WOMAN, None], index=[10, 20], dtype=object)
    out = clean_nik(s)
    assert list(out.index) == [10, 20]
    assert out.dtype == object
    assert clean_nik(out).equals(out)  # idempotent


D = pd.Timestamp


@pytest.mark.parametrize(
    ("nik", "tanggal_lahir", "jk", "reason", "dki"),
    [
        (WOMAN, D("1990-01-05"), "P", None, True),
        (WOMAN, None, None, None, True),  # comparisons skipped
        (MAN, D("1990-01-05"), "L", None, True),
        (WOMAN, D("1990-01-05"), "L", "sex_mismatch", True),
        (MAN, D("1990-01-05"), "P", "sex_mismatch", True),
        (WOMAN, D("1990-01-06"), "P", "birth_date_mismatch", True),
        (WOMAN, D("1991-01-05"), "P", "birth_date_mismatch", True),
        (WOMAN, D("2090-01-05"), None, None, True),  # only two-digit year is compared
        ("3171014501900000", D("1990-01-05"), "P", "zero_serial", True),
        ("3171013102900001", None, None, "bad_birth_date", True),  # 31 Feb
        ("3171017102900001", None, None, "bad_birth_date", True),  # 31+40 Feb
        ("3171013501900001", None, None, "bad_birth_date", True),  # day 35: neither sex
        ("3171017201900001", None, None, "bad_birth_date", True),  # day 72
        ("3171014513900001", None, None, "bad_birth_date", True),  # month 13
        ("3171010001900001", None, None, "bad_birth_date", True),  # day 00
        ("3171012902000001", None, None, None, True),  # 29 Feb 2000/1900: leap as 2000
        ("3171012902010001", None, None, "bad_birth_date", True),  # 29 Feb 01
        ("3171996901900001", None, None, "unknown_region", False),  # no DKI kecamatan 99
        ("3179014501900001", None, None, "unknown_region", False),  # no kota 31.79
        ("9971014501900001", None, None, "unknown_region", False),  # no province 99
        ("3201014501900001", D("1990-01-05"), "P", None, False),  # Kab. Bogor: valid, non-DKI
        ("3273014501900001", None, None, None, False),  # Kota Bandung
        ("9501014501900001", None, None, None, False),  # Papua Pegunungan (2022)
        ("3280014501900001", None, None, "unknown_region", False),  # regency 80
        ("3200014501900001", None, None, "unknown_region", False),  # regency 00
        ("3201004501900001", None, None, "unknown_region", False),  # kecamatan 00
        ("3.17101E+15", None, None, "not_16_digits", False),
        ("317101450190000", None, None, "not_16_digits", False),
        ("31710145019000011", None, None, "not_16_digits", False),
        ("", None, None, "missing", False),
        (None, None, None, "missing", False),
        # first failing reason wins: region before date
        ("9971013102900000", None, None, "unknown_region", False),
    ],
)
def test_validate_nik(nik, tanggal_lahir, jk, reason, dki):
    out = validate_nik(
        pd.Series([nik], dtype=object),
        pd.Series([tanggal_lahir], dtype="datetime64[ns]"),
        pd.Series([jk], dtype=object),
    )
    assert list(out.columns) == ["nik_valid", "nik_reason", "nik_dki"]
    assert out["nik_reason"].iloc[0] == reason
    assert bool(out["nik_valid"].iloc[0]) is (reason is None)
    assert bool(out["nik_dki"].iloc[0]) is dki


def test_validate_nik_vectorised_dtypes_and_index():
    niks = pd.Series([WOMAN, MAN, None, "123"], index=list("abcd"), dtype=object)
    tl = pd.Series([pd.Timestamp("1990-01-05"), pd.NaT, pd.NaT, pd.NaT], index=list("abcd"))
    jk = pd.Series(["p", " L", None, "L"], index=list("abcd"))  # tolerant of case/space
    out = validate_nik(niks, tl, jk)
    assert list(out.index) == list("abcd")
    assert out["nik_valid"].dtype == bool and out["nik_dki"].dtype == bool
    assert out["nik_reason"].tolist() == [None, None, "missing", "not_16_digits"]
    assert set(NIK_REASONS) >= {r for r in out["nik_reason"] if r}


def test_validate_nik_accepts_object_dates_and_no_optional_columns():
    import datetime as dt

    out = validate_nik(
        pd.Series([WOMAN]), pd.Series([dt.date(1990, 1, 5)], dtype=object), pd.Series([None])
    )
    assert out["nik_valid"].iloc[0]
    assert validate_nik(pd.Series([WOMAN]))["nik_valid"].iloc[0]


def test_clean_then_validate_matches_raw_validation_for_good_values():
    raw = pd.Series([f"{WOMAN}.0", "3.171014501900001E+15", "3.17101E+15"])
    from_raw = validate_nik(raw)["nik_reason"].tolist()
    assert from_raw == [None, None, "not_16_digits"]
    # the cleaned column loses the distinction for the bad value: pass nik_raw for reasons
    assert validate_nik(clean_nik(raw))["nik_reason"].tolist() == [None, None, "missing"]


def test_no_nik_in_error_messages():
    with pytest.raises(Exception) as exc:
        validate_nik(pd.Series([WOMAN]), pd.Series(["x", "y"]), None)
    assert WOMAN not in str(exc.value)


def test_clean_and_validate_nik_equals_the_two_functions():
    raw = pd.Series(
        [WOMAN, f" {MAN}.0", "3.17101E+15", None, "abc", 3171014501900001, "3171013102900001"],
        index=[5, 3, 9, 1, 7, 2, 4],
        dtype=object,
    )
    tl = pd.Series(
        pd.to_datetime(["1990-01-05", "1990-01-05", None, None, None, "1991-01-05", None])
    )
    jk = pd.Series(["P", "p", None, "L", None, "P", "L"])
    cleaned, check = clean_and_validate_nik(raw, tl, jk)
    pd.testing.assert_series_equal(cleaned, clean_nik(raw))
    pd.testing.assert_frame_equal(check, validate_nik(raw, tl, jk))
    assert check["nik_reason"].tolist() == [
        None,
        "sex_mismatch",
        "not_16_digits",
        "missing",
        "not_16_digits",
        "birth_date_mismatch",
        "bad_birth_date",
    ]
