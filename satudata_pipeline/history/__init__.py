"""Month after month: the history of every published determination and what changed (contract section 5).

    intake.py    per source, each clean row's hash vs the last published delivery: new / changed /
                 unchanged / gone (main.source_changes, main.source_change_counts); `changed_records()`
                 gives incremental linkage the records it must score again
    store.py     history.* tables, written inside the publication transaction (golden/publish.py):
                 history.determinations, history.review_rows, history.source_row_hashes; and
                 main.determination_changes (this determination vs the previous one, per program)
    versions.py  what a determination was made from: delivery fingerprint, model and rules versions
    query.py     the history of one roster row or one person (`satudata history`)

See docs/monthly.md.
"""

from satudata_pipeline.history.intake import changed_records, source_change_counts
from satudata_pipeline.history.store import (
    CHANGES_TABLE,
    DETERMINATIONS,
    REVIEW_ROWS,
    ROW_HASHES,
    change_counts,
    record_determination,
)

__all__ = [
    "CHANGES_TABLE",
    "DETERMINATIONS",
    "REVIEW_ROWS",
    "ROW_HASHES",
    "change_counts",
    "changed_records",
    "record_determination",
    "source_change_counts",
]
