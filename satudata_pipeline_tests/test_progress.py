"""Progress on the terminal and in the run log: step n of N, phases with counts, no data values."""

from __future__ import annotations

import io
import logging

import dagster as dg

from satudata_pipeline.progress import Progress, step_progress_logger


def test_cli_step_logger_counts_steps_and_marks_failures():
    @dg.op
    def first():
        return 1

    @dg.op
    def second(x):
        raise ValueError("boom")

    @dg.job
    def two_steps():
        second(first())

    out = io.StringIO()
    job = two_steps.with_logger_defs({**two_steps.loggers, "steps": step_progress_logger(out=out)})
    result = job.execute_in_process(run_config={"loggers": {"steps": {}}}, raise_on_error=False)
    assert not result.success
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("step 1 of 2: first ...")
    assert "step 1 of 2: first done in " in lines[1]
    assert lines[2].endswith("step 2 of 2: second ...")
    assert "step 2 of 2: second FAILED in " in lines[3]
    assert len(lines) == 4 and "boom" not in out.getvalue()  # steps only, no messages of the ops


def test_phase_progress_logs_counts_in_indonesian_number_format(caplog):
    log = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, logger="test.progress"):
        progress = Progress(log, "match_pairs")
        progress("pairs written", exact_nik=1234567, probabilistic=3)
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(
        "match_pairs: pairs written (exact nik 1.234.567, probabilistic 3) in "
    )
    assert "(step so far " in message
