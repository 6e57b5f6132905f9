"""The removal rule (issue 14): a death or move removes a roster row only when its record
identifies the person and nothing later contradicts it; two people's NIKs are no evidence of
identity; a lone roster row joins the one resident of its own home with its name.

Plain functions on a DuckDB connection: clean tables -> `matching.build_person_records`, hand-made
links -> `clusters.build_person_clusters` (which writes `link.event_evidence`), and the verdicts on
the programs fixture warehouse."""

from __future__ import annotations

import re
from datetime import date

import duckdb
import pandas as pd
import pytest
from fixtures.clean_tables import write_clean_table
from fixtures.programs_warehouse import FIXTURE_SNAPSHOT, build_fixture_warehouse

from satudata_pipeline.contract.program_rules import load_rules
from satudata_pipeline.golden.survivorship import build_golden_person
from satudata_pipeline.link import clusters, matching
from satudata_pipeline.programs.verdicts import build_beneficiary_review

KEL, KEC = "31.74.01.1001", "31.74.01"
OTHER_KEL, OTHER_KEC = "31.75.01.1001", "31.75.01"
# SRI MARYATI, a woman born 5 January 1980, registered in kecamatan 31.74.01 (day 05 + 40 = 45)
NIK_A = "3174014501800001"
NIK_REGION = "3175014501800001"  # the same birth date and serial, registered in 31.75.01
NIK_SERIAL = "3174014501800002"  # the second woman born that day in 31.74.01


def _record(
    uid: str,
    kind: str,
    nama: str,
    nik: str | None = None,
    dob: str | None = "1980-01-05",
    kel: str = KEL,
    kec: str = KEC,
    alamat: str = "JL MAWAR NO 7",
    **extra,
) -> dict:
    source, record_id = uid.split(":")
    return {
        "source": source,
        "record_id": record_id,
        "kind": kind,
        "nama": nama,
        "nik": nik,
        "nik_valid": nik is not None,
        "jenis_kelamin": "P",
        "tanggal_lahir": date.fromisoformat(dob) if dob else None,
        "kode_kelurahan": kel,
        "kode_kecamatan": kec,
        "alamat": alamat,
        "tanggal_meninggal": extra.get("died"),
        "tanggal_pindah": extra.get("moved"),
    }


RESIDENT = _record("pop:1", "civil_registry", "SRI MARYATI", NIK_A)
ROSTER = _record("klj:1", "program_roster", "SRI MARYATI", NIK_A)  # joins pop:1 by exact NIK


def _warehouse(records: list[dict], links: list[tuple] = ()) -> duckdb.DuckDBPyConnection:
    """Clean tables of `records` -> link.person_records; `links` (a, b, probability, probability
    without the NIK) -> link.match_pairs (plus the deterministic same-NIK pairs); clusters."""
    conn = duckdb.connect()
    df = pd.DataFrame(records)
    for source, part in df.groupby("source"):
        write_clean_table(conn, source, part)
    matching.build_person_records(conn, sorted(df.source.unique()))
    conn.execute(f"""CREATE TABLE link.match_pairs AS
        SELECT unique_id_l, unique_id_r, 1.0::DOUBLE AS match_probability, NULL::DOUBLE AS match_weight,
               'exact_nik' AS link_method, NULL::DOUBLE AS match_probability_without_nik
        FROM ({matching.deterministic_pairs_sql()})""")
    for a, b, p, p_without in links:
        conn.execute(
            "INSERT INTO link.match_pairs VALUES (least(?, ?), greatest(?, ?), ?, NULL, "
            "'probabilistic', ?)",
            [a, b, a, b, p, p_without],
        )
    clusters.build_person_clusters(conn, 0.95, 30)
    return conn


def _evidence(conn, uid: str) -> tuple:
    return conn.execute(
        "SELECT conclusive, tie, evidence FROM link.event_evidence WHERE unique_id = ?", [uid]
    ).fetchall()[0]


def _same_person(conn, a: str, b: str) -> bool:
    got = dict(conn.execute("SELECT unique_id, cluster_id FROM link.person_clusters").fetchall())
    return got[a] == got[b]


# (case, death record, links, assignment expected, conclusive, tie)
DEATH_CASES = [
    (
        "namesake: name contained, NIK one region digit off, both valid",
        _record(
            "mati:1",
            "death_registry",
            "SRI",
            NIK_REGION,
            kel=OTHER_KEL,
            kec=OTHER_KEC,
            died="2025-03-01",
        ),
        [("mati:1", "pop:1", 0.9999, 0.40)],
        False,
        "link",
    ),
    (
        "namesake: NIK serial 0002 of the same day and kecamatan",
        _record("mati:1", "death_registry", "SRI", NIK_SERIAL, died="2025-03-01"),
        [("mati:1", "klj:1", 0.999, 0.62)],
        False,
        "link",
    ),
    (
        "the same valid NIK, birth date and name",
        _record("mati:1", "death_registry", "SRI MARYATI", NIK_A, died="2025-03-01"),
        [],
        True,
        "exact_nik",
    ),
    (
        "the same valid NIK, the same words in another order",
        _record("mati:1", "death_registry", "MARYATI SRI", NIK_A, died="2025-03-01"),
        [],
        True,
        "exact_nik",
    ),
    (
        "the same NIK, one word inside the name (a namesake's mistyped NIK)",
        _record("mati:1", "death_registry", "MARYATI", NIK_A, died="2025-03-01"),
        [("mati:1", "pop:1", 0.9999, 0.6)],
        False,
        "link",
    ),
    (
        "the same NIK under another name (borrowed)",
        _record("mati:1", "death_registry", "AHMAD YANI", NIK_A, died="2025-03-01"),
        [("mati:1", "pop:1", 0.97, 0.02)],
        False,
        "link",
    ),
    (
        "a strong link without any NIK",
        _record("mati:1", "death_registry", "SRI MARYATI", None, died="2025-03-01"),
        [("mati:1", "pop:1", 0.9995, 0.9995)],
        True,
        "link",
    ),
    (
        "a strong link, but another valid NIK (serial 0002: twins at one address)",
        _record("mati:1", "death_registry", "SRI", NIK_SERIAL, died="2025-03-01"),
        [("mati:1", "pop:1", 0.9954, 0.9954)],
        False,
        "link",
    ),
    (
        "a link strong only thanks to a similar NIK",
        _record("mati:1", "death_registry", "SRI MARYATI", None, dob=None, died="2025-03-01"),
        [("mati:1", "pop:1", 0.999, 0.93)],
        False,
        "link",
    ),
]


