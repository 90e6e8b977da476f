"""R-VAL-1 SLA-check suite: the decided registrations of the customers whose SLA clocks are checked
(R-SLA: the clocks run from the registration and its decision).

Reason codes (R-VAL-2):

- `not_accepted` — the row is not a decided registration (`status` not accepted/attached).
- `no_customer` — the registration is not linked to a customer (`customer_id` NULL).
- `missing_field` — `registered_at` or `decided_at` is NULL (a clock without a start).
- `channel` — the channel is NULL or not a known channel id.
"""
from __future__ import annotations

import great_expectations as gx

from expectations import given
from expectations.common import decided, known_channel
from leadflow.policy import Policy

REQUIRED: tuple[str, ...] = ("status", "customer_id", "registered_at", "decided_at", "channel")
# customer_id, registered_at and decided_at are only tested for NULL: selected as 1/NULL (`given`)
SELECT: dict[str, str] = {c: given(c) if c in ("customer_id", "registered_at", "decided_at") else c
                          for c in REQUIRED}


def suite(policy: Policy) -> gx.ExpectationSuite:
    E = gx.expectations
    return gx.ExpectationSuite(name="leadflow_sla_check", expectations=[
        *decided(with_phone=False),
        E.ExpectColumnValuesToNotBeNull(column="decided_at", description="The registration's decision time is recorded.",
                                        meta={"reason": "missing_field"}),
        *known_channel(policy),
    ])
