"""Applying events: one handler per event type, the same for `leadflow simulate` and production.

An event here is a row of the `events` table as a mapping (type, at, recorded_at, customer_id,
other_customer_id, by, person, department, phone, fields). A handler returns None when the event took
effect, or the `Refusal` that kept it from doing so (the rule's own refusals also go on the ledger).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from leadflow.events.kinds import RECORD_KINDS, Refusal
from leadflow.stages import activities, deals, disputes, leads, people, validation
from leadflow.stages.context import StageContext
from leadflow.store.models import Customer, Person

Handler = Callable[[Connection, StageContext, Mapping], "Refusal | None"]
# Built once: every delivery of records reads these.
_OWNERS = select(Customer.id, Customer.owner_id).where(Customer.id.in_(bindparam("ids", expanding=True)))
_KNOWN = select(Person.id).where(Person.id.in_(bindparam("ids", expanding=True)))


def owners_of(conn: Connection, customer_ids: list[int]) -> dict[int, str | None]:
    """customer id -> current owner (None in the pool, closed by nobody, or invalid)."""
    out: dict[int, str | None] = {}
    ids = sorted(set(customer_ids))
    for i in range(0, len(ids), 5000):
        out.update(dict(conn.execute(_OWNERS, {"ids": ids[i:i + 5000]}).all()))
    return out


def known_people(conn: Connection, ids: list[str | None]) -> set[str]:
    """The ids among `ids` that name someone in the org chart (one query per 5,000)."""
    wanted = sorted({i for i in ids if i is not None})
    known: set[str] = set()
    for i in range(0, len(wanted), 5000):
        known |= set(conn.execute(_KNOWN, {"ids": wanted[i:i + 5000]}).scalars())
    return known


def apply_records(conn: Connection, ctx: StageContext, events: list[Mapping],
                  as_of: dt.datetime) -> dict[int, Refusal | None]:
    """Contacts, entries, follow-ups and sales steps in bulk (R-SLA-1..5, R-CONV-2/3), then R-SLA-7.

    A record without `by` is the current owner's; one by someone else is kept as evidence (R-DISP-4/6).
    Records that arrive late but were made in time revoke the breaches they disprove (R-SLA-7).
    Returns event id -> None (applied) or Refusal.NO_OWNER.
    """
    owners = owners_of(conn, [e["customer_id"] for e in events])
    known = known_people(conn, [e["by"] for e in events])
    outcome: dict[int, Refusal | None] = {}
    rows = []
    for e in events:
        by = e["by"] or owners.get(e["customer_id"])
        if by is None:
            outcome[e["id"]] = Refusal.NO_OWNER
            continue
        if e["by"] is not None and e["by"] not in known:
            outcome[e["id"]] = Refusal.UNKNOWN_PERSON
            continue
        rows.append({"customer_id": e["customer_id"], "person_id": by, "kind": e["type"],
                     "step": (e["fields"] or {}).get("step"), "at": e["at"], "recorded_at": e["recorded_at"],
                     "event_id": e["id"]})
        outcome[e["id"]] = None
    activities.record_many(conn, ctx, rows)
    from leadflow.stages import sla

    if rows and hasattr(sla, "revoke_disproved"):
        sla.revoke_disproved(conn, ctx, sorted({r["customer_id"] for r in rows}), as_of)
    return outcome


def _owner(conn: Connection, customer_id: int) -> str | None:
    return conn.execute(select(Customer.owner_id).where(Customer.id == customer_id)).scalar()


def _owner_action(conn: Connection, e: Mapping) -> tuple[str | None, Refusal | None]:
    """Who acts for an owner action: `by` if it is the owner (or the owner when `by` is left out)."""
    owner = _owner(conn, e["customer_id"])
    if e["by"] is not None and e["by"] != owner:
        return None, Refusal.NOT_OWNER
    return e["by"] or owner, None


def _link(conn, ctx, e):
    ok = activities.link_phone(conn, ctx, e["customer_id"], e["phone"], e["fields"]["relation"], e["at"])
    return None if ok else Refusal.RULE


def _leave(conn, ctx, e):
    people.record_leave(conn, ctx, e["person"], e["fields"]["kind"], e["at"])


def _violation(conn, ctx, e):
    people.record_violation(conn, ctx, e["person"], e["fields"]["kind"], e["at"])


def _late_table(conn, ctx, e):
    people.record_late_table(conn, ctx, e["department"], e["at"])


def _depart(conn, ctx, e):
    people.depart(conn, ctx, e["person"], e["at"])


def _deal(conn, ctx, e):
    by = e["by"] or _owner(conn, e["customer_id"])  # no `by` and no owner: closed by nobody on record (R-DISP-5)
    deals.record_deal(conn, ctx, e["customer_id"], by, e["fields"]["amount"], e["at"])


def _reapply(conn, ctx, e):
    by, refused = _owner_action(conn, e)
    if refused:
        return refused
    leads.reapply(conn, ctx, e["customer_id"], e["fields"]["amount"], by, e["at"])


def _hand_on(conn, ctx, e):
    c = conn.execute(select(Customer.owner_id, Customer.department_id).where(Customer.id == e["customer_id"])).one()
    by = e["by"] or c.owner_id
    manager = conn.execute(select(Person.role, Person.department_id).where(Person.id == by)).first() if by else None
    if manager is None or manager.role != "manager" or manager.department_id != c.department_id:
        return Refusal.NOT_MANAGER
    result = leads.hand_on(conn, ctx, e["customer_id"], e["person"], (e["fields"] or {}).get("amount"), by, e["at"])
    return None if result.get("handed_on") else Refusal.RULE


def _invalid(conn, ctx, e):
    _, refused = _owner_action(conn, e)
    if refused:
        return refused
    leads.mark_invalid(conn, ctx, e["customer_id"], e["fields"]["reason"], e["by"], e["at"])


def _exchange(conn, ctx, e):
    _, refused = _owner_action(conn, e)
    if refused:
        return refused
    return None if leads.exchange(conn, ctx, e["customer_id"], e["other_customer_id"], e["at"]).get("exchanged") \
        else Refusal.RULE


def _help(conn, ctx, e):
    ok = leads.record_help(conn, ctx, e["customer_id"], e["person"], e["fields"]["share"], e["at"])
    return None if ok else Refusal.RULE


def _claim(conn, ctx, e):
    leads.record_claim(conn, ctx, e["customer_id"], e["person"], e["fields"].get("knowingly", False), e["at"])


def _dispute(conn, ctx, e):
    return Refusal.HELD if disputes.rerun(conn, ctx, e["customer_id"], e["at"]).get("held") else None


HANDLERS: dict[str, Handler] = {
    "link": _link, "leave": _leave, "violation": _violation, "late_table": _late_table, "depart": _depart,
    "deal": _deal, "reapply": _reapply, "hand_on": _hand_on, "invalid": _invalid, "exchange": _exchange,
    "help": _help, "claim": _claim, "dispute": _dispute,
}
NEEDS_CUSTOMER = frozenset(t for t in HANDLERS if t not in ("leave", "violation", "late_table", "depart")) \
    | frozenset(RECORD_KINDS)


def before_apply(ctx: StageContext, e: Mapping) -> None:
    """Work an event needs done in its own transactions first: R-VAL-1, the dispute suite on its records."""
    if e["type"] == "dispute":
        with ctx.engine.connect() as conn:
            ids = validation.registrations_of(conn, e["customer_id"])
        validation.check(ctx, "dispute", ids, e["at"])


def apply_one(conn: Connection, ctx: StageContext, e: Mapping) -> Refusal | None:
    """Apply one non-record event; see the module docstring.

    An event naming someone the org chart does not hold (`by`, `person`/`to`) is refused `unknown_person`
    here too, whatever path staged it (issue 9.8: a claim's person reached the claims table's foreign key)."""
    named = [e["by"], e["person"]]
    if any(p is not None for p in named) and not {p for p in named if p is not None} <= known_people(conn, named):
        return Refusal.UNKNOWN_PERSON
    return HANDLERS[e["type"]](conn, ctx, e)