@pytest.mark.parametrize(
    "case, death, links, conclusive, tie", DEATH_CASES, ids=[c[0] for c in DEATH_CASES]
)
def test_a_death_record_identifies_the_person_only_by_exact_nik_or_a_strong_link_without_nik(
    case, death, links, conclusive, tie
):
    conn = _warehouse([RESIDENT, ROSTER, death], links)
    assert _same_person(conn, "mati:1", "klj:1")
    got_conclusive, got_tie, evidence = _evidence(conn, "mati:1")
    assert (got_conclusive, got_tie) == (conclusive, tie), case
    assert evidence.startswith("mati/1 ")
    # the evidence names records, never a name or a NIK
    assert not re.search(r"[0-9]{16}|SRI|MARYATI|AHMAD", evidence)
    if not conclusive and "NIK" in case:
        assert "without the NIK" in evidence
    if not conclusive and "valid" in case:
        assert "carries a valid NIK that none of this person's records carries" in evidence


def test_sole_candidate_death_records_by_name_need_the_same_name_and_birth_date():
    exact = _record("mati:1", "death_registry", "SRI MARYATI", None, died="2025-03-01")
    conn = _warehouse([RESIDENT, ROSTER, exact])
    assert conn.execute("SELECT basis FROM link.assignments").fetchall() == [("name_in_kelurahan",)]
    assert _evidence(conn, "mati:1")[:2] == (True, "name_in_kelurahan")
    no_dob = _record("mati:1", "death_registry", "SRI MARYATI", None, dob=None, died="2025-03-01")
    conn = _warehouse([RESIDENT, ROSTER, no_dob])
    assert _same_person(conn, "mati:1", "pop:1")
    assert _evidence(conn, "mati:1")[:2] == (False, "name_in_kelurahan")


def test_weak_sole_candidate_link_joins_but_does_not_identify():
    death = _record("mati:1", "death_registry", "SRI MARYATI", None, died="2025-03-01")
    conn = _warehouse([RESIDENT, ROSTER, death], [("mati:1", "pop:1", 0.7, 0.7)])
    assert _same_person(conn, "mati:1", "pop:1")
    conclusive, tie, evidence = _evidence(conn, "mati:1")
    assert (conclusive, tie) == (False, "sole_candidate_link")
    assert "only candidate" in evidence and "probability 0.700" in evidence


def test_golden_person_prefers_a_conclusive_death_record_and_says_how_it_is_tied():
    weak = _record("mati:1", "death_registry", "SRI", NIK_REGION, died="2025-03-01")
    strong = _record("mati:2", "death_registry", "SRI MARYATI", NIK_A, died="2025-04-01")
    conn = _warehouse([RESIDENT, ROSTER, weak, strong], [("mati:1", "pop:1", 0.9999, 0.40)])
    conn.execute("""CREATE SCHEMA golden; CREATE TABLE golden.person_ids AS
                    SELECT DISTINCT cluster_id, 'P1' AS person_id FROM link.person_clusters""")
    build_golden_person(conn)
    got = conn.execute(
        "SELECT death_evidence, death_conclusive, death_link FROM main.golden_person"
    ).fetchall()
    assert got[0][:2] == ("mati/2", True) and "same valid NIK" in got[0][2]


# --------------------------------------------------------------------------------------------
# two people's NIKs in match_pairs


def _scored(pairs: list[tuple], records: list[dict]) -> dict:
    """write_match_pairs over a fake prediction table: (a, b, match_weight, NIK weight)."""
    conn = duckdb.connect()
    df = pd.DataFrame(records)
    for source, part in df.groupby("source"):
        write_clean_table(conn, source, part)
    matching.build_person_records(conn, sorted(df.source.unique()))
    rows = [(a, b, 1 / (1 + 2**-w), w, nik_w) for a, b, w, nik_w in pairs]
    conn.execute(
        "CREATE TABLE pred (unique_id_l VARCHAR, unique_id_r VARCHAR, match_probability DOUBLE, "
        "match_weight DOUBLE, mw_nik DOUBLE)"
    )
    conn.executemany("INSERT INTO pred VALUES (?, ?, ?, ?, ?)", rows)
    matching.write_match_pairs(conn, "pred", 0.5)
    return {
        (a, b): (p, p_wo)
        for a, b, p, p_wo in conn.execute(
            "SELECT unique_id_l, unique_id_r, match_probability, match_probability_without_nik "
            "FROM link.match_pairs"
        ).fetchall()
    }


