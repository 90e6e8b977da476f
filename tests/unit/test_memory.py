"""Issue 10: bulk work collects cyclic garbage less often, and leaves the process's thresholds as it found them."""
from __future__ import annotations

import gc
import threading

from leadflow.memory import BULK_THRESHOLDS, bulk_work


def test_issue10_bulk_work_raises_the_collector_thresholds_and_restores_them_when_the_last_block_ends():
    before = gc.get_threshold()
    with bulk_work():
        inside = gc.get_threshold()
        with bulk_work():  # nested (a run inside a file's batch): still raised
            assert gc.get_threshold() == inside
        assert gc.get_threshold() == inside
    assert all(i >= max(b, t) for i, b, t in zip(inside, before, BULK_THRESHOLDS))
    assert gc.get_threshold() == before


def test_issue10_concurrent_callers_keep_the_raised_thresholds_until_the_last_one_leaves():
    before = gc.get_threshold()
    entered, release = threading.Barrier(2), threading.Event()

    def caller():
        with bulk_work():
            entered.wait()
            release.wait()

    t = threading.Thread(target=caller)
    t.start()
    with bulk_work():
        entered.wait()
    assert gc.get_threshold() != before  # the other caller is still working
    release.set()
    t.join()
    assert gc.get_threshold() == before


def test_issue10_an_error_inside_bulk_work_restores_the_thresholds():
    before = gc.get_threshold()
    try:
        with bulk_work():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before

