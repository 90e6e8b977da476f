"""The event stage: stage a delivery's rows, drop duplicates, name customers, apply in time order, account.

Rows in = applied + duplicate + waiting + refused, for every delivery (a file, a CLI call, an API call,
a deployment run, a scenario event). Set-based: the rows are normalised in Python (pure), written with
one bulk insert, resolved to customers with a few queries per 5,000, and applied in time order — records
(contacts, entries, follow-ups, sales steps) in bulk, other events one by one through their stage.

A delivery is applied in short transactions: its rows are stored first (`pending`), then applied group by
group, each group's status written in the transaction that applies it. A crash leaves `pending` rows that
the next run of any entry point applies (`apply_pending`), so nothing is lost and nothing applied twice.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping

from sqlalchemy import bindparam, case, func, literal, select, union_all
from sqlalchemy.engine import Connection

from leadflow import failpoints
from leadflow.events import apply as appliers
from leadflow.events.kinds import RECORD_KINDS, EventStatus, Refusal
from leadflow.events.normalise import dedupe_key, normalise_event
from leadflow.events.resolve import resolve_keys, resolve_phones
from leadflow.stages.context import StageContext
from leadflow.store.bulk import claim, insert_rows
from leadflow.store.models import Department, Event, EventBatch, Person

PENDING = "pending"  # stored, not yet applied (only between the two steps, or after a crash)
CHUNK = 5000
SHOWN_PROBLEMS = 50

# Statements every delivery runs, built once: building one costs several times what SQLite takes to run it,
# and each delivery (every scenario event of a replay) runs a dozen of them.
_et, _bt = Event.__table__, EventBatch.__table__
_FINISHED = select(EventBatch).where(EventBatch.id == bindparam("bid"), EventBatch.finished_at.is_not(None))
_BATCH = select(EventBatch).where(EventBatch.id == bindparam("bid"))
# the org chart's ids, people and departments, in one read: ("p", id) / ("d", id)
_ORG_IDS = union_all(select(literal("p"), Person.id), select(literal("d"), Department.id))
_KNOWN_KEYS = select(Event.dedupe_key).where(Event.dedupe_key.in_(bindparam("keys", expanding=True)))
_SET_ROWS = _bt.update().where(_bt.c.id == bindparam("bid")).values(rows_in=bindparam("n"),
                                                                     duplicate=bindparam("dup"))
_WAITING = select(_et).where(_et.c.status == EventStatus.WAITING.value)
_PENDING_ALL = select(_et).where(_et.c.status == PENDING).order_by(_et.c.at, _et.c.id)
_PENDING_OF = (select(_et).where(_et.c.status == PENDING, _et.c.batch_id == bindparam("bid"))
               .order_by(_et.c.at, _et.c.id))
_APPLIED = _et.update().where(_et.c.id.in_(bindparam("ids", expanding=True))).values(
    status=EventStatus.APPLIED.value, applied_at=bindparam("applied_on"))
_REFUSED = _et.update().where(_et.c.id == bindparam("eid")).values(status=EventStatus.REFUSED.value,
                                                                   reason=bindparam("why"))
# (status, reason) -> count of one delivery's events: its counts, whether any is pending, its refusal reasons
_COUNTS = (select(_et.c.status, _et.c.reason, func.count()).where(_et.c.batch_id == bindparam("bid"))
           .group_by(_et.c.status, _et.c.reason))
_SET_COUNTS = _bt.update().where(_bt.c.id == bindparam("bid")).values(
    applied=bindparam("n_applied"), waiting=bindparam("n_waiting"), refused=bindparam("n_refused"))
# the counts, and the delivery finished when nothing of it is pending (the first finish stands)
_SET_COUNTS_FINISH = _bt.update().where(_bt.c.id == bindparam("bid")).values(
    applied=bindparam("n_applied"), waiting=bindparam("n_waiting"), refused=bindparam("n_refused"),
    finished_at=case((_bt.c.finished_at.is_(None), bindparam("finished_on", type_=_bt.c.finished_at.type)),
                     else_=_bt.c.finished_at))
_PROBLEMS = (select(_et.c.row_number, _et.c.type, _et.c.status, _et.c.reason, _et.c.customer_key, _et.c.fields)
             .where(_et.c.batch_id == bindparam("bid"),
                    _et.c.status.in_([EventStatus.REFUSED.value, EventStatus.WAITING.value]))
             .order_by(_et.c.row_number).limit(SHOWN_PROBLEMS))


def batch_id_for(digest_source: str | bytes, prefix: str = "events") -> str:
    """A delivery's id from its content: the same file (or the same API payload) twice is one delivery."""
    data = digest_source if isinstance(digest_source, bytes) else digest_source.encode()
    return f"{prefix}-{hashlib.sha256(data).hexdigest()[:20]}"


