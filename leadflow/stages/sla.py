"""The follow-up SLA check (R-SLA-1..4, R-SLA-6) with its penalties (R-SUSP-3, R-SUSP-5), and late evidence
(R-SLA-7): breaches wait for the evidence grace, the policy switches each rule, and a record that arrives late
but dated in time revokes the breach it disproves."""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from leadflow.clock import add_months, iso, local
from leadflow.memory import bulk_work
from leadflow.rules import sla as rules
from leadflow.rules.tiers import eligible_tiers
from leadflow.stages.context import StageContext
from leadflow.stages.marks import get_mark, set_mark
from leadflow.stages.validation import held_customers
from leadflow.store import ledger
from leadflow.store import pauses as pauses_store
from leadflow.store import references
from leadflow.store.arrays import id_filters
from leadflow.store.bulk import insert_rows
from leadflow.store.models import Activity, Assignment, Breach, Fine, Pause, Person

STAGE = "sla_check"
CHECKED = tuple(rules.KIND_FOR_RULE)  # R-SLA-1..4; R-SLA-5 listings are the monthly audit's
LATE_ENTRY = ("R-SLA-2", "R-SLA-3")  # R-SUSP-3 counts these per person, kind and calendar month
CHUNK = 5000


# next_due's reads, every run: a thousand ids a statement keep PostgreSQL on the index (measured at 1 M leads, 3,278
# open obligations: 31 ms in one IN list of them, 10 ms in lists of 1,000)
NEXT_CHUNK = 1000


def _chunks(ids, size: int = CHUNK) -> list[list]:
    ids = sorted(set(ids))
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def breach_key(b: rules.SlaBreach) -> str:
    """R-SLA-6: one breach per assignment and rule; fines and pauses carry it as their `source_key`."""
    return f"{b.assignment_id}:{b.rule_id}"


# --- reads ---------------------------------------------------------------------------------------------
def load_obligations(conn: Connection, upto: dt.datetime | None = None) -> list[rules.Obligation]:
    """R-SLA-6: bound assignments with an obligation not yet met, lapsed or breached, however old (indexed).

    `upto`: only those started at or before it (`due_bound`: a scope, not a judgment — the rule still judges
    every one it is given); None: all of them."""
    q = (select(Assignment.id, Assignment.customer_id, Assignment.person_id, Assignment.tier,
                Assignment.started_at, Assignment.ended_at, Assignment.bound)
         .where(Assignment.sla_settled == False, Assignment.bound == True,  # noqa: E712 (indexable; NOT NULL)
                Assignment.customer_id.not_in(held_customers("sla_check"))))  # R-VAL-2
    if upto is not None:
        q = q.where(Assignment.started_at <= upto)
    return [rules.Obligation(*r) for r in conn.execute(q).all()]


def due_bound(as_of: dt.datetime, policy) -> dt.datetime | None:
    """The latest start whose obligations can have a breach due at `as_of` (R-SLA-1..4, R-SLA-7): no deadline
    comes sooner after the start than `rules.shortest_window`, and a breach is recorded only past the deadline
    plus the evidence grace. None when the policy allows a deadline at the start itself (no bound)."""
    window = rules.shortest_window(policy)
    return None if window is None else rules.without_grace(as_of, policy) - window


def load_records(conn: Connection, customer_ids: list[int], kinds=None,
                 since: dt.datetime | None = None) -> list[rules.Record]:
    """Every record of these customers, with when it was done and when it arrived (R-SLA-7); `kinds` / `since`
    narrow the read to the kinds a rule asks about and to records done at or after `since` (scope only).
    One statement on PostgreSQL (the ids one array parameter), IN lists of `CHUNK` ids elsewhere."""
    q = select(Activity.customer_id, Activity.person_id, Activity.kind, Activity.at, Activity.recorded_at)
    if kinds is not None:
        q = q.where(Activity.kind.in_(sorted(kinds)))
    if since is not None:
        q = q.where(Activity.at >= since)
    return [rules.Record(*r) for ids in id_filters(conn, Activity.customer_id, customer_ids, CHUNK)
            for r in conn.execute(q.where(ids))]


def load_breached(conn: Connection, assignment_ids: list[int]) -> set[tuple[int, str]]:
    """(assignment, rule) of the R-SLA-1..4 breaches already recorded, revoked ones included (R-SLA-6)."""
    return {(a, r) for ids in id_filters(conn, Breach.assignment_id, assignment_ids) for a, r in conn.execute(
        select(Breach.assignment_id, Breach.rule_id).where(ids, Breach.rule_id.in_(CHECKED)))}