@pytest.mark.parametrize(
    "case, other_nik, other_kel, weight, kept_p",
    [
        # each NIK's region is its own record's kecamatan: two people; without the NIK's +13 the rest
        # (name contained, same birth date: weight 12.5 - 13) is too weak -> no link
        (
            "region digits, each in its own kecamatan",
            NIK_REGION,
            (OTHER_KEL, OTHER_KEC),
            12.5,
            None,
        ),
        # ... and counts as two different NIKs (TWO_PEOPLE_NIK_WEIGHT, about -10): 20 - 13 - 10 < 0
        ("region digits, the rest fairly strong", NIK_REGION, (OTHER_KEL, OTHER_KEC), 20.0, None),
        # ... unless the rest outweighs it (30 - 13 - 10 = 7)
        (
            "region digits, the rest strong",
            NIK_REGION,
            (OTHER_KEL, OTHER_KEC),
            30.0,
            1 / (1 + 2 ** -(30.0 - 13.0 + matching.TWO_PEOPLE_NIK_WEIGHT)),
        ),
        ("serials 0001 and 0002", NIK_SERIAL, (KEL, KEC), 12.5, None),
        # a serial 0051 is no neighbour of 0001 on the register: a typo is as likely; kept as scored
        ("serials 0001 and 0051", "3174014501800051", (KEL, KEC), 14.0, 1 / (1 + 2**-14)),
        # the record lives where the OTHER NIK's region is: a typo of that NIK, kept as scored
        (
            "region digits, living in the other's kecamatan",
            NIK_REGION,
            (KEL, KEC),
            14.0,
            1 / (1 + 2**-14),
        ),
    ],
)
def test_two_peoples_niks_are_no_evidence_of_identity(case, other_nik, other_kel, weight, kept_p):
    a = _record("pop:1", "civil_registry", "SRI MARYATI", NIK_A)
    b = _record("mati:1", "death_registry", "SRI", other_nik, kel=other_kel[0], kec=other_kel[1])
    got = _scored([("mati:1", "pop:1", weight, 13.0)], [a, b])
    if kept_p is None:
        assert got == {}, case
    else:
        p, p_without = got[("mati:1", "pop:1")]
        assert p == pytest.approx(kept_p), case
        two_people = "strong" in case
        assert p_without == pytest.approx(p if two_people else 1 / (1 + 2 ** -(weight - 13.0)))


# --------------------------------------------------------------------------------------------
# lone roster rows and their own home


@pytest.mark.parametrize(
    "case, roster, links, joins",
    [
        (
            "no NIK, reordered name, birth year one digit off, same home",
            _record("kaj:1", "program_roster", "MARYATI SRI", None, dob="1981-01-05"),
            [],
            True,
        ),
        (
            "a parent's NIK and no birth date, same home",
            _record("kjp:1", "program_roster", "SRI MARYATI", "3174012809700020", dob=None),
            [],
            True,
        ),
        (
            "the same name at another house",
            _record("kaj:1", "program_roster", "SRI MARYATI", None, alamat="JL MAWAR NO 70"),
            [],
            False,
        ),
        (
            "a valid NIK of nobody here (another person)",
            _record("kaj:1", "program_roster", "SRI MARYATI", "3175014501800009", dob=None),
            [],
            False,
        ),
        (
            "linked by the model to someone else",
            _record("kaj:1", "program_roster", "SRI MARYATI", None, dob=None),
            [("kaj:1", "pop:9", 0.6, 0.6)],
            False,
        ),
    ],
)
def test_a_lone_roster_row_joins_the_one_resident_of_its_home_with_its_name(
    case, roster, links, joins
):
    parent = _record(
        "pop:2", "civil_registry", "BUDI SANTOSO", "3174012809700020", dob="1970-09-28"
    )
    parent["jenis_kelamin"] = "L"
    elsewhere = _record(
        "pop:9",
        "civil_registry",
        "SRI MARYATI",
        "3175014501800001",
        kel=OTHER_KEL,
        kec=OTHER_KEC,
        alamat="JL KENANGA NO 1",
    )
    conn = _warehouse([RESIDENT, parent, elsewhere, roster], links)
    uid = f"{roster['source']}:{roster['record_id']}"
    assert _same_person(conn, uid, "pop:1") == joins, case
    if joins:
        assert conn.execute(
            "SELECT basis FROM link.assignments WHERE unique_id = ?", [uid]
        ).fetchall() == [("name_at_home",)]


@pytest.mark.parametrize(
    ("roster_kelurahan", "joins"),
    [("KEBON JERUK", True), ("KEBON JERUKK", True), ("PALMERAH", False)],
)
def test_a_delivery_without_kelurahan_codes_finds_the_home_by_its_kelurahan_name(
    roster_kelurahan, joins
):
    """Deliveries without kelurahan codes (FEBRL-shaped) name the kelurahan: one home is the same
    street line and numbers in the same-named kelurahan (a typo of one letter in a long name too)."""

    def uncoded(record: dict, kelurahan: str) -> dict:
        return {**record, "kode_kelurahan": None, "kode_kecamatan": None, "kelurahan": kelurahan}

    roster = _record("kaj:1", "program_roster", "MARYATI SRI", None, dob="1981-01-05")
    conn = _warehouse([uncoded(RESIDENT, "KEBON JERUK"), uncoded(roster, roster_kelurahan)])
    assert _same_person(conn, "kaj:1", "pop:1") == joins