def payload_digest(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str, ensure_ascii=False)
                          .encode("utf-8", "surrogatepass")).hexdigest()  # a lone surrogate hashes too (bad_text)


def previous_summary(conn: Connection, batch_id: str) -> dict | None:
    """The outcome of a delivery already recorded in full, or None."""
    b = conn.execute(_FINISHED, {"bid": batch_id}).mappings().first()
    if b is None:
        return None
    return {**summary_of(conn, batch_id), "already_recorded": True}


def stage_events(ctx: StageContext, batch_id: str, source: str, rows: Iterable[dict], as_of: dt.datetime,
                 operator: str | None = None, digest: str | None = None) -> dict:
    """Store a delivery's rows as events (pending, waiting or refused) and count its duplicates.

    `rows` are canonical event rows (see `leadflow.events.normalise`). One transaction, which first claims the
    delivery (INSERT … ON CONFLICT DO NOTHING on its id): a delivery claimed before — staged before a crash, or
    by a run at the same time — stores nothing again, and its rows are applied from what is stored.
    Returns {"rows_in", "duplicate"}, both None when the delivery was claimed before.
    """
    policy = ctx.policy
    bt = EventBatch.__table__
    with ctx.engine.begin() as conn:
        if not claim(conn, bt, {"id": batch_id, "source": source, "digest": digest, "operator": operator,
                                "started_at": as_of}):
            return {"rows_in": None, "duplicate": None}  # claimed before: apply what is pending
        org = conn.execute(_ORG_IDS).all()
        people = {i for kind, i in org if kind == "p"}
        departments = {i for kind, i in org if kind == "d"}
        records = [normalise_event(r, as_of=as_of, policy=policy, people=people, departments=departments)
                   for r in rows]
        for r in records:
            if r["status"] is None:
                r["dedupe_key"] = dedupe_key(r)
        keys = [r["dedupe_key"] for r in records if r.get("dedupe_key")]
        known = set()
        for i in range(0, len(keys), CHUNK):
            known |= set(conn.execute(_KNOWN_KEYS, {"keys": keys[i:i + CHUNK]}).scalars())
        fresh, duplicate, seen = [], 0, set()
        for r in records:
            k = r.get("dedupe_key")
            if k is not None and (k in known or k in seen):
                duplicate += 1
                continue
            if k is not None:
                seen.add(k)
            fresh.append(r)
        _name_customers(conn, policy, fresh, as_of)
        conn.execute(_SET_ROWS, {"bid": batch_id, "n": len(records), "dup": duplicate})
        insert_rows(conn, Event.__table__, [_row(r, batch_id, operator) for r in fresh])
    failpoints.hit("events.staged")
    return {"rows_in": len(records), "duplicate": duplicate}


