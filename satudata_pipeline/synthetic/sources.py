"""The delivered sources: which true persons each provider holds, how it renders them (noise), and the
file it writes (format, encoding, delimiter, date format, column names, codes).

Each builder returns a *canonical frame* (see truth.py) that the writer renders through its `Spec`.
Noise rates are module constants; change them here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from satudata_pipeline.contract.schema import BOOL_FIELDS, DATE_FIELDS
from satudata_pipeline.contract.sources import KIND_FIELDS, PERSON_FIELDS, PERSON_KINDS

from . import noise as synth_noise
from .population import wilayah
from .truth import PROGRAMS, Facts, stale_boundary

DAY = np.timedelta64(1, "D")
NAT = np.datetime64("NaT")

# every canonical field a person-bearing source may map (the contract's, not a copy of them)
CANONICAL = set(PERSON_FIELDS) | {f for kind in PERSON_KINDS for f in KIND_FIELDS[kind]}

# ---------------------------------------------------------------------------------------------
# Noise profiles (per-row probabilities). "clean" = Dukcapil master data.
NOISE: dict[str, dict[str, Any]] = {
    "civil": dict(nik=(0, 0, 0), name={}, dob=(0, 0, 0), alamat=0.0),
    "death": dict(
        nik=(0.03, 0.01, 0.0),
        name=dict(alt=0.3, muhammad=0.1, typo=0.01, case=0.0, space=0.01),
        dob=(0.005, 0.003, 0.02),
        alamat=0.1,
    ),
    "migration": dict(
        nik=(0.005, 0.005, 0.0),
        name=dict(alt=0.2, muhammad=0.05, typo=0.01, space=0.01),
        dob=(0.005, 0.002, 0.0),
        alamat=0.1,
    ),
    "welfare": dict(
        nik=(0.05, 0.02, 0.006),
        name=dict(
            alt=0.5,
            muhammad=0.3,
            old=0.005,
            typo=0.02,
            swap=0.01,
            binti=0.02,
            title=0.04,
            case=0.03,
            space=0.02,
        ),
        dob=(0.01, 0.005, 0.01),
        alamat=0.3,
    ),
    "roster": dict(
        nik=(0.04, 0.015, 0.007),
        name=dict(
            alt=0.5,
            muhammad=0.35,
            old=0.005,
            typo=0.02,
            swap=0.01,
            binti=0.01,
            title=0.04,
            case=0.05,
            space=0.02,
        ),
        dob=(0.012, 0.005, 0.01),
        alamat=0.3,
    ),
}
KAJ_NIK_MISSING = 0.08  # infants often have no NIK yet on the roster
GHOST_NIK_MISSING = 0.25
PLACE_VARIANT_RATE = 0.12  # names of kelurahan/kecamatan in a spelling variant
KOTA_VARIANT_RATE = 0.5  # kota in another of its common forms
RT_PAD_OTHER_RATE = 0.15

# Welfare registries
DTKS_INCLUSION_BY_DESIL = (0.78, 0.76, 0.74, 0.72, 0.45, 0.40, 0.12, 0.10, 0.03, 0.02)
DTKS_MEMBER_RATE = 0.95
DTKS_RECENT_RATE = 0.85  # households verified within the last 12 months
DTKS_DUPLICATE_RATE = 0.01  # same person twice (an older entry with another id)
P3KE_INCLUSION = 0.55  # of desil 1-4 households
P3KE_MEMBER_RATE = 0.9
P3KE_RECENT_RATE = 0.45
P3KE_DUPLICATE_RATE = 0.005
DISABILITY_RECORDED = 0.9
DISABILITY_FALSE_POSITIVE = 0.003
ASSET_RECORDED = 0.9
DEAD_DROPPED_AFTER_UPDATE = 0.7  # a welfare row verified after the death is usually removed
GONE_DROPPED_AFTER_UPDATE = 0.6  # same for a move out of DKI
CIVIL_RECENT_RATE = 0.4  # civil rows touched within the last 12 months
ROSTER_RECENT_RATE = 0.55  # rosters with a verification column: verified within 12 months

# Quarantine: rows the pipeline must reject
QUARANTINE_BLANK_NAME = 2  # per affected source
QUARANTINE_DUPLICATE_PAIRS = 1
QUARANTINE_SOURCES = ("dukcapil_penduduk", "dtks", "p3ke")

# Rosters: base enrollment rate among eligible, and stale/wrong rows as a share of the base count.
ROSTERS: dict[str, Any] = {
    "KJP": dict(
        base=0.62,
        welloff=0.03,
        nowelfare=0.03,
        aged=0.03,
        dead=0.003,
        moved=0.01,
        ghost=0.01,
        dup=0.015,
        nodis=0.0,
        cross=0.0,
    ),
    "KJMU": dict(
        base=0.12,
        welloff=0.03,
        nowelfare=0.03,
        aged=0.03,
        dead=0.003,
        moved=0.015,
        ghost=0.01,
        dup=0.01,
        nodis=0.0,
        cross=0.03,
    ),
    "KAJ": dict(
        base=0.55,
        welloff=0.03,
        nowelfare=0.04,
        aged=0.03,
        dead=0.005,
        moved=0.01,
        ghost=0.01,
        dup=0.015,
        nodis=0.0,
        cross=0.0,
    ),
    "KLJ": dict(
        base=0.6,
        welloff=0.03,
        nowelfare=0.03,
        aged=0.02,
        dead=0.01,
        moved=0.01,
        ghost=0.01,
        dup=0.015,
        nodis=0.0,
        cross=0.0,
    ),
    "KPDJ": dict(
        base=0.7,
        welloff=0.03,
        nowelfare=0.03,
        aged=0.0,
        dead=0.01,
        moved=0.01,
        ghost=0.015,
        dup=0.015,
        nodis=0.04,
        cross=0.0,
    ),
}
KJP_AMOUNT = {"SD": 250_000, "SMP": 300_000, "SMA": 420_000, "SMK": 450_000, "PKBM": 300_000}
OTHER_AMOUNT = {"KJMU": 1_500_000, "KAJ": 300_000, "KLJ": 300_000, "KPDJ": 300_000}


# ---------------------------------------------------------------------------------------------
@dataclass
class Spec:
    name: str
    kind: str
    path: str
    cols: list[tuple[str, str]]  # (file column, field); canonical fields are mapped
    program: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    date_format: str = "%Y-%m-%d"
    sex: tuple[str, str] = ("L", "P")
    bools: dict[str, tuple[str, str]] = field(default_factory=dict)
    native_dates: bool = False
    extracted_days_before: int = 4
    freshness_days: int = 35

    def has(self, f: str) -> bool:
        return any(x == f for _, x in self.cols)

    @property
    def fmt(self) -> str:
        return Path(self.path).suffix.lstrip(".")

    def yaml_entry(self, snapshot: dt.date) -> dict:
        e: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.program:
            e["program"] = self.program
        e["path"] = self.path
        e["extracted_at"] = snapshot - dt.timedelta(days=self.extracted_days_before)
        e["freshness_days"] = self.freshness_days
        e["date_format"] = self.date_format
        if self.encoding:
            e["encoding"] = self.encoding
        if self.delimiter:
            e["delimiter"] = self.delimiter
        e["columns"] = {f: c for c, f in self.cols if f in CANONICAL}
        if self.has("jenis_kelamin") and self.sex != ("L", "P"):
            e["values"] = {"jenis_kelamin": {self.sex[0]: "L", self.sex[1]: "P"}}
        return e


SPECS = [
    Spec(
        "dukcapil_penduduk",
        "civil_registry",
        "dukcapil_penduduk.csv",
        [
            ("ID_PENDUDUK", "record_id"),
            ("NIK", "nik"),
            ("NO_KK", "no_kk"),
            ("NAMA_LGKP", "nama"),
            ("JENIS_KLMIN", "jenis_kelamin"),
            ("TMPT_LHR", "tempat_lahir"),
            ("TGL_LHR", "tanggal_lahir"),
            ("AGAMA", "agama"),
            ("STAT_HBKEL", "role"),
            ("ALAMAT", "alamat"),
            ("NO_RT", "rt"),
            ("NO_RW", "rw"),
            ("KODE_KEL", "kode_kelurahan"),
            ("NAMA_KEL", "kelurahan"),
            ("NAMA_KEC", "kecamatan"),
            ("NAMA_KAB", "kota"),
            ("TGL_UPDATE", "tanggal_pemutakhiran"),
        ],
        encoding="utf-8",
        delimiter=",",
        date_format="%d-%m-%Y",
        sex=("LAKI-LAKI", "PEREMPUAN"),
        extracted_days_before=4,
    ),
    Spec(
        "dukcapil_kematian",
        "death_registry",
        "dukcapil_kematian.csv",
        [
            ("NO_AKTA", "record_id"),
            ("NIK", "nik"),
            ("NAMA", "nama"),
            ("JK", "jenis_kelamin"),
            ("TGL_LAHIR", "tanggal_lahir"),
            ("TGL_MATI", "tanggal_meninggal"),
            ("TEMPAT_MATI", "tempat_mati"),
            ("KODE_WIL", "kode_kelurahan"),
            ("TGL_LAPOR", "tanggal_pemutakhiran"),
        ],
        encoding="utf-8",
        delimiter=";",
        date_format="%Y%m%d",
        extracted_days_before=4,
    ),
    Spec(
        "dukcapil_pindah",
        "migration_registry",
        "dukcapil_pindah.parquet",
        [
            ("no_skpwni", "record_id"),
            ("nik", "nik"),
            ("nama_lengkap", "nama"),
            ("jenis_kelamin", "jenis_kelamin"),
            ("tgl_lahir", "tanggal_lahir"),
            ("alamat_asal", "alamat"),
            ("kode_kel_asal", "kode_kelurahan"),
            ("tgl_pindah", "tanggal_pindah"),
            ("kode_wilayah_tujuan", "kode_wilayah_tujuan"),
            ("alasan_pindah", "alasan"),
            ("tgl_update", "tanggal_pemutakhiran"),
        ],
        date_format="%Y-%m-%d",
        native_dates=True,
        extracted_days_before=4,
    ),
    Spec(
        "dtks",
        "welfare_registry",
        "dtks_dki.csv",
        [
            ("IDDTKS", "record_id"),
            ("NIK", "nik"),
            ("NOKK", "no_kk"),
            ("NAMA", "nama"),
            ("JENIS_KELAMIN", "jenis_kelamin"),
            ("TEMPAT_LAHIR", "tempat_lahir"),
            ("TANGGAL_LAHIR", "tanggal_lahir"),
            ("ALAMAT", "alamat"),
            ("RT", "rt"),
            ("RW", "rw"),
            ("KODE_WILAYAH", "kode_kelurahan"),
            ("KELURAHAN", "kelurahan"),
            ("KECAMATAN", "kecamatan"),
            ("KABUPATEN", "kota"),
            ("DESIL", "desil"),
            ("DISABILITAS", "disabilitas"),
            ("KEPEMILIKAN_MOBIL", "punya_mobil"),
            ("NJOP_DIATAS_1M", "njop_di_atas_1m"),
            ("STATUS_DTKS", "status"),
            ("TGL_PEMUTAKHIRAN", "tanggal_pemutakhiran"),
        ],
        encoding="cp1252",
        delimiter=",",
        date_format="%d/%m/%Y",
        sex=("1", "2"),
        bools={
            "disabilitas": ("Ya", "Tidak"),
            "punya_mobil": ("Y", "T"),
            "njop_di_atas_1m": ("Ya", "Tidak"),
        },
        extracted_days_before=9,
    ),
    Spec(
        "p3ke",
        "welfare_registry",
        "p3ke_dki.csv",
        [
            ("id_individu", "record_id"),
            ("nik", "nik"),
            ("no_kk", "no_kk"),
            ("nama_lengkap", "nama"),
            ("jenis_kelamin", "jenis_kelamin"),
            ("tgl_lahir", "tanggal_lahir"),
            ("alamat", "alamat"),
            ("rt", "rt"),
            ("rw", "rw"),
            ("kelurahan", "kelurahan"),
            ("kecamatan", "kecamatan"),
            ("kabupaten_kota", "kota"),
            ("desil_kesejahteraan", "desil"),
            ("penyandang_disabilitas", "disabilitas"),
            ("memiliki_mobil", "punya_mobil"),
            ("njop_lebih_1m", "njop_di_atas_1m"),
            ("tanggal_pemutakhiran", "tanggal_pemutakhiran"),
        ],
        encoding="utf-8-sig",
        delimiter=";",
        date_format="%Y-%m-%d",
        sex=("Laki-laki", "Perempuan"),
        bools={
            "disabilitas": ("1", "0"),
            "punya_mobil": ("true", "false"),
            "njop_di_atas_1m": ("1", "0"),
        },
        extracted_days_before=12,
    ),
    Spec(
        "kjp_plus",
        "program_roster",
        "roster_kjp.csv",
        [
            ("No Registrasi", "record_id"),
            ("NIK Siswa", "nik"),
            ("Nama Siswa", "nama"),
            ("L/P", "jenis_kelamin"),
            ("Tempat Lahir", "tempat_lahir"),
            ("Tanggal Lahir", "tanggal_lahir"),
            ("Alamat", "alamat"),
            ("RT", "rt"),
            ("RW", "rw"),
            ("Kelurahan", "kelurahan"),
            ("Kecamatan", "kecamatan"),
            ("Wilayah", "kota"),
            ("Jenjang", "jenjang"),
            ("Nama Sekolah", "sekolah"),
            ("Nominal", "nominal_bulanan"),
            ("Tanggal Mulai", "tanggal_mulai"),
        ],
        program="KJP",
        encoding="utf-8",
        delimiter=",",
        date_format="%d/%m/%Y",
        extracted_days_before=6,
    ),
    Spec(
        "kjmu",
        "program_roster",
        "roster_kjmu.xlsx",
        [
            ("ID Penerima", "record_id"),
            ("NIK", "nik"),
            ("Nama Penerima", "nama"),
            ("Jenis Kelamin", "jenis_kelamin"),
            ("Tgl Lahir", "tanggal_lahir"),
            ("Perguruan Tinggi", "kampus"),
            ("Alamat", "alamat"),
            ("Kelurahan", "kelurahan"),
            ("Kecamatan", "kecamatan"),
            ("Kota", "kota"),
            ("Jenjang", "jenjang"),
            ("Nominal per Bulan", "nominal_bulanan"),
            ("TMT", "tanggal_mulai"),
            ("Tgl Verifikasi", "tanggal_pemutakhiran"),
        ],
        program="KJMU",
        date_format="%d-%m-%Y",
        native_dates=True,
        extracted_days_before=6,
    ),
    Spec(
        "kaj",
        "program_roster",
        "roster_kaj.csv",
        [
            ("id_kaj", "record_id"),
            ("nik_anak", "nik"),
            ("nama_anak", "nama"),
            ("jk", "jenis_kelamin"),
            ("tgl_lahir", "tanggal_lahir"),
            ("nama_ibu", "ibu"),
            ("alamat", "alamat"),
            ("rt", "rt"),
            ("rw", "rw"),
            ("kode_kelurahan", "kode_kelurahan"),
            ("nominal", "nominal_bulanan"),
            ("tgl_mulai", "tanggal_mulai"),
        ],
        program="KAJ",
        encoding="utf-8",
        delimiter=";",
        date_format="%d-%m-%Y",
        sex=("LK", "PR"),
        extracted_days_before=5,
    ),
    Spec(
        "klj",
        "program_roster",
        "roster_klj.parquet",
        [
            ("IDPENERIMA", "record_id"),
            ("NIK_LANSIA", "nik"),
            ("NAMA_LANSIA", "nama"),
            ("JENIS_KELAMIN", "jenis_kelamin"),
            ("TANGGAL_LAHIR", "tanggal_lahir"),
            ("ALAMAT_DOMISILI", "alamat"),
            ("RT", "rt"),
            ("RW", "rw"),
            ("KODE_KELURAHAN", "kode_kelurahan"),
            ("NOMINAL", "nominal_bulanan"),
            ("TMT_BANTUAN", "tanggal_mulai"),
            ("TGL_VERIFIKASI_LAPANGAN", "tanggal_pemutakhiran"),
        ],
        program="KLJ",
        date_format="%d/%m/%Y",
        sex=("1", "2"),
        extracted_days_before=5,
    ),
    Spec(
        "kpdj",
        "program_roster",
        "roster_kpdj.xlsx",
        [
            ("No. Registrasi", "record_id"),
            ("NIK", "nik"),
            ("Nama", "nama"),
            ("JK", "jenis_kelamin"),
            ("Tanggal Lahir", "tanggal_lahir"),
            ("Jenis Disabilitas", "jenis_disabilitas"),
            ("Alamat", "alamat"),
            ("Kel.", "kelurahan"),
            ("Kec.", "kecamatan"),
            ("Kota/Kab.", "kota"),
            ("Nominal", "nominal_bulanan"),
            ("Tanggal Mulai", "tanggal_mulai"),
            ("Tanggal Pemutakhiran", "tanggal_pemutakhiran"),
        ],
        program="KPDJ",
        date_format="%d-%m-%Y",
        extracted_days_before=5,
    ),
]
SPEC = {s.name: s for s in SPECS}

# How each source renders identity: noise profile, name/address case style, RT padding,
# kode_kelurahan dotted or not.
RENDER: dict[str, dict[str, Any]] = {
    "dukcapil_penduduk": dict(noise="civil", style="upper", pad=3, dotted=False, kota="official"),
    "dukcapil_kematian": dict(noise="death", style="upper", pad=3, dotted=False, kota="short"),
    "dukcapil_pindah": dict(noise="migration", style="upper", pad=3, dotted=True, kota="short"),
    "dtks": dict(noise="welfare", style="upper", pad=3, dotted=True, kota="short", dash=0.5),
    "p3ke": dict(noise="welfare", style="title", pad=0, dotted=True, kota="short"),
    "kjp_plus": dict(noise="roster", style="title", pad=2, dotted=True, kota="short"),
    "kjmu": dict(noise="roster", style="title", pad=0, dotted=True, kota="adm"),
    "kaj": dict(noise="roster", style="upper", pad=3, dotted=False, kota="short"),
    "klj": dict(noise="roster", style="upper", pad=3, dotted=True, kota="short"),
    "kpdj": dict(noise="roster", style="title", pad=0, dotted=False, kota="short"),
}


# ---------------------------------------------------------------------------------------------
class People:
    """Numpy views of the population for fast gathering."""

    def __init__(self, pop: pd.DataFrame, snapshot: dt.date):
        self.n = len(pop)
        self.snap = np.datetime64(snapshot, "D")
        self.snapshot = snapshot
        self.a = {}
        for c in pop.columns:
            v = pop[c].values
            if np.issubdtype(v.dtype, np.datetime64):
                v = v.astype("datetime64[D]")
            self.a[c] = v
        a = self.a
        heads = a["hh_start"]
        first = pd.Series(a["nama"][a["member"] == 0]).str.split(" ", n=1).str[0].values
        head_first = np.empty(self.n, dtype=object)
        head_first[a["member"] == 0] = first
        ayah = head_first[heads]
        # bin/binti + the father's name: children of a male head, in Muslim naming traditions
        father_ok = (a["jenis_kelamin"][heads] == "L") & ~np.isin(a["group"], ["batak", "tionghoa"])
        self.ayah = np.where((a["role"] == "ANAK") & father_ok, ayah, None)
        w = wilayah()
        self.kel = w.kel
        self.kel_variants = [synth_noise.name_variants(x) for x in w.kel.name]
        self.kec_variants = [synth_noise.name_variants(x) for x in w.kel.kec_name]
        self.kota_variants = [synth_noise.kota_variants(x) for x in w.kel.kota_name]
        self.age = (self.snap - a["tanggal_lahir"]).astype(np.int64) / 365.2425
        # per source, rows of the chunks written before (generate.py): record id serials go on
        self.id_offset: dict[str, int] = {}
        self.hh_offset = 0  # households of the chunks before (truth/persons.parquet)

    def __getitem__(self, k):
        return self.a[k]


def recent_or_old(rng, n, snap, recent_rate, old_max_years=5.0, recent_min=3) -> np.ndarray:
    recent = rng.random(n) < recent_rate
    d_recent = rng.integers(recent_min, 360, n)
    d_old = rng.integers(372, int(365 * old_max_years), n)
    return snap - np.where(recent, d_recent, d_old) * DAY


def nudge_boundary(d: np.ndarray, snapshot: dt.date) -> np.ndarray:
    """Keep verification dates away from the 12-month staleness boundary (+-2 days)."""
    b = stale_boundary(snapshot)
    near = (~np.isnat(d)) & (d >= b - 2 * DAY) & (d <= b + 2 * DAY)
    return np.where(near, b - 3 * DAY, d)


def zfill(num: np.ndarray, width: int) -> np.ndarray:
    """Numbers as zero-padded text (object array; also for none, as a small chunk may have)."""
    if not len(num):
        return np.zeros(0, dtype=object)
    return np.char.zfill(num.astype(str), width).astype(object)


def make_ids(rng, n: int, prefix, width: int, start: int = 1) -> np.ndarray:
    num = rng.permutation(n) + start
    return prefix + zfill(num, width)


def render_identity(P: People, pidx: np.ndarray, when: np.ndarray, source: str, rng) -> dict:
    """Identity and address fields of rows for persons `pidx`, as the source knows them at `when`."""
    r = RENDER[source]
    prof = NOISE[r["noise"]]
    n = len(pidx)
    a = P.a
    out: dict = {}
    # NIK
    size = a["hh_size"][pidx]
    other = (
        a["hh_start"][pidx]
        + (a["member"][pidx] + 1 + rng.integers(0, np.maximum(size - 1, 1))) % size
    )
    fam: np.ndarray = np.where(size > 1, a["nik"][other], None)  # type: ignore[assignment]  # numpy stubs reject None
    miss, typo, borrow = prof["nik"]
    if source == "kaj":
        miss = KAJ_NIK_MISSING
    ghost = a["is_ghost"][pidx]
    miss_v = np.where(ghost, GHOST_NIK_MISSING, miss)
    nik, status = synth_noise.nik_noise(a["nik"][pidx], fam, rng, 0.0, typo, borrow)
    m = (rng.random(n) < miss_v) & (status == "ok")
    nik[m] = None
    status[m] = "missing"
    out["nik"], out["nik_noise"] = nik, status
    out["no_kk"] = a["no_kk"][pidx]
    # name
    adult = P.age[pidx] >= 22
    out["nama"] = synth_noise.name_noise(
        a["nama"][pidx],
        rng,
        sex=a["jenis_kelamin"][pidx],
        adult=adult,
        alt=a["nama_alt"][pidx],
        parent=P.ayah[pidx],
        rates=prof["name"],
        style=r["style"],
    )
    if source == "dtks":  # the DTKS application stores typographic apostrophes
        s = pd.Series(out["nama"])
        out["nama"] = s.str.replace("'", "\u2019", regex=False).values
    out["jenis_kelamin"] = a["jenis_kelamin"][pidx]
    out["tempat_lahir"] = synth_noise.restyle(a["tempat_lahir"][pidx], rng, r["style"])
    dob, _tag = synth_noise.birth_date_noise(a["tanggal_lahir"][pidx], rng, *prof["dob"])
    out["tanggal_lahir"] = dob
    # address at `when`
    moved = a["tanggal_pindah_dalam"][pidx]
    before = (~np.isnat(moved)) & (when < moved)
    if source == "dukcapil_penduduk":
        before = (~np.isnat(moved)) & ~a["move_within_registered"][pidx]
    kel = np.where(before, a["prev_kel_idx"][pidx], a["kel_idx"][pidx]).astype(np.int64)
    alamat = np.where(before, a["prev_alamat"][pidx], a["alamat"][pidx])
    rt = np.where(before, a["prev_rt"][pidx], a["rt"][pidx])
    rw = np.where(before, a["prev_rw"][pidx], a["rw"][pidx])
    out["alamat"] = (
        synth_noise.alamat_noise(alamat, rng, prof["alamat"], r["style"], r.get("dash", 0.0))
        if prof["alamat"]
        else alamat
    )
    out["rt"] = synth_noise.pad(rt, rng, r["pad"], RT_PAD_OTHER_RATE if prof["alamat"] else 0.0)
    out["rw"] = synth_noise.pad(rw, rng, r["pad"], RT_PAD_OTHER_RATE if prof["alamat"] else 0.0)
    k = P.kel
    codes = (k.code if r["dotted"] else k.digits).values.astype(object)
    out["kode_kelurahan"] = codes[kel]
    vr = PLACE_VARIANT_RATE if prof["alamat"] else 0.0
    out["kelurahan"] = synth_noise.place_names(
        kel, k.name.values, P.kel_variants, rng, vr, r["style"], 0.05 if vr else 0.0
    )
    out["kecamatan"] = synth_noise.place_names(
        kel, k.kec_name.values, P.kec_variants, rng, vr, r["style"], 0.05 if vr else 0.0
    )
    kota_off = k.kota_name.str.upper().values
    base = {
        "official": kota_off,
        "short": np.array([v[0] for v in P.kota_variants], dtype=object),
        "adm": np.array([v[2] for v in P.kota_variants], dtype=object),
    }[r["kota"]]
    out["kota"] = synth_noise.place_names(
        kel,
        base,
        P.kota_variants,
        rng,
        KOTA_VARIANT_RATE if vr else 0.0,
        r["style"],
        0.05 if vr else 0.0,
    )
    return out


def frame(
    P: People, pidx: np.ndarray, when: np.ndarray, source: str, rng, extra: dict
) -> pd.DataFrame:
    d = render_identity(P, pidx, when, source, rng)
    d["pidx"] = pidx
    d.update(extra)
    df = pd.DataFrame(d)
    df["quarantine"] = ""
    return df


# --- civil, death, migration ------------------------------------------------------------------
def build_civil(P: People, rng) -> pd.DataFrame:
    a = P.a
    pidx = np.flatnonzero(~a["is_ghost"])
    n = len(pidx)
    dob = a["tanggal_lahir"][pidx]
    upd = recent_or_old(rng, n, P.snap, CIVIL_RECENT_RATE, old_max_years=14)
    upd = np.maximum(upd, dob + 7 * DAY)
    mv = a["tanggal_pindah_dalam"][pidx]
    reg = a["move_within_registered"][pidx]
    upd = np.where(reg & (upd < mv), mv + rng.integers(1, 20, n) * DAY, upd)
    upd = np.minimum(upd, P.snap - DAY)
    upd = nudge_boundary(upd, P.snapshot)
    rel = a["role"][pidx]
    rel = np.where(
        rel == "PASANGAN",
        np.where(a["jenis_kelamin"][pidx] == "P", "ISTRI", "SUAMI"),
        np.where(rel == "ORANG TUA", "FAMILI LAIN", rel),
    )
    df = frame(
        P,
        pidx,
        upd,
        "dukcapil_penduduk",
        rng,
        {
            "record_id": make_ids(
                rng, n, "", 10, 3100000001 + P.id_offset.get("dukcapil_penduduk", 0)
            ),
            "agama": a["agama"][pidx],
            "role": rel,
            "tanggal_pemutakhiran": upd,
        },
    )
    return df


def build_death(P: People, rng) -> pd.DataFrame:
    a = P.a
    pidx = np.flatnonzero(a["death_registered"])
    n = len(pidx)
    death = a["tanggal_meninggal"][pidx]
    lapor = np.minimum(death + rng.integers(1, 60, n) * DAY, P.snap - DAY)
    lapor = nudge_boundary(lapor, P.snapshot)
    y = (death.astype("datetime64[Y]").astype(int) + 1970).astype(str).astype(object)
    num = rng.permutation(n) + P.id_offset.get("dukcapil_kematian", 0)
    ids = "AKM-" + y + "-" + zfill(num, 6)
    place = np.array(["RUMAH", "RUMAH SAKIT", "PUSKESMAS", "LAINNYA"], dtype=object)[
        rng.choice(4, n, p=[0.45, 0.45, 0.05, 0.05])
    ]
    df = frame(
        P,
        pidx,
        death,
        "dukcapil_kematian",
        rng,
        {
            "record_id": ids,
            "tanggal_meninggal": death,
            "tempat_mati": place,
            "tanggal_pemutakhiran": lapor,
        },
    )
    m = rng.random(n) < 0.04  # "ALM." (almarhum/ah) in front of the name
    df.loc[m, "nama"] = "ALM. " + df.nama[m]
    return df


def build_migration(P: People, rng) -> pd.DataFrame:
    a = P.a
    parts = []
    # out of DKI
    p1 = np.flatnonzero(a["move_out_registered"])
    parts.append((p1, a["tanggal_pindah_keluar"][p1], a["kode_wilayah_tujuan"][p1], "out"))
    # back into DKI
    p2 = np.flatnonzero(~np.isnat(a["tanggal_kembali"]))
    parts.append(
        (p2, a["tanggal_kembali"][p2], P.kel.digits.values.astype(object)[a["kel_idx"][p2]], "back")
    )
    # within DKI
    p3 = np.flatnonzero(a["move_within_registered"])
    parts.append(
        (
            p3,
            a["tanggal_pindah_dalam"][p3],
            P.kel.digits.values.astype(object)[a["kel_idx"][p3]],
            "within",
        )
    )
    pidx = np.concatenate([p[0] for p in parts])
    when = np.concatenate([p[1] for p in parts]).astype("datetime64[D]")
    dest = np.concatenate([p[2] for p in parts])
    typ = np.concatenate([np.full(len(p[0]), p[3], dtype=object) for p in parts])
    n = len(pidx)
    upd = nudge_boundary(np.minimum(when + rng.integers(0, 15, n) * DAY, P.snap - DAY), P.snapshot)
    y = (when.astype("datetime64[Y]").astype(int) + 1970).astype(str).astype(object)
    num = rng.permutation(n) + P.id_offset.get("dukcapil_pindah", 0)
    ids = "SKPWNI/" + y + "/" + zfill(num, 7)
    reasons = np.array(
        ["PEKERJAAN", "PENDIDIKAN", "KEAMANAN", "KESEHATAN", "PERUMAHAN", "KELUARGA", "LAINNYA"],
        dtype=object,
    )[rng.choice(7, n, p=[0.35, 0.08, 0.01, 0.03, 0.25, 0.25, 0.03])]
    df = frame(
        P,
        pidx,
        when - DAY,
        "dukcapil_pindah",
        rng,
        {
            "record_id": ids,
            "tanggal_pindah": when,
            "kode_wilayah_tujuan": dest,
            "alasan": reasons,
            "tanggal_pemutakhiran": upd,
        },
    )
    df.loc[typ == "back", ["kode_kelurahan", "alamat"]] = None  # origin outside DKI
    return df


# --- welfare ----------------------------------------------------------------------------------
def _welfare_rows(
    P: People,
    rng,
    hh_mask: np.ndarray,
    member_rate: float,
    desil_rec: np.ndarray,
    upd_hh: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = P.a
    hh = a["hh"]
    take = hh_mask[hh] & (rng.random(P.n) < member_rate) & ~a["is_ghost"]
    pidx = np.flatnonzero(take)
    upd = upd_hh[hh[pidx]]
    upd = np.maximum(upd, a["tanggal_lahir"][pidx] + 7 * DAY)
    death = a["tanggal_meninggal"][pidx]
    drop = (~np.isnat(death)) & (death < upd) & (rng.random(len(pidx)) < DEAD_DROPPED_AFTER_UPDATE)
    gone = a["tanggal_pindah_keluar"][pidx]
    drop |= (
        a["moved_out"][pidx]
        & (~np.isnat(gone))
        & (gone < upd)
        & (rng.random(len(pidx)) < GONE_DROPPED_AFTER_UPDATE)
    )
    pidx, upd = pidx[~drop], upd[~drop]
    return pidx, upd, desil_rec[hh[pidx]]


def _welfare_flags(P: People, rng, pidx: np.ndarray) -> dict:
    a = P.a
    n = len(pidx)
    dis = (a["disabilitas"][pidx] & (rng.random(n) < DISABILITY_RECORDED)) | (
        rng.random(n) < DISABILITY_FALSE_POSITIVE
    )
    car = a["punya_mobil"][pidx] & (rng.random(n) < ASSET_RECORDED)
    njop = a["njop_di_atas_1m"][pidx] & (rng.random(n) < ASSET_RECORDED)
    return {"disabilitas": dis, "punya_mobil": car, "njop_di_atas_1m": njop}


def _with_duplicates(P, rng, source, pidx, upd, desil, rate, cap) -> tuple:
    k = int(round(len(pidx) * rate))
    di = rng.choice(len(pidx), k, replace=False) if k else np.zeros(0, np.int64)
    dup_upd = upd[di] - rng.integers(180, 1500, k) * DAY
    dup_desil = np.clip(desil[di] + rng.integers(-1, 2, k), 1, cap)
    return (
        np.concatenate([pidx, pidx[di]]),
        np.concatenate([upd, dup_upd]),
        np.concatenate([desil, dup_desil]),
    )


def build_dtks(P: People, rng) -> pd.DataFrame:
    a = P.a
    n_hh = int(a["hh"].max()) + 1
    hh_desil = np.zeros(n_hh, np.int64)
    hh_desil[a["hh"]] = a["desil"]
    inc = rng.random(n_hh) < np.asarray(DTKS_INCLUSION_BY_DESIL)[hh_desil - 1]
    noise = rng.choice([-2, -1, 0, 1, 2], n_hh, p=[0.03, 0.08, 0.78, 0.08, 0.03])
    rec = np.clip(hh_desil + noise, 1, 10)
    upd_hh = recent_or_old(rng, n_hh, P.snap, DTKS_RECENT_RATE, old_max_years=5)
    pidx, upd, desil = _welfare_rows(P, rng, inc, DTKS_MEMBER_RATE, rec, upd_hh)
    pidx, upd, desil = _with_duplicates(P, rng, "dtks", pidx, upd, desil, DTKS_DUPLICATE_RATE, 10)
    upd = nudge_boundary(upd, P.snapshot)
    n = len(pidx)
    kec = P.kel.digits.str[:6].values.astype(object)[a["kel_idx"][pidx]]
    num = rng.permutation(n) + P.id_offset.get("dtks", 0)
    ids = kec + zfill(num, 9)
    status = np.where(rng.random(n) < 0.97, "AKTIF", "PERLU VERIFIKASI").astype(object)
    extra = {"record_id": ids, "desil": desil, "tanggal_pemutakhiran": upd, "status": status}
    extra.update(_welfare_flags(P, rng, pidx))
    return frame(P, pidx, upd, "dtks", rng, extra)


def build_p3ke(P: People, rng) -> pd.DataFrame:
    a = P.a
    n_hh = int(a["hh"].max()) + 1
    hh_desil = np.zeros(n_hh, np.int64)
    hh_desil[a["hh"]] = a["desil"]
    inc = (hh_desil <= 4) & (rng.random(n_hh) < P3KE_INCLUSION)
    rec = np.clip(hh_desil + rng.choice([-1, 0, 1], n_hh, p=[0.1, 0.8, 0.1]), 1, 4)
    recent = rng.random(n_hh) < P3KE_RECENT_RATE
    old = np.datetime64("2022-06-01") + rng.integers(0, 580, n_hh) * DAY
    upd_hh = np.where(
        recent, P.snap - rng.integers(3, 360, n_hh) * DAY, np.minimum(old, P.snap - 400 * DAY)
    )
    pidx, upd, desil = _welfare_rows(P, rng, inc, P3KE_MEMBER_RATE, rec, upd_hh)
    pidx, upd, desil = _with_duplicates(P, rng, "p3ke", pidx, upd, desil, P3KE_DUPLICATE_RATE, 4)
    upd = nudge_boundary(upd, P.snapshot)
    n = len(pidx)
    num = rng.permutation(n) + P.id_offset.get("p3ke", 0)
    ids = "P3KE-" + zfill(num, 8)
    extra = {"record_id": ids, "desil": desil, "tanggal_pemutakhiran": upd}
    extra.update(_welfare_flags(P, rng, pidx))
    return frame(P, pidx, upd, "p3ke", rng, extra)


def untie_welfare(frames: dict) -> None:
    """Make 'the welfare row with the latest tanggal_pemutakhiran' unambiguous per person."""
    names = [k for k in ("dtks", "p3ke") if k in frames]
    for _ in range(10):
        parts = [
            pd.DataFrame(
                {
                    "src": k,
                    "i": np.arange(len(frames[k])),
                    "pidx": frames[k].pidx.values,
                    "t": frames[k].tanggal_pemutakhiran.values,
                }
            )
            for k in names
        ]
        w = pd.concat(parts, ignore_index=True)
        w = w[w.pidx >= 0]
        dup = w.duplicated(["pidx", "t"], keep="first")
        if not dup.any():
            return
        for k in names:
            sel = w[dup & (w.src == k)].i.values
            if len(sel):
                col = frames[k].columns.get_loc("tanggal_pemutakhiran")
                t = frames[k].tanggal_pemutakhiran.values.astype("datetime64[D]")
                t[sel] = t[sel] - DAY
                frames[k].iloc[:, col] = t
    raise RuntimeError("could not untie welfare verification dates")


# --- rosters ----------------------------------------------------------------------------------
def _choose(rng, mask: np.ndarray, k: float) -> np.ndarray:
    """k persons from mask; a positive rate always yields at least one (small samples show every case)."""
    idx = np.flatnonzero(mask)
    k = int(min(max(int(round(k)), 1 if k > 0 else 0), len(idx)))
    return np.sort(rng.choice(idx, k, replace=False)) if k else np.zeros(0, np.int64)


def select_roster(
    P: People,
    facts: Facts,
    code: str,
    rng,
    taken_ghosts: np.ndarray,
    kjp_persons: np.ndarray | None,
) -> np.ndarray:
    a = P.a
    par, rate = PROGRAMS[code], ROSTERS[code]
    age = facts.age
    lo, hi = par["min_age"], par["max_age"] if par["max_age"] is not None else 200
    in_kjp = np.zeros(P.n, bool)
    if kjp_persons is not None:
        in_kjp[kjp_persons] = True
    real = ~a["is_ghost"] & ~in_kjp  # KJMU and KJP exclude each other: only `cross` rows overlap
    year_ago = P.snap - 365 * DAY
    gone_long = ((~np.isnat(a["tanggal_meninggal"])) & (a["tanggal_meninggal"] < year_ago)) | (
        a["moved_out"] & (a["tanggal_pindah_keluar"] < year_ago)
    )
    age_ok = (age >= lo) & (age <= hi)
    dis = a["disabilitas"] if par["disability"] else np.ones(P.n, bool)
    poor = facts.has_welfare & (facts.desil >= 1) & (facts.desil <= par["desil_max"])
    base_pool = real & age_ok & dis & poor & ~gone_long
    # living namesakes of a dead or departed person are enrolled when eligible (population._namesakes)
    base = base_pool & ((rng.random(P.n) < rate["base"]) | a["namesake_anchor"])
    b = int(base.sum())
    chosen = [np.flatnonzero(base)]
    chosen.append(
        _choose(
            rng,
            real
            & age_ok
            & dis
            & facts.has_welfare
            & (facts.desil >= 5)
            & (facts.desil <= 8)
            & ~gone_long,
            rate["welloff"] * b,
        )
    )
    chosen.append(
        _choose(rng, real & age_ok & dis & ~facts.has_welfare & ~gone_long, rate["nowelfare"] * b)
    )
    if rate["aged"]:
        aged = (
            (age > hi) & (age <= hi + 2)
            if par["max_age"] is not None
            else (age >= lo - 3) & (age < lo)
        )
        chosen.append(_choose(rng, real & aged & dis & poor & ~gone_long, rate["aged"] * b))
    died = ~np.isnat(a["tanggal_meninggal"])
    chosen.append(_choose(rng, real & age_ok & dis & died & gone_long, rate["dead"] * b))
    chosen.append(_choose(rng, real & age_ok & dis & a["moved_out"] & gone_long, rate["moved"] * b))
    if rate["nodis"]:
        chosen.append(
            _choose(rng, real & age_ok & poor & ~a["disabilitas"] & ~gone_long, rate["nodis"] * b)
        )
    if rate["cross"]:
        chosen.append(_choose(rng, in_kjp & age_ok, rate["cross"] * b))
    free_ghost = a["is_ghost"].copy()
    free_ghost[taken_ghosts] = False
    k = max(1, int(round(rate["ghost"] * b)))
    g = _choose(rng, free_ghost & age_ok, k)
    if len(g) < k:
        g = np.concatenate([g, _choose(rng, free_ghost & ~age_ok & (age >= lo - 1), k - len(g))])
    chosen.append(g)
    persons = np.unique(np.concatenate(chosen))
    return persons


def build_roster(
    P: People, facts: Facts, code: str, source: str, persons: np.ndarray, rng
) -> pd.DataFrame:
    a = P.a
    par, rate = PROGRAMS[code], ROSTERS[code]
    n0 = len(persons)
    k = max(1, int(round(rate["dup"] * n0))) if rate["dup"] else 0
    real = np.flatnonzero(~a["is_ghost"][persons])
    dsel = (
        np.sort(rng.choice(real, min(k, len(real)), replace=False)) if k else np.zeros(0, np.int64)
    )
    pidx = np.concatenate([persons, persons[dsel]])
    n = len(pidx)
    dob = a["tanggal_lahir"][pidx]
    min_start = np.maximum(dob + int(par["min_age"] * 365.25 + 30) * DAY, P.snap - 6 * 365 * DAY)
    hi_age = par["max_age"] if par["max_age"] is not None else 200
    hi = np.minimum(P.snap - 20 * DAY, dob + int((hi_age + 1) * 365.25 - 30) * DAY)
    for ev in (
        a["tanggal_meninggal"][pidx],
        np.where(a["moved_out"][pidx], a["tanggal_pindah_keluar"][pidx], NAT),
    ):
        hi = np.where(np.isnat(ev), hi, np.minimum(hi, ev - 30 * DAY))
    hi = np.maximum(hi, min_start + DAY)
    span = (hi - min_start).astype(np.int64)
    mulai = min_start + (rng.random(n) * span).astype(np.int64) * DAY
    # the duplicate enrollment starts later than the row it duplicates
    d0 = mulai[dsel]
    mulai[n0:] = np.minimum(d0 + rng.integers(30, 700, len(dsel)) * DAY, P.snap - 5 * DAY)
    mulai[n0:] = np.maximum(mulai[n0:], d0 + DAY)
    extra: dict = {"tanggal_mulai": mulai}
    y = (mulai.astype("datetime64[Y]").astype(int) + 1970).astype(str).astype(object)
    num = rng.permutation(n) + P.id_offset.get(source, 0)
    serial = zfill(num, 6)
    extra["record_id"] = {
        "KJP": "KJP-" + y + "-" + serial,
        "KJMU": "KJMU" + y + serial,
        "KAJ": "KAJ/" + y + "/" + serial,
        "KLJ": "KLJ" + y + "-" + serial,
        "KPDJ": "PDJ-" + y + "-" + serial,
    }[code]
    age = facts.age[pidx]
    if code == "KJP":
        u = rng.random(n)
        jen = np.where(
            age <= 12,
            "SD",
            np.where(
                age <= 15,
                "SMP",
                np.where(
                    age <= 18, np.where(u < 0.6, "SMA", "SMK"), np.where(u < 0.7, "PKBM", "SMK")
                ),
            ),
        )
        jen = np.where(age > 21, np.where(u < 0.5, "SMA", "PKBM"), jen).astype(object)
        extra["jenjang"] = jen
        extra["nominal_bulanan"] = pd.Series(jen).map(KJP_AMOUNT).values.astype(np.int64)
        schools = np.array(
            ["SDN", "SMPN", "SMAN", "SMKN", "PKBM", "SD SWASTA", "MTS", "SMA SWASTA"], dtype=object
        )
        num = rng.integers(1, 120, n).astype(str).astype(object)
        pref = np.where(
            jen == "SD",
            schools[np.where(rng.random(n) < 0.8, 0, 5)],
            np.where(
                jen == "SMP",
                schools[np.where(rng.random(n) < 0.8, 1, 6)],
                np.where(
                    jen == "SMA",
                    schools[np.where(rng.random(n) < 0.8, 2, 7)],
                    np.where(jen == "SMK", schools[3], schools[4]),
                ),
            ),
        )
        extra["sekolah"] = pref + " " + num + " JAKARTA"
    elif code == "KJMU":
        extra["jenjang"] = np.full(n, "PT", dtype=object)
        extra["nominal_bulanan"] = np.full(n, OTHER_AMOUNT[code], np.int64)
        campus = np.array(
            [
                "Universitas Indonesia",
                "Universitas Negeri Jakarta",
                "UIN Syarif Hidayatullah",
                "UPN Veteran Jakarta",
                "Politeknik Negeri Jakarta",
                "Universitas Trisakti",
                "Universitas Pancasila",
                "Universitas Muhammadiyah Prof. Dr. Hamka",
            ],
            dtype=object,
        )
        extra["kampus"] = campus[rng.integers(0, len(campus), n)]
    else:
        extra["jenjang"] = np.full(n, None, dtype=object)
        extra["nominal_bulanan"] = np.full(n, OTHER_AMOUNT[code], np.int64)
    if code == "KAJ":
        # mother's name: the household's PASANGAN or head, whoever is female
        hs = a["hh_start"][pidx]
        cand = np.where(
            a["jenis_kelamin"][np.minimum(hs + 1, P.n - 1)] == "P", np.minimum(hs + 1, P.n - 1), hs
        )
        extra["ibu"] = np.where(a["jenis_kelamin"][cand] == "P", a["nama"][cand], "")
    if code == "KPDJ":
        kinds = np.array(
            ["FISIK", "SENSORIK NETRA", "SENSORIK RUNGU", "INTELEKTUAL", "MENTAL", "GANDA"],
            dtype=object,
        )
        extra["jenis_disabilitas"] = kinds[rng.choice(6, n, p=[0.4, 0.15, 0.15, 0.12, 0.1, 0.08])]
    spec = SPEC[source]
    if spec.has("tanggal_pemutakhiran"):
        upd = recent_or_old(rng, n, P.snap, ROSTER_RECENT_RATE, old_max_years=4)
        upd = np.minimum(np.maximum(upd, mulai), P.snap - DAY)
        extra["tanggal_pemutakhiran"] = nudge_boundary(upd, P.snapshot)
    return frame(P, pidx, mulai, source, rng, extra)


# --- quarantine ---------------------------------------------------------------------------------
def add_quarantine(
    P: People, df: pd.DataFrame, source: str, ghosts: np.ndarray, rng
) -> pd.DataFrame:
    """Blank-name rows and pairs sharing one record_id; identities of people in no other row."""
    nb, nd = QUARANTINE_BLANK_NAME, QUARANTINE_DUPLICATE_PAIRS
    need = nb + nd
    if len(ghosts) < need:
        return df
    g = ghosts[:need]
    when = np.full(need, P.snap - 900 * DAY)
    template = df.iloc[np.zeros(need, np.int64)].reset_index(drop=True).copy()
    ident = render_identity(P, g, when, source, rng)
    for c, v in ident.items():
        if c in template.columns:
            template[c] = v
    if "tanggal_pemutakhiran" in template:
        template["tanggal_pemutakhiran"] = when
    template["pidx"] = -1
    ids = df.record_id.values
    template["record_id"] = [f"{ids[i]}9" for i in range(need)]
    template.loc[: nb - 1, "nama"] = np.where(np.arange(nb) % 2 == 0, "", "  ")
    template.loc[: nb - 1, "quarantine"] = "blank_name"
    template.loc[nb:, "quarantine"] = "duplicate_record_id"
    pair = template.iloc[nb:].copy()
    return pd.concat([df, template, pair], ignore_index=True)


# --- writing -----------------------------------------------------------------------------------
def file_frame(spec: Spec, df: pd.DataFrame) -> pd.DataFrame:
    """The delivered file's columns (strings, or native dates where the format has them)."""
    out = {}
    native = spec.native_dates and spec.fmt in ("parquet", "xlsx")
    for col, f in spec.cols:
        v = df[f].values
        if f in DATE_FIELDS:
            v = v.astype("datetime64[D]") if native else synth_noise.fmt_dates(v, spec.date_format)
        elif f in BOOL_FIELDS:
            t, fl = spec.bools.get(f, ("true", "false"))
            v = np.where(v.astype(bool), t, fl).astype(object)
        elif f == "jenis_kelamin":
            v = np.where(v == "L", spec.sex[0], spec.sex[1]).astype(object)
        elif f in ("desil", "nominal_bulanan"):
            v = v.astype(np.int64)
        else:
            v = np.where(pd.isna(v), "", v).astype(object) if v.dtype == object else v
        out[col] = v
    return pd.DataFrame(out)


