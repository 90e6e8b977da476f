"""The allocation stage: offer pool leads, oldest first, decide in memory, write in bulk (R-ALLOC)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator

from sqlalchemy import bindparam, literal, select, text, tuple_
from sqlalchemy.engine import Connection

from leadflow import failpoints
from leadflow.memory import bulk_work
from leadflow.clock import week_index
from leadflow.rules.allocation import Debt, Decision, Roster, RosterIndex, next_owner
from leadflow.rules.tiers import grades_for_tier
from leadflow.stages.context import StageContext, rotation_epoch
from leadflow.stages.validation import held_customers
from leadflow.store import ledger
from leadflow.store import pauses as pauses_store
from leadflow.store.bulk import insert_rows, update_rows
from leadflow.store.models import Assignment, Customer, ReplacementDebt, RotationPointer


_POINTERS = select(RotationPointer.key, RotationPointer.value)  # built once, as `_DEBTS`: every offer reads them


def load_pointers(conn: Connection) -> dict[str, str]:
    return dict(conn.execute(_POINTERS).all())


def take_rotation(conn: Connection) -> None:
    """One allocation at a time takes rotation turns (R-ALLOC-1/2, issue 8.2), even outside the engine's clock
    lock: a transaction-scoped advisory lock on PostgreSQL, SQLite's write lock (BEGIN IMMEDIATE) taken before
    the pool, the roster and the pointers are read. Call first in the transaction; taking it again is a no-op."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('leadflow-rotation|' || current_database() "
                          "|| '|' || current_schema()))"))
    elif conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def save_pointers(conn: Connection, before: dict[str, str], after: dict[str, str]) -> None:
    """Write the pointers that moved, were added or were dropped: three statements at most."""
    table = RotationPointer.__table__
    removed = [k for k in before if k not in after]
    if removed:
        conn.execute(table.delete().where(table.c.key.in_(removed)))
    changed = [{"k": k, "v": v} for k, v in after.items() if k in before and before[k] != v]
    if changed:
        conn.execute(table.update().where(table.c.key == bindparam("k")).values(value=bindparam("v")), changed)
    added = [{"key": k, "value": v} for k, v in after.items() if k not in before]
    if added:
        conn.execute(table.insert(), added)


def pointers_for_week(pointers: dict[str, str], week: int) -> dict[str, str]:
    """R-ALLOC-1: every Monday each tier's department pointer restarts at the new first department."""
    if pointers.get("week") == str(week):
        return dict(pointers)
    fresh = {k: v for k, v in pointers.items() if not k.startswith("dept:")}
    fresh["week"] = str(week)
    return fresh


_DEBTS = (select(ReplacementDebt.id, ReplacementDebt.person_id, ReplacementDebt.tier)
          .where(ReplacementDebt.served_at.is_(None)).order_by(ReplacementDebt.owed_since, ReplacementDebt.id))


def load_debts(conn: Connection) -> list[Debt]:
    rows = conn.execute(_DEBTS).all()
    return [Debt(id=i, person=p, tier=t) for i, p, t in rows]


def _apply_to_roster(roster: Roster, d: Decision) -> Roster:
    """Keep the in-memory roster true to the decisions already made in this batch: a new roster per decision.
    The stage uses `RosterIndex.apply` instead (no copy); this is the plain form the rule's tests drive."""
    people = dict(roster.people)
    for pid in d.consumed_pauses:
        p = people[pid]
        people[pid] = dataclasses.replace(p, paused={**p.paused, d.tier: p.paused.get(d.tier, 0) - 1})
    if d.person:
        p = people[d.person]
        people[d.person] = dataclasses.replace(
            p, open_counts={**p.open_counts, d.tier: p.open_counts.get(d.tier, 0) + 1})
    return dataclasses.replace(roster, people=people)


CHUNK_ROWS = 10_000  # leads decided and written together: memory stays flat whatever the pool's size
IN_LIST_ROWS = 5_000  # ids in one IN list (SQLite binds each as a variable)


