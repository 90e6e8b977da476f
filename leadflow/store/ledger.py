"""The append-only ledger (R-ALLOC-7): entries are inserted in bulk and never updated."""
from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Connection

from leadflow import failpoints

from leadflow.store.bulk import insert_rows
from leadflow.store.models import Ledger


def entry(at: dt.datetime, rule_id: str, action: str, reason: str, *, customer_id: int | None = None,
          person_id: str | None = None, from_person_id: str | None = None, department_id: str | None = None,
          explanation: dict | None = None) -> dict:
    return {"at": at, "rule_id": rule_id, "action": action, "reason": reason, "customer_id": customer_id,
            "person_id": person_id, "from_person_id": from_person_id, "department_id": department_id,
            "explanation": explanation}


def append(conn: Connection, entries: list[dict], policy_version: str, flow_run_id: str | None) -> int:
    if not entries:
        return 0
    same = {"policy_version": policy_version, "flow_run_id": flow_run_id,
            "recorded_at": dt.datetime.now(dt.timezone.utc)}  # one value for the whole append, not copied per row
    written = insert_rows(conn, Ledger.__table__, entries, same=same)  # COPY on PostgreSQL for large batches
    failpoints.hit("ledger.write")
    return written
