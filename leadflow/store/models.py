"""The store's tables. Times are stored as UTC; every state change has its own timestamp."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, TypeDecorator, text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, naive UTC on disk (the same on SQLite and PostgreSQL)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime, dict: JSON, list: JSON}


class Department(Base):
    __tablename__ = "departments"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int]  # base rotation order (R-ALLOC-1)


class Person(Base):
    __tablename__ = "people"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # shown beside the id in artifacts and reports (issue 9.4); optional in the org file
    name: Mapped[str | None] = mapped_column(String(200))
    department_id: Mapped[str | None] = mapped_column(ForeignKey("departments.id"))
    role: Mapped[str] = mapped_column(String(20))  # sales | manager | receptionist
    grade: Mapped[str | None] = mapped_column(String(8))
    rank: Mapped[int | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    departed_at: Mapped[dt.datetime | None]
    graded_at: Mapped[dt.datetime | None]


class Registration(Base):
    """One delivered registration row, raw and normalised, whatever became of it (R-REG-1, R-VAL-2)."""

    __tablename__ = "registrations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(String(64), index=True)
    row_number: Mapped[int]
    ref: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(32))
    channel_raw: Mapped[str | None] = mapped_column(Text)
    external_ref: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(32))  # normalised; never leaves the store unmasked
    phone_masked: Mapped[str | None] = mapped_column(String(32))
    phone_kind: Mapped[str] = mapped_column(String(16))  # mobile | landline | invalid | missing
    amount_raw: Mapped[str | None] = mapped_column(Text)
    amount_yuan: Mapped[float | None] = mapped_column(Float)
    amount_status: Mapped[str] = mapped_column(String(16))  # ok | blank | invalid | negative | absurd
    inquiry: Mapped[str | None] = mapped_column(Text)
    region: Mapped[str | None] = mapped_column(Text)
    target: Mapped[bool | None]
    registered_at: Mapped[dt.datetime | None]
    registered_by: Mapped[str | None] = mapped_column(String(64))
    by_known: Mapped[bool] = mapped_column(Boolean, default=True)
    raw: Mapped[dict | None]
    status: Mapped[str] = mapped_column(String(16), default="staged")  # staged|accepted|attached|quarantined
    reasons: Mapped[list | None]
    dedupe_key: Mapped[str | None] = mapped_column(String(300))  # unique where set (uq_registrations_dedupe_key)
    customer_id: Mapped[int | None]  # checked per batch (store.references)
    staged_at: Mapped[dt.datetime]
    decided_at: Mapped[dt.datetime | None]
    # Issue 10: a row is staged with neither a key nor a customer, and most quarantined rows keep neither: the
    # indexes hold only the rows that have one (R-REG-4's one claim per key is the same; lookups by key or
    # customer name a value, so the planner uses them). A staged row then writes two index entries, not four.
    __table_args__ = (
        Index("uq_registrations_dedupe_key", "dedupe_key", unique=True,
              sqlite_where=text("dedupe_key IS NOT NULL"), postgresql_where=text("dedupe_key IS NOT NULL")),
        Index("ix_registrations_customer_id", "customer_id",
              sqlite_where=text("customer_id IS NOT NULL"), postgresql_where=text("customer_id IS NOT NULL")),
    )


# Registration columns no statement filters, joins or groups on: ANALYZE leaves them out (statistics target 0),
# which makes the ANALYZE after a large batch (`stages.intake.refresh_statistics`) about 3x cheaper: their sampled
# values (the raw row's JSON, free text) were most of its work. PostgreSQL only (migration 0009, `db.create_all`).
UNSAMPLED_REGISTRATION_COLUMNS = ("raw", "inquiry", "name", "amount_raw", "channel_raw", "region", "phone_masked",
                                  "reasons", "amount_yuan", "amount_status", "target", "by_known", "staged_at",
                                  "decided_at", "phone_kind")


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ref: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(Text)
    tier: Mapped[str] = mapped_column(String(16))
    amount_yuan: Mapped[float | None] = mapped_column(Float)
    target: Mapped[bool | None]
    channel: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # pool | assigned | converted | invalid
    owner_id: Mapped[str | None] = mapped_column(String(64))  # checked per batch (store.references)
    department_id: Mapped[str | None] = mapped_column(String(64))  # checked per batch
    self_found: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime]
    pooled_at: Mapped[dt.datetime | None]
    tiered_at: Mapped[dt.datetime | None]
    converted_at: Mapped[dt.datetime | None]
    invalid_at: Mapped[dt.datetime | None]
    invalid_reason: Mapped[str | None] = mapped_column(String(32))
    # R-ALLOC-5: the pool is offered oldest first, page by page (keyset on created_at, id); status alone is its prefix
    __table_args__ = (Index("ix_customers_pool_order", "status", "created_at", "id"),)


class CustomerPhone(Base):
    """Every number that reaches a customer: its own, aliases (R-REG-5), relatives (R-REG-6)."""

    __tablename__ = "customer_phones"
    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[int] = mapped_column(index=True)  # checked per batch (store.references)
    relation: Mapped[str] = mapped_column(String(16))  # primary | alias | household
    linked_at: Mapped[dt.datetime]


class Assignment(Base):
    """A period of ownership; at most one open per customer, enforced by a partial unique index."""

    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # references checked per batch, not per row (store.references)
    customer_id: Mapped[int] = mapped_column(index=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    department_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))  # allocation|manager|hand_on|self|takeover|exchange|replacement
    rule_id: Mapped[str] = mapped_column(String(16))
    tier: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime]
    clock_start: Mapped[dt.datetime]  # conversion clock; an exchange carries it (R-CONV-4)
    exempt: Mapped[bool] = mapped_column(Boolean, default=False)  # step 4 reached (R-CONV-2)
    retiered_at: Mapped[dt.datetime | None]  # R-TIER-5: a re-tier that shortens the period ends it here
    bound: Mapped[bool] = mapped_column(Boolean, default=True)  # holds SLA obligations
    # R-SLA-6: every obligation met, lapsed or breached; the SLA check reads only the unsettled ones, however old
    sla_settled: Mapped[bool] = mapped_column(Boolean, default=False)
    ended_at: Mapped[dt.datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))
    policy_version: Mapped[str] = mapped_column(String(16))
    __table_args__ = (
        Index("uq_assignments_open", "customer_id", unique=True,
              sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL")),
        # issue 10: the time-driven stages select their candidates by an indexed time bound — the SLA check
        # the unsettled obligations started long enough ago, the expiry the open clocks started long enough ago;
        # `bound` before the start: a manager's unbound holding is never settled, and every run read past them all
        Index("ix_assignments_sla_due", "sla_settled", "bound", "started_at"),
        Index("ix_assignments_open_clock", "ended_at", "clock_start"),
    )


class Suspension(Base):
    """No allocation to a person or department from starts_at until ends_at (an expiry)."""

    __tablename__ = "suspensions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_kind: Mapped[str] = mapped_column(String(16))  # person | department
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    rule_id: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)


class Pause(Base):
    """Rounds paused (+n) and consumed (-1) per person and tier (R-ALLOC-4)."""

    __tablename__ = "pauses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    tier: Mapped[str] = mapped_column(String(16))
    rounds: Mapped[int]
    at: Mapped[dt.datetime]
    rule_id: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    # the breach whose penalty granted it; on a row of rounds <= 0, the breach whose revocation withdrew it (R-SLA-7)
    source_key: Mapped[str | None] = mapped_column(String(200), index=True)


class PauseBalance(Base):
    """Each (person, tier)'s paused rounds: the sum of its `pauses` rows, added to by every write of them
    (`leadflow.store.pauses`), so allocation reads a row per person and tier, not the whole history (issue 10)."""

    __tablename__ = "pause_balances"
    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tier: Mapped[str] = mapped_column(String(16), primary_key=True)
    rounds: Mapped[int]


class Leave(Base):
    __tablename__ = "leaves"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # personal | sick
    at: Mapped[dt.datetime]
    until: Mapped[dt.datetime]  # the end of that calendar day


class Violation(Base):
    __tablename__ = "violations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_kind: Mapped[str] = mapped_column(String(16))  # person | department
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # company_rule | malicious_omission | late_table
    at: Mapped[dt.datetime]


class Fine(Base):
    __tablename__ = "fines"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    amount_yuan: Mapped[float] = mapped_column(Float)
    at: Mapped[dt.datetime]
    rule_id: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    source_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    revoked_at: Mapped[dt.datetime | None]  # cancelled: its breach was disproved by a late record (R-SLA-7)


class Bar(Base):
    """R-SUSP-7: no leads of a tier until the person closes one of it."""

    __tablename__ = "bars"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    tier: Mapped[str] = mapped_column(String(16))
    since: Mapped[dt.datetime]
    lifted_at: Mapped[dt.datetime | None]


class RotationPointer(Base):
    """Where each rotation stands (R-ALLOC-1, R-ALLOC-2, R-ALLOC-3)."""

    __tablename__ = "rotation_pointers"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class Meta(Base):
    """Facts about the store itself: when its records began, the rotation epoch."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class Activity(Base):
    """What a salesperson did with a customer: contact, CRM entry, registers, follow-ups, sales steps."""

    __tablename__ = "activities"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    kind: Mapped[str] = mapped_column(String(20))
    step: Mapped[int | None]
    at: Mapped[dt.datetime]  # when it was done: deadlines are judged by it (R-SLA-7)
    recorded_at: Mapped[dt.datetime | None]  # when it reached LeadFlow (R-SLA-7)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    # the stages read a customer's records of some kinds since some time (issue 10); customer first, as before
    __table_args__ = (Index("ix_activities_customer_kind_at", "customer_id", "kind", "at"),)


