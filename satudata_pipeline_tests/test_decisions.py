"""Decisions handed back (contract section 4, docs/decisions.md): intake, set-aside reasons,
review decisions on the verdicts, link decisions on the clusters, persistence across runs.

Small and fast: the programs fixture warehouse (satudata_pipeline_tests/fixtures/programs_warehouse.py) stands in for
a linked delivery, decision files are written to a temporary data directory and landed as the raw
asset lands them, and the link tests build a few records and links by hand.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import duckdb
import pytest
from fixtures.programs_warehouse import FIXTURE_SNAPSHOT, build_fixture_warehouse

from satudata_pipeline.contract.program_rules import load_rules
from satudata_pipeline.contract.sources import ContractError, check_files, parse_delivery
from satudata_pipeline.decisions import intake
from satudata_pipeline.link import clusters
from satudata_pipeline.programs import verdicts
from satudata_pipeline.sources.readers import read_source

TODAY = dt.date(2026, 11, 1)
RULES = load_rules()

REVIEW_SOURCE = """\
  - name: {name}
    kind: review_decision
    path: {name}.csv
    extracted_at: 2026-10-30
    date_format: "%d-%m-%Y"
    columns: {{program: PROGRAM, record_id: ID_BARIS, decision: KEPUTUSAN, reason: ALASAN,
               decided_by: PETUGAS, decided_at: TANGGAL, note: CATATAN}}
    values:
      decision: {{tetap: keep, hapus: remove}}
"""
LINK_SOURCE = """\
  - name: {name}
    kind: link_decision
    path: {name}.csv
    extracted_at: 2026-10-30
    columns: {{source_a: SUMBER_A, record_id_a: ID_A, source_b: SUMBER_B, record_id_b: ID_B,
               same_person: ORANG_SAMA, decided_by: PETUGAS, decided_at: TANGGAL}}
