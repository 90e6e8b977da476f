"""R-VAL-1 tier-judgment suite: the decided registrations whose customers are judged for tier
(R-TIER-1 reads the amount and the target flag; the channel decides self-found or company lead).

Reason codes (R-VAL-2):

- `not_accepted` — the row is not a decided registration (`status` not accepted/attached).
- `no_customer` — the registration is not linked to a customer (`customer_id` NULL).
- `phone_format` — the phone is not a mobile or landline (`phone_kind` not mobile/landline).
- `missing_field` — `registered_at` is NULL.
- `amount` — the amount is not usable (`amount_status` not ok/blank, R-REG-3).
- `channel` — the channel is NULL or not a known channel id.
"""
from __future__ import annotations

import great_expectations as gx

from expectations.common import decided, known_channel
from expectations import AMOUNT_STATUSES_OK, given
from leadflow.policy import Policy

REQUIRED: tuple[str, ...] = ("status", "customer_id", "phone_kind", "registered_at", "amount_status", "channel")
# customer_id and registered_at are only tested for NULL: selected as 1/NULL (`given`)
SELECT: dict[str, str] = {c: given(c) if c in ("customer_id", "registered_at") else c for c in REQUIRED}


def suite(policy: Policy) -> gx.ExpectationSuite:
    E = gx.expectations
    return gx.ExpectationSuite(name="leadflow_tiering", expectations=[
        *decided(with_phone=True),
        E.ExpectColumnValuesToBeInSet(column="amount_status", value_set=list(AMOUNT_STATUSES_OK),
                                      description="The amount is blank or sane (R-REG-3).",
                                      meta={"reason": "amount"}),
        *known_channel(policy),
    ])
