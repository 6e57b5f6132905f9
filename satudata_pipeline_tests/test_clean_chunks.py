"""Out of core intake and cleaning (issue 16): files land in batches and sources are cleaned in
chunks of rows, and the tables are the same as in one piece, whatever the batch or chunk size."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pytest
from dagster_duckdb import DuckDBResource

from satudata_pipeline.clean.chunks import clean_source, quarantine_table
from satudata_pipeline.contract.sources import check_files, parse_delivery
from satudata_pipeline.sources import readers
from satudata_pipeline.sources.assets import build_source_assets
from satudata_pipeline.sources.readers import SourceBatches, read_source_with_stats

SAMPLE = Path(__file__).resolve().parents[1] / "data"
PROGRAMS = {"KJP", "KJMU", "KAJ", "KLJ", "KPDJ"}


def sample_delivery():
    delivery = parse_delivery(SAMPLE, PROGRAMS)
    check_files(delivery)
    return delivery


@pytest.fixture(scope="module")
def landed_sample(tmp_path_factory):
    """The sample delivery's raw tables (every source), landed by the raw assets."""
    delivery = sample_delivery()
    warehouse = tmp_path_factory.mktemp("chunks") / "w.duckdb"
    assets, checks = build_source_assets(delivery)
    raw = [a for a in assets if a.key.path[0].startswith("raw_")]
    result = dg.materialize(raw, resources={"warehouse": DuckDBResource(database=str(warehouse))})
    assert result.success
    return delivery, warehouse


def rows(conn, table: str) -> list[tuple]:
    """Every row in the table's stored order (insertion order), not re-sorted."""
    return conn.execute(f"SELECT * FROM {table}").fetchall()