def _chunks(leads: Iterable[dict], size: int) -> Iterator[list[dict]]:
    it = iter(leads)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def allocate(conn: Connection, ctx: StageContext, now: dt.datetime, roster: Roster | RosterIndex,
             leads: Iterable[dict], exclude: dict[int, frozenset[str]] | None = None,
             kind: str = "allocation", reason: str | None = None, *, chunk_rows: int | None = None,
             keep_decisions: bool = True, taken_back: list[dict] | None = None) -> dict:
    """Decide owners for `leads` (dicts with id, tier, pooled_at, optionally from_person) in order, writing
    each chunk of `chunk_rows` (default `CHUNK_ROWS`) in bulk (R-ALLOC-1..7), all under the one rotation lock
    and in the caller's transaction; the pointers, the debts and the roster's bookkeeping carry from chunk to
    chunk, so the decisions are those of one pass over all the leads. `leads` may be a generator (the pool,
    page by page): it is read one chunk at a time. `roster`: a `Roster`, or a `RosterIndex` the caller
    prepared. `exclude`: per lead id, people who may not receive it (a re-allocation's previous owner) — a
    batch of re-allocations, each with its own exclusions, is one call (one roster load, one lock).

    Each ledger row's reason is the deciding rule's (`decision_reason`), after `reason` when given (a
    re-allocation's cause). Returns counts, `decisions` (the ledger rows written: R-ALLOC-7; empty when
    `keep_decisions` is False, for a pool too large to hold) and `pooled_leads` — every lead left in the
    pool, re-offered ones included, as {customer_id, tier, reason} (`pool_reason`); a re-offer that changes
    nothing writes no ledger row.

    `taken_back`: the leads are being taken back from their owners (`reassign.take_back`), whose customer rows
    still name those owners, and these are the take-back's ledger rows. Each lead's customer row is then written
    once, with its outcome — the new owner, or the pool (status 'pool', no owner, `pooled_at` now) — and its
    `converted_at` cleared, as the take-back's own UPDATE followed by this one left it; and the take-back's
    ledger rows go ahead of the first chunk's, in its COPY (not returned in `decisions`). Issue 10: a
    conversion-expiry day re-allocates ~3,300 scattered leads at 1 M, each customer row written once, not twice."""
    with bulk_work():  # a chunk's decisions and rows are alive together: collect cycles less often
        return _allocate(conn, ctx, now, roster, leads, exclude or {}, kind, reason, chunk_rows, keep_decisions,
                         taken_back)


def _allocate(conn, ctx, now, roster, leads, exclude, kind, reason, chunk_rows, keep_decisions,
              taken_back) -> dict:
    take_rotation(conn)
    week = week_index(now, rotation_epoch(conn, ctx, now), ctx.policy)
    before = load_pointers(conn)
    pointers = pointers_for_week(before, week)
    index = roster if isinstance(roster, RosterIndex) else RosterIndex(roster)
    debts: dict[str, list[Debt]] = defaultdict(list)  # R-ALLOC-6 reads only the lead's tier's debts
    for debt in load_debts(conn):
        debts[debt.tier].append(debt)
    version = ctx.policy.version  # one hash for the run, not one per lead
    prefix = f"{reason}: " if reason else ""
    none: frozenset[str] = frozenset()
    offered = allocated = 0
    decisions: list[dict] = []
    pooled: list[dict] = []
    first = True
    preface = list(taken_back or ())  # the take-back's ledger rows: written with the first chunk's, ahead of them
    released = taken_back is not None
    for chunk in _chunks(leads, chunk_rows or CHUNK_ROWS):
        offered += len(chunk)
        assignments, ledger_rows, owners, pauses, served, to_pool_first = [], [], [], [], [], []
        for lead in chunk:
            lead_id, tier = lead["id"], lead["tier"]
            d = next_owner(tier, index, pointers, week, exclude.get(lead_id, none), debts.get(tier, ()),
                           reoffer=lead.get("pooled_at") is not None)
            if d.pointer_updates:
                pointers.update(d.pointer_updates)
            index.apply(d)
            for pid in d.consumed_pauses:
                pauses.append({"person_id": pid, "tier": d.tier, "rounds": -1, "at": now, "rule_id": "R-ALLOC-4",
                               "reason": f"paused round used: passed over for customer {lead_id}"})
            if d.debt_id is not None:
                debts[tier] = [x for x in debts[tier] if x.id != d.debt_id]
                served.append({"id": d.debt_id, "served_at": now, "served_customer_id": lead_id})
            if d.person is None:
                why = pool_reason(d.explanation)
                if released:  # the row still names the owner it was taken from: written whole, to the pool
                    owners.append({"id": lead_id, "status": "pool", "owner_id": None, "department_id": None,
                                   "pooled_at": lead.get("pooled_at") or now})
                if lead.get("pooled_at") is None:
                    if not released:
                        to_pool_first.append(lead_id)
                    ledger_rows.append(ledger.entry(now, "R-ALLOC-5", "pooled", f"{prefix}left in the company "
                                                    f"pool: {why}", customer_id=lead_id, explanation=d.explanation))
                # `new`: pooled by this offer; a re-offered lead still waiting needs no new alarm (issue 9.5)
                pooled.append({"customer_id": lead_id, "tier": d.tier, "reason": why,
                               "new": lead.get("pooled_at") is None})
                continue
            owners.append({"id": lead_id, "status": "assigned", "owner_id": d.person,
                           "department_id": d.department, "pooled_at": None})
            a_kind = "replacement" if d.rule == "R-ALLOC-6" else ("manager" if d.rule == "R-ALLOC-3" else kind)
            assignments.append({"customer_id": lead_id, "person_id": d.person, "department_id": d.department,
                                "kind": a_kind, "rule_id": d.rule, "tier": d.tier, "bound": d.rule != "R-ALLOC-3"})
            ledger_rows.append(ledger.entry(now, d.rule, "allocate", prefix + decision_reason(d.explanation),
                                            customer_id=lead_id,
                                            person_id=d.person, from_person_id=lead.get("from_person"),
                                            department_id=d.department, explanation=d.explanation))
        allocated += len(assignments)
        if released:  # every taken-back lead's conversion mark cleared, as the take-back's own write did
            owners = [{**o, "converted_at": None} for o in owners]
        _write(conn, now, assignments, owners, pauses, served, to_pool_first, version)
        if first:
            failpoints.hit("allocation.write")
            first = False
        ledger.append(conn, preface + ledger_rows, version, ctx.flow_run_id)
        preface = []
        if keep_decisions:
            decisions.extend(ledger_rows)
    ledger.append(conn, preface, version, ctx.flow_run_id)  # (no lead at all: the take-back's rows alone)
    save_pointers(conn, before, pointers)
    return {"offered": offered, "allocated": allocated, "pooled": len(pooled),
            "decisions": decisions, "pooled_leads": pooled}


