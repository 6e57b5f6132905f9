"""The synthetic generator: valid NIKs, plausible proportions, determinism, and truth that matches
the delivered files exactly."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from satudata_pipeline.synthetic import generate
from satudata_pipeline.synthetic.generate import RECIPE_PREFIX, build, chunk_plan, write_delivery
from satudata_pipeline.synthetic.population import (
    OUTSIDE_REGIONS,
    SerialCounter,
    _nik_and_kk,
    wilayah,
)
from satudata_pipeline.synthetic.truth import PROGRAMS, REASON_CODES, REMOVE_REASONS

N = 1500
SEED = 424242
SNAPSHOT = dt.date(2026, 11, 1)
REQUIRED = {
    "civil_registry": {"record_id", "nama"},
    "death_registry": {"record_id", "nama", "tanggal_meninggal"},
    "migration_registry": {"record_id", "nama", "tanggal_pindah", "kode_wilayah_tujuan"},
    "welfare_registry": {"record_id", "nama"},
    "program_roster": {"record_id", "nama"},
}


# "whole": the population in one piece (as the shipped sample); "chunked": streamed a group of
# kecamatan at a time (as generate does above CHUNK_PERSONS), here N_CHUNKED persons in chunks of
# about CHUNK: every test below holds for both.
N_CHUNKED, CHUNK = 3000, 1500


@pytest.fixture(scope="module", params=[None, CHUNK], ids=["whole", "chunked"])
def chunk_persons(request) -> int | None:
    return request.param


@pytest.fixture(scope="module")
def n_persons(chunk_persons) -> int:
    return N if chunk_persons is None else N_CHUNKED


def _generate(d: Path, n: int, chunk_persons: int | None) -> dict:
    if chunk_persons is None:
        return generate(n, SEED, d, SNAPSHOT)
    return generate(n, SEED, d, SNAPSHOT, chunk_persons=chunk_persons)


@pytest.fixture(scope="module")
def out(tmp_path_factory, chunk_persons, n_persons) -> Path:
    d = tmp_path_factory.mktemp("synth") / "data"
    summary = _generate(d, n_persons, chunk_persons)
    assert summary["persons"] == n_persons
    assert summary.get("chunks", 1) == (1 if chunk_persons is None else 2)
    return d


@pytest.fixture(scope="module")
def cfg(out) -> dict:
    return yaml.safe_load((out / "sources.yaml").read_text(encoding="utf-8"))


def read_source(out: Path, s: dict) -> pd.DataFrame:
    path = out / s["path"]
    if path.suffix == ".csv":
        return pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            sep=s.get("delimiter", ","),
            encoding=s.get("encoding", "utf-8"),
        )
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_excel(path, dtype=object)


@pytest.fixture(scope="module")
def files(out, cfg) -> dict:
    return {s["name"]: read_source(out, s) for s in cfg["sources"]}


@pytest.fixture(scope="module")
def persons(out) -> pd.DataFrame:
    return pd.read_parquet(out / "truth" / "persons.parquet")


def test_sources_yaml_maps_only_existing_columns(cfg, files):
    assert cfg["snapshot_date"] == SNAPSHOT
    names = [s["name"] for s in cfg["sources"]]
    assert len(names) == len(set(names))
    kinds = {s["kind"] for s in cfg["sources"]}
    assert kinds == set(REQUIRED)
    for s in cfg["sources"]:
        df = files[s["name"]]
        assert REQUIRED[s["kind"]] <= set(s["columns"]), s["name"]
        for field, col in s["columns"].items():
            assert col in df.columns, (s["name"], field, col)
        assert (SNAPSHOT - s["extracted_at"]).days <= s["freshness_days"]
        if s["kind"] == "program_roster":
            assert s["program"] in PROGRAMS
        for field, mapping in s.get("values", {}).items():
            delivered = set(df[s["columns"][field]].astype(str))
            assert delivered <= set(map(str, mapping)), (s["name"], field)
        # every text date parses with the declared format
        for field in (
            "tanggal_lahir",
            "tanggal_meninggal",
            "tanggal_pindah",
            "tanggal_mulai",
            "tanggal_pemutakhiran",
        ):
            col = s["columns"].get(field)
            if col is None:
                continue
            v = df[col]
            if v.dtype == object:
                txt = v.dropna().astype(str)
                txt = txt[(txt != "") & ~txt.str.contains(":")]
                if len(txt):
                    pd.to_datetime(txt, format=s["date_format"])  # raises on a bad one
    fmts = {Path(s["path"]).suffix for s in cfg["sources"]}
    assert {".csv", ".parquet", ".xlsx"} <= fmts
    encs = {s.get("encoding") for s in cfg["sources"]}
    assert "utf-8-sig" in encs and ({"cp1252", "latin-1"} & encs)
    assert ";" in {s.get("delimiter") for s in cfg["sources"]}


def test_encodings_are_real(out, cfg):
    for s in cfg["sources"]:
        raw = (out / s["path"]).read_bytes()
        if s.get("encoding") == "utf-8-sig":
            assert raw.startswith(b"\xef\xbb\xbf")
        if s.get("encoding") in ("cp1252", "latin-1"):
            assert any(b > 127 for b in raw), (
                "a legacy-encoded file should carry non-ASCII characters"
            )
            raw.decode(s["encoding"])


def test_no_family_card_holds_one_name_twice(persons):
    """Two members of one household with one name (and one address) could not be told apart by any
    linkage; real family cards do not hold them (twins get different names), so neither does ours."""
    p = persons[~persons.is_ghost]
    assert not p.duplicated(["household", "nama"]).any()
    # the planted namesakes are still there (the collisions the verdict rules are tested on)
    assert (p.namesake_kind.fillna("") != "").sum() > 0


def test_nik_structure(persons):
    kec = set(wilayah().kec.digits)
    nik = persons.nik.astype(str)
    assert nik.str.fullmatch(r"\d{16}").all()
    assert nik.is_unique
    region = nik.str[:6]
    outside = region.str[:4].isin(list(OUTSIDE_REGIONS)) & region.str[4:].astype(int).between(1, 99)
    assert (region.isin(kec) | outside).all()
    assert outside.mean() > 0.05 and region.isin(kec).mean() > 0.6
    dob = pd.to_datetime(persons.tanggal_lahir)
    dd = nik.str[6:8].astype(int)
    female = persons.jenis_kelamin == "P"
    assert (dd[female] - 40 == dob.dt.day[female]).all()
    assert (dd[~female] == dob.dt.day[~female]).all()
    assert (nik.str[8:10].astype(int) == dob.dt.month).all()
    assert (nik.str[10:12].astype(int) == dob.dt.year % 100).all()
    assert (nik.str[12:] != "0000").all()
    kk = persons.no_kk.astype(str)
    assert kk.str.fullmatch(r"\d{16}").all()
    assert (persons.groupby("household").no_kk.nunique() == 1).all()


def test_proportions(persons, files, n_persons):
    p = persons[~persons.is_ghost]
    assert len(p) == n_persons
    assert 0.45 <= (p.jenis_kelamin == "L").mean() <= 0.55
    age = p.age_at_snapshot
    assert 0.18 <= (age < 15).mean() <= 0.34
    assert 0.05 <= (age >= 60).mean() <= 0.17
    assert 0.05 <= (age < 7).mean() <= 0.16
    assert 0.33 <= len(files["dtks"]) / n_persons <= 0.48
    assert 0.005 <= p.tanggal_meninggal.notna().mean() <= 0.05  # deaths over the 4-year window
    # very common first names repeat a lot, many single names
    first = p.nama.str.split().str[0]
    assert first.value_counts().iloc[0] >= 0.02 * len(p)
    assert (~p.nama.str.contains(" ")).mean() > 0.08


def test_truth_matches_files(out, cfg, files):
    rec = pd.read_csv(out / "truth" / "records.csv", dtype=str, keep_default_na=False)
    for s in cfg["sources"]:
        df = files[s["name"]]
        r = rec[rec.source == s["name"]]
        assert len(r) == len(df), s["name"]
        assert (r.row_number.astype(int).values == np.arange(1, len(df) + 1)).all()
        assert (r.record_id.values == df[s["columns"]["record_id"]].astype(str).values).all(), s[
            "name"
        ]
        q = r.expected_quarantine
        assert set(q) <= {"", "blank_name", "duplicate_record_id"}
        assert (r.person_key[q != ""] == "").all() and (r.person_key[q == ""] != "").all()
        name = df[s["columns"]["nama"]].fillna("").astype(str).str.strip().values
        assert (name[(q == "blank_name").values] == "").all()
        assert (name[(q != "blank_name").values] != "").all()
        ids = df[s["columns"]["record_id"]].astype(str)
        dup = ids.duplicated(keep=False).values
        assert (dup == (q == "duplicate_record_id").values).all(), s["name"]
    assert set(rec.source) == {s["name"] for s in cfg["sources"]}
    assert (rec.expected_quarantine != "").sum() >= 4


def test_verdicts_follow_the_rules(out, cfg, files, persons):
    ver = pd.read_csv(out / "truth" / "verdicts.csv", dtype=str, keep_default_na=False)
    rosters = [s for s in cfg["sources"] if s["kind"] == "program_roster"]
    assert len(ver) == sum(len(files[s["name"]]) for s in rosters)
    for s in rosters:
        v = ver[ver.source == s["name"]]
        assert (v.program == s["program"]).all()
        assert (
            v.record_id.values == files[s["name"]][s["columns"]["record_id"]].astype(str).values
        ).all()
    codes = ver.reasons.str.split(";").explode()
    assert set(codes[codes != ""]) <= set(REASON_CODES)
    assert set(codes[codes != ""]) == set(REASON_CODES), "every reason code should occur"
    for reasons, verdict in zip(ver.reasons, ver.verdict):
        lst = reasons.split(";") if reasons else []
        assert lst == sorted(lst)
        if any(c in ("age_ineligible", "duplicate_enrollment") for c in lst):
            assert verdict == "remove"
        elif any(c in REMOVE_REASONS for c in lst):
            # a death or move the roster contradicts (enrolled or verified after it) is reviewed
            assert verdict in ("remove", "review")
        elif lst:
            assert verdict == "review"
        else:
            assert verdict == "keep"
        if "identity_unresolved" in lst:
            assert lst == ["identity_unresolved"]
    assert (ver.verdict == "keep").mean() > 0.5
    ghosts = set(persons.person_key[persons.is_ghost])
    assert (ver.person_key.isin(ghosts) == (ver.reasons == "identity_unresolved")).all()
    # KJP amounts by jenjang
    kjp = next(s for s in rosters if s["program"] == "KJP")
    f = files[kjp["name"]]
    amount = {"SD": 250000, "SMP": 300000, "SMA": 420000, "SMK": 450000, "PKBM": 300000}
    assert (
        f[kjp["columns"]["jenjang"]].map(amount) == f[kjp["columns"]["nominal_bulanan"]].astype(int)
    ).all()


def test_eligible_not_enrolled(out):
    ene = pd.read_csv(out / "truth" / "eligible_not_enrolled.csv", dtype=str, keep_default_na=False)
    ver = pd.read_csv(out / "truth" / "verdicts.csv", dtype=str, keep_default_na=False)
    assert len(ene) > 0
    for prog, par in PROGRAMS.items():
        blocked = set(ver.person_key[ver.program.isin([prog, *par["excludes"]])])
        assert not (set(ene.person_key[ene.program == prog]) & blocked)
    assert ene.desil.astype(int).between(1, 4).all()


def test_deterministic(out, tmp_path, chunk_persons, n_persons):
    other = tmp_path / "again"
    _generate(other, n_persons, chunk_persons)
    a = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    b = sorted(p.relative_to(other) for p in other.rglob("*") if p.is_file())
    assert a == b
    for rel in a:
        assert (
            hashlib.sha256((out / rel).read_bytes()).digest()
            == hashlib.sha256((other / rel).read_bytes()).digest()
        ), rel


def test_streamed_files_hold_what_the_whole_delivery_written_at_once_holds(
    out, cfg, tmp_path, chunk_persons, n_persons
):
    """Streaming changes how the files are written, not what they hold: the chunks joined in memory
    (what next month continues) and written in one piece give the same sources and truth; csv
    sources byte for byte, truth lines in another order only (streamed: chunk after chunk)."""
    header = (out / "sources.yaml").read_text(encoding="utf-8").splitlines()
    recipe = json.loads(header[1].removeprefix(RECIPE_PREFIX))
    assert recipe.get("chunk_persons") == chunk_persons
    _pop, P, frames, facts = build(n_persons, SEED, SNAPSHOT, chunk_persons)
    whole = tmp_path / "whole"
    write_delivery(whole, P, frames, facts, SNAPSHOT, header[0] + "\n", recipe)
    assert (whole / "sources.yaml").read_bytes() == (out / "sources.yaml").read_bytes()
    for s in cfg["sources"]:
        a, b = out / s["path"], whole / s["path"]
        if a.suffix == ".csv":
            assert a.read_bytes() == b.read_bytes(), s["name"]
        else:
            pd.testing.assert_frame_equal(read_source(out, s), read_source(whole, s))
    for name in ("records.csv", "verdicts.csv", "eligible_not_enrolled.csv"):
        a = (out / "truth" / name).read_text(encoding="utf-8").splitlines()
        b = (whole / "truth" / name).read_text(encoding="utf-8").splitlines()
        assert a[0] == b[0] and len(a) == len(b) and sorted(a) == sorted(b), name
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "truth" / "persons.parquet"),
        pd.read_parquet(whole / "truth" / "persons.parquet"),
    )


def test_chunks_are_whole_kecamatan_and_nik_serials_continue_across_them(out, chunk_persons):
    """A chunk holds whole kecamatan (KK serials and most NIK cells stay inside it); the NIK
    serials of a cell split over chunks go on (0001 in one, 0002 in the next), never repeat."""
    if chunk_persons is None:
        pytest.skip("one chunk")
    plan = chunk_plan(N_CHUNKED, SEED, chunk_persons)
    assert len(plan) == 2 and sum(n for _, n in plan) == N_CHUNKED
    kel = wilayah().kel
    kec_sets = [set(kel.kec_idx.values[w > 0]) for w, _ in plan]
    assert not (kec_sets[0] & kec_sets[1]) and len(kec_sets[0] | kec_sets[1]) == len(wilayah().kec)
    p = pd.read_parquet(out / "truth" / "persons.parquet")
    kec_of = dict(zip(kel.code, kel.kec_idx, strict=True))
    chunk_of = p.prev_kode_kelurahan.map(kec_of).map(lambda k: 0 if k in kec_sets[0] else 1)
    # persons come chunk by chunk, households do not cross chunks
    assert chunk_of.is_monotonic_increasing and chunk_of.nunique() == 2
    assert (p.groupby("household").prev_kode_kelurahan.nunique() == 1).all()
    # (serials 1..k per cell over both chunks: test_nik_serial_restarts_per_region_and_birth_date)


def test_nik_serials_of_a_cell_go_on_in_the_next_chunk():
    """Two chunks with people of one NIK cell (region, birth date, sex): the second chunk's
    serials start after the first's (0001-0003, then 0004-0005), other cells start at 0001."""
    kel = wilayah().kel

    def chunk(regions: list[str], dobs: list[str]) -> pd.DataFrame:
        n = len(regions)
        return pd.DataFrame(
            {
                "nik_region": np.array(regions, dtype=object),
                "tanggal_lahir": np.array(dobs, dtype="datetime64[D]"),
                "jenis_kelamin": np.array(["P"] * n, dtype=object),
                "prev_kel_idx": np.zeros(n, np.int64),
                "member": np.zeros(n, np.int64),
                "hh": np.arange(n),
            }
        )

    serials = SerialCounter()
    rng = np.random.default_rng(1)
    snap = np.datetime64("2026-11-01")
    a = chunk(["317101"] * 3 + ["317102"], ["2010-05-06"] * 3 + ["2010-05-06"])
    b = chunk(["317101"] * 2 + ["317101"], ["2010-05-06"] * 2 + ["2010-05-07"])
    for df in (a, b):
        _nik_and_kk(df, rng, kel, wilayah().kec, snap, serials)
    assert sorted(a.nik[:3]) == [f"317101460510{i:04d}" for i in (1, 2, 3)]
    assert a.nik[3] == "3171024605100001"
    assert sorted(b.nik[:2]) == [f"317101460510{i:04d}" for i in (4, 5)]
    assert b.nik[2] == "3171014705100001"