# --- the check -----------------------------------------------------------------------------------------
# What `next_due` reads, built once (every run of every entry point asks it; building a statement costs more
# than SQLite takes to run it). The same scope as `load_obligations` / `load_records` / `load_breached`.
_OBLIGATION_COLUMNS = (Assignment.id, Assignment.customer_id, Assignment.person_id, Assignment.tier,
                       Assignment.started_at, Assignment.ended_at, Assignment.bound)
_NEXT_OBLIGATIONS = select(*_OBLIGATION_COLUMNS).where(
    Assignment.sla_settled == False, Assignment.bound == True,  # noqa: E712 (indexable; NOT NULL)
    Assignment.customer_id.not_in(held_customers(STAGE)))  # R-VAL-2
_NEXT_OBLIGATIONS_UPTO = _NEXT_OBLIGATIONS.where(Assignment.started_at <= bindparam("upto"))
# (no `recorded_at`: when a record arrived decides nothing about when a breach falls due, and it is a date per row)
_NEXT_RECORDS = select(Activity.customer_id, Activity.person_id, Activity.kind, Activity.at) \
    .where(Activity.customer_id.in_(bindparam("ids", expanding=True)),
           Activity.kind.in_(sorted(rules.KIND_FOR_RULE.values())), Activity.at >= bindparam("since"))
_NEXT_BREACHED = select(Breach.assignment_id, Breach.rule_id).where(
    Breach.assignment_id.in_(bindparam("ids", expanding=True)), Breach.rule_id.in_(CHECKED))


def next_due(conn: Connection, ctx: StageContext, horizon: dt.datetime) -> dt.datetime | None:
    """When the check next has something to record: the earliest breach falling due past the evidence grace;
    one overdue already (a cleared hold, an assignment written with an earlier start) is due at once (R-SLA-6).

    Exact when that instant is at or before `horizon`; otherwise None or a later instant (the catch-up acts only
    on what is due by its horizon). Scope only, as `run` reads (the rule judges): an obligation started after
    `due_bound(horizon)` has no breach due by the horizon, so the read does not grow with the store's history."""
    mark = get_mark(conn, STAGE)
    if mark is None:
        return None
    upto = due_bound(horizon, ctx.policy)
    obligations = [rules.Obligation(*r) for r in (
        conn.execute(_NEXT_OBLIGATIONS) if upto is None else conn.execute(_NEXT_OBLIGATIONS_UPTO, {"upto": upto}))]
    if not obligations:
        return None
    since = min(o.started_at for o in obligations)  # a record before its obligation's start meets nothing
    records = [rules.Record(*r) for ids in _chunks((o.customer_id for o in obligations), NEXT_CHUNK)
               for r in conn.execute(_NEXT_RECORDS, {"ids": ids, "since": since})]
    breached = {(a, r) for ids in _chunks((o.assignment_id for o in obligations), NEXT_CHUNK)
                for a, r in conn.execute(_NEXT_BREACHED, {"ids": ids})}
    due = rules.next_due(obligations, records, breached, ctx.policy)
    return None if due is None else max(due, mark)


@bulk_work()  # a run's rows are alive together: collect cycles less often (leadflow.memory)
def run(conn: Connection, ctx: StageContext, as_of: dt.datetime) -> dict:
    """Record every breach due by `as_of` once, however long the check did not run (R-SLA-6), with the penalty
    its rule's switch allows (R-SLA-7); settle the assignments with nothing left open."""
    since = get_mark(conn, STAGE)
    # only obligations that can have a breach due by `as_of`: one not yet due is neither settled nor looked at
    obligations = load_obligations(conn, due_bound(as_of, ctx.policy))
    # the breaches below name these assignments' own ids, customers and owners: read here, so proved (R-SLA-6)
    references.proved(conn, {"assignments": [o.assignment_id for o in obligations],
                             "customers": [o.customer_id for o in obligations],
                             "people": [o.person_id for o in obligations]})
    records = load_records(conn, [o.customer_id for o in obligations], rules.KIND_FOR_RULE.values(),
                           min((o.started_at for o in obligations), default=None))
    judged = rules.judge(obligations, records, load_breached(conn, [o.assignment_id for o in obligations]),
                         since, as_of, ctx.policy)
    written = _write_breaches(conn, ctx, judged.breaches)
    for ids in id_filters(conn, Assignment.id, judged.settled):
        conn.execute(update(Assignment).where(ids).values(sla_settled=True))
    set_mark(conn, STAGE, as_of)
    n, looked = len(judged.breaches), judged.looked_at
    return {"as_of": as_of.isoformat(), "breaches": n, **written, "looked_at": looked,
            "mass_breach": rules.mass_breach(n, looked, ctx.policy),
            "warning": rules.mass_breach_warning(n, looked, ctx.policy),
            "rows": [{"customer_id": b.customer_id, "person_id": b.person_id, "rule_id": b.rule_id,
                      "at": b.at.isoformat()} for b in judged.breaches]}


