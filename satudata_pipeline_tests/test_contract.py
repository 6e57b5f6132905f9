"""sources.yaml validation: one test per class of error, each naming source, file and column."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from satudata_pipeline.contract.sources import ContractError, check_files, parse_delivery

PROGRAMS = {"KJP", "KJMU", "KAJ", "KLJ", "KPDJ", "PANGAN", "PKH"}


def edit_yaml(data: Path, change) -> None:
    doc = yaml.safe_load((data / "sources.yaml").read_text())
    change(doc)
    (data / "sources.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def validate(data: Path):
    delivery = parse_delivery(data, program_codes=PROGRAMS)
    check_files(delivery)
    return delivery


def test_valid_delivery_parses(tiny_delivery):
    delivery = validate(tiny_delivery)
    source = delivery.source("penduduk")
    assert delivery.snapshot_date.isoformat() == "2026-11-01"
    assert source.file_format == "csv"
    assert source.values["jenis_kelamin"]["PEREMPUAN"] == "P"
    assert delivery.days_old(source) == 4


def test_unknown_kind(tiny_delivery):
    edit_yaml(tiny_delivery, lambda d: d["sources"][0].update(kind="census"))
    with pytest.raises(
        ContractError, match=r"source 'penduduk', field 'kind': unknown kind; expected one of"
    ) as err:
        validate(tiny_delivery)
    assert "census" not in str(err.value)  # errors name where, never echo what was given


def test_unknown_program(tiny_delivery):
    def change(d):
        d["sources"][0].update(kind="program_roster", program="BANSOS_X")

    edit_yaml(tiny_delivery, change)
    with pytest.raises(ContractError) as err:
        validate(tiny_delivery)
    assert "source 'penduduk'" in str(err.value) and "penduduk.csv" in str(err.value)
    assert "unknown program 'BANSOS_X'" in str(err.value)


def test_roster_without_program(tiny_delivery):
    edit_yaml(tiny_delivery, lambda d: d["sources"][0].update(kind="program_roster"))
    with pytest.raises(ContractError, match="program_roster needs `program:`"):
        validate(tiny_delivery)


def test_duplicate_names(tiny_delivery):
    # a deep copy: safe_dump writes shared sub-dicts as YAML aliases, which sources.yaml refuses
    edit_yaml(tiny_delivery, lambda d: d["sources"].append(copy.deepcopy(d["sources"][0])))
    with pytest.raises(ContractError, match="duplicate source name 'penduduk'"):
        validate(tiny_delivery)


def test_missing_file(tiny_delivery):
    (tiny_delivery / "penduduk.csv").unlink()
    with pytest.raises(
        ContractError, match=r"source 'penduduk', file 'penduduk.csv': file not found"
    ):
        validate(tiny_delivery)


def test_mapped_column_absent(tiny_delivery):
    edit_yaml(tiny_delivery, lambda d: d["sources"][0]["columns"].update(nik="NIK_KTP"))
    with pytest.raises(ContractError) as err:
        validate(tiny_delivery)
    message = str(err.value)
    assert "source 'penduduk'" in message and "file 'penduduk.csv'" in message
    assert "column 'NIK_KTP'" in message and "field 'nik'" in message


def test_missing_required_field(tiny_delivery):
    edit_yaml(tiny_delivery, lambda d: d["sources"][0]["columns"].pop("nama"))
    with pytest.raises(
        ContractError, match=r"source 'penduduk', field '\(entry\)'.*required field\(s\) \['nama'\]"
    ):
        validate(tiny_delivery)


def test_kind_specific_required_field(tiny_delivery):
    edit_yaml(tiny_delivery, lambda d: d["sources"][0].update(kind="death_registry"))
    with pytest.raises(ContractError, match=r"required field\(s\) \['tanggal_meninggal'\]"):
        validate(tiny_delivery)


def test_unknown_canonical_field(tiny_delivery):
    edit_yaml(tiny_delivery, lambda d: d["sources"][0]["columns"].update(gaji="GAJI"))
    with pytest.raises(ContractError, match=r"unknown canonical field\(s\) \['gaji'\]"):
        validate(tiny_delivery)


def test_unknown_source_key_is_a_typo(tiny_delivery):
    edit_yaml(tiny_delivery, lambda d: d["sources"][0].update(date_fromat="%d-%m-%Y"))
    with pytest.raises(ContractError, match=r"field 'date_fromat': unknown field"):
        validate(tiny_delivery)


def test_bad_name_and_encoding(tiny_delivery):
    edit_yaml(tiny_delivery, lambda d: d["sources"][0].update(name="Penduduk DKI"))
    with pytest.raises(ContractError, match="field 'name'"):
        validate(tiny_delivery)


def test_unknown_encoding(tiny_delivery):
    edit_yaml(tiny_delivery, lambda d: d["sources"][0].update(encoding="klingon-8"))
    with pytest.raises(
        ContractError, match="field 'encoding': unknown encoding; use a Python codec name"
    ):
        validate(tiny_delivery)


def test_empty_file(tiny_delivery):
    (tiny_delivery / "penduduk.csv").write_text("")
    with pytest.raises(ContractError, match=r"file 'penduduk.csv': file is empty"):
        validate(tiny_delivery)


def test_duplicate_mapped_header(tiny_delivery):
    csv_path = tiny_delivery / "penduduk.csv"
    lines = csv_path.read_text().splitlines()
    lines[0] = lines[0].replace("EXTRA", "NIK")
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ContractError, match=r"column 'NIK': the header holds this column 2 times"):
        validate(tiny_delivery)


def test_wrong_encoding_names_the_fix(tiny_delivery):
    csv_path = tiny_delivery / "penduduk.csv"
    body = "".join(f"{i},Budi Santoso\n" for i in range(2000))  # past the header's read buffer
    csv_path.write_bytes(("ID,NAMA_LGKP\n" + body + "9999,Andr\u00e9\n").encode("latin-1"))
    edit_yaml(
        tiny_delivery,
        lambda d: d["sources"][0].update(
            columns={"record_id": "ID", "nama": "NAMA_LGKP"}, values={}
        ),
    )
    from satudata_pipeline.sources.readers import read_source

    delivery = validate(tiny_delivery)
    with pytest.raises(ContractError) as err:
        read_source(delivery, delivery.source("penduduk"))
    assert "cannot decode the file as utf-8" in str(err.value)
    assert "file 'penduduk.csv'" in str(err.value) and "set `encoding:`" in str(err.value)
    assert "Andr" not in str(err.value)  # no personal data in errors


def test_not_yaml(tiny_delivery):
    (tiny_delivery / "sources.yaml").write_text("sources: [unclosed\n")
    with pytest.raises(ContractError, match="not valid YAML"):
        validate(tiny_delivery)


def test_no_sources_yaml(tmp_path):
    with pytest.raises(ContractError, match="no sources.yaml"):
        parse_delivery(tmp_path, PROGRAMS)


def test_format_from_extension_or_override(tiny_delivery):
    edit_yaml(tiny_delivery, lambda d: d["sources"][0].update(path="penduduk.dat"))
    (tiny_delivery / "penduduk.csv").rename(tiny_delivery / "penduduk.dat")
    with pytest.raises(ContractError, match="cannot tell the format from extension '.dat'"):
        validate(tiny_delivery)
    edit_yaml(tiny_delivery, lambda d: d["sources"][0].update(format="csv"))
    assert validate(tiny_delivery).source("penduduk").file_format == "csv"
