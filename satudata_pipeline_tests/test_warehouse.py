"""satudata_pipeline/warehouse.py: the transaction, table and column look-ups and parameterised reads."""

from __future__ import annotations

import duckdb
import pytest

from satudata_pipeline.warehouse import (
    all_rows,
    columns,
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
