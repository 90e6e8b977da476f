"""Register one lead from Python (a web form, a CRM hook) through the same stage code as a file.

Callers at once share runs (group commit, issue 10): runs on one store are serialised by the clock lock, so ten
callers each making a run of their own wait for nine runs before theirs. Instead the leads that arrive while a
run is under way are registered together by the next one, as one batch (one gate, one decision, one pool offer),
and each caller gets its own lead's outcome. A group holds at most `group_rows` leads: fewer than R-VAL-3's
smallest batch judged by its share of bad rows, so a group is never refused as a whole because of its members'
rows; a bad lead is quarantined alone (R-VAL-2) as it would be on its own.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import select

from leadflow.intake.cells import Problem, without_surrogates
from leadflow.rules.registration import mask_phone
from leadflow.stages.context import StageContext
from leadflow import engine
from leadflow.store.models import Customer, Registration


def register_lead(lead: dict, *, now: dt.datetime | None = None, ctx: StageContext | None = None) -> dict:
    """Register `lead` (INTAKE.md's columns: channel, phone, registered_at, registered_by, …) and allocate it.

    One run of the engine at `now` (default: the current time): the clock catches up first, the lead is
    allocated when it reaches LeadFlow, and `registered_at` stays its own fact. Leads other threads of this
    process register at the same time (the same store and `now`) may share the run (module docstring): the
    outcome is the same as in a run of its own at that run's time. Raises engine.ClockError when `now` is
    before the store's clock; intake.StageFailure (one sentence) when the batch cannot be registered at all.

    Returns the outcome — status, reasons, customer id, tier, owner — with the phone masked (R-REG-7).
    Delivering the same lead again later is one registration (R-REG-4): it comes back `attached`. The same lead
    at the same explicit `now` is the same delivery (the same batch): its first outcome comes back again.
    """
    if ctx is None:
        from leadflow.wiring import stage_context

        ctx = stage_context()
    digest = hashlib.sha256(json.dumps(lead, sort_keys=True, default=str, ensure_ascii=False)
                            .encode("utf-8", "surrogatepass")).hexdigest()  # the same lead, the same digest
    clean, bad_text = without_surrogates(lead)  # half an emoji is no text: quarantined, never a traceback
    row = {**clean, "raw": {k: v for k, v in clean.items() if k != "phone"}}
    if bad_text:
        row["problems"] = sorted({*(row.get("problems") or ()), Problem.BAD_TEXT.value})
    group, number = _join(ctx, now, digest, row)
    with group.leader:  # one leader per group; the others wait here while it runs, then find it done
        if not group.done.is_set():
            _run(ctx, group)
    group.done.wait()
    if group.error is not None:
        raise group.error
    return group.outcomes[number]


GROUP_ROWS = 19  # leads per group at most, and fewer than R-VAL-3's smallest batch judged by its share of bad rows


def group_rows(policy) -> int:
    """The most leads one run registers together: GROUP_ROWS, and below the policy's
    `validation.min_rows_for_fraction` (R-VAL-3), so a group is never a batch judged by its share of bad rows."""
    return max(1, min(GROUP_ROWS, policy.validation.min_rows_for_fraction - 1))


@dataclass(eq=False)
class _Group:
    """Leads of one store and `now` registered by one run: rows in arrival order (row_number = position + 1)."""

    key: tuple
    now: dt.datetime | None
    rows: list[dict] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    outcomes: dict[int, dict] = field(default_factory=dict)
    error: BaseException | None = None
    leader: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)


_open: dict[tuple, _Group] = {}  # per store and `now`: the group still taking leads
_open_lock = threading.Lock()
_store_runs: dict[int, threading.Lock] = {}  # per store: one group's run at a time in this process


def _join(ctx: StageContext, now: dt.datetime | None, digest: str, row: dict) -> tuple[_Group, int]:
    """The group `row` joins (a new one when none is open or the open one is full) and its row number."""
    key = (id(ctx.engine), ctx.policy.version, now)
    with _open_lock:
        group = _open.get(key)
        if group is None or len(group.rows) >= group_rows(ctx.policy):
            group = _open[key] = _Group(key, now)
        group.rows.append({**row, "row_number": len(group.rows) + 1})
        group.digests.append(digest)
        return group, len(group.rows)


def _batch_id(group: _Group) -> str:
    """The batch id of a closed group: from its leads' digests (one lead: its own, as before groups) and the
    time, so the same leads delivered again at the same `now` are the same batch (R-REG-4) and other leads never
    are."""
    digest = group.digests[0] if len(group.digests) == 1 else hashlib.sha256("|".join(group.digests).encode()).hexdigest()
    stamp = f"{group.now.timestamp():.0f}" if group.now else str(time.time_ns())
    return f"api-{digest[:16]}-{stamp}"


def _run(ctx: StageContext, group: _Group) -> None:
    """Register the group's leads as one batch (its leader, holding `group.leader`), once the run before it in
    this process ended: the leads arriving meanwhile join it. Sets outcomes or error, then `done`."""
    with _open_lock:
        if len(_store_runs) > 64:  # many stores in one process (tests): keep a few; the clock lock still serialises
            _store_runs.clear()
        runs = _store_runs.setdefault(group.key[0], threading.Lock())
    try:
        with runs:
            with _open_lock:  # from here on the group takes no more leads
                if _open.get(group.key) is group:
                    del _open[group.key]
            batch_id = _batch_id(group)
            summary = engine.register(ctx, batch_id, "api", group.rows, group.now)
            group.outcomes = _outcomes(ctx, batch_id, summary)
    except BaseException as e:  # every caller of the group gets it, as each would have alone
        group.error = e
    finally:
        group.done.set()


def _outcomes(ctx: StageContext, batch_id: str, summary: dict) -> dict[int, dict]:
    """{row number: the outcome register_lead returns} of the batch's registrations."""
    rt, ct = Registration.__table__, Customer.__table__
    with ctx.engine.connect() as conn:
        regs = conn.execute(select(rt.c.row_number, rt.c.status, rt.c.reasons, rt.c.customer_id, rt.c.phone,
                                   ct.c.tier, ct.c.owner_id).select_from(rt.outerjoin(ct, ct.c.id == rt.c.customer_id))
                            .where(rt.c.batch_id == batch_id)).all()
    return {r.row_number: {"status": r.status, "reasons": r.reasons or [], "customer_id": r.customer_id,
                           "phone": mask_phone(r.phone), "tier": r.tier, "owner": r.owner_id,
                           "docs": summary.get("docs")} for r in regs}
