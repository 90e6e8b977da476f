"""The intake stage: stage rows, gate them (R-VAL), accept / attach / quarantine (R-REG), then allocate."""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import logging
import operator
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import any_, bindparam, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from leadflow import failpoints
from leadflow.memory import bulk_work
from leadflow.intake.cells import _CONTROLS, MAX_CELL_CHARS, Problem, strip_controls
from leadflow.rules.registration import (
    mask_phone, normalise_phone, parse_amount, parse_channel, parse_registered_at, parse_target,
)
from leadflow.rules.tiers import tier_for
from leadflow.stages.context import StageContext
from leadflow.store import ledger
from leadflow.store.bulk import (
    COPY_THRESHOLD, claim, copy_codec, copy_lines, copy_text, insert_rows, update_rows,
)
from leadflow.store.models import (
    Activity, Assignment, Customer, CustomerPhone, IntakeBatch, Person, Registration,
)


_log = logging.getLogger(__name__)


class StageFailure(RuntimeError):
    """A stage that must fail as a whole (R-VAL-3); the message is one plain sentence."""


def normalise_row(row: dict, ctx: StageContext, known_people: set[str], batch_id: str, now: dt.datetime,
                  cache: dict | None = None) -> dict:
    """One delivered row -> a staged registration record (R-REG-1..3); checks are the gate's job.

    What the gate cannot see in the normalised columns is noted for it in `reasons` (expectations/intake.py):
    a time given that is not a time (`bad_time`), a value longer than its column (`too_long`; the value is cut
    to fit, so no row can fail the insert), and the reader's problems (bad_quote, ragged, bad_json). Control
    characters are stripped from every value (PostgreSQL stores no NUL). `cache`, a dict the caller keeps for
    one batch, remembers the judgement of values that repeat (channels, amounts, target flags): the rules are
    pure functions of the value and the policy, so each distinct value is judged once."""
    row = {k: strip_controls(v) if v.__class__ is str else v for k, v in row.items()}
    if cache is None:
        cache = {}
    policy = ctx.policy
    problems = set(row.get("problems") or ())
    phone, kind = normalise_phone(_text(row.get("phone")))
    raw_amount, raw_channel = row.get("amount"), row.get("channel")
    amount, amount_status = _memo(cache, "amount", raw_amount,
                                  lambda v: parse_amount(v, cap=policy.registration.amount_cap_yuan))
    registered_at = parse_registered_at(row.get("registered_at"), policy.timezone)  # naive -> business time
    if registered_at is None and _text(row.get("registered_at")) is not None:
        problems.add(Problem.BAD_TIME.value)  # given, but not a time LeadFlow takes: not `missing_field`
    by = _text(row.get("registered_by"))
    record = {
        "batch_id": batch_id, "row_number": row.get("row_number", 0), "ref": row.get("ref"),
        "channel": _memo(cache, "channel", raw_channel, lambda v: parse_channel(v, policy)),
        "channel_raw": _text(raw_channel),
        "external_ref": _text(row.get("external_ref")), "name": _text(row.get("name")),
        "phone": phone, "phone_masked": mask_phone(phone) if phone else None, "phone_kind": kind,
        "amount_raw": None if raw_amount is None else str(raw_amount),
        "amount_yuan": amount, "amount_status": amount_status, "inquiry": _text(row.get("inquiry")),
        "region": _text(row.get("region")), "target": _memo(cache, "target", row.get("target"), parse_target),
        "registered_at": registered_at, "registered_by": by, "by_known": by is None or by in known_people,
        "raw": _jsonable(row.get("raw") or {}), "status": "staged", "reasons": [], "dedupe_key": None,
        "staged_at": now, "decided_at": None,  # customer_id: none yet (NULL), so nothing to check as it streams
    }
    record["reasons"] = sorted(problems | _fit(record))
    return record


