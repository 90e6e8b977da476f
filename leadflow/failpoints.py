"""Named failpoints: make the process die at an exact point, so the crash tests can prove recovery.

Inert unless `LEADFLOW_FAILPOINT` names the point (nothing else reads it; production never sets it):

    LEADFLOW_FAILPOINT=intake.decide leadflow register leads.csv    # killed like `kill -9` there
    LEADFLOW_FAILPOINT=allocation.write:pause                       # touch $LEADFLOW_FAILPOINT_FILE, then wait
                                                                    # (a test terminates the backend meanwhile)

The points, in the order a registration run meets them (see tests/store/test_crash_recovery.py):
`engine.clock` (clock moved, nothing caught up), `intake.staged` (rows staged, nothing decided),
`intake.decide` (inside the decide transaction: customers written, outcomes not), `intake.decided`
(registrations decided and the batch finished, nothing allocated), `allocation.write` (inside the
allocation transaction: assignments written, ledger not), `ledger.write` (inside a ledger append, after its
first rows), `events.staged` (a delivery stored, nothing applied), `events.apply` (inside an apply group),
`timed.stage` (inside a time-driven stage's transaction).
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = "LEADFLOW_FAILPOINT"


def hit(name: str) -> None:
    """Die here (SIGKILL: no cleanup, no rollback message) when `LEADFLOW_FAILPOINT` is `name`;
    with `name:pause`, create `$LEADFLOW_FAILPOINT_FILE` and sleep up to 60 s instead. A no-op otherwise."""
    wanted = os.environ.get(ENV)
    if not wanted or wanted.split(":")[0] != name:
        return
    if wanted.endswith(":pause"):
        marker = os.environ.get("LEADFLOW_FAILPOINT_FILE")
        if marker:
            Path(marker).write_text(str(os.getpid()))
        time.sleep(float(os.environ.get("LEADFLOW_FAILPOINT_SECONDS", "60")))
        return
    os.kill(os.getpid(), signal.SIGKILL)
