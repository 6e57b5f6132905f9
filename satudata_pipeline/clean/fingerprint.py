"""What cleaned values depend on, as a fingerprint.

Cleaning reuses last month's clean rows and linkage reuses last month's links only while the
cleaning rules are unchanged; both ask this module, which sits with the rules it fingerprints so
that nothing downstream has to say what cleaning reads.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from satudata_pipeline import config

# What the cleaned fields depend on: a change here means every record may clean differently.
CLEANING_INPUTS = [config.PACKAGE_DIR / "clean", config.REFERENCE_WILAYAH]
_HASHED_SUFFIXES = {".py", ".yaml", ".yml", ".csv", ".json"}


def hash_files(paths: list[Path]) -> str:
    """sha256 (16 hex) of the rule files under `paths` (folders recursively), names included."""
    h = hashlib.sha256()
    for root in paths:
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if f.is_file() and f.suffix in _HASHED_SUFFIXES:
                h.update(str(f.relative_to(root.parent)).encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def cleaning_rules_fingerprint(extra: list[Path] | None = None) -> str:
    """Fingerprint of the cleaning code and reference files, plus `extra` rule files."""
    return hash_files([*CLEANING_INPUTS, *(extra or [])])
