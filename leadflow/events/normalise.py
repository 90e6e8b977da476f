"""One delivered event row -> an event record, or the reason it is refused (pure: no I/O).

A row is a mapping of canonical columns (see `leadflow.events.readers.COLUMNS`): `type`, `at`, `customer`,
`by`, `step`, `amount`, `person`, `kind`, `reason`, `to`, `with_customer`, `relation`, `phone`, `share`,
`knowingly`, `department`, `event_id`, `recorded_at`, plus `row_number`. Values are as written (strings),
or native values from a scenario / the Python API.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from leadflow.events.kinds import CHOICES, EVENT_FIELDS, LIFECYCLE_TYPES, PERSON_FIELDS, RECORD_KINDS, Refusal
from leadflow.intake.cells import Problem, strip_controls
from leadflow.policy import Policy
from leadflow.rules.registration import (
    mask_phone, mask_phones_in_text, normalise_phone, parse_amount, parse_registered_at, parse_target,
)
from leadflow.store.models import Event

# A time a little after the delivery is a clock skew between systems, not a record from the future.
CLOCK_SKEW = dt.timedelta(minutes=5)
_TYPE_ALIASES = {"联系": "contact", "首次联系": "contact", "录入crm": "crm_entry", "crm": "crm_entry",
                 "来电登记": "call_register", "abcd表": "abcd_entry", "跟进": "follow_up", "销售步骤": "sales_step",
                 "成交": "deal", "重新申请": "reapply", "转交": "hand_on", "无效": "invalid", "关联号码": "link",
                 "请假": "leave", "违规": "violation", "报表迟交": "late_table", "交换": "exchange",
                 "协助": "help", "认领": "claim", "离职": "depart", "争议": "dispute"}


# The event's text columns and their sizes: a longer value refuses its row (`too_long`) and is kept cut to fit.
_LIMITS = {c: Event.__table__.c[c].type.length
           for c in ("source_event_id", "customer_key", "other_customer_key", "by", "person", "department")}
# The reader's problems, most telling first: a row the reader could not split cannot be judged further.
_READER_PROBLEMS = (Problem.BAD_JSON, Problem.BAD_QUOTE, Problem.RAGGED, Problem.BAD_TEXT, Problem.TOO_LONG)


def text(v: Any) -> str | None:
    """A cell as trimmed text without control characters, None when blank."""
    if v is None:
        return None
    s = strip_controls(str(v)).strip()
    return s or None


def _cut(out: dict) -> str | None:
    """Cut the record's values to their columns; the first field that was too long, or None."""
    first = None
    for column, limit in _LIMITS.items():
        value = out[column]
        if isinstance(value, str) and len(value) > limit:
            out[column] = value[:limit]
            first = first or column
    return first


def event_type(raw: Any) -> str | None:
    """The canonical type of a row (`contact`, `CRM_Entry`, `crm entry`, 跟进 …), None when unknown."""
    t = text(raw)
    if t is None:
        return None
    key = t.casefold().replace("-", "_").replace(" ", "_")
    if key in EVENT_FIELDS and key not in ("register", "tick"):
        return key
    return _TYPE_ALIASES.get(key) or _TYPE_ALIASES.get(t.casefold())


def customer_reference(raw: Any) -> tuple[str | None, str | None]:
    """(key as stored, normalised phone): a phone-shaped name is kept only masked, its number apart (R-REG-7).

    A name that is not one phone but holds one (an extension, two numbers) is kept masked, without a number."""
    key = text(raw)
    if key is None:
        return None, None
    phone, kind = normalise_phone(key)
    if kind in ("mobile", "landline"):
        return mask_phone(phone), phone
    return mask_phones_in_text(key), None


def dedupe_key(e: dict) -> str:
    """The event's identity: the source's own event id where it has one, else (type, customer or person, by, at).

    A customer named by phone is identified by its normalised number, so the same record written
    `138 0013 8000` or `13800138000` is one event.
    """
    if e.get("source_event_id"):
        basis = f"id|{e['type']}|{e['source_event_id']}"
    else:
        subject = e.get("phone") if e.get("customer_key") and e.get("phone") and e["type"] != "link" \
            else (e.get("customer_key") or e.get("person") or e.get("department") or "")
        at = e["at"].astimezone(dt.timezone.utc).isoformat() if e.get("at") else ""
        basis = f"{e['type']}|{subject}|{e.get('by') or ''}|{at}"
    return hashlib.sha256(basis.encode()).hexdigest()[:40]


