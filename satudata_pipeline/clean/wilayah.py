"""Kemendagri area codes of DKI Jakarta: reference loader, code normaliser and name matcher.

Reference: `satudata_pipeline/contract/wilayah_dki_jakarta.csv` (kode,tingkat,nama), dotted codes
`31` / `31.71` / `31.71.01` / `31.71.01.1001`.

Matching names (kelurahan, kecamatan, kota) works on a *key*: ASCII upper case, admin prefixes
(KEL., KELURAHAN, KEC., KOTA ADM., KAB. ADM. ...) removed, old spelling (DJ->J, TJ->C, OE->U) and
common abbreviations (BRT, TMR, SEL, UTR, PST, JKT, KEP) expanded, then all spaces removed, so
"Pal Merah" = "PALMERAH" and "Setia Budi" = "Setiabudi". When no kelurahan matches exactly, a small
edit-distance fallback (1 edit, 2 for keys of 8+ letters; the best candidate must be unique) is
tried among the kelurahan of the matched kecamatan (else of the matched kota), so KEBUN JERUK finds
KEBON JERUK. Matching runs once per distinct (kelurahan, kecamatan, kota) combination.

Precedence: the kecamatan is more specific than the kota, so when both are matched but disagree
the kecamatan wins. A kelurahan name that exists in several places (none in the current list, but
the code handles it) is disambiguated by kecamatan, then kota; if still several: `wilayah_ambiguous`.
Nothing matched: `wilayah_unknown`. Unresolved rows keep their cleaned names and NULL codes.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from satudata_pipeline.clean.values import aligned, as_text, ascii_upper, on_unique_rows, on_uniques
from satudata_pipeline.config import REFERENCE_WILAYAH

__all__ = [
    "WILAYAH_COLUMNS",
    "kode_from_kode_or_names",
    "load_reference",
    "match_wilayah",
    "normalize_kode",
    "normalize_wilayah_name",
]

WILAYAH_COLUMNS = [
    "kode_kelurahan",
    "kode_kecamatan",
    "kode_kota",
    "kelurahan",
    "kecamatan",
    "kota",
    "wilayah_flag",
]

_PREFIX = {
    "kelurahan": r"^(?:(?:KELURAHAN|KEL|KELUR|DESA|DS)\s+)+",
    "kecamatan": r"^(?:(?:KECAMATAN|KEC|KCM)\s+)+",
    "kota": (
        r"^(?:(?:KOTA\s+ADMINISTRASI|KOTA\s+ADMINISTRATIF|KOTA\s+ADM|KOTAMADYA|KODYA|KOTA"
        r"|KABUPATEN\s+ADMINISTRASI|KABUPATEN\s+ADM|KAB\s+ADMINISTRASI|KAB\s+ADM|KABUPATEN|KAB"
        r"|ADMINISTRASI|ADM|KOTA\s+ADMINISTRASI)\s+)+"
    ),
}
_TOKEN_EXPAND = {
    "BRT": "BARAT",
    "BAR": "BARAT",
    "TMR": "TIMUR",
    "TIM": "TIMUR",
    "SEL": "SELATAN",
    "SLT": "SELATAN",
    "UTR": "UTARA",
    "PST": "PUSAT",
    "JKT": "JAKARTA",
    "JAK": "JAKARTA",
    "KEP": "KEPULAUAN",
    "KPL": "KEPULAUAN",
}
_KOTA_ALIASES = {
    "JAKPUS": "31.71",
    "JAKUT": "31.72",
    "JAKBAR": "31.73",
    "JAKSEL": "31.74",
    "JAKTIM": "31.75",
    "SERIBU": "31.01",
    "KEPSERIBU": "31.01",
    "PULAUSERIBU": "31.01",
    "KEPULAUANSERIBU": "31.01",
}


def normalize_wilayah_name(raw: pd.Series, level: str) -> pd.Series:
    """Cleaned display name of a kelurahan/kecamatan/kota (upper, prefix removed, spelling and
    abbreviations expanded, single spaces) as object dtype; blank -> None."""
    if level not in _PREFIX:
        raise ValueError("level must be kelurahan, kecamatan or kota")
    raw = pd.Series(raw)

    def _norm(u: pd.Series) -> pd.Series:
        t = ascii_upper(as_text(u))
        t = t.str.replace(r"[^A-Z0-9]+", " ", regex=True).str.strip()
        t = t.str.replace("DJ", "J", regex=False)
        t = t.str.replace("TJ", "C", regex=False).str.replace("OE", "U", regex=False)
        for short, full in _TOKEN_EXPAND.items():
            t = t.str.replace(rf"\b{short}\b", full, regex=True)
        for _ in range(2):
            t = t.str.replace(_PREFIX[level], "", regex=True)
        if level == "kota":
            t = t.str.replace(r"^(?:DKI\s+)?", "", regex=True)
        t = t.str.replace(r"\s+", " ", regex=True).str.strip()
        return t.mask(t == "").astype(object).where(t.notna(), None)

    out = on_uniques(raw, _norm).astype(object)
    return out.where(out.notna(), None)


def _key(name: str | None) -> str | None:
    return None if name is None else name.replace(" ", "")


@lru_cache(maxsize=1)
def load_reference() -> pd.DataFrame:
    """The reference list with derived columns: kode, tingkat, nama, digits, kode_kota,
    kode_kecamatan, nama_norm (cleaned upper name), key (nama_norm without spaces)."""
    ref = pd.read_csv(REFERENCE_WILAYAH, dtype=str, keep_default_na=False)
    ref["kode"] = ref["kode"].str.strip()
    ref["digits"] = ref["kode"].str.replace(".", "", regex=False)
    ref["kode_kota"] = ref["kode"].str.slice(0, 5).where(ref["kode"].str.len() >= 5)
    ref["kode_kecamatan"] = ref["kode"].str.slice(0, 8).where(ref["kode"].str.len() >= 8)
    level = ref["tingkat"].map(
        {"kelurahan": "kelurahan", "kecamatan": "kecamatan", "kabupaten_kota": "kota"}
    )
    ref["nama_norm"] = None
    for lvl in ("kelurahan", "kecamatan", "kota"):
        sel = level == lvl
        ref.loc[sel, "nama_norm"] = normalize_wilayah_name(ref.loc[sel, "nama"], lvl).to_numpy()
    ref["key"] = ref["nama_norm"].map(_key, na_action="ignore")
    return ref


@lru_cache(maxsize=1)
def _lookups():
    ref = load_reference()
    codes = frozenset(ref["kode"])
    names = dict(zip(ref["kode"], ref["nama_norm"]))
    kota_by_key: dict[str, str] = {}
    kec_by_key: dict[str, list[str]] = {}
    kel_by_key: dict[str, list[str]] = {}
    kec_in_kota: dict[str, list[str]] = {}
    kel_in_kec: dict[str, list[str]] = {}
    kel_in_kota: dict[str, list[str]] = {}
    for row in ref.itertuples(index=False):
        if row.tingkat == "kabupaten_kota":
            kota_by_key[row.key] = row.kode
        elif row.tingkat == "kecamatan":
            kec_by_key.setdefault(row.key, []).append(row.kode)
            kec_in_kota.setdefault(row.kode_kota, []).append(row.kode)
        elif row.tingkat == "kelurahan":
            kel_by_key.setdefault(row.key, []).append(row.kode)
            kel_in_kec.setdefault(row.kode_kecamatan, []).append(row.kode)
            kel_in_kota.setdefault(row.kode_kota, []).append(row.kode)
    for alias, kode in _KOTA_ALIASES.items():
        kota_by_key.setdefault(alias, kode)
    keys = dict(zip(ref["kode"], ref["key"]))
    return (
        codes,
        names,
        keys,
        kota_by_key,
        kec_by_key,
        kel_by_key,
        kec_in_kota,
        kel_in_kec,
        kel_in_kota,
    )


def _levenshtein(a: str, b: str, limit: int) -> int:
    """Edit distance, giving up (returning limit + 1) once it must exceed `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        if min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]


def _fuzzy(key: str, candidates: list[str], keys: dict[str, str]) -> str | None:
    """The unique candidate code whose key is within the edit limit and strictly closest."""
    if not key or len(key) < 4 or not candidates:
        return None
    limit = 1 if len(key) < 8 else 2
    scored = sorted((_levenshtein(key, keys[c], limit), c) for c in candidates)
    best = [c for d, c in scored if d == scored[0][0] and d <= limit]
    return best[0] if len(best) == 1 else None


def _match_one(kel: str | None, kec: str | None, kota: str | None):
    (_, names, keys, kota_by_key, kec_by_key, kel_by_key, kec_in_kota, kel_in_kec, kel_in_kota) = (
        _lookups()
    )
    kel_k, kec_k, kota_k = _key(kel), _key(kec), _key(kota)

    kota_code = kota_by_key.get(kota_k) if kota_k else None
    if kota_k and kota_code is None:
        kota_code = _fuzzy(kota_k, [c for c in set(kota_by_key.values())], keys)

    kec_code = None
    if kec_k:
        exact = kec_by_key.get(kec_k, [])
        if kota_code and len(exact) > 1:
            exact = [c for c in exact if c.startswith(kota_code)] or exact
        if len(exact) == 1:
            kec_code = exact[0]
        elif not exact:
            pool = (
                kec_in_kota.get(kota_code, [])
                if kota_code
                else [c for lst in kec_in_kota.values() for c in lst]
            )
            kec_code = _fuzzy(kec_k, pool, keys)
    if kec_code:
        kota_code = kec_code[:5]  # the kecamatan is more specific than the delivered kota

    kel_code: str | None = None
    flag: str | None = "wilayah_unknown"
    if kel_k:
        exact = kel_by_key.get(kel_k, [])
        if kec_code:
            scope = kel_in_kec.get(kec_code, [])
        elif kota_code:
            scope = kel_in_kota.get(kota_code, [])
        else:
            scope = None
        if scope is not None:
            exact = [c for c in exact if c in scope]
        if len(exact) == 1:
            kel_code, flag = exact[0], None
        elif len(exact) > 1:
            flag = "wilayah_ambiguous"
        elif scope:
            kel_code = _fuzzy(kel_k, scope, keys)
            flag = None if kel_code else "wilayah_unknown"
    if kel_code:
        kec_code, kota_code = kel_code[:8], kel_code[:5]

    return (
        kel_code,
        kec_code,
        kota_code,
        names[kel_code] if kel_code else kel,
        names[kec_code] if kec_code else kec,
        names[kota_code] if kota_code else kota,
        flag,
    )


def match_wilayah(kelurahan: pd.Series, kecamatan: pd.Series, kota: pd.Series) -> pd.DataFrame:
    """Match delivered area names to reference codes.

    Returns a DataFrame on `kelurahan`'s index with WILAYAH_COLUMNS: dotted codes (None when not
    resolved; a resolved kecamatan/kota is kept even when the kelurahan is not), the canonical
    reference names when matched else the cleaned delivered names, and `wilayah_flag`
    (None, `wilayah_unknown`, `wilayah_ambiguous`).
    """
    kel_s = pd.Series(kelurahan)
    idx = kel_s.index
    kel = normalize_wilayah_name(kel_s, "kelurahan").to_numpy(dtype=object)
    kec = normalize_wilayah_name(aligned(kecamatan, idx, "kecamatan"), "kecamatan").to_numpy(
        dtype=object
    )
    kot = normalize_wilayah_name(aligned(kota, idx, "kota"), "kota").to_numpy(dtype=object)
    combo = (
        pd.Series([f"{a}\x1f{b}\x1f{c}" for a, b, c in zip(kel, kec, kot)], index=idx, dtype=object)
        if len(idx)
        else pd.Series([], dtype=object)
    )
    codes, uniques = pd.factorize(combo)
    results = []
    for u in uniques:
        a, b, c = (None if p == "None" else p for p in u.split("\x1f"))
        results.append(_match_one(a, b, c))
    table = pd.DataFrame(results, columns=WILAYAH_COLUMNS, dtype=object)
    out = table.take(codes) if len(codes) else pd.DataFrame(columns=WILAYAH_COLUMNS, dtype=object)
    out.index = idx
    return out.astype(object).where(out.notna(), None)


def normalize_kode(raw: pd.Series) -> pd.Series:
    """Area codes -> dotted reference form (`31.71.01.1001`), any level; unknown -> None.

    Accepts dotted (`31.71.01.1001`, `31.71.1.1001` with unpadded parts), plain digits
    (`3171011001`), spaces or dashes as separators and float text (`3171011001.0`).
    """
    raw = pd.Series(raw)
    codes = load_reference()["kode"]
    valid = frozenset(codes)

    def _norm(u: pd.Series) -> pd.Series:
        t = as_text(u).str.replace(r"^(\d+)\.0+$", r"\1", regex=True)
        t = t.str.strip().str.replace(r"\s*[.\-/]\s*|\s+", ".", regex=True)
        has_sep = t.str.contains(".", regex=False).fillna(False)
        parts = t.str.split(".", expand=True, n=4) if len(t) else pd.DataFrame()
        dotted = pd.Series(pd.NA, index=t.index, dtype="string")
        if has_sep.any():
            widths = [2, 2, 2, 4]
            segs = []
            for i, w in enumerate(widths):
                if i in parts.columns:
                    p = parts[i].astype("string")
                    ok = p.str.fullmatch(rf"\d{{1,{w}}}").fillna(False)
                    segs.append(p.str.zfill(w).where(ok, pd.NA).where(p.notna(), ""))
                else:
                    segs.append(pd.Series("", index=t.index, dtype="string"))
            extra = parts[4].notna() if 4 in parts.columns else pd.Series(False, index=t.index)
            joined = segs[0]
            for s in segs[1:]:
                joined = joined + ("." + s).where(s != "", "")
            dotted = dotted.mask(has_sep & ~extra, joined)
        digits = t.where(~has_sep & t.str.fullmatch(r"\d+").fillna(False))
        n = digits.str.len()
        plain = (
            digits.str.slice(0, 2)
            + ("." + digits.str.slice(2, 4)).where(n >= 4, "")
            + ("." + digits.str.slice(4, 6)).where(n >= 6, "")
            + ("." + digits.str.slice(6, 10)).where(n >= 10, "")
        ).where(n.isin([2, 4, 6, 10]))
        dotted = dotted.fillna(plain)
        res = dotted.astype(object)
        return res.where(res.isin(valid), None)

    out = on_uniques(raw, _norm).astype(object)
    return out.where(out.notna(), None)


def kode_from_kode_or_names(
    kode_raw: pd.Series, kelurahan: pd.Series, kecamatan: pd.Series, kota: pd.Series
) -> pd.DataFrame:
    """WILAYAH_COLUMNS from a delivered kelurahan code when it is a valid reference kelurahan
    code (names then come from the reference, flag None), else from `match_wilayah` on the names.
    A valid delivered kecamatan/kota code fills the levels the names could not resolve.
    Runs once per distinct (code, kelurahan, kecamatan, kota) combination."""
    kode_s = pd.Series(kode_raw)
    idx = kode_s.index
    columns = [
        kode_s,
        aligned(kelurahan, idx, "kelurahan"),
        aligned(kecamatan, idx, "kecamatan"),
        aligned(kota, idx, "kota"),
    ]
    return on_unique_rows(columns, _kode_from_kode_or_names)


def _kode_from_kode_or_names(
    kode_raw: pd.Series, kelurahan: pd.Series, kecamatan: pd.Series, kota: pd.Series
) -> pd.DataFrame:
    kode = normalize_kode(kode_raw)
    names = match_wilayah(kelurahan, kecamatan, kota)
    ref_names = _lookups()[1]
    klen = kode.str.len()
    is_kel = (klen == 13).fillna(False).to_numpy(dtype=bool)
    out = names.copy()
    if is_kel.any():
        k = kode[is_kel]
        out.loc[is_kel, "kode_kelurahan"] = k.to_numpy()
        out.loc[is_kel, "kode_kecamatan"] = k.str.slice(0, 8).to_numpy()
        out.loc[is_kel, "kode_kota"] = k.str.slice(0, 5).to_numpy()
        out.loc[is_kel, "kelurahan"] = k.map(ref_names).to_numpy()
        out.loc[is_kel, "kecamatan"] = k.str.slice(0, 8).map(ref_names).to_numpy()
        out.loc[is_kel, "kota"] = k.str.slice(0, 5).map(ref_names).to_numpy()
        out.loc[is_kel, "wilayah_flag"] = None
    # A delivered kecamatan or kota code fills missing levels.
    for length, col, name_col in ((8, "kode_kecamatan", "kecamatan"), (5, "kode_kota", "kota")):
        partial = kode.where((klen >= length).fillna(False)).str.slice(0, length)
        fill = (out[col].isna() & partial.notna()).to_numpy(dtype=bool)
        if fill.any():
            out.loc[fill, col] = partial[fill].to_numpy()
            out.loc[fill, name_col] = partial[fill].map(ref_names).to_numpy()
    kec_known = out["kode_kecamatan"].notna().to_numpy(dtype=bool)
    fix_kota = kec_known & out["kode_kota"].isna().to_numpy(dtype=bool)
    if fix_kota.any():
        out.loc[fix_kota, "kode_kota"] = out.loc[fix_kota, "kode_kecamatan"].str.slice(0, 5)
        out.loc[fix_kota, "kota"] = out.loc[fix_kota, "kode_kota"].map(ref_names)
    return out.astype(object).where(out.notna(), None)