def _nobody(tier: str) -> str:
    """R-ALLOC-3: who could hold a lead of `tier` at all, when nobody is in the org chart."""
    if tier == "below_d":
        return "no salesperson in any department"
    try:
        grades = grades_for_tier(tier)
    except ValueError:  # unclassified and non-target leads go to the managers
        return "no manager in any department"
    return f"nobody of grade {grades[0]}{' or above' if len(grades) > 1 else ''} in any department"


def decision_reason(explanation: dict) -> str:
    """Why the chosen owner got the lead, from `next_owner`'s explanation: the deciding rule's reason in words
    (R-ALLOC-6 replacement owed, R-ALLOC-3 manager, R-ALLOC-2 grade match or the next grade up, after the
    departments passed over under R-ALLOC-5). Pure; ids only (artifacts add the names)."""
    rule = explanation.get("rule")
    if rule == "R-ALLOC-6":
        return f"replacement owed (debt {explanation.get('debt')}), served ahead of the rotation (R-ALLOC-6)"
    tier, dept = explanation.get("tier"), explanation.get("department")
    passed = list(dict.fromkeys(c["department"] for c in explanation.get("considered", [])
                                if c.get("department") != dept))
    after = f"; {', '.join(passed)} had nobody free (R-ALLOC-5)" if passed else ""
    if rule == "R-ALLOC-3":
        return f"{tier.replace('_', '-')} lead: to the manager of {dept}, the managers' rotation (R-ALLOC-3){after}"
    chosen = next((c for c in explanation.get("considered", []) if c.get("chosen")), {})
    want = (grades_for_tier(tier) or (None,))[0]
    grade = chosen.get("grade", want)
    how = (f"grade match {grade or 'ungraded'} in rank order" if grade == want else
           f"nobody of grade {want or 'ungraded'} free in {dept}, so the next grade up, {grade}")
    return f"rotation: {dept}'s turn for tier {tier}, {how} (R-ALLOC-2){after}"


def pool_reason(explanation: dict) -> str:
    """Why a lead stayed in the pool (R-ALLOC-5), short, from `next_owner`'s explanation: who could have taken
    it and what kept each out, e.g. "all 5 who could take a B lead paused for a round (R-ALLOC-4)" or "nobody
    of grade A in any department". Pure; ids only."""
    tier = explanation.get("tier") or "?"
    considered = explanation.get("considered", [])
    depts = [c for c in considered if "person" not in c]
    people: dict[str, str] = {}
    for c in considered:
        if "person" in c:
            people.setdefault(c["person"], c.get("skipped", "free"))
    parts = []
    if people:
        counts = Counter(people.values())
        name = tier.replace('_', '-')
        who = f"who could take {'an' if name[:1] in 'AEaeiou' else 'a'} {name} lead"  # an A lead, a below-d lead
        if len(counts) == 1:
            parts.append(f"all {len(people)} {who} {next(iter(counts))}")
        else:
            parts.append(f"{len(people)} {who}, " + " and ".join(f"{n} {r}" for r, n in counts.most_common()))
    if depts:
        parts.append("every department suspended (R-SUSP-4)" if not people and
                     len(depts) == len(explanation.get("week_order") or depts)
                     else ", ".join(f"{c['department']} {c['skipped']}" for c in depts))
    if not parts:
        parts.append(_nobody(tier))
    return "; ".join(parts)