def test_tiny_chunks_clean_the_same_tables_as_one_chunk(landed_sample, tmp_path):
    delivery, warehouse = landed_sample
    copy = tmp_path / "w.duckdb"
    shutil.copy(warehouse, copy)
    conn = duckdb.connect(str(copy))
    spanning = 0
    # a wide civil registry, a move list (parquet), a welfare registry, a roster
    for source in (
        delivery.source(n) for n in ("dukcapil_penduduk", "dukcapil_pindah", "dtks", "kjp_plus")
    ):
        raw_n = conn.execute(f'SELECT count(*) FROM raw."{source.name}"').fetchall()[0][0]
        chunk = max(3, raw_n // 5)  # about five chunks per source (tiny chunks: slow, not wrong)
        clean_source(conn, source, delivery.snapshot_date, chunk_rows=10**9)
        whole = rows(conn, f'clean."{source.name}"')
        whole_q = rows(conn, quarantine_table(source.name))
        clean_source(conn, source, delivery.snapshot_date, chunk_rows=chunk)
        assert rows(conn, f'clean."{source.name}"') == whole, source.name
        assert rows(conn, quarantine_table(source.name)) == whole_q, source.name
        # repeated ids whose copies lie in different chunks are still quarantined on every copy
        spanning += conn.execute(
            f"SELECT count(*) FROM (SELECT record_id FROM {quarantine_table(source.name)} "
            "WHERE reason = 'duplicate_record_id' GROUP BY record_id "
            "HAVING count(DISTINCT (row_number - 1) // ?) > 1)",
            [chunk],
        ).fetchall()[0][0]
        assert len(whole) + len(whole_q) == raw_n
    conn.close()
    assert spanning > 0  # the sample has repeated ids across chunks: the test exercises them


def test_next_month_reuses_unchanged_rows_and_cleans_the_same_tables(landed_sample, tmp_path):
    """Issue 17: raw rows unchanged since the last clean run keep their clean row, and the tables are
    the ones a clean of every row gives: rows moved, corrected, gone, a new row repeating an existing
    record id (both copies quarantined, the old one was clean), dates after the last snapshot but not
    after this one (flagged impossible last month, valid now), and one row per chunk."""
    delivery, warehouse = landed_sample
    copy = tmp_path / "w.duckdb"
    shutil.copy(warehouse, copy)
    conn = duckdb.connect(str(copy))
    last_month = delivery.snapshot_date - dt.timedelta(days=365)
    impossible_last_month = 0
    for source in (
        delivery.source(n) for n in ("dukcapil_penduduk", "dukcapil_pindah", "dtks", "kjp_plus")
    ):
        raw, clean, quarantine = (
            f'raw."{source.name}"',
            f'clean."{source.name}"',
            quarantine_table(source.name),
        )
        conn.execute(f"CREATE TABLE month0 AS SELECT * FROM {raw}")
        n = conn.execute(f"SELECT max(_row_number) FROM {raw}").fetchall()[0][0]
        nama = source.columns["nama"].replace('"', '""')
        for chunk in (10**9, max(3, n // 4)):
            conn.execute(f"CREATE OR REPLACE TABLE {raw} AS SELECT * FROM month0")
            work = clean_source(conn, source, last_month, chunk_rows=chunk, reuse=False)
            assert work == {"rows_cleaned": n, "rows_reused": 0}
            impossible_last_month += conn.execute(
                f"SELECT count(*) FROM {clean} WHERE len(list_filter(quality_flags, "
                "lambda f: f LIKE 'date_impossible:%')) > 0"
            ).fetchall()[0][0]
            # next month's extract: the rows in reverse order, three names corrected, two rows
            # gone, and a new last row carrying row 12's record id
            conn.execute(
                f"CREATE OR REPLACE TABLE {raw} AS SELECT * REPLACE ({n} + 1 - _row_number AS "
                f"_row_number) FROM {raw} ORDER BY _row_number DESC"
            )
            conn.execute(
                f'UPDATE {raw} SET "{nama}" = "{nama}" || \' X\' WHERE _row_number IN (1, 5, 9)'
            )
            conn.execute(f"DELETE FROM {raw} WHERE _row_number IN (2, 7)")
            conn.execute(
                f"INSERT INTO {raw} SELECT * REPLACE ({n} + 1 AS _row_number, "
                f'"{nama}" || \' Y\' AS "{nama}") FROM {raw} WHERE _row_number = 12'
            )
            work = clean_source(conn, source, delivery.snapshot_date, chunk_rows=chunk)
            reused = rows(conn, clean), rows(conn, quarantine)
            assert 0 < work["rows_reused"] < n - 4 and work["rows_cleaned"] >= 5, source.name
            assert work["rows_reused"] + work["rows_cleaned"] == n - 1  # two gone, one new
            clean_source(conn, source, delivery.snapshot_date, chunk_rows=chunk, reuse=False)
            assert (rows(conn, clean), rows(conn, quarantine)) == reused, source.name
            assert (
                conn.execute(
                    f"SELECT count(*) FROM {quarantine} WHERE row_number IN (12, {n + 1})"
                ).fetchall()[0][0]
                == 2
            )
        conn.execute("DROP TABLE month0")
        # an earlier snapshot than the last clean run's: every row is cleaned again
        assert clean_source(conn, source, last_month)["rows_reused"] == 0
    conn.close()
    assert impossible_last_month > 0  # the test exercises the snapshot-dependent judgement


def test_repeated_id_across_chunks_is_quarantined_on_every_copy(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "sources.yaml").write_text(
        "snapshot_date: 2026-11-01\nsources:\n  - name: src\n    kind: civil_registry\n"
        "    path: a.csv\n    extracted_at: 2026-10-30\n"
        "    columns: {record_id: ID, nama: NAMA}\n"
    )
    lines = ["ID,NAMA"] + [f"{i},Nama {i}" for i in range(1, 11)] + [" 3 ,Nama Ulang"]
    (data / "a.csv").write_text("\n".join(lines) + "\n")
    delivery = parse_delivery(data, set())
    check_files(delivery)
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    table = pa.concat_tables(list(SourceBatches(delivery, delivery.source("src"))))
    conn.execute("CREATE SCHEMA raw")
    conn.register("t", table)
    conn.execute('CREATE TABLE raw."src" AS SELECT * FROM t')
    for chunk in (2, 100):
        clean_source(conn, delivery.source("src"), delivery.snapshot_date, chunk_rows=chunk)
        assert conn.execute(
            "SELECT record_id, row_number, reason FROM clean.src__quarantine"
        ).fetchall() == [("3", 3, "duplicate_record_id"), ("3", 11, "duplicate_record_id")]
        assert conn.execute("SELECT count(*) FROM clean.src").fetchall()[0][0] == 9
    conn.close()


@pytest.mark.parametrize("name", ["dukcapil_penduduk", "dukcapil_pindah", "kjmu"])
def test_small_batches_read_the_same_file(name):
    """CSV, parquet and xlsx: batches of 3 rows concatenate to the one-piece table, same stats."""
    delivery = sample_delivery()
    source = next(s for s in delivery.sources if s.name == name)
    whole, stats = read_source_with_stats(delivery, source)
    batches = SourceBatches(delivery, source, batch_rows=3)
    parts = list(batches)
    assert pa.concat_tables(parts).equals(whole)
    assert batches.stats == stats and stats.rows == whole.num_rows > 3
    if source.file_format != "xlsx":  # an xlsx sheet is one table
        assert max(p.num_rows for p in parts) == 3


def test_cut_last_record_is_found_across_batches(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "sources.yaml").write_text(
        "snapshot_date: 2026-11-01\nsources:\n  - name: src\n    kind: civil_registry\n"
        "    path: a.csv\n    extracted_at: 2026-10-30\n"
        "    columns: {record_id: ID, nama: NAMA}\n"
    )
    (data / "a.csv").write_text("ID,NAMA,KET\n1,A,x\n2,B,y\n3,C,z\n4,D")  # cut mid-record
    delivery = parse_delivery(data, set())
    source = delivery.source("src")
    batches = SourceBatches(delivery, source, batch_rows=2)
    parts = list(batches)
    assert [p.num_rows for p in parts] == [2, 2]
    assert batches.stats is not None and (batches.stats.cut_row, batches.stats.cut_line) == (4, 5)
    assert parts[1].column("_row_number").to_pylist() == [3, 4]
    assert parts[1].column("_parse_error").to_pylist()[1] is not None


def test_file_unreadable_half_way_leaves_the_previous_raw_table(tmp_path, monkeypatch):
    data = tmp_path / "d"
    data.mkdir()
    (data / "sources.yaml").write_text(
        "snapshot_date: 2026-11-01\nsources:\n  - name: src\n    kind: civil_registry\n"
        "    path: a.csv\n    extracted_at: 2026-10-30\n"
        "    columns: {record_id: ID, nama: NAMA}\n"
    )
    # 600 rows of ~30 bytes: the header check decodes the first 8 KB only
    good = "ID,NAMA\n" + "".join(f"{i},Nama {i:04d} Jakarta Pusat\n" for i in range(1, 601))
    (data / "a.csv").write_text(good)
    monkeypatch.setattr(readers, "BATCH_ROWS", 50)
    warehouse = tmp_path / "w.duckdb"
    resources = {"warehouse": DuckDBResource(database=str(warehouse))}

    def land():
        delivery = parse_delivery(data, set())
        assets, _ = build_source_assets(delivery)
        raw = [a for a in assets if a.key.path[0].startswith("raw_")]
        return dg.materialize(raw, resources=resources, raise_on_error=False)

    assert land().success
    # the same file with an undecodable byte on data row 590: batches written, then the error
    (data / "a.csv").write_bytes(good.encode().replace(b"Nama 0590", b"Nama \xff590"))
    result = land()
    assert not result.success
    error, chain = result.get_step_failure_events()[0].step_failure_data.error, []
    while error is not None:
        chain.append((error.cls_name, error.message))
        error = error.cause
    assert any(c == "ContractError" and "cannot decode" in m for c, m in chain), chain
    with resources["warehouse"].get_connection() as conn:
        assert conn.execute(
            "SELECT count(*), max(NAMA) FILTER (WHERE ID = '590') FROM raw.\"src\""
        ).fetchall() == [(600, "Nama 0590 Jakarta Pusat")]