# --------------------------------------------------------------------------------------------
# verdicts: conclusive, not conclusive, contradicted

DEATH_UID, MOVE_UID = "dukcapil_kematian:K000002", "dukcapil_pindah:M000003"


def _verdict(conn, record_id: str):
    build_beneficiary_review(conn, load_rules(), FIXTURE_SNAPSHOT)
    return conn.execute(
        "SELECT verdict, reasons, evidence FROM main.beneficiary_review WHERE record_id = ?",
        [record_id],
    ).fetchall()[0]


def _with_evidence(conn, rows: list[tuple]) -> None:
    conn.execute(
        "CREATE OR REPLACE TABLE link.event_evidence (unique_id VARCHAR, cluster_id VARCHAR, "
        "conclusive BOOLEAN, tie VARCHAR, via_unique_id VARCHAR, probability_without_nik DOUBLE, "
        "evidence VARCHAR)"
    )
    for row in rows:
        conn.execute("INSERT INTO link.event_evidence VALUES (?, NULL, ?, ?, NULL, NULL, ?)", row)


def _welfare_verified(conn, person_id: str, when: str) -> None:
    conn.execute(
        """INSERT INTO link.person_records (unique_id, source, kind, record_id, tanggal_pemutakhiran)
                    VALUES ('dtks:W1', 'dtks', 'welfare_registry', 'W1', ?)""",
        [when],
    )
    conn.execute(
        "INSERT INTO main.person_source_link VALUES ('dtks', 'W1', 'dtks:W1', ?, 'exact_nik', 1.0)",
        [person_id],
    )


def _roster_linked_only_by(conn, record_id: str, person_id: str, p_without_nik: float) -> None:
    """The roster row placed by a probabilistic link to the person's civil row (no shared NIK)."""
    conn.execute(
        "UPDATE main.person_source_link SET link_method = 'probabilistic' WHERE record_id = ?",
        [record_id],
    )
    uid = conn.execute(
        "SELECT unique_id FROM link.person_records WHERE record_id = ?", [record_id]
    ).fetchall()[0][0]
    conn.execute(
        "CREATE OR REPLACE TABLE link.match_pairs (unique_id_l VARCHAR, unique_id_r VARCHAR, "
        "match_probability DOUBLE, match_weight DOUBLE, link_method VARCHAR, "
        "match_probability_without_nik DOUBLE)"
    )
    conn.execute(
        "INSERT INTO link.match_pairs VALUES (?, ?, 0.999, NULL, 'probabilistic', ?)",
        [f"dukcapil_penduduk:C{person_id}", uid, p_without_nik],
    )


def _roster_named(conn, record_id: str, nama_sorted: str) -> None:
    conn.execute(
        "UPDATE link.person_records SET nama_sorted = ? WHERE record_id = ?",
        [nama_sorted, record_id],
    )


def _roster_verified(conn, record_id: str, when: str) -> None:
    conn.execute(
        "UPDATE link.person_records SET tanggal_pemutakhiran = ? WHERE record_id = ?",
        [when, record_id],
    )


def _enrolled(conn, record_id: str, when: str) -> None:
    conn.execute(
        "UPDATE link.person_records SET tanggal_mulai = ?, tanggal_pemutakhiran = ? "
        "WHERE record_id = ?",
        [when, when, record_id],
    )