class Breach(Base):
    """An SLA breach, recorded once (R-SLA-6): unique per assignment and rule (and audit listing)."""

    __tablename__ = "breaches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    # references checked per batch, not per row (store.references, migration 0010)
    customer_id: Mapped[int] = mapped_column(index=True)
    person_id: Mapped[str] = mapped_column(String(64))
    assignment_id: Mapped[int | None]
    rule_id: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime]
    resolved_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]  # disproved by a late record (R-SLA-7); kept, never deleted
    # R-SLA-6: the check reads the breaches already recorded for its candidate assignments; by rule and time:
    # the month's late entries (R-SUSP-3, R-SLA-7) and an audit instant's listings (R-SLA-5), migration 0013
    __table_args__ = (Index("ix_breaches_assignment", "assignment_id", "rule_id"),
                      Index("ix_breaches_rule_at", "rule_id", "at"))


class Deal(Base):
    __tablename__ = "deals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    closer_id: Mapped[str | None] = mapped_column(ForeignKey("people.id"))  # None: closed by nobody on record
    amount_yuan: Mapped[float] = mapped_column(Float)
    tier: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime]


class Credit(Base):
    """Who is credited with a deal's performance (业绩) and commission (提成); superseded, never edited."""

    __tablename__ = "credits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    kind: Mapped[str] = mapped_column(String(16))  # performance | commission
    share: Mapped[float] = mapped_column(Float)
    rule_id: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime]
    superseded_at: Mapped[dt.datetime | None]