def _memo(cache: dict, kind: str, value, judge):
    """`judge(value)`, remembered in `cache` under the value and its type (1, 1.0 and True are judged apart)."""
    key = (kind, value.__class__, value)
    try:
        return cache[key]
    except KeyError:
        out = cache[key] = judge(value)
        return out
    except TypeError:  # an unhashable value (a JSON list): judged each time
        return judge(value)


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
    if all(k.__class__ is str and v.__class__ is str for k, v in raw.items()):  # as the readers give it
        keys, values = "".join(raw), "".join(raw.values())
        if (len(keys) + len(values) <= MAX_CELL_CHARS or max(map(len, (*raw, *raw.values()))) <= MAX_CELL_CHARS) \
                and not _CONTROLS.search(keys) and not _CONTROLS.search(values):
            return raw  # already clean: checked in two scans, not one per cell
    return {strip_controls(str(k))[:MAX_CELL_CHARS]:
            (None if v is None else strip_controls(str(v))[:MAX_CELL_CHARS]) for k, v in raw.items()}


def stage_rows(conn: Connection, ctx: StageContext, batch_id: str, source: str, rows: list[dict],
               now: dt.datetime, digest: str | None = None, keep: list | None = None,
               prepared: Prepared | None = None) -> int:
    """Write the batch's rows as `staged` registrations in bulk (one COPY on PostgreSQL); a rerun of the same
    batch re-stages. Returns the number of rows staged. `keep`, when given, gets each staged row's
    `_DECIDE_COLUMNS` (a dict, with its new id) in row order: what `decide` would read back. `prepared`: the
    same rows as `prepare_rows` normalised and formatted them ahead of the run; used while it still holds (the
    same policy and people; on PostgreSQL the same encoding and a COPY's worth of rows), else the rows are
    normalised here — the staged rows are the same either way."""
    rt = Registration.__table__
    conn.execute(rt.delete().where(rt.c.batch_id == batch_id, rt.c.status == "staged"))
    claim(conn, IntakeBatch.__table__, {"id": batch_id, "source": source, "digest": digest, "rows_in": len(rows),
                                        "started_at": now})  # one claim per file digest (issue 8.2)
    known = set(conn.execute(select(Person.id)).scalars())
    holds = (prepared is not None and len(prepared.slim) == len(rows) and prepared.policy is ctx.policy
             and prepared.known == known)
    ids = None
    if (holds and prepared.pieces is not None and len(rows) >= COPY_THRESHOLD and conn.dialect.name == "postgresql"
            and prepared.codec == copy_codec(conn)):
        ids = _draw_ids(conn, rt, len(rows))
        copy_lines(conn, rt, list(prepared.columns), prepared.pieces, ids, same=_staged_constants(batch_id, now))
    elif holds and prepared.records is not None and conn.dialect.name != "postgresql":
        constants = _staged_constants(batch_id, now)
        for record in prepared.records:
            record.update(constants)
        ids = insert_with_ids(conn, rt, prepared.records)
    if ids is not None:
        if keep is not None:
            keep.extend(dict(zip(_DECIDE_COLUMNS, (rid, *values))) for rid, values in zip(ids, prepared.slim))
        return len(ids)
    cache: dict = {}  # the batch's repeated values (channels, amounts, people) are judged once
    # normalised as COPY sends them (PostgreSQL): the server inserts while the next rows are normalised
    records = (normalise_row(r, ctx, known, batch_id, now, cache) for r in rows)
    if keep is None:
        return len(insert_with_ids(conn, rt, records, len(rows)))
    pick = operator.itemgetter(*_DECIDE_COLUMNS[1:])  # (the full records are not kept: their raw cells are
    slim: list[tuple] = []                            # most of a batch's memory)

    def kept(records):
        for record in records:
            slim.append(pick(record))
            yield record

    ids = insert_with_ids(conn, rt, kept(records), len(rows))
    keep.extend(dict(zip(_DECIDE_COLUMNS, (rid, *values))) for rid, values in zip(ids, slim, strict=True))
    return len(ids)


