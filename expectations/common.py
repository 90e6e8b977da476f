"""Expectations several stage suites share: a decided registration, with a customer, a phone, a channel."""
from __future__ import annotations

import great_expectations as gx

from expectations import DECIDED_STATUSES, PHONE_KINDS_VALID
from leadflow.policy import Policy
from leadflow.rules.registration import known_channels


def decided(with_phone: bool = True) -> list:
    """The row is an accepted/attached registration of a customer, registered at a known time."""
    E = gx.expectations
    out = [
        E.ExpectColumnValuesToBeInSet(column="status", value_set=list(DECIDED_STATUSES),
                                      description="The registration was accepted or attached.",
                                      meta={"reason": "not_accepted"}),
        E.ExpectColumnValuesToNotBeNull(column="customer_id", description="The registration has a customer.",
                                        meta={"reason": "no_customer"}),
    ]
    if with_phone:
        out.append(E.ExpectColumnValuesToBeInSet(column="phone_kind", value_set=list(PHONE_KINDS_VALID),
                                                 description="The phone is a mobile or a landline.",
                                                 meta={"reason": "phone_format"}))
    out.append(E.ExpectColumnValuesToNotBeNull(column="registered_at", description="registered_at is given.",
                                               meta={"reason": "missing_field"}))
    return out


def known_channel(policy: Policy) -> list:
    """The channel is given and is one of the policy's channel ids (R-REG-1, R-REG-8)."""
    E = gx.expectations
    return [
        E.ExpectColumnValuesToNotBeNull(column="channel", description="The channel is given.",
                                        meta={"reason": "channel"}),
        E.ExpectColumnValuesToBeInSet(column="channel", value_set=list(known_channels(policy)),
                                      description="The channel is a known channel id.", meta={"reason": "channel"}),
    ]
