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

from expectations import AMOUNT_STATUSES_OK, DECIDED_STATUSES, KNOWN_CHANNELS, PHONE_KINDS_VALID

SELECT: dict[str, str] = {c: c for c in (
    "status", "customer_id", "phone_kind", "registered_at", "amount_status", "channel")}
REQUIRED: tuple[str, ...] = tuple(SELECT)


def suite() -> gx.ExpectationSuite:
    E = gx.expectations
    return gx.ExpectationSuite(name="leadflow_tiering", expectations=[
        E.ExpectColumnValuesToBeInSet(column="status", value_set=list(DECIDED_STATUSES),
                                      description="The registration was accepted or attached.",
                                      meta={"reason": "not_accepted"}),
        E.ExpectColumnValuesToNotBeNull(column="customer_id", description="The registration has a customer.",
                                        meta={"reason": "no_customer"}),
        E.ExpectColumnValuesToBeInSet(column="phone_kind", value_set=list(PHONE_KINDS_VALID),
                                      description="The phone is a mobile or a landline.",
                                      meta={"reason": "phone_format"}),
        E.ExpectColumnValuesToNotBeNull(column="registered_at", description="registered_at is given.",
                                        meta={"reason": "missing_field"}),
        E.ExpectColumnValuesToBeInSet(column="amount_status", value_set=list(AMOUNT_STATUSES_OK),
                                      description="The amount is blank or sane (R-REG-3).",
                                      meta={"reason": "amount"}),
        E.ExpectColumnValuesToNotBeNull(column="channel", description="The channel is given.",
                                        meta={"reason": "channel"}),
        E.ExpectColumnValuesToBeInSet(column="channel", value_set=list(KNOWN_CHANNELS),
                                      description="The channel is a known channel id.", meta={"reason": "channel"}),
    ])
