"""normalize_address, parse_rt_rw and the wilayah (Kemendagri code) matchers."""

from __future__ import annotations

import pandas as pd
import pytest

from satudata_pipeline.clean.address import normalize_address, parse_rt_rw
from satudata_pipeline.clean.wilayah import (
    WILAYAH_COLUMNS,
    kode_from_kode_or_names,
    load_reference,
    match_wilayah,
    normalize_kode,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Jl. Kebon Sirih No. 12 RT 003 RW 05", "JL KEBON SIRIH NO 12"),
        ("JLN. RAYA BOGOR KM 20, RT.03/RW.005", "JL RAYA BOGOR KM 20"),
        ("Jalan Matraman Raya Nomor 7", "JL MATRAMAN RAYA NO 7"),
        ("Gg. Mawar No.5 RT/RW 003/005", "GG MAWAR NO 5"),
        ("Gang Senggol RW 07", "GG SENGGOL"),
        ("jl. h. naman rt 03/05 kel. pondok kelapa", "JL H NAMAN KEL PONDOK KELAPA"),
        ("Kp. Rawa Badak RT 1", "KP RAWA BADAK"),
        ("Jl.Gatot Subroto no.3A", "JL GATOT SUBROTO NO 3A"),
        ("Jl. Cendrawasih Blok C-12", "JL CENDRAWASIH BLOK C 12"),
        ("Jalan Kramat Raya, RT003RW005", "JL KRAMAT RAYA"),
        ("Jl. Pramuka (belakang pasar)", "JL PRAMUKA BELAKANG PASAR"),
        ("Jl. Kebon Jeruk Café", "JL KEBON JERUK CAFE"),
        ("RT 02 RW 03", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_address(raw, expected):
    out = normalize_address(pd.Series([raw], dtype=object))
    assert out.iloc[0] == expected
    assert normalize_address(out).iloc[0] == expected  # idempotent


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("003", 3),
        ("3", 3),
        (" 3 ", 3),
        ("RT 03", 3),
        ("RT.003", 3),
        ("rw:5", 5),
        ("3.0", 3),
        (3, 3),
        (3.0, 3),
        ("99", 99),
        ("0", None),
        ("000", None),
        ("100", None),
        ("03/05", None),
        ("abc", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_rt_rw(raw, expected):
    out = parse_rt_rw(pd.Series([raw], dtype=object))
    assert out.dtype == "Int64"
    assert (out.iloc[0] is pd.NA and expected is None) or out.iloc[0] == expected


# ---- wilayah ----------------------------------------------------------------------------


def test_reference_shape():
    ref = load_reference()
    counts = ref["tingkat"].value_counts()
    assert counts["provinsi"] == 1 and counts["kabupaten_kota"] == 6
    assert counts["kecamatan"] == 44 and counts["kelurahan"] == 267


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("31.71.01.1001", "31.71.01.1001"),
        ("3171011001", "31.71.01.1001"),
        (" 31 71 01 1001 ", "31.71.01.1001"),
        ("31.71.1.1001", "31.71.01.1001"),
        ("31-71-01-1001", "31.71.01.1001"),
        (3171011001, "31.71.01.1001"),
        ("3171011001.0", "31.71.01.1001"),
        ("317101", "31.71.01"),
        ("31.71", "31.71"),
        ("31", "31"),
        ("3171019999", None),  # well-formed, not in the list
        ("32.01", None),  # outside DKI
        ("317101100", None),
        ("31.71.01.1001.5", None),
        ("abc", None),
        (None, None),
    ],
)
def test_normalize_kode(raw, expected):
    out = normalize_kode(pd.Series([raw], dtype=object))
    assert out.iloc[0] == expected
    if expected:
        assert normalize_kode(out).iloc[0] == expected


@pytest.mark.parametrize(
    ("kel", "kec", "kota", "kode", "flag"),
    [
        ("Gambir", "Gambir", "Jakarta Pusat", "31.71.01.1001", None),
        ("KEL. GAMBIR", "KEC. GAMBIR", "KOTA ADM. JAKARTA PUSAT", "31.71.01.1001", None),
        (
            "Kelurahan Cideng",
            "Kecamatan Gambir",
            "Kota Administrasi Jakarta Pusat",
            "31.71.01.1002",
            None,
        ),
        ("kebon kelapa", None, "JAKPUS", "31.71.01.1005", None),
        ("Kebun Jeruk", "Kebon Jeruk", "Jakbar", "31.73.05.1001", None),  # 1-letter typo
        ("Kebon Djeruk", "Kebon Jeruk", "Jakarta Barat", "31.73.05.1001", None),  # old spelling
        ("Tandjung Priok", None, "Jakarta Utara", "31.72.02.1001", None),
        ("Palmerah", "Pal Merah", "Jakarta Barat", "31.73.07.1001", None),  # spacing
        ("Setia Budi", "Setiabudi", "Jaksel", "31.74.02.1001", None),
        ("Pulau Tidung", "Kep. Seribu Selatan", "Kab. Adm. Kep. Seribu", "31.01.02.1002", None),
        ("Gambir", None, None, "31.71.01.1001", None),  # unique name: no context needed
        ("Cideng", "Tebet", None, None, "wilayah_unknown"),  # not in that kecamatan
        ("Xyzabc", "Gambir", "Jakarta Pusat", None, "wilayah_unknown"),
        ("Kebun Jeruk", None, None, None, "wilayah_unknown"),  # no fuzzy without context
        (None, None, None, None, "wilayah_unknown"),
    ],
)
def test_match_wilayah(kel, kec, kota, kode, flag):
    out = match_wilayah(pd.Series([kel]), pd.Series([kec]), pd.Series([kota]))
    assert list(out.columns) == WILAYAH_COLUMNS
    assert out["kode_kelurahan"].iloc[0] == kode
    assert out["wilayah_flag"].iloc[0] == flag
    if kode:
        assert out["kode_kecamatan"].iloc[0] == kode[:8]
        assert out["kode_kota"].iloc[0] == kode[:5]


def test_match_wilayah_partial_levels_and_names():
    out = match_wilayah(pd.Series(["Xyzabc"]), pd.Series(["kec. gambir"]), pd.Series([None]))
    row = out.iloc[0]
    assert row["kode_kelurahan"] is None and row["kode_kecamatan"] == "31.71.01"
    assert row["kode_kota"] == "31.71" and row["kota"] == "JAKARTA PUSAT"
    assert row["kelurahan"] == "XYZABC" and row["kecamatan"] == "GAMBIR"


def test_match_wilayah_ambiguous(monkeypatch):
    """Kelurahan names can repeat across kecamatan (none do in today's list): simulate one."""
    from satudata_pipeline.clean import wilayah

    ref = load_reference().copy()
    extra = ref[ref["kode"] == "31.74.01.1001"].copy()  # a kelurahan in Tebet
    extra["kode"] = "31.74.01.1099"
    extra["nama"] = "Gambir"
    extra["nama_norm"] = "GAMBIR"
    extra["key"] = "GAMBIR"
    monkeypatch.setattr(
        wilayah, "load_reference", lambda: pd.concat([ref, extra], ignore_index=True)
    )
    wilayah._lookups.cache_clear()
    try:
        out = wilayah.match_wilayah(
            pd.Series(["Gambir", "Gambir", "Gambir"]),
            pd.Series([None, "Tebet", None]),
            pd.Series([None, None, "Jakarta Pusat"]),
        )
        assert out["wilayah_flag"].tolist() == ["wilayah_ambiguous", None, None]
        assert out["kode_kelurahan"].tolist() == [None, "31.74.01.1099", "31.71.01.1001"]
    finally:
        wilayah._lookups.cache_clear()


def test_match_wilayah_many_rows_keep_index():
    kel = pd.Series(["Gambir", "Cideng", None, "Gambir"] * 1000, index=range(100, 4100))
    out = match_wilayah(kel, pd.Series([None] * 4000), pd.Series(["Jakpus"] * 4000))
    assert list(out.index) == list(kel.index)
    assert out["kode_kelurahan"].iloc[:4].tolist() == [
        "31.71.01.1001",
        "31.71.01.1002",
        None,
        "31.71.01.1001",
    ]


def test_kode_from_kode_or_names_prefers_valid_code():
    out = kode_from_kode_or_names(
        pd.Series(["3171011002", "9999999999", None, "31.71.01"]),
        pd.Series(["Gambir", "Gambir", "Gambir", "Xyzabc"]),
        pd.Series([None] * 4),
        pd.Series([None] * 4),
    )
    assert out["kode_kelurahan"].tolist() == [
        "31.71.01.1002",
        "31.71.01.1001",
        "31.71.01.1001",
        None,
    ]
    assert out["kelurahan"].tolist()[0] == "CIDENG"
    assert out["wilayah_flag"].tolist() == [None, None, None, "wilayah_unknown"]
    assert out["kode_kecamatan"].iloc[3] == "31.71.01" and out["kode_kota"].iloc[3] == "31.71"


def test_kode_from_kode_or_names_repeated_rows_keep_index():
    # Worked out once per distinct (code, kelurahan, kecamatan, kota); every row gets its answer.
    kode = pd.Series(["3171011002", None, "3171011002", None, None], index=[40, 10, 30, 20, 50])
    kel = pd.Series(["x", "Gambir", "x", "Gambir", None])
    out = kode_from_kode_or_names(kode, kel, pd.Series([None] * 5), pd.Series([None] * 5))
    assert list(out.index) == [40, 10, 30, 20, 50]
    assert list(out.columns) == WILAYAH_COLUMNS
    assert out["kode_kelurahan"].tolist() == [
        "31.71.01.1002",
        "31.71.01.1001",
        "31.71.01.1002",
        "31.71.01.1001",
        None,
    ]
    assert out["wilayah_flag"].tolist() == [None, None, None, None, "wilayah_unknown"]
