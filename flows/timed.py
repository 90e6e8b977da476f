"""The time-driven flows: SLA check, monthly audit, conversion expiry, quarterly review, pool allocation."""
from __future__ import annotations

import datetime as dt

from prefect import flow
from prefect.states import Completed, Failed

from tasks import reporting, stages


def _now(as_of: dt.datetime | None) -> dt.datetime:
    return as_of or dt.datetime.now(dt.timezone.utc)


def _gate(stage: str, scope: str = "open"):
    """R-VAL-1: validate what the stage will read; a batch broken as a whole fails the run (R-VAL-3).

    A time-driven stage with nothing in play has nothing to validate: that is not an empty-file error."""
    ids = stages.records_in_play(scope)
    if not ids:
        return NOTHING_TO_VALIDATE
    gate = stages.validate(stage, ids)
    reporting.publish_validation(gate)
    return gate


def _blocked(stage: str, scope: str = "open"):
    """The Failed state that stops the flow when its records are broken as a whole (R-VAL-3), else None."""
    gate = _gate(stage, scope)
    return Failed(message=gate.batch_error) if gate.batch_error else None


class _Nothing:
    batch_error = None


NOTHING_TO_VALIDATE = _Nothing()


def run_name(title: str):
    """`sla check 2026-03-02 09:00` — what ran and as of when (never a phone: no lead data in names)."""
    def name() -> str:
        from prefect.runtime import flow_run

        as_of = flow_run.parameters.get("as_of") or dt.datetime.now(dt.timezone.utc)
        return f"{title} {as_of.astimezone(dt.timezone(dt.timedelta(hours=8))):%Y-%m-%d %H:%M}"
    return name


@flow(name="sla-check", flow_run_name=run_name("sla check"))
def sla_check_flow(as_of: dt.datetime | None = None):
    """R-SLA-1..4: record each breach once, with its penalty."""
    if failed := _blocked("sla_check"):
        return failed
    summary = stages.sla_check(_now(as_of))
    reporting.publish_breaches(summary)
    return summary


@flow(name="monthly-audit", flow_run_name=run_name("monthly audit"))
def monthly_audit_flow(as_of: dt.datetime | None = None):
    """R-SLA-5: list untouched leads per manager; take back those still untouched after 7 days."""
    if failed := _blocked("sla_check"):
        return failed
    now = _now(as_of)
    listing = stages.audit_listing(now)
    reporting.publish_audit(listing)
    grace = stages.audit_grace(now)
    reporting.publish_allocations("audit re-allocation", grace["decisions"])
    reporting.notify_owners(grace["decisions"])
    return {"listed": listing["listed"], "reallocated": grace["taken_back"]}


@flow(name="conversion-expiry", flow_run_name=run_name("conversion expiry"))
def conversion_expiry_flow(as_of: dt.datetime | None = None):
    """R-CONV-1/2, R-SUSP-7: take back unconverted leads at the end of their period."""
    if failed := _blocked("conversion_expiry"):
        return failed
    summary = stages.expiry(_now(as_of))
    reporting.publish_expiry(summary)
    reporting.notify_owners(summary["decisions"])
    return {k: v for k, v in summary.items() if k != "decisions"}


@flow(name="quarterly-review", flow_run_name=run_name("quarterly review"))
def quarterly_review_flow(as_of: dt.datetime | None = None):
    """R-TIER-5 and R-TIER-4: re-tier open customers, re-judge grades; never move a lead."""
    if failed := _blocked("tiering"):
        return failed
    summary = stages.quarterly_review(_now(as_of))
    reporting.publish_review(summary)
    return summary


@flow(name="allocation", flow_run_name=run_name("allocation"))
def allocation_flow(as_of: dt.datetime | None = None):
    """R-ALLOC-5: offer the leads waiting in the pool again, oldest first."""
    if failed := _blocked("allocation", scope="pool"):
        return failed
    summary = stages.allocate(_now(as_of))
    reporting.publish_allocations("pool", summary["decisions"])
    reporting.notify_owners(summary["decisions"])
    if summary["pooled"]:
        return reporting.pool_warning(summary)
    return Completed(message=f"{summary['allocated']} allocated", data=summary)
