"""The true population: households (KK), persons, NIKs, and life events up to the snapshot.

Everything is vectorised over persons/households; the only Python loops run over name groups,
programs or a handful of constants.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd

from satudata_pipeline.config import REFERENCE_WILAYAH

from . import names as synth_names

DAY = np.timedelta64(1, "D")

# --- households --------------------------------------------------------------------------------
HOUSEHOLD_SIZE_P = (0.12, 0.18, 0.22, 0.23, 0.14, 0.07, 0.03, 0.01)  # sizes 1..8
SPOUSE_RATE = 0.85  # households of 2+ with a couple at the head
ELDER_PARENT_RATE = 0.25  # households of 4+ whose last member is a parent of the head
KEPULAUAN_SERIBU_WEIGHT = 0.05

# --- births outside DKI -------------------------------------------------------------------------
BORN_OUTSIDE_RATE_CHILD = 0.08
BORN_OUTSIDE_RATE_ADULT = 0.35
# kab/kota code -> birthplace name; kecamatan suffix 01..12 is appended.
OUTSIDE_REGIONS = {
    "3273": "BANDUNG",
    "3201": "BOGOR",
    "3216": "BEKASI",
    "3205": "GARUT",
    "3206": "TASIKMALAYA",
    "3209": "CIREBON",
    "3374": "SEMARANG",
    "3372": "SURAKARTA",
    "3328": "TEGAL",
    "3329": "BREBES",
    "3471": "YOGYAKARTA",
    "3578": "SURABAYA",
    "1271": "MEDAN",
    "1202": "TARUTUNG",
    "1371": "PADANG",
    "1375": "BUKITTINGGI",
    "3671": "TANGERANG",
}
OUTSIDE_BY_GROUP = {
    "jawa": ["3374", "3372", "3328", "3329", "3471", "3578", "3216"],
    "betawi": ["3216", "3201", "3671"],
    "sunda": ["3273", "3201", "3205", "3206", "3209"],
    "arab": ["3273", "3374", "3578", "3201"],
    "minang": ["1371", "1375"],
    "batak": ["1271", "1202"],
    "tionghoa": ["1271", "3273", "3578", "3374"],
}

# --- life events (window = years before the snapshot) -----------------------------------------
EVENT_WINDOW_YEARS = 4
# annual death probability by age band upper bounds
MORTALITY = (
    (1, 0.015),
    (40, 0.0008),
    (50, 0.003),
    (60, 0.007),
    (70, 0.018),
    (80, 0.045),
    (200, 0.11),
)
DEATH_REGISTERED_RATE = 0.85
MOVE_OUT_HH_RATE = 0.035  # whole households that left DKI in the window
MOVE_OUT_INDIV_RATE = 0.012  # young adults (18-40) leaving alone
MOVE_OUT_REGISTERED_RATE = 0.80
MOVE_BACK_RATE = 0.06  # of registered leavers, came back (second registered move)
MOVE_WITHIN_HH_RATE = 0.045
MOVE_WITHIN_REGISTERED_RATE = 0.85
# destination kab/kota codes outside DKI (Bodetabek first, then big cities); 40% get a kecamatan suffix
DEST_CODES = (
    "3201",
    "3275",
    "3603",
    "3671",
    "3674",
    "3276",
    "3216",
    "3271",
    "3273",
    "3374",
    "3578",
    "1271",
)

# --- welfare -----------------------------------------------------------------------------------
DISABILITY_RATE = 0.025
CAR_RATE_BY_DESIL = (0.02, 0.03, 0.04, 0.05, 0.12, 0.18, 0.30, 0.40, 0.55, 0.70)
NJOP_RATE_BY_DESIL = (0.002, 0.004, 0.006, 0.01, 0.02, 0.04, 0.08, 0.12, 0.18, 0.30)

# --- NIK density and namesakes (docs/synthetic-data.md, "NIKs and namesakes") --------------------
DKI_RESIDENTS = 11_300_000  # residents of DKI Jakarta
DKI_KECAMATAN = 44  # mainland kecamatan (Kepulauan Seribu's 2 hold ~0.2%)
REGISTERED_OWN_KECAMATAN_RATE = 0.7  # DKI-born: NIK region = the kecamatan they lived in
COHORT_CELLS = 2  # birth cells of other kecamatan sharing one birth date (real: ~44)
TWIN_RATE = 0.012  # children who are one of twins (pairs)
NAMESAKE_IN_COHORT_RATE = 0.10  # cohort members after the first with a compatible name
DEAD_NAMESAKE_RATE = 0.003  # of persons: a registered dead person namesake of a living one
MOVED_NAMESAKE_RATE = 0.003  # of persons: a registered leaver namesake of a living one
NAMESAKE_MIN = 3

GHOST_RATE = 0.01
GHOST_MIN = 60

RELIGIONS = np.array(["ISLAM", "KRISTEN", "KATHOLIK", "BUDHA", "HINDU", "KONGHUCU"], dtype=object)


@dataclass(frozen=True)
class Wilayah:
    kel: pd.DataFrame  # code (dotted), digits, name, kec_code, kec_name, kota_code, kota_name
    kec: pd.DataFrame  # code, digits, name, kota_code


@lru_cache(maxsize=1)
def wilayah() -> Wilayah:
    ref = pd.read_csv(REFERENCE_WILAYAH, dtype=str)
    kota = ref[ref.tingkat == "kabupaten_kota"].set_index("kode")["nama"]
    kec = ref[ref.tingkat == "kecamatan"].rename(columns={"kode": "code", "nama": "name"})
    kec = kec[["code", "name"]].reset_index(drop=True)
    kec["digits"] = kec.code.str.replace(".", "", regex=False)
    kec["kota_code"] = kec.code.str[:5]
    kel = ref[ref.tingkat == "kelurahan"].rename(columns={"kode": "code", "nama": "name"})
    kel = kel[["code", "name"]].reset_index(drop=True)
    kel["digits"] = kel.code.str.replace(".", "", regex=False)
    kel["kec_code"] = kel.code.str[:8]
    kel["kota_code"] = kel.code.str[:5]
    kel = kel.merge(
        kec[["code", "name"]].rename(columns={"code": "kec_code", "name": "kec_name"}),
        on="kec_code",
        how="left",
    )
    kel["kota_name"] = kel.kota_code.map(kota)
    kel["kec_idx"] = kel.kec_code.map({c: i for i, c in enumerate(kec.code)}).astype(int)
    return Wilayah(kel=kel, kec=kec)


def _to_date(d: date) -> np.datetime64:
    return np.datetime64(d, "D")


def _households(n: int, rng: np.random.Generator) -> np.ndarray:
    p = np.asarray(HOUSEHOLD_SIZE_P) / sum(HOUSEHOLD_SIZE_P)
    est = int(n / 3.2) + 20
    sizes = rng.choice(np.arange(1, len(p) + 1), size=est, p=p)
    while sizes.sum() < n:
        sizes = np.concatenate([sizes, rng.choice(np.arange(1, len(p) + 1), size=est, p=p)])
    cs = np.cumsum(sizes)
    k = int(np.searchsorted(cs, n)) + 1
    sizes = sizes[:k].copy()
    sizes[-1] -= cs[k - 1] - n
    return sizes[sizes > 0]


def _names(
    rng: np.random.Generator,
    group: np.ndarray,
    sex: np.ndarray,
    fam_name: np.ndarray,
    old_mask: np.ndarray,
    young: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Official (civil) name and an alternative spelling (old<->new) per person."""
    n = len(group)
    out = np.empty(n, dtype=object)
    for g in synth_names.GROUPS:
        for s in ("L", "P"):
            idx = np.flatnonzero((group == g) & (sex == s))
            if not len(idx):
                continue
            m = len(idx)
            pool = synth_names.FIRST[(g, s)]
            first = pool[synth_names.draw_zipf(rng, len(pool), m)]
            borrow = rng.random(m) < synth_names.ARABIC_BORROW_RATE[g]
            if g != "arab" and borrow.any():
                apool = synth_names.FIRST[("arab", s)]
                first[borrow] = apool[synth_names.draw_zipf(rng, len(apool), int(borrow.sum()))]
            if g in ("batak", "tionghoa"):
                fam = fam_name[idx]
                third = rng.random(m) < synth_names.THIRD_NAME_RATE[g]
                if g == "batak":
                    mid = synth_names.BATAK_MIDDLE[
                        rng.integers(0, len(synth_names.BATAK_MIDDLE), m)
                    ]
                else:
                    sp = synth_names.FIRST[(g, s)]
                    mid = sp[rng.integers(0, len(sp), m)]
                name = np.where(third, first + " " + mid + " " + fam, first + " " + fam)
            else:
                spool = synth_names.SECOND.get((g, s), synth_names.SECOND[("arab", s)])
                second = spool[synth_names.draw_zipf(rng, len(spool), m, 0.6)]
                single = (rng.random(m) < synth_names.SINGLE_NAME_RATE[g]) & ~np.isin(
                    first, synth_names.PREFIX_ONLY
                )
                third = rng.random(m) < synth_names.THIRD_NAME_RATE[g]
                tpool = synth_names.SECOND[("arab", s)]
                t3 = tpool[rng.integers(0, len(tpool), m)]
                third &= (t3 != second) & (t3 != first)
                name = np.where(
                    single,
                    first,
                    np.where(third, first + " " + second + " " + t3, first + " " + second),
                )
                # avoid "SITI SITI" style repeats
                rep = first == second
                name[rep & ~single] = first[rep & ~single]
            out[idx] = name
    # children of Muslim families born from about 2005 on: today's popular names
    for s in ("L", "P"):
        idx = np.flatnonzero(young & (sex == s) & ~np.isin(group, ["batak", "tionghoa"]))
        idx = idx[rng.random(len(idx)) < synth_names.YOUNG_MODERN_RATE]
        if not len(idx):
            continue
        m = len(idx)
        first = synth_names.MODERN_FIRST[s][
            synth_names.draw_zipf(rng, len(synth_names.MODERN_FIRST[s]), m)
        ]
        second = synth_names.MODERN_SECOND[s][
            synth_names.draw_zipf(rng, len(synth_names.MODERN_SECOND[s]), m, 0.6)
        ]
        single = (rng.random(m) < synth_names.MODERN_SINGLE_RATE) & ~np.isin(
            first, synth_names.PREFIX_ONLY
        )
        out[idx] = np.where(single | (first == second), first, first + " " + second)
    alt = out.copy()
    oi = np.flatnonzero(old_mask)
    if len(oi):
        old = np.array([synth_names.to_old_spelling(x) for x in out[oi]], dtype=object)
        alt[oi] = out[oi]  # modern spelling becomes the alternative
        out[oi] = old  # registered in the old spelling
    return out, alt


