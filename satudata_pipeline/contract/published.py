"""The column schema of the published tables, for the Dagster UI and for whoever queries them.

The descriptions live in `published_columns.yaml` beside the data contract; the column names and
types are read from the table itself, so the schema shown is always the one written.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import dagster as dg
import duckdb
import yaml

COLUMNS_FILE = Path(__file__).with_name("published_columns.yaml")


@lru_cache(maxsize=1)
def column_descriptions() -> dict[str, dict[str, str]]:
    return yaml.safe_load(COLUMNS_FILE.read_text(encoding="utf-8"))


def table_metadata(conn: duckdb.DuckDBPyConnection, table: str, published_as: str) -> dict:
    """`dagster/table_name` (the published name) and `dagster/column_schema` of `table` (its staging copy)."""
    described = column_descriptions().get(published_as, {})
    columns = [
        dg.TableColumn(name=name, type=str(kind).lower(), description=described.get(name))
        for name, kind, *_ in conn.execute(f"DESCRIBE {table}").fetchall()
    ]
    return {
        "dagster/table_name": published_as,
        "dagster/column_schema": dg.TableSchema(columns=columns),
    }
