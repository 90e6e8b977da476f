"""Naming customers in sets: by customer id, registration reference, the channel's external reference, or phone."""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from leadflow.store.models import Customer, CustomerPhone, Registration

CHUNK = 5000
# Built once: every delivery names its customers, and building a statement costs more than running it.
_BY_ID = select(Customer.id).where(Customer.id.in_(bindparam("ids", expanding=True)))
_BY_REF = (select(Registration.ref, Registration.external_ref, Registration.customer_id)
           .where((Registration.ref.in_(bindparam("keys", expanding=True)))
                  | (Registration.external_ref.in_(bindparam("keys2", expanding=True))),
                  Registration.customer_id.is_not(None)).order_by(Registration.id))
_BY_PHONE = select(CustomerPhone.phone, CustomerPhone.customer_id).where(
    CustomerPhone.phone.in_(bindparam("phones", expanding=True)))


def _chunks(values: list, size: int = CHUNK):
    for i in range(0, len(values), size):
        yield values[i:i + size]


def resolve_keys(conn: Connection, keys: Iterable[str]) -> dict[str, int]:
    """key -> customer id, for every key that names a known customer; a few queries per 5,000 keys.

    A whole number is a customer id first; otherwise (or when no such customer exists) a key is a
    registration's reference (a scenario's `ref`) or the channel's own reference (`external_ref`).
    """
    keys = sorted({k for k in keys if k})
    found: dict[str, int] = {}
    numbers = [int(k) for k in keys if k.isdigit() and len(k) < 10]
    for chunk in _chunks(numbers):
        for (cid,) in conn.execute(_BY_ID, {"ids": chunk}):
            found[str(cid)] = cid
    rest = [k for k in keys if k not in found]
    for chunk in _chunks(rest):
        rows = conn.execute(_BY_REF, {"keys": chunk, "keys2": chunk})
        wanted = set(chunk)
        for ref, external, cid in rows:
            for k in (ref, external):
                if k in wanted and k not in found:
                    found[k] = cid
    return found


def resolve_phones(conn: Connection, phones: Iterable[str]) -> dict[str, int]:
    """normalised phone -> customer id (primary numbers, aliases and household links, R-REG-5/6)."""
    phones = sorted({p for p in phones if p})
    found: dict[str, int] = {}
    for chunk in _chunks(phones):
        found.update(dict(conn.execute(_BY_PHONE, {"phones": chunk}).all()))
    return found


def resolve_customer(conn: Connection, key: str) -> int | None:
    """One customer by id, reference or phone (`leadflow dispute`, `leadflow record --customer`)."""
    from leadflow.events.normalise import customer_reference

    shown, phone = customer_reference(key)
    if phone is not None:
        return resolve_phones(conn, [phone]).get(phone)
    return resolve_keys(conn, [shown]).get(shown) if shown else None
