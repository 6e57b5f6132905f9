"""Vectorised noise: the ways real registry rows differ from the truth.

Every function takes numpy object arrays and a Generator and returns new arrays; python-level work
is limited to the (small) subset of rows a noise hits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import names as synth_names

NAT = np.datetime64("NaT")


def pick(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    return rng.random(n) < rate


# --- dates -------------------------------------------------------------------------------------
_S2 = np.array([f"{i:02d}" for i in range(100)], dtype=object)
_S4 = np.array([f"{i:04d}" for i in range(3000)], dtype=object)


def date_parts(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = d.astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    y = m.astype("datetime64[Y]").astype(np.int64) + 1970
    mo = m.astype(np.int64) % 12 + 1
    day = (d - m).astype(np.int64) + 1
    return y, mo, day


def fmt_dates(d: np.ndarray, fmt: str) -> np.ndarray:
    """strftime for %d %m %Y %y (and literals) over a datetime64 array; '' for NaT."""
    d = np.asarray(d).astype("datetime64[D]")
    nat = np.isnat(d)
    safe = np.where(nat, np.datetime64("2000-01-01"), d)
    y, mo, day = date_parts(safe)
    out = np.full(len(d), "", dtype=object)
    i = 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            c = fmt[i + 1]
            part = {"d": _S2[day], "m": _S2[mo], "Y": _S4[y], "y": _S2[y % 100]}[c]
            out = out + part
            i += 2
        else:
            out = out + fmt[i]
            i += 1
    out[nat] = ""
    return out


def birth_date_noise(
    dob: np.ndarray, rng: np.random.Generator, swap: float, year_off: float, missing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Day/month swaps (only where both <= 12 and differ), a year off by one, missing."""
    dob = dob.astype("datetime64[D]").copy()
    n = len(dob)
    y, mo, day = date_parts(np.where(np.isnat(dob), np.datetime64("2000-01-01"), dob))
    tag = np.full(n, "", dtype=object)
    sw = pick(rng, n, swap) & (day <= 12) & (day != mo) & ~np.isnat(dob)
    if sw.any():
        s = pd.to_datetime(pd.DataFrame({"year": y[sw], "month": day[sw], "day": mo[sw]}))
        dob[sw] = s.values.astype("datetime64[D]")
        tag[sw] = "dob_day_month_swap"
    yo = pick(rng, n, year_off) & ~sw & ~((mo == 2) & (day == 29))
    if yo.any():
        delta = np.where(rng.random(n) < 0.5, -1, 1)[yo]
        s = pd.to_datetime(pd.DataFrame({"year": y[yo] + delta, "month": mo[yo], "day": day[yo]}))
        dob[yo] = s.values.astype("datetime64[D]")
        tag[yo] = "dob_year_off"
    ms = pick(rng, n, missing) & (tag == "")
    dob[ms] = NAT
    tag[ms] = "dob_missing"
    return dob, tag


