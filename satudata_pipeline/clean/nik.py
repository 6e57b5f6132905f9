"""NIK (Nomor Induk Kependudukan): cleaning and structural validation.

A NIK is 16 digits: PP KK CC DDMMYY SSSS
  PP   province (Kemendagri code, 31 = DKI Jakarta)
  KK   regency/city within the province (01-69 kabupaten, 71-79 kota)
  CC   kecamatan within the regency
  DD   day of birth, +40 for women
  MM   month of birth
  YY   two-digit year of birth
  SSSS serial, never 0000

`clean_nik` only repairs what is certain (separators, quotes, `.0` float text, scientific notation
that still carries all 16 digits). It never invents digits: `3.17101E+15` lost ten digits and is
rejected. `validate_nik` accepts raw or cleaned values; pass the *raw* column to get
`not_16_digits` rather than `missing` for values that `clean_nik` turned into None.

Values are never echoed in exceptions or logs.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from satudata_pipeline.clean.values import aligned, as_text, on_uniques

__all__ = [
    "NIK_REASONS",
    "PROVINCE_CODES",
    "clean_and_validate_nik",
    "clean_nik",
    "dki_kecamatan_prefixes",
    "validate_nik",
]

NIK_REASONS = (
    "missing",
    "not_16_digits",
    "unknown_region",
    "bad_birth_date",
    "birth_date_mismatch",
    "sex_mismatch",
    "zero_serial",
)

# Province codes in use (Kemendagri), including the Papua provinces created in 2022
# (93 Papua Selatan, 94 Papua Tengah, 95 Papua Pegunungan, 96 Papua Barat Daya) and the
# older 97 seen on some NIKs.
PROVINCE_CODES = frozenset(
    [str(c) for c in range(11, 20)]
    + ["21"]
    + [str(c) for c in range(31, 37)]
    + ["51", "52", "53"]
    + [str(c) for c in range(61, 66)]
    + [str(c) for c in range(71, 77)]
    + ["81", "82"]
    + [str(c) for c in range(91, 98)]
)

try:
    import pyarrow  # noqa: F401

    _STR = "string[pyarrow]"
except ImportError:  # pragma: no cover
    _STR = "string"

_SCI_RE = r"^([0-9])(?:[.,]([0-9]*))?[eE]\+?([0-9]{1,2})$"
_DAYS_IN_MONTH = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


@lru_cache(maxsize=1)
def dki_kecamatan_prefixes() -> frozenset[str]:
    """The 6-digit NIK prefixes of the DKI kecamatan in the reference list (e.g. '317101')."""
    from satudata_pipeline.clean.wilayah import load_reference

    ref = load_reference()
    kec = ref.loc[ref["tingkat"] == "kecamatan", "kode"]
    return frozenset(kec.str.replace(".", "", regex=False))


@lru_cache(maxsize=1)
def _dki_prefix_numbers() -> np.ndarray:
    """`dki_kecamatan_prefixes` as integers (for comparing with a NIK's first six digits)."""
    prefixes = [int(p) for p in dki_kecamatan_prefixes() if len(p) == 6 and p.isdigit()]
    return np.array(sorted(prefixes), dtype=np.int64)


_PROVINCE_NUMBERS = np.array(sorted(int(c) for c in PROVINCE_CODES), dtype=np.int64)


def _is_plain16(value) -> bool:
    """`value` is a string of exactly 16 ASCII digits."""
    return isinstance(value, str) and len(value) == 16 and value.isascii() and value.isdigit()


def _digits(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Raw NIK -> (digits, is16): object array with None when blank, else the repaired digit
    string (any length) or the marker 'X' when the value is not a plain number / not exactly
    recoverable; and a bool array that is True where that string is exactly 16 digits."""
    values = raw.to_numpy(dtype=object)
    # Fast path: most values are already 16 plain digits and pass as they are (one cheap check
    # per value); the repairs run on the rest.
    is16 = np.fromiter((_is_plain16(v) for v in values), dtype=bool, count=len(values))
    digits: np.ndarray = np.where(is16, values, None)  # type: ignore[assignment]  # numpy stubs reject None
    rest = ~is16
    if rest.any():
        repaired = _repair(raw[rest]).to_numpy(dtype=object, na_value=None)
        digits[rest] = repaired
        is16[rest] = [_is_plain16(v) for v in repaired]
    return digits, is16


def _repair(raw: pd.Series) -> pd.Series:
    """`_digits` for values that are not plain 16-digit text, as a 'string' Series."""
    orig_index = raw.index
    text = as_text(raw.reset_index(drop=True)).astype(_STR)  # pyarrow: RE2 regexes in C++
    # Surrounding quotes, Excel's leading apostrophe, inner separators.
    text = text.str.replace("[\\s'\"`\u2018\u2019\u201c\u201d\u00a0]+", "", regex=True)
    text = text.mask(text == "")
    # Values that are 16 digits once trimmed and unquoted are done; the repairs run on the rest.
    plain16 = text.str.fullmatch(r"\d{16}").fillna(False).to_numpy(dtype=bool)
    if plain16.all():
        return text.set_axis(orig_index)
    out = text.where(plain16, pd.NA)
    text = text[~plain16 & text.notna().to_numpy(dtype=bool)]  # the few rows needing repair

    # 1. Scientific notation: only when the mantissa carries every digit (extra digits must be 0).
    sci = text.str.extract(_SCI_RE)
    is_sci = sci[0].notna()
    if is_sci.any():
        mant = (sci.loc[is_sci, 0] + sci.loc[is_sci, 1].fillna("")).astype("string")
        exp = sci.loc[is_sci, 2].astype(int)
        need = exp + 1
        # rare: a short Python loop over the scientific-notation rows only
        repaired = pd.Series(
            [
                m[:k] if len(m) >= k and m[k:].strip("0") == "" else "X"
                for m, k in zip(mant.tolist(), need.tolist())
            ],
            index=mant.index,
            dtype=_STR,
        )
        out.loc[repaired.index] = repaired

    # 2. Float written as text: 3171014501900001.0 / 3171014501900001,00
    rest = text.notna() & ~is_sci
    flt = text.str.extract(r"^(\d+)[.,]0+$", expand=False)
    is_flt = rest & flt.notna()
    out.loc[is_flt[is_flt].index] = flt[is_flt]

    # 3. Anything else: drop dots and dashes used as group separators, must then be all digits.
    rest = rest & ~is_flt
    plain = text.str.replace(r"[.\-_/]", "", regex=True)
    plain = plain.where(plain.str.fullmatch(r"\d+").fillna(False), "X")
    out.loc[rest[rest].index] = plain[rest]
    return out.set_axis(orig_index)


def clean_nik(raw: pd.Series) -> pd.Series:
    """Raw NIK values -> 16-digit strings (object dtype) or None.

    Strips spaces, dots, dashes, quotes and Excel's leading apostrophe; repairs `...0001.0` float
    text and scientific notation only when no digit was lost. Everything else that is not exactly
    16 digits becomes None (see `validate_nik` for the reason).
    """
    raw = pd.Series(raw)
    return _clean_from_digits(raw, *_digits(raw))


def _clean_from_digits(raw: pd.Series, digits: np.ndarray, is16: np.ndarray) -> pd.Series:
    return pd.Series(np.where(is16, digits, None), index=raw.index, dtype=object, name=raw.name)  # type: ignore[call-overload]


def clean_and_validate_nik(
    raw: pd.Series,
    tanggal_lahir: pd.Series | None = None,
    jenis_kelamin: pd.Series | None = None,
) -> tuple[pd.Series, pd.DataFrame]:
    """(`clean_nik(raw)`, `validate_nik(raw, tanggal_lahir, jenis_kelamin)`), repairing the raw
    values only once."""
    raw = pd.Series(raw)
    digits, is16 = _digits(raw)
    return (
        _clean_from_digits(raw, digits, is16),
        _validate_digits(raw.index, digits, is16, tanggal_lahir, jenis_kelamin),
    )


def _part(nik: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Digits start..stop-1 (0-based, as in a string slice) of 16-digit NIKs held as int64."""
    return (nik // 10 ** (16 - stop)) % 10 ** (stop - start)


def _sex_codes(jenis_kelamin: pd.Series) -> np.ndarray:
    """The values trimmed and upper-cased, None when null; computed once per distinct value."""

    def norm(u: pd.Series) -> pd.Series:
        return u.astype("string").str.strip().str.upper()

    return on_uniques(jenis_kelamin, norm).to_numpy(dtype=object, na_value=None)


def validate_nik(
    nik: pd.Series,
    tanggal_lahir: pd.Series | None = None,
    jenis_kelamin: pd.Series | None = None,
) -> pd.DataFrame:
    """Validate NIKs (raw or cleaned) against structure, region, the encoded birth date and sex.

    Returns a DataFrame on `nik`'s index with
      nik_valid  (bool)
      nik_reason (object: None when valid, else the first failing of NIK_REASONS)
      nik_dki    (bool: the first six digits are a DKI kecamatan of the reference list)

    `tanggal_lahir` (datetime64/date/None) is compared on day, month and two-digit year;
    `jenis_kelamin` ('L'/'P') with the +40 day rule. Missing values skip that comparison.
    Province 31 must be a DKI kecamatan from the reference; other provinces pass when the
    province code is real, the regency is 01-79 and the kecamatan is not 00.
    """
    nik = pd.Series(nik)
    return _validate_digits(nik.index, *_digits(nik), tanggal_lahir, jenis_kelamin)


def _validate_digits(
    idx: pd.Index,
    digits: np.ndarray,
    is16: np.ndarray,
    tanggal_lahir: pd.Series | None,
    jenis_kelamin: pd.Series | None,
) -> pd.DataFrame:
    """`validate_nik` on the output of `_digits`."""
    n = len(digits)
    present = pd.notna(digits)
    # 16 digits fit in int64 (< 9.2e18); the fields are then integer arithmetic.
    nik = np.where(is16, digits, "0000000000000000").astype(np.int64)

    prov = _part(nik, 0, 2)
    kab = _part(nik, 2, 4)
    kec = _part(nik, 4, 6)
    dki = np.isin(_part(nik, 0, 6), _dki_prefix_numbers()) & is16
    national = np.isin(prov, _PROVINCE_NUMBERS) & (kab >= 1) & (kab <= 79) & (kec != 0)
    region_ok = np.where(prov == 31, dki, national)

    # Day (women already -40), month, two-digit year and derived sex.
    dd = _part(nik, 6, 8).astype(float)
    mm = _part(nik, 8, 10).astype(float)
    yy = _part(nik, 10, 12).astype(float)
    female = dd > 40
    day = np.where(female, dd - 40, dd)
    mm_i = mm.astype(int)
    mm_i = np.where((mm_i >= 1) & (mm_i <= 12), mm_i, 0)
    max_day = _DAYS_IN_MONTH[mm_i]
    # 29 Feb: the century is unknown; 00 is a leap year as 2000, so yy % 4 decides.
    leap = (yy.astype(int) % 4) == 0
    max_day = np.where((mm_i == 2) & ~leap, 28, max_day)
    # men 01-31, women 41-71; 32-40 and 72+ fail the day range
    date_ok = (mm_i >= 1) & (day >= 1) & (day <= max_day)

    if tanggal_lahir is None:
        tl = pd.Series(pd.NaT, index=idx, dtype="datetime64[ns]")
    else:
        tl = pd.to_datetime(aligned(tanggal_lahir, idx, "tanggal_lahir"), errors="coerce")
    has_tl = tl.notna().to_numpy()
    t_day = tl.dt.day.to_numpy(dtype=float, na_value=np.nan)
    t_mon = tl.dt.month.to_numpy(dtype=float, na_value=np.nan)
    t_yy = (tl.dt.year % 100).to_numpy(dtype=float, na_value=np.nan)
    date_match = ~has_tl | ((t_day == day) & (t_mon == mm) & (t_yy == yy))

    if jenis_kelamin is None:
        sex = np.full(n, None, dtype=object)
    else:
        sex = _sex_codes(aligned(jenis_kelamin, idx, "jenis_kelamin"))
    sex_known = np.isin(sex, ["L", "P"])
    sex_match = ~sex_known | ((sex == "P") == female)

    zero_serial = _part(nik, 12, 16) == 0

    failed = [
        ~present,
        ~is16,
        ~region_ok,
        ~date_ok,
        ~date_match,
        ~sex_match,
        zero_serial,
    ]
    # The first failing check names the reason (position len(NIK_REASONS) = valid, None).
    first = np.full(n, len(NIK_REASONS))
    for i in reversed(range(len(failed))):
        first[failed[i]] = i
    reason = np.array([*NIK_REASONS, None], dtype=object)[first]
    return pd.DataFrame(
        {
            "nik_valid": pd.Series(first == len(NIK_REASONS), index=idx, dtype=bool),
            "nik_reason": pd.Series(reason, index=idx, dtype=object),
            "nik_dki": pd.Series(dki, index=idx, dtype=bool),
        },
        index=idx,
    )
