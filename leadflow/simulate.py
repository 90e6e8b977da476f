"""`leadflow simulate`: replay a scenario through the stage code the flows run, on a fresh database."""
from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from leadflow import engine
from leadflow.events.kinds import RECORD_KINDS
from leadflow.policy import load_policy
from leadflow.scenario import Event, Scenario
from leadflow.stages import people
from leadflow.stages.context import StageContext
from leadflow.state import world_state
from leadflow.store.db import create_all, create_schema, drop_schema, make_engine

log = logging.getLogger("leadflow.simulate")


@contextmanager
def replay_database(database_url: str | None):
    """A fresh database for one replay: a temporary SQLite file, or a new PostgreSQL schema; removed after."""
    if database_url and not database_url.startswith("sqlite"):
        schema = create_schema(database_url, prefix="replay")
        engine = make_engine(database_url, schema=schema)
        try:
            yield engine, database_url, schema
        finally:
            engine.dispose()
            drop_schema(database_url, schema)
    else:
        folder = tempfile.mkdtemp(prefix="leadflow-replay-")
        url = f"sqlite:///{Path(folder) / 'replay.db'}"
        engine = make_engine(url)
        try:
            yield engine, url, None
        finally:
            engine.dispose()
            shutil.rmtree(folder, ignore_errors=True)



def registration_row(e: Event) -> dict:
    """A scenario `register` event as the registration row a file or the API would deliver (INTAKE.md)."""
    f = e.fields
    return {"ref": str(f["ref"]), "row_number": 1, "channel": f.get("channel"), "name": f.get("name"),
            "phone": f.get("phone"), "amount": f.get("amount"), "inquiry": f.get("inquiry"),
            "registered_at": e.at, "registered_by": f.get("by"), "region": f.get("region"),
            "external_ref": f.get("external_ref"),
            "target": {True: "yes", False: "no"}.get(f.get("target", True), "unknown"),
            "raw": {k: v for k, v in f.items() if k != "phone"}}


def event_row(e: Event) -> dict:
    """Any other scenario event as the canonical event row a file, the CLI or the API would deliver."""
    row = {"type": e.type, "at": e.at, "recorded_at": e.recorded_at, "row_number": 1, **e.fields}
    for name in ("customer", "with_customer", "by", "person", "to", "department"):
        if row.get(name) is not None:
            row[name] = str(row[name])
    return row


class Replay:
    """A thin driver: for each scenario event, the production entry point for it, at its delivery time."""

    def __init__(self, scenario: Scenario, ctx: StageContext):
        self.scenario, self.ctx = scenario, ctx
        self.now = scenario.start

    def setup(self) -> None:
        with self.ctx.engine.begin() as conn:
            people.load_org(conn, self.scenario.departments, self.scenario.people)
        engine.tick(self.ctx, self.scenario.start)  # the store's clock, records and rotation begin at `start`

    def run(self) -> dict:
        self.setup()
        events, i = self.scenario.events, 0
        while i < len(events):
            j = self.together(i)
            if j - i > 1:
                self.deliver_records(events[i:j])
            else:
                self.deliver(events[i])
            i = max(j, i + 1)
        last = self.scenario.events[-1].delivered_at if self.scenario.events else self.scenario.start
        engine.tick(self.ctx, last)
        self.now = last
        with self.ctx.engine.connect() as conn:
            return world_state(conn, self.ctx.policy, self.scenario.name, self.now)

    def together(self, i: int) -> int:
        """The end (exclusive) of the run of events from `i` that may be delivered as one delivery of records:
        consecutive on-time records (`batchable`) made before any instant at which a run would do more than
        record them (`engine.quiet_until`: a stage due, a hold, a waiting event, a pool an offer would change,
        a leave or suspension beginning or ending, or a new week, while leads wait in the pool). Delivered one by
        one, each of them would be a run that catches up nothing, records it and offers nothing new (a waiting
        lead stays where it is); delivered together at the last one's time, with each one's own delivery time as
        its `recorded_at`, they are recorded and applied in the same order with the same outcome (records never
        make a stage due sooner, hold a record, pool a lead or change the roster). i + 1 or less: deliver event
        `i` alone."""
        events = self.scenario.events
        k = i
        while k < len(events) and k - i < MAX_TOGETHER and batchable(events[k]):
            k += 1
        if k - i < 2:
            return i + 1
        busy = engine.quiet_until(self.ctx, events[k - 1].delivered_at)
        if busy is None:
            return k
        j = i
        while j < k and events[j].delivered_at < busy:
            j += 1
        return j

    def deliver_records(self, batch: list[Event]) -> dict:
        """Consecutive on-time records (`together`) as one delivery at the last one's time, each row carrying its
        own delivery time as `recorded_at` (what a run at that time would have given it)."""
        self.now = batch[-1].delivered_at
        rows = [{**event_row(e), "row_number": n, "recorded_at": e.delivered_at} for n, e in enumerate(batch, 1)]
        summary = engine.record(self.ctx, rows, self.now, batch_id=f"replay-{batch[0].index}-{batch[-1].index}",
                                source="scenario")
        for problem in summary.get("problems", []):
            e = batch[problem["row"] - 1]
            log.warning("events[%s] (%s): %s %s", e.index, e.type, problem["status"], problem["reason"])
        return summary

    def deliver(self, e: Event) -> dict:
        self.now = e.delivered_at
        if e.type == "tick":
            return engine.tick(self.ctx, self.now)
        if e.type == "register":
            return engine.register(self.ctx, f"replay-{e.index}", "scenario", [registration_row(e)], self.now)
        summary = engine.record(self.ctx, [event_row(e)], self.now, batch_id=f"replay-{e.index}", source="scenario")
        for problem in summary.get("problems", []):
            log.warning("events[%s] (%s): %s %s", e.index, e.type, problem["status"], problem["reason"])
        return summary


