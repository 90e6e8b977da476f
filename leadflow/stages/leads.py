"""What owners and managers do with a lead: re-apply (R-TIER-2/3), hand on (R-ALLOC-3), mark invalid
(R-VAL-4), exchange (R-CONV-4), claim credit (R-DISP-4)."""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.rules import tiers_review
from leadflow.rules.allocation import can_receive_now
from leadflow.rules.suspensions import Interval
from leadflow.rules.tiers import tier_for
from leadflow.stages.context import StageContext
from leadflow.stages.people import pause_person, suspend
from leadflow.stages.reassign import end_assignments
from leadflow.stages.roster import load_roster
from leadflow.store import ledger, references
from leadflow.store.models import (
    Assignment, Claim, Customer, HelpAgreement, Misjudgment, Person, Registration, ReplacementDebt,
)

log = logging.getLogger("leadflow.leads")


def open_assignment(conn: Connection, customer_id: int):
    return conn.execute(select(Assignment).where(Assignment.customer_id == customer_id,
                                                 Assignment.ended_at.is_(None))).mappings().first()


def _entry(ctx, conn, *entries):
    ledger.append(conn, list(entries), ctx.policy.version, ctx.flow_run_id)


def was_allocated(conn: Connection, customer_id: int) -> bool:
    """R-ALLOC-6: a lead is self-found while it has not been allocated since its `self` registration."""
    kinds = list(conn.execute(select(Assignment.kind).where(Assignment.customer_id == customer_id)
                              .order_by(Assignment.started_at, Assignment.id)).scalars())
    last_self = max((i for i, k in enumerate(kinds) if k in ("self", "takeover")), default=-1)
    return any(k in ("allocation", "reallocation", "replacement", "hand_on") for k in kinds[last_self + 1:])


def owe_replacement(conn, ctx, person: str, tier: str, at: dt.datetime, rule_id: str, customer_id: int) -> None:
    conn.execute(ReplacementDebt.__table__.insert().values(person_id=person, tier=tier, owed_since=at, rule_id=rule_id))
    _entry(ctx, conn, ledger.entry(at, "R-ALLOC-6", "replacement_owed", f"a {tier} replacement is owed ({rule_id})",
                                   customer_id=customer_id, person_id=person))


def reapply(conn: Connection, ctx: StageContext, customer_id: int, amount: float, by: str, at: dt.datetime) -> dict:
    """R-TIER-2: an approved re-application re-tiers the customer; R-TIER-3 counts the misjudgment."""
    c = conn.execute(select(Customer).where(Customer.id == customer_id)).mappings().one()
    new = tier_for(float(amount), True, ctx.policy.tiers)
    outcome = tiers_review.reapplication(c["tier"], new)
    if not outcome.accepted:
        _entry(ctx, conn, ledger.entry(at, "R-TIER-2", "reapply_refused", outcome.reason, customer_id=customer_id,
                                       person_id=by))
        return {"accepted": False}
    ct, at_ = Customer.__table__, Assignment.__table__
    conn.execute(ct.update().where(ct.c.id == customer_id).values(tier=new, amount_yuan=float(amount), target=True,
                                                                  tiered_at=at))
    conn.execute(at_.update().where(at_.c.customer_id == customer_id, at_.c.ended_at.is_(None)).values(tier=new))
    _entry(ctx, conn, ledger.entry(at, "R-TIER-2", "reapply", f"re-tiered {c['tier']} -> {new}: {outcome.reason}",
                                   customer_id=customer_id, person_id=by))
    a = open_assignment(conn, customer_id)
    if outcome.replacement_tier and a is not None and was_allocated(conn, customer_id):
        owe_replacement(conn, ctx, a["person_id"], outcome.replacement_tier, at, "R-TIER-2", customer_id)
    if c["tier"] not in ("unclassified",):
        _count_misjudgment(conn, ctx, customer_id, at)
    return {"accepted": True, "tier": new}


