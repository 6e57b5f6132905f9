"""Street-address line and RT/RW numbers.

`normalize_address`: ASCII upper case, punctuation -> space, `JALAN`/`JLN`/`JL.` -> `JL`,
`GANG`/`GG.` -> `GG`, `NOMOR`/`NMR`/`NO.` -> `NO`, embedded RT/RW segments removed
(`RT 003 RW 05`, `RT.03/RW.05`, `RT/RW 003/005`, `RT 03/05`, a lone `RT 3` or `RW 5`; RT/RW
live in their own columns), single spaces; empty -> None. Idempotent.

`parse_rt_rw`: one RT or RW value -> Int64 ("003" -> 3, "RT 03" -> 3, "3.0" -> 3); blank,
non-numeric, combined ("03/05") or outside 1..max_value -> NA.
"""

from __future__ import annotations

import pandas as pd

from satudata_pipeline.clean.values import as_text, ascii_upper, on_uniques

__all__ = ["normalize_address", "parse_rt_rw"]

_ABBREV = [
    (r"(?<!\S)(?:JALAN|JLN|JL)(?!\S)", "JL"),
    (r"(?<!\S)(?:GANG|GG)(?!\S)", "GG"),
    (r"(?<!\S)(?:NOMOR|NMR|NOMER|NO)(?!\S)", "NO"),
]
# On the punctuation-free text; digits groups of 1-3.
_N = r"\d{1,3}"
_RT_RW = [
    rf"(?<!\S)RT ?RW ?{_N} {_N}(?!\S)",
    rf"(?<!\S)RT ?{_N} ?RW ?{_N}(?!\S)",
    rf"(?<!\S)RT ?{_N} {_N}(?!\S)",
    rf"(?<!\S)R[TW] ?{_N}(?!\S)",
]
_MAX_PASSES = 4


def _squeeze(t: pd.Series) -> pd.Series:
    return t.str.replace(r"\s+", " ", regex=True).str.strip()


def _address_step(t: pd.Series) -> pd.Series:
    for pat in _RT_RW:
        t = t.str.replace(pat, " ", regex=True)
    t = _squeeze(t)
    for pat, rep in _ABBREV:
        t = t.str.replace(pat, rep, regex=True)
    return t


def normalize_address(raw: pd.Series) -> pd.Series:
    """Raw address lines -> normalised street line (object dtype, None when empty)."""
    raw = pd.Series(raw)

    def _norm(u: pd.Series) -> pd.Series:
        t = ascii_upper(as_text(u))
        t = _squeeze(t.str.replace(r"[^A-Z0-9]+", " ", regex=True))
        for _ in range(_MAX_PASSES):
            new = _address_step(t)
            if (new.fillna("") == t.fillna("")).all():
                break
            t = new
        t = t.mask(t == "")
        return t.astype(object).where(t.notna(), None)

    out = on_uniques(raw, _norm).astype(object)
    out = out.where(out.notna(), None)
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
