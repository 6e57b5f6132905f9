"""Orchestration: population -> sources -> files + sources.yaml + ground truth."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from . import sources as synth_sources
from . import truth as synth_truth
from .population import (
    GHOST_MIN,
    GHOST_RATE,
    Chunk,
    SerialCounter,
    build_population,
    kelurahan_weights,
    wilayah,
)

ROSTER_ORDER = (
    ("KJP", "kjp_plus"),
    ("KJMU", "kjmu"),
    ("KAJ", "kaj"),
    ("KLJ", "klj"),
    ("KPDJ", "kpdj"),
)


def _shuffle(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    df = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    df["row_number"] = np.arange(1, len(df) + 1)
    return df


CHUNK_PERSONS = 250_000  # bigger populations are built and written a group of kecamatan at a time
MIN_CHUNK_PERSONS = 100  # a chunk's expected persons at least


def _build_chunk(
    persons: int,
    rng: np.random.Generator,
    snapshot: dt.date,
    chunk: Chunk | None = None,
    id_offset: dict | None = None,
    quarantine: bool = True,
):
    """One population (or one chunk of it) and its delivered rows: (population, People,
    {source: canonical frame in file order}, facts)."""
    pop = build_population(persons, rng, snapshot, chunk)
    P = synth_sources.People(pop, snapshot)
    P.id_offset = dict(id_offset or {})
    frames = {
        "dukcapil_penduduk": synth_sources.build_civil(P, rng),
        "dukcapil_kematian": synth_sources.build_death(P, rng),
        "dukcapil_pindah": synth_sources.build_migration(P, rng),
        "dtks": synth_sources.build_dtks(P, rng),
        "p3ke": synth_sources.build_p3ke(P, rng),
    }
    synth_sources.untie_welfare(frames)
    dob = P.a["tanggal_lahir"]
    facts0 = synth_truth.person_facts(
        [(synth_sources.SPEC[k], v) for k, v in frames.items()], P.n, dob, snapshot
    )
    taken = np.zeros(0, np.int64)
    kjp = None
    for code, name in ROSTER_ORDER:
        chosen = synth_sources.select_roster(P, facts0, code, rng, taken, kjp)
        taken = np.union1d(taken, chosen[P.a["is_ghost"][chosen]])
        frames[name] = synth_sources.build_roster(P, facts0, code, name, chosen, rng)
        if code == "KJP":
            kjp = chosen
    if quarantine:
        free = np.setdiff1d(np.flatnonzero(P.a["is_ghost"]), taken)
        per = synth_sources.QUARANTINE_BLANK_NAME + synth_sources.QUARANTINE_DUPLICATE_PAIRS
        for i, name in enumerate(synth_sources.QUARANTINE_SOURCES):
            frames[name] = synth_sources.add_quarantine(
                P, frames[name], name, free[i * per : (i + 1) * per], rng
            )
    ordered = {}
    for spec in synth_sources.SPECS:
        ordered[spec.name] = _shuffle(frames[spec.name], rng)
    facts = synth_truth.person_facts(
        [(synth_sources.SPEC[k], v) for k, v in ordered.items()], P.n, dob, snapshot
    )
    return pop, P, ordered, facts


def chunk_plan(persons: int, seed: int, chunk_persons: int) -> list[tuple[np.ndarray, int]]:
    """How a streamed population is cut: groups of whole kecamatan (in code order) of about
    `chunk_persons` expected persons each, and the persons each gets; per chunk (kelurahan
    weights, zero outside the chunk; persons). Whole kecamatan keep KK serials and most birth
    cells, namesakes and moves of a place inside one chunk."""
    w = wilayah()
    rng = np.random.default_rng([seed, 0])
    kw = kelurahan_weights(rng, w.kel)
    kec_of = w.kel.kec_idx.values
    kec_w = np.bincount(kec_of, weights=kw, minlength=len(w.kec))
    expected = persons * kec_w / kec_w.sum()
    groups: list[list[int]] = []
    cur: list[int] = []
    acc = 0.0
    least = max(MIN_CHUNK_PERSONS, chunk_persons / 2)  # no small chunk (Kepulauan Seribu, the last)
    for k in range(len(w.kec)):
        if cur and acc >= least and acc + expected[k] > chunk_persons:
            groups.append(cur)
            cur, acc = [], 0.0
        cur.append(k)
        acc += expected[k]
    if groups and acc < least:
        groups[-1] += cur
    else:
        groups.append(cur)
    share = np.array([kec_w[g].sum() for g in groups]) / kec_w.sum()
    counts = rng.multinomial(persons, share)
    return [
        (np.where(np.isin(kec_of, g), kw, 0.0), int(c)) for g, c in zip(groups, counts, strict=True)
    ]


def iter_chunks(persons: int, seed: int, snapshot: dt.date, chunk_persons: int | None):
    """The delivery chunk by chunk: (population, People, frames, facts) with record ids, row
    numbers and person keys continuing over the chunks (pidx and `hh` stay the chunk's own;
    People.hh_offset says where its households start). `chunk_persons` None: one chunk, the
    whole population (the generator before streaming, byte for byte)."""
    if persons < 100:
        raise ValueError("persons must be at least 100")
    if chunk_persons is None:
        yield _build_chunk(persons, np.random.default_rng(seed), snapshot)
        return
    plan = chunk_plan(persons, seed, chunk_persons)
    rows_total = persons + sum(max(GHOST_MIN, int(round(n * GHOST_RATE))) for _, n in plan)
    serials = SerialCounter()
    before = {"persons": 0, "ghosts": 0, "hh": 0}
    ids: dict[str, int] = {}
    rows: dict[str, int] = {}
    for i, (kw, n) in enumerate(plan):
        chunk = Chunk(kw, persons, rows_total, before["persons"], before["ghosts"], serials)
        rng = np.random.default_rng([seed, i + 1])
        pop, P, frames, facts = _build_chunk(n, rng, snapshot, chunk, ids, quarantine=i == 0)
        P.hh_offset = before["hh"]
        for name, df in frames.items():
            df["row_number"] += rows.get(name, 0)
            rows[name] = rows.get(name, 0) + len(df)
            ids[name] = ids.get(name, 0) + int((df.quarantine.values == "").sum())
        ghost = P.a["is_ghost"]
        before["persons"] += int((~ghost).sum())
        before["ghosts"] += int(ghost.sum())
        before["hh"] += int(P.a["hh"].max()) + 1
        yield pop, P, frames, facts


def _chunked(persons: int, chunk_persons: int | None) -> int | None:
    return chunk_persons if chunk_persons is not None and persons > chunk_persons else None


def build(
    persons: int,
    seed: int,
    snapshot: dt.date = dt.date(2026, 11, 1),
    chunk_persons: int | None = None,
):
    """Everything in memory: (population, People, {source: canonical frame}, facts). With
    `chunk_persons`, the chunks `generate` streamed, joined (next_month continues a delivery in
    memory)."""
    parts = list(iter_chunks(persons, seed, snapshot, _chunked(persons, chunk_persons)))
    if len(parts) == 1:
        return parts[0]
    pops: list[pd.DataFrame] = []
    frames: dict[str, list[pd.DataFrame]] = {}
    p0 = 0
    for pop, P, fr, _ in parts:
        pop = pop.copy()
        pop["hh"] += P.hh_offset
        pop["hh_start"] += p0
        pop["namesake_of"] = np.where(pop.namesake_of.values >= 0, pop.namesake_of.values + p0, -1)
        pops.append(pop)
        for name, df in fr.items():
            df = df.copy()
            df["pidx"] = np.where(df.pidx.values >= 0, df.pidx.values + p0, -1)
            frames.setdefault(name, []).append(df)
        p0 += len(pop)
    pop = pd.concat(pops, ignore_index=True)
    P = synth_sources.People(pop, snapshot)
    joined = {k: pd.concat(v, ignore_index=True) for k, v in frames.items()}
    facts = synth_truth.person_facts(
        [(synth_sources.SPEC[k], v) for k, v in joined.items()], P.n, P.a["tanggal_lahir"], snapshot
    )
    return pop, P, joined, facts


RECIPE_PREFIX = "# recipe: "


def generate(
    persons: int,
    seed: int,
    out: Path,
    snapshot_date: dt.date = dt.date(2026, 11, 1),
    chunk_persons: int = CHUNK_PERSONS,
) -> dict:
    """Write a complete data directory (sources.yaml + files) and its ground truth (out/truth/).
    Above `chunk_persons` persons the population is built and written a group of kecamatan at a
    time (memory bounded by the chunk, not the population); at or below it, in one piece."""
    t0 = time.perf_counter()
    chunked = _chunked(persons, chunk_persons)
    recipe: dict = {
        "persons": persons,
        "seed": seed,
        "snapshot_date": snapshot_date.isoformat(),
        "months": [],
    }
    if chunked is not None:
        recipe["chunk_persons"] = chunked
    header = (
        "# Synthetic delivery generated by satudata_pipeline.synthetic "
        f"(persons={persons}, seed={seed}). Ground truth in truth/ (not a source).\n"
    )
    writer = DeliveryWriter(Path(out), snapshot_date, header, recipe)
    for _pop, P, frames, facts in iter_chunks(persons, seed, snapshot_date, chunked):
        writer.add(P, frames, facts)
        del _pop, P, frames, facts
    summary = writer.close()
    if chunked is not None:
        summary["chunks"] = writer.chunks
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary


def write_delivery(
    out: Path,
    P: synth_sources.People,
    frames: dict,
    facts: synth_truth.Facts,
    snapshot_date: dt.date,
    header: str,
    recipe: dict,
) -> dict:
    """Write the files, sources.yaml (with the recipe that rebuilds this delivery, for next_month)
    and the ground truth of one delivery held in memory; returns its summary."""
    writer = DeliveryWriter(out, snapshot_date, header, recipe)
    writer.add(P, frames, facts)
    return writer.close()


class DeliveryWriter:
    """A delivery written chunk by chunk: every source file, truth/records.csv, verdicts.csv and
    persons.parquet appended per chunk; eligible_not_enrolled.csv (sorted over all) and
    sources.yaml at close. One chunk gives the bytes of the in-memory writer."""

    def __init__(self, out: Path, snapshot_date: dt.date, header: str, recipe: dict):
        self.out, self.snapshot_date, self.header, self.recipe = out, snapshot_date, header, recipe
        out.mkdir(parents=True, exist_ok=True)
        (out / "truth").mkdir(exist_ok=True)
        self.sources = {
            s.name: synth_sources.SourceWriter(s, out, [c for c, _ in s.cols])
            for s in synth_sources.SPECS
        }
        truth = out / "truth"
        self.records = synth_sources.CsvAppender(
            truth / "records.csv", RECORD_COLUMNS, ",", "utf-8"
        )
        self.verdicts = synth_sources.CsvAppender(
            truth / "verdicts.csv", VERDICT_COLUMNS, ",", "utf-8"
        )
        self.persons = synth_sources.ParquetAppender(truth / "persons.parquet")
        self.ene: list[pd.DataFrame] = []
        self.rows = {s.name: 0 for s in synth_sources.SPECS}
        self.n_persons = self.ghosts_in_rosters = self.quarantine_rows = 0
        self.verdict_counts: dict[str, int] = {}
        self.chunks = 0

    def add(self, P: synth_sources.People, frames: dict, facts: synth_truth.Facts) -> None:
        keys = P.a["person_key"]
        for spec in synth_sources.SPECS:
            df = frames[spec.name]
            self.sources[spec.name].add(synth_sources.file_frame(spec, df))
            self.rows[spec.name] += len(df)
        rec = []
        for spec in synth_sources.SPECS:
            df = frames[spec.name]
            p = df.pidx.values
            rec.append(
                pd.DataFrame(
                    {
                        "source": spec.name,
                        "row_number": df.row_number.values,
                        "record_id": df.record_id.values,
                        "person_key": np.where(p >= 0, keys[np.maximum(p, 0)], ""),
                        "expected_quarantine": df.quarantine.values,
                        "nik_noise": np.where(p >= 0, df.nik_noise.values, ""),
                    }
                )
            )
        records = pd.concat(rec, ignore_index=True)
        self.records.add(records)
        self.quarantine_rows += int((records.expected_quarantine != "").sum())
        del rec, records
        a = P.a
        flags = {
            "unregistered_death": ~np.isnat(a["tanggal_meninggal"]) & ~facts.dead,
            "unregistered_move_out": a["moved_out"] & ~facts.moved_out,
            "not_in_any_registry": a["is_ghost"],
        }
        rosters = [(synth_sources.SPEC[name], frames[name]) for _, name in ROSTER_ORDER]
        ver = synth_truth.verdicts(rosters, facts, keys, flags)
        self.verdicts.add(ver)
        self.ghosts_in_rosters += int(ver.true_state.str.contains("not_in_any_registry").sum())
        for k, v in ver.verdict.value_counts().items():
            self.verdict_counts[k] = self.verdict_counts.get(k, 0) + int(v)
        self.ene.append(synth_truth.eligible_not_enrolled(rosters, facts, keys, a["is_ghost"]))
        self.persons.add(_persons_table(P, facts))
        self.n_persons += int((~a["is_ghost"]).sum())
        self.chunks += 1

    def close(self) -> dict:
        for w in self.sources.values():
            w.close()
        self.records.close()
        self.verdicts.close()
        self.persons.close()
        ene = pd.concat(self.ene, ignore_index=True)
        if len(self.ene) > 1:
            ene = ene.sort_values(
                ["program", "desil", "age", "person_key"], kind="stable"
            ).reset_index(drop=True)
        synth_sources.write_csv(ene, self.out / "truth" / "eligible_not_enrolled.csv", ",", "utf-8")
        doc = {
            "snapshot_date": self.snapshot_date,
            "sources": [s.yaml_entry(self.snapshot_date) for s in synth_sources.SPECS],
        }
        header = self.header + RECIPE_PREFIX + json.dumps(self.recipe, sort_keys=True) + "\n"
        (self.out / "sources.yaml").write_text(
            header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        counts = sorted(self.verdict_counts.items(), key=lambda kv: -kv[1])
        return {
            "persons": self.n_persons,
            "ghosts_in_rosters": self.ghosts_in_rosters,
            "seed": self.recipe["seed"],
            "snapshot_date": self.snapshot_date.isoformat(),
            "rows": dict(self.rows),
            "quarantine_rows": self.quarantine_rows,
            "verdicts": dict(counts),
            "eligible_not_enrolled": int(len(ene)),
        }


RECORD_COLUMNS = [
    "source",
    "row_number",
    "record_id",
    "person_key",
    "expected_quarantine",
    "nik_noise",
]
VERDICT_COLUMNS = [
    "program",
    "source",
    "row_number",
    "record_id",
    "person_key",
    "verdict",
    "reasons",
    "true_state",
    "nominal_bulanan",
]


def _persons_table(P: synth_sources.People, facts: synth_truth.Facts) -> pa.Table:
    kel = wilayah().kel
    a = P.a
    cols = {
        "person_key": a["person_key"],
        "is_ghost": a["is_ghost"],
        "nik": a["nik"],
        "no_kk": a["no_kk"],
        "household": a["hh"] + P.hh_offset,
        "role": a["role"],
        "name_group": a["group"],
        "nama": a["nama"],
        "nama_alt": a["nama_alt"],
        "jenis_kelamin": a["jenis_kelamin"],
        "tanggal_lahir": a["tanggal_lahir"],
        "tempat_lahir": a["tempat_lahir"],
        "agama": a["agama"],
        "kode_kelurahan": kel.code.values[a["kel_idx"]],
        "alamat": a["alamat"],
        "rt": a["rt"],
        "rw": a["rw"],
        "desil": a["desil"],
        "disabilitas": a["disabilitas"],
        "punya_mobil": a["punya_mobil"],
        "njop_di_atas_1m": a["njop_di_atas_1m"],
        "tanggal_meninggal": a["tanggal_meninggal"],
        "death_registered": a["death_registered"],
        "tanggal_pindah_keluar": a["tanggal_pindah_keluar"],
        "kode_wilayah_tujuan": a["kode_wilayah_tujuan"],
        "move_out_registered": a["move_out_registered"],
        "tanggal_kembali": a["tanggal_kembali"],
        "moved_out": a["moved_out"],
        "tanggal_pindah_dalam": a["tanggal_pindah_dalam"],
        "move_within_registered": a["move_within_registered"],
        "prev_kode_kelurahan": kel.code.values[a["prev_kel_idx"]],
        # near-identical NIKs (docs/synthetic-data.md): the person whose name this one was made
        # compatible with, and how their NIKs differ (region, serial; dead / moved: a registered
        # death or move of a namesake of the living `namesake_of`); twins
        "namesake_of": np.where(
            a["namesake_of"] >= 0, a["person_key"][np.maximum(a["namesake_of"], 0)], ""
        ),
        "namesake_kind": a["namesake_kind"],
        "twin": a["twin"],
        # what the delivered sources say (perfect linkage)
        "age_at_snapshot": facts.age,
        "in_civil_registry": facts.has_civil,
        "in_welfare_registry": facts.has_welfare,
        "observed_deceased": facts.dead,
        "observed_moved_out": facts.moved_out,
        "observed_desil": np.where(facts.has_welfare, facts.desil, 0),
        "observed_asset_flag": facts.asset,
        "observed_disabilitas_any": facts.disab_any,
        "last_verified": facts.last_verified,
        "stale": facts.stale,
    }
    arrays = []
    for v in cols.values():
        v = np.asarray(v)
        if np.issubdtype(v.dtype, np.datetime64):
            arrays.append(pa.array(v.astype("datetime64[D]"), type=pa.date32()))
        elif v.dtype == object:
            arrays.append(pa.array(v, type=pa.string(), from_pandas=True))
        else:
            arrays.append(pa.array(v))
    return pa.Table.from_arrays(arrays, names=list(cols))
