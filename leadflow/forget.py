"""Erasure on request (China's PIPL, art. 47; issue 8.6): `leadflow forget CUSTOMER` removes a customer's name
and phone numbers from everywhere the store keeps them, in one transaction under the clock lock.

Removed, for the customer — and for rows naming one of its numbers that no other customer holds (a quarantined
registration, a waiting event):
- `customers.name`; every `customer_phones` row (its own number, aliases and relatives, R-REG-5/6);
- registrations: name, phone, phone_masked, raw, inquiry, region, and a dedupe key computed from the phone
  (R-REG-4 without an external reference; a key from the channel's own reference holds no number and stays);
- events: the number, a masked number naming the customer (the key becomes the customer id), a dedupe key
  computed from the number;
- masked numbers in the customer's ledger reasons and in the names of the deliveries (files) that held them.
Kept: ids, tier, amounts, channel, times, owners, rule ids and every ledger entry (R-ALLOC-7), `phone_kind`
(the gate's suites read it). No block list is kept (it would keep the number): a number delivered again later
is new data and registers as a new customer. On SQLite the erased bytes are overwritten (`secure_delete`), the
file is rewritten (VACUUM) and the write-ahead log emptied; PostgreSQL's old row versions go with (auto)vacuum,
its WAL archives and backups with their retention. The erasure is itself a ledger entry (rule `PIPL-47`, action
`erase`: who, when, which kinds of data, how many rows, and the delivered files that held them).

Outside the store, and so not erased here: the delivered files themselves (the front desk's and the systems'
exports; named in the output and the entry, for their owners to delete); Prefect's database (flow runs, logs,
events, artifacts), which LeadFlow gives customer ids and masked numbers only (R-REG-7), never a name; Great
Expectations' Data Docs, which hold no number or name at all (the gate never selects `phone`, `raw`, `name`).
"""
from __future__ import annotations

import datetime as dt
import getpass
import json
from dataclasses import dataclass, field

from sqlalchemy import and_, bindparam, case, func, null, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from leadflow import engine
from leadflow.events.normalise import customer_reference
from leadflow.events.resolve import resolve_keys, resolve_phones
from leadflow.privacy import mask_phones_in_text
from leadflow.rules.registration import mask_phone
from leadflow.stages.context import StageContext
from leadflow.store import ledger
from leadflow.store.models import Customer, CustomerPhone, Event, EventBatch, IntakeBatch, Ledger, Registration

RULE = "PIPL-47"
ACTION = "erase"
ERASED = "(erased)"
REGISTRATION_FIELDS = ("name", "phone", "phone_masked", "raw", "inquiry", "region")
NOT_FILES = {"api", "cli", "replay"}  # delivery sources that are not files


class ErasureError(ValueError):
    """An erasure that cannot be done; the message is one sentence (exit 2)."""


@dataclass
class Erasure:
    """What one `forget` did: `removed` is rows changed per table; `ledger_id` None when nothing was left."""

    customer_id: int | None
    numbers: list[str]  # the numbers erased, masked (R-REG-7)
    removed: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # delivered files that still hold them (names masked)
    ledger_id: int | None = None
    earlier: dt.datetime | None = None  # the first erasure, when this one found nothing left
    compacted: bool | None = None  # SQLite: the file rewritten without the erased bytes (None: PostgreSQL)


def operator(by: str | None) -> str:
    """Who carries out the request: `by`, else the login name. Raises ErasureError when neither is known."""
    try:
        name = by or getpass.getuser()
    except Exception:  # no login name (a container)
        name = None
    if not name:
        raise ErasureError("say who carries out the erasure with --by.")
    return mask_phones_in_text(name)  # R-REG-7: a phone given as a name is not stored in full either


def forget(ctx: StageContext, key: str, by: str, now: dt.datetime | None = None) -> Erasure:
    """Erase the personal data of the customer named by `key` (id, registration or external reference, or phone).

    Idempotent: a second request for the same customer changes nothing and writes no second entry.
    Raises ErasureError (one sentence) when no customer or stored record matches `key`."""
    with engine.clock_lock(ctx), ctx.engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # overwrite the freed bytes instead of leaving them in free pages
            _pragma(conn, "secure_delete=ON")
        try:
            with conn.begin():
                out = _erase(conn, ctx, key, by, now or dt.datetime.now(dt.timezone.utc))
        finally:
            if sqlite:
                _pragma(conn, "secure_delete=OFF")
        if sqlite:
            out.compacted = _compact(conn)
        return out


def _pragma(conn: Connection, pragma: str) -> None:
    conn.exec_driver_sql(f"PRAGMA {pragma}")
    conn.commit()


