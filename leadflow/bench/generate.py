"""The benchmark's data, generated from a fixed seed and streamed to files (never all rows in memory at once).

Registrations: `write_registrations(folder, n, as_of, seed)` writes N rows as the front desk exports them (GBK
CSV under its Chinese headers, `leadflow.samples.generate.HEADERS`), drawn by the sample generator's own row
maker (`leadflow.samples.generate._row`: channels, amounts as people write them, phones in several styles), over
the quarter before `as_of`, in working hours, in time order. About 1 % of the rows are bad (a phone that is no
phone, an amount that is no amount, no registrar: R-REG-1..3), a few are a repeated delivery of an earlier row
(R-REG-4) and about 2 % a recent caller ringing again, mostly on another channel (R-REG-5). Beside it the same rows go
to `baseline.csv` (UTF-8) for the raw baseline, with the amount as a number (`amount_yuan`, the generator knows
it: the same R-REG-3 reading the pipeline makes) and the is-target flag as a boolean.

Activity: `write_activity(ctx, folder, as_of, until, seed)` writes the events the owners of the leads allocated at
`as_of` make up to `until` (`leadflow.samples.activity.plan`: first contacts, entries, …) as CSV event files of at
most EVENTS_PER_FILE rows, for a share of the leads.
"""
from __future__ import annotations

import csv
import datetime as dt
import random
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from leadflow.export_cells import safe_row
from leadflow.rules.registration import parse_amount, parse_target
from leadflow.samples.generate import HEADERS, HOURS, _row, _sellers

BAD_SHARE = 0.01  # R-REG-1..3: rows the intake must quarantine (a phone, an amount, a registrar)
REPEAT_SHARE = 0.003  # R-REG-4: a row delivered again (the same channel and reference): attached, not a customer
CALL_AGAIN_SHARE = 0.02  # R-REG-5: a recent caller rings again (their phone, a registration of its own, mostly
# on another channel): attached to the customer they are. `_row`'s own repeat callers rarely keep the same number.
RECENT = 1000  # a repeated delivery repeats one of the last RECENT rows
DAYS = 90  # the rows were registered over the quarter before `as_of`
CHUNK = 5000  # rows per write
EVENTS_PER_FILE = 50_000  # an event file holds at most this many rows (as a system exports them, by period)
BASELINE_COLUMNS = ("row_number", "channel", "name", "phone", "amount", "amount_yuan", "inquiry", "registered_at",
                    "registered_by", "target", "region", "external_ref")
EVENT_COLUMNS = ("event_id", "type", "at", "customer", "by", "step", "amount")


