"""`leadflow simulate`: replay a scenario through the stage code the flows run, on a fresh database."""
from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from leadflow.policy import load_policy
from leadflow.scenario import Event, Scenario
from leadflow.clock import local
from leadflow.stages import activities, allocation, deals, disputes, intake, leads, people, timed, validation
from leadflow.stages.context import StageContext, set_meta_once
from leadflow.state import world_state
from leadflow.store.db import create_all, create_schema, drop_schema, make_engine
from leadflow.store.models import Customer, Registration

log = logging.getLogger("leadflow.simulate")


class NotImplementedEvent(ValueError):
    """An event type this build does not replay yet: refused, never silently ignored."""


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


class Replay:
    """A clock driving the stages: time-driven work first, then the event, as the schedules would."""

    def __init__(self, scenario: Scenario, ctx: StageContext):
        self.scenario, self.ctx = scenario, ctx
        self.now = scenario.start
        self.handlers = {
            "register": self.register, "link": self.link, "leave": self.leave, "violation": self.violation,
            "late_table": self.late_table, "depart": self.depart, "tick": lambda e: None,
            "deal": self.deal, "reapply": self.reapply, "hand_on": self.hand_on, "invalid": self.invalid,
            "exchange": self.exchange, "claim": self.claim, "dispute": self.dispute, "help": self.help,
            **{k: self.activity for k in activities.KINDS},
        }

    def setup(self) -> None:
        with self.ctx.engine.begin() as conn:
            people.load_org(conn, self.scenario.departments, self.scenario.people)
            start_day = local(self.scenario.start, self.ctx.policy).date().isoformat()
            set_meta_once(conn, "records_begin", start_day)  # R-TIER-4: in a replay, the scenario's start
            set_meta_once(conn, "rotation_epoch", start_day)  # R-ALLOC-1: the week of `start` begins at d1
            timed.mark_start(conn, self.scenario.start)

    def check_supported(self) -> None:
        for e in self.scenario.events:
            if e.type not in self.handlers:
                raise NotImplementedEvent(f"events[{e.index}].type: the event type '{e.type}' is not implemented "
                                          f"yet in this build of leadflow simulate.")

    def run(self) -> dict:
        self.check_supported()
        self.setup()
        for e in self.scenario.events:
            self.advance(e.at)
            if e.type == "register":  # intake runs its own transactions around the gate
                self.register(e)
            else:
                with self.ctx.engine.begin() as conn:
                    self.conn = conn
                    self.handlers[e.type](e)
            self.allocate()
        self.advance(self.scenario.events[-1].at if self.scenario.events else self.scenario.start)
        with self.ctx.engine.connect() as conn:
            return world_state(conn, self.ctx.policy, self.scenario.name, self.now)

    def advance(self, t: dt.datetime) -> None:
        """Run every time-driven stage due up to `t`, then offer the pool again (R-ALLOC-5)."""
        self.now = t
        timed.catch_up(self.ctx, t)
        self.allocate()

    def allocate(self) -> None:
        with self.ctx.engine.connect() as conn:
            waiting = validation.records_in_play(conn, "pool")
        validation.check(self.ctx, "allocation", waiting, self.now)  # R-VAL-1, only when leads wait
        with self.ctx.engine.begin() as conn:
            allocation.allocate_pool(conn, self.ctx, self.now)

    def customer_id(self, ref: str) -> int | None:
        return self.conn.execute(select(Registration.customer_id).where(Registration.ref == str(ref))).scalar()

    def owner_of(self, customer_id: int) -> str | None:
        return self.conn.execute(select(Customer.owner_id).where(Customer.id == customer_id)).scalar()

    # --- event handlers -------------------------------------------------------------------------
    def register(self, e: Event) -> None:
        f = e.fields
        row = {"ref": str(f["ref"]), "row_number": 1, "channel": f.get("channel"), "name": f.get("name"),
               "phone": f.get("phone"), "amount": f.get("amount"), "inquiry": f.get("inquiry"),
               "registered_at": e.at, "registered_by": f.get("by"), "region": f.get("region"),
               "external_ref": f.get("external_ref"),
               "target": {True: "yes", False: "no"}.get(f.get("target", True), "unknown"),
               "raw": {k: v for k, v in f.items() if k != "phone"}}
        intake.run_intake(self.ctx, f"replay-{e.index}", "scenario", [row], e.at)

    def link(self, e: Event) -> None:
        activities.link_phone(self.conn, self.ctx, self._customer(e), e.fields["phone"], e.fields["relation"], e.at)

    def activity(self, e: Event) -> None:
        cid = self._customer(e)
        if cid is None:
            return
        by = e.fields.get("by") or self.owner_of(cid)
        if by is None:
            log.warning("events[%s]: nobody owns the customer and no 'by' was given; ignored", e.index)
            return
        activities.record(self.conn, self.ctx, cid, str(by), e.type, e.at, step=e.fields.get("step"))

    def leave(self, e: Event) -> None:
        people.record_leave(self.conn, self.ctx, str(e.fields["person"]), e.fields["kind"], e.at)

    def violation(self, e: Event) -> None:
        people.record_violation(self.conn, self.ctx, str(e.fields["person"]), e.fields["kind"], e.at)

    def late_table(self, e: Event) -> None:
        people.record_late_table(self.conn, self.ctx, str(e.fields["department"]), e.at)

    def depart(self, e: Event) -> None:
        people.depart(self.conn, self.ctx, str(e.fields["person"]), e.at)

    def deal(self, e: Event) -> None:
        cid = self._customer(e)
        by = e.fields.get("by") or (self.owner_of(cid) if cid else None)
        if cid is not None:  # no `by` and no owner: closed by nobody on record (R-DISP-5)
            deals.record_deal(self.conn, self.ctx, cid, None if by is None else str(by), e.fields["amount"], e.at)

    def reapply(self, e: Event) -> None:
        cid = self._customer(e)
        if cid is not None:
            leads.reapply(self.conn, self.ctx, cid, e.fields["amount"], e.fields.get("by") or self.owner_of(cid), e.at)

    def hand_on(self, e: Event) -> None:
        cid = self._customer(e)
        if cid is not None:
            leads.hand_on(self.conn, self.ctx, cid, str(e.fields["to"]), e.fields.get("amount"),
                          e.fields.get("by") or self.owner_of(cid), e.at)

    def invalid(self, e: Event) -> None:
        cid = self._customer(e)
        if cid is not None:
            leads.mark_invalid(self.conn, self.ctx, cid, e.fields["reason"], e.fields.get("by"), e.at)

    def exchange(self, e: Event) -> None:
        a, b = self._customer(e), self.customer_id(e.fields["with_customer"])
        if a is not None and b is not None:
            leads.exchange(self.conn, self.ctx, a, b, e.at)

    def help(self, e: Event) -> None:
        cid = self._customer(e)
        if cid is not None:
            leads.record_help(self.conn, self.ctx, cid, str(e.fields["person"]), e.fields["share"], e.at)

    def claim(self, e: Event) -> None:
        cid = self._customer(e)
        if cid is not None:
            leads.record_claim(self.conn, self.ctx, cid, str(e.fields["person"]), e.fields.get("knowingly", False),
                               e.at)

    def dispute(self, e: Event) -> None:
        cid = self._customer(e)
        if cid is not None:
            validation.check(self.ctx, "dispute", validation.registrations_of(self.conn, cid), e.at)  # R-VAL-1
            disputes.rerun(self.conn, self.ctx, cid, e.at)

    def _customer(self, e: Event) -> int | None:
        cid = self.customer_id(e.fields["customer"])
        if cid is None:
            log.warning("events[%s]: registration %r reached no customer (quarantined); event ignored",
                        e.index, e.fields["customer"])
        return cid


def simulate(scenario: Scenario, policy_path: str | None = None, database_url: str | None = None,
             gate_factory=None) -> dict:
    """Replay `scenario` on a fresh database and return the final state (SCENARIOS.md output)."""
    policy = load_policy(policy_path, scenario.policy)
    with replay_database(database_url) as (engine, url, schema):
        create_all(engine)
        gate = gate_factory(url, schema, policy) if gate_factory else None
        ctx = StageContext(engine=engine, policy=policy, flow_run_id=None, gate=gate)
        try:
            return Replay(scenario, ctx).run()
        finally:
            if hasattr(gate, "close"):  # its connections must go before the replay's schema does
                gate.close()
