"""Deals and credit (R-CONV-3, R-SUSP-7): who is credited with performance (业绩) and commission (提成)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.rules import conversion as rules
from leadflow.stages.context import StageContext
from leadflow.store import ledger
from leadflow.store.models import Activity, Assignment, Bar, Credit, Customer, Deal, HelpAgreement, Person

EFFECTIVE = ("contact", "follow_up", "sales_step")
TAKE_BACK_RULES = ("R-CONV-2", "R-SLA-5")


def last_take_back(conn: Connection, customer_id: int) -> tuple | None:
    """The last hand-over by R-CONV-2 or R-SLA-5: (previous owner, time, rule)."""
    return conn.execute(select(Assignment.person_id, Assignment.ended_at, Assignment.end_reason)
                        .where(Assignment.customer_id == customer_id, Assignment.end_reason.in_(TAKE_BACK_RULES))
                        .order_by(Assignment.ended_at.desc(), Assignment.id.desc())).first()


def previous_owner_share(conn: Connection, ctx: StageContext, customer_id: int, closer: str) -> tuple[str | None, float]:
    """R-CONV-3: 30 % of the commission to the owner the lead was taken from, automatically."""
    last = last_take_back(conn, customer_id)
    if last is None or last[0] == closer:
        return None, 0.0
    person, handover_at, rule = last
    active = conn.execute(select(Person.active).where(Person.id == person)).scalar()
    followups = list(conn.execute(select(Activity.at).where(
        Activity.customer_id == customer_id, Activity.person_id == person, Activity.kind.in_(EFFECTIVE),
        Activity.at <= handover_at)).scalars())
    return person, rules.previous_owner_share(handover_at, rule, bool(active), followups, ctx.policy)


def record_deal(conn: Connection, ctx: StageContext, customer_id: int, closer: str | None, amount: float,
                at: dt.datetime) -> dict:
    """The customer closed: a deal at the customer's tier, credits, and any R-SUSP-7 bar lifted.

    `closer` None: closed by nobody on record (R-DISP-5)."""
    tier = conn.execute(select(Customer.tier).where(Customer.id == customer_id)).scalar()
    deal_id = conn.execute(Deal.__table__.insert().values(customer_id=customer_id, closer_id=closer,
                                                          amount_yuan=float(amount), tier=tier, at=at)).inserted_primary_key[0]
    ct = Customer.__table__
    conn.execute(ct.update().where(ct.c.id == customer_id).values(status="converted", converted_at=at))
    if closer is None:
        return _unclaimed_deal(conn, ctx, customer_id, deal_id, tier, amount, at)
    previous, share = previous_owner_share(conn, ctx, customer_id, closer)
    performance, commission = rules.deal_credits(closer, previous, share)
    agreement = conn.execute(select(HelpAgreement.helper_id, HelpAgreement.helper_share).where(
        HelpAgreement.customer_id == customer_id, HelpAgreement.owner_id == closer)
        .order_by(HelpAgreement.at.desc(), HelpAgreement.id.desc())).first()
    if agreement is not None:  # R-CONV-4: the owner's credit is shared with the colleague as agreed
        performance = rules.apply_help(performance, closer, agreement[0], agreement[1])
        commission = rules.apply_help(commission, closer, agreement[0], agreement[1])
    write_credits(conn, deal_id, performance, commission, at, "R-CONV-3" if share else "R-ALLOC-7")
    bt = Bar.__table__
    lifted = conn.execute(bt.update().where(bt.c.person_id == closer, bt.c.tier == tier, bt.c.lifted_at.is_(None))
                          .values(lifted_at=at)).rowcount
    ledger.append(conn, [ledger.entry(at, "R-CONV-3" if share else "R-CONV-4", "deal",
                                      f"closed at tier {tier} for {float(amount):g} yuan"
                                      + (f"; {share:.0%} of the commission to {previous}" if share else "")
                                      + ("; R-SUSP-7 bar lifted" if lifted else ""),
                                      customer_id=customer_id, person_id=closer,
                                      explanation={"performance": performance, "commission": commission})],
                  ctx.policy.version, ctx.flow_run_id)
    return {"deal_id": deal_id, "performance": performance, "commission": commission}


def _unclaimed_deal(conn: Connection, ctx: StageContext, customer_id: int, deal_id: int, tier: str, amount: float,
                    at: dt.datetime) -> dict:
    """R-DISP-5: a deal closed by nobody on record is the reception manager's (first department that week)."""
    from leadflow.stages.disputes import reception_manager  # disputes builds on this module

    manager = reception_manager(conn, ctx, at)
    credit = {manager: 1.0} if manager else {}
    write_credits(conn, deal_id, credit, credit, at, "R-DISP-5")
    ledger.append(conn, [ledger.entry(at, "R-DISP-5", "deal", f"closed at tier {tier} for {float(amount):g} yuan "
                                      f"by nobody on record: credited to the reception manager {manager or '-'}",
                                      customer_id=customer_id, person_id=manager,
                                      explanation={"performance": credit, "commission": credit})],
                  ctx.policy.version, ctx.flow_run_id)
    return {"deal_id": deal_id, "performance": credit, "commission": credit}


def write_credits(conn: Connection, deal_id: int, performance: dict, commission: dict, at: dt.datetime,
                  rule_id: str) -> None:
    """Supersede the deal's current credits with new ones (credits are never edited in place)."""
    t = Credit.__table__
    conn.execute(t.update().where(t.c.deal_id == deal_id, t.c.superseded_at.is_(None)).values(superseded_at=at))
    rows = [{"deal_id": deal_id, "person_id": p, "kind": kind, "share": s, "rule_id": rule_id, "at": at}
            for kind, shares in (("performance", performance), ("commission", commission))
            for p, s in shares.items() if s]
    if rows:
        conn.execute(t.insert(), rows)
