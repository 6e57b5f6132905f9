"""Where things are: the data directory, the warehouse and the state folder.

Read from the environment every time (not at import) so the CLI, `dagster dev` and tests all see the
same settings and a test can point the pipeline elsewhere with monkeypatch.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
REFERENCE_WILAYAH = PACKAGE_DIR / "contract" / "wilayah_dki_jakarta.csv"
PROGRAM_RULES = PACKAGE_DIR / "programs" / "rules.yaml"


def data_dir() -> Path:
    """The data directory of this run: SATUDATA_DATA_DIR, else the sample shipped under data/."""
    value = os.environ.get("SATUDATA_DATA_DIR")
    return Path(value).expanduser().resolve() if value else PROJECT_DIR / "data"


def state_dir() -> Path:
    """Folder for the warehouse, trained models and reports (git ignores it)."""
    value = os.environ.get("SATUDATA_STATE_DIR")
    path = Path(value).expanduser().resolve() if value else PROJECT_DIR / ".state"
    path.mkdir(parents=True, exist_ok=True)
    return path


def warehouse_path() -> Path:
    """The DuckDB file: SATUDATA_WAREHOUSE, else `<state>/warehouse.duckdb`."""
    value = os.environ.get("SATUDATA_WAREHOUSE")
    path = Path(value).expanduser().resolve() if value else state_dir() / "warehouse.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def model_dir() -> Path:
    path = state_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def reports_dir() -> Path:
    path = state_dir() / "reports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def exports_dir() -> Path:
    path = state_dir() / "exports"
    path.mkdir(parents=True, exist_ok=True)
    return path