def write(spec: Spec, ff: pd.DataFrame, out: Path) -> None:
    w = SourceWriter(spec, out, list(ff.columns))
    w.add(ff)
    w.close()


def _parquet_table(ff: pd.DataFrame) -> pa.Table:
    arrays, names = [], []
    for c in ff.columns:
        v = ff[c].values
        if np.issubdtype(v.dtype, np.datetime64):
            arr = pa.array(v.astype("datetime64[D]"), type=pa.date32())
        elif v.dtype == object:
            arr = pa.array(np.where(v == "", None, v), type=pa.string())
        else:
            arr = pa.array(v)
        arrays.append(arr)
        names.append(c)
    return pa.Table.from_arrays(arrays, names=names)


class ParquetAppender:
    """One parquet file written a chunk (row group) at a time; the first chunk fixes the schema.
    A single chunk gives the bytes of pq.write_table."""

    def __init__(self, path: Path, compression: str = "zstd"):
        self.path, self.compression = path, compression
        self.writer: pq.ParquetWriter | None = None

    def add(self, table: pa.Table) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression=self.compression)
        else:
            table = table.cast(self.writer.schema)
        self.writer.write_table(table)

    def close(self, empty: pa.Table | None = None) -> None:
        if self.writer is None and empty is not None:
            self.add(empty)
        if self.writer is not None:
            self.writer.close()