def _compact(conn: Connection) -> bool:
    """SQLite: rewrite the file from its live rows (no stale copy of an erased cell survives in a free block),
    then empty the write-ahead log of the old page images. False when another reader kept it busy."""
    try:
        conn.exec_driver_sql("VACUUM")
        conn.commit()
        _pragma(conn, "wal_checkpoint(TRUNCATE)")
        return True
    except OperationalError:
        conn.rollback()
        return False


def _erase(conn: Connection, ctx: StageContext, key: str, by: str, now: dt.datetime) -> Erasure:
    shown, given = customer_reference(key)
    cid = resolve_phones(conn, [given]).get(given) if given else resolve_keys(conn, [shown] if shown else []).get(shown)
    numbers = _numbers(conn, cid, given)
    free = numbers - set(conn.execute(select(CustomerPhone.phone).where(
        CustomerPhone.phone.in_(numbers), CustomerPhone.customer_id != (cid or 0))).scalars())
    if cid is None and not _held(conn, free):
        raise ErasureError("no customer or stored record matches that id, reference or phone.")
    masked = {mask_phone(p) for p in numbers}
    out = Erasure(cid, sorted(masked))
    batches: set[str] = set()
    event_batches: set[str] = set()
    out.removed["customers"] = conn.execute(Customer.__table__.update().where(
        Customer.id == cid, Customer.name.is_not(None)).values(name=null())).rowcount if cid else 0
    out.removed["customer_phones"] = conn.execute(CustomerPhone.__table__.delete().where(
        CustomerPhone.customer_id == cid)).rowcount if cid else 0
    out.removed["registrations"] = _registrations(conn, cid, free, batches)
    out.removed["events"] = _events(conn, cid, free, masked, event_batches)
    out.removed["ledger"] = _ledger(conn, cid, masked)
    out.removed["deliveries"], out.files, files = _deliveries(conn, masked, batches, event_batches)
    if not any(out.removed.values()):
        out.earlier = conn.execute(select(func.min(Ledger.at)).where(
            Ledger.action == ACTION, Ledger.customer_id == cid)).scalar() if cid else None
        return out
    at = max(now, engine.clock(conn) or now)
    ledger.append(conn, [ledger.entry(at, RULE, ACTION, f"personal data erased on request, by {by}",
                                      customer_id=cid, explanation={
                                          "by": by, "named_by": "phone" if given else "id or reference",
                                          "numbers": len(numbers), "removed": out.removed, "files": files,
                                          "data": ["name", "phone numbers", "raw rows", "inquiry", "region"]})],
                  ctx.policy.version, ctx.flow_run_id)
    out.ledger_id = conn.execute(select(func.max(Ledger.id)).where(Ledger.action == ACTION)).scalar()
    return out


def _numbers(conn: Connection, cid: int | None, given: str | None) -> set[str]:
    """Every number that reaches the customer: linked (R-REG-5/6), on its registrations, and the one given."""
    found = {given} if given else set()
    if cid is not None:
        found |= set(conn.execute(select(CustomerPhone.phone).where(CustomerPhone.customer_id == cid)).scalars())
        found |= set(conn.execute(select(Registration.phone).where(
            Registration.customer_id == cid, Registration.phone.is_not(None))).scalars())
    return found


def _held(conn: Connection, numbers: set[str]) -> bool:
    return bool(numbers) and any(conn.execute(select(t.c.id).where(t.c.phone.in_(numbers)).limit(1)).first()
                                 for t in (Registration.__table__, Event.__table__))


def _registrations(conn: Connection, cid: int | None, free: set[str], batches: set[str]) -> int:
    rt = Registration.__table__
    whose = or_(rt.c.customer_id == (cid or 0), and_(rt.c.customer_id.is_(None), rt.c.phone.in_(free)))
    phone_key = and_(rt.c.external_ref.is_(None), rt.c.dedupe_key.is_not(None))  # R-REG-4's key from the phone
    personal = or_(*(rt.c[c].is_not(None) for c in REGISTRATION_FIELDS), phone_key)
    batches |= set(conn.execute(select(rt.c.batch_id).where(whose, personal).distinct()).scalars())
    return conn.execute(rt.update().where(whose, personal).values(
        **{c: null() for c in REGISTRATION_FIELDS},
        dedupe_key=case((rt.c.external_ref.is_(None), null()), else_=rt.c.dedupe_key))).rowcount