def test_truth_uses_the_parameters_of_the_program_rules():
    """The generator computes its expected verdicts on its own (an independent oracle), but from the
    same parameters as rules.yaml: a change to the rules must be made in both places."""
    from satudata_pipeline.contract.program_rules import load_rules
    from satudata_pipeline.synthetic.truth import PROGRAMS, STALE_MONTHS

    rules = load_rules()
    assert STALE_MONTHS == rules.common.staleness_months
    for code, par in PROGRAMS.items():
        rule = rules.program(code)
        assert par["min_age"] == (rule.age.min if rule.age and rule.age.min is not None else 0), (
            code
        )
        assert par["max_age"] == (rule.age.max if rule.age else None), code
        assert par["desil_max"] == rules.effective(code)["desil_max"], code
        assert set(par["excludes"]) == set(rule.excludes), code
        assert par["disability"] == bool(rule.requires_disability), code


# --- NIKs made the way Dukcapil makes them, and the namesakes they bring (issue 14) ---------------


def _dki(nik: pd.Series) -> pd.Series:
    return nik.str[:2] == "31"


def test_nik_region_is_the_kecamatan_of_registration(persons):
    p = persons[~persons.is_ghost & _dki(persons.nik) & (persons.tempat_lahir == "JAKARTA")]
    region = p.nik.str[:6]
    now = p.kode_kelurahan.str.replace(".", "", regex=False).str[:6]
    before = p.prev_kode_kelurahan.str.replace(".", "", regex=False).str[:6]
    moved = p.tanggal_pindah_dalam.notna()
    assert moved.sum() >= 20
    # most are registered where they lived; a move within DKI keeps the old kecamatan's digits
    assert 0.55 <= (region == now)[~moved].mean() <= 0.85
    assert 0.55 <= (region == before)[moved].mean() <= 0.85
    assert (region == now)[moved].mean() <= 0.2