class SourceWriter:
    """A source's file written chunk by chunk (generate.py streams the population): csv appended,
    parquet a row group per chunk; xlsx (rosters, small) kept and written whole at close."""

    def __init__(self, spec: Spec, out: Path, columns: list[str]):
        self.spec, self.path = spec, out / spec.path
        self.parts: list[pd.DataFrame] = []
        self.csv: CsvAppender | None = None
        self.pq: ParquetAppender | None = None
        if spec.fmt == "csv":
            self.csv = CsvAppender(
                self.path, columns, spec.delimiter or ",", spec.encoding or "utf-8"
            )
        elif spec.fmt == "parquet":
            self.pq = ParquetAppender(self.path)
        elif spec.fmt != "xlsx":  # pragma: no cover
            raise ValueError(spec.fmt)

    def add(self, ff: pd.DataFrame) -> None:
        if self.csv is not None:
            self.csv.add(ff)
        elif self.pq is not None:
            self.pq.add(_parquet_table(ff))
        else:
            self.parts.append(ff)

    def close(self) -> None:
        if self.csv is not None:
            self.csv.close()
        elif self.pq is not None:
            self.pq.close()
        else:
            ff = pd.concat(self.parts, ignore_index=True) if len(self.parts) > 1 else self.parts[0]
            _write_xlsx(ff, self.path, self.spec)