def registration_rows(n: int, as_of: dt.datetime, seed: int = 11, policy=None) -> Iterator[dict]:
    """`n` registration rows (the canonical columns of `leadflow.samples.generate._row`), in time order, all
    registered in working hours on the DAYS business days before `as_of` (aware; its business date is the day
    after the last). Deterministic for (n, as_of, seed). A repeated delivery carries `repeat: True`."""
    from leadflow.clock import zone
    from leadflow.policy import load_policy

    policy = policy or load_policy()
    rnd, sellers, recent = random.Random(f"bench|{seed}"), _sellers(), deque(maxlen=RECENT)
    last_day = as_of.astimezone(zone(policy)).date() - dt.timedelta(days=1)
    first = dt.datetime.combine(last_day - dt.timedelta(days=DAYS - 1), dt.time(HOURS[0]))
    day_seconds = (HOURS[1] - HOURS[0] + 1) * 3600  # 08:00–19:59
    span = DAYS * day_seconds
    for i in range(n):
        if recent and rnd.random() < REPEAT_SHARE:
            yield {**rnd.choice(recent), "repeat": True}
            continue
        offset = int((i + rnd.random()) * span / n)  # in time order, spread evenly over the quarter's hours
        at = first + dt.timedelta(days=offset // day_seconds, seconds=offset % day_seconds)
        row = _row(rnd, i, at, sellers, BAD_SHARE)
        if recent and rnd.random() < CALL_AGAIN_SHARE:
            row["phone"] = rnd.choice(recent)["phone"]
        recent.append(row)
        yield row


def write_registrations(folder: Path, n: int, as_of: dt.datetime, seed: int = 11, policy=None,
                        progress: Callable[[int, int], None] | None = None) -> dict:
    """Write `registrations.csv` (GBK, the front desk's headers: what the pipeline reads) and `baseline.csv`
    (UTF-8, BASELINE_COLUMNS: what the raw baseline COPYs) in `folder`, CHUNK rows at a time.

    Returns {"registrations": Path, "baseline": Path, "rows": n, "repeats": rows delivered again,
    "bad_amounts": rows whose amount is no amount}. `progress(rows written, n)` after each chunk."""
    from leadflow.policy import load_policy

    policy = policy or load_policy()
    cap = policy.registration.amount_cap_yuan
    folder.mkdir(parents=True, exist_ok=True)
    pipeline_path, baseline_path = folder / "registrations.csv", folder / "baseline.csv"
    repeats = bad_amounts = written = 0
    with open(pipeline_path, "w", encoding="gbk", errors="replace", newline="") as fp, \
            open(baseline_path, "w", encoding="utf-8", newline="") as fb:
        wp, wb = csv.writer(fp), csv.writer(fb)
        wp.writerow(safe_row(HEADERS.values()))
        wb.writerow(BASELINE_COLUMNS)
        pipeline_chunk, baseline_chunk = [], []
        for number, row in enumerate(registration_rows(n, as_of, seed, policy), start=1):
            repeats += bool(row.get("repeat"))
            amount, status = parse_amount(row["amount"], cap=cap)  # R-REG-3, as the intake reads it
            bad_amounts += status in ("invalid", "negative", "absurd")
            target = parse_target(row["target"])
            pipeline_chunk.append(safe_row(row[k] for k in HEADERS))
            baseline_chunk.append((number, row["channel"], row["name"], row["phone"], row["amount"],
                                   "" if amount is None or status != "ok" else repr(amount), row["inquiry"],
                                   row["registered_at"], row["registered_by"],
                                   "" if target is None else ("t" if target else "f"), row["region"],
                                   row["external_ref"]))
            if len(pipeline_chunk) >= CHUNK:
                written += _flush(wp, wb, pipeline_chunk, baseline_chunk, progress, n, written)
        written += _flush(wp, wb, pipeline_chunk, baseline_chunk, progress, n, written)
    return {"registrations": pipeline_path, "baseline": baseline_path, "rows": n, "repeats": repeats,
            "bad_amounts": bad_amounts}


def _flush(wp, wb, pipeline_chunk: list, baseline_chunk: list, progress, n: int, written: int) -> int:
    wp.writerows(pipeline_chunk)
    wb.writerows(baseline_chunk)
    count = len(pipeline_chunk)
    pipeline_chunk.clear()
    baseline_chunk.clear()
    if progress is not None and count:
        progress(written + count, n)
    return count


def _chosen(customer: str, seed: int, share: float) -> bool:
    """Whether a lead is among the `share` whose activity is delivered: a stable draw per customer and seed."""
    return share >= 1 or random.Random(f"bench-activity|{seed}|{customer}").random() < share


def allocations(conn, since: dt.datetime, until: dt.datetime, size: int = CHUNK) -> Iterator[list]:
    """The allocations of `leadflow.samples.feed.allocations` (bound assignments started in (since, until], named
    as the events name their customer), read `size` at a time in assignment order: never all at once."""
    from sqlalchemy import select

    from leadflow.samples.activity import Allocation
    from leadflow.samples.feed import _external_refs
    from leadflow.store.models import Assignment, Customer

    last = 0
    while True:
        rows = conn.execute(select(Assignment.id, Assignment.customer_id, Assignment.person_id,
                                   Assignment.started_at, Assignment.tier, Assignment.ended_at, Customer.amount_yuan,
                                   Customer.ref)
                            .join(Customer, Customer.id == Assignment.customer_id)
                            .where(Assignment.bound.is_(True), Assignment.started_at > since,
                                   Assignment.started_at <= until, Assignment.id > last)
                            .order_by(Assignment.id).limit(size)).all()
        if not rows:
            return
        last = rows[-1].id
        keys = _external_refs(conn, sorted({r.customer_id for r in rows}))
        yield [Allocation(r.ref or keys.get(r.customer_id) or str(r.customer_id), r.person_id, r.started_at,
                          r.tier, r.amount_yuan, r.ended_at) for r in rows]


def write_activity(ctx, folder: Path, as_of: dt.datetime, until: dt.datetime, seed: int = 11,
                   share: float = 1.0) -> dict:
    """The events (issue 5) the owners of the leads allocated at `as_of` make in (as_of, until] (aware times), for
    `share` of those leads (a stable draw per lead), as `events-NNN.csv` files in `folder` (canonical English
    headers, EVENT_COLUMNS; times in business time without an offset, as the systems write them), at most
    EVENTS_PER_FILE rows each. Plans come from `leadflow.samples.activity.plan` (the sample organisation's mix).
    Returns {"files": [Path], "events": rows written, "leads": leads with activity, "by_type": {type: rows}}."""
    from leadflow.clock import zone
    from leadflow.samples.activity import plan

    folder.mkdir(parents=True, exist_ok=True)
    tz = zone(ctx.policy)
    files: list[Path] = []
    by_type: dict[str, int] = {}
    out = {"files": files, "events": 0, "leads": 0, "by_type": by_type}
    writer, handle, in_file = None, None, 0
    try:
        with ctx.engine.connect() as conn:
            for chunk in allocations(conn, as_of - dt.timedelta(seconds=1), as_of):
                for a in chunk:
                    if not _chosen(a.customer, seed, share):
                        continue
                    rows = [r for r in plan(a, ctx.policy, seed) if r["at"] <= until]
                    out["leads"] += bool(rows)
                    for r in rows:
                        if writer is None or in_file >= EVENTS_PER_FILE:
                            if handle is not None:
                                handle.close()
                            files.append(folder / f"events-{len(files) + 1:03d}.csv")
                            handle = open(files[-1], "w", encoding="utf-8", newline="")
                            writer, in_file = csv.writer(handle), 0
                            writer.writerow(EVENT_COLUMNS)
                        local = r["at"].astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
                        writer.writerow(safe_row(local if k == "at" else r.get(k) for k in EVENT_COLUMNS))
                        in_file += 1
                        out["events"] += 1
                        by_type[r["type"]] = by_type.get(r["type"], 0) + 1
    finally:
        if handle is not None:
            handle.close()
    return out
