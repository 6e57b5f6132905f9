"""satudata_pipeline/warehouse.py: the transaction, table and column look-ups and parameterised reads."""

from __future__ import annotations

import duckdb
import pytest

from satudata_pipeline.warehouse import (
    all_rows,
    columns,
    insert_rows,
    one_row,
    scalar,
    split_name,
    table_exists,
    transaction,
)


@pytest.fixture
def conn():
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA s")
    conn.execute("CREATE TABLE s.t (b INTEGER, a VARCHAR)")
    conn.execute("INSERT INTO s.t VALUES (1, 'x'), (2, 'O''Brien')")
    yield conn
    conn.close()


def test_a_failing_transaction_leaves_nothing(conn):
    with pytest.raises(RuntimeError, match="stop"):
        with transaction(conn):
            conn.execute("DELETE FROM s.t")
            conn.execute("CREATE TABLE s.u AS SELECT 1 AS c")
            raise RuntimeError("stop")
    assert scalar(conn, "SELECT count(*) FROM s.t") == 2
    assert not table_exists(conn, "s.u")
    with transaction(conn):
        conn.execute("DELETE FROM s.t WHERE b = ?", [1])
    assert scalar(conn, "SELECT count(*) FROM s.t") == 1


def test_tables_and_columns(conn):
    assert table_exists(conn, "s.t") and table_exists(conn, 's."t"')
    assert not table_exists(conn, "s.missing") and not table_exists(conn, "t")
    assert columns(conn, "s.t") == ["b", "a"]
    assert columns(conn, "s.missing") == []
    assert split_name("t") == ("main", "t")


def test_values_travel_as_parameters(conn):
    assert scalar(conn, "SELECT b FROM s.t WHERE a = ?", ["O'Brien"]) == 2
    assert one_row(conn, "SELECT min(b), max(b) FROM s.t WHERE a <> $a", {"a": "x"}) == (2, 2)
    assert all_rows(conn, "SELECT b FROM s.t ORDER BY b") == [(1,), (2,)]
    with pytest.raises(LookupError):
        one_row(conn, "SELECT b FROM s.t WHERE b > 5")


def test_warehouse_connections_get_the_memory_budget_and_spill_folder(tmp_path, monkeypatch):
    """SATUDATA_MEMORY_GB and the spill folder reach every connection the resource hands a step."""
    from satudata_pipeline import config
    from satudata_pipeline.resources import WarehouseResource

    monkeypatch.setenv("SATUDATA_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SATUDATA_MEMORY_GB", "1.5")
    resource = WarehouseResource(database=str(tmp_path / "w.duckdb"))
    with resource.get_connection() as conn:
        limit = conn.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        spill = conn.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
    assert limit.startswith("1.3") and "GiB" in limit  # 1.5 GB = 1.39 GiB
    assert spill == str(tmp_path / "spill")
    # the resource's own fields (run config in the UI's launchpad) win over the environment
    spill = tmp_path / "elsewhere"
    sized = WarehouseResource(
        database=str(tmp_path / "w.duckdb"), memory_gb=3, spill_dir=str(spill)
    )
    with sized.get_connection() as conn:
        limit = conn.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        used = conn.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
    assert limit.startswith("2.7") and used == str(spill) and spill.is_dir()
    monkeypatch.setenv("SATUDATA_MEMORY_GB", "lots")
    with pytest.raises(ValueError, match="SATUDATA_MEMORY_GB"):
        config.memory_gb()


def test_insert_rows_in_one_statement_keeps_order_types_and_nulls(conn):
    conn.execute("CREATE TEMP TABLE r (n INTEGER, a VARCHAR, p DOUBLE, k VARCHAR)")
    rows = [(i, f"u{i}", i / 7, None if i % 3 else "join") for i in range(1, 2001)]
    insert_rows(conn, "r", rows)
    insert_rows(conn, "r", [])  # nothing to insert: no error, no row
    assert conn.execute("SELECT * FROM r").fetchall() == [
        (n, a, pytest.approx(p), k) for n, a, p, k in rows
    ]
    assert conn.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchall() == [
        (0,)
    ]