def _write_breaches(conn: Connection, ctx: StageContext, found: list[rules.SlaBreach]) -> dict:
    """The breaches, their fines and pauses (R-SUSP-3, R-SUSP-5) and ledger entries: one insert per table."""
    policy = ctx.policy
    mode = {b: rules.enforcement(b.rule_id, policy) for b in found}
    enforced = [b for b in found if mode[b] == rules.ENFORCE]
    ordinals = _ordinals(conn, ctx, [b for b in enforced if b.rule_id in LATE_ENTRY])
    grades = _grades(conn, {b.person_id for b in enforced})
    breaches, fines, pauses, entries = [], [], [], []
    for b in found:
        key = breach_key(b)
        breaches.append({"key": key, "customer_id": b.customer_id, "person_id": b.person_id,
                         "assignment_id": b.assignment_id, "rule_id": b.rule_id, "at": b.at})
        note = "" if mode[b] == rules.ENFORCE else " (recorded only: the policy's switch allows no penalty)"
        entries.append(ledger.entry(b.at, b.rule_id, "breach", f"{b.rule_id} deadline missed{note}",
                                    customer_id=b.customer_id, person_id=b.person_id,
                                    explanation={"enforcement": mode[b]}))
        if mode[b] != rules.ENFORCE:
            continue
        p = rules.penalties(b.rule_id, ordinals.get(b, 0), policy)
        if p.fine_yuan:
            reason = f"late entry ({b.rule_id})"
            fines.append({"person_id": b.person_id, "amount_yuan": p.fine_yuan, "at": b.at, "rule_id": "R-SUSP-3",
                          "reason": reason, "source_key": key})
            entries.append(ledger.entry(b.at, "R-SUSP-3", "fine", f"{reason}: {p.fine_yuan:g} yuan",
                                        person_id=b.person_id))
        if p.pause_rounds:
            # 'pause one round' = one round of every tier the person is eligible for (glossary)
            rule, reason, tiers = ("R-SUSP-5" if b.rule_id == "R-SLA-1" else "R-SUSP-3", f"penalty for {b.rule_id}",
                                   eligible_tiers(grades.get(b.person_id)))
            pauses += [{"person_id": b.person_id, "tier": t, "rounds": p.pause_rounds, "at": b.at, "rule_id": rule,
                        "reason": reason, "source_key": key} for t in tiers]
            entries.append(ledger.entry(b.at, rule, "pause", reason, person_id=b.person_id,
                                        explanation={"rounds": p.pause_rounds, "tiers": list(tiers)}))
    insert_rows(conn, Breach.__table__, breaches)
    insert_rows(conn, Fine.__table__, fines)
    pauses_store.append(conn, pauses)
    ledger.append(conn, entries, policy.version, ctx.flow_run_id)
    return {"fines": len(fines), "pauses": len({r["source_key"] for r in pauses}),
            "recorded_only": len(found) - len(enforced)}


def _month(t: dt.datetime, ctx: StageContext) -> tuple[dt.datetime, dt.datetime]:
    """The business-time calendar month of `t`, as [start, end)."""
    start = local(t, ctx.policy).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, add_months(start, 1)


def _ordinals(conn: Connection, ctx: StageContext, new: list[rules.SlaBreach]) -> dict[rules.SlaBreach, int]:
    """R-SUSP-3: late entries of a kind are counted per calendar month of the deadline, revoked ones left out."""
    if not new:
        return {}
    rows = conn.execute(select(Breach.assignment_id, Breach.customer_id, Breach.person_id, Breach.rule_id, Breach.at)
                        .where(Breach.person_id.in_(sorted({b.person_id for b in new})),
                               Breach.rule_id.in_(LATE_ENTRY), Breach.revoked_at.is_(None),
                               Breach.at >= min(_month(b.at, ctx)[0] for b in new),
                               Breach.at <= max(b.at for b in new)))
    return rules.new_ordinals(new, [rules.SlaBreach(*r) for r in rows], ctx.policy)