class HelpAgreement(Base):
    """R-CONV-4: the owner asked a colleague to help; the deal's credit is split as agreed."""

    __tablename__ = "help_agreements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    helper_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    helper_share: Mapped[float] = mapped_column(Float)
    at: Mapped[dt.datetime]


class Claim(Base):
    __tablename__ = "claims"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    knowingly: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[dt.datetime]


class ReplacementDebt(Base):
    """A replacement lead owed ahead of the rotation (R-ALLOC-6)."""

    __tablename__ = "replacement_debts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    tier: Mapped[str] = mapped_column(String(16))
    owed_since: Mapped[dt.datetime]
    rule_id: Mapped[str] = mapped_column(String(16))
    served_at: Mapped[dt.datetime | None]
    served_customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))


class Misjudgment(Base):
    __tablename__ = "misjudgments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    at: Mapped[dt.datetime]


class Ledger(Base):
    """Append-only: every decision, with its rule, reason, explanation, flow run and policy version (R-ALLOC-7)."""

    __tablename__ = "ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    rule_id: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[int | None] = mapped_column(index=True)  # checked per batch (store.references)
    person_id: Mapped[str | None] = mapped_column(String(64))
    from_person_id: Mapped[str | None] = mapped_column(String(64))
    department_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    explanation: Mapped[dict | None]
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[dt.datetime]