MAX_TOGETHER = 500  # events in one delivery of records (`Replay.together`)


def batchable(e: Event) -> bool:
    """A record delivered when it was made: no `recorded_at` (R-SLA-7: late evidence is delivered alone, at its
    own time, as it may revoke a breach then). A record only adds evidence: it meets obligations (R-SLA-1..5),
    or exempts a lead from expiry (R-CONV-2, a sales step), so it never makes a time-driven stage due sooner,
    holds a record or pools a lead."""
    return e.type in RECORD_KINDS and e.recorded_at is None


# the suites of the later stages: they read decided records (accepted or attached, with a customer)
LATER_SUITES = ("allocation", "tiering", "sla_check", "conversion_expiry", "dispute")


def prevalidate(scenario: Scenario, ctx: StageContext) -> dict[str, int]:
    """Validate, before the replay, every record version the replay is likely to show the gate (R-VAL-1): the
    scenario's registrations as staging will store them (intake suite), and each as an accepted and as an
    attached record with a customer (the later stages' suites): one GX call per suite, so the replay's own gate
    runs answer from the gate's cache instead of one GX call per new content. Only the outcomes are kept:
    nothing is written to the store, and the gate still runs before every stage on the records as they are
    then (a version not foreseen here, e.g. a registrant who joined later, is validated when it is met).
    Returns {suite: contents validated now}; {} when the gate cannot prevalidate (none, or a wrapped one)."""
    gate = ctx.gate
    regs = [e for e in scenario.events if e.type == "register"]
    if gate is None or not hasattr(gate, "prevalidate") or not regs:
        return {}
    from leadflow.stages.intake import normalise_row

    known = {str(p["id"]) for p in scenario.people}
    staged = [normalise_row(registration_row(e), ctx, known, "prevalidate", e.delivered_at) for e in regs]
    done = {"intake": gate.prevalidate("intake", staged)}
    decided = [{**r, "status": status, "customer_id": 1, "decided_at": r["staged_at"]}
               for r in staged for status in ("accepted", "attached")]
    for suite in LATER_SUITES:
        done[suite] = gate.prevalidate(suite, decided)
    return done


def simulate(scenario: Scenario, policy_path: str | None = None, database_url: str | None = None,
             gate_factory=None) -> dict:
    """Replay `scenario` on a fresh database and return the final state (SCENARIOS.md output)."""
    policy = load_policy(policy_path, scenario.policy)
    with replay_database(database_url) as (engine, url, schema):
        create_all(engine)
        gate = gate_factory(url, schema, policy) if gate_factory else None
        ctx = StageContext(engine=engine, policy=policy, flow_run_id=None, gate=gate)
        try:
            prevalidate(scenario, ctx)
            return Replay(scenario, ctx).run()
        finally:
            if hasattr(gate, "close"):  # its connections must go before the replay's schema does
                gate.close()