VERDICT_CASES = [
    # (case, roster row, evidence rows, extra setup, verdict, reason, words in the evidence)
    (
        "death record identifies the person",
        "KLJ-002",
        [
            (
                DEATH_UID,
                True,
                "exact_nik",
                "kematian/K000002 has the same valid NIK, birth date and name",
            )
        ],
        None,
        "remove",
        "deceased",
        "same valid NIK",
    ),
    (
        "death record of a namesake (NIK one digit off)",
        "KLJ-002",
        [
            (
                DEATH_UID,
                False,
                "link",
                "kematian/K000002 is linked with probability 0.400 without the NIK",
            )
        ],
        None,
        "review",
        "deceased",
        "not conclusive",
    ),
    (
        "death record without evidence row: not tied",
        "KLJ-002",
        [],
        None,
        "review",
        "deceased",
        "not tied to this person",
    ),
    (
        "enrolled after the death",
        "KLJ-002",
        [(DEATH_UID, True, "exact_nik", "same valid NIK")],
        lambda c: _enrolled(c, "KLJ-002", "2026-05-01"),
        "review",
        "deceased",
        "enrolled 2026-05-01",
    ),
    (
        "verified by the program after the death",
        "KLJ-002",
        [(DEATH_UID, True, "exact_nik", "same valid NIK")],
        lambda c: _roster_verified(c, "KLJ-002", "2026-06-01"),
        "review",
        "deceased",
        "verified by",
    ),
    # a welfare registry's household update keeps the dead with fresh dates: no sign of life
    (
        "updated by a welfare registry after the death",
        "KLJ-002",
        [(DEATH_UID, True, "exact_nik", "same valid NIK")],
        lambda c: _welfare_verified(c, "P02", "2026-06-01"),
        "remove",
        "deceased",
        "same valid NIK",
    ),
    (
        "verified before the death",
        "KLJ-002",
        [(DEATH_UID, True, "exact_nik", "same valid NIK")],
        lambda c: _welfare_verified(c, "P02", "2026-02-01"),
        "remove",
        "deceased",
        "same valid NIK",
    ),
    # the death identifies the person, but is the roster row that person? (a ghost row copying a
    # real person's name and birth date with a NIK a digit off links to them probabilistically)
    (
        "roster row tied to the person only by a weak link",
        "KLJ-002",
        [(DEATH_UID, True, "exact_nik", "same valid NIK")],
        lambda c: _roster_linked_only_by(c, "KLJ-002", "P02", 0.9),
        "review",
        "deceased",
        "linked to the person only with probability 0.900 without its NIK",
    ),
    (
        "roster row tied to the person by a strong link without the NIK",
        "KLJ-002",
        [(DEATH_UID, True, "exact_nik", "same valid NIK")],
        lambda c: _roster_linked_only_by(c, "KLJ-002", "P02", 0.995),
        "remove",
        "deceased",
        "same valid NIK",
    ),
    # the roster row carries the person's valid NIK: it is the person when its name is the
    # person's (ORANG P02) or a typo of it; FATIMAH carrying FATIMAH YANTI's NIK is as often a
    # mistyped NIK that landed on a namesake born the same day (issue 14)
    (
        "roster row with the person's NIK and a typo in the name",
        "KLJ-002",
        [(DEATH_UID, True, "exact_nik", "same valid NIK")],
        lambda c: _roster_named(c, "KLJ-002", "ORANK P02"),
        "remove",
        "deceased",
        "same valid NIK",
    ),
    (
        "roster row with the person's NIK, its name only inside the person's",
        "KLJ-002",
        [(DEATH_UID, True, "exact_nik", "same valid NIK")],
        lambda c: _roster_named(c, "KLJ-002", "P02"),
        "review",
        "deceased",
        "linked to the person only with probability 0.000 without its NIK",
    ),
    (
        "move record identifies the person",
        "KLJ-003",
        [(MOVE_UID, True, "exact_nik", "same valid NIK")],
        None,
        "remove",
        "moved_out",
        "same valid NIK",
    ),
    (
        "move record of a namesake",
        "KLJ-003",
        [(MOVE_UID, False, "link", "weak link")],
        None,
        "review",
        "moved_out",
        "not conclusive",
    ),
    (
        "verified in DKI by the program after the move",
        "KLJ-003",
        [(MOVE_UID, True, "exact_nik", "same valid NIK")],
        lambda c: _roster_verified(c, "KLJ-003", "2026-04-01"),
        "review",
        "moved_out",
        "verified by",
    ),
]


@pytest.mark.parametrize(
    "case, record_id, evidence_rows, setup, verdict, reason, words",
    VERDICT_CASES,
    ids=[c[0] for c in VERDICT_CASES],
)
def test_death_or_move_removes_only_when_conclusive_and_uncontradicted(
    case, record_id, evidence_rows, setup, verdict, reason, words
):
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    _with_evidence(conn, evidence_rows)
    if setup:
        setup(conn)
    got_verdict, reasons, evidence = _verdict(conn, record_id)
    assert (got_verdict, list(reasons)) == (verdict, [reason]), case
    assert words in evidence, evidence
    if verdict == "review":
        assert "to check" in evidence


def test_a_death_to_check_on_a_row_removed_for_another_reason_is_listed_and_marked():
    """A recorded death is always listed; on a row removed for its age the evidence says the death
    is only to check."""
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    _with_evidence(conn, [(DEATH_UID, False, "link", "weak link")])
    # P02 (born 1950) also on a KAJ roster (ages 0-6): age_ineligible removes
    conn.execute("""INSERT INTO link.person_records (unique_id, source, kind, program, record_id, nama)
                    VALUES ('kaj_2026:KAJ-X', 'kaj_2026', 'program_roster', 'KAJ', 'KAJ-X', 'ORANG P02')""")
    conn.execute(
        "INSERT INTO main.person_source_link VALUES ('kaj_2026', 'KAJ-X', 'kaj_2026:KAJ-X', 'P02', "
        "'exact_nik', 1.0)"
    )
    got_verdict, reasons, evidence = _verdict(conn, "KAJ-X")
    assert (got_verdict, list(reasons)) == ("remove", ["age_ineligible", "deceased"])
    assert "deceased (to check, not conclusive)" in evidence and "deceased: " not in evidence


@pytest.mark.parametrize(
    "case, name_010a, verdict",
    [
        ("the same words", "ORANG P10", "remove"),
        ("a typo", "ORANK P10", "remove"),
        ("one name inside the other (FATIMAH / FATIMAH YANTI)", "ORANG", "review"),
    ],
)
def test_duplicate_enrollment_by_nik_needs_the_same_name(case, name_010a, verdict):
    """Two rows with one valid NIK and birth date remove the later as a duplicate only when their
    names agree; a name inside another is as often a mistyped NIK of another child."""
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    conn.execute(
        "UPDATE link.person_records SET nama_sorted = 'ORANG P10' WHERE record_id LIKE 'KJP-010%'"
    )
    conn.execute(
        "UPDATE link.person_records SET nama_sorted = ? WHERE record_id = 'KJP-010A'", [name_010a]
    )
    got_verdict, reasons, evidence = _verdict(conn, "KJP-010A")
    assert (got_verdict, list(reasons)) == (verdict, ["duplicate_enrollment"]), case
    if verdict == "review":
        assert "to check, not conclusive" in evidence