def _row(r: dict, batch_id: str, operator: str | None) -> dict:
    return {"batch_id": batch_id, "row_number": r["row_number"], "source_event_id": r["source_event_id"],
            "dedupe_key": r.get("dedupe_key"), "type": r["type"], "at": r["at"], "recorded_at": r["recorded_at"],
            "customer_key": r["customer_key"], "phone": r["phone"], "customer_id": r.get("customer_id"),
            "other_customer_key": r["other_customer_key"], "other_customer_id": r.get("other_customer_id"),
            "by": r["by"], "person": r["person"], "department": r["department"], "fields": r["fields"] or {},
            "operator": operator, "status": r["status"] or PENDING, "reason": r["reason"],
            "wait_until": r.get("wait_until"), "applied_at": None}


def _name_customers(conn: Connection, policy, records: list[dict], as_of: dt.datetime) -> None:
    """Resolve each live record's customers; an unknown one waits for `events.wait_minutes`, then is refused."""
    live = [r for r in records if r["status"] is None and r["type"] in appliers.NEEDS_CUSTOMER]
    by_key = resolve_keys(conn, [k for r in live for k in (r["customer_key"], r["other_customer_key"])
                                 if k and not (r["phone"] and k == r["customer_key"] and r["type"] != "link")])
    by_phone = resolve_phones(conn, [r["phone"] for r in live if r["phone"] and r["type"] != "link"])
    wait = dt.timedelta(minutes=policy.events.wait_minutes)
    for r in live:
        named_by_phone = r["phone"] is not None and r["type"] != "link"
        r["customer_id"] = by_phone.get(r["phone"]) if named_by_phone else by_key.get(r["customer_key"])
        if r["other_customer_key"]:
            r["other_customer_id"] = by_key.get(r["other_customer_key"])
        if r["customer_id"] is None or (r["other_customer_key"] and r.get("other_customer_id") is None):
            r["wait_until"] = r["recorded_at"] + wait
            r["status"] = EventStatus.WAITING.value if as_of <= r["wait_until"] else EventStatus.REFUSED.value
            r["reason"] = Refusal.UNKNOWN_CUSTOMER.value


def retry_waiting(ctx: StageContext, as_of: dt.datetime) -> int:
    """Every run: waiting events whose customer is now known become pending; expired ones are refused.

    Returns how many became pending."""
    et = Event.__table__
    with ctx.engine.begin() as conn:
        waiting = [dict(r) for r in conn.execute(_WAITING).mappings()]
        if not waiting:
            return 0
        records = [{**w, "status": None, "reason": None} for w in waiting]
        _name_customers(conn, ctx.policy, records, as_of)
        ready = [r for r in records if r["status"] is None]
        expired = [r for r in records if r["status"] == EventStatus.REFUSED.value]
        if ready:
            conn.execute(et.update().where(et.c.id == bindparam("eid")).values(
                status=PENDING, reason=None, customer_id=bindparam("cid"), other_customer_id=bindparam("oid")),
                [{"eid": r["id"], "cid": r["customer_id"], "oid": r.get("other_customer_id")} for r in ready])
        if expired:
            conn.execute(et.update().where(et.c.id.in_([r["id"] for r in expired])).values(
                status=EventStatus.REFUSED.value, reason=Refusal.UNKNOWN_CUSTOMER.value))
        _recount(conn, {w["batch_id"] for w in waiting})
    return len(ready)


def apply_pending(ctx: StageContext, as_of: dt.datetime, batch_id: str | None = None) -> int:
    """Apply pending events in time order (`at`, then delivery order): records in bulk, others one by one.

    Each group commits with its events' statuses, so a crash never applies a group twice. Returns how
    many were applied (refusals by the rules included in the statuses, not in the count)."""
    with ctx.engine.connect() as conn:
        q = _PENDING_ALL if batch_id is None else _PENDING_OF
        pending = [dict(r) for r in conn.execute(q, {"bid": batch_id}).mappings()]
    applied = 0
    for group in _groups(pending):
        if group[0]["type"] not in RECORD_KINDS:
            appliers.before_apply(ctx, group[0])
        with ctx.engine.begin() as conn:
            if group[0]["type"] in RECORD_KINDS:
                outcome = appliers.apply_records(conn, ctx, group, as_of)
            else:
                outcome = {group[0]["id"]: appliers.apply_one(conn, ctx, group[0])}
            failpoints.hit("events.apply")
            _write_outcomes(conn, outcome, as_of)
            _recount(conn, {e["batch_id"] for e in group})
        applied += sum(1 for v in outcome.values() if v is None)
    return applied


