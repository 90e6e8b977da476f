"""A generated scenario of any size (SCENARIOS.md): the sample organisation over days to a year — registrations of
realistic amounts and channels, the owners' records with the sample mix (`leadflow.samples.activity`), follow-ups,
sales steps, a few deals and invalid leads, leaves, and a tick at each day's close. Deterministic from the seed.

Records never name `by` (it is the customer's current owner, whoever the rotation chose), so no owner-only
action is generated for anyone else; every event naming a customer uses the `ref` of an earlier registration.
"""
from __future__ import annotations

import datetime as dt
import random

from leadflow.rules.registration import parse_amount
from leadflow.samples.activity import LATE_CONTACT_MINUTES, LEAVE_SHARES, LEAVE_TIME, MIX, STEP_SHARES
from leadflow.samples.generate import CHANNELS, INQUIRIES, REGIONS, SURNAMES, _amount, org

TZ = dt.timezone(dt.timedelta(hours=8))  # the default policy's Asia/Shanghai: no daylight saving
START = dt.datetime(2026, 1, 5, 8, 0, tzinfo=TZ)  # a Monday
EVENTS_PER_DAY = 55  # the sample organisation's pace: 20,000 events is a year, several hundred a week
FOLLOW_UP_DAYS = (4, 24)  # between an owner's effective follow-ups (R-SLA-5 lists a lead quiet for 30 days)
NEGLECTED_SHARE = 0.08  # leads whose owner stops following up after the first week (R-SLA-5 audit, R-CONV-3)
INVALID_SHARE = 0.015  # leads the owner marks invalid in their first days (R-VAL-4)
CLOSING_SHARE = 0.05  # leads that go through step 4 quickly and close (a deal, R-CONV-3)
ABCD_MIN_YUAN = 200_000  # tier C and above (R-SLA-4)
INVALID_REASONS = ("unreachable", "no_intent", "advertising", "household_use")


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


def _working_days(start: dt.date, days: int) -> list[dt.date]:
    return [d for d in (start + dt.timedelta(days=i) for i in range(days)) if d.isoweekday() <= 5]


def _in_hours(rnd: random.Random, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(8), tzinfo=TZ) + dt.timedelta(seconds=rnd.randint(0, 12 * 3600 - 1))


def _register(rnd: random.Random, i: int, at: dt.datetime, sellers: list[str], phones: list[str]) -> dict:
    channel = rnd.choices([c for c, _, _ in CHANNELS], weights=[w for *_, w in CHANNELS])[0]
    if phones and rnd.random() < 0.03:
        phone = rnd.choice(phones)  # a repeat caller: the registration reaches the same customer (R-REG-5)
    else:
        phone = f"1{rnd.choice('3589')}{rnd.randint(0, 9)}{20_000_000 + i:08d}"
        phones.append(phone)
    bad = rnd.random() < 0.02
    return {"at": _iso(at), "type": "register", "ref": f"c{i}", "channel": channel,
            "name": rnd.choice(SURNAMES) + rnd.choice(("先生", "女士")), "phone": "12345" if bad else phone,
            "amount": _amount(rnd), "inquiry": rnd.choice(INQUIRIES),
            "by": rnd.choice(sellers) if channel == "self" else rnd.choice(("k1", "k2")),
            "target": rnd.choices((True, False, None), weights=(90, 7, 3))[0], "region": rnd.choice(REGIONS)}


