"""Recording lifecycle events from Python (a CRM hook, the call system, HR): the production entry points.

Each call is one run of `leadflow.engine`: the clock catches up to `as_of`, the events are applied in time
order, waiting events are retried, and the pool is offered.
"""
from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import time
from pathlib import Path

from leadflow import engine
from leadflow.events.readers import read_event_file
from leadflow.events.record import batch_id_for, payload_digest
from leadflow.intake.cells import Problem, without_surrogates
from leadflow.rules.registration import mask_phones_in_text
from leadflow.stages.context import StageContext


def _ctx(ctx: StageContext | None) -> StageContext:
    if ctx is not None:
        return ctx
    from leadflow.wiring import stage_context

    return stage_context()


def _operator(operator: str | None) -> str | None:
    if operator:
        return operator
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container): the delivery is still recorded
        return None


def record_events(rows: list[dict], *, as_of: dt.datetime | None = None, source: str = "api",
                  operator: str | None = None, ctx: StageContext | None = None) -> dict:
    """Record events given as canonical rows (`type`, `at`, `customer`, `by`, `step`, `amount`, …).

    `customer` names a customer by id, registration reference, the channel's external reference, or
    phone (resolved here, stored only masked). `as_of` (aware; default now, read under the clock lock) is when
    they reach LeadFlow.
    Returns the delivery's summary: rows_in = applied + duplicate + waiting + refused, with the reasons.
    Raises engine.ClockError when `as_of` is before the store's clock.
    """
    rows = [{**r, "row_number": r.get("row_number") or i + 1} for i, r in enumerate(rows)]
    digest = payload_digest(rows)
    rows = [_text_only(r) for r in rows]
    batch = batch_id_for(f"{digest}|{as_of.isoformat() if as_of else time.time_ns()}", prefix=source[:12] or "api")
    return engine.record(_ctx(ctx), rows, as_of, batch_id=batch, source=source, operator=_operator(operator),
                         digest=digest)


def _text_only(row: dict) -> dict:
    """`row` with any lone surrogate replaced by U+FFFD and the row refused `bad_text` (half an emoji is no text:
    no database stores it), so it is one refused row with its reason, never a traceback for the delivery."""
    clean, bad = without_surrogates(row)  # (an emoji's two halves are joined: the character, not a refusal)
    return {**clean, "problems": sorted({*(clean.get("problems") or ()), Problem.BAD_TEXT.value})} if bad else clean


def record_file(path: str | Path, *, as_of: dt.datetime | None = None, operator: str | None = None,
                ctx: StageContext | None = None) -> dict:
    """Record an event file (CSV in UTF-8/BOM/GBK, JSON Lines, .xlsx); the same file twice is one delivery.

    Raises leadflow.intake.readers.IntakeFileError (one sentence) when the file cannot be read."""
    path = Path(path)
    rows = read_event_file(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return engine.record(_ctx(ctx), rows, as_of,
                         batch_id=batch_id_for(digest.encode(), prefix="events"),
                         source=mask_phones_in_text(path.name), operator=_operator(operator), digest=digest)