def test_nik_serial_restarts_per_region_and_birth_date(persons):
    nik = persons.nik.astype(str)
    cell = nik.str[:12]
    serial = nik.str[12:].astype(int)
    # serials of one (region, DDMMYY) cell are exactly 1..k
    g = serial.groupby(cell)
    assert (g.min() == 1).all() and (g.max() == g.size()).all() and (g.nunique() == g.size()).all()
    counts = serial.value_counts()
    assert counts.idxmax() == 1
    assert counts.get(1) > 2 * counts.get(2, 0) > 0
    assert (counts.sort_index().diff().dropna() <= 0).all()  # 0001 >= 0002 >= 0003 ...


def test_the_three_collision_classes_are_present(persons):
    p = persons[_dki(persons.nik)].copy()
    p["rest"], p["region"], p["cell"] = p.nik.str[6:], p.nik.str[:6], p.nik.str[:12]
    # (a) born the same day in different kecamatan: NIKs differ only in the region digits
    a = p.groupby("rest").region.nunique()
    assert (a > 1).sum() >= 5
    # (b) serials 0001 / 0002 of one region and birth date, twins among them
    b = p.groupby("cell").size()
    assert (b > 1).sum() >= 5
    twins = persons[persons.twin]
    assert len(twins) >= 2
    assert (twins.groupby("household").tanggal_lahir.nunique() == 1).all()
    # (c) namesakes: one name contained in the other's (SRI / SRI MARYATI), same birth date and sex
    ns = persons[persons.namesake_of != ""]
    assert set(ns.namesake_kind) >= {"region", "serial", "dead", "moved"}
    anchor = persons.set_index("person_key").loc[ns.namesake_of]
    assert (anchor.tanggal_lahir.values == ns.tanggal_lahir.values).all()
    assert (anchor.jenis_kelamin.values == ns.jenis_kelamin.values).all()
    first = lambda s: s.str.split().str[0].values  # noqa: E731
    assert (first(anchor.nama) == first(ns.nama)).all()
    a_words, n_words = anchor.nama.str.split().map(set).values, ns.nama.str.split().map(set).values
    contained = np.array([x <= y or y <= x for x, y in zip(a_words, n_words)])
    assert contained.sum() >= 5
    assert (ns.nik.values != anchor.nik.values).all()