def _count_misjudgment(conn: Connection, ctx: StageContext, customer_id: int, at: dt.datetime) -> None:
    """R-TIER-3: each approved re-application counts against the person who registered the lead."""
    registrar = conn.execute(select(Registration.registered_by).where(
        Registration.customer_id == customer_id, Registration.status == "accepted")).scalar()
    if registrar is None:
        return
    conn.execute(Misjudgment.__table__.insert().values(person_id=registrar, customer_id=customer_id, at=at))
    times = list(conn.execute(select(Misjudgment.at).where(Misjudgment.person_id == registrar)).scalars())
    fired = {tuple(e["key"]) for e in _fired(conn, registrar)}
    for p in tiers_review.misjudgment_penalties(times, at, fired, ctx.policy):
        reason = f"{p.count} misjudgments over {p.months} month(s)"
        _entry(ctx, conn, ledger.entry(at, "R-TIER-3", "misjudgment_penalty", reason, person_id=registrar,
                                       explanation={"key": list(p.key), "hotline_ban_until":
                                                    p.hotline_ban_until.isoformat() if p.hotline_ban_until else None}))
        if p.pause_rounds:
            pause_person(conn, ctx, registrar, at, p.pause_rounds, "R-TIER-3", reason)
        if p.suspend_until:
            suspend(conn, ctx, "person", registrar, Interval(at, p.suspend_until), "R-TIER-3", reason)


def _fired(conn, person):
    from leadflow.store.models import Ledger

    return [r for (r,) in conn.execute(select(Ledger.explanation).where(
        Ledger.person_id == person, Ledger.action == "misjudgment_penalty"))]


def hand_on(conn: Connection, ctx: StageContext, customer_id: int, to: str, amount, by: str | None,
            at: dt.datetime) -> dict:
    """R-ALLOC-3: a manager hands an unclassified or non-target lead to a salesperson who could take it now."""
    a = open_assignment(conn, customer_id)
    c = conn.execute(select(Customer).where(Customer.id == customer_id)).mappings().one()
    tier = c["tier"]
    if amount is not None and tier == "unclassified":
        tier = tier_for(float(amount), True, ctx.policy.tiers)
    roster = load_roster(conn, ctx.policy, at)
    person = roster.people.get(to)
    why = None
    if a is None or a["kind"] != "manager":
        why = "only a lead held by a manager can be handed on"
    elif person is None or person.department != a["department_id"]:
        why = "the receiver is not in the manager's department"
    else:
        why = can_receive_now(person, tier, roster)
    if why:
        _entry(ctx, conn, ledger.entry(at, "R-ALLOC-3", "hand_on_refused", f"hand-on to {to} refused: {why}",
                                       customer_id=customer_id, person_id=to, from_person_id=by))
        log.warning("hand-on of customer %s to %s refused: %s", customer_id, to, why)
        return {"handed_on": False, "reason": why}
    end_assignments(conn, [a["id"]], at, "handed_on")
    row = {"customer_id": customer_id, "person_id": to, "department_id": person.department, "kind": "hand_on",
           "rule_id": "R-ALLOC-3", "tier": tier, "started_at": at, "clock_start": at, "exempt": False, "bound": True,
           "policy_version": ctx.policy.version}
    references.check(conn, "assignments", [row])  # the owner's customer and department too (same ids)
    conn.execute(Assignment.__table__.insert().values(**row))
    ct = Customer.__table__
    conn.execute(ct.update().where(ct.c.id == customer_id).values(
        owner_id=to, department_id=person.department, tier=tier, tiered_at=at,
        amount_yuan=float(amount) if amount is not None else c["amount_yuan"]))
    _entry(ctx, conn, ledger.entry(at, "R-ALLOC-3", "hand_on", f"handed on by the manager as tier {tier}",
                                   customer_id=customer_id, person_id=to, from_person_id=a["person_id"],
                                   department_id=person.department))
    return {"handed_on": True, "tier": tier}