def _staged_constants(batch_id: str, now: dt.datetime) -> dict:
    """The staged row's columns that hold one value for the whole batch, as `normalise_row` sets them."""
    return {"batch_id": batch_id, "staged_at": now, "status": "staged", "dedupe_key": None, "decided_at": None}


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A chunk of a file normalised (R-REG-1..3) and formatted as COPY text before its run (`prepare_rows`).

    `policy`, `known` (the people's ids) and `codec` are what it was made with: `stage_rows` uses it only while
    they still hold. `columns`: the staged row's columns in `pieces`, without the id and the batch's constants;
    `slim`: each row's `_DECIDE_COLUMNS` but the id, in row order. Without a codec (SQLite, which inserts in
    process) the chunk keeps its normalised `records` instead of COPY text."""

    policy: object
    known: frozenset[str]
    codec: str | None
    columns: tuple[str, ...]
    pieces: list[bytes] | None
    slim: list[tuple]
    records: list[dict] | None = None


_PREPARED_AT = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)  # a placeholder: staged_at is the run's, set then


def prepare_rows(ctx: StageContext, rows: list[dict], known: frozenset[str], codec: str | None) -> Prepared | None:
    """`rows` (a file's chunk, as the readers give them) normalised as `stage_rows` would stage them (R-REG-1..3)
    and formatted as COPY text in `codec` (None: the records are kept as they are, for SQLite): issue 10, done in
    the read-ahead thread while the run before decides and allocates, so this chunk's staging only sends bytes.
    Reads nothing from the store. None for no rows, or when a value cannot be formatted (then `stage_rows`
    normalises the rows itself and raises in its place)."""
    if not rows:
        return None
    cache: dict = {}
    records = [normalise_row(r, ctx, known, "", _PREPARED_AT, cache) for r in rows]
    constants = _staged_constants("", _PREPARED_AT)
    columns = tuple(c for c in records[0] if c not in constants)
    pick = operator.itemgetter(*_DECIDE_COLUMNS[1:])
    slim = list(map(pick, records))
    if codec is None:
        return Prepared(ctx.policy, frozenset(known), None, columns, None, slim, records)
    try:
        pieces = copy_text(Registration.__table__, list(columns), records, codec)
    except ValueError:
        return None
    return Prepared(ctx.policy, frozenset(known), codec, columns, pieces, slim)


def preparer(ctx: StageContext):
    """`prepare_rows` bound to the store's people and COPY encoding now (none on SQLite: its chunks are kept as
    records), for a file's chunks read ahead (`prepared_chunks`)."""
    with ctx.engine.connect() as conn:
        known = frozenset(conn.execute(select(Person.id)).scalars())
        codec = copy_codec(conn) if conn.dialect.name == "postgresql" else None
    return functools.partial(prepare_rows, ctx, known=known, codec=codec)


def prepared_chunks(chunks: Iterable[tuple], prepare) -> Iterator[tuple]:
    """(number, last, rows, prepared) for each of `file_chunks`' (number, last, rows): `prepare(rows)`, or None
    without a `prepare`. Read through `read_ahead`, the next chunk is prepared while this one is registered."""
    for number, last, rows in chunks:
        yield number, last, rows, prepare(rows) if prepare is not None else None


def insert_with_ids(conn: Connection, table, rows: Iterable[dict], count: int | None = None) -> list[int]:
    """Insert `rows` (dicts with the same keys, no `id`) in bulk and return their new ids in row order, without
    an INSERT … RETURNING of them all: on PostgreSQL the ids are drawn from the table's sequence in one query
    and the rows COPYed with them (each row gets its `id` key; a few rows are one INSERT … RETURNING); on
    SQLite the rows are inserted in one executemany under the transaction's write lock, so they took the ids
    after the largest one, in order. `rows` may be an iterator when `count` gives its length: each row is then
    made only as COPY reads it (`bulk.insert_rows`)."""
    if count is None or conn.dialect.name != "postgresql" or count < COPY_THRESHOLD:
        rows = rows if isinstance(rows, list) else list(rows)
        count = len(rows)
    if not count:
        return []
    n = count
    if conn.dialect.name == "postgresql" and n < COPY_THRESHOLD:  # a few rows (an API call): one statement
        return list(conn.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), rows).scalars())
    if conn.dialect.name == "postgresql":
        ids = _draw_ids(conn, table, n)

        def numbered():
            for row, rid in zip(rows, ids, strict=True):
                row["id"] = rid
                yield row

        insert_rows(conn, table, numbered() if not isinstance(rows, list) else list(numbered()), n)
        return ids
    insert_rows(conn, table, rows)  # one executemany (the driver's own for a bulk of rows: bulk._executemany)
    top = conn.execute(select(func.max(table.c.id))).scalar()
    return list(range(top - n + 1, top + 1))


def _draw_ids(conn: Connection, table, n: int) -> list[int]:
    """`n` new ids of `table` from its sequence (PostgreSQL), ascending, in one query."""
    sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name}).scalar()
    return sorted(conn.execute(text("SELECT nextval(CAST(:s AS regclass)) FROM generate_series(1, :n)"),
                               {"s": sequence, "n": n}).scalars())


