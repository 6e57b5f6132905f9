"""Month after month (contract section 5): the history of determinations and what changed.

Two full runs on one warehouse: a generated delivery (600 persons, seed 5), then the next month's
re-delivery of it with a few rows changed: a death registered for a kept KAJ child, a KAJ roster row
withdrawn and re-issued under a new id, and a KAJ amount changed. The history must then hold both
determinations, the changes table exactly those rows, the intake exactly those new / changed / gone
source rows; a publication that fails half-way adds nothing; `satudata history` shows a row's
determinations with the NIK masked. Small in-memory tests cover every verdict transition.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import duckdb
import openpyxl
import pytest
from publish_helpers import connect, generated_delivery, run_job, snapshot

from satudata_pipeline import cli
from satudata_pipeline.golden import publish
from satudata_pipeline.history import intake, query, store

NEW_ID = "KAJ/2026/900001"
DEATH_ID = "AKM-2026-900001"


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").rstrip("\n").split("\n")


def next_month(src: Path, dst: Path, dead: dict, dropped: str, amount: str) -> Path:
    """A copy of the delivery with a death, a roster row re-issued under a new id, and an amount changed."""
    shutil.copytree(src, dst)
    roster = dst / "roster_kaj.csv"
    lines = _lines(roster)
    out = []
    for line in lines:
        if line.startswith(dropped + ";"):
            continue  # withdrawn ...
        if line.startswith(amount + ";"):
            cells = line.split(";")
            cells[10] = str(int(cells[10]) - 50_000)  # nominal
            line = ";".join(cells)
        out.append(line)
    reissued = next(line for line in lines if line.startswith(dropped + ";"))
    out.append(NEW_ID + reissued[len(dropped) :])  # ... and re-issued under a new id
    roster.write_text("\n".join(out) + "\n", encoding="utf-8")
    deaths = dst / "dukcapil_kematian.csv"
    assert (
        _lines(deaths)[0] == "NO_AKTA;NIK;NAMA;JK;TGL_LAHIR;TGL_MATI;TEMPAT_MATI;KODE_WIL;TGL_LAPOR"
    )
    with open(deaths, "a", encoding="utf-8") as fh:
        fh.write(
            f"{DEATH_ID};{dead['nik']};{dead['nama']};{dead['jenis_kelamin']};"
            f"{dead['tanggal_lahir']:%Y%m%d};20261010;RUMAH;{dead['kode_kelurahan']};20261012\n"
        )
    return dst


def _metadata(result, key: str) -> dict:
    events = [
        e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key
    ]
    assert len(events) == 1, key
    return {k: getattr(v, "value", v) for k, v in events[0].materialization.metadata.items()}


@pytest.fixture(scope="module")
def months(tmp_path_factory):
    root = tmp_path_factory.mktemp("history")
    with generated_delivery(root) as (delivery, state):
        warehouse = state / "warehouse.duckdb"
        first = run_job(delivery, warehouse)
        assert first.success
        with connect(warehouse) as conn:
            # kept KAJ rows of persons with no other roster row and a valid NIK: changing one changes
            # nothing else
            candidates = conn.execute("""
                SELECT b.record_id, g.nik, g.nama, g.jenis_kelamin, g.tanggal_lahir, g.kode_kelurahan
                FROM main.beneficiary_review b JOIN main.golden_person g USING (person_id)
                WHERE b.program = 'KAJ' AND b.verdict = 'keep' AND g.tanggal_lahir IS NOT NULL
                  AND length(g.nik) = 16 AND g.kode_kelurahan IS NOT NULL
                  AND (SELECT count(*) FROM main.beneficiary_review o WHERE o.person_id = b.person_id) = 1
                ORDER BY b.record_id""").fetchall()
            first_rows = conn.execute("SELECT count(*) FROM main.beneficiary_review").fetchall()[0][
                0
            ]
        assert len(candidates) >= 3, "the sample needs three independent kept KAJ rows"
        cols = ("record_id", "nik", "nama", "jenis_kelamin", "tanggal_lahir", "kode_kelurahan")
        dead, dropped, amount = (dict(zip(cols, c)) for c in candidates[:3])
        second_delivery = next_month(
            delivery, root / "delivery_next", dead, dropped["record_id"], amount["record_id"]
        )
        second = run_job(second_delivery, warehouse)
        assert second.success
        after_second = snapshot(warehouse)
    return {
        "state": state,
        "warehouse": warehouse,
        "first": first,
        "second": second,
        "dead": dead,
        "dropped": dropped["record_id"],
        "amount": amount["record_id"],
        "first_rows": first_rows,
        "snapshot": after_second,
    }


def test_history_holds_both_determinations(months):
    with connect(months["warehouse"]) as conn:
        dets = conn.execute(
            "SELECT determination_id, run_id, snapshot_date, delivery_fingerprint, model_version, "
            "rules_version, review_rows FROM history.determinations ORDER BY 1"
        ).fetchall()
        per_det = dict(
            conn.execute(
                "SELECT determination_id, count(*) FROM history.review_rows GROUP BY 1"
            ).fetchall()
        )
        published = conn.execute("SELECT count(*) FROM main.beneficiary_review").fetchall()[0][0]
        log = [
            r[0]
            for r in conn.execute(
                "SELECT run_id FROM main.publication_log ORDER BY published_at"
            ).fetchall()
        ]
    assert [d[0] for d in dets] == [1, 2]
    assert [d[1] for d in dets] == log == [months["first"].run_id, months["second"].run_id]
    assert {d[2] for d in dets} == {dt.date(2026, 11, 1)}
    assert dets[0][3] and dets[1][3] and dets[0][3] != dets[1][3]  # another delivery
    assert dets[0][4] == dets[1][4] and dets[0][4]  # the same model ...
    assert dets[0][5] == dets[1][5] and dets[0][5]  # ... and rules
    assert per_det == {1: months["first_rows"], 2: published} and dets[1][6] == published


def test_changes_since_the_last_determination(months):
    with connect(months["warehouse"]) as conn:
        changes = conn.execute(
            "SELECT determination_id, previous_determination_id, program, record_id, change, "
            "verdict_before, verdict_after, nominal_before, nominal_after "
            "FROM main.determination_changes"
        ).fetchall()
        dead_reasons = conn.execute(
            "SELECT reasons FROM main.beneficiary_review WHERE program = 'KAJ' AND record_id = ?",
            [months["dead"]["record_id"]],
        ).fetchall()[0][0]
        same_person = conn.execute(
            "SELECT count(DISTINCT person_id) FROM history.review_rows WHERE program = 'KAJ' "
            "AND record_id IN (?, ?)",
            [months["dropped"], NEW_ID],
        ).fetchall()[0][0]
    assert {(r[2], r[3], r[4]) for r in changes} == {
        ("KAJ", months["dead"]["record_id"], "newly_removed"),
        ("KAJ", months["dropped"], "row_gone"),
        ("KAJ", NEW_ID, "new_row"),
        ("KAJ", months["amount"], "amount_changed"),
    }
    assert len(changes) == 4 and {(r[0], r[1]) for r in changes} == {(2, 1)}
    by_change = {r[4]: r for r in changes}
    assert by_change["newly_removed"][5:7] == ("keep", "remove") and "deceased" in dead_reasons
    assert by_change["amount_changed"][7] - by_change["amount_changed"][8] == 50_000
    assert same_person == 1  # the re-issued row found the same person


def test_change_counts_are_asset_metadata(months):
    published = _metadata(months["second"], "published_lists")
    review = _metadata(months["second"], "beneficiary_review")
    for md in (published, review):
        assert (
            md["rows_newly_removed"],
            md["rows_new_row"],
            md["rows_row_gone"],
            md["rows_amount_changed"],
            md["rows_reinstated"],
            md["rows_newly_in_review"],
            md["rows_left_review"],
        ) == (1, 1, 1, 1, 0, 0, 0)
        assert md["determination_for"] == "2026-11"
        assert "| KAJ | 1 | 0 | 0 | 0 | 1 | 1 | 1 |" in md["changes_since_last_determination"]
    assert published["determination"] == "determination for 2026-11 (no. 2 in this warehouse)"
    assert (
        "First determination"
        in _metadata(months["first"], "published_lists")["changes_since_last_determination"]
    )


def test_source_changes_at_intake(months):
    with connect(months["warehouse"]) as conn:
        counts = intake.source_change_counts(conn)
        rows = conn.execute("SELECT source, record_id, change FROM main.source_changes").fetchall()
        kaj = intake.changed_records(conn, "kaj")
        penduduk = intake.changed_records(conn, "dukcapil_penduduk")
        gone = intake.gone_records(conn, "kaj")
    assert set(rows) == {
        ("kaj", NEW_ID, "new"),
        ("kaj", months["amount"], "changed"),
        ("kaj", months["dropped"], "gone"),
        ("dukcapil_kematian", DEATH_ID, "new"),
    }
    assert kaj == {NEW_ID, months["amount"]} and gone == {months["dropped"]} and penduduk == set()
    for source, c in counts.items():
        assert c["compared_with_determination"] == 1
        expected = {"kaj": (1, 1, 1), "dukcapil_kematian": (1, 0, 0)}.get(source, (0, 0, 0))
        assert (c["new"], c["changed"], c["gone"]) == expected, source
        assert c["unchanged"] + c["new"] + c["changed"] == c["rows"] > 0
    md = _metadata(months["second"], "clean_kaj")
    assert (md["rows_new"], md["rows_changed"], md["rows_gone"]) == (1, 1, 1)
    assert (
        md["changes_since_last_publication"]
        == f"kaj: {md['rows_unchanged']} unchanged, 1 changed, 1 new, 1 gone"
    )
    assert (
        "no published delivery to compare with"
        in _metadata(months["first"], "clean_kaj")["changes_since_last_publication"]
    )


def test_failed_publication_adds_no_determination(months, tmp_path, monkeypatch):
    """The publish transaction fails after the determination and its review rows were inserted: the
    history, like the published tables, is as before."""
    state = tmp_path / "state"
    shutil.copytree(months["state"], state)
    warehouse = state / "warehouse.duckdb"
    with connect(warehouse) as conn:
        conn.execute(
            "UPDATE staging.beneficiary_review SET verdict = 'review' WHERE verdict = 'keep'"
        )

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(intake, "publish_hashes", broken)
    with connect(warehouse) as conn, pytest.raises(RuntimeError, match="disk full"):
        publish.publish(conn, "failing-run")
    assert snapshot(warehouse) == months["snapshot"]
    monkeypatch.undo()
    # control: the same publication, not broken, is the third determination, with its changes
    with connect(warehouse) as conn:
        publish.publish(conn, "good-run")
        info = store.latest_info(conn)
    assert info["determination_id"] == 3 and info["run_id"] == "good-run"
    assert info["changes"]["KAJ"]["newly_in_review"] > 0


def test_history_cli_masks_the_nik(months, monkeypatch, capsys):
    monkeypatch.setenv("SATUDATA_STATE_DIR", str(months["state"]))
    dead = months["dead"]
    assert cli.main(["history", "--program", "KAJ", "--record-id", dead["record_id"]]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if dead["record_id"] in line and line[0].isdigit()]
    assert (
        len(lines) == 2
        and " keep " in lines[0]
        and " remove " in lines[1]
        and "deceased" in lines[1]
    )
    masked = dead["nik"][:4] + "*" * 8 + dead["nik"][-4:]
    assert masked in out and dead["nik"] not in out and dead["nama"] not in out
    with connect(months["warehouse"]) as conn:
        person = conn.execute(
            "SELECT person_id FROM main.beneficiary_review WHERE program = 'KAJ' AND record_id = ?",
            [dead["record_id"]],
        ).fetchall()[0][0]
    assert cli.main(["history", "--person-id", person]) == 0
    assert capsys.readouterr().out.count(dead["record_id"]) == 2  # one line per determination
    assert cli.main(["history"]) == 0
    assert "2 determination(s)" in capsys.readouterr().out
    assert cli.main(["history", "--program", "KAJ", "--record-id", "NO-SUCH-ROW"]) == 1
    assert cli.main(["history", "--program", "KAJ"]) == 2


def test_perubahan_sheet_in_the_office_export(months):
    wb = openpyxl.load_workbook(
        months["state"] / "exports" / "KAJ" / "KAJ_review.xlsx", read_only=True
    )
    assert wb.sheetnames[-1] == "Perubahan"
    cells = [
        str(c) for row in wb["Perubahan"].iter_rows(values_only=True) for c in row if c is not None
    ]
    text = "\n".join(cells)
    for rid in (months["dead"]["record_id"], months["dropped"], NEW_ID, months["amount"]):
        assert rid in cells
    assert "baru dihapus" in cells and "nominal berubah" in cells
    assert not re.search(r"\d{16}", text) and months["dead"]["nama"] not in text
    assert re.search(r"\d{4}\*{8}\d{4}", text)
    # every office gets the sheet, also with nothing changed
    books = sorted((months["state"] / "exports").glob("*/*_review.xlsx"))
    assert len(books) >= 3
    for book in books:
        assert openpyxl.load_workbook(book, read_only=True).sheetnames[-1] == "Perubahan", book.name


# --------------------------------------------------------------------------------------------
# fast, in memory
# --------------------------------------------------------------------------------------------
def _review(conn, rows, decisions: bool = False):
    """main.beneficiary_review with its full schema (programs/verdicts.py); the rows give program,
    source, record_id, person_id, verdict, reasons, nominal_bulanan, nik_masked, snapshot_date and
    leave the other columns (the decision ones included) NULL."""
    from satudata_pipeline.programs.verdicts import BENEFICIARY_REVIEW_COLUMNS

    cols = ", ".join(f"{c} {t}" for c, t in BENEFICIARY_REVIEW_COLUMNS.items())
    conn.execute(f"CREATE OR REPLACE TABLE main.beneficiary_review ({cols})")
    given = "program, source, record_id, person_id, verdict, reasons, nominal_bulanan, nik_masked, "
    for r in rows:
        conn.execute(
            f"INSERT INTO main.beneficiary_review ({given}snapshot_date) VALUES "
            f"({', '.join('?' * len(r))})",
            list(r),
        )


def test_every_verdict_transition_is_named():
    conn = duckdb.connect()
    snap = dt.date(2026, 10, 1)
    _review(
        conn,
        [
            ("P", "s", "1", "A", "remove", ["deceased"], 100, None, snap),
            ("P", "s", "2", "B", "keep", [], 100, None, snap),
            ("P", "s", "3", "C", "review", ["stale_record"], 100, None, snap),
            ("P", "s", "4", "D", "remove", ["age_ineligible"], 100, None, snap),
            ("P", "s", "5", "E", "keep", [], 100, None, snap),
            ("P", "s", "6", "F", "keep", [], 100, None, snap),
            ("Q", "t", "1", "G", "keep", [], 100, None, snap),
        ],
    )
    first = store.record_determination(conn, "run-1", dt.datetime(2026, 10, 2))
    assert first["determination_id"] == 1 and first["changes"] == {}
    assert conn.execute("SELECT count(*) FROM main.determination_changes").fetchall()[0][0] == 0
    _review(
        conn,
        [
            ("P", "s", "1", "A", "keep", [], 100, None, snap),  # reinstated
            ("P", "s", "2", "B", "review", ["stale_record"], 100, None, snap),  # newly in review
            ("P", "s", "3", "C", "keep", [], 100, None, snap),  # left review
            (
                "P",
                "s",
                "4",
                "D",
                "review",
                ["identity_unresolved"],
                100,
                None,
                snap,
            ),  # remove -> review
            ("P", "s", "5", "E", "keep", [], 150, None, snap),  # amount
            ("P", "s", "7", "H", "keep", [], 100, None, snap),  # new row (6 gone)
            ("Q", "t", "1", "G", "remove", ["deceased"], 100, None, snap),  # newly removed
        ],
        decisions=True,
    )
    conn.execute(
        "UPDATE main.beneficiary_review SET decision = 'keep', decided_by = 'officer-7' WHERE record_id = '3'"
    )
    second = store.record_determination(conn, "run-2", dt.datetime(2026, 11, 2))
    got = set(
        conn.execute("SELECT program, record_id, change FROM main.determination_changes").fetchall()
    )
    assert got == {
        ("P", "1", "reinstated"),
        ("P", "2", "newly_in_review"),
        ("P", "3", "left_review"),
        ("P", "4", "newly_in_review"),
        ("P", "5", "amount_changed"),
        ("P", "7", "new_row"),
        ("P", "6", "row_gone"),
        ("Q", "1", "newly_removed"),
    }
    assert (
        second["changes"]["P"]["newly_in_review"] == 2
        and second["changes"]["Q"]["newly_removed"] == 1
    )
    # the decision columns are copied where the review has them, NULL where not
    decisions = conn.execute(
        "SELECT determination_id, record_id, decision, decided_by, pipeline_verdict "
        "FROM history.review_rows WHERE program = 'P' AND record_id = '3' ORDER BY 1"
    ).fetchall()
    assert decisions == [(1, "3", None, None, None), (2, "3", "keep", "officer-7", None)]
    rows = query.row_history(conn, "P", "1")
    assert [(r["determination_id"], r["verdict"]) for r in rows] == [(1, "remove"), (2, "keep")]
    # a person's history follows the ids merged into theirs
    conn.execute("CREATE SCHEMA golden")
    conn.execute(
        "CREATE TABLE golden.person_id_changes (run_id VARCHAR, changed_at TIMESTAMP, "
        "old_person_id VARCHAR, new_person_id VARCHAR, reason VARCHAR)"
    )
    conn.execute(
        "INSERT INTO golden.person_id_changes VALUES ('run-2', now(), 'F', 'H', 'merged'), "
        "('run-2', now(), 'Z', 'F', 'merged')"
    )
    assert query.earlier_ids(conn, "H") == ["F", "Z"]
    assert [(r["determination_id"], r["record_id"]) for r in query.person_history(conn, "H")] == [
        (1, "6"),
        (2, "7"),
    ]


def test_source_row_hash_ignores_what_does_not_matter():
    """Row position and raw spelling do not make a row changed; a canonical field does."""
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA clean")
    cols = ", ".join(f"{c} VARCHAR" for c in intake.HASH_FIELDS)
    conn.execute(
        f'CREATE TABLE clean."s" (source VARCHAR, record_id VARCHAR, row_number BIGINT, nama_asli VARCHAR, '
        f"{cols})"
    )
    conn.execute(
        'INSERT INTO clean."s" (source, record_id, row_number, nama_asli, nama, nik) VALUES '
        "('s', 'a', 1, 'Siti', 'SITI', '1'), ('s', 'b', 2, 'Budi', 'BUDI', '2'), "
        "('s', 'c', 3, 'Ani', 'ANI', '3')"
    )
    first = intake.detect_source_changes(conn, "s")
    assert (first["new"], first["compared_with_determination"]) == (3, None)
    intake.publish_hashes(conn, 1)
    conn.execute('UPDATE clean."s" SET row_number = row_number + 10, nama_asli = lower(nama_asli)')
    conn.execute("UPDATE clean.\"s\" SET nik = '9' WHERE record_id = 'b'")
    conn.execute("DELETE FROM clean.\"s\" WHERE record_id = 'c'")
    conn.execute(
        "INSERT INTO clean.\"s\" (source, record_id, nama, nik) VALUES ('s', 'd', 'DEDI', '4')"
    )
    second = intake.detect_source_changes(conn, "s")
    assert {k: second[k] for k in intake.CHANGES} == {
        "new": 1,
        "changed": 1,
        "unchanged": 1,
        "gone": 1,
    }
    assert second["compared_with_determination"] == 1
    assert intake.changed_records(conn, "s") == {"b", "d"} and intake.gone_records(conn, "s") == {
        "c"
    }
    assert sorted(conn.execute(intake.changed_unique_ids_sql(["s"])).fetchall()) == [
        ("s:b", "s", "b", "changed"),
        ("s:d", "s", "d", "new"),
    ]
    assert intake.describe("s", second) == "s: 1 unchanged, 1 changed, 1 new, 1 gone"


def test_scheduled_and_sensor_runs_name_their_month(tmp_path):
    import dagster as dg

    from satudata_pipeline import config
    from satudata_pipeline.contract.sources import load_delivery
    from satudata_pipeline.definitions import build_defs

    data = tmp_path / "data"
    shutil.copytree(config.PROJECT_DIR / "data", data, ignore=shutil.ignore_patterns("truth"))
    yaml_path = data / "sources.yaml"
    yaml_path.write_text(
        yaml_path.read_text().replace("snapshot_date: 2026-11-01", "snapshot_date: 2026-12-01")
    )
    defs = build_defs(load_delivery(data), warehouse=":memory:")
    expected = {"satudata/snapshot_date": "2026-12-01", "satudata/determination_for": "2026-12"}
    with dg.instance_for_test() as instance:
        scheduled = defs.resolve_schedule_def("monthly_determination").evaluate_tick(
            dg.build_schedule_context(instance=instance)
        )
        sensed = defs.resolve_sensor_def("new_delivery").evaluate_tick(
            dg.build_sensor_context(instance=instance)
        )
    for request in (*scheduled.run_requests, *sensed.run_requests):
        assert expected.items() <= request.tags.items()
    assert len(scheduled.run_requests) == len(sensed.run_requests) == 1


def test_perubahan_sheet_lists_the_changes_and_refuses_an_unmasked_nik(tmp_path):
    """On the hand-made fixture warehouse (no run): two determinations, one row turned remove."""
    from fixtures.programs_warehouse import FIXTURE_SNAPSHOT, build_fixture_warehouse

    from satudata_pipeline.contract.program_rules import load_rules
    from satudata_pipeline.programs.exports import ExportPrivacyError, export_programs
    from satudata_pipeline.programs.verdicts import build_beneficiary_review

    conn = duckdb.connect()
    build_fixture_warehouse(conn)
    build_beneficiary_review(conn, load_rules(), FIXTURE_SNAPSHOT)
    store.record_determination(conn, "run-1", dt.datetime(2026, 10, 2))
    first = export_programs(conn, tmp_path / "first")
    sheet = openpyxl.load_workbook(first["KLJ"]["xlsx"], read_only=True)["Perubahan"]
    assert "penetapan pertama" in " ".join(
        str(c) for row in sheet.iter_rows(values_only=True) for c in row if c
    )
    rid = conn.execute(
        "SELECT min(record_id) FROM main.beneficiary_review WHERE program = 'KLJ' "
        "AND verdict <> 'remove' AND nik_masked IS NOT NULL"
    ).fetchall()[0][0]
    conn.execute(
        "UPDATE main.beneficiary_review SET verdict = 'remove', reasons = ['deceased'] "
        "WHERE program = 'KLJ' AND record_id = ?",
        [rid],
    )
    store.record_determination(conn, "run-2", dt.datetime(2026, 11, 2))
    second = export_programs(conn, tmp_path / "second")
    wb = openpyxl.load_workbook(second["KLJ"]["xlsx"], read_only=True)
    assert wb.sheetnames[-1] == "Perubahan"
    rows = [
        r
        for r in wb["Perubahan"].iter_rows(values_only=True)
        if r and r[0] == "baru dihapus" and r[2]
    ]
    assert [(r[2], r[5], r[6]) for r in rows] == [(rid, "hapus", "meninggal (deceased)")]
    assert re.fullmatch(r"\d{4}\*{8}\d{4}", rows[0][3])
    conn.execute("UPDATE main.determination_changes SET nik_masked = '3171010101850002'")
    with pytest.raises(ExportPrivacyError, match="not masked"):
        export_programs(conn, tmp_path / "third")


def test_satudata_run_tags_its_run_with_the_month(tmp_path, monkeypatch):
    """`satudata run` launches its run with satudata/snapshot_date and satudata/determination_for (the
    launch itself replaced: what is checked is what the CLI asks for)."""
    from types import SimpleNamespace

    from satudata_pipeline import config

    launched = {}

    def launch(instance, run_config, tags):
        launched.update(tags)
        return SimpleNamespace(run_id="fake-run", success=True, all_events=[])

    monkeypatch.setattr(cli, "launch_in_code_location", launch)
    # what `satudata run` sets in the environment is restored after the test
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("SATUDATA_DATA_DIR", str(config.PROJECT_DIR / "data"))
    assert cli.main(["run", "--data-dir", str(config.PROJECT_DIR / "data")]) == 0
    assert launched["satudata/snapshot_date"] == "2026-11-01"
    assert launched["satudata/determination_for"] == "2026-11"


def test_history_prints_decision_status_and_date_and_applies_only_applied():
    from satudata_pipeline.history import query

    base = {
        "determination_id": 2,
        "snapshot_date": "2026-11-01",
        "published_at": None,
        "run_id": "r",
        "program": "KLJ",
        "source": "klj",
        "record_id": "7",
        "person_id": "P7",
        "nik_masked": "3171********0001",
        "verdict": "review",
        "reasons": ["deceased"],
        "pipeline_verdict": "remove",
        "decision": "keep",
        "decision_reason": "confirmed_alive",
        "decided_by": "OFC-1",
        "decided_at": "2026-10-20",
        "nominal_bulanan": 300000,
        "delivery_fingerprint": None,
    }
    reopened = query.format_rows([{**base, "decision_status": "reopened"}])
    assert "2026-10-20" in reopened and "[reopened, not applied]" in reopened
    applied = query.format_rows([{**base, "verdict": "keep", "decision_status": "applied"}])
    assert "[applied]" in applied and "not applied" not in applied
    contradicted = query.format_rows(
        [
            {
                **base,
                "decision": None,
                "decided_at": None,
                "decided_by": None,
                "decision_status": "contradicted",
            }
        ]
    )
    assert "[contradicted, not applied]" in contradicted


def test_hash_fields_come_from_the_clean_schema_and_keep_their_order():
    """The row hash reads the contract's clean columns (contract/schema.py), minus the derived and
    bookkeeping ones; a change of this list would mark every row of the next delivery changed."""
    from satudata_pipeline.contract.schema import CLEAN_COLUMNS, HASH_FIELDS, UNHASHED_COLUMNS

    assert intake.HASH_FIELDS is HASH_FIELDS
    assert [c for c in CLEAN_COLUMNS if c in HASH_FIELDS] == list(HASH_FIELDS)
    assert set(HASH_FIELDS) | UNHASHED_COLUMNS == set(CLEAN_COLUMNS)
    assert HASH_FIELDS == (
        "program", "nik", "no_kk", "nama", "jenis_kelamin", "tempat_lahir", "tanggal_lahir",
        "alamat", "rt", "rw", "kelurahan", "kecamatan", "kota", "kode_kelurahan",
        "tanggal_pemutakhiran", "tanggal_meninggal", "tanggal_pindah", "kode_wilayah_tujuan",
        "pindah_keluar_dki", "desil", "disabilitas", "punya_mobil", "njop_di_atas_1m", "jenjang",
        "nominal_bulanan", "tanggal_mulai",
    )  # fmt: skip


def test_the_history_refuses_a_review_without_its_columns():
    from satudata_pipeline.contract.schema import SchemaError

    conn = duckdb.connect()
    conn.execute(
        "CREATE TABLE main.beneficiary_review (program VARCHAR, source VARCHAR, record_id VARCHAR)"
    )
    with pytest.raises(
        SchemaError, match=r"table main.beneficiary_review lacks column\(s\) person_id"
    ):
        store.review_projection_sql(conn, "main.beneficiary_review", 1)