def _lead(rnd: random.Random, reg: dict, end: dt.datetime, add) -> None:
    """The owner's records on one lead, from its registration until `end`, a deal or an invalid mark."""
    ref, at = reg["ref"], dt.datetime.fromisoformat(reg["at"])
    outcome = MIX["contact"].draw(rnd)
    if outcome == "never":
        contact = None
    else:
        low, high = (60, 600) if outcome == "on_time" else (60 * LATE_CONTACT_MINUTES[0], 60 * LATE_CONTACT_MINUTES[1])
        contact = at + dt.timedelta(seconds=rnd.randint(low, high))
        add(contact, {"type": "contact", "customer": ref})
    yuan, _ = parse_amount(reg["amount"])
    invalid_at = contact + dt.timedelta(hours=rnd.uniform(1, 48)) \
        if contact is not None and rnd.random() < INVALID_SHARE else None
    next_day_close = dt.datetime.combine(at.date() + dt.timedelta(days=3 if at.isoweekday() == 5 else 1),
                                         dt.time(18), tzinfo=TZ)
    for kind, deadline in (("crm_entry", at + dt.timedelta(hours=24)), ("call_register", next_day_close),
                           ("abcd_entry", next_day_close)):
        if kind == "abcd_entry" and (yuan or 0) < ABCD_MIN_YUAN:
            continue
        drawn = MIX[kind].draw(rnd)
        if drawn != "never":
            lo = (contact or at) + dt.timedelta(minutes=5)
            when = lo + (deadline - lo) * rnd.random() if drawn == "on_time" and deadline > lo \
                else max(lo, deadline) + dt.timedelta(hours=rnd.uniform(1, 30))
            if invalid_at is None or when < invalid_at:  # nothing is recorded on a lead after it left its owner
                add(when, {"type": kind, "customer": ref})
    if invalid_at is not None:
        add(invalid_at, {"type": "invalid", "customer": ref, "reason": rnd.choice(INVALID_REASONS)})
    if contact is None or invalid_at is not None:
        return
    neglected = rnd.random() < NEGLECTED_SHARE
    reach = rnd.random()  # how far the lead goes in the six steps; the furthest close
    closes = reach < CLOSING_SHARE
    t, step, quiet_from = contact, 0, contact + dt.timedelta(days=7)
    while True:
        gap = (0.2, 1.2) if closes else (1, 3) if t == contact else FOLLOW_UP_DAYS  # a closing lead moves fast
        t += dt.timedelta(days=rnd.uniform(*gap))
        if t >= end or (neglected and t > quiet_from):
            return
        if reach < STEP_SHARES.get(step + 1, 0) and rnd.random() < (0.9 if closes else 0.5):
            step += 1
            add(t, {"type": "sales_step", "customer": ref, "step": step})
        else:
            add(t, {"type": "follow_up", "customer": ref})
        if closes and step == max(STEP_SHARES):
            amount = (yuan or 100_000) * rnd.uniform(0.6, 1.1)
            add(t + dt.timedelta(days=rnd.uniform(0.2, 2)),
                {"type": "deal", "customer": ref, "amount": int(round(amount, -2))})
            return


def _days_of(rnd: random.Random, days: list[dt.date], sellers: list[str], add) -> None:
    """Leaves in the morning (R-SUSP-2) and a tick at each working day's close."""
    for day in days:
        for person in sellers:
            r = rnd.random()
            if r < sum(LEAVE_SHARES.values()):
                kind = "personal" if r < LEAVE_SHARES["personal"] else "sick"
                add(dt.datetime.combine(day, LEAVE_TIME, tzinfo=TZ), {"type": "leave", "person": person, "kind": kind})
        add(dt.datetime.combine(day, dt.time(18, 5), tzinfo=TZ), {"type": "tick"})


def _build(n_leads: int, span_days: int, seed: int, people: list[dict]) -> list[tuple]:
    rnd = random.Random(seed)
    sellers = [p["id"] for p in people if p["role"] == "sales"]
    days = _working_days(START.date(), span_days)
    end = dt.datetime.combine(START.date() + dt.timedelta(days=span_days), dt.time(0), tzinfo=TZ)
    out: list[tuple] = []

    def add(at: dt.datetime, event: dict) -> None:
        out.append((at.replace(microsecond=0), len(out), {"at": _iso(at), **event}))

    _days_of(rnd, days, sellers, add)
    phones: list[str] = []
    times = sorted(_in_hours(rnd, rnd.choice(days)) for _ in range(n_leads))
    for i, at in enumerate(times, start=1):
        reg = _register(rnd, i, at, sellers, phones)
        add(at, reg)
        if reg["phone"] != "12345" and parse_amount(reg["amount"])[1] in ("ok", "blank"):  # it will be accepted
            _lead(rnd, reg, end, add)
    return sorted(out, key=lambda e: (e[0], e[1]))


def generate_scenario(events: int, seed: int = 1) -> dict:
    """A scenario of exactly `events` events (SCENARIOS.md format), e.g. 20,000: about 1,000 leads over a year."""
    o = org()
    span = min(365, max(7, round(events / EVENTS_PER_DAY)))
    n_leads = max(2, round(events / (6 + span / 28)))  # ~6 records in the first days, then a follow-up a fortnight
    built = _build(n_leads, span, seed, o["people"])
    for _ in range(6):
        if len(built) >= events:
            break
        n_leads = int(n_leads * events / max(len(built), 1) * 1.1) + 2
        built = _build(n_leads, span, seed, o["people"])
    return {"name": f"generated: {events} events of the sample organisation (seed {seed})", "start": _iso(START),
            "departments": o["departments"], "people": o["people"],
            "events": [e for _, _, e in built[:events]]}
