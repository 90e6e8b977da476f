"""R-VAL-1 conversion-expiry suite: the decided registrations of the customers whose conversion
periods are checked (R-CONV; a `self` lead is re-allocated at expiry too, R-REG-8).

Reason codes (R-VAL-2):

- `not_accepted` — the row is not a decided registration (`status` not accepted/attached).
- `no_customer` — the registration is not linked to a customer (`customer_id` NULL).
- `phone_format` — the phone is not a mobile or landline (the lead would be re-allocated).
- `missing_field` — `registered_at` is NULL.
- `channel` — the channel is NULL or not a known channel id.
"""
from __future__ import annotations

import great_expectations as gx

from expectations import given
from expectations.common import decided, known_channel
from leadflow.policy import Policy

REQUIRED: tuple[str, ...] = ("status", "customer_id", "phone_kind", "registered_at", "channel")
# customer_id and registered_at are only tested for NULL: selected as 1/NULL (`given`)
SELECT: dict[str, str] = {c: given(c) if c in ("customer_id", "registered_at") else c for c in REQUIRED}


def suite(policy: Policy) -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name="leadflow_conversion_expiry", expectations=[
        *decided(with_phone=True),
        *known_channel(policy),
    ])
