"""Issue 10: the time-driven rules at scale, tested directly (no database). The monthly audit's rules index the
records once instead of scanning them per holding (R-SLA-5), and the stages' candidate bounds never leave out an
obligation or a period that could fall due (R-SLA-1..4, R-CONV-1). Each is compared with the obvious
definition on small generated cases."""
import datetime as dt
import random
from zoneinfo import ZoneInfo

from leadflow.policy import load_policy
from leadflow.rules.conversion import expires_at, shortest_period
from leadflow.rules.sla import (
    EFFECTIVE_KINDS, Holding, Listing, Obligation, Record, _followed, audit_deadline, audit_listings,
    audit_reallocations, deadlines, shortest_window,
)

POLICY = load_policy()
CST = ZoneInfo("Asia/Shanghai")
AUDIT = dt.datetime(2026, 3, 1, tzinfo=CST)
KINDS = ("contact", "follow_up", "sales_step", "crm_entry", "call_register")


def _case(seed: int):
    rnd = random.Random(seed)
    people, customers = ["s1", "s2", "s3"], list(range(1, 9))
    holdings = [Holding(i, rnd.choice(customers), rnd.choice(people),
                        AUDIT - dt.timedelta(days=rnd.choice([10, 29, 30, 31, 45, 90]), minutes=rnd.randint(-5, 5)))
                for i in range(1, 13)]
    records = [Record(rnd.choice(customers), rnd.choice(people), rnd.choice(KINDS),
                      AUDIT - dt.timedelta(days=rnd.choice([-3, 0, 1, 7, 29, 30, 31, 40]),
                                           minutes=rnd.choice([-1, 0, 1])))
               for _ in range(rnd.randint(0, 40))]
    return holdings, records


def _obvious_listings(holdings, records, audit_at):
    quiet_from = audit_at - dt.timedelta(days=POLICY.sla.audit_quiet_days)
    out = [Listing(h.assignment_id, h.customer_id, h.person_id, audit_at) for h in holdings
           if audit_at - h.held_since > dt.timedelta(days=POLICY.sla.audit_held_days)
           and not any(r.customer_id == h.customer_id and r.person_id == h.person_id and r.kind in EFFECTIVE_KINDS
                       and quiet_from < r.at <= audit_at for r in records)]
    return sorted(out, key=lambda x: x.assignment_id)


def test_r_sla_5_indexed_audit_listings_match_the_obvious_definition():
    for seed in range(200):
        holdings, records = _case(seed)
        shuffled = random.Random(seed).sample(records, len(records))  # order of the records does not matter
        assert audit_listings(holdings, shuffled, AUDIT, POLICY) == _obvious_listings(holdings, records, AUDIT), seed


def test_r_sla_5_indexed_reallocations_match_the_obvious_definition():
    for seed in range(200):
        holdings, records = _case(seed)
        listings = [Listing(h.assignment_id, h.customer_id, h.person_id, AUDIT - dt.timedelta(days=8))
                    for h in holdings]
        expected = [x for x in listings if AUDIT > audit_deadline(x, POLICY)
                    and not _followed(records, x.customer_id, x.person_id, x.at, audit_deadline(x, POLICY))]
        assert audit_reallocations(listings, records, AUDIT, POLICY) == expected, seed


def test_r_sla_1_to_4_no_deadline_comes_sooner_after_the_start_than_the_check_s_bound():
    """The SLA check skips assignments started within `shortest_window` of its instant: none of them can owe
    a breach yet, at any start time of day, on working days, weekends and holidays."""
    window = shortest_window(POLICY)
    assert window == dt.timedelta(minutes=POLICY.sla.first_contact_minutes)
    start = dt.datetime(2026, 9, 25, 0, 0, tzinfo=CST)
    for k in range(0, 24 * 60 * 20, 37):  # twenty days, every 37 minutes
        t = start + dt.timedelta(minutes=k)
        for tier in ("A", "D"):
            for deadline in deadlines(Obligation(1, 1, "s1", tier, t, None, True), POLICY).values():
                assert deadline - t >= window
    assert shortest_window(load_policy(overrides={"sla": {"call_register_working_days": 0}})) is None


def test_r_conv_1_no_period_ends_sooner_after_the_clock_start_than_the_expiry_bound():
    """The expiry skips clocks started within `shortest_period` of its instant, whatever the day of the month."""
    period = shortest_period(POLICY)
    start = dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.timezone.utc)
    for k in range(0, 24 * 800, 7):  # every 7 hours over two years, month ends included
        t = start + dt.timedelta(hours=k)
        for tier in POLICY.conversion.period_months:
            end = expires_at(t, tier, POLICY)
            if end is not None:
                assert end - t >= period
