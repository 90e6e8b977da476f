"""The intake stage: stage rows, gate them (R-VAL), accept / attach / quarantine (R-REG), then allocate."""
from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from leadflow import failpoints
from leadflow.intake.cells import MAX_CELL_CHARS, Problem, strip_controls
from leadflow.rules.registration import (
    mask_phone, normalise_phone, parse_amount, parse_channel, parse_registered_at, parse_target,
)
from leadflow.rules.tiers import tier_for
from leadflow.stages.context import StageContext
from leadflow.store import ledger
from leadflow.store.bulk import claim, insert_rows
from leadflow.store.models import (
    Activity, Assignment, Customer, CustomerPhone, IntakeBatch, Person, Registration,
)


class StageFailure(RuntimeError):
    """A stage that must fail as a whole (R-VAL-3); the message is one plain sentence."""


def normalise_row(row: dict, ctx: StageContext, known_people: set[str], batch_id: str, now: dt.datetime) -> dict:
    """One delivered row -> a staged registration record (R-REG-1..3); checks are the gate's job.

    What the gate cannot see in the normalised columns is noted for it in `reasons` (expectations/intake.py):
    a time given that is not a time (`bad_time`), a value longer than its column (`too_long`; the value is cut
    to fit, so no row can fail the insert), and the reader's problems (bad_quote, ragged, bad_json). Control
    characters are stripped from every value (PostgreSQL stores no NUL)."""
    row = {k: strip_controls(v) if isinstance(v, str) else v for k, v in row.items()}
    problems = set(row.get("problems") or ())
    phone, kind = normalise_phone(_text(row.get("phone")))
    amount, amount_status = parse_amount(row.get("amount"), cap=ctx.policy.registration.amount_cap_yuan)
    registered_at = parse_registered_at(row.get("registered_at"), ctx.policy.timezone)  # naive -> business time
    if registered_at is None and _text(row.get("registered_at")) is not None:
        problems.add(Problem.BAD_TIME.value)  # given, but not a time LeadFlow takes: not `missing_field`
    by = _text(row.get("registered_by"))
    record = {
        "batch_id": batch_id, "row_number": row.get("row_number", 0), "ref": row.get("ref"),
        "channel": parse_channel(row.get("channel"), ctx.policy), "channel_raw": _text(row.get("channel")),
        "external_ref": _text(row.get("external_ref")), "name": _text(row.get("name")),
        "phone": phone, "phone_masked": mask_phone(phone) if phone else None, "phone_kind": kind,
        "amount_raw": None if row.get("amount") is None else str(row.get("amount")),
        "amount_yuan": amount, "amount_status": amount_status, "inquiry": _text(row.get("inquiry")),
        "region": _text(row.get("region")), "target": parse_target(row.get("target")),
        "registered_at": registered_at, "registered_by": by, "by_known": by is None or by in known_people,
        "raw": _jsonable(row.get("raw") or {}), "status": "staged", "reasons": [], "dedupe_key": None,
        "customer_id": None, "staged_at": now, "decided_at": None,
    }
    record["reasons"] = sorted(problems | _fit(record))
    return record


# The free-text columns of a staged row and what each holds: its column's size, or MAX_CELL_CHARS for text.
_LIMITS = {c: Registration.__table__.c[c].type.length or MAX_CELL_CHARS
           for c in ("ref", "channel_raw", "external_ref", "name", "phone", "amount_raw", "inquiry", "region",
                     "registered_by")}


def _fit(record: dict) -> set[str]:
    """Cut every value longer than its column to fit; {'too_long'} when one was."""
    cut = set()
    for column, limit in _LIMITS.items():
        value = record[column]
        if isinstance(value, str) and len(value) > limit:
            record[column] = value[:limit]
            cut.add(Problem.TOO_LONG.value)
    return cut


def _text(v) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _jsonable(raw: dict) -> dict:
    """The raw row as strings, without control characters, each value at most MAX_CELL_CHARS."""
    return {strip_controls(str(k))[:MAX_CELL_CHARS]:
            (None if v is None else strip_controls(str(v))[:MAX_CELL_CHARS]) for k, v in raw.items()}


def stage_rows(conn: Connection, ctx: StageContext, batch_id: str, source: str, rows: list[dict],
               now: dt.datetime, digest: str | None = None) -> int:
    """Write the batch's rows as `staged` registrations in bulk; a rerun of the same batch re-stages."""
    rt = Registration.__table__
    conn.execute(rt.delete().where(rt.c.batch_id == batch_id, rt.c.status == "staged"))
    claim(conn, IntakeBatch.__table__, {"id": batch_id, "source": source, "digest": digest, "rows_in": len(rows),
                                        "started_at": now})  # one claim per file digest (issue 8.2)
    known = set(conn.execute(select(Person.id)).scalars())
    records = [normalise_row(r, ctx, known, batch_id, now) for r in rows]
    return insert_rows(conn, rt, records)


