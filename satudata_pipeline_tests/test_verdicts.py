"""Verdicts, eligibility, summary and the Dagster assets on a hand-built warehouse."""

from __future__ import annotations

import collections
import re
from datetime import date

import dagster as dg
import duckdb
import pandas as pd
import pytest
from fixtures.programs_warehouse import EXPECTED, FIXTURE_SNAPSHOT, build_fixture_warehouse
from fixtures.resources import run_resources

from satudata_pipeline.contract.program_rules import ProgramRulesError, load_rules
from satudata_pipeline.programs import REASON_CODES
from satudata_pipeline.programs.eligibility import build_eligible_not_enrolled
from satudata_pipeline.programs.evaluation import verdict_accuracy
from satudata_pipeline.programs.summary import build_program_summary, money_at_stake
from satudata_pipeline.programs.verdicts import (
    BENEFICIARY_REVIEW_COLUMNS,
    build_beneficiary_review,
    check_no_deceased_or_moved_keep,
    check_no_double_enrollment_keep,
)


@pytest.fixture()
def conn():
    c = duckdb.connect()
    build_fixture_warehouse(c)
    yield c
    c.close()


@pytest.fixture()
def rules():
    return load_rules()


def _review(conn, rules, snapshot=FIXTURE_SNAPSHOT) -> dict:
    build_beneficiary_review(conn, rules, snapshot)
    df = conn.execute("SELECT * FROM main.beneficiary_review").df()
    return {(r.source, r.record_id): r for r in df.itertuples(index=False)}


def test_every_roster_row_gets_the_expected_verdict(conn, rules):
    got = _review(conn, rules)
    assert set(got) == set(EXPECTED), "one row per roster row, quarantined ones included"
    for key, (verdict, reasons) in EXPECTED.items():
        assert (got[key].verdict, list(got[key].reasons)) == (verdict, reasons), key


def test_fixture_covers_every_reason_code_and_the_keep_path(conn, rules):
    got = _review(conn, rules)
    seen = {r for row in got.values() for r in row.reasons}
    assert seen == set(REASON_CODES)
    assert any(row.verdict == "keep" and len(row.reasons) == 0 for row in got.values())


def test_schema_and_types(conn, rules):
    build_beneficiary_review(conn, rules, FIXTURE_SNAPSHOT)
    schema = dict(
        conn.execute(
            "SELECT column_name, column_type FROM (DESCRIBE main.beneficiary_review)"
        ).fetchall()
    )
    assert schema == BENEFICIARY_REVIEW_COLUMNS
    reasons_sorted = conn.execute(
        "SELECT bool_and(reasons = list_sort(reasons)) FROM main.beneficiary_review"
    ).fetchall()[0][0]
    assert reasons_sorted


def test_evidence_names_source_record_and_date(conn, rules):
    got = _review(conn, rules)
    assert got[("klj_2026", "KLJ-002")].evidence == "deceased: dukcapil_kematian/K000002 2026-03-01"
    assert got[("klj_2026", "KLJ-003")].evidence.startswith(
        "moved_out: dukcapil_pindah/M000003 2026-02-01"
    )
    assert (
        "dtks/D000006" in got[("klj_2026", "KLJ-006")].evidence
        and "desil 7 > 4" in got[("klj_2026", "KLJ-006")].evidence
    )
    assert "kjp_2026/KJP-010B" in got[("kjp_2026", "KJP-010A")].evidence
    assert "age 26" in got[("kjp_2026", "KJP-004")].evidence
    multi = got[("klj_2026", "KLJ-021")].evidence.split("; ")
    assert [e.split(":")[0] for e in multi] == ["deceased", "stale_record", "welfare_too_high"]
    assert pd.isna(got[("kjp_2026", "KJP-001")].evidence)


def test_death_and_moves_are_taken_at_the_snapshot(conn, rules):
    got = _review(conn, rules)
    # left DKI in 2025, came back after the snapshot: out of DKI *at* the snapshot
    assert got[("klj_2026", "KLJ-026")].reasons.tolist() == ["moved_out"]
    assert "dukcapil_pindah/M000026 2025-03-01" in got[("klj_2026", "KLJ-026")].evidence
    assert got[("klj_2026", "KLJ-027")].verdict == "keep"  # left in 2024, came back in 2025
    before = _review(conn, rules, date(2025, 2, 1))
    assert "moved_out" not in before[("klj_2026", "KLJ-026")].reasons.tolist()