def dedupe_key(r: dict) -> str:
    """R-REG-4: (channel, external reference), or channel + phone + registered_at without one."""
    if r["external_ref"]:
        basis = f"{r['channel']}|ref|{r['external_ref']}"
    else:
        basis = f"{r['channel']}|{r['phone']}|{r['registered_at'].astimezone(dt.timezone.utc).isoformat()}"
    return hashlib.sha256(basis.encode()).hexdigest()[:40]


# What deciding reads of a staged row (not its raw cells): the rule inputs, in row order.
_DECIDE_COLUMNS = ("id", "row_number", "ref", "name", "channel", "external_ref", "phone", "registered_at",
                   "registered_by", "amount_yuan", "target")


def decide(conn: Connection, ctx: StageContext, batch_id: str, quarantined: dict[int, list[str]],
           now: dt.datetime, staged: list[dict] | None = None) -> dict:
    """Accept, attach or quarantine every staged row of the batch, in row order; write in bulk.

    R-REG-4 (a repeated delivery attaches, claiming no second key), R-REG-5 (a known phone attaches), R-TIER-1
    (a new customer is tiered), R-REG-8 / R-DISP-7 (self-found leads), R-VAL-2 (the gate's quarantine). Reads
    are set-based and writes bulk (COPY / one UPDATE … FROM on PostgreSQL): the statements do not grow with
    the rows. `staged`: the batch's staged rows as `stage_rows(keep=…)` gave them, when this process staged it
    (else they are read back). Returns {"rows_in", "accepted", "attached", "quarantined", "new_customers": [ids]}."""
    rt = Registration.__table__
    if staged is not None:
        rows = sorted(staged, key=operator.itemgetter("row_number", "id"))
    else:
        rows = [dict(r) for r in conn.execute(select(*(rt.c[c] for c in _DECIDE_COLUMNS)).where(
            rt.c.batch_id == batch_id, rt.c.status == "staged").order_by(rt.c.row_number, rt.c.id)).mappings()]
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
    """R-REG-4: {dedupe key: customer id} of the keys already claimed.

    In sorted slices of _KEY_PROBES: a whole batch's keys in one array make the planner read every registration
    (a sequential scan, its cost growing with the store: 0.2 s at 300,000 rows, a gigabyte at a million); a
    slice is looked up in the unique index, whatever the store's size."""
    rt = Registration.__table__
    return dict(_in_chunks(conn, select(rt.c.dedupe_key, rt.c.customer_id), rt.c.dedupe_key, sorted(set(keys)),
                           pg_size=_KEY_PROBES))


_KEY_PROBES = 10_000


def _customers_by_phone(conn: Connection, phones: list[str]) -> dict[str, int]:
    """R-REG-5: {phone: customer id} of the numbers already known."""
    pt = CustomerPhone.__table__
    return dict(_in_chunks(conn, select(pt.c.phone, pt.c.customer_id), pt.c.phone, sorted(set(phones))))


def _create_customers(conn: Connection, ctx: StageContext, regs: list[dict], now: dt.datetime) -> dict[int, int]:
    """New customers, judged for tier (R-TIER-1); a `self` lead is its finder's from registration (R-REG-8).
    Returns {registration id: new customer id}."""
    if not regs:
        return {}
    policy = ctx.policy
    self_channel = policy.registration.self_channel
    depts = dict(conn.execute(select(Person.id, Person.department_id)).all()) if any(
        r["channel"] == self_channel for r in regs) else {}
    tiers = policy.tiers
    rows = [{"ref": r["ref"], "name": r["name"], "tier": tier_for(r["amount_yuan"], r["target"], tiers),
             "amount_yuan": r["amount_yuan"], "target": r["target"], "channel": r["channel"],
             "status": "assigned" if r["channel"] == self_channel else "pool",
             "owner_id": r["registered_by"] if r["channel"] == self_channel else None,
             "department_id": depts.get(r["registered_by"]) if r["channel"] == self_channel else None,
             "self_found": r["channel"] == self_channel, "created_at": now, "tiered_at": now} for r in regs]
    ids = insert_with_ids(conn, Customer.__table__, rows)
    created = {r["id"]: cid for r, cid in zip(regs, ids)}
    insert_rows(conn, CustomerPhone.__table__, [
        {"phone": r["phone"], "customer_id": created[r["id"]], "relation": "primary", "linked_at": now}
        for r in regs])
    own = [(r, created[r["id"]], row["tier"]) for r, row in zip(regs, rows) if row["status"] == "assigned"]
    if own:
        _assign_self_found(conn, ctx, own, depts, now)
    return created