def _digits_apart(x: str, y: str) -> int:
    return sum(a != b for a, b in zip(x, y))


def test_dead_namesakes_of_living_recipients_do_not_remove_them(out, persons):
    rec = pd.read_csv(out / "truth" / "records.csv", dtype=str, keep_default_na=False)
    ver = pd.read_csv(out / "truth" / "verdicts.csv", dtype=str, keep_default_na=False)
    by_key = persons.set_index("person_key")
    dead = persons[persons.namesake_kind == "dead"]
    assert len(dead) >= 3
    deaths = rec[rec.source == "dukcapil_kematian"]
    recipients = 0
    for _, d in dead.iterrows():
        living = by_key.loc[d.namesake_of]
        assert pd.isna(living.tanggal_meninggal) and not living.moved_out
        # its own valid NIK: same birth date digits, region one digit away or the serial differs
        assert d.nik[6:12] == living.nik[6:12] and d.nik != living.nik
        assert d.nik[:6] == living.nik[:6] or _digits_apart(d.nik[:6], living.nik[:6]) == 1
        # the death record is the namesake's, never the living person's
        assert (deaths.person_key == d.person_key).sum() == 1
        assert (deaths.person_key == d.namesake_of).sum() == 0
        rows = ver[ver.person_key == d.namesake_of]
        recipients += len(rows) > 0
        assert not rows.reasons.str.contains("deceased").any()
        assert not rows.reasons.str.contains("moved_out").any()
    assert recipients >= 1, "at least one living recipient has a dead namesake"
    assert min(_digits_apart(d.nik, by_key.loc[d.namesake_of].nik) for _, d in dead.iterrows()) == 1


