"""Issue 9.5, found by the operator trial: every Failed run served by a worker logged "Engine execution exited with
unexpected exception … TypeError: Unexpected result for failed state: {…} —— dict cannot be resolved into an
exception" — Prefect resolves a Failed state's data into the exception it raises. A run that needs a person keeps
its summary on an exception (`NeedsAPerson`), and its log record is one line without a traceback. And a lead an
earlier run pooled that still waits is that run's alarm, not every later run's (R-ALLOC-5)."""
from __future__ import annotations

import logging

import pytest
from prefect.states import Failed, get_state_exception

from flows.states import NeedsAPerson, failed, result_of
from leadflow.privacy import MaskingFilter


def test_issue9_5_a_failed_state_that_needs_a_person_resolves_to_its_exception_with_the_summary():
    state = failed("2 leads were left in the company pool (R-ALLOC-5), call 13700137000.", {"rows_in": 3})
    exc = get_state_exception(state)
    assert isinstance(exc, NeedsAPerson) and exc.summary == {"rows_in": 3}
    assert "13700137000" not in state.message and result_of(state) == {"rows_in": 3}
    with pytest.raises(TypeError):  # the kind of fault: a dict as a Failed state's data
        get_state_exception(Failed(message="x", data={"rows_in": 3}))


def test_issue9_5_the_engine_log_of_a_run_that_needs_a_person_is_one_line_without_traceback():
    try:
        raise NeedsAPerson("1 lead was left in the company pool (R-ALLOC-5).", {})
    except NeedsAPerson:
        import sys

        record = logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1,
                                   "Engine execution exited with unexpected exception", None, sys.exc_info())
    assert MaskingFilter().filter(record)
    assert record.exc_info is None and not record.exc_text
    assert record.getMessage().endswith("the run needs a person: 1 lead was left in the company pool (R-ALLOC-5).")


def test_r_alloc_5_issue9_5_only_leads_this_run_pooled_need_a_person():
    from tasks.reporting import newly_pooled, still_waiting

    pool = {"pooled": 3, "pooled_leads": [{"customer_id": 1, "tier": "B", "reason": "x", "new": True},
                                          {"customer_id": 2, "tier": "B", "reason": "x", "new": False},
                                          {"customer_id": 3, "tier": "A", "reason": "y", "new": False}]}
    assert newly_pooled(pool) == {"pooled": 1, "pooled_leads": [pool["pooled_leads"][0]]}
    assert still_waiting(pool) == 2
