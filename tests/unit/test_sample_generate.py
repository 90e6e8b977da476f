"""The sample period's registrations and the live ones (leadflow.samples.generate, .history): deterministic, in
working hours, exported a few times a day under names that carry the export's time. No database."""
import datetime as dt
from collections import Counter

from leadflow.intake.readers import read_registration_file
from leadflow.samples.generate import (
    HOURS, LIVE_PER_MINUTE, ONLINE, WEEKEND_SHARE, deliveries, delivery_name, last_slot, live_leads, period_leads,
    slot_of, write_sample,
)
from leadflow.samples.history import file_batch
from tasks.intake import batch_id_for

FIRST = dt.date(2026, 2, 2)  # a Monday
UNTIL = dt.datetime(2026, 3, 1, 20, 0)  # four weeks, up to Sunday's last export


def _at(r: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(r["registered_at"])


def test_the_period_is_deterministic_in_working_hours_before_its_end_and_quieter_on_days_off():
    rows = period_leads(FIRST, UNTIL, 2000)
    assert rows == period_leads(FIRST, UNTIL, 2000) and 1900 < len(rows) <= 2000
    assert all(HOURS[0] <= _at(r).hour <= HOURS[1] and FIRST <= _at(r).date() and _at(r) < UNTIL for r in rows)
    per_day = Counter(_at(r).date() for r in rows)
    weekday = sum(n for d, n in per_day.items() if d.weekday() < 5) / 20
    weekend = sum(n for d, n in per_day.items() if d.weekday() >= 5) / 8
    assert abs(weekend / weekday - WEEKEND_SHARE) < 0.1
    assert 70 < weekday < 110  # about 2 a working day for each of the 40 salespeople


def test_each_export_carries_the_registrations_taken_since_the_last_and_its_time_is_in_its_name():
    batches = deliveries(period_leads(FIRST, UNTIL, 2000))
    for slot, rows in batches.items():
        assert slot_of(delivery_name(slot)) == slot
        assert all(slot - dt.timedelta(hours=3) <= _at(r) < slot for r in rows)
    assert 4 * 20 <= len(batches) <= 4 * 28
    assert last_slot(dt.datetime(2026, 3, 2, 10, 59)) == dt.datetime(2026, 3, 1, 20, 0)
    assert last_slot(dt.datetime(2026, 3, 2, 14, 0)) == dt.datetime(2026, 3, 2, 14, 0)


def test_the_sample_files_are_the_exports_the_last_in_the_inbox_each_named_as_the_intake_flow_names_it(tmp_path):
    until = dt.datetime(2026, 2, 3, 20, 0)
    written = write_sample(tmp_path, FIRST, until, 150)
    inbox = list((tmp_path / "inbox").iterdir())
    assert [p.name for p in inbox] == [delivery_name(until)] and inbox[0] == written[-1]
    assert {p.suffix for p in written} == {".csv", ".jsonl", ".xlsx"}
    assert sum(len(read_registration_file(p)) for p in written) == len(period_leads(FIRST, until, 150))
    assert all(file_batch(p) == batch_id_for(str(p)) for p in written)


def test_the_live_leads_of_a_minute_are_always_the_same_whichever_runs_ask_for_them():
    t0 = dt.datetime(2026, 3, 2, 10, 0, 30)
    whole = live_leads(t0, t0 + dt.timedelta(hours=1))
    parts = [r for k in range(30) for r in live_leads(t0 + dt.timedelta(minutes=2 * k),
                                                      t0 + dt.timedelta(minutes=2 * k + 2))]
    assert whole == parts and len({r["external_ref"] for r in whole}) == len(whole)
    assert abs(len(whole) / 60 - LIVE_PER_MINUTE["day"]) < 0.4
    night = live_leads(dt.datetime(2026, 3, 2, 1, 0), dt.datetime(2026, 3, 2, 3, 0))
    online = {c for c, label, _ in ONLINE} | {label for c, label, _ in ONLINE}
    assert night and all(r["channel"] in online for r in night) and len(night) < len(whole)
