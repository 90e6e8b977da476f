"""The dispute rerun (R-DISP-8): decide one customer from the recorded history; the same history, no new record."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.clock import week_index
from leadflow.rules import disputes as rules
from leadflow.rules.allocation import week_order
from leadflow.stages.context import StageContext, rotation_epoch
from leadflow.stages.deals import previous_owner_share, write_credits
from leadflow.stages.people import fine
from leadflow.stages.validation import open_holds
from leadflow.store import ledger
from leadflow.store.models import (
    Activity, Assignment, Claim, Deal, Department, Fine, Ledger, Person, Registration,
)

CONTACT_KINDS = ("contact", "follow_up", "sales_step")


def gather(conn: Connection, customer_id: int) -> dict:
    """Everything on record about one customer that a dispute may weigh."""
    roles = dict(conn.execute(select(Person.id, Person.role)).all())
    regs = [rules.Reg(person=p, at=at, channel=ch, valid=True) for p, at, ch in conn.execute(
        select(Registration.registered_by, Registration.registered_at, Registration.channel)
        .where(Registration.customer_id == customer_id, Registration.status.in_(("accepted", "attached")))
        .order_by(Registration.registered_at, Registration.id)) if roles.get(p) == "sales"]
    contacts = [rules.Contact(person=p, at=at) for p, at in conn.execute(
        select(Activity.person_id, Activity.at).where(Activity.customer_id == customer_id,
                                                      Activity.kind.in_(CONTACT_KINDS)).order_by(Activity.at))]
    holdings = [rules.Holding(person=p, start=s, end=e, kind=k) for p, s, e, k in conn.execute(
        select(Assignment.person_id, Assignment.started_at, Assignment.ended_at, Assignment.kind)
        .where(Assignment.customer_id == customer_id).order_by(Assignment.started_at, Assignment.id))]
    deal = conn.execute(select(Deal.id, Deal.closer_id, Deal.at, Deal.amount_yuan)
                        .where(Deal.customer_id == customer_id).order_by(Deal.at.desc(), Deal.id.desc())).first()
    claims = [rules.ClaimFact(person=p, at=at, knowingly=k) for p, at, k in conn.execute(
        select(Claim.person_id, Claim.at, Claim.knowingly).where(Claim.customer_id == customer_id)
        .order_by(Claim.at, Claim.id))]
    return {"regs": regs, "contacts": contacts, "holdings": holdings, "claims": claims,
            "deal": None if deal is None else (deal[0], rules.DealFact(closer=deal[1], at=deal[2], amount=deal[3]))}


def reception_manager(conn: Connection, ctx: StageContext, at: dt.datetime) -> str | None:
    """R-DISP-5: the manager of the department first in that week's rotation order."""
    departments = tuple(conn.execute(select(Department.id).order_by(Department.position, Department.id)).scalars())
    order = week_order(departments, week_index(at, rotation_epoch(conn, ctx, at), ctx.policy))
    if not order:
        return None
    return conn.execute(select(Person.id).where(Person.department_id == order[0], Person.role == "manager")
                        .order_by(Person.id)).scalar()


def _last_decision(conn: Connection, customer_id: int) -> dict | None:
    return conn.execute(select(Ledger.explanation).where(Ledger.customer_id == customer_id,
                                                         Ledger.action == "dispute_decision")
                        .order_by(Ledger.id.desc())).scalar()


def rerun(conn: Connection, ctx: StageContext, customer_id: int, at: dt.datetime) -> dict:
    """Decide, and record only when the decision differs from the last one on record."""
    if holds := open_holds(conn, suite="dispute", customer_id=customer_id):
        return held(holds)
    facts = gather(conn, customer_id)
    deal = facts["deal"]
    when = deal[1].at if deal else at
    decision = rules.decide_dispute(facts["regs"], facts["contacts"], facts["holdings"],
                                    deal[1] if deal else None, facts["claims"], ctx.policy,
                                    reception_manager(conn, ctx, when))
    record = {"decision": {p: round(s, 10) for p, s in sorted(decision.decision.items())}, "rule": decision.rule,
              "evidence": list(decision.evidence), "refused_claims": sorted(decision.refused_claims)}
    if _last_decision(conn, customer_id) == record:
        return {**record, "recorded": False}
    ledger.append(conn, [ledger.entry(at, decision.rule, "dispute_decision",
                                      f"dispute decided by {decision.rule}", customer_id=customer_id,
                                      explanation=record)], ctx.policy.version, ctx.flow_run_id)
    if deal:
        deal_id, fact = deal
        previous, share = previous_owner_share(conn, ctx, customer_id, fact.closer)
        commission = {p: s * (1 - share) for p, s in record["decision"].items()}
        if share:
            commission[previous] = commission.get(previous, 0) + share
        write_credits(conn, deal_id, record["decision"], commission, at, decision.rule)
    for person, yuan, rule in decision.fines:
        key = f"dispute:{customer_id}:{person}:{rule}"
        if conn.execute(select(Fine.id).where(Fine.source_key == key)).first() is None:
            fine(conn, ctx, person, yuan, at, rule, "knowingly worked another's customer", source_key=key)
    return {**record, "recorded": True}


def held(holds: list[dict]) -> dict:
    """R-VAL-2: a record the dispute suite flagged is not judged on; nothing is decided or recorded."""
    return {"held": True, "recorded": False, "rule": "R-VAL-2", "decision": {}, "refused_claims": [], "holds": holds,
            "evidence": [f"registration {h['registration_id']} is on hold: {', '.join(h['reasons'])}" for h in holds]}


def resolve_customer(conn: Connection, key: str) -> int | None:
    """A customer by id, by a registration's reference (scenario ref or the channel's own id), or by phone."""
    from leadflow.events.resolve import resolve_customer as resolve

    return resolve(conn, key)
