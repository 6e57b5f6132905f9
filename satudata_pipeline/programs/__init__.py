"""Programs stage: from the golden person record to keep / remove / review for every roster row.

Modules: `verdicts` (main.beneficiary_review), `eligibility` (eligible but not enrolled), `summary`
(money at stake + run report), `exports` (files for the program offices, written by
`export_worker` processes), `evaluation` (accuracy against ground truth) and `assets` (the Dagster
assets, `build_program_assets()`).
Rules: `rules.yaml`, validated by `satudata_pipeline.contract.program_rules`.
"""

from satudata_pipeline.programs.verdicts import (
    REASON_CODES,
    REMOVE_REASONS,
    REVIEW_REASONS,
    VERDICTS,
)


def build_program_assets() -> list:
    """The Dagster assets of the stage (imported lazily so the SQL modules do not need dagster)."""
    from satudata_pipeline.programs.assets import build_program_assets as _build

    return _build()


__all__ = ["REASON_CODES", "REMOVE_REASONS", "REVIEW_REASONS", "VERDICTS", "build_program_assets"]