# --- NIK ---------------------------------------------------------------------------------------
def nik_noise(
    nik: np.ndarray,
    family_nik: np.ndarray,
    rng: np.random.Generator,
    missing: float,
    typo: float,
    borrowed: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Missing NIK, one mistyped digit (or two swapped, or one dropped), a family member's NIK."""
    nik = nik.copy()
    n = len(nik)
    status = np.full(n, "ok", dtype=object)
    u = rng.random(n)
    ms = u < missing
    ty = (u >= missing) & (u < missing + typo)
    bo = (u >= missing + typo) & (u < missing + typo + borrowed) & pd.notna(family_nik)
    if ty.any():
        idx = np.flatnonzero(ty)
        arr = np.array(nik[idx].tolist(), dtype="S16").view(np.uint8).reshape(-1, 16).copy()
        k = len(idx)
        pos = rng.integers(6, 16, k)
        mode = rng.random(k)
        rows = np.arange(k)
        # substitute a digit
        sub = mode < 0.6
        old = arr[rows, pos]
        new = (old - 48 + rng.integers(1, 10, k)) % 10 + 48
        arr[rows[sub], pos[sub]] = new[sub]
        # swap two adjacent digits
        swp = (mode >= 0.6) & (mode < 0.9)
        p2 = np.where(pos == 15, 14, pos + 1)
        a, b = arr[rows, pos].copy(), arr[rows, p2].copy()
        arr[rows[swp], pos[swp]] = b[swp]
        arr[rows[swp], p2[swp]] = a[swp]
        out = arr.view("S16").ravel().astype(str).astype(object)
        # drop a digit (15 digits delivered)
        drop = mode >= 0.9
        out[drop] = np.array(
            [s[:p] + s[p + 1 :] for s, p in zip(out[drop], pos[drop])], dtype=object
        )
        same = out == nik[idx]  # swapped equal digits: force a substitution
        if same.any():
            out[same] = np.array(
                [s[:15] + str((int(s[15]) + 1) % 10) for s in out[same]], dtype=object
            )
        nik[idx] = out
        status[idx] = "typo"
    nik[ms] = None
    status[ms] = "missing"
    nik[bo] = family_nik[bo]
    status[bo] = "borrowed"
    return nik, status


# --- names -------------------------------------------------------------------------------------
_KEYBOARD = "QWERTYUIOPASDFGHJKLZXCVBNM"


def _typo(s: str, r1: float, r2: float, r3: float) -> str:
    letters = [i for i, ch in enumerate(s) if ch.isalpha()]
    if len(letters) < 3:
        return s
    i = letters[int(r1 * len(letters))]
    if r2 < 0.35:  # substitution
        return s[:i] + _KEYBOARD[int(r3 * 26)] + s[i + 1 :]
    if r2 < 0.6:  # deletion
        return s[:i] + s[i + 1 :]
    if r2 < 0.8 and i + 1 < len(s) and s[i + 1].isalpha():  # transposition
        return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
    return s[:i] + s[i] + s[i:]  # doubled letter


def _apply(arr: np.ndarray, mask: np.ndarray, fn, *rand: np.ndarray) -> None:
    idx = np.flatnonzero(mask)
    if len(idx):
        cols = [r[idx] for r in rand]
        arr[idx] = np.array([fn(s, *vals) for s, *vals in zip(arr[idx], *cols)], dtype=object)


def name_noise(
    names: np.ndarray,
    rng: np.random.Generator,
    *,
    sex: np.ndarray,
    adult: np.ndarray,
    alt: np.ndarray,
    parent: np.ndarray | None,
    rates: dict,
    style: str,
) -> np.ndarray:
    """Noisy rendering of the official names. `rates` keys: alt, muhammad, old, typo, swap,
    binti, title, case, space (per-row probabilities)."""
    out = names.copy()
    n = len(out)
    g = lambda k: rates.get(k, 0.0)  # noqa: E731
    m = pick(rng, n, g("alt")) & (alt != names)
    out[m] = alt[m]
    has_m = pd.Series(out).str.contains("MUHAMMAD", regex=False).values
    m = has_m & pick(rng, n, g("muhammad"))
    var = np.asarray(synth_names.MUHAMMAD_VARIANTS, dtype=object)[
        rng.integers(0, len(synth_names.MUHAMMAD_VARIANTS), n)
    ]
    _apply(out, m, lambda s, v: s.replace("MUHAMMAD", v, 1), var)
    _apply(out, pick(rng, n, g("old")), synth_names.to_old_spelling)
    _apply(out, pick(rng, n, g("typo")), _typo, rng.random(n), rng.random(n), rng.random(n))
    multi = pd.Series(out).str.contains(" ", regex=False).values
    _apply(
        out,
        multi & pick(rng, n, g("swap")),
        lambda s: " ".join(s.split(" ")[1:] + s.split(" ")[:1]),
    )
    if parent is not None:
        m = pick(rng, n, g("binti")) & pd.notna(parent)
        link = np.where(sex == "P", " BINTI ", " BIN ")
        out[m] = out[m] + link[m] + parent[m]
    m = pick(rng, n, g("title")) & adult
    kind = rng.random(n)
    pre_any = np.asarray(synth_names.TITLES_PREFIX_ANY, dtype=object)[rng.integers(0, 3, n)]
    pre_m = np.asarray(synth_names.TITLES_PREFIX_M, dtype=object)[rng.integers(0, 3, n)]
    pre_f = np.asarray(synth_names.TITLES_PREFIX_F, dtype=object)[rng.integers(0, 3, n)]
    suf = np.asarray(synth_names.TITLES_SUFFIX, dtype=object)[
        rng.integers(0, len(synth_names.TITLES_SUFFIX), n)
    ]
    pre = np.where(kind < 0.2, pre_any, np.where(sex == "P", pre_f, pre_m))
    with_pre = pre + " " + out
    with_suf = out + ", " + suf
    out = np.where(m & (kind < 0.7), with_pre, np.where(m, with_suf, out))
    out = restyle(out, rng, style, g("case"))
    sp = pick(rng, n, g("space"))
    how = rng.random(n)
    _apply(
        out,
        sp,
        lambda s, h: (
            s.replace(" ", "  ", 1) if h < 0.5 and " " in s else (s + " " if h < 0.8 else " " + s)
        ),
        how,
    )
    return out


def restyle(
    values: np.ndarray, rng: np.random.Generator, style: str, case_rate: float = 0.0
) -> np.ndarray:
    """Case style of a whole column ('upper', 'title', 'lower') plus a rate of rows in another style."""
    s = pd.Series(values, dtype=object)
    base = {"upper": s, "title": s.str.title(), "lower": s.str.lower()}[style]
    out = base.values.astype(object)
    if case_rate:
        m = pick(rng, len(s), case_rate)
        if m.any():
            sub = s[m]
            alt = np.where(rng.random(int(m.sum())) < 0.5, sub.str.lower(), sub.str.title())
            if style != "upper":
                alt = np.where(rng.random(int(m.sum())) < 0.5, sub.values, alt)
            out[m] = alt
    return out


# --- addresses ---------------------------------------------------------------------------------
_STREET_VARIANTS = {
    "JL. ": ("JL. ", "JL ", "JLN. ", "JALAN "),
    "GG. ": ("GG. ", "GG ", "GANG "),
    " NO. ": (" NO. ", " NO ", " NO."),
}


def alamat_noise(
    alamat: np.ndarray, rng: np.random.Generator, rate: float, style: str, dash_rate: float = 0.0
) -> np.ndarray:
    s = pd.Series(alamat, dtype=object)
    out = s.values.copy()
    for key, variants in _STREET_VARIANTS.items():
        choice = np.where(pick(rng, len(s), rate), rng.integers(0, len(variants), len(s)), 0)
        for k, v in enumerate(variants[1:], start=1):
            m = choice == k
            if m.any():
                out[m] = pd.Series(out[m]).str.replace(key, v, n=1, regex=False).values
    if dash_rate:
        m = pick(rng, len(s), dash_rate) & pd.Series(out).str.contains(" BLOK ", regex=False).values
        if m.any():
            out[m] = pd.Series(out[m]).str.replace(" BLOK ", " \u2013 BLOK ", regex=False).values
    return restyle(out, rng, style, 0.05)


def pad(values: np.ndarray, rng: np.random.Generator, width: int, rate: float) -> np.ndarray:
    """RT/RW as text with a source's zero padding; `rate` of rows use another padding."""
    v = np.asarray(values).astype(np.int64).astype(str)
    if not len(v):  # no rows (a small chunk of a streamed population)
        return np.zeros(0, dtype=object)
    base = np.char.zfill(v, width) if width else v
    other = np.where(rng.random(len(v)) < 0.5, v, np.char.zfill(v, 3))
    return np.where(pick(rng, len(v), rate), other, base).astype(object)


# --- place names -------------------------------------------------------------------------------
_SPELL = (
    ("KEBON ", "KEBUN "),
    ("PAL MERAH", "PALMERAH"),
    ("PULO ", "PULAU "),
    ("TANJUNG ", "TANJONG "),
    ("SETIABUDI", "SETIA BUDI"),
    ("KRAMATJATI", "KRAMAT JATI"),
    ("PULOGADUNG", "PULO GADUNG"),
    ("JATINEGARA", "JATI NEGARA"),
    (" UTARA", " UTR"),
    (" SELATAN", " SEL."),
    ("CEMPAKA ", "CEMPAKE "),
    ("DUREN ", "DURI "),
    ("MANGGA ", "MANGA "),
    ("KELAPA ", "KLAPA "),
    ("PASAR ", "PS. "),
)


def name_variants(official: str) -> list[str]:
    """Spelling variants of a kelurahan/kecamatan name (upper case)."""
    u = official.upper()
    out = []
    for a, b in _SPELL:
        if a in u:
            out.append(u.replace(a, b))
        elif b.strip() and b in u and a.strip() != b.strip():
            out.append(u.replace(b, a))
    return out


def kota_variants(kota_official: str) -> list[str]:
    """'Kota Administrasi Jakarta Barat' -> JAKARTA BARAT, JAKBAR, KOTA ADM. JAKARTA BARAT..."""
    u = kota_official.upper()
    if "SERIBU" in u:
        return [
            "KEPULAUAN SERIBU",
            "KAB. ADM. KEPULAUAN SERIBU",
            "KEP. SERIBU",
            "KABUPATEN ADMINISTRASI KEPULAUAN SERIBU",
        ]
    short = u.replace("KOTA ADMINISTRASI ", "")
    abbr = (
        "JAK"
        + {"PUSAT": "PUS", "UTARA": "UT", "BARAT": "BAR", "SELATAN": "SEL", "TIMUR": "TIM"}[
            short.split()[-1]
        ]
    )
    return [short, abbr, "KOTA ADM. " + short, u, "KOTA " + short]


def place_names(
    idx: np.ndarray,
    official: np.ndarray,
    variants: list[list[str]],
    rng: np.random.Generator,
    rate: float,
    style: str,
    case_rate: float = 0.05,
) -> np.ndarray:
    """Render place names for rows pointing at `idx` into `official`, a `rate` of rows in a variant."""
    k = max(1, max(len(v) for v in variants))
    table = np.empty((len(official), k + 1), dtype=object)
    for i, (o, vs) in enumerate(zip(official, variants)):
        row = [o.upper()] + list(vs)
        table[i] = [row[j % len(row)] for j in range(k + 1)]
    col = np.where(pick(rng, len(idx), rate), rng.integers(1, k + 1, len(idx)), 0)
    out = table[idx, col]
    return restyle(out, rng, style, case_rate)