def test_possible_death_is_reviewed_never_removed(conn, rules):
    """A death record that could be this person or a namesake: reason deceased, verdict review."""
    pid = _review(conn, rules)[("kjp_2026", "KJP-001")].person_id
    conn.execute(
        "UPDATE main.golden_person SET possible_death_evidence = "
        "'dukcapil_kematian/K000099 (one of 2 residents it can be)' WHERE person_id = ?",
        [pid],
    )
    row = _review(conn, rules)[("kjp_2026", "KJP-001")]
    assert (row.verdict, row.reasons.tolist()) == ("review", ["deceased"])
    assert row.evidence == (
        "deceased (possible, to check): death record "
        "dukcapil_kematian/K000099 (one of 2 residents it can be)"
    )
    # a registered death of the same person still removes, and says only that
    dead = _review(conn, rules)[("klj_2026", "KLJ-002")]
    assert dead.verdict == "remove" and "possible" not in dead.evidence
    # on a row removed for another reason it is named in the evidence, not listed: deceased with
    # remove always means a registered death
    aged = _review(conn, rules)[("kjp_2026", "KJP-004")]
    conn.execute(
        "UPDATE main.golden_person SET possible_death_evidence = 'dukcapil_kematian/K000098 "
        "(one of 2 residents it can be)' WHERE person_id = ?",
        [aged.person_id],
    )
    aged = _review(conn, rules)[("kjp_2026", "KJP-004")]
    assert (aged.verdict, aged.reasons.tolist()) == ("remove", ["age_ineligible"])
    assert "deceased (possible, to check)" in aged.evidence


@pytest.mark.parametrize(
    ("method", "why"),
    [
        ("dominant_link", "linked to two residents of its home"),
        ("only_link", "each other's only candidate, at another address"),
    ],
)
def test_a_row_placed_without_identification_is_never_removed_on_that_tie(conn, rules, method, why):
    """A roster row placed with a person, not identified as that person (linked to two residents
    of its home and placed with the one its links favour; or each the other's only candidate at
    another address): the person's registered death is reviewed for it, with why."""
    assert _review(conn, rules)[("klj_2026", "KLJ-002")].verdict == "remove"
    conn.execute(
        "UPDATE main.person_source_link SET link_method = ? "
        "WHERE source = 'klj_2026' AND record_id = 'KLJ-002'",
        [method],
    )
    row = _review(conn, rules)[("klj_2026", "KLJ-002")]
    assert (row.verdict, row.reasons.tolist()) == ("review", ["deceased"])
    assert why in row.evidence


def test_duplicate_enrollment_keeps_the_earliest_then_lowest_record_id(conn, rules):
    got = _review(conn, rules)
    # B and C started the same day (before A): B wins on record_id; A and C are removed
    assert got[("kjp_2026", "KJP-010B")].verdict == "keep"
    assert got[("kjp_2026", "KJP-010C")].reasons.tolist() == ["duplicate_enrollment"]
    assert got[("kjp_2026", "KJP-010A")].reasons.tolist() == ["duplicate_enrollment"]


def test_exclusion_between_programs(conn, rules):
    got = _review(conn, rules)
    assert got[("kjp_2026", "KJP-011")].verdict == "keep"  # enrolled 2022 in KJP
    assert got[("kjmu_2026", "KJMU-011")].verdict == "remove"  # KJMU 2025 excluded by KJP
    # without the exclusion, both rows are kept
    data = rules.model_dump(exclude={"source_path"})
    data["programs"]["KJP"]["excludes"] = []
    data["programs"]["KJMU"]["excludes"] = []
    from satudata_pipeline.contract.program_rules import parse_rules

    got = _review(conn, parse_rules(data))
    assert got[("kjmu_2026", "KJMU-011")].verdict == "keep"


def test_identity_unresolved_is_the_only_reason(conn, rules):
    got = _review(conn, rules)
    row = got[("kjp_2026", "KJP-012")]  # aged 36 in KJP, but roster-only: nothing else evaluated
    assert (row.verdict, row.reasons.tolist()) == ("review", ["identity_unresolved"])
    q = got[("kjp_2026", "KJP-Q01")]
    assert q.person_id is None and pd.isna(q.nominal_bulanan) and "quarantined" in q.evidence