def _csv_column(v: np.ndarray, sep: str) -> list:
    if v.dtype != object:
        return v.astype(str).tolist()
    v = np.where(pd.isna(v), "", v) if None in v else v
    out = v.tolist()
    joined = "".join(out)
    if sep in joined or '"' in joined or "\n" in joined or "\r" in joined:
        out = [
            ('"' + x.replace('"', '""') + '"')
            if (sep in x or '"' in x or "\n" in x or "\r" in x)
            else x
            for x in out
        ]
    return out


def write_csv(ff: pd.DataFrame, path: Path, sep: str, encoding: str) -> None:
    """Minimal-quoting CSV (RFC 4180 style, \\n line ends), much faster than DataFrame.to_csv."""
    w = CsvAppender(path, list(ff.columns), sep, encoding)
    w.add(ff)
    w.close()


class CsvAppender:
    """A minimal-quoting CSV written a chunk at a time: the header first, then each chunk's lines
    (a BOM, for utf-8-sig, only at the start). The bytes do not depend on how rows are chunked."""

    def __init__(self, path: Path, columns: list[str], sep: str, encoding: str):
        self.sep = sep
        self.encoding = "utf-8" if encoding.lower().replace("_", "-") == "utf-8-sig" else encoding
        self.fh = open(path, "wb")
        header = sep.join(_csv_column(np.array(list(columns), dtype=object), sep))
        self.fh.write((header + "\n").encode(encoding))

    def add(self, ff: pd.DataFrame) -> None:
        if not len(ff):
            return
        cols = [_csv_column(ff[c].values, self.sep) for c in ff.columns]
        body = "\n".join(map(self.sep.join, zip(*cols)))
        self.fh.write((body + "\n").encode(self.encoding))

    def close(self) -> None:
        self.fh.close()


