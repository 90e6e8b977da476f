"""Lifecycle events (contacts, entries, deals, leaves, …): how they enter LeadFlow, in production and replay.

- `kinds`: the event types, their fields and statuses;
- `normalise`: one delivered row -> an event record or its refusal reason (pure);
- `readers`: event files (CSV, JSON Lines, .xlsx) with their Chinese header aliases;
- `resolve`: naming customers (id, registration reference, external reference, phone) in sets;
- `apply`: one handler per event type, the same for `leadflow simulate` and production;
- `record`: the stage — stage, dedupe, resolve, apply, account (rows in = applied + duplicate + waiting + refused).

Entry points that also run the clock (tick before, pool offer after) are in `leadflow.engine`.
"""
