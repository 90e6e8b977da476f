"""R-VAL-1 allocation suite: the decided registrations whose customers the allocation reads
(R-ALLOC: company leads are allocated; R-REG-8: a `self` lead is owned by its registrant).

Reason codes (R-VAL-2):

- `not_accepted` — the row is not a decided registration (`status` not accepted/attached).
- `no_customer` — the registration is not linked to a customer (`customer_id` NULL).
- `phone_format` — the phone is not a mobile or landline.
- `missing_field` — `registered_at` is NULL; or a `self` lead has no `registered_by` (its owner).
- `channel` — the channel is NULL or not a known channel id (it decides allocate vs. self-owned).
- `unknown_person` — a `self` lead's `registered_by` is nobody on the roster (`by_known` false).
"""
from __future__ import annotations

import great_expectations as gx
from great_expectations.expectations.row_conditions import Column

from expectations import given
from expectations.common import decided, known_channel
from leadflow.policy import Policy

REQUIRED: tuple[str, ...] = (
    "status", "customer_id", "phone_kind", "registered_at", "channel", "registered_by", "by_known")
# customer_id, registered_at and registered_by are only tested for NULL: selected as 1/NULL (`given`)
SELECT: dict[str, str] = {c: given(c) if c in ("customer_id", "registered_at", "registered_by") else c
                          for c in REQUIRED}


def suite(policy: Policy) -> gx.ExpectationSuite:
    E = gx.expectations
    is_self = Column("channel") == policy.registration.self_channel
    return gx.ExpectationSuite(name="leadflow_allocation", expectations=[
        *decided(),
        *known_channel(policy),
        E.ExpectColumnValuesToNotBeNull(column="registered_by", row_condition=is_self,
                                        description="A self-found lead names its finder (R-REG-8).",
                                        meta={"reason": "missing_field"}),
        E.ExpectColumnValuesToBeInSet(column="by_known", value_set=[True], row_condition=is_self,
                                      description="A self-found lead's finder is a known person (R-REG-8).",
                                      meta={"reason": "unknown_person"}),
    ])