def _assign_self_found(conn, ctx, own, depts, now):
    """R-REG-8: the finder's assignment and ledger entry for each new self-found customer."""
    insert_rows(conn, Assignment.__table__, [
        {"customer_id": cid, "person_id": r["registered_by"], "department_id": depts.get(r["registered_by"]),
         "kind": "self", "rule_id": "R-REG-8", "tier": tier, "started_at": now, "clock_start": now,
         "exempt": False, "bound": True, "policy_version": ctx.policy.version} for r, cid, tier in own])
    ledger.append(conn, [ledger.entry(now, "R-REG-8", "self_found", "a self-found lead is its finder's from "
                                      "registration", customer_id=cid, person_id=r["registered_by"],
                                      department_id=depts.get(r["registered_by"])) for r, cid, _ in own],
                  ctx.policy.version, ctx.flow_run_id)


EFFECTIVE = ("contact", "follow_up", "sales_step")  # an effective follow-up (R-SLA-5, R-DISP-1)


def _in_chunks(conn: Connection, query, column, values: list, size: int = 5000, pg_size: int | None = None):
    """The rows of `query` where `column` is among `values`: on PostgreSQL the values as one array parameter per
    statement (an IN list of thousands of parameters costs more to send and parse than to look up), all in one
    or `pg_size` at a time; elsewhere a few thousand values per statement (SQLite binds each as a variable)."""
    if conn.dialect.name == "postgresql":
        size = pg_size or max(len(values), 1)
        array = postgresql.ARRAY(column.type)
        for i in range(0, len(values), size):
            yield from conn.execute(query.where(column == any_(bindparam("values", list(values[i:i + size]),
                                                                         type_=array))))
        return
    for i in range(0, len(values), size):
        yield from conn.execute(query.where(column.in_(values[i:i + size])))


def _take_over(conn: Connection, ctx: StageContext, candidates: list[tuple[dict, int]], now: dt.datetime) -> set[int]:
    """R-REG-8, R-DISP-1, R-DISP-7: another salesperson's `self` registration of a self-found customer
    takes it over once the holder's protection has lapsed (judged at the registration's time); inside
    protection it only attaches. Allocated leads (held by a conversion period) are never taken over,
    nor is anything by a company-channel registration. Returns the registration ids that took over.

    Set-based: the candidates' open assignments, customers, effective follow-ups and the people's departments
    are read once, the rule judges each candidate in row order, and the changes are written in bulk."""
    from leadflow.rules.disputes import protection_until

    if not candidates:
        return set()
    at_, ct = Assignment.__table__, Customer.__table__
    cids = sorted({cid for _, cid in candidates})
    held = {a.customer_id: a._asdict() for a in _in_chunks(conn, select(at_).where(at_.c.ended_at.is_(None)),
                                                           at_.c.customer_id, cids)}
    customers = {c.id: c for c in _in_chunks(conn, select(ct.c.id, ct.c.status, ct.c.tier), ct.c.id, cids)}
    done_by: dict[int, list[tuple[str, dt.datetime]]] = {}
    for cid, pid, at in _in_chunks(conn, select(Activity.customer_id, Activity.person_id, Activity.at).where(
            Activity.kind.in_(EFFECTIVE)), Activity.customer_id, cids):
        done_by.setdefault(cid, []).append((pid, at))
    depts = dict(conn.execute(select(Person.id, Person.department_id)).all())
    taken: set[int] = set()
    done: set[int] = set()
    ended, started, owners, entries = [], [], [], []
    for r, cid in candidates:
        if cid in done:  # one takeover per customer and batch; later rows fall inside the new protection
            continue
        a, c = held.get(cid), customers.get(cid)
        if (a is None or c is None or c.status != "assigned" or a["kind"] not in ("self", "takeover")
                or a["person_id"] == r["registered_by"]):
            continue
        followups = sorted(at for pid, at in done_by.get(cid, ()) if pid == a["person_id"]
                           and a["started_at"] <= at <= r["registered_at"])
        if r["registered_at"] < protection_until(a["started_at"], followups, ctx.policy):
            continue  # still protected (an expiry: at the instant of lapse it is free)
        dept = depts.get(r["registered_by"])
        ended.append({"id": a["id"], "ended_at": now, "end_reason": "takeover"})
        started.append({"customer_id": cid, "person_id": r["registered_by"], "department_id": dept,
                        "kind": "takeover", "rule_id": "R-DISP-7", "tier": c.tier, "started_at": now,
                        "clock_start": now, "exempt": False, "bound": True, "policy_version": ctx.policy.version})
        owners.append({"id": cid, "owner_id": r["registered_by"], "department_id": dept})
        entries.append(ledger.entry(now, "R-DISP-7", "self_found", "protection lapsed: the next valid self "
                                    "registration takes the customer over", customer_id=cid,
                                    person_id=r["registered_by"], from_person_id=a["person_id"], department_id=dept))
        taken.add(r["id"])
        done.add(cid)
    if ended:  # the holder's assignment ends before the new one opens (one open assignment per customer)
        update_rows(conn, at_, "id", ended)
        insert_rows(conn, at_, started)
        update_rows(conn, ct, "id", owners)
        ledger.append(conn, entries, ctx.policy.version, ctx.flow_run_id)
    return taken