DUP_LINK_CASES = [
    # (case, KJP-010D's kelurahan, street line, house number, name; the verdict of KJP-010D)
    ("one name at one home", "31.71.01.1001", "JL MAWAR NO 5", "5", "ORANG P10", "remove"),
    (
        "another kelurahan (a namesake born the same day)",
        "31.75.02.1004",
        "JL MAWAR NO 5",
        "5",
        "ORANG P10",
        "review",
    ),
    (
        "one kelurahan, another address (two AQILs born the same day)",
        "31.71.01.1001",
        "JL PEDATI NO 134",
        "134",
        "ORANG P10",
        "review",
    ),
    (
        "one home, one name inside the other (twins VERONIKA WIJAYA / VERONIKA FELICIA WIJAYA)",
        "31.71.01.1001",
        "JL MAWAR NO 5",
        "5",
        "ORANG P10 TAMBAHAN KATA",
        "review",
    ),
]


@pytest.mark.parametrize(
    "case, kel_010d, alamat_010d, nomor_010d, nama_010d, verdict",
    DUP_LINK_CASES,
    ids=[c[0] for c in DUP_LINK_CASES],
)
def test_duplicate_enrollment_by_link_needs_one_name_at_one_home(
    case, kel_010d, alamat_010d, nomor_010d, nama_010d, verdict
):
    """Rows with two NIKs are one child's duplicate enrollment only when linked strongly without the
    NIK with one name at one home: a common name and a birth date reach 0.99 across the city, two
    children of one name are born the same day in one kelurahan, and twins share birth date and home."""
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    conn.execute(
        "UPDATE link.person_records SET kode_kelurahan = '31.71.01.1001', alamat = 'JL MAWAR NO 5', "
        "alamat_nomor = '5', nama_sorted = 'ORANG P10' WHERE record_id LIKE 'KJP-010%'"
    )
    conn.execute(
        "UPDATE link.person_records SET kode_kelurahan = ?, alamat = ?, alamat_nomor = ?, "
        "nama_sorted = ? WHERE record_id = 'KJP-010D'",
        [kel_010d, alamat_010d, nomor_010d, nama_010d],
    )
    # KJP-010D carries another valid NIK; it is linked to the earliest row KJP-010B at 0.999 without it
    conn.execute(
        "INSERT INTO link.match_pairs VALUES ('kjp_2026:KJP-010B', 'kjp_2026:KJP-010D', 0.999, NULL, "
        "'probabilistic', 0.999)"
    )
    got_verdict, reasons, evidence = _verdict(conn, "KJP-010D")
    assert (got_verdict, list(reasons)) == (verdict, ["duplicate_enrollment"]), case
    if verdict == "review":
        assert "to check, not conclusive" in evidence


AGE_CASES = [
    # (case, link of KJP-004 to P04 (born 2000, age 26), the row's own birth date, verdict, words)
    ("the row carries the person's NIK", None, None, "remove", "age_ineligible: age 26"),
    (
        "a weak link and no birth date of its own: the age may be a namesake's",
        0.9,
        None,
        "review",
        "age_ineligible (to check, not conclusive)",
    ),
    (
        "a weak link, but the row's own birth date is outside the range too",
        0.9,
        "2000-03-01",
        "remove",
        "age_ineligible: age 26",
    ),
    (
        "a weak link, and the row's own birth date is within the range",
        0.9,
        "2012-03-01",
        "review",
        "probability 0.900 without its NIK",
    ),
    ("a link strong without the NIK", 0.995, None, "remove", "age_ineligible: age 26"),
]


@pytest.mark.parametrize(
    "case, p_without_nik, own_birth, verdict, words", AGE_CASES, ids=[c[0] for c in AGE_CASES]
)
def test_age_removes_only_when_the_row_identifies_the_person_or_its_own_birth_date_agrees(
    case, p_without_nik, own_birth, verdict, words
):
    """The age is the linked person's: a KJP row linked to P04 (26 years old) loses its place only
    when the row itself identifies P04, or says itself that it is out of range."""
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    conn.execute(
        "UPDATE link.person_records SET tanggal_lahir = ? WHERE record_id = 'KJP-004'", [own_birth]
    )
    if p_without_nik is not None:
        _roster_linked_only_by(conn, "KJP-004", "P04", p_without_nik)
    got_verdict, reasons, evidence = _verdict(conn, "KJP-004")
    assert (got_verdict, list(reasons)) == (verdict, ["age_ineligible"]), (case, evidence)
    assert words in evidence, evidence


ONE_NAME_CASES = [
    # (a, b, one name as typed?)
    ("SRI MARYATI", "SRI MARYATI", True),
    ("NAURAH", "NAURA", True),  # one edit in a short name
    ("RATNA", "RATNAH", True),
    ("NAURA", "ZAHRA", False),  # two edits in a short name: another girl's name
    ("RINA", "DINI", False),
    ("FATIMAH", "FATIMAH YANTI", False),  # one name inside another
    ("MUHAMMAD RIZKY", "MUHAMAD RIZKI", True),  # two edits in a long name
    ("SITI AZZAHRA", "SITI AZAHRO", False),  # two edits in one word
    ("FAUZAN RIZKY", "FARHAN RIZKY", False),  # (sorted) RIZKY FAUZAN is not FARHAN RIZKY
    ("AGUS SUSILO", "AGUS SUSANTO", False),  # three edits
]


