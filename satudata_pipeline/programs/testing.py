"""A tiny hand-built warehouse for the programs stage: tests, docs examples and local experiments.

`build_fixture_warehouse(conn)` creates `main.golden_person`, `main.person_source_link` and
`link.person_records` with one or more people per reason code; `EXPECTED` holds the verdict each
roster row must get at `FIXTURE_SNAPSHOT` under the shipped rules.yaml.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

FIXTURE_SNAPSHOT = date(2026, 11, 1)

_GOLDEN_COLUMNS = [
    "person_id", "nik", "nama", "jenis_kelamin", "tanggal_lahir", "no_kk",
    "kode_kelurahan", "kode_kecamatan", "kode_kota",
    "in_civil_registry", "in_welfare_registry", "is_alive", "tanggal_meninggal", "death_evidence",
    "tinggal_di_dki", "tanggal_pindah", "kode_wilayah_tujuan", "move_evidence",
    "desil", "disabilitas", "punya_mobil", "njop_di_atas_1m", "welfare_evidence", "welfare_verified",
    "disabilitas_any", "last_verified",
]  # fmt: skip

JP = ("31.71.01.1001", "31.71.01", "31.71")  # Jakarta Pusat / Gambir
JS = ("31.74.01.1001", "31.74.01", "31.74")  # Jakarta Selatan


def _person(pid, born, *, wil=JP, civil=True, welfare=True, alive=True, died=None, dki=True, moved=None,
            desil=2, disab=False, car=False, njop=False, verified="2026-09-01", kk=None, sex="L", dest="3273010001"):
    n = int(pid[1:])
    return {
        "person_id": pid, "nik": f"3171{n:012d}", "nama": f"ORANG {pid}", "jenis_kelamin": sex,
        "tanggal_lahir": date.fromisoformat(born) if born else None, "no_kk": kk or f"3171{n:08d}0000",
        "kode_kelurahan": wil[0], "kode_kecamatan": wil[1], "kode_kota": wil[2],
        "in_civil_registry": civil, "in_welfare_registry": welfare, "is_alive": alive,
        "tanggal_meninggal": date.fromisoformat(died) if died else None,
        "death_evidence": f"dukcapil_kematian/K{n:06d}" if died else None,
        "tinggal_di_dki": dki, "tanggal_pindah": date.fromisoformat(moved) if moved else None,
        "kode_wilayah_tujuan": dest if moved else None,
        "move_evidence": f"dukcapil_pindah/M{n:06d}" if moved else None,
        "desil": desil if welfare else None, "disabilitas": disab if welfare else None,
        "punya_mobil": car if welfare else None, "njop_di_atas_1m": njop if welfare else None,
        "welfare_evidence": f"dtks/D{n:06d}" if welfare else None,
        "welfare_verified": date.fromisoformat(verified) if welfare else None,
        "disabilitas_any": disab if welfare else None,
        "last_verified": date.fromisoformat(verified) if verified else None,
    }  # fmt: skip


PEOPLE = [
    _person("P01", "2012-05-01", kk="3171000000010000"),           # KJP clean keep (14)
    _person("P02", "1950-01-01", alive=False, died="2026-03-01"),   # deceased
    _person("P03", "1955-01-01", dki=False, moved="2026-02-01"),    # moved out
    _person("P04", "2000-01-01"),                                   # KJP age 26
    _person("P05", "2023-01-01", welfare=False),                    # KAJ not in welfare
    _person("P06", "1950-06-01", desil=7, wil=JS),                  # KLJ welfare too high
    _person("P07", "1950-06-01", car=True, wil=JS),                 # KLJ car owner
    _person("P08", "1980-06-01", disab=False),                      # KPDJ, disability unconfirmed
    _person("P09", "1950-06-01", verified="2025-06-01"),            # KLJ stale
    _person("P10", "2010-03-03"),                                   # KJP enrolled 3 times
    _person("P11", "2007-01-01", wil=JS),                           # KJP + KJMU (exclusive)
    _person("P12", "1990-01-01", civil=False, welfare=False),       # roster-only cluster
    _person("P13", "2006-01-01", desil=1),                          # KJMU keep (20)
    _person("P14", "1956-01-01", desil=1),                          # KLJ candidate (70)
    _person("P15", "1961-01-01", desil=3, wil=JS),                  # KLJ candidate (65)
    _person("P16", "1950-01-01", desil=5),                          # desil too high: no candidate
    _person("P17", "1950-01-01", car=True),                         # car: no candidate
    _person("P18", "1996-01-01", disab=True),                       # KPDJ + PKH candidate
    _person("P19", "1986-01-01", kk="3171000000010000"),            # household of P01 -> PANGAN
    _person("P21", "1950-01-01", alive=False, died="2026-01-01", desil=7, verified="2024-01-01"),
    _person("P22", "1950-01-01", alive=False, died="2026-12-01"),   # death after snapshot: keep
    _person("P23", "1966-11-01"),                                   # turns 60 on the snapshot: keep
    _person("P24", "1950-01-01", verified="2025-11-01"),            # verified exactly 12 months ago: keep
    _person("P25", "1950-01-01", alive=False, died="2025-01-01", dki=False, moved="2024-01-01"),
    # left DKI before the snapshot, came back after it: golden ("latest move wins") says in DKI
    _person("P26", "1950-01-01", dki=True, moved="2026-12-01", dest="3174050001"),
    _person("P27", "1950-01-01", dki=True, moved="2025-01-01", dest="3171010001"),  # left, came back
    _person("P40", "2016-01-01"),                                   # KJP SD pupil paid above the rule
]

# death and migration registry rows behind the golden facts: (person_id, date, destination)
DEATHS = [(p["person_id"], p["tanggal_meninggal"]) for p in PEOPLE if p["tanggal_meninggal"]]
MOVES = [
    ("P03", date(2026, 2, 1), "3273010001"),
    ("P25", date(2024, 1, 1), "3273010001"),
    ("P26", date(2025, 3, 1), "3273010001"),
    ("P26", date(2026, 12, 1), "3174050001"),
    ("P27", date(2024, 1, 1), "3273010001"),
    ("P27", date(2025, 1, 1), "3171010001"),
]  # fmt: skip

# (source, program, record_id, person_id, jenjang, nominal, tanggal_mulai)
ROSTER = [
    ("kjp_2026", "KJP", "KJP-001", "P01", "SMP", 300000, "2020-07-01"),
    ("klj_2026", "KLJ", "KLJ-002", "P02", None, 300000, "2019-01-01"),
    ("klj_2026", "KLJ", "KLJ-003", "P03", None, 300000, "2019-01-01"),
    ("kjp_2026", "KJP", "KJP-004", "P04", "SMA", 420000, "2015-07-01"),
    ("kaj_2026", "KAJ", "KAJ-005", "P05", None, 300000, "2024-01-01"),
    ("klj_2026", "KLJ", "KLJ-006", "P06", None, 300000, "2019-01-01"),
    ("klj_2026", "KLJ", "KLJ-007", "P07", None, 300000, "2019-01-01"),
    ("kpdj_2026", "KPDJ", "KPDJ-008", "P08", None, 300000, "2021-01-01"),
    ("klj_2026", "KLJ", "KLJ-009", "P09", None, 300000, "2019-01-01"),
    ("kjp_2026", "KJP", "KJP-010A", "P10", "SMP", 300000, "2024-07-01"),
    ("kjp_2026", "KJP", "KJP-010B", "P10", "SMP", 300000, "2023-07-01"),
    ("kjp_2026", "KJP", "KJP-010C", "P10", "SMP", 300000, "2023-07-01"),
    # linked to P10 but carrying another valid NIK (a namesake born the same day elsewhere?)
    ("kjp_2026", "KJP", "KJP-010D", "P10", "SMP", 300000, "2024-08-01"),
    ("kjp_2026", "KJP", "KJP-011", "P11", "SMA", 420000, "2022-07-01"),
    ("kjmu_2026", "KJMU", "KJMU-011", "P11", "PT", 1500000, "2025-08-01"),
    ("kjp_2026", "KJP", "KJP-012", "P12", "SMA", 420000, "2022-07-01"),
    ("kjmu_2026", "KJMU", "KJMU-013", "P13", "PT", 1500000, "2024-08-01"),
    ("klj_2026", "KLJ", "KLJ-021", "P21", None, 300000, "2019-01-01"),
    ("klj_2026", "KLJ", "KLJ-022", "P22", None, 300000, "2019-01-01"),
    ("klj_2026", "KLJ", "KLJ-023", "P23", None, 300000, "2026-01-01"),
    ("klj_2026", "KLJ", "KLJ-024", "P24", None, None, "2019-01-01"),
    ("klj_2026", "KLJ", "KLJ-025", "P25", None, 300000, "2019-01-01"),
    ("klj_2026", "KLJ", "KLJ-026", "P26", None, 300000, "2019-01-01"),
    ("klj_2026", "KLJ", "KLJ-027", "P27", None, 300000, "2019-01-01"),
    ("kjp_2026", "KJP", "KJP-040", "P40", "SD", 999_999_999_999, "2023-07-01"),  # rule: SD 250,000
]

QUARANTINED = [("kjp_2026", "KJP-Q01")]

EXPECTED: dict[tuple[str, str], tuple[str, list[str]]] = {
    ("kjp_2026", "KJP-001"): ("keep", []),
    ("klj_2026", "KLJ-002"): ("remove", ["deceased"]),
    ("klj_2026", "KLJ-003"): ("remove", ["moved_out"]),
    ("kjp_2026", "KJP-004"): ("remove", ["age_ineligible"]),
    ("kaj_2026", "KAJ-005"): ("review", ["not_in_welfare_registry"]),
    ("klj_2026", "KLJ-006"): ("review", ["welfare_too_high"]),
    ("klj_2026", "KLJ-007"): ("review", ["asset_exclusion"]),
    ("kpdj_2026", "KPDJ-008"): ("review", ["disability_unconfirmed"]),
    ("klj_2026", "KLJ-009"): ("review", ["stale_record"]),
    ("kjp_2026", "KJP-010A"): ("remove", ["duplicate_enrollment"]),
    ("kjp_2026", "KJP-010B"): ("keep", []),
    ("kjp_2026", "KJP-010C"): ("remove", ["duplicate_enrollment"]),
    ("kjp_2026", "KJP-010D"): ("review", ["duplicate_enrollment"]),  # not conclusive: two NIKs
    ("kjp_2026", "KJP-011"): ("keep", []),
    ("kjmu_2026", "KJMU-011"): ("remove", ["duplicate_enrollment"]),
    ("kjp_2026", "KJP-012"): ("review", ["identity_unresolved"]),
    ("kjmu_2026", "KJMU-013"): ("keep", []),
    ("klj_2026", "KLJ-021"): ("remove", ["deceased", "stale_record", "welfare_too_high"]),
    ("klj_2026", "KLJ-022"): ("keep", []),
    ("klj_2026", "KLJ-023"): ("keep", []),
    ("klj_2026", "KLJ-024"): ("keep", []),
    ("klj_2026", "KLJ-025"): ("remove", ["deceased", "moved_out"]),
    ("klj_2026", "KLJ-026"): ("remove", ["moved_out"]),
    ("klj_2026", "KLJ-027"): ("keep", []),
    ("kjp_2026", "KJP-040"): ("review", ["amount_above_rule"]),
    ("kjp_2026", "KJP-Q01"): ("review", ["identity_unresolved"]),
}


# roster rows that carry a NIK other than their person's (linked to the person all the same)
OTHER_NIK = {"KJP-010D": "3172010303100001"}


def build_fixture_warehouse(conn: duckdb.DuckDBPyConnection, *, registry_rows: bool = True) -> None:
    """Create the three input tables of the programs stage with the fixture people.

    `registry_rows=False` leaves the death/migration rows (and their columns) out of
    `link.person_records`, so the verdicts fall back to the golden person's death/domicile columns.
    """
    golden = pd.DataFrame(PEOPLE, columns=_GOLDEN_COLUMNS)
    golden["conflict_flags"] = [[] for _ in range(len(golden))]
    nik_of = dict(zip(golden.person_id, golden.nik))
    records = []
    links = []
    for source, program, rid, pid, jenjang, nominal, mulai in ROSTER:
        nik = OTHER_NIK.get(rid, nik_of[pid])
        records.append(
            {
                "unique_id": f"{source}:{rid}", "source": source, "kind": "program_roster", "program": program,
                "record_id": rid, "nik": nik, "nik_valid": nik is not None and len(nik) == 16,
                "nama": f"ORANG {pid}", "nama_asli": f"Orang {pid}",
                "jenjang": jenjang, "nominal_bulanan": nominal, "tanggal_mulai": date.fromisoformat(mulai),
                # a roster row is verified when it enrols (a later verification of a dead or
                # departed person would contradict the death or move: docs/verdict-rules.md)
                "tanggal_pemutakhiran": date.fromisoformat(mulai),
            }
        )  # fmt: skip
        links.append((source, rid, f"{source}:{rid}", pid, "exact_nik", 1.0))
    for person in PEOPLE:  # one civil row per person known to the civil registry
        if person["in_civil_registry"]:
            rid = f"C{person['person_id']}"
            records.append(
                {"unique_id": f"dukcapil_penduduk:{rid}", "source": "dukcapil_penduduk", "kind": "civil_registry",
                 "program": None, "record_id": rid, "nik": person["nik"], "nama": person["nama"],
                 "nama_asli": person["nama"], "jenjang": None, "nominal_bulanan": None, "tanggal_mulai": None,
                 "tanggal_pemutakhiran": person["last_verified"]}
            )  # fmt: skip
            links.append(("dukcapil_penduduk", rid, f"dukcapil_penduduk:{rid}", person["person_id"], "exact_nik", 1.0))
    if registry_rows:
        for i, (pid, died) in enumerate(DEATHS):
            rid = f"K{int(pid[1:]):06d}"
            records.append({"unique_id": f"dukcapil_kematian:{rid}", "source": "dukcapil_kematian",
                            "kind": "death_registry", "record_id": rid, "nik": nik_of[pid], "nama": f"ORANG {pid}",
                            "tanggal_pemutakhiran": died, "tanggal_meninggal": died})
            links.append(("dukcapil_kematian", rid, f"dukcapil_kematian:{rid}", pid, "exact_nik", 1.0))
        for i, (pid, moved, dest) in enumerate(MOVES):
            rid = f"M{int(pid[1:]):06d}" + ("" if i == 0 or MOVES[i - 1][0] != pid else "B")
            records.append({"unique_id": f"dukcapil_pindah:{rid}", "source": "dukcapil_pindah",
                            "kind": "migration_registry", "record_id": rid, "nik": nik_of[pid], "nama": f"ORANG {pid}",
                            "tanggal_pemutakhiran": moved, "tanggal_pindah": moved, "kode_wilayah_tujuan": dest,
                            "pindah_keluar_dki": not dest.startswith("31")})
            links.append(("dukcapil_pindah", rid, f"dukcapil_pindah:{rid}", pid, "exact_nik", 1.0))
    for source, rid in QUARANTINED:
        links.append((source, rid, None, None, "quarantined", None))
    recs = pd.DataFrame(records)
    for col in ("tanggal_meninggal", "tanggal_pindah", "kode_wilayah_tujuan", "pindah_keluar_dki"):
        if registry_rows and col not in recs:
            recs[col] = None
    link = pd.DataFrame(
        links, columns=["source", "record_id", "unique_id", "person_id", "link_method", "match_probability"]
    )
    conn.execute("CREATE SCHEMA IF NOT EXISTS link")
    conn.register("_golden_df", golden)
    conn.register("_records_df", recs)
    conn.register("_link_df", link)
    conn.execute(
        """CREATE OR REPLACE TABLE main.golden_person AS SELECT * REPLACE (
               CAST(tanggal_lahir AS DATE) AS tanggal_lahir, CAST(tanggal_meninggal AS DATE) AS tanggal_meninggal,
               CAST(tanggal_pindah AS DATE) AS tanggal_pindah, CAST(welfare_verified AS DATE) AS welfare_verified,
               CAST(last_verified AS DATE) AS last_verified, CAST(desil AS INTEGER) AS desil,
               CAST(conflict_flags AS VARCHAR[]) AS conflict_flags)
           FROM _golden_df"""
    )
    conn.execute(
        """CREATE OR REPLACE TABLE link.person_records AS SELECT * REPLACE (
               CAST(program AS VARCHAR) AS program, CAST(jenjang AS VARCHAR) AS jenjang,
               CAST(nominal_bulanan AS BIGINT) AS nominal_bulanan, CAST(tanggal_mulai AS DATE) AS tanggal_mulai,
               CAST(tanggal_pemutakhiran AS DATE) AS tanggal_pemutakhiran)
           FROM _records_df"""
    )
    if registry_rows:
        conn.execute(
            """CREATE OR REPLACE TABLE link.person_records AS SELECT * REPLACE (
                   CAST(tanggal_meninggal AS DATE) AS tanggal_meninggal, CAST(tanggal_pindah AS DATE) AS tanggal_pindah,
                   CAST(kode_wilayah_tujuan AS VARCHAR) AS kode_wilayah_tujuan,
                   CAST(pindah_keluar_dki AS BOOLEAN) AS pindah_keluar_dki)
               FROM link.person_records"""
    )
    conn.execute(
        """CREATE OR REPLACE TABLE main.person_source_link AS SELECT source, record_id,
               CAST(unique_id AS VARCHAR) AS unique_id, CAST(person_id AS VARCHAR) AS person_id, link_method,
               CAST(match_probability AS DOUBLE) AS match_probability FROM _link_df"""
    )
    for name in ("_golden_df", "_records_df", "_link_df"):
        conn.unregister(name)