def _write_outcomes(conn, ctx, rows, outcome, quarantined, now):
    """Each staged row's outcome in one bulk UPDATE, and its ledger entry (R-ALLOC-7, R-REG, R-VAL-2)."""
    rt = Registration.__table__
    updates, entries = [], []
    entry = ledger.entry
    for r in rows:
        rid = r["id"]
        if rid in quarantined:
            reasons = sorted(set(quarantined[rid]))
            updates.append({"id": rid, "status": "quarantined", "reasons": reasons, "dedupe_key": None,
                            "customer_id": None, "decided_at": now})
            entries.append(entry(now, "R-VAL-2", "quarantine", "quarantined: " + ", ".join(reasons),
                                 explanation={"registration": rid, "reasons": reasons}))
            continue
        o = outcome[rid]
        updates.append({"id": rid, "status": o["status"], "reasons": [], "dedupe_key": o["key"],
                        "customer_id": o["customer"], "decided_at": now})
        what = "a new customer" if o["status"] == "accepted" else "attached to an existing customer"
        entries.append(entry(now, o["rule"], o["status"], f"registration {rid}: {what}",
                             customer_id=o["customer"], explanation={"registration": rid}))
    update_rows(conn, rt, "id", updates)
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
               digest: str | None = None, timings: dict[str, float] | None = None,
               prepared: Prepared | None = None) -> dict:
    """Stage, gate and decide one batch (R-REG, R-VAL); the engine run around it allocates.

    Called under the engine's clock lock, so the check for an earlier delivery of the same batch cannot race:
    a batch decided before returns its earlier summary with `already_registered`. A batch staged but never
    decided (a crash) is staged afresh. Raises StageFailure (one sentence) for a batch broken as a whole.
    `timings`, when given, gets the seconds of each step added under "stage", "gate" and "decide"."""
    with ctx.engine.connect() as conn:
        earlier = previous_summary(conn, batch_id)
    if earlier is not None:
        return earlier
    if not rows:  # R-VAL-3: an empty batch is no delivery (the readers say so for a header-only file)
        raise StageFailure("the batch has no rows: nothing to register.")
    timings = {} if timings is None else timings
    with bulk_work():  # the batch's rows are alive throughout: collect cycles less often (leadflow.memory)
        t0 = time.perf_counter()
        staged: list[dict] = []  # what deciding reads of the rows, kept as they are staged: not read back
        with ctx.engine.begin() as conn:
            stage_rows(conn, ctx, batch_id, source, rows, now, digest, keep=staged, prepared=prepared)
        failpoints.hit("intake.staged")
        t1 = time.perf_counter()
        gate = ctx.gate("intake", batch_id=batch_id)
        t2 = time.perf_counter()
        try:
            return settle(ctx, batch_id, gate, now, staged)
        finally:
            t3 = time.perf_counter()
            for step, seconds in (("stage", t1 - t0), ("gate", t2 - t1), ("decide", t3 - t2)):
                timings[step] = timings.get(step, 0.0) + seconds