def _write(conn: Connection, now: dt.datetime, assignments: list[dict], owners: list[dict], pauses: list[dict],
           served: list[dict], to_pool_first: list[int], version: str) -> None:
    """One chunk's writes, each set-based: COPY (`insert_rows`) and one UPDATE … FROM (`update_rows`) on
    PostgreSQL, never one statement per lead. Every new assignment starts now, its clock too (R-CONV-1)."""
    insert_rows(conn, Assignment.__table__, assignments, same={"started_at": now, "clock_start": now, "exempt": False,
                                                               "policy_version": version})
    ct = Customer.__table__
    update_rows(conn, ct, "id", owners)
    for k in range(0, len(to_pool_first), IN_LIST_ROWS):  # the same values for all: bounded IN lists
        conn.execute(ct.update().where(ct.c.id.in_(to_pool_first[k:k + IN_LIST_ROWS])).values(pooled_at=now))
    pauses_store.append(conn, pauses)
    update_rows(conn, ReplacementDebt.__table__, "id", served)


def pool_pages(conn: Connection, page_rows: int | None = None) -> Iterator[list[dict]]:
    """R-ALLOC-5: the leads waiting in the pool, oldest first, one page of `page_rows` at a time (dicts: id,
    tier, pooled_at); a customer on an allocation hold waits (R-VAL-2). Keyset pagination by (created_at,
    id), each page one indexed query: safe to write between pages (a lead allocated meanwhile is behind the
    key), and the pool is never all in memory."""
    page_rows = page_rows or CHUNK_ROWS
    after = None
    while True:
        q = (select(Customer.id, Customer.tier, Customer.pooled_at, Customer.created_at)
             .where(Customer.status == "pool", Customer.id.not_in(held_customers("allocation")))
             .order_by(Customer.created_at, Customer.id).limit(page_rows))
        if after is not None:
            created = Customer.__table__.c.created_at  # bound as the column's type: naive UTC, as stored
            q = q.where(tuple_(created, Customer.id) > tuple_(literal(after[0], created.type), literal(after[1])))
        rows = conn.execute(q).all()
        if not rows:
            return
        yield [{"id": i, "tier": t, "pooled_at": p} for i, t, p, _ in rows]
        if len(rows) < page_rows:
            return
        after = (rows[-1][3], rows[-1][0])


def pool_leads(conn: Connection) -> list[dict]:
    """R-ALLOC-5: leads waiting in the pool, oldest first; a customer on an allocation hold waits (R-VAL-2)."""
    return [lead for page in pool_pages(conn) for lead in page]


def allocate_pool(conn: Connection, ctx: StageContext, now: dt.datetime, *, keep_decisions: bool = True) -> dict:
    """Offer every lead in the pool, oldest first (new ones and ones waiting) (R-ALLOC-5), page by page, as one
    `allocate` (see there for the result; `keep_decisions=False` for a pool too large to return every row).

    A lead pooled within this run (after `ctx.run_after`, the clock before the run began, or at `now` itself)
    is not offered again until a later run: the pause that sent it to the pool must not hand it straight back.
    """
    from leadflow.stages.roster import load_roster

    take_rotation(conn)  # before the pool is read: two offers never hand out the same lead
    after = ctx.run_after
    # a lead pooled at this very instant was pooled by this run (or by a crashed run at the same `as_of` that
    # this one completes): it too waits for a later run
    leads = (lead for page in pool_pages(conn) for lead in page
             if after is None or lead["pooled_at"] is None or (lead["pooled_at"] <= after and lead["pooled_at"] < now))
    first = next(leads, None)
    if first is None:
        return {"offered": 0, "allocated": 0, "pooled": 0, "decisions": []}
    return allocate(conn, ctx, now, load_roster(conn, ctx.policy, now), itertools.chain([first], leads),
                    keep_decisions=keep_decisions)
