"""Street-address line and RT/RW numbers.

`normalize_address`: ASCII upper case, punctuation -> space, `JALAN`/`JLN`/`JL.` -> `JL`,
`GANG`/`GG.` -> `GG`, `NOMOR`/`NMR`/`NO.` -> `NO`, embedded RT/RW segments removed
(`RT 003 RW 05`, `RT.03/RW.05`, `RT/RW 003/005`, `RT 03/05`, a lone `RT 3` or `RW 5`; RT/RW
live in their own columns), single spaces; empty -> None. Idempotent.

`parse_rt_rw`: one RT or RW value -> Int64 ("003" -> 3, "RT 03" -> 3, "3.0" -> 3); blank,
non-numeric, combined ("03/05") or outside 1..max_value -> NA.
"""

from __future__ import annotations

import re

import pandas as pd

from satudata_pipeline.clean.values import as_text, ascii_upper, on_uniques

__all__ = ["normalize_address", "parse_rt_rw"]

# Whole tokens (after punctuation became spaces) and their standard abbreviation.
_ABBREV = {
    "JALAN": "JL",
    "JLN": "JL",
    "JL": "JL",
    "GANG": "GG",
    "GG": "GG",
    "NOMOR": "NO",
    "NMR": "NO",
    "NOMER": "NO",
    "NO": "NO",
}
# On the punctuation-free text; digits groups of 1-3. Applied in this order; each contains
# the letters RT or RW.
_N = r"\d{1,3}"
_RT_RW = [
    re.compile(rf"(?<!\S)RT ?RW ?{_N} {_N}(?!\S)"),
    re.compile(rf"(?<!\S)RT ?{_N} ?RW ?{_N}(?!\S)"),
    re.compile(rf"(?<!\S)RT ?{_N} {_N}(?!\S)"),
    re.compile(rf"(?<!\S)R[TW] ?{_N}(?!\S)"),
]
_NOT_ALNUM = re.compile(r"[^A-Z0-9]+")
_MAX_PASSES = 4


def _squeeze(text: str) -> str:
    """Whitespace runs -> one space, trimmed."""
    return " ".join(text.split())


def _address_step(text: str) -> str:
    """RT/RW segments removed, abbreviations standardised (`text` is squeezed, and stays so)."""
    if "RT" in text or "RW" in text:
        for pattern in _RT_RW:
            text = pattern.sub(" ", text)
        text = _squeeze(text)
    return " ".join(_ABBREV.get(token, token) for token in text.split(" "))


def _normalize_one(text: str) -> str | None:
    """One address line already folded to upper-case ASCII."""
    text = _squeeze(_NOT_ALNUM.sub(" ", text))
    for _ in range(_MAX_PASSES):
        new = _address_step(text)
        if new == text:
            break
        text = new
    return text or None


def normalize_address(raw: pd.Series) -> pd.Series:
    """Raw address lines -> normalised street line (object dtype, None when empty)."""
    raw = pd.Series(raw)

    def _norm(u: pd.Series) -> pd.Series:
        text = ascii_upper(as_text(u)).to_numpy(dtype=object, na_value=None)
        return pd.Series([None if t is None else _normalize_one(t) for t in text], dtype=object)

    out = on_uniques(raw, _norm)  # None for null lines
    out.name = raw.name
    return out


def parse_rt_rw(raw: pd.Series, max_value: int = 99) -> pd.Series:
    """One RT or RW value per row -> pandas 'Int64' in 1..max_value, else NA.

    Accepts "003", "3", " 3 ", "3.0", "RT 03", "RT.003", "rw:5", native ints/floats.
    """
    raw = pd.Series(raw)

    def _parse(u: pd.Series) -> pd.Series:
        t = ascii_upper(as_text(u)).str.replace(r"\s+", "", regex=True)
        num = t.str.extract(r"^(?:R[TW][.:]*)?0*(\d{1,3})(?:[.,]0+)?$", expand=False)
        val = pd.to_numeric(num, errors="coerce").astype("Int64")
        return val.where((val >= 1) & (val <= max_value))

    out = on_uniques(raw, _parse).astype("Int64")
    out.name = raw.name
    return out
