"""What a determination was made from: the delivery, the linkage model and the rules, as short hashes.

Two determinations with the same three values were made from the same inputs (a rerun); a different
delivery fingerprint with the same model and rules means the data changed, not the method.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

DELIVERY_FILES = "staging.delivery_files"  # one row per source of the run's delivery (clean stage)


def _exists(conn: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = qualified.split(".", 1)
    return bool(
        conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchall()[0][0]
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def raw_file_hash(conn: duckdb.DuckDBPyConnection, source: str) -> str | None:
    """The content hash the raw stage recorded for the source's file (None if the raw table has none)."""
    has = conn.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'raw' "
        "AND table_name = ? AND column_name = '_file_hash'",
        [source],
    ).fetchall()[0][0]
    if not has:
        return None
    return conn.execute(f'SELECT any_value(_file_hash) FROM raw."{source}"').fetchall()[0][0]


def stage_delivery_file(
    conn: duckdb.DuckDBPyConnection,
    source: str,
    file: str,
    file_sha256: str | None,
    yaml_sha256: str,
) -> None:
    """Called by each clean asset: the file (content hash from the raw stage) and sources.yaml it came
    from, so the publication can name its delivery without re-reading the files."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS staging")
    conn.execute(f"""CREATE TABLE IF NOT EXISTS {DELIVERY_FILES} (
        source VARCHAR, file VARCHAR, file_sha256 VARCHAR, yaml_sha256 VARCHAR)""")
    conn.execute(f"DELETE FROM {DELIVERY_FILES} WHERE source = ?", [source])
    conn.execute(
        f"INSERT INTO {DELIVERY_FILES} VALUES (?, ?, ?, ?)",
        [source, file, file_sha256, yaml_sha256],
    )


def delivered_sources_sql() -> str:
    """The sources of the run's delivery: those of the completeness gate's table when it exists (so a
    source dropped from sources.yaml since an older run does not count), else every staged one."""
    return (
        "SELECT source FROM staging.delivery_sources WHERE source IS NOT NULL "
        "AND finding IS DISTINCT FROM 'missing'"
    )


def delivery_fingerprint(conn: duckdb.DuckDBPyConnection) -> str | None:
    """sha256 (20 hex) over sources.yaml and every delivered file's content hash; None when unknown."""
    if not _exists(conn, DELIVERY_FILES):
        return None
    where = (
        f"WHERE source IN ({delivered_sources_sql()})"
        if _exists(conn, "staging.delivery_sources")
        else ""
    )
    rows = conn.execute(
        f"SELECT source, file, file_sha256, yaml_sha256 FROM {DELIVERY_FILES} {where} ORDER BY source"
    ).fetchall()
    if not rows:
        return None
    h = hashlib.sha256()
    for yaml_sha in sorted({r[3] for r in rows}):
        h.update(f"yaml:{yaml_sha}\n".encode())
    for source, file, digest, _ in rows:
        h.update(f"{source}\t{file}\t{digest}\n".encode())
    return h.hexdigest()[:20]


def model_version(conn: duckdb.DuckDBPyConnection) -> str | None:
    """`<settings fingerprint>:<sha256 of the trained parameters>` of the model the run linked with."""
    if not _exists(conn, "link.linkage_model"):
        return None
    rows = conn.execute(
        "SELECT fingerprint, model_json FROM link.linkage_model ORDER BY loaded_at DESC LIMIT 1"
    ).fetchall()
    if not rows:
        return None
    fingerprint, model_json = rows[0]
    return f"{fingerprint}:{hashlib.sha256((model_json or '').encode()).hexdigest()[:12]}"


def rules_files() -> list[Path]:
    from satudata_pipeline.config import program_rules_path
    from satudata_pipeline.contract.intake import INTAKE_RULES

    return [program_rules_path(), Path(INTAKE_RULES)]


def rules_version(files: list[Path] | None = None) -> str:
    """sha256 (16 hex) of programs/rules.yaml and contract/intake_rules.yaml (the policy in force)."""
    h = hashlib.sha256()
    for path in files or rules_files():
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