def test_boundaries_age_staleness_and_death_after_snapshot(conn, rules):
    got = _review(conn, rules)
    assert got[("klj_2026", "KLJ-023")].verdict == "keep"  # 60th birthday on the snapshot
    assert got[("klj_2026", "KLJ-024")].verdict == "keep"  # verified exactly 12 months before
    assert got[("klj_2026", "KLJ-022")].verdict == "keep"  # death recorded after the snapshot
    assert (
        got[("klj_2026", "KLJ-024")].nominal_bulanan == 300_000
    )  # missing roster amount -> rule amount
    # a day later the KLJ-024 verification is stale and KLJ-022's death is past
    later = _review(conn, rules, date(2026, 12, 2))
    assert later[("klj_2026", "KLJ-024")].reasons.tolist() == ["stale_record"]
    assert later[("klj_2026", "KLJ-022")].reasons.tolist() == ["deceased"]


def test_parameters_come_from_the_rules(conn, rules):
    data = rules.model_dump(exclude={"source_path"})
    data["programs"]["KLJ"]["desil_max"] = 7
    data["common"]["staleness_months"] = 24
    from satudata_pipeline.contract.program_rules import parse_rules

    got = _review(conn, parse_rules(data))
    assert got[("klj_2026", "KLJ-006")].verdict == "keep"  # desil 7 now within the cut-off
    assert got[("klj_2026", "KLJ-009")].verdict == "keep"  # 17 months old, window now 24


def test_partial_rebuild_equals_full(conn, rules):
    build_beneficiary_review(conn, rules, FIXTURE_SNAPSHOT)
    full = conn.execute("SELECT * FROM main.beneficiary_review ORDER BY source, record_id").df()
    conn.execute(
        "UPDATE main.beneficiary_review SET verdict = 'x' WHERE program IN ('KJMU', 'KLJ')"
    )
    n = build_beneficiary_review(conn, rules, FIXTURE_SNAPSHOT, ["KJMU"])
    assert n == 2
    after = conn.execute("SELECT * FROM main.beneficiary_review ORDER BY source, record_id").df()
    assert (after[after.program == "KJMU"].reset_index(drop=True)).equals(
        full[full.program == "KJMU"].reset_index(drop=True)
    )
    assert (after[after.program == "KLJ"].verdict == "x").all()  # untouched
    with pytest.raises(ProgramRulesError, match="unknown program"):
        build_beneficiary_review(conn, rules, FIXTURE_SNAPSHOT, ["NOPE"])


def test_roster_of_unknown_program_is_an_error(conn, rules):
    conn.execute("UPDATE link.person_records SET program = 'KJX' WHERE record_id = 'KJP-001'")
    with pytest.raises(ProgramRulesError, match="KJX"):
        build_beneficiary_review(conn, rules, FIXTURE_SNAPSHOT)


def test_checks_pass_and_catch_violations(conn, rules):
    build_beneficiary_review(conn, rules, FIXTURE_SNAPSHOT)
    assert check_no_deceased_or_moved_keep(conn)[0] == 0
    assert check_no_double_enrollment_keep(conn, rules)[0] == 0
    conn.execute(
        "UPDATE main.beneficiary_review SET verdict = 'keep' WHERE record_id IN ('KLJ-002', 'KJP-010A', 'KJMU-011')"
    )
    n, sample = check_no_deceased_or_moved_keep(conn)
    assert n == 1 and sample.record_id.tolist() == ["KLJ-002"]
    assert set(sample.columns) == {"program", "source", "record_id"}
    n, sample = check_no_double_enrollment_keep(conn, rules)
    assert set(sample.record_id) == {"KJP-010A", "KJP-010B", "KJP-011", "KJMU-011"}


def test_eligible_not_enrolled(conn, rules):
    build_beneficiary_review(conn, rules, FIXTURE_SNAPSHOT)
    build_eligible_not_enrolled(conn, rules, FIXTURE_SNAPSHOT)
    df = conn.execute(
        "SELECT * FROM programs.eligible_not_enrolled ORDER BY program, peringkat"
    ).df()
    klj = df[df.program == "KLJ"]
    assert klj.person_id.tolist() == [
        "P14",
        "P15",
    ]  # desil 1 before desil 3; P16 desil 5, P17 car excluded
    assert klj.peringkat.tolist() == [1, 2]
    assert df[df.program == "KPDJ"].person_id.tolist() == ["P18"]
    assert "P18" in set(df[df.program == "PKH"].person_id)
    pangan = set(df[df.program == "PANGAN"].person_id)
    assert {"P01", "P19"} <= pangan  # recipient and the household member on the same KK
    assert "P13" not in set(df[df.program == "KJP"].person_id)  # KJMU holder: KJMU excludes KJP
    enrolled = set(
        conn.execute(
            "SELECT program || person_id FROM main.beneficiary_review WHERE person_id IS NOT NULL"
        ).fetchall()
    )
    assert not {(p + i,) for p, i in zip(df.program, df.person_id)} & enrolled
    dead_or_moved = {"P02", "P03", "P21", "P25"}
    assert not dead_or_moved & set(df.person_id)