def kelurahan_weights(rng: np.random.Generator, kel: pd.DataFrame) -> np.ndarray:
    """How many households each kelurahan gets, relatively (Kepulauan Seribu thinly)."""
    w = rng.lognormal(0, 0.5, len(kel))
    w[kel.kota_code.values == "31.01"] *= KEPULAUAN_SERIBU_WEIGHT
    return w


def _age_band_rate(age: np.ndarray) -> np.ndarray:
    bounds = np.array([b for b, _ in MORTALITY])
    rates = np.array([r for _, r in MORTALITY])
    return rates[np.searchsorted(bounds, age, side="right").clip(0, len(rates) - 1)]


def _people(
    n: int,
    rng: np.random.Generator,
    snap: np.datetime64,
    kel: pd.DataFrame,
    kel_weights: np.ndarray | None = None,
) -> pd.DataFrame:
    sizes = _households(n, rng)
    n_hh = len(sizes)
    hh = np.repeat(np.arange(n_hh), sizes)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    member = np.arange(len(hh)) - start[hh]
    size = sizes[hh]

    has_spouse = (sizes >= 2) & (rng.random(n_hh) < SPOUSE_RATE)
    has_elder = (sizes >= 4) & (rng.random(n_hh) < ELDER_PARENT_RATE)
    role = np.full(len(hh), "ANAK", dtype=object)
    role[member == 0] = "KEPALA KELUARGA"
    role[(member == 1) & has_spouse[hh]] = "PASANGAN"
    role[(member == size - 1) & has_elder[hh] & (member >= 2)] = "ORANG TUA"

    # head age: singles are young workers or widowed elderly
    head_age = np.clip(rng.normal(47, 13, n_hh), 20, 90)
    single = sizes == 1
    head_age[single] = np.where(
        rng.random(single.sum()) < 0.6,
        rng.uniform(19, 40, single.sum()),
        rng.uniform(40, 90, single.sum()),
    )
    head_male = rng.random(n_hh) < np.where(has_spouse, 0.93, np.where(single, 0.55, 0.35))

    age = np.empty(len(hh))
    sex = np.empty(len(hh), dtype=object)
    r = role == "KEPALA KELUARGA"
    age[r] = head_age[hh[r]]
    sex[r] = np.where(head_male[hh[r]], "L", "P")
    r = role == "PASANGAN"
    age[r] = np.clip(
        head_age[hh[r]] + np.where(head_male[hh[r]], -1, 1) * rng.normal(3, 3, r.sum()), 18, 95
    )
    sex[r] = np.where(head_male[hh[r]], "P", "L")
    r = role == "ANAK"
    mother_age = head_age[hh[r]] - np.where(has_spouse[hh[r]] & head_male[hh[r]], 3, 0)
    span = np.clip(mother_age - 19, 0.5, 30)
    age[r] = np.clip(rng.beta(1.5, 1.1, r.sum()) * span, 0, None)
    sex[r] = np.where(rng.random(r.sum()) < 0.51, "L", "P")
    r = role == "ORANG TUA"
    age[r] = np.clip(head_age[hh[r]] + rng.uniform(22, 34, r.sum()), 55, 101)
    sex[r] = np.where(rng.random(r.sum()) < 0.35, "L", "P")

    days = (age * 365.2425).astype(np.int64) + rng.integers(0, 365, len(hh))
    dob = snap - days * DAY

    # household attributes
    gshare = np.asarray(synth_names.GROUP_SHARE) / sum(synth_names.GROUP_SHARE)
    hh_group = np.asarray(synth_names.GROUPS, dtype=object)[
        rng.choice(len(synth_names.GROUPS), n_hh, p=gshare)
    ]
    group = hh_group[hh]
    fam_idx = np.where(
        hh_group == "batak",
        rng.integers(0, len(synth_names.BATAK_MARGA), n_hh),
        rng.integers(0, len(synth_names.CHINESE_FAMILY), n_hh),
    )
    fam = np.where(
        hh_group == "batak",
        synth_names.BATAK_MARGA[fam_idx % len(synth_names.BATAK_MARGA)],
        synth_names.CHINESE_FAMILY[fam_idx % len(synth_names.CHINESE_FAMILY)],
    )
    fam_name = fam[hh]
    # a spouse keeps her own family name
    sp = role == "PASANGAN"
    own = np.where(
        group[sp] == "batak",
        synth_names.BATAK_MARGA[rng.integers(0, len(synth_names.BATAK_MARGA), sp.sum())],
        synth_names.CHINESE_FAMILY[rng.integers(0, len(synth_names.CHINESE_FAMILY), sp.sum())],
    )
    fam_name = fam_name.copy()
    fam_name[sp] = own
    born_year = dob.astype("datetime64[Y]").astype(int) + 1970
    old_mask = (born_year < 1972) & np.isin(group, ["jawa", "sunda"]) & (rng.random(len(hh)) < 0.35)
    nama, nama_alt = _names(
        rng, group, sex, fam_name, old_mask, born_year >= synth_names.MODERN_FROM_YEAR
    )

    w = kelurahan_weights(rng, kel) if kel_weights is None else kel_weights
    hh_kel = rng.choice(len(kel), n_hh, p=w / w.sum())
    streets = synth_names.STREETS
    prefix = np.where(rng.random(n_hh) < 0.6, "JL. ", "GG. ")
    no = rng.integers(1, 150, n_hh).astype(str).astype(object)
    blok = np.where(
        rng.random(n_hh) < 0.12,
        " BLOK " + np.asarray(list("ABCDEFGH"), dtype=object)[rng.integers(0, 8, n_hh)],
        "",
    )
    hh_alamat = prefix + streets[rng.integers(0, len(streets), n_hh)] + " NO. " + no + blok
    hh_rt = rng.integers(1, 19, n_hh)
    hh_rw = rng.integers(1, 14, n_hh)

    # welfare latent: desil 1..10, poorer households a bit larger (bias by size)
    score = rng.random(n_hh) - 0.03 * (sizes - 3.5) + rng.normal(0, 0.05, n_hh)
    desil = (np.argsort(np.argsort(score)) * 10 // n_hh + 1).astype(np.int8)
    car = rng.random(n_hh) < np.asarray(CAR_RATE_BY_DESIL)[desil - 1]
    njop = rng.random(n_hh) < np.asarray(NJOP_RATE_BY_DESIL)[desil - 1]

    religion = np.where(
        np.isin(hh_group, ["batak"]),
        np.where(rng.random(n_hh) < 0.8, "KRISTEN", "ISLAM"),
        np.where(hh_group == "tionghoa", RELIGIONS[rng.choice([1, 2, 3, 5], n_hh)], "ISLAM"),
    )
    religion = np.where((religion == "ISLAM") & (rng.random(n_hh) < 0.04), "KRISTEN", religion)

    df = pd.DataFrame(
        {
            "hh": hh,
            "member": member,
            "hh_size": size,
            "role": role,
            "group": group,
            "jenis_kelamin": sex,
            "tanggal_lahir": dob,
            "nama": nama,
            "nama_alt": nama_alt,
            "agama": religion[hh],
            "kel_idx": hh_kel[hh],
            "alamat": hh_alamat[hh],
            "rt": hh_rt[hh],
            "rw": hh_rw[hh],
            "desil": desil[hh],
            "punya_mobil": car[hh],
            "njop_di_atas_1m": njop[hh],
            "disabilitas": rng.random(len(hh)) < DISABILITY_RATE * (1 + (age > 60)),
        }
    )
    df["hh_start"] = start[hh]
    return df


def _registration(
    df: pd.DataFrame,
    rng: np.random.Generator,
    kel: pd.DataFrame,
    kec: pd.DataFrame,
    snap: np.datetime64,
) -> None:
    """Region digits of the NIK: the kecamatan where the person was first registered. Most DKI-born
    people were registered where they lived before the event window (`prev_kel_idx`: a move within
    DKI in the window keeps the old kecamatan), the others in another DKI kecamatan (an earlier
    move); people born outside DKI keep their home region's code."""
    n = len(df)
    dob = df.tanggal_lahir.values.astype("datetime64[D]")
    age = (snap - dob).astype(int) / 365.2425
    group = df.group.values
    outside = rng.random(n) < np.where(age < 18, BORN_OUTSIDE_RATE_CHILD, BORN_OUTSIDE_RATE_ADULT)
    kel_kec = kel.kec_idx.values[df.prev_kel_idx.values]
    own = rng.random(n) < REGISTERED_OWN_KECAMATAN_RATE
    kec_digits = kec.digits.values.astype(object)
    dki_w = np.where(kec.code.str.startswith("31.01").values, 0.05, 1.0)
    region = np.where(
        own, kec_digits[kel_kec], kec_digits[rng.choice(len(kec), n, p=dki_w / dki_w.sum())]
    )
    place = np.full(n, "JAKARTA", dtype=object)
    oi = np.flatnonzero(outside)
    if len(oi):
        codes = np.empty(len(oi), dtype=object)
        for g, lst in OUTSIDE_BY_GROUP.items():
            m = group[oi] == g
            codes[m] = np.asarray(lst, dtype=object)[rng.integers(0, len(lst), m.sum())]
        sfx = np.char.zfill(rng.integers(1, 13, len(oi)).astype(str), 2).astype(object)
        region[oi] = codes + sfx
        place[oi] = np.array([OUTSIDE_REGIONS[c] for c in codes], dtype=object)
    df["nik_region"] = region
    df["tempat_lahir"] = place


def _max_shift(age: np.ndarray) -> np.ndarray:
    """How far (days) a birth date may move to join a birth cell: little for children (age limits
    of the programs, siblings), up to a year for adults."""
    return np.where(age < 6, 30, np.where(age < 25, 120, 365))


def real_cell_density(df: pd.DataFrame, snap: np.datetime64) -> np.ndarray:
    """Per person: how many *other* DKI residents share their NIK's region, birth date and sex in
    the real province (11.3M residents over 44 kecamatan), from this population's own age pyramid
    and share of DKI-registered NIKs by sex and birth year (docs/synthetic-data.md)."""
    dob = df.tanggal_lahir.values.astype("datetime64[D]")
    year = dob.astype("datetime64[Y]").astype(np.int64)
    dki = df.nik_region.astype(str).str.startswith("31").values
    key = year * 2 + (df.jenis_kelamin.values == "P")
    uniq, inv = np.unique(key, return_inverse=True)
    share = np.bincount(inv, weights=dki.astype(float), minlength=len(uniq)) / len(df)
    return DKI_RESIDENTS * share[inv] / 365.2425 / DKI_KECAMATAN


def _birth_cells(
    df: pd.DataFrame, rng: np.random.Generator, snap: np.datetime64, n_total: int | None = None
) -> None:
    """Give the generated population the real density of same-day births per kecamatan.

    A NIK cell is (region, birth date, sex): its members get serials 0001, 0002, ... In the real
    province a DKI-registered person shares the cell with `real_cell_density` others on average (3
    to 5 for children). A sample of n persons has only n/11.3M of that by chance, so the rest is made
    here: DKI-registered persons of one region and sex, sorted by birth date, are cut into runs whose
    size gives on average real * (1 - n/11.3M) cell-mates (geometric run lengths with mean
    1 + lambda/2), and each run takes its first member's birth date. Then consecutive cells of one
    sex (any region) are joined COHORT_CELLS at a time into a day cohort with one birth date, so
    people of other kecamatan born the same day carry NIKs that differ only in the region digits.
    A birth date moves only within `_max_shift` and never past a life event; others stay alone.
    `n_total`: the size of the whole population when `df` is one chunk of it."""
    n = len(df)
    dob = df.tanggal_lahir.values.astype("datetime64[D]").copy()
    age = (snap - dob).astype(int) / 365.2425
    region = df.nik_region.values.astype(str)
    dki = np.char.startswith(region.astype("U6"), "31")
    scale = max(0.0, 1.0 - (n if n_total is None else n_total) / DKI_RESIDENTS)
    lam = real_cell_density(df, snap) * scale
    sexc = (df.jenis_kelamin.values == "P").astype(np.int64)
    reg_code = pd.factorize(region)[0].astype(np.int64)
    idx = np.flatnonzero(dki)
    d = dob[idx].astype(np.int64)
    order = idx[np.lexsort((d, sexc[idx], reg_code[idx]))]
    grp = reg_code[order] * 2 + sexc[order]
    od = dob[order].astype(np.int64)
    limit = _max_shift(age[order])
    newgrp = np.r_[True, grp[1:] != grp[:-1]]
    p_start = 1.0 / (1.0 + lam[order] / 2.0)
    start = newgrp | (rng.random(len(order)) < p_start) | (np.r_[0, np.diff(od)] > limit)
    cell = np.cumsum(start) - 1
    anchor = np.flatnonzero(start)[cell]
    target = od[anchor]
    # day cohorts: cells of one sex in birth-date order, COHORT_CELLS at a time
    c_first = np.flatnonzero(start)
    c_sex, c_day = sexc[order][c_first], od[c_first]
    corder = np.lexsort((c_day, c_sex))
    cs = c_sex[corder]
    cstart = np.r_[True, cs[1:] != cs[:-1]] | (rng.random(len(corder)) < 1.0 / COHORT_CELLS)
    cstart |= np.r_[0, np.diff(c_day[corder])] > 365
    coh = np.cumsum(cstart) - 1
    coh_day = c_day[corder][np.flatnonzero(cstart)[coh]]
    cell_day = np.empty(len(c_first), np.int64)
    cell_day[corder] = coh_day
    target = np.where(np.abs(cell_day[cell] - od) <= limit, cell_day[cell], target)
    ok = np.abs(target - od) <= limit
    # never past a life event (the dead are born before they die, movers before they move)
    events = [
        df[c].values.astype("datetime64[D]")[order]
        for c in (
            "tanggal_meninggal",
            "tanggal_pindah_keluar",
            "tanggal_kembali",
            "tanggal_pindah_dalam",
        )
    ]
    t = target.astype("datetime64[D]")
    for ev in events:
        ok &= np.isnat(ev) | (t < ev - 30 * DAY)
    dob[order[ok]] = t[ok]
    df["tanggal_lahir"] = dob


def _twins(df: pd.DataFrame, rng: np.random.Generator) -> None:
    """Twins: a child takes the birth date, sex (mostly) and registration region of the sibling just
    before it; half of them share the first name word too (NAURA AI AZZAHRA / NAURA AI ZAHIRA)."""
    role = df.role.values
    df["twin"] = False
    nxt = np.flatnonzero(
        (role[:-1] == "ANAK") & (role[1:] == "ANAK") & (df.hh.values[:-1] == df.hh.values[1:])
    )
    k = max(1, int(round(TWIN_RATE * (role == "ANAK").sum() / 2)))
    if not len(nxt):
        return
    a = np.sort(rng.choice(nxt, min(k, len(nxt)), replace=False))
    a = a[np.r_[True, np.diff(a) > 1]]  # no triplets by accident
    b = a + 1
    for c in ("tanggal_lahir", "nik_region", "tempat_lahir"):
        v = df[c].values.copy()
        v[b] = v[a]
        df[c] = v
    same_sex = rng.random(len(a)) < 0.6
    sex = df.jenis_kelamin.values.copy()
    sex[b[same_sex]] = sex[a[same_sex]]
    df["jenis_kelamin"] = sex
    share = same_sex & (rng.random(len(a)) < 0.5)
    nama, alt = df.nama.values.copy(), df.nama_alt.values.copy()
    fa = pd.Series(nama[a[share]]).str.split(" ", n=1).str[0].values
    rb = pd.Series(nama[b[share]]).str.split(" ", n=1).str[1].fillna("").values
    nama[b[share]] = np.where(rb == "", fa, fa + " " + rb)
    alt[b[share]] = nama[b[share]]
    df["nama"], df["nama_alt"] = nama, alt
    tw = np.zeros(len(df), bool)
    tw[a] = tw[b] = True
    df["twin"] = tw


def _distinct_in_household(df: pd.DataFrame) -> None:
    """No two members of one family card carry the same name. Parents in Indonesia do not give a
    child the name of a parent or sibling (twins included: NAURA AI AZZAHRA / NAURA AI ZAHIRA, not
    twice NAURA), and a family card with two identical names and one address would be a record
    nobody can tell apart, which is not a collision real deliveries show. The later member gets a
    second word after the first (FARHAN -> FARHAN HAKIM; LAMRIA SIAHAAN -> LAMRIA TUA SIAHAAN).
    Its own generator, seeded from the data, so the draws of every other person stay as they were."""
    keys = pd.Series(df.hh.values.astype(str), dtype=object) + "|" + df.nama.astype(str).values
    # a planted namesake keeps its name (it is the collision under test); another member yields
    planted = df["namesake_kind"].fillna("").astype(str).values != ""
    order = np.lexsort((np.arange(len(df)), ~planted))
    dup = np.sort(order[keys.iloc[order].duplicated(keep="first").values])
    if not len(dup):
        return
    rng = np.random.default_rng([len(df), int(dup.sum() % (2**32))])
    nama, alt = df.nama.values.copy(), df.nama_alt.values.copy()
    group, sex = df.group.values, df.jenis_kelamin.values
    for i in dup:
        start = int(df.hh_start.values[i])
        taken = set(nama[start : start + int(df.hh_size.values[i])])
        g, s = group[i], sex[i]
        if g == "batak":
            pool = synth_names.BATAK_MIDDLE
        elif g == "tionghoa":
            pool = synth_names.FIRST[(g, s)]
        else:
            pool = synth_names.SECOND.get((g, s), synth_names.SECOND[("arab", s)])
        first, _sp, rest = str(nama[i]).partition(" ")
        own = set(str(nama[i]).split())
        for _ in range(50):
            word = pool[rng.integers(0, len(pool))]
            cand = " ".join(w for w in (first, word, rest) if w)
            if word not in own and cand not in taken:
                break
        afirst, _sp, arest = str(alt[i]).partition(" ")
        nama[i] = cand
        alt[i] = " ".join(w for w in (afirst, word, arest) if w)
    df["nama"], df["nama_alt"] = nama, alt


def compatible_name(anchor: np.ndarray, own: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A name a clerk could take for `anchor`'s: the anchor's first word alone (AGUS SUSILO -> AGUS),
    or with the person's own other words (SRI -> SRI MARYATI), or the anchor's whole name with one
    more word (NAURA -> NAURA AI AZZAHRA)."""
    a = pd.Series(anchor, dtype=object)
    first = a.str.split(" ", n=1).str[0].values
    own_rest = pd.Series(own, dtype=object).str.split(" ", n=1).str[1].fillna("").values
    single = ~a.str.contains(" ").values
    u = rng.random(len(anchor))
    longer = np.where(
        own_rest != "", anchor + " " + pd.Series(own_rest).str.split(" ").str[-1].values, anchor
    )
    out = np.where(
        single,
        np.where(own_rest != "", first + " " + own_rest, anchor),
        np.where(u < 0.5, first, np.where(own_rest != "", first + " " + own_rest, longer)),
    )
    same = out == anchor
    out[same & ~single] = first[same & ~single]
    return out.astype(object)


def _one_digit_regions(regions: np.ndarray) -> dict[str, np.ndarray]:
    """For each DKI kecamatan code, the other DKI kecamatan codes one digit away (317101 -> 317102,
    317401...)."""
    r = np.asarray(sorted(set(regions)), dtype=object)
    mat = np.array([[ch for ch in x] for x in r])
    diff = (mat[:, None, :] != mat[None, :, :]).sum(axis=2)
    return {r[i]: r[np.flatnonzero(diff[i] == 1)] for i in range(len(r))}


_DAY_SPAN = 10**6  # days since 1970 + 400,000 fit in 6 digits


def _sex_region_day(sex: np.ndarray, region: np.ndarray, dob: np.ndarray) -> np.ndarray:
    return (
        ((sex == "P").astype(np.int64) * 10**6 + region.astype(np.int64)) * _DAY_SPAN
        + dob.astype("datetime64[D]").astype(np.int64)
        + 400_000
    )


def _match_namesakes(
    df, cand, living, sex, region, dob, age, near, rng
) -> tuple[np.ndarray, np.ndarray]:
    """For each candidate (dead or departed), a living person of the same sex in its own region or a
    region one digit away, born within `_max_shift` of it and before its own life events; each
    living person at most once. Returns (candidates matched, their living namesakes)."""
    liv = np.flatnonzero(living)
    if not len(liv) or not len(cand):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lkey = _sex_region_day(sex[liv], region[liv], dob[liv])
    lo = np.argsort(lkey, kind="stable")
    liv, lkey = liv[lo], lkey[lo]
    opts = [near.get(r, ()) for r in region[cand]]
    cnt = np.array([len(o) for o in opts])
    pick = (rng.random(len(cand)) * np.maximum(cnt, 1)).astype(np.int64)
    other = np.array(
        [o[i] if len(o) else r for o, i, r in zip(opts, pick, region[cand])], dtype=object
    )
    r = np.where((rng.random(len(cand)) < 0.3) | (cnt == 0), region[cand], other)
    q = _sex_region_day(sex[cand], r, dob[cand])
    j = np.searchsorted(lkey, q)
    best = np.full(len(cand), -1, np.int64)
    gap = np.full(len(cand), np.iinfo(np.int64).max)
    for jj in (j - 1, j):
        jc = np.clip(jj, 0, len(liv) - 1)
        same = (jj >= 0) & (jj < len(liv)) & (lkey[jc] // _DAY_SPAN == q // _DAY_SPAN)
        g = np.abs(lkey[jc] - q)
        better = same & (g < gap)
        best = np.where(better, liv[jc], best)
        gap = np.where(better, g, gap)
    ok = (best >= 0) & (gap <= _max_shift(age[cand]))
    newdob = dob[np.maximum(best, 0)]
    for c in ("tanggal_meninggal", "tanggal_pindah_keluar", "tanggal_pindah_dalam"):
        ev = df[c].values.astype("datetime64[D]")[cand]
        ok &= np.isnat(ev) | (newdob < ev - 30 * DAY)
    sel = np.flatnonzero(ok)
    _, first_use = np.unique(best[sel], return_index=True)  # one namesake per living person
    sel = np.sort(sel[first_use])
    return cand[sel], best[sel]


def _namesakes(
    df: pd.DataFrame,
    rng: np.random.Generator,
    kec: pd.DataFrame,
    snap: np.datetime64,
    n_persons: int,
) -> None:
    """Namesakes with near-identical NIKs.

    1. In every birth cell and day cohort (same birth date and sex), each member after the first
       carries a name compatible with the first member's with NAMESAKE_IN_COHORT_RATE.
    2. Dead and departed namesakes of the living: for DEAD_NAMESAKE_RATE (MOVED_NAMESAKE_RATE) of
       the persons, one with a registered death (registered move out of DKI) takes the birth date
       and a compatible name of a living DKI resident of the same sex whose NIK region is one digit
       away from theirs or the same (then the serials differ: 0001 / 0002), in a household of desil
       1-4 (whom the programs pay). The living one is marked `namesake_anchor`; rosters enrol
       eligible anchors (so small samples show the case)."""
    n = len(df)
    dob = df.tanggal_lahir.values.astype("datetime64[D]")
    sex = df.jenis_kelamin.values
    region = df.nik_region.values.astype(object)
    nama, alt = df.nama.values.copy(), df.nama_alt.values.copy()
    group = df.group.values
    muslim = ~np.isin(group, ["batak", "tionghoa"])
    of = np.full(n, -1, np.int64)
    kind = np.full(n, "", dtype=object)
    anchor_mark = np.zeros(n, bool)
    # 1. within cohorts: same birth date and sex
    key = dob.astype(np.int64) * 2 + (sex == "P")
    order = np.lexsort((rng.random(n), key))
    k = key[order]
    first = np.r_[True, k[1:] != k[:-1]]
    head = order[np.flatnonzero(first)[np.cumsum(first) - 1]]
    sel = ~first & (rng.random(n) < NAMESAKE_IN_COHORT_RATE)
    sel &= muslim[order] & muslim[head] & ~df.twin.values[order]
    who, anc = order[sel], head[sel]
    nama[who] = compatible_name(nama[anc], nama[who], rng)
    alt[who] = nama[who]
    of[who] = anc
    kind[who] = np.where(region[who] == region[anc], "serial", "region")
    # 2. dead / departed namesakes of living DKI residents
    # the living namesakes: poor households (desil 1-4), the people the programs pay
    alive = (
        np.isnat(df.tanggal_meninggal.values)
        & ~df.moved_out.values
        & ~df.is_ghost.values
        & np.char.startswith(region.astype("U6"), "31")
        & muslim
        & (df.desil.values <= 4)
    )
    near = _one_digit_regions(kec.digits.values)
    age = (snap - dob).astype(int) / 365.2425
    taken = alive & (of >= 0)
    heads = np.zeros(n, bool)
    heads[anc] = True
    for label, pool, rate in (
        ("dead", df.death_registered.values, DEAD_NAMESAKE_RATE),
        ("moved", df.move_out_registered.values & df.moved_out.values, MOVED_NAMESAKE_RATE),
    ):
        cand = np.flatnonzero(
            pool
            & muslim
            & np.char.startswith(region.astype("U6"), "31")
            & (of < 0)
            & ~heads
            & ~df.twin.values
        )
        want = max(NAMESAKE_MIN, int(round(rate * n_persons)))
        cand = cand[rng.permutation(len(cand))]
        done = 0
        for _attempt in range(4):  # a new choice of region for those not matched yet
            if done >= want or not len(cand):
                break
            p_, b_ = _match_namesakes(
                df, cand, alive & ~taken & ~anchor_mark, sex, region, dob, age, near, rng
            )
            p_, b_ = p_[: want - done], b_[: want - done]
            anchor_mark[b_] = True
            dob[p_] = dob[b_]
            nama[p_] = compatible_name(nama[b_], nama[p_], rng)
            alt[p_] = nama[p_]
            of[p_] = b_
            kind[p_] = label
            done += len(p_)
            cand = cand[of[cand] < 0]
    df["tanggal_lahir"] = dob
    df["nik_region"] = region
    df["nama"], df["nama_alt"] = nama, alt
    df["namesake_of"] = of
    df["namesake_kind"] = kind
    df["namesake_anchor"] = anchor_mark


class SerialCounter:
    """How many NIKs every (region, DDMMYY) cell already holds, over the chunks of a population
    built chunk by chunk (generate.py): a cell's serials continue in the next chunk (0001, 0002
    here, 0003 there), so NIKs stay unique and Dukcapil-like. Compact: sorted int64 keys."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, np.int64)
        self.counts = np.zeros(0, np.int64)

    def take(self, key: np.ndarray) -> np.ndarray:
        """Per element of `key`, the serials its cell used before; counts `key` in."""
        pos = np.clip(np.searchsorted(self.keys, key), 0, max(len(self.keys) - 1, 0))
        found = (self.keys[pos] == key) if len(self.keys) else np.zeros(len(key), bool)
        base = np.where(found, self.counts[pos] if len(self.keys) else 0, 0)
        uk, cnt = np.unique(key, return_counts=True)
        keys = np.union1d(self.keys, uk)
        counts = np.zeros(len(keys), np.int64)
        counts[np.searchsorted(keys, self.keys)] += self.counts
        counts[np.searchsorted(keys, uk)] += cnt
        self.keys, self.counts = keys, counts
        return base


def _nik_and_kk(
    df: pd.DataFrame,
    rng: np.random.Generator,
    kel: pd.DataFrame,
    kec: pd.DataFrame,
    snap: np.datetime64,
    serials: SerialCounter | None = None,
) -> None:
    """NIK = region + DDMMYY (day + 40 for women) + serial 0001, 0002, ... restarting for every
    region and birth date (in a random order of registration). `serials`: the cells' counts of
    the chunks built before (a KK needs none: a chunk holds whole kecamatan)."""
    n = len(df)
    region = df.nik_region.values
    ts = pd.DatetimeIndex(df.tanggal_lahir.values.astype("datetime64[D]"))
    dd = ts.day.values + np.where(df.jenis_kelamin.values == "P", 40, 0)
    ddmmyy = dd * 10000 + ts.month.values * 100 + ts.year.values % 100
    key = region.astype(np.int64) * 1_000_000 + ddmmyy
    order = np.lexsort((rng.random(n), key))
    ks = key[order]
    first = np.r_[True, ks[1:] != ks[:-1]]
    grp_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    serial = np.empty(n, dtype=np.int64)
    serial[order] = np.arange(n) - grp_start + 1
    if serials is not None:
        serial += serials.take(key)
    if n and serial.max() > 9999:  # a NIK has four serial digits per region and birth date
        raise ValueError(
            "more than 9999 persons share a region and birth date: the NIK serial overflows"
        )
    nik = key * 10_000 + serial
    df["nik"] = nik.astype(str).astype(object)

    # KK: kecamatan of the household + issue date DDMMYY + 4-digit serial
    kec_digits = kec.digits.values.astype(object)
    kel_kec = kel.kec_idx.values[df.prev_kel_idx.values]
    hh_first = df.member.values == 0
    hh_kec = kec_digits[kel_kec[hh_first]].astype(np.int64)
    n_hh = int(hh_first.sum())
    issue = snap - rng.integers(30, 20 * 365, n_hh) * DAY
    its = pd.DatetimeIndex(issue)
    kkey = (
        hh_kec * 1_000_000 + its.day.values * 10000 + its.month.values * 100 + its.year.values % 100
    )
    order = np.lexsort((rng.random(n_hh), kkey))
    ks = kkey[order]
    first = np.r_[True, ks[1:] != ks[:-1]]
    grp_start = np.maximum.accumulate(np.where(first, np.arange(n_hh), 0))
    kser = np.empty(n_hh, dtype=np.int64)
    kser[order] = np.arange(n_hh) - grp_start + 1
    kk = (kkey * 10_000 + kser).astype(str).astype(object)
    df["no_kk"] = kk[df.hh.values]


def _events(
    df: pd.DataFrame, rng: np.random.Generator, snap: np.datetime64, kel: pd.DataFrame
) -> None:
    n = len(df)
    window = EVENT_WINDOW_YEARS * 365
    dob = df.tanggal_lahir.values.astype("datetime64[D]")
    age = (snap - dob).astype(int) / 365.2425
    ghost = df.is_ghost.values

    # deaths
    p_die = 1 - (1 - _age_band_rate(age)) ** EVENT_WINDOW_YEARS
    dies = (rng.random(n) < p_die) & ~ghost
    ddays = rng.integers(3, window, n)
    ddays = np.minimum(ddays, (snap - dob).astype(int) - 1)
    death = np.where(dies & (ddays > 0), snap - ddays * DAY, np.datetime64("NaT"))
    dies = ~np.isnat(death)
    df["tanggal_meninggal"] = death
    df["death_registered"] = dies & (rng.random(n) < DEATH_REGISTERED_RATE)

    hh = df.hh.values
    n_hh = hh.max() + 1
    # moves out of DKI: whole households, plus young adults alone
    hh_out = rng.random(n_hh) < MOVE_OUT_HH_RATE
    hh_out_date = snap - rng.integers(10, window, n_hh) * DAY
    indiv = (age >= 18) & (age <= 40) & (rng.random(n) < MOVE_OUT_INDIV_RATE)
    out = (hh_out[hh] | indiv) & ~ghost
    out_date = np.where(hh_out[hh], hh_out_date[hh], snap - rng.integers(10, window, n) * DAY)
    out &= dob < out_date
    out &= np.isnat(death) | (death > out_date)  # the dead do not move
    dest4 = np.array(DEST_CODES, dtype=object)
    hh_dest = dest4[rng.integers(0, len(dest4), n_hh)]
    dest = np.where(hh_out[hh], hh_dest[hh], dest4[rng.integers(0, len(dest4), n)])
    six = rng.random(n) < 0.4
    dest = np.where(
        six, dest + np.char.zfill(rng.integers(1, 13, n).astype(str), 2).astype(object), dest
    )
    hh_reg = rng.random(n_hh) < MOVE_OUT_REGISTERED_RATE
    reg = np.where(hh_out[hh], hh_reg[hh], rng.random(n) < MOVE_OUT_REGISTERED_RATE) & out
    back = reg & (rng.random(n) < MOVE_BACK_RATE)
    gap = (snap - out_date).astype(int)
    back &= gap > 60
    back_date = np.where(
        back,
        out_date + (rng.random(n) * (gap - 30)).astype(int).clip(20) * DAY,
        np.datetime64("NaT"),
    )
    back &= np.isnat(death) | (death > back_date)
    back_date = np.where(back, back_date, np.datetime64("NaT"))
    df["tanggal_pindah_keluar"] = np.where(out, out_date, np.datetime64("NaT"))
    df["kode_wilayah_tujuan"] = np.where(out, dest, None)  # type: ignore[call-overload]  # numpy stubs reject None
    df["move_out_registered"] = reg
    df["tanggal_kembali"] = back_date
    df["moved_out"] = out & ~back  # truly lives outside DKI at the snapshot

    # moves within DKI (whole households): the registered address changes
    hh_in = (rng.random(n_hh) < MOVE_WITHIN_HH_RATE) & ~hh_out
    hh_in_date = snap - rng.integers(10, window, n_hh) * DAY
    hh_in_reg = rng.random(n_hh) < MOVE_WITHIN_REGISTERED_RATE
    new_kel = rng.integers(0, len(kel), n_hh)
    new_kel = np.where(
        new_kel == df.kel_idx.values[df.member.values == 0], (new_kel + 1) % len(kel), new_kel
    )
    streets = synth_names.STREETS
    new_alamat = (
        "JL. "
        + streets[rng.integers(0, len(streets), n_hh)]
        + " NO. "
        + rng.integers(1, 150, n_hh).astype(str).astype(object)
    )
    within = (
        hh_in[hh] & ~ghost & (dob < hh_in_date[hh]) & (np.isnat(death) | (death > hh_in_date[hh]))
    )
    df["tanggal_pindah_dalam"] = np.where(within, hh_in_date[hh], np.datetime64("NaT"))
    df["move_within_registered"] = within & hh_in_reg[hh]
    for c in ("kel_idx", "alamat", "rt", "rw"):
        df["prev_" + c] = df[c].values
    df.loc[within, "kel_idx"] = new_kel[hh][within]
    df.loc[within, "alamat"] = new_alamat[hh][within]
    df.loc[within, "rt"] = rng.integers(1, 19, n)[within]
    df.loc[within, "rw"] = rng.integers(1, 14, n)[within]


@dataclass(frozen=True)
class Chunk:
    """Where one chunk of a population built chunk by chunk sits in the whole (generate.py): its
    kelurahan (weights, zero elsewhere), the whole population's size and the persons and ghosts
    of the chunks before it (their person keys come first)."""

    kel_weights: np.ndarray
    persons_total: int
    rows_total: int  # persons and ghosts of the whole population
    persons_before: int
    ghosts_before: int
    serials: SerialCounter


def build_population(
    n: int, rng: np.random.Generator, snapshot: date, chunk: Chunk | None = None
) -> pd.DataFrame:
    """n persons of DKI (plus a few ghosts, people in no registry) with all true attributes; with
    `chunk`, the persons of that chunk of a bigger population (its kelurahan only)."""
    snap = _to_date(snapshot)
    w = wilayah()
    kw = None if chunk is None else chunk.kel_weights
    pop = _people(n, rng, snap, w.kel, kw)
    pop["is_ghost"] = False
    g = max(GHOST_MIN, int(round(n * GHOST_RATE)))
    gh = _people(g, rng, snap, w.kel, kw)
    gh["is_ghost"] = True
    gh["hh"] += pop.hh.max() + 1
    gh["hh_start"] += len(pop)
    df = pd.concat([pop, gh], ignore_index=True)
    _events(df, rng, snap, w.kel)
    _registration(df, rng, w.kel, w.kec, snap)
    _birth_cells(df, rng, snap, None if chunk is None else chunk.rows_total)
    _twins(df, rng)
    _namesakes(df, rng, w.kec, snap, n)
    _distinct_in_household(df)
    _nik_and_kk(df, rng, w.kel, w.kec, snap, None if chunk is None else chunk.serials)
    width = max(7, len(str(n if chunk is None else chunk.persons_total)))
    p0, g0 = (0, 0) if chunk is None else (chunk.persons_before, chunk.ghosts_before)
    key = pd.Series(np.arange(len(df)))
    pk = np.where(df.is_ghost.values, "G", "P").astype(object) + np.where(
        df.is_ghost.values, key - len(pop) + 1 + g0, key + 1 + p0
    ).astype(str).astype(object)
    df.insert(0, "person_key", pk)
    df["person_key"] = df.person_key.str[0] + df.person_key.str[1:].str.zfill(width)
    df["tanggal_lahir"] = df.tanggal_lahir.values.astype("datetime64[D]")
    return df