def _grades(conn: Connection, people: set[str]) -> dict[str, str | None]:
    return dict(conn.execute(select(Person.id, Person.grade).where(Person.id.in_(sorted(people)))).all()) if people else {}


# --- R-SLA-7: late evidence revokes the breaches it disproves ------------------------------------------
def revoke_disproved(conn: Connection, ctx: StageContext, customer_ids: list[int], as_of: dt.datetime) -> dict:
    """R-SLA-7: after records of these customers were written, revoke each recorded R-SLA-1..4 breach a record
    now disproves, once (R-SLA-6): the breach is kept and marked revoked, its fine cancelled, the unused rounds
    of its pause withdrawn (a used round stays used), and one ledger entry says so. Audit listings stand."""
    recorded = _unrevoked(conn, customer_ids)
    found = rules.disproofs(recorded, load_records(conn, [b.customer_id for b, _ in recorded],
                                                   rules.KIND_FOR_RULE.values())) if recorded else []
    keys = [breach_key(d.breach) for d in found]
    pauses = _withdraw_pauses(conn, ctx, [d.breach for d in found], as_of) if found else {}
    fines = _cancel_fines(conn, keys, as_of)
    for chunk in _chunks(keys):
        conn.execute(update(Breach).where(Breach.key.in_(chunk), Breach.revoked_at.is_(None)).values(revoked_at=as_of))
    p = ctx.policy
    ledger.append(conn, [ledger.entry(
        as_of, "R-SLA-7", "breach_revoked",
        f"{d.breach.rule_id} breach revoked: a {d.record.kind} dated by the deadline arrived late",
        customer_id=d.breach.customer_id, person_id=d.breach.person_id,
        explanation={"rule": d.breach.rule_id, "deadline": iso(d.breach.at, p),
                     "record": {"kind": d.record.kind, "at": iso(d.record.at, p),
                                "recorded_at": iso(d.record.recorded_at or d.record.at, p)},
                     "fine_cancelled_yuan": fines.get(k, 0), "pauses_withdrawn": pauses.get(k, [])})
        for d, k in zip(found, keys)], p.version, ctx.flow_run_id)
    return {"as_of": as_of.isoformat(), "revoked": len(found), "fines_cancelled": len(fines),
            "fine_yuan_cancelled": sum(fines.values()),
            "pause_rounds_removed": sum(n for ws in pauses.values() for w in ws for n in w["removed"].values()),
            "rows": [{"customer_id": d.breach.customer_id, "person_id": d.breach.person_id,
                      "rule_id": d.breach.rule_id, "at": d.breach.at.isoformat(),
                      "record_at": d.record.at.isoformat(),
                      "recorded_at": (d.record.recorded_at or d.record.at).isoformat()} for d in found]}


def _unrevoked(conn: Connection, customer_ids: list[int]) -> list[tuple[rules.SlaBreach, dt.datetime]]:
    """The customers' recorded, not revoked R-SLA-1..4 breaches, with their assignment's start."""
    return [(rules.SlaBreach(*r[:5]), r[5]) for chunk in _chunks(customer_ids)
            for r in conn.execute(_UNREVOKED, {"ids": chunk})]


# Built once: every delivery of records asks it (R-SLA-7), and building it cost more than running it.
_UNREVOKED = (select(Breach.assignment_id, Breach.customer_id, Breach.person_id, Breach.rule_id, Breach.at,
                     Assignment.started_at).join(Assignment, Assignment.id == Breach.assignment_id)
              .where(Breach.customer_id.in_(bindparam("ids", expanding=True)), Breach.rule_id.in_(CHECKED),
                     Breach.revoked_at.is_(None)))


def _cancel_fines(conn: Connection, keys: list[str], as_of: dt.datetime) -> dict[str, float]:
    """Cancel the fines these breaches caused; breach key -> yuan cancelled."""
    out: dict[str, float] = {}
    for chunk in _chunks(keys):
        out.update(conn.execute(select(Fine.source_key, Fine.amount_yuan)
                                .where(Fine.source_key.in_(chunk), Fine.revoked_at.is_(None))).all())
        conn.execute(update(Fine).where(Fine.source_key.in_(chunk), Fine.revoked_at.is_(None)).values(revoked_at=as_of))
    return out


