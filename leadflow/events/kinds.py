"""Event types (SCENARIOS.md, "Event types"), their fields, and what can become of a delivered event row."""
from __future__ import annotations

from enum import StrEnum

# event type -> (required fields, optional fields); `at` and `type` are implied.
EVENT_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "register": (("ref", "channel", "phone", "by"),
                 ("name", "amount", "inquiry", "target", "region", "external_ref")),
    "contact": (("customer",), ("by",)),
    "crm_entry": (("customer",), ("by",)),
    "call_register": (("customer",), ("by",)),
    "abcd_entry": (("customer",), ("by",)),
    "follow_up": (("customer",), ("by",)),
    "sales_step": (("customer", "step"), ("by",)),
    "deal": (("customer", "amount"), ("by",)),
    "reapply": (("customer", "amount"), ("by",)),
    "hand_on": (("customer", "to"), ("amount", "by")),
    "invalid": (("customer", "reason"), ("by",)),
    "link": (("customer", "phone", "relation"), ("by",)),
    "leave": (("person", "kind"), ()),
    "violation": (("person", "kind"), ()),
    "late_table": (("department",), ()),
    "exchange": (("customer", "with_customer"), ("by",)),
    "help": (("customer", "person", "share"), ("by",)),  # R-CONV-4 help by agreement (beyond SCENARIOS.md)
    "claim": (("customer", "person"), ("knowingly",)),
    "depart": (("person",), ()),
    "dispute": (("customer",), ()),
    "tick": ((), ()),
}
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("leave", "kind"): ("personal", "sick"),
    ("violation", "kind"): ("company_rule", "malicious_omission"),
    ("link", "relation"): ("alias", "household"),
    ("invalid", "reason"): ("unreachable", "household_use", "advertising", "duplicate_person", "non_target",
                            "no_intent"),
}
PERSON_FIELDS = ("by", "person", "to")
# Records a salesperson makes about a customer (R-SLA-1..5, R-CONV-2/3); they may arrive late (R-SLA-7).
RECORD_KINDS = ("contact", "crm_entry", "call_register", "abcd_entry", "follow_up", "sales_step")
# What only the customer's owner may do; anyone else's is refused `not_owner`.
OWNER_ACTIONS = ("invalid", "reapply", "exchange")
# Events that come from outside the registration intake (a `register` is a registration row, INTAKE.md).
LIFECYCLE_TYPES = tuple(t for t in EVENT_FIELDS if t not in ("register", "tick"))


class EventStatus(StrEnum):
    """What became of a delivered event row: rows in = applied + duplicate + waiting + refused."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # the same event was delivered before (never stored twice)
    WAITING = "waiting"  # names a customer not known yet; retried on every run until the waiting time ends
    REFUSED = "refused"  # with a reason


class Refusal(StrEnum):
    """Why an event row is refused (stored on the event, shown per row)."""

    UNKNOWN_TYPE = "unknown_type"
    MISSING_FIELD = "missing_field"
    BAD_TIME = "bad_time"
    FUTURE_TIME = "future_time"
    TOO_LATE = "too_late"  # R-SLA-7: a record later than the policy's maximum lateness
    UNKNOWN_PERSON = "unknown_person"
    UNKNOWN_DEPARTMENT = "unknown_department"
    UNKNOWN_CUSTOMER = "unknown_customer"  # still unknown when the waiting time ran out
    BAD_VALUE = "bad_value"  # a kind, reason, relation or step outside its choices
    AMOUNT = "amount"
    PHONE = "phone"  # a link's number is not a phone number
    SHARE = "share"
    NOT_OWNER = "not_owner"  # an owner action by someone else
    NOT_MANAGER = "not_manager"  # a hand-on by anyone but the department's manager
    NO_OWNER = "no_owner"  # a record with no `by` for a customer nobody owns
    RULE = "rule"  # the rule refused it (the ledger says why)
    HELD = "held"  # R-VAL-2: the customer's record is on hold for this stage until it is fixed
    # What the file reader found in the row (leadflow.intake.cells.Problem): the row cannot be taken as written
    TOO_LONG = "too_long"  # a value longer than its field holds
    BAD_QUOTE = "bad_quote"  # a quote opened in the row and never closed
    BAD_TEXT = "bad_text"  # a value holding a lone surrogate (half an emoji): kept with U+FFFD in its place
    RAGGED = "ragged"  # a CSV row whose cells do not line up with the header
    BAD_JSON = "bad_json"  # a JSON Lines line that is not a JSON object