"""
REVIEW_HEADER = "PROGRAM,ID_BARIS,KEPUTUSAN,ALASAN,PETUGAS,TANGGAL,CATATAN\n"
LINK_HEADER = "SUMBER_A,ID_A,SUMBER_B,ID_B,ORANG_SAMA,PETUGAS,TANGGAL\n"


def deliver(
    tmp_path: Path,
    conn: duckdb.DuckDBPyConnection,
    review: str | None = None,
    link: str | None = None,
    *,
    snapshot: str = "2026-11-01",
    tag: str = "d1",
    check: bool = True,
):
    """A data directory holding decision files (CSV bodies without header), landed in raw.<name>
    as the raw asset does; returns the parsed delivery."""
    data = tmp_path / tag
    data.mkdir()
    entries = []
    if review is not None:
        entries.append(REVIEW_SOURCE.format(name="keputusan_review"))
        (data / "keputusan_review.csv").write_text(REVIEW_HEADER + textwrap.dedent(review))
    if link is not None or review is None:
        entries.append(LINK_SOURCE.format(name="keputusan_tautan"))
        (data / "keputusan_tautan.csv").write_text(LINK_HEADER + textwrap.dedent(link or ""))
    (data / "sources.yaml").write_text(f"snapshot_date: {snapshot}\nsources:\n" + "".join(entries))
    delivery = parse_delivery(data, RULES.codes())
    if check:
        check_files(delivery)
    conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for s in delivery.sources:
        table = read_source(delivery, s)
        conn.register("_t", table)
        conn.execute(f'CREATE OR REPLACE TABLE raw."{s.name}" AS SELECT * FROM _t')
        conn.unregister("_t")
    return delivery


def take_in(conn, delivery, today=TODAY):
    return intake.take_in_decisions(conn, delivery, RULES.codes(), today=today)


def review_rows(conn) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT record_id, verdict, pipeline_verdict, decision, decision_status, decision_reason, decided_by "
            "FROM main.beneficiary_review"
        ).fetchall()
    }


def set_aside(conn) -> dict[int, str]:
    return dict(conn.execute(f"SELECT row_number, reason FROM {intake.SET_ASIDE}").fetchall())


def determine(conn, snapshot=FIXTURE_SNAPSHOT):
    verdicts.build_beneficiary_review(conn, RULES, snapshot)
    return review_rows(conn)


@pytest.fixture
def wh():
    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    determine(conn)  # the last publication: what the office's worklist came from
    yield conn
    conn.close()


# --- set-aside reasons, table-driven -----------------------------------------------------------
CASES = [
    # (row, expected set-aside reason or None for applied)
    ("KLJ,KLJ-002,tetap,confirmed_alive,OFC-1,15-10-2026,visited", None),
    ("KJP,KJP-001,HAPUS,other,OFC-2,15-10-2026,", None),
    ("XXX,KLJ-006,tetap,,OFC-1,15-10-2026,", "unknown_program"),
    ("KLJ,KLJ-999,tetap,,OFC-1,15-10-2026,", "unknown_record"),
    ("KLJ,KLJ-027,tetap,,OFC-1,15-10-2026,", "not_in_roster"),
    ("KLJ,KLJ-007,mungkin,,OFC-1,15-10-2026,", "malformed_decision"),
    ("KLJ,KLJ-007,tetap,because,OFC-1,15-10-2026,", "malformed_reason"),
    ("KLJ,KLJ-007,tetap,,Budi Santoso,15-10-2026,", "malformed_decided_by"),
    ("KLJ,KLJ-007,tetap,,OFC-1,32-13-2026,", "malformed_decided_at"),
    ("KLJ,KLJ-007,tetap,,OFC-1,15-10-2027,", "malformed_decided_at"),  # in the future
    ("KLJ,,tetap,,OFC-1,15-10-2026,", "malformed_record_id"),
    (",KLJ-007,tetap,,OFC-1,15-10-2026,", "malformed_program"),
    ("KLJ,KLJ-006,tetap,other,OFC-1,01-10-2026,", "contradiction"),
    ("KLJ,KLJ-006,hapus,other,OFC-3,01-10-2026,", "contradiction"),
    ("KLJ,KLJ-009,hapus,,OFC-1,01-09-2026,", "superseded"),
    ("KLJ,KLJ-009,tetap,appeal_upheld,OFC-1,01-10-2026,", None),
]


def test_every_decision_row_applies_or_is_set_aside_with_its_reason(wh, tmp_path):
    # KLJ-027 was published, but is no longer in this delivery's roster
    wh.execute("DELETE FROM link.person_records WHERE record_id = 'KLJ-027'")
    wh.execute("DELETE FROM main.person_source_link WHERE record_id = 'KLJ-027'")
    delivery = deliver(tmp_path, wh, "\n".join(row for row, _ in CASES) + "\n")
    res = take_in(wh, delivery)
    expected_aside = {i + 1: reason for i, (_, reason) in enumerate(CASES) if reason}
    assert set_aside(wh) == expected_aside
    assert res.set_aside == {
        r: list(expected_aside.values()).count(r) for r in set(expected_aside.values())
    }
    assert res.rows_read == len(CASES)
    # the other rows of the same file apply: three rows in force (KLJ-002, KJP-001, the later KLJ-009)
    in_force = {
        r[0]: r[1]
        for r in wh.execute(
            f"SELECT record_id, decision FROM {intake.REVIEW_IN_FORCE} WHERE NOT contradicted"
        ).fetchall()
    }
    assert in_force == {"KLJ-002": "keep", "KJP-001": "remove", "KLJ-009": "keep"}
    # the report carries only what the office sent as keys: no name, no NIK
    cols = {r[0] for r in wh.execute(f"DESCRIBE {intake.SET_ASIDE}").fetchall()}
    assert not cols & {"nama", "nik", "nik_masked", "decided_by", "note"}


def test_keep_overrides_remove_and_remove_overrides_keep(wh, tmp_path):
    delivery = deliver(
        tmp_path,
        wh,
        """\
        KLJ,KLJ-002,tetap,confirmed_alive,OFC-1,15-10-2026,
        KJP,KJP-001,hapus,other,OFC-2,16-10-2026,
        """,
    )
    take_in(wh, delivery)
    rows = determine(wh)
    # the pipeline said remove (a registered death); a person confirmed the recipient alive
    assert rows["KLJ-002"] == ("keep", "remove", "keep", "applied", "confirmed_alive", "OFC-1")
    assert rows["KJP-001"] == ("remove", "keep", "remove", "applied", "other", "OFC-2")
    # undecided rows are unchanged
    assert rows["KLJ-003"] == ("remove", "remove", None, None, None, None)
    assert sum(1 for r in rows.values() if r[2] is None) == len(rows) - 2
    # a person's keep on a death is not a violation of the blocking check (it is published with
    # who decided); the pipeline's own keeps still are
    assert verdicts.check_no_deceased_or_moved_keep(wh)[0] == 0


def test_latest_decided_at_wins(wh, tmp_path):
    delivery = deliver(
        tmp_path,
        wh,
        """\
        KLJ,KLJ-006,tetap,other,OFC-1,20-10-2026,
        KLJ,KLJ-006,hapus,welfare_too_high,OFC-1,01-10-2026,
        """,
    )
    take_in(wh, delivery)
    assert set_aside(wh) == {2: "superseded"}
    assert determine(wh)["KLJ-006"][:4] == ("keep", "review", "keep", "applied")


def test_a_tie_is_a_contradiction_and_neither_applies(wh, tmp_path):
    delivery = deliver(
        tmp_path,
        wh,
        """\
        KLJ,KLJ-006,tetap,other,OFC-1,20-10-2026,
        KLJ,KLJ-006,hapus,welfare_too_high,OFC-2,20-10-2026,
        KLJ,KLJ-007,tetap,other,OFC-1,20-10-2026,
        """,
    )
    take_in(wh, delivery)
    assert set_aside(wh) == {1: "contradiction", 2: "contradiction"}
    rows = determine(wh)
    assert rows["KLJ-006"][:4] == ("review", "review", None, "contradicted")
    assert rows["KLJ-007"][:4] == ("keep", "review", "keep", "applied")


def test_decisions_persist_across_runs_and_redelivery_is_idempotent(wh, tmp_path):
    body = "KLJ,KLJ-006,tetap,other,OFC-1,20-10-2026,\n"
    first = take_in(wh, deliver(tmp_path, wh, body, tag="m1"))
    assert (first.stored_review, first.in_force_review) == (1, 1)
    assert determine(wh)["KLJ-006"][:4] == ("keep", "review", "keep", "applied")
    # the same file again: nothing new stored, nothing set aside
    again = take_in(wh, deliver(tmp_path, wh, body, tag="m1b"))
    assert (again.stored_review, again.in_force_review, again.set_aside) == (0, 1, {})
    # next month's delivery carries no review decisions at all: the decision stays in force
    wh.execute('DROP TABLE raw."keputusan_review"')
    later = take_in(wh, deliver(tmp_path, wh, None, tag="m2"))
    assert (later.stored_review, later.in_force_review) == (0, 1)
    assert determine(wh)["KLJ-006"][:4] == ("keep", "review", "keep", "applied")
    assert wh.execute(f"SELECT count(*) FROM {intake.REVIEW_STORE}").fetchall()[0][0] == 1


def _add_death(conn, pid: str, died: str) -> None:
    rid = f"K{int(pid[1:]):06d}"
    conn.execute(f"""INSERT INTO link.person_records BY NAME
        SELECT 'dukcapil_kematian:{rid}' AS unique_id, 'dukcapil_kematian' AS source, 'death_registry' AS kind,
               '{rid}' AS record_id, nik, 'ORANG {pid}' AS nama, DATE '{died}' AS tanggal_meninggal,
               DATE '{died}' AS tanggal_pemutakhiran
        FROM main.golden_person WHERE person_id = '{pid}'""")
    conn.execute(f"""INSERT INTO main.person_source_link
        VALUES ('dukcapil_kematian', '{rid}', 'dukcapil_kematian:{rid}', '{pid}', 'exact_nik', 1.0)""")
    # the death record identifies the person by the same valid NIK (link/clusters.py writes this)
    conn.execute(
        "INSERT INTO link.event_evidence (unique_id, conclusive, tie) VALUES (?, TRUE, 'exact_nik')",
        [f"dukcapil_kematian:{rid}"],
    )
    conn.execute(f"""UPDATE main.golden_person SET is_alive = FALSE, tanggal_meninggal = DATE '{died}',
        death_evidence = 'dukcapil_kematian/{rid}' WHERE person_id = '{pid}'""")


def test_new_evidence_reopens_a_decision_and_calendar_drift_does_not(wh, tmp_path):
    take_in(
        wh,
        deliver(
            tmp_path,
            wh,
            """\
        KLJ,KLJ-007,tetap,other,OFC-1,20-10-2026,
        KLJ,KLJ-024,tetap,other,OFC-1,20-10-2026,
        """,
        ),
    )
    rows = determine(wh)
    assert rows["KLJ-007"][:4] == ("keep", "review", "keep", "applied")
    assert rows["KLJ-024"][:4] == ("keep", "keep", "keep", "applied")
    # a month later: KLJ-024's person is now stale (calendar only), KLJ-007's person died
    _add_death(wh, "P07", "2026-11-15")
    rows = determine(wh, dt.date(2026, 12, 1))
    assert rows["KLJ-024"][:4] == ("keep", "review", "keep", "applied")  # stale_record drifted in
    # the death is new evidence: back to review, the old decision shown, never overridden silently
    assert rows["KLJ-007"][:4] == ("review", "remove", "keep", "reopened")
    # and it stays reopened in the following run, until a newer decision answers the death
    assert determine(wh, dt.date(2026, 12, 1))["KLJ-007"][:4] == (
        "review",
        "remove",
        "keep",
        "reopened",
    )
    take_in(
        wh,
        deliver(tmp_path, wh, "KLJ,KLJ-007,hapus,deceased,OFC-2,05-12-2026,\n", tag="d2"),
        today=dt.date(2026, 12, 6),
    )
    assert determine(wh, dt.date(2026, 12, 1))["KLJ-007"][:4] == (
        "remove",
        "remove",
        "remove",
        "applied",
    )


def test_a_decision_answers_the_evidence_of_the_worklist_not_news_that_came_with_it(wh, tmp_path):
    """The officer decided on the last publication; a death delivered together with the decision
    was not known to them: the row is reopened at once."""
    _add_death(wh, "P07", "2026-10-25")
    take_in(wh, deliver(tmp_path, wh, "KLJ,KLJ-007,tetap,other,OFC-1,20-10-2026,\n"))
    assert determine(wh)["KLJ-007"][:4] == ("review", "remove", "keep", "reopened")


def test_rows_sharing_a_record_id_are_not_multiplied_by_the_previous_publication(wh):
    """Two roster rows quarantined for one repeated record_id share their key: comparing with the
    last publication must not turn two rows into four."""
    wh.execute(
        "INSERT INTO main.person_source_link VALUES ('kjp_2026', 'KJP-Q01', NULL, NULL, 'quarantined', NULL)"
    )
    first = determine(wh)
    n = wh.execute("SELECT count(*) FROM main.beneficiary_review").fetchall()[0][0]
    assert (
        wh.execute(
            "SELECT count(*) FROM main.beneficiary_review WHERE record_id = 'KJP-Q01'"
        ).fetchall()[0][0]
        == 2
    )
    determine(wh)
    assert wh.execute("SELECT count(*) FROM main.beneficiary_review").fetchall()[0][0] == n
    assert first["KJP-Q01"][:2] == ("review", "review")


def test_missing_mapped_column_is_a_clear_error_before_anything_is_written(wh, tmp_path):
    data = tmp_path / "bad"
    data.mkdir()
    (data / "sources.yaml").write_text(
        "snapshot_date: 2026-11-01\nsources:\n" + REVIEW_SOURCE.format(name="keputusan_review")
    )
    (data / "keputusan_review.csv").write_text(
        "PROGRAM,ID_BARIS,KEPUTUSAN,ALASAN,TANGGAL,CATATAN\nKLJ,KLJ-006,tetap,,20-10-2026,\n"
    )
    delivery = parse_delivery(data, RULES.codes())
    with pytest.raises(ContractError) as err:
        check_files(delivery)
    message = str(err.value)
    assert (
        "keputusan_review" in message and "keputusan_review.csv" in message and "PETUGAS" in message
    )
    # and the intake itself refuses the landed file before writing anything
    deliver(tmp_path, wh, None, tag="ok")  # nothing in the store yet
    conn_tables = lambda: wh.execute(  # noqa: E731
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'decisions'"
    ).fetchall()[0][0]
    before = conn_tables()
    table = read_source(delivery, delivery.sources[0])
    wh.register("_t", table)
    wh.execute('CREATE OR REPLACE TABLE raw."keputusan_review" AS SELECT * FROM _t')
    with pytest.raises(ContractError, match="PETUGAS"):
        take_in(wh, delivery)
    assert conn_tables() == before


def test_decision_kinds_carry_no_person_fields_and_need_their_required_fields(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "sources.yaml").write_text(
        textwrap.dedent("""\
        snapshot_date: 2026-11-01
        sources:
          - name: k
            kind: review_decision
            path: k.csv
            extracted_at: 2026-10-30
            columns: {program: P, record_id: R, decision: D, decided_by: B, decided_at: T, nama: N}
        """)
    )
    with pytest.raises(ContractError, match="unknown canonical field"):
        parse_delivery(data, RULES.codes())
    (data / "sources.yaml").write_text(
        textwrap.dedent("""\
        snapshot_date: 2026-11-01
        sources:
          - name: k
            kind: link_decision
            path: k.csv
            extracted_at: 2026-10-30
            columns: {source_a: A, record_id_a: RA, source_b: B, record_id_b: RB, decided_by: O, decided_at: T}
        """)
    )
    with pytest.raises(ContractError, match="same_person"):
        parse_delivery(data, RULES.codes())


# --- link decisions ----------------------------------------------------------------------------
_RECORD_COLUMNS = {
    "nik": "VARCHAR",
    "nik_valid": "BOOLEAN",
    "nama": "VARCHAR",
    "nama_sorted": "VARCHAR",
    "tanggal_lahir": "DATE",
    "jenis_kelamin": "VARCHAR",
    "kode_kelurahan": "VARCHAR",
    "kelurahan": "VARCHAR",
    "kode_kecamatan": "VARCHAR",
    "kode_wilayah_tujuan": "VARCHAR",
    "alamat": "VARCHAR",
    "alamat_nomor": "VARCHAR",
    "tanggal_meninggal": "DATE",
}


@pytest.fixture
def linked():
    """Records and links: dukcapil:1 ~ dtks:1 strongly, dtks:1 ~ dtks:2 weakly (a wrong merge);
    dukcapil:3 and kjp:3 linked below the threshold and below the only-link probability (a missed
    link no rule of the model joins); others untouched."""
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA link")
    recs = [
        ("dukcapil:1", "dukcapil", "1", "civil_registry"),
        ("dtks:1", "dtks", "1", "welfare_registry"),
        ("dtks:2", "dtks", "2", "welfare_registry"),
        ("dukcapil:3", "dukcapil", "3", "civil_registry"),
        ("kjp:3", "kjp", "3", "program_roster"),
        ("dukcapil:5", "dukcapil", "5", "civil_registry"),
        ("dtks:5", "dtks", "5", "welfare_registry"),
        ("dukcapil:6", "dukcapil", "6", "civil_registry"),
    ]
    conn.execute(
        "CREATE TABLE link.person_records (unique_id VARCHAR, source VARCHAR, record_id VARCHAR, "
        "kind VARCHAR, program VARCHAR)"
    )
    conn.executemany("INSERT INTO link.person_records VALUES (?, ?, ?, ?, NULL)", recs)
    for col, typ in _RECORD_COLUMNS.items():
        conn.execute(f"ALTER TABLE link.person_records ADD COLUMN {col} {typ}")
    conn.execute(
        "CREATE TABLE link.match_pairs (unique_id_l VARCHAR, unique_id_r VARCHAR, "
        "match_probability DOUBLE, match_weight DOUBLE, link_method VARCHAR)"
    )
    conn.executemany(
        "INSERT INTO link.match_pairs VALUES (?, ?, ?, NULL, 'probabilistic')",
        [
            ("dtks:1", "dukcapil:1", 0.9999),
            ("dtks:1", "dtks:2", 0.96),
            ("dtks:2", "dukcapil:1", 0.951),
            ("dukcapil:3", "kjp:3", 0.45),
            ("dtks:5", "dukcapil:5", 0.999),
        ],
    )
    yield conn
    conn.close()


def _person_ids(conn) -> dict[str, str]:
    return dict(
        conn.execute(
            "SELECT c.unique_id, i.person_id FROM link.person_clusters c "
            "JOIN golden.person_ids i USING (cluster_id)"
        ).fetchall()
    )


def _clusters(conn) -> dict[str, str]:
    return dict(conn.execute("SELECT unique_id, cluster_id FROM link.person_clusters").fetchall())


def test_link_decisions_split_a_wrong_merge_join_a_missed_link_and_change_nothing_else(
    linked, tmp_path
):
    from satudata_pipeline.golden.stable_ids import assign_person_ids

    clusters.build_person_clusters(linked, 0.95)
    before = _clusters(linked)
    assert before["dtks:2"] == before["dukcapil:1"] and before["kjp:3"] != before["dukcapil:3"]
    assign_person_ids(linked, "run-1")
    ids_before = _person_ids(linked)
    delivery = deliver(
        tmp_path,
        linked,
        link="""\
        dukcapil,1,dtks,2,Tidak,OFC-1,2026-10-20
        kjp,3,dukcapil,3,Ya,OFC-1,2026-10-20
        dukcapil,9,dtks,1,Ya,OFC-1,2026-10-20
        bogus,1,dtks,1,Ya,OFC-1,2026-10-20
        dtks,1,dtks,1,Ya,OFC-1,2026-10-20
        dtks,5,dukcapil,5,mungkin,OFC-1,2026-10-20
        """,
    )
    res = take_in(linked, delivery)
    assert set_aside(linked) == {
        3: "unknown_record",
        4: "unknown_source",
        5: "same_record",
        6: "malformed_same_person",
    }
    assert res.in_force_link == 2
    result = clusters.build_person_clusters(linked, 0.95)
    after = _clusters(linked)
    # the wrong merge is split at its weakest links: dtks:2 leaves, dtks:1 stays with dukcapil:1
    assert after["dtks:2"] != after["dukcapil:1"] == after["dtks:1"]
    # the missed link is joined
    assert after["kjp:3"] == after["dukcapil:3"]
    assert (result.decisions_split, result.decisions_joined, result.decisions_conflicting) == (
        1,
        1,
        0,
    )
    # nothing else moved
    others = ["dukcapil:5", "dtks:5", "dukcapil:6"]
    assert {u: after[u] for u in others} == {u: before[u] for u in others}
    # stable ids follow by the ordinary rule: the split-off record gets a new id, the joined
    # persons keep the older id, everybody else keeps theirs
    changes = assign_person_ids(linked, "run-2")
    ids = _person_ids(linked)
    assert changes.get("split_from") == 1 and changes.get("merged_into") == 1
    assert ids["dukcapil:1"] == ids["dtks:1"] == ids_before["dukcapil:1"] != ids["dtks:2"]
    assert ids["kjp:3"] == ids["dukcapil:3"] in {ids_before["kjp:3"], ids_before["dukcapil:3"]}
    assert {u: ids[u] for u in others} == {u: ids_before[u] for u in others}
    # in every later run, without the file: the stored decisions still hold
    linked.execute('DROP TABLE raw."keputusan_tautan"')
    take_in(linked, deliver(tmp_path, linked, link="", tag="d2"))
    clusters.build_person_clusters(linked, 0.95)
    assert _clusters(linked) == after


def test_a_later_link_decision_replaces_an_earlier_one(linked, tmp_path):
    take_in(linked, deliver(tmp_path, linked, link="dukcapil,1,dtks,2,Tidak,OFC-1,2026-10-20\n"))
    clusters.build_person_clusters(linked, 0.95)
    assert _clusters(linked)["dtks:2"] != _clusters(linked)["dukcapil:1"]
    take_in(
        linked, deliver(tmp_path, linked, link="dtks,2,dukcapil,1,Ya,OFC-2,2026-10-25\n", tag="d2")
    )
    clusters.build_person_clusters(linked, 0.95)
    assert _clusters(linked)["dtks:2"] == _clusters(linked)["dukcapil:1"]


# --- the whole graph on the sample, with decision files ----------------------------------------
def test_sample_run_with_decision_files(tmp_path, monkeypatch):
    """The delivery as an office hands it back: review and link decisions declared in sources.yaml
    beside the sample's sources, after a first run published the worklist they answer. The next run
    of the full determination: decisions applied next to what the pipeline said, the link decisions
    split and join, the bad rows set aside and reported back to the office, nothing else changed by
    them."""
    import shutil

    from satudata_pipeline import config
    from satudata_pipeline_tests.publish_helpers import connect, run_job

    data = tmp_path / "delivery"
    shutil.copytree(config.PROJECT_DIR / "data", data, ignore=shutil.ignore_patterns("truth"))
    state = tmp_path / "state"
    monkeypatch.setenv("SATUDATA_STATE_DIR", str(state))
    monkeypatch.setenv("SATUDATA_DATA_DIR", str(data))
    warehouse = state / "warehouse.duckdb"
    assert run_job(data, warehouse).success  # the publication the office's worklist came from
    with open(data / "sources.yaml", "a") as fh:
        fh.write(
            textwrap.dedent("""\
            - name: keputusan_kantor
              kind: review_decision
              path: keputusan_kantor.csv
              extracted_at: 2026-10-30
              date_format: "%d/%m/%Y"
              columns: {program: Program, record_id: ID Baris, decision: Keputusan, reason: Alasan,
                        decided_by: Petugas, decided_at: Tanggal, note: Catatan}
              values:
                decision: {tetap: keep, hapus: remove}
            - name: keputusan_tautan
              kind: link_decision
              path: keputusan_tautan.csv
              extracted_at: 2026-10-30
              columns: {source_a: sumber_a, record_id_a: id_a, source_b: sumber_b, record_id_b: id_b,
                        same_person: sama, decided_by: petugas, decided_at: tanggal}
            """)
        )
    # sample rows (data/truth): KAJ/2022/000003 is removed for age, KAJ/2025/000022 reviewed for
    # its desil; KLJ2023-000041 and KLJ2024-000026 are two people, linked by NIK to two civil rows
    (data / "keputusan_kantor.csv").write_text(
        textwrap.dedent("""\
        Program,ID Baris,Keputusan,Alasan,Petugas,Tanggal,Catatan
        KAJ,KAJ/2022/000003,tetap,appeal_upheld,DINSOS-017,20/10/2026,sanggah diterima
        KAJ,KAJ/2025/000022,hapus,welfare_too_high,DINSOS-017,21/10/2026,
        KAJ,KAJ/9999/000001,tetap,,DINSOS-018,21/10/2026,
        KLJ,KLJ2023-000041,mungkin,,DINSOS-018,21/10/2026,
        """)
    )
    (data / "keputusan_tautan.csv").write_text(
        textwrap.dedent("""\
        sumber_a,id_a,sumber_b,id_b,sama,petugas,tanggal
        klj,KLJ2023-000041,dukcapil_penduduk,3100000003,Tidak,DUKCAPIL-2,2026-10-22
        klj,KLJ2024-000026,dukcapil_penduduk,3100000003,Ya,DUKCAPIL-2,2026-10-22
        klj,KLJ0000-000000,dukcapil_penduduk,3100000003,Ya,DUKCAPIL-2,2026-10-22
        """)
    )
    result = run_job(data, warehouse)
    assert result.success
    checks = {(e.asset_check_key.name): e.passed for e in result.get_asset_check_evaluations()}
    assert checks["no_decision_set_aside"] is False  # WARN: three rows set aside
    assert checks["no_deceased_or_moved_keep"] and checks["delivery_is_complete"]
    conn = connect(warehouse)
    try:
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT record_id, verdict, pipeline_verdict, decision, decision_status, decided_by "
                "FROM main.beneficiary_review WHERE program IN ('KAJ', 'KLJ')"
            ).fetchall()
        }
        assert rows["KAJ/2022/000003"] == ("keep", "remove", "keep", "applied", "DINSOS-017")
        assert rows["KAJ/2025/000022"] == ("remove", "review", "remove", "applied", "DINSOS-017")
        decided = conn.execute(
            "SELECT count(*) FROM main.beneficiary_review WHERE decision IS NOT NULL"
        ).fetchall()[0][0]
        assert decided == 2
        assert (
            conn.execute(
                "SELECT count(*) FROM main.beneficiary_review WHERE verdict <> pipeline_verdict"
            ).fetchall()[0][0]
            == 2
        )
        assert dict(
            conn.execute(
                "SELECT row_number, reason FROM decisions.set_aside WHERE kind = 'review_decision'"
            ).fetchall()
        ) == {3: "unknown_record", 4: "malformed_decision"}
        assert conn.execute(
            "SELECT row_number, reason FROM decisions.set_aside WHERE kind = 'link_decision'"
        ).fetchall() == [(3, "unknown_record")]
        person = dict(
            conn.execute(
                "SELECT source || ':' || record_id, person_id FROM main.person_source_link WHERE record_id IN "
                "('KLJ2023-000041', 'KLJ2024-000026', '3100000003')"
            ).fetchall()
        )
        assert person["klj:KLJ2023-000041"] != person["dukcapil_penduduk:3100000003"]
        assert person["klj:KLJ2024-000026"] == person["dukcapil_penduduk:3100000003"]
    finally:
        conn.close()
    report = (state / "exports" / "KAJ" / "keputusan_ditolak_KAJ.csv").read_text(
        encoding="utf-8-sig"
    )
    assert "KAJ/9999/000001" in report and "baris tidak ditemukan" in report
    assert "DINSOS" not in report and "sanggah" not in report
    assert "KLJ0000-000000" in (state / "exports" / "_keputusan_ditolak_tautan.csv").read_text(
        encoding="utf-8-sig"
    )


# --- review fixes (docs/decisions.md) ------------------------------------------------------------
def _leave_roster(conn, record_id: str) -> None:
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE _gone_psl AS SELECT * FROM main.person_source_link WHERE record_id = '{record_id}'"
    )
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE _gone_pr AS SELECT * FROM link.person_records WHERE record_id = '{record_id}'"
    )
    conn.execute(f"DELETE FROM main.person_source_link WHERE record_id = '{record_id}'")
    conn.execute(f"DELETE FROM link.person_records WHERE record_id = '{record_id}'")


def _come_back(conn) -> None:
    conn.execute("INSERT INTO main.person_source_link SELECT * FROM _gone_psl")
    conn.execute("INSERT INTO link.person_records SELECT * FROM _gone_pr")


def _publish(conn, snapshot=FIXTURE_SNAPSHOT, when=dt.datetime(2026, 10, 5)):
    from satudata_pipeline.history import store

    rows = determine(conn, snapshot)
    store.record_determination(conn, f"run-{when:%m%d}", when)
    return rows


def test_a_row_back_in_the_roster_without_known_evidence_is_reopened_not_applied(wh, tmp_path):
    """A keep decided on a row that then left the roster: when it comes back after its person died
    (and no history says what the keep answered), the keep is shown, reopened, never applied."""
    take_in(wh, deliver(tmp_path, wh, "KLJ,KLJ-007,tetap,confirmed_alive,OFC-1,20-10-2026,\n"))
    assert determine(wh)["KLJ-007"][:4] == ("keep", "review", "keep", "applied")
    _leave_roster(wh, "KLJ-007")
    assert "KLJ-007" not in determine(wh)
    _come_back(wh)
    _add_death(wh, "P07", "2026-11-15")
    rows = determine(wh, dt.date(2026, 12, 1))
    assert rows["KLJ-007"][:4] == ("review", "remove", "keep", "reopened")
    # and it stays so: an unknown answer is carried as unknown, not as the new evidence
    assert determine(wh, dt.date(2026, 12, 1))["KLJ-007"][:4] == (
        "review",
        "remove",
        "keep",
        "reopened",
    )
    assert verdicts.check_no_deceased_or_moved_keep(wh)[0] == 0


def test_a_row_back_in_the_roster_takes_the_evidence_its_decision_answered_from_the_history(
    wh, tmp_path
):
    take_in(wh, deliver(tmp_path, wh, "KLJ,KLJ-007,tetap,confirmed_alive,OFC-1,20-10-2026,\n"))
    assert _publish(wh, when=dt.datetime(2026, 10, 21))["KLJ-007"][:4] == (
        "keep",
        "review",
        "keep",
        "applied",
    )
    _leave_roster(wh, "KLJ-007")
    assert "KLJ-007" not in _publish(wh, when=dt.datetime(2026, 11, 2))
    _come_back(wh)
    # back unchanged: the keep answered this very evidence (history), it applies
    assert _publish(wh, when=dt.datetime(2026, 11, 3))["KLJ-007"][:4] == (
        "keep",
        "review",
        "keep",
        "applied",
    )
    _leave_roster(wh, "KLJ-007")
    _publish(wh, when=dt.datetime(2026, 11, 4))
    _come_back(wh)
    _add_death(wh, "P07", "2026-11-15")
    assert determine(wh, dt.date(2026, 12, 1))["KLJ-007"][:4] == (
        "review",
        "remove",
        "keep",
        "reopened",
    )


def test_a_second_roster_with_the_same_record_id_does_not_inherit_the_decision(wh, tmp_path):
    take_in(wh, deliver(tmp_path, wh, "KLJ,KLJ-007,tetap,confirmed_alive,OFC-1,20-10-2026,\n"))
    assert wh.execute(f"SELECT roster_source FROM {intake.REVIEW_STORE}").fetchall() == [
        ("klj_2026",)
    ]
    # next month a second KLJ roster arrives carrying a row with the same record_id
    wh.execute(
        "INSERT INTO link.person_records SELECT * REPLACE ('klj_susulan' AS source, "
        "'klj_susulan:KLJ-007' AS unique_id) FROM link.person_records WHERE record_id = 'KLJ-007'"
    )
    wh.execute(
        "INSERT INTO main.person_source_link SELECT * REPLACE ('klj_susulan' AS source, "
        "'klj_susulan:KLJ-007' AS unique_id) FROM main.person_source_link WHERE record_id = 'KLJ-007'"
    )
    determine(wh)
    got = dict(
        (s, r)
        for s, *r in wh.execute(
            "SELECT source, verdict, decision, decision_status FROM main.beneficiary_review "
            "WHERE record_id = 'KLJ-007'"
        ).fetchall()
    )
    assert got["klj_2026"] == ["keep", "keep", "applied"]
    assert got["klj_susulan"][1:] == [None, None]
    assert got["klj_susulan"][0] != "keep"


def _p11_rows(conn) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT record_id, verdict, reasons FROM main.beneficiary_review WHERE record_id IN ('KJP-011', 'KJMU-011')"
        ).fetchall()
    }


def test_a_duplicate_of_a_removed_row_is_not_removed_the_person_keeps_one(wh):
    """P11 holds KJP-011 (earlier) and KJMU-011 (excluded with KJP). Born 2004 they are 22: too old for
    KJP (age_ineligible, removed); the KJMU row is then not a duplicate of a removed row."""
    assert _p11_rows(wh)["KJMU-011"][0] == "remove"  # the pipeline's dup while KJP-011 is kept
    wh.execute(
        "UPDATE main.golden_person SET tanggal_lahir = DATE '2004-01-01' WHERE person_id = 'P11'"
    )
    determine(wh)
    rows = _p11_rows(wh)
    assert rows["KJP-011"][0] == "remove" and "age_ineligible" in rows["KJP-011"][1]
    assert rows["KJMU-011"][0] == "keep" and "duplicate_enrollment" not in rows["KJMU-011"][1]


def test_a_duplicate_of_a_row_removed_by_decision_is_not_removed(wh, tmp_path):
    take_in(wh, deliver(tmp_path, wh, "KJP,KJP-011,hapus,other,OFC-1,20-10-2026,\n"))
    determine(wh)
    rows = _p11_rows(wh)
    assert rows["KJP-011"][0] == "remove"
    assert rows["KJMU-011"][0] != "remove" and "duplicate_enrollment" not in rows["KJMU-011"][1]
    # P10: KJP-010B (earliest) kept, the later A and C still removed as its duplicates
    assert determine(wh)["KJP-010A"][0] == "remove"


def test_a_contradiction_sends_the_row_to_review_with_the_decision_in_force_before(wh, tmp_path):
    """KLJ-002 (pipeline: remove, a registered death): a keep confirmed_alive is in force; then two
    officers disagree on a later date. The row must not fall back to remove with empty decision
    columns: it is reviewed, the earlier keep shown."""
    take_in(
        wh, deliver(tmp_path, wh, "KLJ,KLJ-002,tetap,confirmed_alive,OFC-1,15-10-2026,\n", tag="d1")
    )
    assert determine(wh)["KLJ-002"] == (
        "keep",
        "remove",
        "keep",
        "applied",
        "confirmed_alive",
        "OFC-1",
    )
    wh.execute('DROP TABLE raw."keputusan_review"')
    res = take_in(
        wh,
        deliver(
            tmp_path,
            wh,
            """\
        KLJ,KLJ-002,tetap,other,OFC-2,20-10-2026,
        KLJ,KLJ-002,hapus,deceased,OFC-3,20-10-2026,
        """,
            tag="d2",
        ),
    )
    assert set_aside(wh) == {1: "contradiction", 2: "contradiction"}
    assert res.in_force_review == 0
    rows = determine(wh)
    assert rows["KLJ-002"] == (
        "review",
        "remove",
        "keep",
        "contradicted",
        "confirmed_alive",
        "OFC-1",
    )
    # a later decision settles it
    wh.execute('DROP TABLE raw."keputusan_review"')
    take_in(wh, deliver(tmp_path, wh, "KLJ,KLJ-002,hapus,deceased,OFC-3,25-10-2026,\n", tag="d3"))
    assert determine(wh)["KLJ-002"][:4] == ("remove", "remove", "remove", "applied")


def test_chained_contradicting_link_decisions_set_the_not_same_decision_aside(linked, tmp_path):
    """dukcapil:5 = dtks:5 and dtks:5 = dukcapil:6 (same person, by decision) but dukcapil:5 != dukcapil:6:
    the != cannot apply; it is set aside as a contradiction and reported back, not dropped silently."""
    from satudata_pipeline.decisions import report

    res = take_in(
        linked,
        deliver(
            tmp_path,
            linked,
            link="""\
        dukcapil,5,dtks,5,Ya,OFC-1,2026-10-20
        dtks,5,dukcapil,6,Ya,OFC-1,2026-10-20
        dukcapil,6,dukcapil,5,Tidak,OFC-2,2026-10-21
        """,
        ),
    )
    assert set_aside(linked) == {3: "contradiction"}
    assert res.set_aside == {"contradiction": 1} and res.in_force_link == 2
    result = clusters.build_person_clusters(linked, 0.95)
    after = _clusters(linked)
    assert after["dukcapil:5"] == after["dtks:5"] == after["dukcapil:6"]
    assert result.decisions_conflicting == 0
    counts = report.write_set_aside_reports(linked, tmp_path / "exp", tmp_path / "exp", [])
    assert counts == {report.ROOT_LINK: 1}
    text = (tmp_path / "exp" / report.ROOT_LINK).read_text(encoding="utf-8-sig")
    assert "contradiction" in text and ";dukcapil;5;dukcapil;6;" in text.replace("\r", "")
    # the next delivery without files: still set aside (the WARN check keeps counting it)
    linked.execute('DROP TABLE raw."keputusan_tautan"')
    again = take_in(linked, deliver(tmp_path, linked, link="", tag="d2"))
    assert again.set_aside == {"contradiction": 1}


def test_deliveries_differing_only_by_a_decision_file_have_different_fingerprints(wh, tmp_path):
    from satudata_pipeline.history import versions

    take_in(wh, deliver(tmp_path, wh, "KLJ,KLJ-006,tetap,other,OFC-1,20-10-2026,\n", tag="a"))
    first = versions.delivery_fingerprint(wh)
    assert first is not None
    wh.execute('DROP TABLE raw."keputusan_review"')
    take_in(wh, deliver(tmp_path, wh, "KLJ,KLJ-006,hapus,other,OFC-1,21-10-2026,\n", tag="b"))
    assert versions.delivery_fingerprint(wh) not in (None, first)
    staged = {r[0] for r in wh.execute(f"SELECT source FROM {versions.DELIVERY_FILES}").fetchall()}
    assert staged == {"keputusan_review"}


def test_decided_by_must_be_an_officer_id_and_a_nik_in_a_note_is_scrubbed(wh, tmp_path):
    res = take_in(
        wh,
        deliver(
            tmp_path,
            wh,
            """\
        KLJ,KLJ-006,tetap,other,Budi,20-10-2026,
        KLJ,KLJ-007,tetap,other,OFC-1,20-10-2026,NIK 3171012345678901 dicek di rumah
        KLJ,KLJ-009,tetap,other,budi.santoso,20-10-2026,
        KLJ,KLJ-024,tetap,other,DINSOS_017,20-10-2026,x3171012345678901234 is not a NIK
        """,
        ),
    )
    assert set_aside(wh) == {1: "malformed_decided_by", 3: "malformed_decided_by"}
    assert res.stored_review == 2
    notes = dict(wh.execute(f"SELECT record_id, note FROM {intake.REVIEW_STORE}").fetchall())
    assert notes["KLJ-007"] == "NIK [NIK dihapus] dicek di rumah"
    assert notes["KLJ-024"] == "x3171012345678901234 is not a NIK"
    assert not any(
        "3171012345678901" in (r[0] or "")
        for r in wh.execute(
            f"SELECT note FROM {intake.REVIEW_STORE} WHERE record_id = 'KLJ-007'"
        ).fetchall()
    )


def test_the_officer_id_pattern_comes_from_the_intake_rules(tmp_path):
    from satudata_pipeline.contract.intake import INTAKE_RULES, IntakeRulesError, load_intake_rules

    assert load_intake_rules().decisions.officer_id_pattern
    bad = tmp_path / "intake_rules.yaml"
    bad.write_text(
        INTAKE_RULES.read_text().replace(
            "officer_id_pattern: '^(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{1,64}$'",
            "officer_id_pattern: '(['",
        )
    )
    with pytest.raises(IntakeRulesError, match="officer_id_pattern"):
        load_intake_rules(bad)


def test_a_decision_stored_before_roster_source_existed_takes_the_published_roster(wh, tmp_path):
    take_in(wh, deliver(tmp_path, wh, "KLJ,KLJ-006,tetap,other,OFC-1,20-10-2026,\n", tag="a"))
    wh.execute(f"UPDATE {intake.REVIEW_STORE} SET roster_source = NULL")  # as an older store
    wh.execute('DROP TABLE raw."keputusan_review"')
    res = take_in(wh, deliver(tmp_path, wh, None, tag="b"))
    assert res.in_force_review == 1
    assert wh.execute(f"SELECT roster_source FROM {intake.REVIEW_STORE}").fetchall() == [
        ("klj_2026",)
    ]