def _write_xlsx(ff: pd.DataFrame, path: Path, spec: Spec) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(
        str(path),
        {
            "constant_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    wb.set_properties(
        {"title": spec.name, "author": "satudata synthetic", "created": dt.datetime(2026, 1, 1)}
    )
    ws = wb.add_worksheet("Data")
    bold = wb.add_format({"bold": True})
    dfmt = wb.add_format({"num_format": "dd/mm/yyyy"})
    cols = list(ff.columns)
    for j, c in enumerate(cols):
        ws.write_string(0, j, c, bold)
    kinds = []
    data = []
    for c in cols:
        v = ff[c].values
        if np.issubdtype(v.dtype, np.datetime64):
            kinds.append("d")
            data.append(
                [
                    None if np.isnat(x) else dt.datetime.fromisoformat(str(x))
                    for x in v.astype("datetime64[D]")
                ]
            )
        elif np.issubdtype(v.dtype, np.integer):
            kinds.append("n")
            data.append(v.tolist())
        else:
            kinds.append("s")
            data.append(v.tolist())
    for i in range(len(ff)):
        r = i + 1
        for j, kd in enumerate(kinds):
            x = data[j][i]
            if x is None or x == "":
                continue
            if kd == "d":
                ws.write_datetime(r, j, x, dfmt)
            elif kd == "n":
                ws.write_number(r, j, x)
            else:
                ws.write_string(r, j, x)
    wb.close()
