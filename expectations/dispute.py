"""R-VAL-1 dispute-rerun suite: the decided registrations a dispute is judged on (R-DISP: who
registered the customer, when, through which channel, decides protection and attribution).

Reason codes (R-VAL-2):

- `not_accepted` — the row is not a decided registration (`status` not accepted/attached).
- `no_customer` — the registration is not linked to a customer (`customer_id` NULL).
- `phone_format` — the phone is not a mobile or landline (R-REG-5 matches customers by phone).
- `missing_field` — `registered_at` or `registered_by` is NULL.
- `unknown_person` — `registered_by` is nobody on the roster (`by_known` false).
- `channel` — the channel is NULL or not a known channel id.
"""
from __future__ import annotations

import great_expectations as gx

from expectations import given
from expectations.common import decided, known_channel
from leadflow.policy import Policy

REQUIRED: tuple[str, ...] = (
    "status", "customer_id", "phone_kind", "registered_at", "registered_by", "by_known", "channel")
# customer_id, registered_at and registered_by are only tested for NULL: selected as 1/NULL (`given`)
SELECT: dict[str, str] = {c: given(c) if c in ("customer_id", "registered_at", "registered_by") else c
                          for c in REQUIRED}


def suite(policy: Policy) -> gx.ExpectationSuite:
    E = gx.expectations
    return gx.ExpectationSuite(name="leadflow_dispute", expectations=[
        *decided(with_phone=True),
        E.ExpectColumnValuesToNotBeNull(column="registered_by", description="registered_by is given.",
                                        meta={"reason": "missing_field"}),
        E.ExpectColumnValuesToBeInSet(column="by_known", value_set=[True],
                                      description="registered_by is a known person.",
                                      meta={"reason": "unknown_person"}),
        *known_channel(policy),
    ])
