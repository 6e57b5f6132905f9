"""A tiny deterministic generator of `clean.<source>` tables with known truth, for the linkage
tests (not the project's synthetic generator: no files, no raw layer, a few hundred rows).

Noise: name variants (typo, dropped/reordered word), missing NIK, mistyped NIK, NIK borrowed from
a family member (same family card), birth-date typos, duplicates inside a registry.
"""

from __future__ import annotations

import datetime as dt
import random

import duckdb
import pandas as pd

FIRST = ["AHMAD", "BUDI", "SITI", "DEWI", "RINA", "AGUS", "JOKO", "PUTRI", "RIZKY", "NUR",
         "EKA", "SRI", "HENDRA", "YULI", "ANDI", "FITRI", "WAHYU", "INDAH", "DIAN", "RUDI",
         "MAYA", "FAJAR", "LINA", "TAUFIK", "WULAN", "IRFAN", "NOVI", "ARIF", "RATNA", "YOGA"]
MIDDLE = ["NUR", "DWI", "TRI", "AYU", "ADI", "PUTRA", "SARI", "KURNIA", "RAHMA", "BAYU"]
LAST = ["SANTOSO", "HIDAYAT", "SETIAWAN", "WIJAYA", "LESTARI", "SAPUTRA", "PRATAMA", "HANDAYANI",
        "KUSUMA", "NUGROHO", "PURNAMA", "SIREGAR", "NASUTION", "SIMANJUNTAK", "HASIBUAN",
        "RAMADHAN", "FIRMANSYAH", "MAULANA", "SUSANTI", "WAHYUNI"]
STREETS = ["JL MAWAR", "JL MELATI", "JL KENANGA", "GG SEPAKAT", "JL RAYA BOGOR", "JL KEBON JERUK",
           "JL PEMUDA", "JL SUDIRMAN", "GG H MISAN", "JL CEMPAKA PUTIH"]
KELURAHAN = [("31.71.01.1001", "317101"), ("31.71.02.1002", "317102"), ("31.72.03.1001", "317203"),
             ("31.73.04.1005", "317304"), ("31.74.05.1003", "317405"), ("31.75.06.1002", "317506")]

COLUMNS = ["source", "kind", "program", "record_id", "row_number", "nik_raw", "nik", "nik_valid",
           "nik_reason", "nik_dki", "no_kk", "nama_asli", "nama", "nama_orang_tua",
           "jenis_kelamin", "tempat_lahir", "tanggal_lahir", "alamat", "rt", "rw", "kelurahan",
           "kecamatan", "kota", "kode_kelurahan", "kode_kecamatan", "kode_kota",
           "tanggal_pemutakhiran", "tanggal_meninggal", "tanggal_pindah", "kode_wilayah_tujuan",
           "pindah_keluar_dki", "desil", "disabilitas", "punya_mobil", "njop_di_atas_1m",
           "jenjang", "nominal_bulanan", "tanggal_mulai"]

SOURCES = {
    "dukcapil": "civil_registry",
    "kematian": "death_registry",
    "pindah": "migration_registry",
    "dtks": "welfare_registry",
    "p3ke": "welfare_registry",
    "kjp": "program_roster",
}


def make_nik(region: str, dob: dt.date, sex: str, serial: int) -> str:
    day = dob.day + (40 if sex == "P" else 0)
    return f"{region}{day:02d}{dob.month:02d}{dob.year % 100:02d}{serial:04d}"


def nik_is_valid(nik: str | None, dob: dt.date | None, sex: str | None) -> bool:
    if not nik or len(nik) != 16 or not nik.isdigit():
        return False
    day, month = int(nik[6:8]), int(nik[8:10])
    female = day > 40
    day = day - 40 if female else day
    if not (1 <= day <= 31 and 1 <= month <= 12) or nik[12:] == "0000":
        return False
    if dob is not None and (dob.day != day or dob.month != month or dob.year % 100 != int(nik[10:12])):
        return False
    if sex is not None and (sex == "P") != female:
        return False
    return True


def _typo(rng: random.Random, s: str) -> str:
    if len(s) < 3:
        return s
    i = rng.randrange(1, len(s) - 1)
    op = rng.choice(["sub", "swap", "del"])
    if op == "sub":
        return s[:i] + rng.choice("AEIOUNRSTY") + s[i + 1:]
    if op == "swap":
        return s[:i] + s[i + 1] + s[i] + s[i + 2:]
    return s[:i] + s[i + 1:]