def test_program_summary_money(conn, rules):
    build_beneficiary_review(conn, rules, FIXTURE_SNAPSHOT)
    build_program_summary(conn)
    money = money_at_stake(conn)
    assert money["KLJ"]["remove_rows"] == 5 and money["KLJ"]["remove_monthly_rupiah"] == 1_500_000
    assert money["KLJ"]["remove_annual_rupiah"] == 18_000_000
    assert money["KJMU"]["remove_monthly_rupiah"] == 1_500_000
    per_reason = conn.execute(
        """SELECT n_rows, nominal_bulanan FROM programs.program_summary
           WHERE program = 'KLJ' AND reason = 'deceased'"""
    ).fetchall()
    assert per_reason == [(3, 900_000)]
    assert (
        conn.execute(
            "SELECT count(*) FROM programs.program_summary WHERE verdict = 'keep'"
        ).fetchall()[0][0]
        == 0
    )
    names = conn.execute(
        "SELECT DISTINCT nama_kecamatan FROM programs.program_summary WHERE nama_kecamatan IS NOT NULL"
    ).fetchall()
    assert ("Gambir",) in names


def test_verdict_accuracy(conn, rules):
    build_beneficiary_review(conn, rules, FIXTURE_SNAPSHOT)
    truth = pd.DataFrame(
        [
            (k[0].split("_")[0].upper(), k[0], k[1], v, ",".join(r))
            for k, (v, r) in EXPECTED.items()
        ],
        columns=["program", "source", "record_id", "verdict", "reasons"],
    )
    result = verdict_accuracy(conn, truth)
    assert result["verdict_accuracy"] == result["accuracy"] == 1.0 and result["exact_match"] == 1.0
    assert all(
        v["precision"] == 1.0 and v["recall"] == 1.0
        for v in result["per_reason"].values()
        if v["support"]
    )
    truth.loc[truth.record_id == "KLJ-002", ["verdict", "reasons"]] = ["keep", ""]
    truth = pd.concat(
        [truth, pd.DataFrame([["KLJ", "klj_2026", "KLJ-999", "keep", None]], columns=truth.columns)]
    )
    result = verdict_accuracy(conn, truth)
    assert result["n_missing"] == 1 and result["verdict_accuracy"] == pytest.approx(
        (len(EXPECTED) - 1) / (len(EXPECTED) + 1)
    )
    assert result["per_reason"]["deceased"]["precision"] == pytest.approx(2 / 3)
    assert result["per_reason"]["deceased"]["remove_precision"] == pytest.approx(2 / 3)
    assert result["confusion"]["keep"]["remove"] == 1
    # a death listed but only reviewed counts for the reason, not for the removal
    conn.execute(
        "UPDATE main.beneficiary_review SET verdict = 'review' WHERE record_id = 'KLJ-021'"
    )
    d = verdict_accuracy(conn, truth)["per_reason"]["deceased"]
    assert d["recall"] == 1.0 and d["remove_recall"] == pytest.approx(1 / 2)
    assert "remove_recall" not in verdict_accuracy(conn, truth)["per_reason"]["stale_record"]


# ---- Dagster -------------------------------------------------------------------------------
def _materialize(db, **kwargs):
    from satudata_pipeline.programs.assets import build_program_assets

    return dg.materialize(
        [
            dg.AssetSpec("golden_person"),
            dg.AssetSpec("person_source_link"),
            *build_program_assets(),
        ],
        resources=run_resources(db, snapshot_date=FIXTURE_SNAPSHOT.isoformat()),
        **kwargs,
    )


@pytest.fixture()
def warehouse_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SATUDATA_STATE_DIR", str(tmp_path / "state"))
    db = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(db)) as c:
        build_fixture_warehouse(c)
    return db