@pytest.mark.parametrize("a, b, expected", ONE_NAME_CASES)
def test_one_name_allows_two_typing_errors_only_in_a_long_name(a, b, expected):
    from satudata_pipeline.link import splink_settings as ss

    got = duckdb.sql(
        f"SELECT {ss.one_name_sql('$a', '$b')}".replace("$a", f"'{a}'").replace("$b", f"'{b}'")
    ).fetchall()[0][0]
    assert got is expected


def test_a_short_name_two_edits_away_does_not_make_a_duplicate():
    """NAURA carrying ZAHRA's NIK (serial 0007 typed for 0008, one birth date, one kecamatan) is
    two girls, not one enrolled twice: the later row is reviewed."""
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    conn.execute(
        "UPDATE link.person_records SET nama_sorted = 'ZAHRA' WHERE record_id LIKE 'KJP-010%'"
    )
    conn.execute(
        "UPDATE link.person_records SET nama_sorted = 'NAURA' WHERE record_id = 'KJP-010A'"
    )
    got_verdict, reasons, evidence = _verdict(conn, "KJP-010A")
    assert (got_verdict, list(reasons)) == ("review", ["duplicate_enrollment"])
    assert "to check, not conclusive" in evidence


def _death_to_check(conn, person_id: str, died: str) -> None:
    """A death record linked to `person_id` that does not identify them (a weak tie)."""
    conn.execute(
        "INSERT INTO link.person_records (unique_id, source, kind, record_id, tanggal_meninggal, "
        "tanggal_pemutakhiran) VALUES ('dukcapil_kematian:KX', 'dukcapil_kematian', "
        "'death_registry', 'KX', ?, ?)",
        [died, died],
    )
    conn.execute(
        "INSERT INTO main.person_source_link VALUES ('dukcapil_kematian', 'KX', "
        "'dukcapil_kematian:KX', ?, 'probabilistic', 0.97)",
        [person_id],
    )
    conn.execute(
        "INSERT INTO link.event_evidence VALUES ('dukcapil_kematian:KX', NULL, FALSE, 'link', "
        "NULL, 0.9, 'dukcapil_kematian/KX is linked with probability 0.900 without the NIK')"
    )


@pytest.mark.parametrize(
    "case, died, verdict",
    [
        ("the death may remove the earlier row", "2026-06-01", "review"),
        (
            "the earlier row enrolled after the death (it stays, contradicted)",
            "2023-01-01",
            "remove",
        ),
    ],
)
def test_no_duplicate_removal_while_a_death_may_remove_the_earlier_row(case, died, verdict):
    """P10 is enrolled three times (KJP-010B first, 2023-07-01) and a death record may be theirs.
    When the death may remove KJP-010B too, it decides each row, so the later rows are reviewed,
    not removed as duplicates of a row that may go; when KJP-010B enrolled after the death (which
    it contradicts), KJP-010B stays and a later row is its duplicate."""
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    _death_to_check(conn, "P10", died)
    got_verdict, reasons, evidence = _verdict(conn, "KJP-010A")
    assert got_verdict == verdict, (case, evidence)
    assert set(reasons) == {"deceased", "duplicate_enrollment"}
    if verdict == "review":
        assert "that record decides" in evidence


def test_an_earlier_row_of_a_program_the_person_has_outgrown_is_not_doubled():
    """P11, a KJP pupil since 2022 and a KJMU student since 2025, is 22 at the snapshot: the KJP row
    (tied weakly, so its age is only to check) is not an enrollment the KJMU row doubles."""
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    conn.execute(
        "UPDATE main.golden_person SET tanggal_lahir = DATE '2004-01-01' WHERE person_id = 'P11'"
    )
    _roster_linked_only_by(conn, "KJP-011", "P11", 0.9)
    got_verdict, reasons, _ = _verdict(conn, "KJP-011")
    assert (got_verdict, list(reasons)) == ("review", ["age_ineligible"])
    assert _verdict(conn, "KJMU-011")[:2] == ("keep", [])


def _move_into_dki(
    conn, nama_sorted: str, born: str, when: str, origin: str | None = None, nik: str | None = None
) -> None:
    """A move into DKI linked to nobody (by default a return registered without a NIK or origin)."""
    conn.execute(
        "INSERT INTO link.person_records (unique_id, source, kind, record_id, nama_sorted, "
        "tanggal_lahir, tanggal_pindah, kode_wilayah_tujuan, pindah_keluar_dki, "
        "tanggal_pemutakhiran, kode_kelurahan, nik, nik_valid) VALUES ('dukcapil_pindah:MX', "
        "'dukcapil_pindah', 'migration_registry', 'MX', ?, ?, ?, '3171010001', FALSE, ?, ?, ?, ?)",
        [nama_sorted, born, when, when, origin, nik, nik is not None],
    )