def _name_variant(rng: random.Random, name: str) -> str:
    words = name.split()
    r = rng.random()
    if r < 0.4:
        j = rng.randrange(len(words))
        words[j] = _typo(rng, words[j])
    elif r < 0.7 and len(words) > 2:
        del words[1]
    elif r < 0.85 and len(words) > 1:
        words = words[1:] + words[:1]
    else:
        return name.lower().title()  # case only (normalised upstream to upper again)
    return " ".join(words)


def generate(n_persons: int = 150, seed: int = 7) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Returns ({source: clean DataFrame}, truth DataFrame[source, record_id, person_key])."""
    rng = random.Random(seed)
    persons = []
    serial = 1
    while len(persons) < n_persons:
        kk = f"{rng.randrange(10**15, 10**16)}"
        kel, region = rng.choice(KELURAHAN)
        addr = f"{rng.choice(STREETS)} NO {rng.randrange(1, 200)}"
        rt, rw = rng.randrange(1, 15), rng.randrange(1, 10)
        surname = rng.choice(LAST)
        for _ in range(rng.choice([1, 2, 2, 3, 4])):
            sex = rng.choice("LP")
            dob = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 70))
            words = [rng.choice(FIRST)]
            if rng.random() < 0.5:
                words.append(rng.choice(MIDDLE))
            words.append(surname if rng.random() < 0.6 else rng.choice(LAST))
            serial += 1
            persons.append(dict(key=f"T{len(persons):05d}", nama=" ".join(words), sex=sex, dob=dob,
                                nik=make_nik(region, dob, sex, serial % 9000 + 1), kk=kk, kel=kel,
                                addr=addr, rt=rt, rw=rw, family=kk))
    by_family: dict[str, list[dict]] = {}
    for p in persons:
        by_family.setdefault(p["family"], []).append(p)

    rows: dict[str, list[dict]] = {s: [] for s in SOURCES}
    truth = []

    def emit(source: str, p: dict, noisy: bool, **extra) -> None:
        kind = SOURCES[source]
        rid = f"{source[:3].upper()}{len(rows[source]) + 1:05d}"
        nama, dob, nik, sex = p["nama"], p["dob"], p["nik"], p["sex"]
        kel, addr, kk = p["kel"], p["addr"], p["kk"]
        if noisy:
            if rng.random() < 0.25:
                nama = _name_variant(rng, nama)
            r = rng.random()
            if r < 0.15:
                nik = None
            elif r < 0.20:
                i = rng.randrange(12, 16)
                nik = nik[:i] + str((int(nik[i]) + 1) % 10) + nik[i + 1:]
            elif r < 0.25:
                others = [q for q in by_family[p["family"]] if q is not p]
                if others:
                    nik = rng.choice(others)["nik"]
            if rng.random() < 0.06:
                dob = dob + dt.timedelta(days=rng.choice([1, -1, 10, 31]))
            if rng.random() < 0.03:
                dob = None
            if rng.random() < 0.15:  # delivered with another (older/newer) address
                kel, _ = rng.choice(KELURAHAN)
                addr = f"{rng.choice(STREETS)} NO {rng.randrange(1, 200)}"
            if rng.random() < 0.2:
                kk = None
            elif rng.random() < 0.05:
                kk = f"{rng.randrange(10**15, 10**16)}"
        nama = nama.upper()
        row = {c: None for c in COLUMNS}
        row.update(
            source=source, kind=kind, program="KJP" if kind == "program_roster" else None,
            record_id=rid, row_number=len(rows[source]) + 1, nik_raw=nik, nik=nik,
            nik_valid=nik_is_valid(nik, dob, sex), nik_dki=bool(nik), no_kk=kk,
            nama_asli=nama, nama=nama, jenis_kelamin=sex, tanggal_lahir=dob,
            alamat=addr, rt=p["rt"], rw=p["rw"], kode_kelurahan=kel,
            kode_kecamatan=kel[:8], kode_kota=kel[:5],
            tanggal_pemutakhiran=dt.date(2026, 1, 1) - dt.timedelta(days=rng.randrange(0, 700)),
        )
        row["nik_reason"] = None if row["nik_valid"] else ("missing" if nik is None else "birth_date_mismatch")
        row.update(extra)
        rows[source].append(row)
        truth.append({"source": source, "record_id": rid, "person_key": p["key"]})

    for p in persons:
        if rng.random() < 0.9:
            emit("dukcapil", p, noisy=False)
            if rng.random() < 0.03:
                emit("dukcapil", p, noisy=True)  # duplicate inside the civil registry
        if rng.random() < 0.06:
            emit("kematian", p, True, tanggal_meninggal=dt.date(2025, rng.randrange(1, 13), 5))
        if rng.random() < 0.06:
            out = rng.random() < 0.7
            emit("pindah", p, True, tanggal_pindah=dt.date(2025, rng.randrange(1, 13), 9),
                 kode_wilayah_tujuan="3273010001" if out else "3174050001", pindah_keluar_dki=out)
        if rng.random() < 0.5:
            emit("dtks", p, True, desil=rng.randrange(1, 11), disabilitas=rng.random() < 0.1,
                 punya_mobil=rng.random() < 0.05, njop_di_atas_1m=False)
            if rng.random() < 0.05:
                emit("dtks", p, True, desil=rng.randrange(1, 11), disabilitas=False,
                     punya_mobil=False, njop_di_atas_1m=False)
        if rng.random() < 0.25:
            emit("p3ke", p, True, desil=rng.randrange(1, 11), disabilitas=rng.random() < 0.1,
                 punya_mobil=False, njop_di_atas_1m=False)
        if rng.random() < 0.3:
            emit("kjp", p, True, jenjang="SD", nominal_bulanan=250000,
                 tanggal_mulai=dt.date(2025, 7, 1))

    frames = {s: pd.DataFrame(r, columns=COLUMNS) for s, r in rows.items()}
    for df in frames.values():
        for c in ("tanggal_lahir", "tanggal_pemutakhiran", "tanggal_meninggal", "tanggal_pindah",
                  "tanggal_mulai"):
            df[c] = pd.to_datetime(df[c]).dt.date
    return frames, pd.DataFrame(truth)


def load_clean_tables(conn: duckdb.DuckDBPyConnection, frames: dict[str, pd.DataFrame]) -> None:
    """Create `clean.<source>` tables (canonical types) from the generated frames."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS clean")
    for name, df in frames.items():
        conn.register("_gen_df", df)
        conn.execute(f"""
            CREATE OR REPLACE TABLE clean."{name}" AS SELECT
                source::VARCHAR source, kind::VARCHAR kind, program::VARCHAR program,
                record_id::VARCHAR record_id, row_number::BIGINT row_number,
                nik_raw::VARCHAR nik_raw, nik::VARCHAR nik, nik_valid::BOOLEAN nik_valid,
                nik_reason::VARCHAR nik_reason, nik_dki::BOOLEAN nik_dki, no_kk::VARCHAR no_kk,
                nama_asli::VARCHAR nama_asli, nama::VARCHAR nama,
                nama_orang_tua::VARCHAR nama_orang_tua, jenis_kelamin::VARCHAR jenis_kelamin,
                tempat_lahir::VARCHAR tempat_lahir, tanggal_lahir::DATE tanggal_lahir,
                alamat::VARCHAR alamat, rt::INTEGER rt, rw::INTEGER rw,
                kelurahan::VARCHAR kelurahan, kecamatan::VARCHAR kecamatan, kota::VARCHAR kota,
                kode_kelurahan::VARCHAR kode_kelurahan, kode_kecamatan::VARCHAR kode_kecamatan,
                kode_kota::VARCHAR kode_kota, tanggal_pemutakhiran::DATE tanggal_pemutakhiran,
                tanggal_meninggal::DATE tanggal_meninggal, tanggal_pindah::DATE tanggal_pindah,
                kode_wilayah_tujuan::VARCHAR kode_wilayah_tujuan,
                pindah_keluar_dki::BOOLEAN pindah_keluar_dki, desil::INTEGER desil,
                disabilitas::BOOLEAN disabilitas, punya_mobil::BOOLEAN punya_mobil,
                njop_di_atas_1m::BOOLEAN njop_di_atas_1m, jenjang::VARCHAR jenjang,
                nominal_bulanan::BIGINT nominal_bulanan, tanggal_mulai::DATE tanggal_mulai,
                []::VARCHAR[] quality_flags
            FROM _gen_df
        """)
        conn.unregister("_gen_df")
