"""Labels people read beside ids: `张伟 (s12)`, `营销一部 (d1)`, and customers by id and reference (issue 9.4).

One set-based lookup per run: every id a report or artifact shows, in at most three queries. A customer is shown
by id and its registration reference, never by name or phone: a Prefect artifact lies outside the store, so
`leadflow forget` could not erase a name written there (PIPL art. 47).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.engine import Connection

from leadflow.privacy import mask_phones_in_text
from leadflow.store.models import Customer, Department, Person, Registration

CHUNK = 5000  # ids per IN list: far below SQLite's bound on variables


@dataclass(frozen=True)
class Labels:
    """Display labels by id; an id not on record shows as itself."""

    people: dict[str, str] = field(default_factory=dict)
    departments: dict[str, str] = field(default_factory=dict)
    customers: dict[int, str] = field(default_factory=dict)
    tiers: dict[int, str] = field(default_factory=dict)  # the customer's tier now
    person_departments: dict[str, str | None] = field(default_factory=dict)

    def person(self, pid: str | None, none: str = "-") -> str:
        return none if pid is None else self.people.get(pid, pid)

    def department(self, did: str | None, none: str = "-") -> str:
        return none if did is None else self.departments.get(did, did)

    def customer(self, cid: int | None, none: str = "-") -> str:
        return none if cid is None else self.customers.get(cid, str(cid))


def _label(name: str | None, ident) -> str:
    return f"{name} ({ident})" if name and name != str(ident) else str(ident)


def load_labels(conn: Connection, people: Iterable[str | None] = (), departments: Iterable[str | None] = (),
                customers: Iterable[int | None] = ()) -> Labels:
    """Labels for the given ids: people `name (id)` (and their departments), departments `name (id)`, customers
    `id (ref …)` with the registration reference (`ref`, else the channel's `external_ref` of its first
    registration), masked, and their tiers.

    One query per kind asked for (customers in chunks of 5,000), whatever the number of ids; unknown ids are left out."""
    pids = sorted({p for p in people if p})
    dids = sorted({d for d in departments if d})
    cids = sorted({c for c in customers if c is not None})
    out = Labels()
    if pids:
        rows = conn.execute(select(Person.id, Person.name, Person.department_id).where(Person.id.in_(pids))).all()
        out.people.update({i: _label(n, i) for i, n, _ in rows})
        out.person_departments.update({i: d for i, _, d in rows})
    if dids:
        rows = conn.execute(select(Department.id, Department.name).where(Department.id.in_(dids))).all()
        out.departments.update({i: _label(n, i) for i, n in rows})
    if cids:
        rows = [r for i in range(0, len(cids), CHUNK) for r in conn.execute(
            select(Customer.id, Customer.ref, Customer.tier, Registration.external_ref)
            .join(Registration, Registration.customer_id == Customer.id, isouter=True)
            .where(Customer.id.in_(cids[i:i + CHUNK])).order_by(Customer.id, Registration.id))]
        refs: dict[int, str | None] = {}
        for cid, ref, tier, external in rows:
            out.tiers[cid] = tier
            if not refs.get(cid):
                refs[cid] = ref or external
        # R-REG-7: a reference typed by the front desk could hold a phone
        out.customers.update({c: mask_phones_in_text(f"{c} (ref {r})") if r else str(c) for c, r in refs.items()})
    return out


def explanation_people(explanation: dict | None) -> set[str]:
    """Every person an allocation explanation names (chosen, considered, excluded)."""
    expl = explanation or {}
    found = {c["person"] for c in expl.get("considered", []) if c.get("person")}
    found |= set(expl.get("excluded") or []) | set(expl.get("paused_rounds_used") or [])
    return found | ({expl["chosen"]} if expl.get("chosen") else set())
