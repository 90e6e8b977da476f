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
- `bad_time` — `registered_at` was given but is not a time LeadFlow takes (unparseable, or outside
  1970–2099): noted by staging in `reasons`, so such a row is never `missing_field`.
- `too_long`, `bad_quote`, `ragged`, `bad_json`, `bad_text` — what the file reader or staging found in the row
  (`leadflow.intake.cells.Problem`), noted in `reasons`: a value longer than its column, a quote that
  never closed, a CSV row whose cells do not line up with the header, a line that is not JSON, a value holding a
  lone surrogate (the Python API).

The noted reasons are checked by one expectation whose reason codes are the row's own (`reasons_from`,
read by the gate): one check for the whole family keeps the gate as fast as before.
"""
from __future__ import annotations

import great_expectations as gx
from great_expectations.expectations.row_conditions import Column

from expectations import AMOUNT_STATUSES_OK, CHANNEL_GIVEN_SQL, given
from leadflow.intake.cells import Problem
from leadflow.policy import Policy
from leadflow.rules.registration import known_channels

# Reasons staging notes in the row's `reasons` (a JSON list, stored as text on both databases).
STAGED: tuple[str, ...] = tuple(p.value for p in Problem)
# A row its reader could not split: its fields are not what was written, so they are not judged (no
# `missing_field` for a line that is not JSON): these reasons alone quarantine it.
UNREADABLE: tuple[str, ...] = (Problem.BAD_JSON.value, Problem.BAD_QUOTE.value, Problem.RAGGED.value)
NOTED_SQL = "CASE WHEN reasons IS NULL OR CAST(reasons AS TEXT) = '[]' THEN NULL ELSE CAST(reasons AS TEXT) END"
BAD_TIME_SQL = f"CASE WHEN CAST(reasons AS TEXT) LIKE '%\"{Problem.BAD_TIME.value}\"%' THEN 1 ELSE 0 END"


SELECT: dict[str, str] = {
    "channel": "channel",
    "channel_given": CHANNEL_GIVEN_SQL,
    "registered_at": given("registered_at"),  # only tested for NULL (see `given`)
    "registered_by": given("registered_by"),  # likewise: by_known says whether it names a known person
    "by_known": "by_known",
    "phone_kind": "phone_kind",
    "amount_status": "amount_status",
    "noted": NOTED_SQL,
    "bad_time": BAD_TIME_SQL,
}
REQUIRED: tuple[str, ...] = (
    "channel", "channel_raw", "registered_at", "registered_by", "by_known", "phone_kind", "amount_status", "reasons",
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
            column="registered_at", row_condition=Column("bad_time") == 0,
            description="registered_at is given (R-REG-1).", meta={"reason": "missing_field"}),
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
        E.ExpectColumnValuesToBeNull(
            column="noted", description="Nothing was noted against the row when it was read and staged: a time "
            "given is a time from 1970 to 2099, every value fits its column, quotes close, the cells line up with "
            "the header, a JSON line is an object.",
            meta={"reason": "noted", "reasons_from": "noted", "reasons": list(STAGED), "decisive": list(UNREADABLE)}),
    ])