RETURN_CASES = [
    # (case, name, birth date, date of the move in, origin, NIK, verdict of KLJ-003 (P03 left DKI
    # 2026-02-01); None: as P03 / none)
    ("a return with the same name and birth date", "ORANG P03", None, "2026-05-01", None, None, "review"),
    ("a return from outside DKI", "ORANG P03", None, "2026-05-01", "3273010001", None, "review"),
    ("a return under the person's own NIK", "ORANG P03", None, "2026-05-01", None, "own", "review"),
    ("a move in before the move out", "ORANG P03", None, "2025-05-01", None, None, "remove"),
    ("a move in of someone else", "ORANG LAIN", None, "2026-05-01", None, None, "remove"),
    ("a move in of a namesake born another day", "ORANG P03", "1951-02-02", "2026-05-01", None, None, "remove"),
    ("a move in after the snapshot", "ORANG P03", None, "2026-12-01", None, None, "remove"),
    ("a namesake's move within DKI", "ORANG P03", None, "2026-05-01", "31.74.01.1001", None, "remove"),
    ("a move in under another valid NIK", "ORANG P03", None, "2026-05-01", None, "3174015501800009", "remove"),
]  # fmt: skip


@pytest.mark.parametrize(
    "case, nama, born, when, origin, nik, verdict", RETURN_CASES, ids=[c[0] for c in RETURN_CASES]
)
def test_a_move_out_is_not_removed_on_when_a_later_move_in_may_be_the_return(
    case, nama, born, when, origin, nik, verdict
):
    """A return registered without a NIK is not linked to the person, yet it may be theirs: weak
    evidence stops a removal (the row is reviewed), it never makes one."""
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    p03_born = conn.execute(
        "SELECT CAST(tanggal_lahir AS VARCHAR) FROM main.golden_person WHERE person_id = 'P03'"
    ).fetchall()[0][0]
    if nik == "own":
        nik = conn.execute("SELECT nik FROM main.golden_person WHERE person_id = 'P03'").fetchall()[
            0
        ][0]
    _move_into_dki(conn, nama, born or p03_born, when, origin, nik)
    got_verdict, reasons, evidence = _verdict(conn, "KLJ-003")
    assert (got_verdict, list(reasons)) == (verdict, ["moved_out"]), case
    if verdict == "review":
        assert "dukcapil_pindah/MX records a move into DKI on 2026-05-01" in evidence


def _namesake_registered(conn, nama_sorted: str, nik: str, person_id: str = "P99") -> None:
    """A civil-registry record of another person (a namesake born the same day)."""
    conn.execute(
        "INSERT INTO link.person_records (unique_id, source, kind, record_id, nik, nik_valid, "
        "nama_sorted) VALUES ('dukcapil_penduduk:CN', 'dukcapil_penduduk', 'civil_registry', "
        "'CN', ?, TRUE, ?)",
        [nik, nama_sorted],
    )
    conn.execute(
        "INSERT INTO main.person_source_link VALUES ('dukcapil_penduduk', 'CN', "
        "'dukcapil_penduduk:CN', ?, 'exact_nik', 1.0)",
        [person_id],
    )


def _nik_of(conn, record_id: str) -> str:
    return conn.execute(
        "SELECT nik FROM link.person_records WHERE record_id = ?", [record_id]
    ).fetchall()[0][0]


def _serial_plus_one(nik: str) -> str:
    return nik[:12] + f"{(int(nik[12:]) + 1) % 10000:04d}"


@pytest.mark.parametrize(
    "case, neighbour, verdict",
    [
        ("no namesake a NIK typo away", None, "remove"),
        ("a namesake born the same day, serial one apart", "serial", "review"),
        ("a namesake, NIK two digits apart", "far", "remove"),
    ],
)
def test_a_nik_a_typo_from_a_registered_namesakes_does_not_identify_the_row(
    case, neighbour, verdict
):
    """KLJ-021 carries P21's NIK; P21 died (conclusively). When another registered person with the
    same name and birth date holds a NIK one typing error away, the row may be that namesake's with
    a mistyped NIK: the death is reviewed, not removed on."""
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    nik = _nik_of(conn, "KLJ-021")
    if neighbour == "serial":
        _namesake_registered(conn, "ORANG P21", _serial_plus_one(nik))
    elif neighbour == "far":
        _namesake_registered(conn, "ORANG P21", nik[:12] + f"{(int(nik[12:]) + 11) % 10000:04d}")
    conn.execute(
        "UPDATE link.person_records SET nama_sorted = 'ORANG P21' WHERE record_id = 'KLJ-021'"
    )
    got_verdict, reasons, evidence = _verdict(conn, "KLJ-021")
    assert got_verdict == verdict, (case, evidence)
    assert "deceased" in list(reasons)
    if verdict == "review":
        assert "a typo away from that of dukcapil_penduduk/CN" in evidence


def test_two_rows_with_one_nik_are_not_one_child_when_a_namesake_holds_a_nik_a_typo_away():
    """BUDI (serial 0002) enrolled with a mistyped NIK that is the other BUDI's (0003), born the
    same day: the two rows share a NIK but may be two boys; the later one is reviewed."""
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    conn.execute(
        "UPDATE link.person_records SET nama_sorted = 'ORANG P10' WHERE record_id LIKE 'KJP-010%'"
    )
    _namesake_registered(conn, "ORANG P10", _serial_plus_one(_nik_of(conn, "KJP-010A")))
    got_verdict, reasons, evidence = _verdict(conn, "KJP-010A")
    assert (got_verdict, list(reasons)) == ("review", ["duplicate_enrollment"])
    assert "a namesake born the same day (dukcapil_penduduk/CN)" in evidence
