"""Decisions people hand back (data contract section 4): review_decision and link_decision sources.

`intake` checks and stores them, `assets` is the Dagster asset, `report` writes what was set aside
back to the offices. Applying them: programs/verdicts.py (review) and link/clusters.py (link).
"""