# --- next month's delivery (issue 17) ---------------------------------------------------------
from satudata_pipeline.synthetic.next_month import CHANGE_KINDS, next_month  # noqa: E402


@pytest.fixture(scope="module")
def month1(out, tmp_path_factory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("synth") / "month1"
    return d, next_month(out, d)


def _records(d: Path) -> pd.DataFrame:
    return pd.read_csv(d / "truth" / "records.csv", dtype=str, keep_default_na=False)


def test_next_month_has_every_kind_of_change_and_about_two_percent_of_rows(cfg, month1):
    d, summary = month1
    changes = pd.read_csv(d / "truth" / "changes.csv", dtype=str, keep_default_na=False)
    counts = changes.kind.value_counts()
    for kind in CHANGE_KINDS:
        assert counts.get(kind, 0) >= 1, kind
    assert summary["changes"] == {k: int(counts.get(k, 0)) for k in CHANGE_KINDS}
    assert 0.01 <= summary["rows_changed_share"] <= 0.04
    assert summary["snapshot_date"] == "2026-12-01"
    cfg1 = yaml.safe_load((d / "sources.yaml").read_text(encoding="utf-8"))
    assert cfg1["snapshot_date"] == dt.date(2026, 12, 1)
    assert [s["name"] for s in cfg1["sources"]] == [s["name"] for s in cfg["sources"]]
    assert [s["columns"] for s in cfg1["sources"]] == [s["columns"] for s in cfg["sources"]]


def test_next_month_truth_is_consistent_with_its_changes(out, cfg, month1):
    d, _ = month1
    changes = pd.read_csv(d / "truth" / "changes.csv", dtype=str, keep_default_na=False)
    before, after = _records(out), _records(d)
    key = ["source", "record_id"]
    old_ids = set(map(tuple, before[key].values))
    new_ids = set(map(tuple, after[key].values))
    added = {
        tuple(r)
        for r in changes[
            changes.kind.isin(["birth", "move_in", "death", "move_out", "enrollment"])
        ][key].values
    }
    added |= {
        tuple(r)
        for r in changes[(changes.kind == "move_within") & (changes.source == "dukcapil_pindah")][
            key
        ].values
    }
    exits = {tuple(r) for r in changes[changes.kind == "exit"][key].values}
    assert new_ids - old_ids == added  # every new row is a listed change, and vice versa
    assert old_ids - new_ids == exits  # only exits leave the delivery
    persons = pd.read_parquet(d / "truth" / "persons.parquet").set_index("person_key")
    start, end = np.datetime64("2026-11-01"), np.datetime64("2026-12-01")
    dead = persons.loc[changes[changes.kind == "death"].person_key, "tanggal_meninggal"].values
    assert ((dead > start) & (dead <= end)).all()
    born = persons.loc[changes[changes.kind == "birth"].person_key]
    assert ((born.tanggal_lahir.values > start) & (born.tanggal_lahir.values <= end)).all()
    assert (born.in_civil_registry.values).all()
    gone = persons.loc[changes[changes.kind == "move_out"].person_key]
    assert gone.observed_moved_out.all()
    # the truth of the new month follows from the new files (same checks as for a first delivery)
    files1 = {
        s["name"]: read_source(d, s)
        for s in yaml.safe_load((d / "sources.yaml").read_text(encoding="utf-8"))["sources"]
    }
    for name, df in files1.items():
        assert len(after[after.source == name]) == len(df), name
    ver = pd.read_csv(d / "truth" / "verdicts.csv", dtype=str, keep_default_na=False)
    enrolled = changes[changes.kind == "enrollment"]
    assert set(map(tuple, enrolled[key].values)) <= set(map(tuple, ver[key].values))


def test_next_month_keeps_unchanged_rows_as_they_were(out, cfg, month1):
    d, _ = month1
    changes = pd.read_csv(d / "truth" / "changes.csv", dtype=str, keep_default_na=False)
    for s in cfg["sources"]:
        if not s["path"].endswith(".csv"):
            continue
        a, b = read_source(out, s), read_source(d, s)
        rid = s["columns"]["record_id"]
        touched = set(changes[changes.source == s["name"]].record_id)
        keep_a = a[~a[rid].astype(str).isin(touched)]
        keep_b = b[b[rid].astype(str).isin(set(keep_a[rid].astype(str)))]
        assert len(keep_a) > 0.9 * len(a), s["name"]
        pd.testing.assert_frame_equal(keep_a.reset_index(drop=True), keep_b.reset_index(drop=True))


def test_next_month_deterministic_chained_and_refuses_an_edited_delivery(out, month1, tmp_path):
    d, _ = month1
    again = tmp_path / "again"
    next_month(out, again)
    for p in sorted(x for x in d.rglob("*") if x.is_file()):
        assert p.read_bytes() == (again / p.relative_to(d)).read_bytes(), p.name
    other = tmp_path / "other_seed"
    next_month(out, other, seed=99)
    assert (other / "truth" / "changes.csv").read_bytes() != (
        d / "truth" / "changes.csv"
    ).read_bytes()
    month2 = next_month(d, tmp_path / "month2")  # month 2 rebuilds month 1 from its recipe
    assert (
        month2["snapshot_date"] == "2027-01-01" and month2["previous_snapshot_date"] == "2026-12-01"
    )
    rec = (d / "truth" / "records.csv").read_text(encoding="utf-8").splitlines()
    edited = tmp_path / "edited"
    import shutil

    shutil.copytree(d, edited)
    (edited / "truth" / "records.csv").write_text("\n".join(rec[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="does not match its recipe"):
        next_month(edited, tmp_path / "nope")
