"""Ground truth: what the delivered sources say about each true person, and the verdict every roster
row must get under perfect linkage (docs/verdict-rules.md).

All functions work on *canonical frames*: one DataFrame per source with `pidx` (index of the true
person in the population, -1 for rows that must be quarantined), `quarantine` ('' or the reason) and
the canonical fields of the data contract (dates as datetime64).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

# Program defaults, mirroring docs/verdict-rules.md (rules.yaml).
PROGRAMS: dict[str, dict[str, Any]] = {
    "KJP": dict(min_age=6, max_age=21, desil_max=4, excludes=("KJMU",), disability=False),
    "KJMU": dict(min_age=18, max_age=24, desil_max=4, excludes=("KJP",), disability=False),
    "KAJ": dict(min_age=0, max_age=6, desil_max=4, excludes=(), disability=False),
    "KLJ": dict(min_age=60, max_age=None, desil_max=4, excludes=(), disability=False),
    "KPDJ": dict(min_age=0, max_age=None, desil_max=4, excludes=(), disability=True),
}
STALE_MONTHS = 12

REMOVE_REASONS = ("deceased", "moved_out", "age_ineligible", "duplicate_enrollment")
REVIEW_REASONS = (
    "identity_unresolved",
    "not_in_welfare_registry",
    "welfare_too_high",
    "asset_exclusion",
    "disability_unconfirmed",
    "stale_record",
)
REASON_CODES = REMOVE_REASONS + REVIEW_REASONS


def stale_boundary(snapshot: date) -> np.datetime64:
    """Verification dates strictly before this day are stale (snapshot minus 12 calendar months)."""
    y, m = snapshot.year, snapshot.month - STALE_MONTHS
    while m <= 0:
        m += 12
        y -= 1
    day = min(snapshot.day, calendar.monthrange(y, m)[1])  # 31 March - 1 month = 28/29 February
    return np.datetime64(date(y, m, day), "D")


def completed_years(dob: np.ndarray, snapshot: date) -> np.ndarray:
    d = dob.astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    y = m.astype("datetime64[Y]").astype(np.int64) + 1970
    mo = m.astype(np.int64) % 12 + 1
    day = (d - m).astype(np.int64) + 1
    before = (mo > snapshot.month) | ((mo == snapshot.month) & (day > snapshot.day))
    return snapshot.year - y - before.astype(np.int64)


def D(s: pd.Series) -> np.ndarray:
    return s.values.astype("datetime64[D]")


@dataclass
class Facts:
    """Per true person (index = pidx): what the delivered, non-quarantined rows say."""

    has_civil: np.ndarray
    has_welfare: np.ndarray
    dead: np.ndarray
    moved_out: np.ndarray
    desil: np.ndarray  # latest welfare row; 0 where none
    asset: np.ndarray  # latest welfare row says car or NJOP > 1bn
    disab_any: np.ndarray
    last_verified: np.ndarray  # datetime64[D], NaT where none
    age: np.ndarray  # completed years at the snapshot, from the civil (true) birth date
    stale: np.ndarray
    death_date: np.ndarray  # datetime64[D] of the earliest registered death, NaT where none
    move_date: np.ndarray  # datetime64[D] of the move out of DKI, NaT where none
    roster_verified: (
        np.ndarray
    )  # latest tanggal_pemutakhiran of the person's roster rows, NaT where none


def person_facts(frames: list[tuple], n: int, dob: np.ndarray, snapshot: date) -> Facts:
    snap = np.datetime64(snapshot, "D")
    has_civil = np.zeros(n, bool)
    has_welfare = np.zeros(n, bool)
    dead = np.zeros(n, bool)
    wel, mig, ver, deaths, rver = [], [], [], [], []
    for spec, df in frames:
        df = df[(df.quarantine.values == "") & (df.pidx.values >= 0)]
        p = df.pidx.values
        if spec.kind == "civil_registry":
            has_civil[p] = True
        elif spec.kind == "welfare_registry":
            has_welfare[p] = True
            wel.append(
                pd.DataFrame(
                    {
                        "pidx": p,
                        "t": D(df.tanggal_pemutakhiran),
                        "desil": df.desil.values,
                        "dis": df.disabilitas.values,
                        "asset": df.punya_mobil.values | df.njop_di_atas_1m.values,
                    }
                )
            )
        elif spec.kind == "death_registry":
            dead[p[D(df.tanggal_meninggal) <= snap]] = True
            deaths.append(pd.DataFrame({"pidx": p, "t": D(df.tanggal_meninggal)}))
        elif spec.kind == "migration_registry":
            mig.append(
                pd.DataFrame(
                    {"pidx": p, "t": D(df.tanggal_pindah), "dest": df.kode_wilayah_tujuan.values}
                )
            )
        if spec.has("tanggal_pemutakhiran"):
            ver.append(pd.DataFrame({"pidx": p, "t": D(df.tanggal_pemutakhiran)}))
            if spec.kind == "program_roster":
                rver.append(ver[-1])
    desil = np.zeros(n, np.int64)
    asset = np.zeros(n, bool)
    disab = np.zeros(n, bool)
    if wel:
        w = pd.concat(wel, ignore_index=True).sort_values(["pidx", "t"], kind="stable")
        last = w.drop_duplicates("pidx", keep="last")
        desil[last.pidx.values] = last.desil.values
        asset[last.pidx.values] = last.asset.values.astype(bool)
        disab[w.pidx.values[w.dis.values.astype(bool)]] = True
    moved = np.zeros(n, bool)
    if mig:
        m = pd.concat(mig, ignore_index=True)
        m = (
            m[m.t.values <= snap]
            .sort_values(["pidx", "t"], kind="stable")
            .drop_duplicates("pidx", keep="last")
        )
        moved[m.pidx.values] = ~m.dest.astype(str).str.startswith("31").values
    move_date = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    if mig:
        out = ~m.dest.astype(str).str.startswith("31").values
        move_date[m.pidx.values[out]] = m.t.values[out].astype("datetime64[D]")
    death_date = _per_person(deaths, n, snap, "min")
    roster_verified = _per_person(rver, n, snap, "max")
    lv = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    if ver:
        v = pd.concat(ver, ignore_index=True).dropna()
        v = v.groupby("pidx").t.max()
        lv[v.index.values] = v.values.astype("datetime64[D]")
    stale = np.isnat(lv) | (lv < stale_boundary(snapshot))
    return Facts(
        has_civil,
        has_welfare,
        dead,
        moved,
        desil,
        asset,
        disab,
        lv,
        completed_years(dob, snapshot),
        stale,
        death_date,
        move_date,
        roster_verified,
    )


def _per_person(parts: list[pd.DataFrame], n: int, snap: np.datetime64, how: str) -> np.ndarray:
    """Per person, the min or max date (up to the snapshot) of `parts`; NaT where none."""
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    if parts:
        v = pd.concat(parts, ignore_index=True).dropna()
        v = v[v.t.values <= snap]
        v = getattr(v.groupby("pidx").t, how)()
        out[v.index.values] = v.values.astype("datetime64[D]")
    return out


def verdicts(
    rosters: list[tuple], facts: Facts, person_keys: np.ndarray, truth_flags: dict
) -> pd.DataFrame:
    """One row per roster row: program, source, row_number, record_id, person_key, verdict, reasons."""
    parts = []
    for spec, df in rosters:
        parts.append(
            pd.DataFrame(
                {
                    "program": spec.program,
                    "source": spec.name,
                    "row_number": df.row_number.values,
                    "record_id": df.record_id.values,
                    "pidx": df.pidx.values,
                    "mulai": D(df.tanggal_mulai),
                    "nominal_bulanan": df.nominal_bulanan.values,
                }
            )
        )
    r = pd.concat(parts, ignore_index=True)
    p = r.pidx.values
    known = facts.has_civil[p] | facts.has_welfare[p]
    reasons: dict[str, np.ndarray] = {}
    prog = r.program.values
    age = facts.age[p]
    min_age = np.array([PROGRAMS[x]["min_age"] for x in prog])
    max_age = np.array(
        [PROGRAMS[x]["max_age"] if PROGRAMS[x]["max_age"] is not None else 999 for x in prog]
    )
    cut = np.array([PROGRAMS[x]["desil_max"] for x in prog])
    needs_dis = np.array([PROGRAMS[x]["disability"] for x in prog])
    reasons["deceased"] = facts.dead[p]
    reasons["moved_out"] = facts.moved_out[p]
    # A death or move contradicted by the roster (this row enrolled after it, or a roster row of the
    # person verified after it) is not conclusive: the reason stands, the verdict is review
    # (docs/verdict-rules.md, "When a death or a move removes").
    mulai = r.mulai.values
    contradicted = {}
    for code, when in (("deceased", facts.death_date[p]), ("moved_out", facts.move_date[p])):
        contradicted[code] = (
            reasons[code] & ~np.isnat(when) & ((mulai > when) | (facts.roster_verified[p] > when))
        )
    reasons["age_ineligible"] = (age < min_age) | (age > max_age)
    # The earliest enrollment stays, but a row removed for another reason (a death or move not
    # contradicted, an age outside the program's) is no enrollment that stays: a later row is not
    # its duplicate, or the person would lose both (docs/verdict-rules.md, duplicate_enrollment).
    removed_other = known & (
        (reasons["deceased"] & ~contradicted["deceased"])
        | (reasons["moved_out"] & ~contradicted["moved_out"])
        | reasons["age_ineligible"]
    )
    dup = np.zeros(len(r), bool)
    for code, par in PROGRAMS.items():
        group = {code, *par["excludes"]}
        sub = r[r.program.isin(group)].sort_values(["pidx", "mulai", "record_id"], kind="stable")
        rank = np.arange(len(sub))
        staying = ~removed_other[sub.index.values]
        first_staying = (
            pd.Series(np.where(staying, rank, len(sub)), index=sub.index)
            .groupby(sub.pidx.values)
            .transform("min")
            .values
        )
        later = sub.index.values[(rank > first_staying) & (sub.program.values == code)]
        dup[later] = True
    reasons["duplicate_enrollment"] = dup
    hw = facts.has_welfare[p]
    reasons["not_in_welfare_registry"] = ~hw
    reasons["welfare_too_high"] = hw & (facts.desil[p] > cut)
    reasons["asset_exclusion"] = hw & facts.asset[p]
    reasons["disability_unconfirmed"] = needs_dis & ~facts.disab_any[p]
    reasons["stale_record"] = facts.stale[p]
    for k in reasons:
        reasons[k] = reasons[k] & known
    reasons["identity_unresolved"] = ~known
    codes = sorted(REASON_CODES)
    txt = np.full(len(r), "", dtype=object)
    for c in codes:
        m = reasons[c]
        txt = np.where(m, np.where(txt == "", c, txt + ";" + c), txt)
    remove = np.zeros(len(r), bool)
    for c in REMOVE_REASONS:
        remove |= reasons[c] & ~contradicted.get(c, np.zeros(len(r), bool))
    review = np.zeros(len(r), bool)
    for c in REVIEW_REASONS + tuple(contradicted):
        review |= reasons[c]
    verdict = np.where(remove, "remove", np.where(review, "review", "keep"))
    state = np.full(len(r), "", dtype=object)
    for name, arr in truth_flags.items():
        m = arr[p]
        state = np.where(m, np.where(state == "", name, state + ";" + name), state)
    out = pd.DataFrame(
        {
            "program": r.program,
            "source": r.source,
            "row_number": r.row_number,
            "record_id": r.record_id,
            "person_key": person_keys[p],
            "verdict": verdict,
            "reasons": txt,
            "true_state": state,
            "nominal_bulanan": r.nominal_bulanan,
        }
    )
    return out


def eligible_not_enrolled(
    rosters: list[tuple], facts: Facts, person_keys: np.ndarray, is_ghost: np.ndarray
) -> pd.DataFrame:
    enrolled: dict[str, set] = {spec.program: set() for spec, _ in rosters}
    arrays: dict[str, Any] = {}
    for spec, df in rosters:
        arrays.setdefault(spec.program, []).append(df.pidx.values)
    out = []
    base = facts.has_welfare & ~facts.dead & ~facts.moved_out & ~facts.asset & ~is_ghost
    for code in enrolled:
        par = PROGRAMS[code]
        ok = (
            base
            & (facts.desil >= 1)
            & (facts.desil <= par["desil_max"])
            & (facts.age >= par["min_age"])
        )
        if par["max_age"] is not None:
            ok &= facts.age <= par["max_age"]
        if par["disability"]:
            ok &= facts.disab_any
        for c in (code, *par["excludes"]):
            for a in arrays.get(c, []):
                ok[a] = False
        idx = np.flatnonzero(ok)
        out.append(
            pd.DataFrame(
                {
                    "program": code,
                    "person_key": person_keys[idx],
                    "desil": facts.desil[idx],
                    "age": facts.age[idx],
                }
            )
        )
    res = pd.concat(out, ignore_index=True)
    return res.sort_values(["program", "desil", "age", "person_key"], kind="stable").reset_index(
        drop=True
    )
