"""The flows' parameter types: no phone number can enter Prefect as a parameter (R-REG-7, issue 9 finding 2).

Prefect builds each deployment's `parameter_openapi_schema` from the flow's signature, and its server checks a
new run's parameters against it (`enforce_parameter_schema`, on by default) before the run exists: a refused
run is never stored, so its parameters are in no run, name, log or event. The UI's Custom run form is checked
by the same server code (`/ui/schemas/validate`).

What is refused is what `leadflow.privacy` masks, in the same words: its `PHONE` found outside its
`NOT_PHONES` tokens (dates, times, UUIDs, digests), scanned as `mask_phones_in_text` scans. A number with 11
digits or more is refused too (a customer id never has that many; a mobile has 11).

The refusal is a JSON-schema `if`/`then` whose `then` is a `const` of the sentence below: the validator's
message is then "'<the sentence>' was expected", which names the safe alternatives and never echoes the
value (a `pattern` or `not` error quotes it: "'150…' does not match …"). Only the JSON schema carries this:
a direct Python call (`intake_flow(path=…)`) is not checked here, and each flow keeps its own guard.
One echo is left, to the browser only: the UI form also checks formats, so a phone typed as `as_of` gets, beside
the sentence, "'…' is not valid under any of the given schemas" (it is not a time); run creation does not.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import Field

from leadflow.privacy import NOT_PHONES, PHONE

PHONE_REFUSAL = ("a phone number is never a parameter: give the customer id, the registration reference, or run "
                 "`leadflow dispute PHONE` on the LeadFlow machine (it resolves the number locally)")

# A string holding a phone as mask_phones_in_text finds one. JSON-schema `pattern` is a search; `^` makes it
# scan from the start as re.sub does: at each position a NOT_PHONES token is stepped over whole (an atomic
# group, written as a captured lookahead and its backreference so JavaScript reads it too), else one
# character; a phone may start only where no such token does. Valid in Python's `re` and in JavaScript.
PHONE_PATTERN = rf"^(?:(?=({NOT_PHONES}))\1|(?!{NOT_PHONES})[\s\S])*?(?!{NOT_PHONES}){PHONE}"
ELEVEN_DIGITS = 10 ** 10

PHONE_SHAPED_VALUE = {"anyOf": [{"type": "string", "pattern": PHONE_PATTERN},
                                {"type": "number", "not": {"exclusiveMinimum": -ELEVEN_DIGITS,
                                                           "exclusiveMaximum": ELEVEN_DIGITS}}]}
NO_PHONE = {"if": PHONE_SHAPED_VALUE, "then": {"const": PHONE_REFUSAL}}

PLAIN_VALUE = ("a plain value (text, a number, true or false): an event's fields are the columns of an event "
               "file")
# An event's field: a plain value without a phone (a nested value is refused whole, so no phone hides in it).
_EVENT_FIELD = {"allOf": [NO_PHONE, {"if": {"type": ["object", "array"]}, "then": {"const": PLAIN_VALUE}}]}


def _no_phone(description: str, refusal: dict = NO_PHONE) -> Any:
    # The description goes in json_schema_extra: Prefect passes the docstring's (usually None) as the Field's.
    # The check sits on the field itself, never inside a branch of its `anyOf` (`X | None`): a failing branch
    # makes the whole anyOf fail, and that message quotes the value.
    return Field(json_schema_extra={"description": f"{description} {PHONE_REFUSAL[0].upper()}{PHONE_REFUSAL[1:]}.",
                                    **refusal})


NO_PHONE_IN_LIST = {"if": {"type": "array", "contains": PHONE_SHAPED_VALUE}, "then": {"const": PHONE_REFUSAL}}

CustomerRef = Annotated[int | str, _no_phone("The customer: its id, or its registration reference.")]
PersonIds = Annotated[list[str] | None, _no_phone("People by id.", NO_PHONE_IN_LIST)]
FilePath = Annotated[str, _no_phone("A file's path on the machine that runs the flow.")]
Folder = Annotated[str, _no_phone("A folder's path on the machine that runs the flow.")]
Operator = Annotated[str | None, _no_phone("Who delivers it (a login name), for the ledger.")]
AsOf = Annotated[dt.datetime | None, _no_phone("The time to run at, with its UTC offset (default now).")]
Time = Annotated[dt.datetime, _no_phone("A time, with its UTC offset.")]
Event = Annotated[dict[str, Any], Field(json_schema_extra={"propertyNames": NO_PHONE,
                                                           "additionalProperties": _EVENT_FIELD})]
Events = Annotated[list[Event], _no_phone(
    "Events, each a mapping of `type`, `at`, `customer` (id or registration reference), `by`, and the type's "
    "fields (the columns of an event file).")]
