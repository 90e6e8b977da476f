"""The time-driven deployments an operator sees — SLA check, monthly audit, conversion expiry, quarterly
review, pool allocation. Each runs the one global catch-up (`flows.clock.catch_up`), so whichever runs next
does all that is due, in time order: the audit grace hand-over happens within 5 minutes of being due.
"""
from __future__ import annotations

from tasks.masked import flow

from flows.clock import catch_up, run_name
from flows.params import AsOf


@flow(name="sla-check", flow_run_name=run_name("sla check"))
def sla_check_flow(as_of: AsOf = None):
    """R-SLA-1..4, R-SLA-6/7: the global catch-up (every 5 minutes)."""
    return catch_up(as_of)


@flow(name="monthly-audit", flow_run_name=run_name("monthly audit"))
def monthly_audit_flow(as_of: AsOf = None):
    """R-SLA-5: the global catch-up (on the 1st); the listing and the hand-overs run at their own instants."""
    return catch_up(as_of)


@flow(name="conversion-expiry", flow_run_name=run_name("conversion expiry"))
def conversion_expiry_flow(as_of: AsOf = None):
    """R-CONV-1/2, R-SUSP-7: the global catch-up (daily); each expiry runs at its own instant."""
    return catch_up(as_of)


@flow(name="quarterly-review", flow_run_name=run_name("quarterly review"))
def quarterly_review_flow(as_of: AsOf = None):
    """R-TIER-4/5: the global catch-up (at each quarter); the review runs when it is due."""
    return catch_up(as_of)


@flow(name="allocation", flow_run_name=run_name("allocation"))
def allocation_flow(as_of: AsOf = None):
    """R-ALLOC-5: the global catch-up, then the pool is offered again, oldest first."""
    return catch_up(as_of)
