"""Where things are: the data directory, the warehouse and the state folder.

Read from the environment every time (not at import) so the CLI, `dagster dev` and tests all see the
same settings and a test can point the pipeline elsewhere with monkeypatch.

Everything under the state folder holds personal data (docs/privacy.md): the folders are created
owner-only (0700) and every run works with umask 077 (`owner_only()`), so the warehouse, exports and
reports are readable by the account that runs satudata only.
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


OWNER_ONLY_UMASK = 0o077


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) owner-only, and take group/other access off it if it has any."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_mode & 0o077 and st.st_uid == os.getuid():
        path.chmod(0o700)
    return path


def restrict_file(path: Path) -> None:
    """Take group/other access off a file we own (e.g. a warehouse written before umask 077)."""
    for p in (path, path.with_name(path.name + ".wal")):
        try:
            st = p.stat()
        except OSError:
            continue
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            p.chmod(st.st_mode & 0o700)


def owner_only() -> None:
    """umask 077 for this process (every file it creates is owner-only) and a private state folder."""
    os.umask(OWNER_ONLY_UMASK)
    state_dir()


def state_dir() -> Path:
    """Folder for the warehouse, trained models and reports (git ignores it), owner-only (0700)."""
    value = os.environ.get("SATUDATA_STATE_DIR")
    path = Path(value).expanduser().resolve() if value else PROJECT_DIR / ".state"
    return private_dir(path)


def warehouse_path() -> Path:
    """The DuckDB file: SATUDATA_WAREHOUSE, else `<state>/warehouse.duckdb`."""
    value = os.environ.get("SATUDATA_WAREHOUSE")
    path = Path(value).expanduser().resolve() if value else state_dir() / "warehouse.duckdb"
    if not path.parent.exists():
        private_dir(path.parent)
    return path


def model_dir() -> Path:
    return private_dir(state_dir() / "models")


def reports_dir() -> Path:
    return private_dir(state_dir() / "reports")


def exports_dir() -> Path:
    return private_dir(state_dir() / "exports")