def _withdraw_pauses(conn: Connection, ctx: StageContext, revoked: list[rules.SlaBreach],
                     as_of: dt.datetime) -> dict[str, list[dict]]:
    """Withdraw the pause grants the revoked breaches no longer justify (R-SUSP-5: its own; R-SUSP-3: as many
    as the month's count of the kind loses), each by a row of minus its unused rounds per tier.
    Revoked breach key -> [{"grant", "removed": {tier: rounds}, "used": {tier: rounds}}]."""
    people = sorted({b.person_id for b in revoked})
    history: dict[tuple[str, str], list[rules.PauseEntry]] = defaultdict(list)
    grants: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)  # active grant key -> (person, tier) -> rounds
    withdrawn: set[str] = set()
    for person, tier, rounds, key in conn.execute(select(Pause.person_id, Pause.tier, Pause.rounds, Pause.source_key)
                                                  .where(Pause.person_id.in_(people)).order_by(Pause.id)):
        history[(person, tier)].append(rules.PauseEntry(rounds, key))
        if key is not None and rounds > 0:
            grants[key][(person, tier)] = rounds
        elif key is not None:
            withdrawn.add(key)
    plan = _grants_to_withdraw(conn, ctx, revoked, {k for k in grants if k not in withdrawn})
    rows, out = [], defaultdict(list)
    for breach, grant in plan:
        removed, used = {}, {}
        for (person, tier), rounds in sorted(grants[grant].items()):
            unused = rules.unused_rounds(history[(person, tier)], grant)
            history[(person, tier)].append(rules.PauseEntry(-unused, grant))
            removed[tier], used[tier] = unused, rounds - unused
            rows.append({"person_id": person, "tier": tier, "rounds": -unused, "at": as_of, "rule_id": "R-SLA-7",
                         "reason": f"pause withdrawn: {breach.rule_id} breach revoked by a late record",
                         "source_key": grant})
        out[breach_key(breach)].append({"grant": grant, "removed": removed, "used": used})
    pauses_store.append(conn, rows)
    return dict(out)


def _grants_to_withdraw(conn: Connection, ctx: StageContext, revoked: list[rules.SlaBreach],
                        active: set[str]) -> list[tuple[rules.SlaBreach, str]]:
    """(revoked breach, grant key) pairs: an R-SLA-1 breach's own grant; for late entries, per person, kind and
    month, as many grants as the count loses (R-SUSP-3), the revoked breaches' own first, then the latest."""
    plan = [(b, breach_key(b)) for b in revoked if b.rule_id == "R-SLA-1" and breach_key(b) in active]
    late = [b for b in revoked if b.rule_id in LATE_ENTRY]
    if not late:
        return plan
    months = {b: _month(b.at, ctx) for b in late}
    rows = conn.execute(select(Breach.assignment_id, Breach.customer_id, Breach.person_id, Breach.rule_id, Breach.at)
                        .where(Breach.person_id.in_(sorted({b.person_id for b in late})),
                               Breach.rule_id.in_(LATE_ENTRY), Breach.revoked_at.is_(None),
                               Breach.at >= min(s for s, _ in months.values()),
                               Breach.at < max(e for _, e in months.values())))
    groups: dict[tuple, list[rules.SlaBreach]] = defaultdict(list)
    for b in (rules.SlaBreach(*r) for r in rows):
        groups[(b.person_id, b.rule_id, _month(b.at, ctx)[0])].append(b)
    by_group: dict[tuple, list[rules.SlaBreach]] = defaultdict(list)
    for b in late:
        by_group[(b.person_id, b.rule_id, months[b][0])].append(b)
    for group, gone in by_group.items():
        members = groups.get(group, [])
        lost = rules.late_entry_grants_lost(len(members), len(members) - len(gone), ctx.policy)
        gone_keys = {breach_key(b) for b in gone}
        candidates = sorted((b for b in members if breach_key(b) in active),
                            key=lambda b: (breach_key(b) not in gone_keys, -b.at.timestamp(), -b.assignment_id))
        chosen = [breach_key(b) for b in candidates[:max(lost, 0)]]
        others = [b for b in sorted(gone, key=lambda b: b.at) if breach_key(b) not in chosen] or gone
        own = {breach_key(b): b for b in gone}
        plan += [(own.get(key) or others[i % len(others)], key) for i, key in enumerate(chosen)]
    return plan