def settle(ctx: StageContext, batch_id: str, gate, now: dt.datetime, staged: list[dict] | None = None) -> dict:
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
        summary = decide(conn, ctx, batch_id, quarantined, now, staged)
        finish_batch(conn, batch_id, summary, now)
    failpoints.hit("intake.decided")
    refresh_statistics(ctx.engine, summary["rows_in"])
    if gate.batch_error:
        raise StageFailure(gate.batch_error)
    summary["docs"] = gate.docs_path
    return summary


# A batch claimed (staged) and not finished: under the clock lock, only a crashed run leaves one. In the order
# they were staged (their rows' first id: a file's batches are staged in file order, and the last one's id,
# `file-<digest>`, sorts before the others' as text), so R-REG-4/5 see the rows in the order they came.
_UNFINISHED = (select(IntakeBatch.id, func.min(Registration.id).label("first"))
               .select_from(IntakeBatch).outerjoin(Registration, (Registration.batch_id == IntakeBatch.id)
                                                   & (Registration.status == "staged"))
               .where(IntakeBatch.finished_at.is_(None)).group_by(IntakeBatch.id, IntakeBatch.started_at))
UNFINISHED_EXISTS = select(IntakeBatch.id).where(IntakeBatch.finished_at.is_(None)).exists()


def recover_unfinished(ctx: StageContext, now: dt.datetime) -> dict:
    """Gate and decide every batch a crashed run staged and never decided (R-REG, R-VAL), at `now`.

    Staging commits before the gate runs, so a run killed in between leaves the rows `staged`. A file delivered
    again re-stages its batches itself, but a lead through the Python API at the current time has a batch of its
    own that nothing delivers again: without this, its rows would stay staged for ever, counted nowhere. Called by
    every run after its own act, under the clock lock, so a batch still unfinished then was left by a run that is
    gone; its new leads then wait for the run's pool offer like any others. Each batch is decided as `settle`
    decides one (its own transaction; R-VAL-3 may quarantine it as a whole, which is said in `errors`).

    Returns {"batches": [ids decided], "rows_in", "accepted", "attached", "quarantined", "errors": [one sentence
    each: a batch refused as a whole (R-VAL-3; decided and counted), or one that could not be decided (left staged,
    tried again by the next run)]}: an error makes the run need a person (`flows.clock.outcome_state`)."""
    out = {"batches": [], "rows_in": 0, "accepted": 0, "attached": 0, "quarantined": 0, "errors": []}
    with ctx.engine.connect() as conn:
        batches = sorted(conn.execute(_UNFINISHED).all(), key=lambda b: (b.first is None, b.first or 0, b.id))
    for batch_id, _ in batches:
        try:
            summary = settle(ctx, batch_id, ctx.gate("intake", batch_id=batch_id), now)
        except StageFailure as e:  # R-VAL-3: quarantined and finished as a whole; its counts are the batch's
            out["errors"].append(f"a batch a killed run had staged ({batch_id}) was refused as a whole: {e}")
            with ctx.engine.connect() as conn:
                summary = previous_summary(conn, batch_id) or {}
        except Exception as e:  # noqa: BLE001 - one broken batch must not stop every run after it: it stays
            # staged, is said here (its type only: a driver's message may quote a row) and is tried again next run
            _log.warning("batch %s, staged by a killed run, could not be decided (%s); the next run tries again",
                         batch_id, type(e).__name__)
            out["errors"].append(f"a batch a killed run had staged ({batch_id}) could not be decided "
                                 f"({type(e).__name__}); the next run tries again.")
            continue
        out["batches"].append(batch_id)
        for k in ("rows_in", "accepted", "attached", "quarantined"):
            out[k] += summary.get(k, 0)
    return out


# --- files in batches ---------------------------------------------------------------------------------


def file_batch_id(digest: str, number: int, last: bool) -> str:
    """The batch id of chunk `number` (1-based) of a file (R-REG-4: the same file delivered twice is the same
    batches). The LAST chunk is `file-<digest20>`, the id a file of one chunk always had, so a batch of that id
    finished means the whole file was (`leadflow.inbox` knows a delivered file by it); the others are
    `file-<digest20>-<number>`."""
    return f"file-{digest[:20]}" if last else f"file-{digest[:20]}-{number}"