def _groups(events: list[dict]):
    """Consecutive records form one group; every other event is a group of its own."""
    group: list[dict] = []
    for e in events:
        if e["type"] in RECORD_KINDS:
            group.append(e)
            continue
        if group:
            yield group
            group = []
        yield [e]
    if group:
        yield group


def _write_outcomes(conn: Connection, outcome: Mapping[int, Refusal | None], as_of: dt.datetime) -> None:
    ok = [i for i, v in outcome.items() if v is None]
    for i in range(0, len(ok), CHUNK):
        conn.execute(_APPLIED, {"ids": ok[i:i + CHUNK], "applied_on": as_of})
    refused = [{"eid": i, "why": v.value} for i, v in outcome.items() if v is not None]
    if refused:
        conn.execute(_REFUSED, refused)


def _counts(conn: Connection, batch_id: str) -> dict[tuple[str, str | None], int]:
    """(status, reason) -> how many of the delivery's events: one grouped read on the batch index."""
    return {(status, reason): n for status, reason, n in conn.execute(_COUNTS, {"bid": batch_id})}


def _tally(counts: dict[tuple[str, str | None], int], status: str) -> int:
    return sum(n for (s, _), n in counts.items() if s == status)


def _recount(conn: Connection, batch_ids: set[str], finished_on: dt.datetime | None = None) -> dict[str, dict]:
    """Write each delivery's applied / waiting / refused counts; returns batch id -> its `_counts`.
    `finished_on`: also mark each delivery with nothing pending finished then (unless it was before)."""
    out = {}
    for bid in sorted(batch_ids):
        out[bid] = counts = _counts(conn, bid)
        values = {"bid": bid, "n_applied": _tally(counts, EventStatus.APPLIED.value),
                  "n_waiting": _tally(counts, EventStatus.WAITING.value),
                  "n_refused": _tally(counts, EventStatus.REFUSED.value)}
        if finished_on is not None and not _tally(counts, PENDING):
            conn.execute(_SET_COUNTS_FINISH, {**values, "finished_on": finished_on})
        else:
            conn.execute(_SET_COUNTS, values)
    return out


def finish(ctx: StageContext, batch_id: str, as_of: dt.datetime) -> dict:
    """Mark the delivery recorded once nothing of it is pending; return its summary (`summary_of`)."""
    with ctx.engine.begin() as conn:
        counts = _recount(conn, {batch_id}, finished_on=as_of)[batch_id]
        return summary_of(conn, batch_id, counts)


def summary_of(conn: Connection, batch_id: str, counts: dict | None = None) -> dict:
    """rows in = applied + duplicate + waiting + refused, the refusal reasons, and the refused rows (no phones).

    `counts`: the delivery's `_counts` when the caller has just read them (one read fewer)."""
    b = conn.execute(_BATCH, {"bid": batch_id}).mappings().one()
    if counts is None:
        counts = _counts(conn, batch_id)
    problems = [{"row": r.row_number, "type": r.type, "status": r.status, "reason": r.reason,
                 "customer": r.customer_key, "detail": (r.fields or {}).get("problem")}
                for r in conn.execute(_PROBLEMS, {"bid": batch_id})] \
        if _tally(counts, EventStatus.REFUSED.value) or _tally(counts, EventStatus.WAITING.value) else []
    reasons = Counter({reason: n for (status, reason), n in counts.items() if status == EventStatus.REFUSED.value})
    return {"batch_id": batch_id, "source": b["source"], "rows_in": b["rows_in"], "applied": b["applied"],
            "duplicate": b["duplicate"], "waiting": b["waiting"], "refused": b["refused"],
            "reasons": dict(sorted(reasons.items())), "problems": problems}
