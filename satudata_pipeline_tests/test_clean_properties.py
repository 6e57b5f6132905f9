"""Property tests: the parsers never crash on arbitrary text, normalisers are idempotent."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from satudata_pipeline.clean.address import normalize_address, parse_rt_rw
from satudata_pipeline.clean.dates import parse_dates
from satudata_pipeline.clean.names import normalize_name
from satudata_pipeline.clean.nik import clean_nik, validate_nik
from satudata_pipeline.clean.values import parse_amount, parse_bool, parse_int
from satudata_pipeline.clean.wilayah import match_wilayah, normalize_kode

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Text biased towards the characters these fields contain.
name_alphabet = st.sampled_from(
    list("ABDEHIJKMNORSTUYabdehijmnorstuy .,'-")
    + [
        "BIN",
        "BINTI",
        "H.",
        "M.",
        "MOH",
        "DJ",
        "OE",
        "TJ",
        "S.Pd",
        "HJ",
        "IBU",
        "é",
        "Ñ",
        "ß",
        "ʼ",
        "1",
    ]
)
name_text = st.lists(name_alphabet, max_size=12).map("".join)
any_text = st.one_of(st.text(max_size=30), name_text)
cells = st.lists(st.one_of(st.none(), any_text), min_size=1, max_size=8)

digit_text = st.text(alphabet="0123456789.,eE+- '", max_size=24)
nik_cells = st.lists(
    st.one_of(
        st.none(),
        digit_text,
        st.text(max_size=20),
        st.integers(min_value=0, max_value=10**17),
        st.floats(allow_nan=True),
    ),
    min_size=1,
    max_size=8,
)


@SETTINGS
@given(nik_cells)
def test_nik_never_crashes(values):
    s = pd.Series(values, dtype=object)
    cleaned = clean_nik(s)
    assert len(cleaned) == len(s)
    assert all(v is None or (len(v) == 16 and v.isdigit()) for v in cleaned)
    assert clean_nik(cleaned).equals(cleaned)
    out = validate_nik(s, pd.Series([pd.NaT] * len(s)), pd.Series(["P"] * len(s)))
    assert (out["nik_valid"] == out["nik_reason"].isna()).all()


@SETTINGS
@given(
    st.lists(st.text(alphabet="0123456789", min_size=16, max_size=16), min_size=1, max_size=8),
    st.lists(
        st.one_of(st.none(), st.dates(dt.date(1900, 1, 1), dt.date(2025, 1, 1))),
        min_size=8,
        max_size=8,
    ),
    st.lists(st.sampled_from(["L", "P", None]), min_size=8, max_size=8),
)
def test_validate_nik_random_digits(niks, dates, sexes):
    n = len(niks)
    out = validate_nik(pd.Series(niks), pd.Series(dates[:n], dtype=object), pd.Series(sexes[:n]))
    assert (
        out["nik_reason"]
        .isin(
            [
                None,
                "unknown_region",
                "bad_birth_date",
                "birth_date_mismatch",
                "sex_mismatch",
                "zero_serial",
            ]
        )
        .all()
    )
    assert (~out["nik_dki"] | out["nik_dki"]).all()


@SETTINGS
@given(cells)
def test_names_never_crash_and_idempotent(values):
    out = normalize_name(pd.Series(values, dtype=object))
    assert len(out) == len(values)
    again = normalize_name(out["nama"])
    assert again["nama"].tolist() == out["nama"].tolist()
    assert again["nama_orang_tua"].isna().all()
    parent = out["nama_orang_tua"]
    assert normalize_name(parent)["nama"].tolist() == parent.tolist()
    for nama in out["nama"].dropna():
        assert nama == nama.strip() and "  " not in nama and nama.replace(" ", "").isalpha()


@SETTINGS
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.text(max_size=25),
            st.text(alphabet="0123456789-/.: T", max_size=20),
            st.integers(-10, 100000),
            st.floats(allow_nan=True),
            st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)),
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from([None, "%d/%m/%Y", "%d-%m-%Y", "%Y%m%d"]),
)
def test_dates_never_crash(values, fmt):
    out = parse_dates(
        pd.Series(values, dtype=object), fmt, dt.date(2025, 1, 1), not_after_snapshot=True
    )
    assert out["value"].dtype == "datetime64[ns]"
    assert out["flag"].isin([None, "unparseable", "impossible"]).all()
    flagged = out["flag"].notna()
    assert out.loc[flagged, "value"].isna().all()
    ok = out["value"].dropna()
    assert ((ok >= pd.Timestamp("1900-01-01")) & (ok <= pd.Timestamp("2025-01-01"))).all()


address_alphabet = st.sampled_from(
    list("ABJLNGORTW0123456789 ./,-")
    + ["JL.", "JALAN", "GG", "GANG", "NO.", "NOMOR", "RT", "RW", "RT/RW", " 003", "/", "é"]
)


@SETTINGS
@given(
    st.lists(
        st.one_of(
            st.none(), st.text(max_size=20), st.lists(address_alphabet, max_size=12).map("".join)
        ),
        min_size=1,
        max_size=8,
    )
)
def test_address_idempotent(values):
    once = normalize_address(pd.Series(values, dtype=object))
    assert normalize_address(once).tolist() == once.tolist()
    parse_rt_rw(pd.Series(values, dtype=object))


@SETTINGS
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.text(alphabet="0123456789. -", max_size=16),
            st.sampled_from(["31.71.01.1001", "3171011001", "31 73 05", "31"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_kode_idempotent(values):
    once = normalize_kode(pd.Series(values, dtype=object))
    assert normalize_kode(once).tolist() == once.tolist()


@SETTINGS
@given(cells, cells)
def test_values_and_wilayah_never_crash(a, b):
    s = pd.Series(a, dtype=object)
    vals, flag = parse_bool(s)
    assert len(vals) == len(flag) == len(s)
    parse_int(s)
    parse_amount(s)
    other = pd.Series((b * len(a))[: len(a)], dtype=object)
    out = match_wilayah(s, other, other)
    assert out["wilayah_flag"].isin([None, "wilayah_unknown", "wilayah_ambiguous"]).all()