def file_batch_size(conn: Connection, digest: str, policy_rows: int) -> int:
    """Rows per chunk for a file of this digest: as its earlier delivery chunked it (the rows of its first
    chunk), so a redelivery after a crash finds the same batches even if `intake.batch_rows` changed; else
    the policy's `intake.batch_rows`."""
    bt = IntakeBatch.__table__
    earlier = conn.execute(select(bt.c.rows_in).where(bt.c.id == file_batch_id(digest, 1, False))).scalar()
    return int(earlier) if earlier else policy_rows


def file_summary(conn: Connection, digest: str) -> dict | None:
    """The outcome of a file delivered in full before (its last batch finished): counts summed over its
    batches, `batches` their ids in order, `already_registered`; None when it was not (R-REG-4)."""
    bt = IntakeBatch.__table__
    last = file_batch_id(digest, 0, True)
    if previous_summary(conn, last) is None:
        return None
    rows = conn.execute(select(bt.c.id, bt.c.rows_in, bt.c.accepted, bt.c.attached, bt.c.quarantined)
                        .where(bt.c.id.like(f"{last}%"), bt.c.digest == digest)).all()
    rows.sort(key=lambda r: (r.id == last, int(r.id.rsplit("-", 1)[1]) if r.id != last else 0))
    out = {k: sum(getattr(r, k) for r in rows) for k in ("rows_in", "accepted", "attached", "quarantined")}
    return {**out, "batches": [r.id for r in rows], "already_registered": True}


def file_chunks(rows, size: int):
    """(number, is the last chunk, rows) for the rows of a file in lists of `size`, streamed: one chunk and one
    row of the next are in memory, never the file."""
    number, chunk = 0, []
    for row in rows:
        if len(chunk) == size:
            number += 1
            yield number, False, chunk
            chunk = []
        chunk.append(row)
    if chunk:
        yield number + 1, True, chunk


_END = object()


def read_ahead(items: Iterator):
    """The items of `items`, each next one read in a background thread while the caller works on the one before
    (issue 10: a file's next chunk is read and parsed while the database inserts this one; the reader takes the
    interpreter while the run waits on the server). At most one item is read ahead. An exception the reading
    raises is raised here, at the item it stopped at."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadflow-read-ahead") as pool:
        pending = pool.submit(next, items, _END)
        while True:
            item = pending.result()
            if item is _END:
                return
            pending = pool.submit(next, items, _END)
            yield item


# The tables a registration batch grows that the next runs join (the pool offer: registrations of pooled
# customers), and how much change since their last ANALYZE makes their statistics stale enough to mislead the
# planner: a fresh table thought empty gets nested loops over 50,000 rows (21 s for 20,000 leads, not 0.05 s).
# Once analyzed, PostgreSQL scales the row estimate with the table's size, so doubling is time enough again.
_GROWN_BY_INTAKE = ("registrations", "customers")
# n_mod_since_analyze counts a row inserted and then updated in the same run twice (a registration staged then
# decided, a customer created then allocated): changes above the live rows mean about half the table is new
_STALE_SHARE = 1.0
_STALE_MIN_ROWS = 5000


def refresh_statistics(engine, rows: int) -> None:
    """After a large batch on PostgreSQL, ANALYZE the tables it grew whose statistics are stale (changes since
    the last ANALYZE above _STALE_SHARE of the live rows): autovacuum would, but only later, and the runs
    after this batch (the pool offer, the next batch) plan their joins now. Geometric, so a file of N rows
    analyzes O(log N) times (5 for a million). Nothing on SQLite, or after a small batch (`rows`)."""
    if engine.dialect.name != "postgresql" or rows < _STALE_MIN_ROWS:
        return
    with engine.connect() as conn:
        stale = [name for name, changed, live in conn.execute(text(
            "SELECT relname, n_mod_since_analyze, GREATEST(n_live_tup, 1) FROM pg_stat_user_tables "
            "WHERE schemaname = current_schema() AND relname = ANY(:names)"), {"names": list(_GROWN_BY_INTAKE)})
                 if changed >= _STALE_MIN_ROWS and changed > _STALE_SHARE * live]
        for name in stale:
            conn.exec_driver_sql(f'ANALYZE "{name}"')
        conn.commit()
