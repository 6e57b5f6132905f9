"""Validation of satudata_pipeline/programs/rules.yaml (contract.program_rules)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from satudata_pipeline.config import PROGRAM_RULES
from satudata_pipeline.contract.program_rules import (
    ProgramRules,
    ProgramRulesError,
    age_at,
    load_rules,
)


@pytest.fixture()
def shipped() -> dict:
    return yaml.safe_load(PROGRAM_RULES.read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(
        data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8"
    )
    return path


def _error(tmp_path: Path, data: dict | str) -> str:
    path = _write(tmp_path, data)
    with pytest.raises(ProgramRulesError) as exc:
        load_rules(path)
    message = str(exc.value)
    assert str(path) in message, "the error must name the file"
    return message


def test_shipped_rules_load_with_the_documented_parameters():
    rules = load_rules()
    assert isinstance(rules, ProgramRules)
    assert {"KJP", "KJMU", "KAJ", "KLJ", "KPDJ", "PANGAN", "PKH"} <= rules.codes()
    kjp = rules.program("KJP")
    assert (kjp.age.min, kjp.age.max) == (6, 21)
    assert {j: kjp.amount_for(j) for j in ("SD", "SMP", "SMA", "SMK", "PKBM")} == {
        "SD": 250_000, "SMP": 300_000, "SMA": 420_000, "SMK": 450_000, "PKBM": 300_000,
    }  # fmt: skip
    assert rules.program("KJMU").amount == 1_500_000 and (
        rules.program("KJMU").age.min,
        rules.program("KJMU").age.max,
    ) == (18, 24)
    assert (rules.program("KAJ").age.min, rules.program("KAJ").age.max) == (0, 6)
    assert rules.program("KLJ").age.min == 60 and rules.program("KLJ").age.max is None
    assert rules.program("KPDJ").requires_disability
    assert rules.program("PANGAN").amount == 124_000
    assert ("KJP", "KJMU") in rules.exclusion_pairs() and ("KJMU", "KJP") in rules.exclusion_pairs()
    assert rules.effective("KLJ") == {
        "desil_max": 4, "staleness_months": 12, "exclude_car_owners": True, "exclude_njop_above_1bn": True,
    }  # fmt: skip
    for code, rule in rules.programs.items():
        assert rule.legal_basis, f"{code} needs a legal basis"
        for (
            basis
        ) in rule.legal_basis:  # a number without confirmation is flagged, never silently asserted
            assert basis.status in ("confirmed", "to_be_confirmed")


def test_adding_a_program_is_a_yaml_edit(tmp_path, shipped):
    shipped["programs"]["KJLB"] = {
        "name": "Kartu Jakarta Lansia Baru", "legal_basis": [{"title": "contoh"}],
        "age": {"min": 70}, "amount": 350000, "excludes": ["KLJ"],
    }  # fmt: skip
    rules = load_rules(_write(tmp_path, shipped))
    assert "KJLB" in rules.codes()
    assert ("KLJ", "KJLB") in rules.exclusion_pairs()


def test_unknown_field_is_rejected_with_its_path(tmp_path, shipped):
    shipped["programs"]["KLJ"]["umur_minimal"] = 60
    message = _error(tmp_path, shipped)
    assert "programs.KLJ.umur_minimal" in message and "unknown field" in message


def test_unknown_top_level_and_common_field(tmp_path, shipped):
    shipped["common"]["desil_cutoff"] = 4
    assert "common.desil_cutoff" in _error(tmp_path, shipped)


def test_age_range_min_above_max(tmp_path, shipped):
    shipped["programs"]["KJP"]["age"] = {"min": 22, "max": 21}
    message = _error(tmp_path, shipped)
    assert "programs.KJP.age" in message and "min (22) is greater than max (21)" in message


@pytest.mark.parametrize("value", [0, 11])
def test_desil_outside_1_to_10(tmp_path, shipped, value):
    shipped["programs"]["KAJ"]["desil_max"] = value
    assert "programs.KAJ.desil_max" in _error(tmp_path, shipped)
    shipped["programs"]["KAJ"].pop("desil_max")
    shipped["common"]["desil_max"] = value
    assert "common.desil_max" in _error(tmp_path, shipped)


def test_unknown_program_in_excludes(tmp_path, shipped):
    shipped["programs"]["KJP"]["excludes"] = ["KJMU", "KJX"]
    message = _error(tmp_path, shipped)
    assert "programs.KJP.excludes" in message and "'KJX'" in message


def test_unknown_program_in_household_of(tmp_path, shipped):
    shipped["programs"]["PANGAN"]["household_of"] = ["KJP", "NOPE"]
    assert "programs.PANGAN.household_of: unknown program 'NOPE'" in _error(tmp_path, shipped)


def test_negative_amounts(tmp_path, shipped):
    shipped["programs"]["KLJ"]["amount"] = -300000
    assert "programs.KLJ.amount" in _error(tmp_path, shipped)
    shipped["programs"]["KLJ"]["amount"] = 300000
    shipped["programs"]["KJP"]["amount_by_jenjang"]["SMA"] = -1
    message = _error(tmp_path, shipped)
    assert "programs.KJP.amount_by_jenjang" in message and "SMA" in message


def test_amount_must_be_given_exactly_once(tmp_path, shipped):
    broken = copy.deepcopy(shipped)
    broken["programs"]["KLJ"].pop("amount")
    assert "programs.KLJ" in _error(tmp_path, broken) and "exactly one of" in _error(
        tmp_path, broken
    )
    shipped["programs"]["KLJ"]["amount_by_jenjang"] = {"SD": 1}
    assert "exactly one of" in _error(tmp_path, shipped)


def test_unknown_jenjang(tmp_path, shipped):
    shipped["programs"]["KJP"]["amount_by_jenjang"]["SLTA"] = 1
    assert "unknown jenjang 'SLTA'" in _error(tmp_path, shipped)


def test_bad_program_code_and_duplicate_key(tmp_path, shipped):
    shipped["programs"]["kjp baru"] = copy.deepcopy(shipped["programs"]["KAJ"])
    assert "program code 'kjp baru'" in _error(tmp_path, shipped)
    text = PROGRAM_RULES.read_text(encoding="utf-8") + "\n  KJP:\n    name: again\n    amount: 1\n"
    assert "duplicate key 'KJP'" in _error(tmp_path, text)


def test_not_yaml_and_missing_file(tmp_path):
    assert "not valid YAML" in _error(tmp_path, "programs: [unclosed")
    assert "must be a mapping" in _error(tmp_path, "- just\n- a list\n")
    with pytest.raises(ProgramRulesError, match="cannot read"):
        load_rules(tmp_path / "nope.yaml")


def test_every_error_is_listed(tmp_path, shipped):
    shipped["programs"]["KAJ"]["desil_max"] = 12
    shipped["programs"]["KLJ"]["amount"] = -1
    message = _error(tmp_path, shipped)
    assert "programs.KAJ.desil_max" in message and "programs.KLJ.amount" in message


def test_age_at_counts_completed_years():
    from datetime import date

    assert age_at(date(2008, 2, 29), date(2026, 2, 28)) == 17
    assert age_at(date(2008, 2, 29), date(2026, 3, 1)) == 18
    assert age_at(date(1966, 11, 1), date(2026, 11, 1)) == 60
    assert age_at(None, date(2026, 11, 1)) is None
