"""The sources and clean stages materialized in-process on a tiny delivery: nothing lost, bad rows quarantined."""

from __future__ import annotations

import copy

import dagster as dg
import duckdb
import pytest
from fixtures.resources import run_resources

from satudata_pipeline.clean.assets import build_clean_assets
from satudata_pipeline.contract.sources import check_files, parse_delivery
from satudata_pipeline.sources.assets import build_source_assets


def materialize_front(data_dir, warehouse):
    delivery = parse_delivery(data_dir, {"KJP"})
    check_files(delivery)
    raw_assets, raw_checks = build_source_assets(delivery)
    clean_assets, clean_checks = build_clean_assets(delivery)
    result = dg.materialize(
        [*raw_assets, *clean_assets, *raw_checks, *clean_checks],
        resources=run_resources(warehouse, data_dir),
        raise_on_error=False,
    )
    return result


@pytest.fixture
def landed(tiny_delivery, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    result = materialize_front(tiny_delivery, warehouse)
    assert result.success
    return result, duckdb.connect(str(warehouse), read_only=True)


def test_rows_are_cleaned_or_quarantined(landed):
    result, conn = landed
    assert conn.execute('SELECT count(*) FROM raw."penduduk"').fetchall()[0][0] == 6
    clean_ids = [
        r[0]
        for r in conn.execute("SELECT record_id FROM clean.penduduk ORDER BY row_number").fetchall()
    ]
    assert clean_ids == ["1", "2", "3"]
    quarantine = conn.execute(
        "SELECT record_id, row_number, reason FROM clean.quarantine ORDER BY row_number"
    ).fetchall()
    assert quarantine == [
        ("4", 4, "blank_name"),
        ("5", 5, "duplicate_record_id"),
        ("5", 6, "duplicate_record_id"),
    ]
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["no_row_lost"] is True
    assert checks["extract_is_fresh"] is True


def test_canonical_values(landed):
    _, conn = landed
    rows = conn.execute(
        "SELECT record_id, nama, jenis_kelamin, tanggal_lahir, nik_valid, nik_reason, kode_kelurahan, quality_flags "
        "FROM clean.penduduk ORDER BY row_number"
    ).fetchall()
    siti, joko, budi = rows
    assert siti[1] == "SITI AMINAH" and siti[2] == "P" and str(siti[3]) == "1990-01-05"
    assert siti[4] is True and siti[5] is None and siti[6] == "31.71.01.1001"
    assert joko[1] == "MUHAMMAD JOKO" and joko[2] == "L"
    assert budi[3] is None
    assert {"date_impossible:tanggal_lahir", "date_unparseable:tanggal_lahir"} & set(budi[7])
    assert budi[5] == "missing" and "nik_missing" in budi[7]
    assert "wilayah_unknown" in budi[7] and budi[6] is None


def test_quarantine_keeps_raw_values_without_leaking_to_metadata(landed):
    result, conn = landed
    raw_values = conn.execute(
        "SELECT raw_values FROM clean.quarantine WHERE reason = 'duplicate_record_id' ORDER BY row_number"
    ).fetchall()[0][0]
    assert "Dup Id" in raw_values  # the provider needs to see the row to fix it
    for event in result.get_asset_materialization_events():
        text = str(event.event_specific_data.materialization.metadata)
        assert "3171010101850004" not in text and "Dup Id" not in text and "Siti" not in text


def test_stale_death_registry_blocks_downstream(tiny_delivery, tmp_path):
    import yaml

    doc = yaml.safe_load((tiny_delivery / "sources.yaml").read_text())
    src = copy.deepcopy(
        doc["sources"][0]
    )  # shared sub-dicts would be dumped as YAML aliases (refused)
    doc["sources"].append(
        {
            **src,
            "name": "kematian",
            "kind": "death_registry",
            "extracted_at": "2026-01-01",
            "columns": {**src["columns"], "tanggal_meninggal": "TGL_LHR"},
        }
    )
    (tiny_delivery / "sources.yaml").write_text(yaml.safe_dump(doc))
    result = materialize_front(tiny_delivery, tmp_path / "w2.duckdb")
    assert not result.success
    stale = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey("raw_kematian")
    ]
    assert stale and stale[0].passed is False and stale[0].severity == dg.AssetCheckSeverity.ERROR
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey("clean_kematian") not in materialized
    # the completeness gate waits for every raw asset and its blocking checks: nothing is cleaned
    assert dg.AssetKey("delivery_completeness") not in materialized
    assert dg.AssetKey("clean_penduduk") not in materialized