def dedupe_key(r: dict) -> str:
    """R-REG-4: (channel, external reference), or channel + phone + registered_at without one."""
    if r["external_ref"]:
        basis = f"{r['channel']}|ref|{r['external_ref']}"
    else:
        basis = f"{r['channel']}|{r['phone']}|{r['registered_at'].astimezone(dt.timezone.utc).isoformat()}"
    return hashlib.sha256(basis.encode()).hexdigest()[:40]


def decide(conn: Connection, ctx: StageContext, batch_id: str, quarantined: dict[int, list[str]],
           now: dt.datetime) -> dict:
    """Accept, attach or quarantine every staged row of the batch, in row order; write in bulk."""
    rt = Registration.__table__
    rows = [dict(r) for r in conn.execute(select(rt).where(rt.c.batch_id == batch_id, rt.c.status == "staged")
                                          .order_by(rt.c.row_number, rt.c.id)).mappings()]
    passed = [r for r in rows if r["id"] not in quarantined]
    for r in passed:
        r["key"] = dedupe_key(r)
    existing = _existing_keys(conn, [r["key"] for r in passed])
    phones = _customers_by_phone(conn, [r["phone"] for r in passed])
    outcome: dict[int, dict] = {}
    new_customers: list[dict] = []
    self_attached: list[tuple[dict, int]] = []
    for r in passed:
        if r["key"] in existing:  # a repeated delivery: attached, claims no second key
            outcome[r["id"]] = {"status": "attached", "customer": existing[r["key"]], "key": None,
                                "rule": "R-REG-4"}
        elif r["phone"] in phones:
            outcome[r["id"]] = {"status": "attached", "customer": phones[r["phone"]], "key": r["key"],
                                "rule": "R-REG-5"}
            existing[r["key"]] = phones[r["phone"]]
            if r["channel"] == ctx.policy.registration.self_channel and not isinstance(phones[r["phone"]], tuple):
                self_attached.append((r, phones[r["phone"]]))
        else:
            new_customers.append(r)
            phones[r["phone"]] = ("new", r["id"])
            existing[r["key"]] = ("new", r["id"])
            outcome[r["id"]] = {"status": "accepted", "customer": ("new", r["id"]), "key": r["key"],
                                "rule": "R-TIER-1"}
    created = _create_customers(conn, ctx, new_customers, now)
    for o in outcome.values():
        if isinstance(o["customer"], tuple):
            o["customer"] = created[o["customer"][1]]
    for rid in _take_over(conn, ctx, self_attached, now):
        outcome[rid]["rule"] = "R-DISP-7"
    failpoints.hit("intake.decide")
    _write_outcomes(conn, ctx, rows, outcome, quarantined, now)
    counts = Counter(o["status"] for o in outcome.values())
    return {"rows_in": len(rows), "accepted": counts["accepted"], "attached": counts["attached"],
            "quarantined": len(rows) - len(passed), "new_customers": list(created.values())}


