"""People and departments: the org chart, leaves, violations, late tables, departures (R-SUSP, R-CONV-6)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from leadflow.clock import local, month_key, sales_year, zone
from leadflow.rules import suspensions as rules
from leadflow.rules.tiers import eligible_tiers
from leadflow.stages.context import StageContext
from leadflow.store import ledger
from leadflow.store import pauses as pauses_store
from leadflow.store.models import Assignment, Customer, Department, Fine, Leave, Person, Suspension, Violation


class OrgError(ValueError):
    """An org chart that cannot be loaded; one sentence."""


def load_org(conn: Connection, departments: list[dict], people: list[dict]) -> dict:
    """Upsert departments (list order = base rotation order) and people, with their optional names (issue 9.4);
    loading twice changes nothing. Raises OrgError (one sentence) for an unknown department, role or grade,
    or a name that is not text of 1 to 200 characters."""
    dt_, pt = Department.__table__, Person.__table__
    dept_ids = [d["id"] for d in departments]
    have_d = set(conn.execute(select(dt_.c.id)).scalars())
    for pos, d in enumerate(departments):
        values = {"name": d.get("name") or d["id"], "position": pos}
        if d["id"] in have_d:
            conn.execute(dt_.update().where(dt_.c.id == d["id"]).values(**values))
        else:
            conn.execute(dt_.insert().values(id=d["id"], **values))
    known_depts = set(dept_ids) | have_d
    have_p = set(conn.execute(select(pt.c.id)).scalars())
    added = 0
    for p in people:
        if p.get("department") not in known_depts:
            raise OrgError(f"person {p['id']!r} names an unknown department {p.get('department')!r}.")
        if p.get("role", "sales") not in ("sales", "manager", "receptionist"):
            raise OrgError(f"person {p['id']!r} has an unknown role {p.get('role')!r}.")
        if p.get("grade") not in (None, "A", "B", "C", "D"):
            raise OrgError(f"person {p['id']!r} has an unknown grade {p.get('grade')!r}.")
        if p.get("name") is not None and (not isinstance(p["name"], str) or not 0 < len(p["name"]) <= 200):
            raise OrgError(f"person {p['id']!r} has a name that is not text of 1 to 200 characters.")
        values = {"department_id": p.get("department"), "role": p.get("role", "sales"),
                  "grade": p.get("grade"), "rank": p.get("rank")}
        if "name" in p:  # optional: a file without names keeps the names on record; `name: null` clears one
            values["name"] = p["name"]
        if p["id"] in have_p:
            conn.execute(pt.update().where(pt.c.id == p["id"]).values(**values))
        else:
            conn.execute(pt.insert().values(id=p["id"], active=True, **values))
            added += 1
    return {"departments": len(departments), "people": len(people), "people_added": added}


def _pause_every_tier(person: Person, at: dt.datetime, rounds: int, rule_id: str, reason: str) -> list[dict]:
    """'Pause one round' = one round of every tier the person is eligible for (glossary, 3.3.6 item 3)."""
    return [{"person_id": person.id, "tier": t, "rounds": rounds, "at": at, "rule_id": rule_id, "reason": reason}
            for t in eligible_tiers(person.grade)]


def pause_person(conn: Connection, ctx: StageContext, person_id: str, at: dt.datetime, rounds: int,
                 rule_id: str, reason: str) -> None:
    person = conn.execute(select(Person).where(Person.id == person_id)).one()
    rows = _pause_every_tier(person, at, rounds, rule_id, reason)
    pauses_store.append(conn, rows)
    ledger.append(conn, [ledger.entry(at, rule_id, "pause", reason, person_id=person_id,
                                      explanation={"rounds": rounds, "tiers": [r["tier"] for r in rows]})],
                  ctx.policy.version, ctx.flow_run_id)


def record_leave(conn: Connection, ctx: StageContext, person_id: str, kind: str, at: dt.datetime) -> dict:
    """R-SUSP-2: away for the rest of the day; the 6th and later personal leave of a month pause a round."""
    until = rules.end_of_day(at, zone(ctx.policy))
    conn.execute(Leave.__table__.insert().values(person_id=person_id, kind=kind, at=at, until=until))
    ordinal = 0
    if kind == "personal":
        y, m = month_key(at, ctx.policy)
        start = local(at, ctx.policy).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        ordinal = conn.execute(select(func.count()).select_from(Leave).where(
            Leave.person_id == person_id, Leave.kind == "personal", Leave.at >= start, Leave.at <= at)).scalar()
    pauses = rules.leave_pauses(kind, ordinal, ctx.policy.suspension.leaves_per_month)
    if pauses:
        pause_person(conn, ctx, person_id, at, pauses, "R-SUSP-2", f"personal leave {ordinal} this month")
    return {"ordinal": ordinal, "paused": pauses}


def suspend(conn: Connection, ctx: StageContext, kind: str, subject: str, interval: rules.Interval,
            rule_id: str, reason: str) -> None:
    conn.execute(Suspension.__table__.insert().values(subject_kind=kind, subject_id=subject,
                                                      starts_at=interval.starts_at, ends_at=interval.ends_at,
                                                      rule_id=rule_id, reason=reason))
    ledger.append(conn, [ledger.entry(interval.starts_at, rule_id, "suspend", reason,
                                      person_id=subject if kind == "person" else None,
                                      department_id=subject if kind == "department" else None,
                                      explanation={"until": interval.ends_at.isoformat()})],
                  ctx.policy.version, ctx.flow_run_id)


def fine(conn: Connection, ctx: StageContext, person_id: str, amount: float, at: dt.datetime, rule_id: str,
         reason: str, source_key: str | None = None) -> None:
    conn.execute(Fine.__table__.insert().values(person_id=person_id, amount_yuan=amount, at=at, rule_id=rule_id,
                                                reason=reason, source_key=source_key))
    ledger.append(conn, [ledger.entry(at, rule_id, "fine", f"{reason}: {amount:g} yuan", person_id=person_id)],
                  ctx.policy.version, ctx.flow_run_id)


def _count_violations(conn, kind, subject_kind, subject, since, upto) -> int:
    q = select(func.count()).select_from(Violation).where(
        Violation.subject_kind == subject_kind, Violation.subject_id == subject, Violation.kind == kind,
        Violation.at <= upto)
    if since is not None:
        q = q.where(Violation.at >= since)
    return conn.execute(q).scalar()


def record_violation(conn: Connection, ctx: StageContext, person_id: str, kind: str, at: dt.datetime) -> dict:
    """R-SUSP-1 (company rule: 7 / 15 / 30 days per sales year) and R-SUSP-6 (malicious omission)."""
    conn.execute(Violation.__table__.insert().values(subject_kind="person", subject_id=person_id, kind=kind, at=at))
    policy = ctx.policy
    if kind == "company_rule":
        year = sales_year(at, policy)
        year_start = local(at, policy).replace(year=year, month=policy.sales_year_start_month, day=1, hour=0,
                                                minute=0, second=0, microsecond=0)
        n = _count_violations(conn, kind, "person", person_id, year_start, at)
        interval = rules.violation_suspension(n, at, policy.suspension.violation_days)
        suspend(conn, ctx, "person", person_id, interval, "R-SUSP-1", f"company-rule violation {n} this sales year")
        return {"ordinal": n, "until": interval.ends_at}
    if kind == "malicious_omission":
        n = _count_violations(conn, kind, "person", person_id, None, at)
        fine(conn, ctx, person_id, policy.suspension.malicious_omission_fine_yuan, at, "R-SUSP-6",
             f"malicious omission of reporting no. {n}")
        if rules.malicious_omission_departs(n, policy.suspension.malicious_omissions_to_depart):
            depart(conn, ctx, person_id, at, rule_id="R-SUSP-6")
        return {"ordinal": n}
    raise ValueError(f"unknown violation kind {kind!r}")


def record_late_table(conn: Connection, ctx: StageContext, department_id: str, at: dt.datetime) -> dict:
    """R-SUSP-4: a department late with its daily table: no allocation for 24 h, 48 h, then 7 days."""
    conn.execute(Violation.__table__.insert().values(subject_kind="department", subject_id=department_id,
                                                     kind="late_table", at=at))
    month_start = local(at, ctx.policy).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    n = _count_violations(conn, "late_table", "department", department_id, month_start, at)
    interval = rules.late_table_suspension(n, at, ctx.policy.suspension.late_table_hours)
    suspend(conn, ctx, "department", department_id, interval, "R-SUSP-4", f"daily table late, {n} this month")
    return {"ordinal": n, "until": interval.ends_at}


def depart(conn: Connection, ctx: StageContext, person_id: str, at: dt.datetime, rule_id: str = "R-CONV-6") -> int:
    """R-CONV-6: the person leaves; their open leads return to the pool, to be re-allocated, never handed on."""
    pt, at_, ct = Person.__table__, Assignment.__table__, Customer.__table__
    conn.execute(pt.update().where(pt.c.id == person_id).values(active=False, departed_at=at))
    open_rows = conn.execute(select(at_.c.id, at_.c.customer_id).where(
        at_.c.person_id == person_id, at_.c.ended_at.is_(None))).all()
    customer_ids = [c for _, c in open_rows]
    if customer_ids:
        conn.execute(at_.update().where(at_.c.id.in_([i for i, _ in open_rows])).values(
            ended_at=at, end_reason="departed"))
        converted = set(conn.execute(select(ct.c.id).where(ct.c.id.in_(customer_ids),
                                                           ct.c.status == "converted")).scalars())
        back = [c for c in customer_ids if c not in converted]
        if back:
            conn.execute(ct.update().where(ct.c.id.in_(back)).values(
                status="pool", owner_id=None, department_id=None, pooled_at=None))
    ledger.append(conn, [ledger.entry(at, rule_id, "depart", "the person left the company", person_id=person_id)] +
                  [ledger.entry(at, "R-CONV-6", "return_to_pool", "the departing owner's lead returns to the pool",
                                customer_id=c, from_person_id=person_id) for c in customer_ids],
                  ctx.policy.version, ctx.flow_run_id)
    return len(customer_ids)