def normalise_event(row: dict, *, as_of: dt.datetime, policy: Policy, people: set[str],
                    departments: set[str]) -> dict:
    """A row -> a dict for the `events` table, with `status`/`reason` set when it is refused at once.

    Refusal reasons (`leadflow.events.kinds.Refusal`): bad_json, bad_quote, ragged, too_long (what the
    file reader found, the row's `problems`; too_long also for a value longer than its column), unknown_type,
    missing_field, bad_time (an `at` or `recorded_at` given that is not a time between 1970 and 2099),
    future_time (done after it was recorded, beyond 5 minutes of clock skew), too_late (R-SLA-7: a record
    that reached LeadFlow more than `sla.max_lateness_days` after it was made), unknown_person,
    unknown_department, bad_value, amount, phone, share.
    `recorded_at` defaults to `as_of` (the delivery). Never raises for a bad row.
    """
    kind = event_type(row.get("type"))
    customer_key, phone = customer_reference(row.get("customer"))
    other_key, _ = customer_reference(row.get("with_customer"))
    out = {
        "row_number": int(row.get("row_number") or 0), "source_event_id": text(row.get("event_id")),
        "type": kind, "at": None, "recorded_at": as_of, "customer_key": customer_key, "phone": phone,
        "other_customer_key": other_key, "by": text(row.get("by")),
        "person": text(row.get("person")) or text(row.get("to")), "department": text(row.get("department")),
        "fields": {}, "status": None, "reason": None,
    }

    def refuse(reason: Refusal, detail: str | None = None) -> dict:
        out["status"], out["reason"] = "refused", reason.value
        if detail:
            out["fields"] = {**out["fields"], "problem": detail}
        return out

    long_field = _cut(out)
    problems = set(row.get("problems") or ())
    for problem in _READER_PROBLEMS:
        if problem.value in problems:
            return refuse(Refusal(problem.value))
    if long_field:
        return refuse(Refusal.TOO_LONG, long_field)
    if kind is None or kind not in LIFECYCLE_TYPES:
        return refuse(Refusal.UNKNOWN_TYPE, mask_phones_in_text(f"type {text(row.get('type'))!r}"[:120]))
    for name, key in (("customer", customer_key), ("with_customer", other_key)):
        if key is not None and key != text(row.get(name)) and not (name == "customer" and phone):
            # R-REG-2: a number with an extension, or two numbers, is not one customer's phone
            return refuse(Refusal.PHONE, name)
    required, optional = EVENT_FIELDS[kind]
    for name in required:
        if text(row.get(name)) is None:
            return refuse(Refusal.MISSING_FIELD, name)
    at = parse_registered_at(row.get("at"), policy.timezone) if text(row.get("at")) is not None \
        or isinstance(row.get("at"), dt.datetime) else None
    if at is None:
        return refuse(Refusal.MISSING_FIELD if text(row.get("at")) is None else Refusal.BAD_TIME, "at")
    out["at"] = at
    if row.get("recorded_at") not in (None, ""):
        recorded = parse_registered_at(row.get("recorded_at"), policy.timezone)
        if recorded is None:
            return refuse(Refusal.BAD_TIME, "recorded_at")
        out["recorded_at"] = min(recorded, as_of)
    if at > out["recorded_at"] + CLOCK_SKEW:
        return refuse(Refusal.FUTURE_TIME, "at")
    if kind in RECORD_KINDS and out["recorded_at"] - at > dt.timedelta(days=policy.sla.max_lateness_days):
        return refuse(Refusal.TOO_LATE, "recorded_at")
    for name in PERSON_FIELDS:
        pid = text(row.get(name))
        if pid is not None and pid not in people:
            return refuse(Refusal.UNKNOWN_PERSON, name)
    if kind == "late_table" and out["department"] not in departments:
        return refuse(Refusal.UNKNOWN_DEPARTMENT, "department")
    fields: dict[str, Any] = {}
    for (k, name), allowed in CHOICES.items():
        if k == kind:
            value = text(row.get(name))
            if value not in allowed:
                return refuse(Refusal.BAD_VALUE, name)
            fields[name] = value
    if kind == "sales_step":
        try:
            step = int(float(str(row.get("step")).strip()))
        except ValueError:
            step = None
        if step not in (1, 2, 3, 4, 5, 6):
            return refuse(Refusal.BAD_VALUE, "step")
        fields["step"] = step
    if kind in ("deal", "reapply", "hand_on") and text(row.get("amount")) is not None:
        amount, status = parse_amount(row.get("amount"), cap=policy.registration.amount_cap_yuan)
        if status != "ok" or amount is None:
            return refuse(Refusal.AMOUNT, "amount")
        fields["amount"] = amount
    if kind == "link":
        linked, phone_kind = normalise_phone(text(row.get("phone")))
        if phone_kind not in ("mobile", "landline"):
            return refuse(Refusal.PHONE, "phone")
        if out["phone"] is not None:  # a link names its customer by id or reference, the number is the link
            return refuse(Refusal.BAD_VALUE, "customer")
        out["phone"] = linked
    if kind == "help":
        try:
            share = float(str(row.get("share")).strip().rstrip("%")) / (100 if "%" in str(row.get("share")) else 1)
        except ValueError:
            share = -1.0
        if not 0 < share < 1:
            return refuse(Refusal.SHARE, "share")
        fields["share"] = share
    if kind == "claim":
        fields["knowingly"] = bool(parse_target(row.get("knowingly"))) if text(row.get("knowingly")) else False
    if kind == "hand_on":
        out["person"] = text(row.get("to"))
    out["fields"] = fields
    return out