def test_build_program_assets_shape():
    from satudata_pipeline.programs.assets import build_program_assets

    assets = build_program_assets()
    keys = {k.to_user_string() for a in assets for k in a.keys}
    assert keys == {
        "beneficiary_review",
        "eligible_not_enrolled",
        "program_summary",
        "published_lists",
        "program_exports",
    }
    review = next(a for a in assets if dg.AssetKey("beneficiary_review") in a.keys)
    assert {d.asset_key for d in review.specs_by_key[dg.AssetKey("beneficiary_review")].deps} == {
        dg.AssetKey("golden_person"), dg.AssetKey("person_source_link"),
    }  # fmt: skip
    checks = {c.name: c for c in review.check_specs}
    assert set(checks) == {"no_deceased_or_moved_keep", "no_double_enrollment_keep"}
    assert all(c.blocking and c.description for c in checks.values())
    assert all(a.group_names_by_key[k] == "programs" for a in assets for k in a.keys)
    dg.Definitions(assets=assets, resources=run_resources(":memory:"))


def test_materialize_in_process(warehouse_file, tmp_path):
    result = _materialize(warehouse_file)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"no_deceased_or_moved_keep": True, "no_double_enrollment_keep": True}
    meta = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert meta["beneficiary_review"]["dagster/row_count"].value == len(EXPECTED)
    by_verdict = {
        v: sum(1 for verdict, _ in EXPECTED.values() if verdict == v)
        for v in ("keep", "remove", "review")
    }
    assert by_verdict == dict(collections.Counter(v for v, _ in EXPECTED.values()))
    assert meta["beneficiary_review"]["by_verdict"].value == by_verdict
    assert (tmp_path / "state" / "exports" / "KLJ" / "KLJ_review.xlsx").exists()
    run_id = result.run_id
    report = tmp_path / "state" / "reports" / "runs" / run_id / "run_summary.html"
    page = report.read_text()
    assert "<svg" in page and 'lang="id"' in page and "<pre>" not in page and run_id in page
    # metadata: the run's page relative to the state folder (no machine path), money as Rp1.234.567
    assert (
        meta["program_summary"]["run_summary"].value
        == f"<state>/reports/runs/{run_id}/run_summary.html"
    )
    assert meta["program_summary"]["run_summary_url"].value.endswith(
        f"/runs/{run_id}/run_summary.html"
    )
    assert meta["program_summary"]["dagster/row_count"].value > 0
    assert re.fullmatch(
        r"Rp\d{1,3}(\.\d{3})*", meta["program_summary"]["annual_rupiah_at_stake"].value
    )
    assert "| KLJ |" in meta["program_summary"]["money_at_stake"].value
    assert str(tmp_path) not in repr(
        {k: {m: v.value for m, v in md.items()} for k, md in meta.items()}
    )
    # metadata never carries a NIK or a name
    text = repr({k: {m: v.value for m, v in md.items()} for k, md in meta.items()})
    assert "ORANG" not in text.upper() and "3171********" not in text and "317100000000" not in text
    with duckdb.connect(str(warehouse_file)) as c:
        assert c.execute("SELECT count(*) FROM programs.eligible_not_enrolled").fetchall()[0][0] > 0


def test_rematerialize_one_program(warehouse_file, tmp_path):
    assert _materialize(warehouse_file).success
    with duckdb.connect(str(warehouse_file)) as c:
        c.execute("UPDATE main.beneficiary_review SET verdict = 'stale' WHERE program <> 'KLJ'")
    result = _materialize(
        warehouse_file,
        selection=["beneficiary_review", "program_exports"],
        run_config={
            "ops": {
                "beneficiary_review": {"config": {"programs": ["KLJ"]}},
                "program_exports": {"config": {"programs": ["KLJ"]}},
            }
        },
    )
    assert result.success
    with duckdb.connect(str(warehouse_file)) as c:
        rows = dict(
            c.execute(
                "SELECT program, count(*) FILTER (verdict = 'stale') FROM main.beneficiary_review GROUP BY 1"
            ).fetchall()
        )
    assert (
        rows["KLJ"] == 0 and rows["KJP"] == sum(1 for src, _ in EXPECTED if src == "kjp_2026") == 10
    )


def test_blocking_check_stops_downstream(warehouse_file, monkeypatch):
    from satudata_pipeline.programs import verdicts

    monkeypatch.setattr(
        verdicts,
        "check_no_deceased_or_moved_keep",
        lambda conn, **kw: (1, pd.DataFrame([{"program": "KLJ"}])),
    )
    result = _materialize(warehouse_file, raise_on_error=False)
    assert not result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["no_deceased_or_moved_keep"] is False
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "program_exports" not in done and "eligible_not_enrolled" not in done
    assert "published_lists" not in done