class IntakeBatch(Base):
    """One delivery (a file or a call); a re-delivered file is recognised by its digest (R-REG-4)."""

    __tablename__ = "intake_batches"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    digest: Mapped[str | None] = mapped_column(String(64))
    rows_in: Mapped[int] = mapped_column(default=0)
    accepted: Mapped[int] = mapped_column(default=0)
    attached: Mapped[int] = mapped_column(default=0)
    quarantined: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    # Every run asks whether a crashed run left a batch staged and never decided (`intake.recover_unfinished`):
    # only such batches are in this index, so the question costs one probe of an index that is nearly always empty.
    __table_args__ = (
        Index("ix_intake_batches_unfinished", "started_at",
              sqlite_where=text("finished_at IS NULL"), postgresql_where=text("finished_at IS NULL")),
    )


class ScheduleMark(Base):
    """The last `as_of` each time-driven stage ran to, so a replay or a late run catches up once."""

    __tablename__ = "schedule_marks"
    stage: Mapped[str] = mapped_column(String(64), primary_key=True)
    ran_to: Mapped[dt.datetime]


class EventBatch(Base):
    """One delivery of lifecycle events (a file, a call, a deployment run); a re-delivered file is one batch."""

    __tablename__ = "event_batches"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(Text)  # file name (phones masked), `api`, `cli`, `replay`
    digest: Mapped[str | None] = mapped_column(String(64))
    operator: Mapped[str | None] = mapped_column(String(64))
    rows_in: Mapped[int] = mapped_column(default=0)
    applied: Mapped[int] = mapped_column(default=0)
    duplicate: Mapped[int] = mapped_column(default=0)
    waiting: Mapped[int] = mapped_column(default=0)
    refused: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]


class Event(Base):
    """A lifecycle event (contact, deal, leave, ...), stored once, append-only; only its status moves on.

    `dedupe_key` makes a row idempotent: the source's own event id where it has one, else
    (type, customer or person, by, at) — see `leadflow.events.normalise.dedupe_key`.
    """

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("event_batches.id"), index=True)
    row_number: Mapped[int] = mapped_column(default=0)
    source_event_id: Mapped[str | None] = mapped_column(String(200))
    dedupe_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    type: Mapped[str | None] = mapped_column(String(20))
    at: Mapped[dt.datetime | None]
    recorded_at: Mapped[dt.datetime]
    customer_key: Mapped[str | None] = mapped_column(String(200))  # as written; a phone is kept masked here
    phone: Mapped[str | None] = mapped_column(String(32))  # normalised phone naming the customer or linked
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    other_customer_key: Mapped[str | None] = mapped_column(String(200))  # exchange: with_customer
    other_customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    by: Mapped[str | None] = mapped_column(String(64))
    person: Mapped[str | None] = mapped_column(String(64))  # person / to
    department: Mapped[str | None] = mapped_column(String(64))
    fields: Mapped[dict | None]  # step, amount, kind, reason, relation, share, knowingly (never a phone)
    operator: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # EventStatus: applied | waiting | refused
    reason: Mapped[str | None] = mapped_column(String(64))
    wait_until: Mapped[dt.datetime | None]
    applied_at: Mapped[dt.datetime | None]
    __table_args__ = (Index("ix_events_status", "status"),)


class ValidationHold(Base):
    """A registration a later stage's suite flagged (R-VAL-2): its customer stays out of that stage until a
    later validation run passes the record again (`cleared_at`); at most one open hold per record and suite."""

    __tablename__ = "validation_holds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    suite: Mapped[str] = mapped_column(String(32))  # the expectation suite (= the stage it guards)
    reasons: Mapped[list]  # the reason codes of the failed expectations
    flagged_at: Mapped[dt.datetime]
    cleared_at: Mapped[dt.datetime | None]
    __table_args__ = (
        Index("uq_validation_holds_open", "registration_id", "suite", unique=True,
              sqlite_where=text("cleared_at IS NULL"), postgresql_where=text("cleared_at IS NULL")),
    )