def _existing_keys(conn: Connection, keys: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    rt = Registration.__table__
    for i in range(0, len(keys), 5000):
        chunk = keys[i:i + 5000]
        out.update(conn.execute(select(rt.c.dedupe_key, rt.c.customer_id).where(rt.c.dedupe_key.in_(chunk))).all())
    return out


def _customers_by_phone(conn: Connection, phones: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    pt = CustomerPhone.__table__
    unique = sorted(set(phones))
    for i in range(0, len(unique), 5000):
        out.update(conn.execute(select(pt.c.phone, pt.c.customer_id).where(pt.c.phone.in_(unique[i:i + 5000]))).all())
    return out


def _create_customers(conn: Connection, ctx: StageContext, regs: list[dict], now: dt.datetime) -> dict[int, int]:
    """New customers, judged for tier (R-TIER-1); a `self` lead is its finder's from registration (R-REG-8)."""
    if not regs:
        return {}
    policy = ctx.policy
    self_channel = policy.registration.self_channel
    ct = Customer.__table__
    rows = [{"ref": r["ref"], "name": r["name"], "tier": tier_for(r["amount_yuan"], r["target"], policy.tiers),
             "amount_yuan": r["amount_yuan"], "target": r["target"], "channel": r["channel"],
             "status": "assigned" if r["channel"] == self_channel else "pool",
             "owner_id": r["registered_by"] if r["channel"] == self_channel else None,
             "department_id": None, "self_found": r["channel"] == self_channel, "created_at": now,
             "tiered_at": now} for r in regs]
    ids = conn.execute(ct.insert().returning(ct.c.id, sort_by_parameter_order=True), rows).scalars().all()
    created = {r["id"]: cid for r, cid in zip(regs, ids)}
    insert_rows(conn, CustomerPhone.__table__, [
        {"phone": r["phone"], "customer_id": created[r["id"]], "relation": "primary", "linked_at": now}
        for r in regs])
    own = [(r, created[r["id"]], row["tier"]) for r, row in zip(regs, rows) if row["status"] == "assigned"]
    if own:
        _assign_self_found(conn, ctx, own, now)
    return created


def _assign_self_found(conn, ctx, own, now):
    depts = dict(conn.execute(select(Person.id, Person.department_id)).all())
    conn.execute(Assignment.__table__.insert(), [
        {"customer_id": cid, "person_id": r["registered_by"], "department_id": depts.get(r["registered_by"]),
         "kind": "self", "rule_id": "R-REG-8", "tier": tier, "started_at": now, "clock_start": now,
         "exempt": False, "bound": True, "policy_version": ctx.policy.version} for r, cid, tier in own])
    ct = Customer.__table__
    conn.execute(ct.update().where(ct.c.id == bindparam("cid")).values(department_id=bindparam("dept")),
                 [{"cid": cid, "dept": depts.get(r["registered_by"])} for r, cid, _ in own])
    ledger.append(conn, [ledger.entry(now, "R-REG-8", "self_found", "a self-found lead is its finder's from "
                                      "registration", customer_id=cid, person_id=r["registered_by"],
                                      department_id=depts.get(r["registered_by"])) for r, cid, _ in own],
                  ctx.policy.version, ctx.flow_run_id)


EFFECTIVE = ("contact", "follow_up", "sales_step")  # an effective follow-up (R-SLA-5, R-DISP-1)


def _take_over(conn: Connection, ctx: StageContext, candidates: list[tuple[dict, int]], now: dt.datetime) -> set[int]:
    """R-REG-8, R-DISP-1, R-DISP-7: another salesperson's `self` registration of a self-found customer
    takes it over once the holder's protection has lapsed (judged at the registration's time); inside
    protection it only attaches. Allocated leads (held by a conversion period) are never taken over,
    nor is anything by a company-channel registration. Returns the registration ids that took over."""
    from leadflow.rules.disputes import protection_until

    taken: set[int] = set()
    done: set[int] = set()
    for r, cid in candidates:
        if cid in done:  # one takeover per customer and batch; later rows fall inside the new protection
            continue
        a = conn.execute(select(Assignment).where(Assignment.customer_id == cid,
                                                  Assignment.ended_at.is_(None))).mappings().first()
        c = conn.execute(select(Customer.status, Customer.tier).where(Customer.id == cid)).first()
        if (a is None or c is None or c.status != "assigned" or a["kind"] not in ("self", "takeover")
                or a["person_id"] == r["registered_by"]):
            continue
        followups = list(conn.execute(select(Activity.at).where(
            Activity.customer_id == cid, Activity.person_id == a["person_id"], Activity.kind.in_(EFFECTIVE),
            Activity.at >= a["started_at"], Activity.at <= r["registered_at"])).scalars())
        if r["registered_at"] < protection_until(a["started_at"], followups, ctx.policy):
            continue  # still protected (an expiry: at the instant of lapse it is free)
        dept = conn.execute(select(Person.department_id).where(Person.id == r["registered_by"])).scalar()
        at_, ct = Assignment.__table__, Customer.__table__
        conn.execute(at_.update().where(at_.c.id == a["id"]).values(ended_at=now, end_reason="takeover"))
        conn.execute(at_.insert().values(
            customer_id=cid, person_id=r["registered_by"], department_id=dept, kind="takeover", rule_id="R-DISP-7",
            tier=c.tier, started_at=now, clock_start=now, exempt=False, bound=True,
            policy_version=ctx.policy.version))
        conn.execute(ct.update().where(ct.c.id == cid).values(owner_id=r["registered_by"], department_id=dept))
        ledger.append(conn, [ledger.entry(now, "R-DISP-7", "self_found", "protection lapsed: the next valid "
                                          "self registration takes the customer over", customer_id=cid,
                                          person_id=r["registered_by"], from_person_id=a["person_id"],
                                          department_id=dept)], ctx.policy.version, ctx.flow_run_id)
        taken.add(r["id"])
        done.add(cid)
    return taken


def _write_outcomes(conn, ctx, rows, outcome, quarantined, now):
    rt = Registration.__table__
    updates, entries = [], []
    for r in rows:
        if r["id"] in quarantined:
            reasons = sorted(set(quarantined[r["id"]]))
            updates.append({"rid": r["id"], "st": "quarantined", "rs": reasons, "k": None, "cid": None})
            entries.append(ledger.entry(now, "R-VAL-2", "quarantine", "quarantined: " + ", ".join(reasons),
                                        explanation={"registration": r["id"], "reasons": reasons}))
            continue
        o = outcome[r["id"]]
        updates.append({"rid": r["id"], "st": o["status"], "rs": [], "k": o["key"], "cid": o["customer"]})
        what = "a new customer" if o["status"] == "accepted" else "attached to an existing customer"
        entries.append(ledger.entry(now, o["rule"], o["status"], f"registration {r['id']}: {what}",
                                    customer_id=o["customer"], explanation={"registration": r["id"]}))
    conn.execute(rt.update().where(rt.c.id == bindparam("rid")).values(
        status=bindparam("st"), reasons=bindparam("rs"), dedupe_key=bindparam("k"),
        customer_id=bindparam("cid"), decided_at=now), updates)
    ledger.append(conn, entries, ctx.policy.version, ctx.flow_run_id)


def finish_batch(conn: Connection, batch_id: str, summary: dict, now: dt.datetime) -> None:
    bt = IntakeBatch.__table__
    conn.execute(bt.update().where(bt.c.id == batch_id).values(
        rows_in=summary["rows_in"], accepted=summary["accepted"], attached=summary["attached"],
        quarantined=summary["quarantined"], finished_at=now))


def previous_summary(conn: Connection, batch_id: str) -> dict | None:
    """The outcome of a batch decided in full before (R-REG-4: the same file twice is one batch), or None."""
    row = conn.execute(select(IntakeBatch).where(IntakeBatch.id == batch_id,
                                                 IntakeBatch.finished_at.is_not(None))).mappings().first()
    if row is None:
        return None
    return {"rows_in": row["rows_in"], "accepted": row["accepted"], "attached": row["attached"],
            "quarantined": row["quarantined"], "already_registered": True}


def run_intake(ctx: StageContext, batch_id: str, source: str, rows: list[dict], now: dt.datetime,
               digest: str | None = None) -> dict:
    """Stage, gate and decide one batch (R-REG, R-VAL); the engine run around it allocates.

    Called under the engine's clock lock, so the check for an earlier delivery of the same batch cannot race:
    a batch decided before returns its earlier summary with `already_registered`. A batch staged but never
    decided (a crash) is staged afresh. Raises StageFailure (one sentence) for a batch broken as a whole."""
    with ctx.engine.connect() as conn:
        earlier = previous_summary(conn, batch_id)
    if earlier is not None:
        return earlier
    if not rows:  # R-VAL-3: an empty batch is no delivery (the readers say so for a header-only file)
        raise StageFailure("the batch has no rows: nothing to register.")
    with ctx.engine.begin() as conn:
        stage_rows(conn, ctx, batch_id, source, rows, now, digest)
    failpoints.hit("intake.staged")
    gate = ctx.gate("intake", batch_id=batch_id)
    return settle(ctx, batch_id, gate, now)


def settle(ctx: StageContext, batch_id: str, gate, now: dt.datetime) -> dict:
    """Decide the gated batch and mark it finished, in one transaction; a batch broken as a whole is
    quarantined and fails (R-VAL-3). Its new leads wait in the pool for the engine's offer (R-ALLOC-5),
    which every later run repeats: their allocation never depends on this file being delivered again."""
    quarantined = dict(gate.quarantined)
    if gate.batch_error:
        quarantined = {i: quarantined.get(i, []) + ["batch_rejected"] for i in gate.passed + list(quarantined)}
    with ctx.engine.begin() as conn:
        earlier = previous_summary(conn, batch_id)  # a retry after a commit whose answer was lost
        if earlier is not None:
            return {**earlier, "docs": gate.docs_path}
        summary = decide(conn, ctx, batch_id, quarantined, now)
        finish_batch(conn, batch_id, summary, now)
    failpoints.hit("intake.decided")
    if gate.batch_error:
        raise StageFailure(gate.batch_error)
    summary["docs"] = gate.docs_path
    return summary