def mark_invalid(conn: Connection, ctx: StageContext, customer_id: int, reason: str, by: str | None,
                 at: dt.datetime) -> dict:
    """R-VAL-4: the lead leaves its owner, who is owed a replacement of the same tier (R-ALLOC-6)."""
    a = open_assignment(conn, customer_id)
    c = conn.execute(select(Customer.tier).where(Customer.id == customer_id)).scalar()
    allocated = was_allocated(conn, customer_id)
    if a is not None:
        end_assignments(conn, [a["id"]], at, "invalid")
    ct = Customer.__table__
    conn.execute(ct.update().where(ct.c.id == customer_id).values(status="invalid", owner_id=None,
                                                                  department_id=None, invalid_at=at,
                                                                  invalid_reason=reason))
    _entry(ctx, conn, ledger.entry(at, "R-VAL-4", "invalid", f"marked invalid: {reason}", customer_id=customer_id,
                                   from_person_id=a["person_id"] if a is not None else None))
    if a is not None and allocated and a["kind"] != "manager":
        owe_replacement(conn, ctx, a["person_id"], c, at, "R-VAL-4", customer_id)
    return {"invalid": True}


def exchange(conn: Connection, ctx: StageContext, customer_a: int, customer_b: int, at: dt.datetime) -> dict:
    """R-CONV-4: two owners swap leads; each lead keeps its clock and step-4 exemption, no new SLAs."""
    a, b = open_assignment(conn, customer_a), open_assignment(conn, customer_b)
    if a is None or b is None or a["person_id"] == b["person_id"]:
        log.warning("exchange refused: both leads need different current owners")
        return {"exchanged": False}
    end_assignments(conn, [a["id"], b["id"]], at, "exchange")
    depts = dict(conn.execute(select(Person.id, Person.department_id)).all())
    rows = [{"customer_id": x["customer_id"], "person_id": y["person_id"], "department_id": depts[y["person_id"]],
             "kind": "exchange", "rule_id": "R-CONV-4", "tier": x["tier"], "started_at": at,
             "clock_start": x["clock_start"], "exempt": x["exempt"], "bound": False,
             "retiered_at": x["retiered_at"], "policy_version": ctx.policy.version} for x, y in ((a, b), (b, a))]
    references.check(conn, "assignments", rows)  # the owners' ids on the customers too (same ids)
    conn.execute(Assignment.__table__.insert(), rows)
    ct = Customer.__table__
    for r in rows:
        conn.execute(ct.update().where(ct.c.id == r["customer_id"]).values(owner_id=r["person_id"],
                                                                           department_id=r["department_id"]))
    _entry(ctx, conn, *[ledger.entry(at, "R-CONV-4", "exchange", "exchanged between owners",
                                     customer_id=x["customer_id"], person_id=y["person_id"],
                                     from_person_id=x["person_id"]) for x, y in ((a, b), (b, a))])
    return {"exchanged": True}


def record_claim(conn: Connection, ctx: StageContext, customer_id: int, person: str, knowingly: bool,
                 at: dt.datetime) -> None:
    """R-DISP-4: a claim is only recorded; the dispute rerun decides it."""
    conn.execute(Claim.__table__.insert().values(customer_id=customer_id, person_id=person,
                                                 knowingly=bool(knowingly), at=at))
    _entry(ctx, conn, ledger.entry(at, "R-DISP-4", "claim", "claim for credit recorded", customer_id=customer_id,
                                   person_id=person, explanation={"knowingly": bool(knowingly)}))


def record_help(conn: Connection, ctx: StageContext, customer_id: int, helper: str, share: float,
                at: dt.datetime) -> bool:
    """R-CONV-4: within the period the owner asks a colleague to help, with the split agreed and recorded."""
    a = open_assignment(conn, customer_id)
    if a is None or a["person_id"] == helper or not 0 < float(share) < 1:
        log.warning("help refused: the lead needs an owner other than the helper and a share between 0 and 1")
        return False
    conn.execute(HelpAgreement.__table__.insert().values(customer_id=customer_id, owner_id=a["person_id"],
                                                         helper_id=helper, helper_share=float(share), at=at))
    _entry(ctx, conn, ledger.entry(at, "R-CONV-4", "help", f"{helper} helps for {float(share):.0%} of the credit",
                                   customer_id=customer_id, person_id=helper, from_person_id=a["person_id"]))
    return True