def _events(conn: Connection, cid: int | None, free: set[str], masked: set[str], batches: set[str]) -> int:
    """The customer's events (and events naming a freed number): number, masked key and number-made key go."""
    et = Event.__table__
    rows = conn.execute(select(et.c.id, et.c.batch_id, et.c.type, et.c.customer_id, et.c.other_customer_id,
                               et.c.phone, et.c.customer_key, et.c.other_customer_key, et.c.dedupe_key,
                               et.c.source_event_id)
                        .where(or_(et.c.customer_id == (cid or 0), et.c.other_customer_id == (cid or 0),
                                   and_(et.c.customer_id.is_(None), et.c.phone.in_(free))))).all()
    updates = []
    for e in rows:
        new = {"phone": e.phone, "customer_key": e.customer_key, "other_customer_key": e.other_customer_key,
               "dedupe_key": e.dedupe_key}
        names_it = cid is not None and e.customer_id == cid
        if names_it or (e.customer_id is None and e.phone in free):  # names this customer, or a freed number
            if e.phone is not None and e.source_event_id is None and e.type != "link":
                new["dedupe_key"] = None  # it was made from the number (leadflow.events.normalise.dedupe_key)
            new["phone"] = None
            if e.customer_key in masked:
                new["customer_key"] = str(cid) if cid else None
        if cid is not None and e.other_customer_id == cid and e.other_customer_key in masked:
            new["other_customer_key"] = str(cid)
        if new != {k: getattr(e, k) for k in new}:
            updates.append({"eid": e.id, **{f"new_{k}": v for k, v in new.items()}})
            batches.add(e.batch_id)
    if updates:
        conn.execute(et.update().where(et.c.id == bindparam("eid")).values(
            phone=bindparam("new_phone"), customer_key=bindparam("new_customer_key"),
            other_customer_key=bindparam("new_other_customer_key"), dedupe_key=bindparam("new_dedupe_key")), updates)
    return len(updates)


def _scrub(text: str | None, masked: set[str]) -> str | None:
    for m in masked:
        text = text.replace(m, ERASED) if text else text
    return text


def _ledger(conn: Connection, cid: int | None, masked: set[str]) -> int:
    """Masked numbers in the customer's ledger entries (a link's reason) become `(erased)`; the facts stay."""
    if cid is None:
        return 0
    lt = Ledger.__table__
    updates = []
    for r in conn.execute(select(lt.c.id, lt.c.reason, lt.c.explanation).where(lt.c.customer_id == cid)):
        reason = _scrub(r.reason, masked)
        text = json.dumps(r.explanation, ensure_ascii=False) if r.explanation is not None else None
        explanation = _scrub(text, masked)
        if reason != r.reason or explanation != text:
            updates.append({"lid": r.id, "new_reason": reason,
                            "new_explanation": json.loads(explanation) if explanation else r.explanation})
    if updates:
        conn.execute(lt.update().where(lt.c.id == bindparam("lid")).values(
            reason=bindparam("new_reason"), explanation=bindparam("new_explanation")), updates)
    return len(updates)


def _deliveries(conn: Connection, masked: set[str], batches: set[str], event_batches: set[str]):
    """A masked number in a delivery's (file) name becomes `(erased)`. Returns (names changed, the files that held
    the data as the operator knows them, masked, and as the ledger keeps them: scrubbed name and SHA-256)."""
    changed = 0
    shown: set[str] = set()
    kept: list[dict] = []
    for table, touched in ((IntakeBatch.__table__, batches), (EventBatch.__table__, event_batches)):
        named = or_(table.c.id.in_(touched), *(table.c.source.contains(m, autoescape=True) for m in masked))
        for bid, source, digest in conn.execute(select(table.c.id, table.c.source, table.c.digest).where(named)):
            clean = _scrub(source, masked)
            if clean != source:
                conn.execute(table.update().where(table.c.id == bid).values(source=clean))
                changed += 1
            if source not in NOT_FILES and not source.startswith("api"):
                shown.add(source)
                kept.append({"name": clean, "sha256": digest})
    return changed, sorted(shown), sorted(kept, key=lambda f: (f["name"], f["sha256"] or ""))


def describe(e: Erasure) -> str:
    """One line for the operator: what was removed, how many rows, the numbers masked (R-REG-7)."""
    who = f"customer {e.customer_id}" if e.customer_id else "records without a customer"
    numbers = ", ".join(e.numbers) or "no number"
    if e.ledger_id is None:
        since = f" (forgotten {e.earlier:%Y-%m-%d %H:%M} UTC)" if e.earlier else ""
        busy = "; the database file is busy: run forget again to compact it" if e.compacted is False else ""
        return f"{who}: nothing left to erase{since}{busy}."
    counts = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in e.removed.items())
    files = (f"; delivered files outside the store still hold them: {', '.join(e.files)}" if e.files else "")
    if e.compacted is False:
        files += "; the database file was busy and still holds the old bytes: run forget again to compact it"
    return (f"{who} forgotten: name and {len(e.numbers)} number(s) ({numbers}) erased from {counts} rows; "
            f"ledger entry {e.ledger_id}{files}.")
