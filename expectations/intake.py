"""R-VAL-1 intake suite: the staged registration rows of a delivery, before they are accepted,
attached or quarantined (R-REG-1..3, R-VAL-2).

Reason codes (R-VAL-2), one per expectation:

- `missing_field` — a required field is absent (R-REG-1): `registered_at` or `registered_by` is
  NULL; the phone is absent (`phone_kind` = 'missing'); no channel was delivered at all
  (`channel` NULL and `channel_raw` NULL).
- `channel` — a channel was delivered but is not a known channel id (`channel` NULL while
  `channel_raw` is not: staging stores NULL for an unrecognised channel), or `channel` holds a value
  outside the known ids.
- `phone_format` — the phone is neither a mainland mobile nor a landline (`phone_kind` 'invalid',
  R-REG-2).
- `amount` — the amount is negative, non-numeric or absurd (`amount_status` not ok/blank, R-REG-3).
- `unknown_person` — `registered_by` names nobody on the roster (`by_known` false).
"""
from __future__ import annotations

import great_expectations as gx
from great_expectations.expectations.row_conditions import Column

from expectations import AMOUNT_STATUSES_OK, CHANNEL_GIVEN_SQL
from leadflow.policy import Policy
from leadflow.rules.registration import known_channels

SELECT: dict[str, str] = {
    "channel": "channel",
    "channel_given": CHANNEL_GIVEN_SQL,
    "registered_at": "registered_at",
    "registered_by": "registered_by",
    "by_known": "by_known",
    "phone_kind": "phone_kind",
    "amount_status": "amount_status",
}
REQUIRED: tuple[str, ...] = (
    "channel", "channel_raw", "registered_at", "registered_by", "by_known", "phone_kind", "amount_status",
)


def suite(policy: Policy) -> gx.ExpectationSuite:
    E = gx.expectations
    return gx.ExpectationSuite(name="leadflow_intake", expectations=[
        E.ExpectColumnValuesToNotBeNull(
            column="channel", row_condition=Column("channel_given") == 0,
            description="A channel is given (R-REG-1).", meta={"reason": "missing_field"}),
        E.ExpectColumnValuesToNotBeNull(
            column="channel", row_condition=Column("channel_given") == 1,
            description="The channel given is a known channel.", meta={"reason": "channel"}),
        E.ExpectColumnValuesToBeInSet(
            column="channel", value_set=list(known_channels(policy)),
            description="The channel is a known channel id.", meta={"reason": "channel"}),
        E.ExpectColumnValuesToNotBeNull(
            column="registered_at", description="registered_at is given (R-REG-1).",
            meta={"reason": "missing_field"}),
        E.ExpectColumnValuesToNotBeNull(
            column="registered_by", description="registered_by is given (R-REG-1).",
            meta={"reason": "missing_field"}),
        E.ExpectColumnValuesToNotBeInSet(
            column="phone_kind", value_set=["missing"], description="A phone is given (R-REG-1).",
            meta={"reason": "missing_field"}),
        E.ExpectColumnValuesToBeInSet(
            column="phone_kind", value_set=["mobile", "landline", "missing"],
            description="The phone is a mainland mobile or a landline (R-REG-2).",
            meta={"reason": "phone_format"}),
        E.ExpectColumnValuesToBeInSet(
            column="amount_status", value_set=list(AMOUNT_STATUSES_OK),
            description="The amount is blank or a sane number of yuan (R-REG-3).", meta={"reason": "amount"}),
        E.ExpectColumnValuesToBeInSet(
            column="by_known", value_set=[True],
            description="registered_by is a known person.", meta={"reason": "unknown_person"}),
    ])
