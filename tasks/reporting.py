"""Artifacts people read in the Prefect UI; phones are always masked (R-REG-7)."""
from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections import Counter

from tasks.masked import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Text, cast, func, select

from leadflow.names import Labels, explanation_people, load_labels
from leadflow.rules.registration import mask_phones_in_text
from leadflow.store.models import Registration
from tasks.context import stage_ctx



def publishing(name: str):
    """A publishing task (artifact, notification): it runs after the data committed, so it never fails the
    run (issue 8.5). A failure is logged as one masked sentence saying the data is committed; the task
    returns None."""
    def wrap(fn):
        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - reporting must not undo the truth of a committed run
                from prefect import get_run_logger

                get_run_logger().warning(mask_phones_in_text(
                    f"{name} could not be published ({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}); "
                    "the data of this run is committed and correct: only this report is missing."))
                return None
        # NO_CACHE: a report is a side effect, never a cached result (and its inputs are not hashed)
        return task(name=name, retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)(guarded)
    return wrap


def _key(text: str) -> str:
    """Artifact keys: lowercase ASCII letters, digits and dashes (Prefect refuses anything else, so a file
    named in Chinese gets a short digest of its name instead of failing a run whose data has committed)."""
    import hashlib

    key = "".join(c if c.isascii() and c.isalnum() else "-" for c in text.lower())
    key = re.sub(r"-+", "-", key).strip("-")
    if any(not c.isascii() for c in text):
        key = f"{key[:40]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}".strip("-")
    return key[:60] or "run"


def when(t: dt.datetime | str | None) -> str:
    """A time as a person reads it in an artifact: business time to the minute, with its offset (issue 9.7)."""
    from leadflow.clock import business_time_label

    if t is None:
        return "-"
    return business_time_label(dt.datetime.fromisoformat(t) if isinstance(t, str) else t, stage_ctx().policy)


def labels_for(people=(), departments=(), customers=()) -> Labels:
    """One set-based lookup of every id an artifact shows (issue 9.4)."""
    with stage_ctx().engine.connect() as conn:
        return load_labels(conn, people, departments, customers)


def named(text: str, labels: Labels) -> str:
    """`text` with each person's and department's id (a whole word) shown as its label, phones masked."""
    known = {**labels.departments, **labels.people}
    if not known:
        return mask_phones_in_text(text)
    pattern = re.compile(r"(?<![\w(])(" + "|".join(re.escape(k) for k in sorted(known, key=len, reverse=True))
                         + r")(?![\w)])")
    return mask_phones_in_text(pattern.sub(lambda m: known[m.group(1)], text))


@publishing("publish validation summary")
def publish_validation(gate) -> None:
    reasons = Counter(r for rs in gate.quarantined.values() for r in rs)
    lines = [f"# Validation: {gate.stage} suite", "",
             f"rows checked **{gate.rows_in}**, passed **{len(gate.passed)}**, "
             f"quarantined **{len(gate.quarantined)}**", ""]
    if gate.batch_error:
        lines += [f"**The batch failed as a whole (R-VAL-3):** {gate.batch_error}", ""]
    lines += ["| reason | rows |", "|---|---|"] + [f"| {r} | {n} |" for r, n in sorted(reasons.items())]
    lines += ["", f"GX Data Docs: `{gate.docs_path}`" if gate.docs_path else "GX Data Docs: not built"]
    create_markdown_artifact("\n".join(lines), key=_key(f"validation-{gate.stage}"),
                             description="R-VAL-1..3 validation before the stage")


@publishing("publish intake summary")
def publish_intake(source: str, batch_id: str | list[str], summary: dict) -> None:
    """The file's rows by outcome, channel and reasons (one row per combination, counted by the database, so a
    file of a million rows is a table of a few dozen), with rows in = accepted + attached + quarantined."""
    ctx = stage_ctx()
    batches = [batch_id] if isinstance(batch_id, str) else list(batch_id)
    rt = Registration.__table__
    reasons = cast(rt.c.reasons, Text)  # JSON has no equality on PostgreSQL: grouped as its text
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(rt.c.status, rt.c.channel, reasons, func.count())
                            .where(rt.c.batch_id.in_(batches)).group_by(rt.c.status, rt.c.channel, reasons)).all()
    by: Counter = Counter()
    for s, c, r, n in rows:
        by[(s, c or "(unknown)", ", ".join(sorted(json.loads(r) if r else [])) or "-")] += n
    table = [{"outcome": s, "channel": c, "reasons": r, "rows": n} for (s, c, r), n in sorted(by.items())]
    create_table_artifact(table, key=_key(f"intake-{source}"),
                          description=(f"{source}: rows in {summary['rows_in']} = accepted {summary['accepted']} "
                                       f"+ attached {summary['attached']} + quarantined {summary['quarantined']}"
                                       + (" (already registered; the pool was offered again)"
                                          if summary.get("already_registered") else "")))


def considered(explanation: dict | None, labels: Labels) -> str:
    """Who was considered for a lead and why each was passed over, in the people's names (R-ALLOC-2..5)."""
    expl = explanation or {}
    if expl.get("rule") == "R-ALLOC-6":
        return "nobody else: a replacement owed is served ahead of the rotation (R-ALLOC-6)"
    parts = []
    for c in expl.get("considered", []):
        who = labels.person(c["person"]) if c.get("person") else labels.department(c.get("department"))
        parts.append(f"{who}: {'chosen' if c.get('chosen') else c.get('skipped')}")
    if expl.get("excluded"):
        parts.append("excluded: " + ", ".join(labels.person(p) for p in expl["excluded"]))
    return "considered " + "; ".join(parts) if parts else "considered nobody: no one in the org chart could hold it"


# The rows of any list an artifact shows (issue 10): a stage that touched 200,000 leads publishes its count and its
# first 200 — Prefect's UI and API are not a report; the store, the ledger and `leadflow report` hold every row.
SHOWN_ROWS = 200


def shown(items: list, see_all: str) -> tuple[list, str]:
    """The first SHOWN_ROWS of `items` (already in the order to show), and what the artifact's description adds
    when there were more: "; the first 200 of 201,096 shown: <see_all>" (else "")."""
    if len(items) <= SHOWN_ROWS:
        return items, ""
    return items[:SHOWN_ROWS], f"; the first {SHOWN_ROWS} of {len(items):,} shown: {see_all}"


@publishing("publish allocation table")
def publish_allocations(title: str, decisions: list[dict], total: int | None = None) -> int:
    """R-ALLOC-7: the published allocation, from the ledger entries the stage wrote: per lead the customer (id
    and registration reference, never a name or phone), owner and department by name, the deciding rule, its
    reason, and who was considered and why each was skipped. Returns the number of rows.

    `total`: how many allocations there were when `decisions` is a sample of them (a big file): the artifact
    says so, and how to see them all. At most SHOWN_ROWS rows are published, whoever calls: a pool offer of a
    hundred thousand leads is a short table and the count, never a hundred-thousand-row artifact."""
    if not decisions:
        return 0
    total = max(total or 0, len(decisions))
    decisions = decisions[:SHOWN_ROWS]
    people = {p for d in decisions for p in explanation_people(d.get("explanation"))}
    people |= {p for d in decisions for p in (d.get("person_id"), d.get("from_person_id")) if p}
    depts = {d.get("department_id") for d in decisions}
    depts |= {c.get("department") for d in decisions for c in (d.get("explanation") or {}).get("considered", [])}
    labels = labels_for(people, depts, [d.get("customer_id") for d in decisions])
    moved = any(d.get("from_person_id") for d in decisions)
    table = []
    for d in decisions:
        row = {"customer": labels.customer(d.get("customer_id")),
               "tier": (d.get("explanation") or {}).get("tier") or labels.tiers.get(d.get("customer_id"), "-"),
               "owner": labels.person(d.get("person_id"), "(company pool)"),
               "department": labels.department(d.get("department_id"))}
        if moved:
            row["previous owner"] = labels.person(d.get("from_person_id"))
        row.update({"rule": d["rule_id"], "why": named(d["reason"], labels),
                    "explanation": considered(d.get("explanation"), labels)})
        table.append(row)
    at = decisions[0].get("at")
    more = ""
    if total is not None and total > len(table):
        more = (f"; the first {len(table)} of {total} shown. Every allocation is on the ledger: "
                "`leadflow report allocations --since DATE --until DATE --format csv` lists them all")
    create_table_artifact(table, key=_key(f"allocation-{title}"),
                          description=mask_phones_in_text(f"Allocations: {title}, {total or len(table)} leads"
                                                          + (f", as of {when(at)}" if at else "") + more))
    return len(table)


def _table(rows: list[dict], key: str, description: str) -> None:
    create_table_artifact(rows or [{"result": "nothing to report"}], key=_key(key), description=description)


@publishing("publish SLA breaches")
def publish_breaches(summary: dict) -> None:
    """R-SLA-1..4: one row per breach, owner and department by name, the deadline in business time."""
    found, more = shown(summary.get("rows", []), "`leadflow report breaches --since DATE --until DATE --format csv` "
                        "lists them all")
    labels = labels_for([r["person_id"] for r in found], (), [r["customer_id"] for r in found])
    depts = labels_for((), labels.person_departments.values())
    rows = [{"customer": labels.customer(r["customer_id"]), "owner": labels.person(r["person_id"]),
             "department": depts.department(labels.person_departments.get(r["person_id"])),
             "rule": r["rule_id"], "due": when(r.get("at"))} for r in found]
    _table(rows, "sla-breaches",
           f"R-SLA-1..4 breaches recorded as of {when(summary.get('as_of'))}: {summary.get('breaches', 0)} "
           f"(fines {summary.get('fines', 0)}, pauses {summary.get('pauses', 0)})" + more)


@publishing("publish audit listing")
def publish_audit(summary: dict) -> None:
    """R-SLA-5: EC未有效跟进记录表, one row per listed lead, grouped by the department's manager."""
    listing = sorted(summary.get("listing", []), key=lambda r: (r["manager"], r["owner"], r["customer_id"]))
    total = len(listing)
    listing, more = shown(listing, "the ledger holds every one (action audit_listing, R-SLA-5)")
    labels = labels_for([p for r in listing for p in [r["owner"], *r["manager"].split(", ")]],
                     [r["department"] for r in listing], [r["customer_id"] for r in listing])
    rows = [{"manager": ", ".join(labels.person(m) for m in r["manager"].split(", ")),
             "department": labels.department(r["department"]), "owner": labels.person(r["owner"]),
             "customer": labels.customer(r["customer_id"]), "listed": when(r.get("listed_at"))} for r in listing]
    _table(rows, "monthly-audit-listing", f"R-SLA-5 listing as of {when(summary.get('as_of'))}: {total} leads" + more)


@publishing("publish expiry reassignments")
def publish_expiry(summary: dict) -> None:
    """R-CONV-2 with its consequences: the previous owner is barred from the tier and keeps a commission claim."""
    new_owner = {d.get("customer_id"): d.get("person_id") for d in summary.get("decisions", [])}
    total = len(summary.get("taken_back", []))
    taken, more = shown(summary.get("taken_back", []), "`leadflow report allocations --since DATE --until DATE "
                        "--format csv` lists every re-allocation")
    labels = labels_for([t["from"] for t in taken] + [p for p in new_owner.values() if p], (),
                     [t["customer_id"] for t in taken])
    rows = [{"customer": labels.customer(t["customer_id"]), "tier": t["tier"], "from": labels.person(t["from"]),
             "expired": when(t.get("expired_at")),
             "new owner": labels.person(new_owner.get(t["customer_id"]), "(company pool)"),
             "consequence": f"{labels.person(t['from'])} barred from {t['tier']} until a {t['tier']} close "
                            f"(R-SUSP-7); 30% of the commission if it later closes and follow-ups were kept (R-CONV-3)"}
            for t in taken]
    _table(rows, "conversion-expiry", f"R-CONV-2 reassignments as of {when(summary.get('as_of'))}: {total}" + more)


@publishing("publish review")
def publish_review(summary: dict) -> None:
    """R-TIER-5 re-tiered customers and R-TIER-4 grades, people by name."""
    retiered, more = shown(summary.get("retiered", []), "the ledger holds every re-tier (R-TIER-5)")
    regraded = summary.get("regraded", [])  # one row per salesperson: a short list
    labels = labels_for([c["pid"] for c in regraded], (), [c["cid"] for c in retiered])
    rows = [{"what": "customer tier", "who": labels.customer(c["cid"]), "from": c["old"], "to": c["new"]}
            for c in retiered]
    rows += [{"what": "salesperson grade", "who": labels.person(c["pid"]), "from": "",
              "to": f"{c['g'] or 'ungraded'} {c['r'] or ''}".strip()} for c in regraded]
    _table(rows, "quarterly-review", f"R-TIER-5 review as of {when(summary.get('as_of'))}: "
           f"{len(summary.get('retiered', []))} customers re-tiered" + more)


@publishing("notify owners")
def notify_owners(decisions: list[dict]) -> int:
    """Tell each new owner (a log line by default; a Prefect webhook block when configured)."""
    ctx = stage_ctx()
    allocated = [d for d in decisions if d.get("action") == "allocate" and d.get("person_id")]
    return ctx.notify(allocated) if ctx.notify else 0


def pool_message(summary: dict) -> str:
    """The one sentence of a run that left leads in the pool (R-ALLOC-5), with why in short: "6 leads were left
    in the company pool (R-ALLOC-5): 4 with all 5 who could take a B lead paused for a round (R-ALLOC-4); 2 with
    nobody of grade A in any department." (`summary`: an allocation summary with `pooled_leads`)."""
    n = summary.get("pooled", 0)
    why = Counter(p["reason"] for p in summary.get("pooled_leads", []))
    lead = f"{n} lead{'s were' if n != 1 else ' was'} left in the company pool (R-ALLOC-5)"
    if not why:
        return f"{lead}: nobody eligible."
    groups = [f"{k} with {r}" for r, k in why.most_common(3)]
    rest = sum(why.values()) - sum(k for _, k in why.most_common(3))
    return mask_phones_in_text(f"{lead}: {'; '.join(groups)}" + (f"; {rest} for other reasons" if rest else "") + ".")


@publishing("publish pool warning")
def publish_pool_warning(summary: dict) -> int:
    """R-ALLOC-5: every lead left in the pool, with its tier and why, people and departments by name."""
    pooled, more = shown(summary.get("pooled_leads", []), "`leadflow report customers` lists every customer and "
                         "its status")
    labels = labels_for((), {d for x in pooled for d in re.findall(r"\b\w+\b", x["reason"])},  # departments named
                     [x["customer_id"] for x in pooled])
    n = summary.get("pooled", len(pooled))
    lines = [f"# {n} lead{'s' if n != 1 else ''} left in the company pool", "",
             "Nobody eligible could take them (R-ALLOC-5); they are offered again at the next allocation run.", "",
             "| customer | tier | why |", "|---|---|---|"]
    lines += [f"| {labels.customer(x['customer_id'])} | {x['tier']} | {named(x['reason'], labels)} |" for x in pooled]
    if more:
        lines += ["", f"_{more[2:]}._"]
    create_markdown_artifact(mask_phones_in_text("\n".join(lines)), key="pool-warning",
                             description=mask_phones_in_text(pool_message(summary)))
    return len(pooled)


def pool_warning(summary: dict, data: dict | None = None):
    """R-ALLOC-5: leads this run left in the pool end it loudly (issue 9.5), with an artifact listing every lead
    in the pool and why; the sentence counts the run's own (`newly_pooled`) and says how many older ones still
    wait. `data` is the run's own result, kept on the Failed state so the caller still sees what became of its
    rows."""
    from flows.states import failed

    publish_pool_warning(summary)
    waiting = still_waiting(summary)
    more = f" ({waiting} more pooled by an earlier run still wait)" if waiting else ""
    return failed(pool_message(newly_pooled(summary)).rstrip(".") + more + ".", data)


@publishing("publish dispute decision")
def publish_dispute(customer_id: int, decision: dict) -> None:
    """R-DISP-8: the decision, the deciding rule and the evidence, shown with the run."""
    lines = [f"# Dispute over customer {customer_id}", "", f"Deciding rule: **{decision['rule']}**"
             + ("" if decision.get("recorded") else " (same history as before: nothing new recorded)"), "",
             "| person | share of the deal |", "|---|---|"]
    labels = labels_for(decision["decision"].keys())
    lines += [f"| {labels.person(p)} | {s:.0%} |" for p, s in decision["decision"].items()]
    if decision.get("refused_claims"):
        lines += ["", "Refused claims (R-DISP-4): " + ", ".join(decision["refused_claims"])]
    lines += ["", "## Evidence", ""] + [f"- {e}" for e in decision.get("evidence", [])]
    create_markdown_artifact(mask_phones_in_text("\n".join(lines)), key=_key(f"dispute-{customer_id}"),
                             description=f"R-DISP-8 decision for customer {customer_id}")


@publishing("publish records on hold")
def publish_holds() -> int:
    """R-VAL-2: every record a stage's suite keeps out of that stage, on every run until it is fixed."""
    from leadflow.stages.validation import open_holds

    with stage_ctx().engine.connect() as conn:
        holds = open_holds(conn)
    if holds:
        first, more = shown(holds, "the ledger holds every one (action validation_flag, R-VAL-2)")
        create_table_artifact([{"registration": h["registration_id"], "customer": h["customer_id"],
                                "kept out of": h["suite"], "because": ", ".join(h["reasons"]),
                                "since": when(h["flagged_at"])} for h in first], key="records-on-hold",
                              description=f"{len(holds)} registration records are kept out of a stage until "
                                          "they are fixed (R-VAL-2)" + more)
    return len(holds)


def final_pool(out: dict, result: dict | None = None) -> dict:
    """What the run left in the pool, and why: the act's offer (a registration batch's, `result["allocation"]`)
    corrected by the engine's last offer (`out["pool"]`), which may allocate or re-pool older leads.
    Returns {"pooled": n, "pooled_leads": [{customer_id, tier, reason}]}."""
    left = {p["customer_id"]: p for p in ((result or {}).get("allocation") or {}).get("pooled_leads", [])}
    last = out.get("pool") or {}
    for d in last.get("decisions", []):
        if d.get("action") == "allocate":
            left.pop(d.get("customer_id"), None)
    left.update({p["customer_id"]: p for p in last.get("pooled_leads", [])})
    return {"pooled": len(left), "pooled_leads": list(left.values())}


def newly_pooled(pool: dict) -> dict:
    """The part of a pool summary ({pooled, pooled_leads}) this run put there (R-ALLOC-5): what needs a person
    now. Leads pooled by an earlier run and still waiting were that run's alarm; they stay on the run summary's
    "to look at" list (`still_waiting`)."""
    new = [p for p in pool.get("pooled_leads", []) if p.get("new", True)]
    return {"pooled": len(new), "pooled_leads": new}


def still_waiting(pool: dict) -> int:
    """How many leads of a pool summary were pooled by an earlier run and are still waiting."""
    return sum(1 for p in pool.get("pooled_leads", []) if not p.get("new", True))


def _breaches(out: dict) -> list[dict]:
    return [r for t in out.get("timed", []) if t["stage"] == "sla_check" for r in t["summary"].get("rows", [])]


def attention(out: dict, result: dict | str | None, newly_held: list[dict]) -> list[str]:
    """What needs a person, one line each — exactly what makes the run Failed (issue 9.5): a file or batch
    refused as a whole, leads left in the pool (R-ALLOC-5), a mass breach (R-SLA-7), records newly held
    (R-VAL-2). Pure; ids only."""
    res = result if isinstance(result, dict) else ({"file_error": result} if isinstance(result, str) else {})
    lines = [res[k] for k in ("file_error", "batch_error") if res.get(k)]
    pool = newly_pooled(final_pool(out, res))
    if pool["pooled"]:
        lines.append(pool_message(pool))
    lines += [t["summary"]["warning"] for t in out.get("timed", []) if t["summary"].get("mass_breach")][:1]
    lines += (out.get("recovered") or {}).get("errors", [])  # a killed run's batch refused or not decidable now
    if newly_held:
        reasons = Counter(r for h in newly_held for r in h["reasons"])
        lines.append(f"{len(newly_held)} record(s) newly held out of a stage until fixed (R-VAL-2): "
                     + ", ".join(f"{r} × {n}" for r, n in sorted(reasons.items())))
    return [mask_phones_in_text(x) for x in lines]


def _numbers(out: dict, res: dict, quarantined: Counter) -> list[tuple[str, str]]:
    rows = []
    if "rows_in" in res and "accepted" in res:
        rows.append(("registration rows in", f"{res['rows_in']} = accepted {res['accepted']} + attached "
                                             f"{res['attached']} + quarantined {res['quarantined']}"
                     + (" (registered before: nothing new)" if res.get("already_registered") else "")))
    if "applied" in res:
        rows.append(("event rows in", f"{res['rows_in']} = applied {res['applied']} + duplicate {res['duplicate']} "
                                      f"+ waiting {res['waiting']} + refused {res['refused']}"))
    offers = [out.get("pool_before"), res.get("allocation"), out.get("pool")]
    rows.append(("leads allocated from the pool", str(sum((o or {}).get("allocated", 0) for o in offers))))
    stages = Counter(t["stage"].replace("_", " ") for t in out.get("timed", []))
    rows.append(("time-driven stages run", ", ".join(f"{s} × {n}" for s, n in stages.items()) or "nothing was due"))
    settled = out.get("events") or {}
    if settled.get("resolved") or settled.get("applied"):
        rows.append(("waiting events applied", str(settled.get("applied"))))
    return rows


@publishing("publish run summary")
def publish_run_summary(out: dict, result: dict | str | None = None) -> list[str]:
    """The run's summary at the top of its Artifacts tab (issue 9.4): key numbers, what needs a person (the lines
    that make the run Failed: `attention`) and what to look at (SLA breaches per department, quarantined rows by
    reason, records on hold). Created for the flow run itself, not a task run: the Prefect UI lists a run's own
    artifacts above its task runs' (see the README). Returns the attention lines."""
    from leadflow.stages.validation import newly_held
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.runtime import flow_run

    ctx = stage_ctx()
    res = result if isinstance(result, dict) else {}
    breaches = _breaches(out)
    with ctx.engine.connect() as conn:
        held = newly_held(conn, ctx.flow_run_id, out.get("previous"))
        labels = load_labels(conn, [b["person_id"] for b in breaches])
        quarantined = Counter(res.get("reasons") or {})  # events: refused rows by reason
        if res.get("batch_id") and res.get("quarantined"):
            quarantined = Counter(r for rs in conn.execute(
                select(Registration.reasons).where(Registration.batch_id == res["batch_id"],
                                                   Registration.status == "quarantined")).scalars() for r in rs or [])
        per_dept = Counter(labels.person_departments.get(b["person_id"]) for b in breaches)
        labels = Labels(departments=load_labels(conn, (), per_dept).departments)
    needs = attention(out, result, held)
    title = mask_phones_in_text(flow_run.name or "run")
    lines = [f"# {title}", "", f"as of **{when(out['as_of'])}**"
             + (f" (the clock was at {when(out['previous'])})" if out.get("previous") not in (None, out["as_of"])
                else ""), ""]
    lines += ["## Needs a person", ""] + ([f"- **{x}**" for x in needs] or ["Nothing: the run is Completed."])
    look = []
    if breaches:
        look.append(f"{len(breaches)} SLA breach(es) (R-SLA-1..4): " + ", ".join(
            f"{labels.department(d, '(no department)')} {n}" for d, n in per_dept.most_common()))
    if quarantined:
        look.append(f"{sum(quarantined.values())} row(s) "
                    f"{'refused' if 'applied' in res else 'quarantined'} (R-VAL-2): "
                    + ", ".join(f"{r} × {n}" for r, n in quarantined.most_common()))
    if (recovered := out.get("recovered")) and recovered.get("batches"):  # its errors are under "Needs a person"
        look.append(f"{recovered['rows_in']} registration(s) a killed run had staged and never decided, in "
                    f"{len(recovered['batches'])} batch(es), were decided by this run: {recovered['accepted']} "
                    f"accepted, {recovered['attached']} attached, {recovered['quarantined']} quarantined")
    if out.get("holds"):
        look.append(f"{out['holds']} registration record(s) on hold until fixed (R-VAL-2): see records-on-hold")
    if waiting := still_waiting(final_pool(out, result if isinstance(result, dict) else {})):
        look.append(f"{waiting} lead(s) pooled by an earlier run still waiting in the company pool (R-ALLOC-5): "
                    "see pool-warning")
    lines += ["", "## To look at", ""] + ([f"- {x}" for x in look] or ["Nothing."])
    lines += ["", "## Key numbers", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in _numbers(out, res, quarantined)]
    with get_client(sync_client=True) as client:  # flow-level: task_run_id stays None
        client.create_artifact(ArtifactCreate(
            type="markdown", key="run-summary", data=mask_phones_in_text("\n".join(lines)),
            description=mask_phones_in_text(f"{title}: " + ("; ".join(needs) if needs else "nothing needs a person")),
            flow_run_id=flow_run.id))
    return needs


@publishing("publish run summary")
def publish_parent_summary(children: dict[str, tuple[str, str | None]], since: dt.datetime | None = None) -> list[str]:
    """A parent flow's summary (the lifecycle): each step's state and its one sentence, the steps that did not
    complete first, as they make the parent Failed (issue 9.5), then what the ledger recorded since `since` (the
    parent's start: allocations and breaches, `_recorded_during`). `children`: name -> (state type, message)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.runtime import flow_run

    needs = [f"{name}: {msg or kind.lower()}" for name, (kind, msg) in children.items() if kind != "COMPLETED"]
    title = mask_phones_in_text(flow_run.name or "run")
    lines = [f"# {title}", "", "## Needs a person", ""] + ([f"- **{x}**" for x in needs]
                                                           or ["Nothing: the run is Completed."])
    lines += ["", "## Steps", "", "| step | state | said |", "|---|---|---|"]
    lines += [f"| {n} | {k.lower()} | {(m or '').replace('|', '/')} |" for n, (k, m) in children.items()]
    lines += _recorded_during(since)
    with get_client(sync_client=True) as client:  # flow-level: listed above the task runs' artifacts
        client.create_artifact(ArtifactCreate(
            type="markdown", key="run-summary", data=mask_phones_in_text("\n".join(lines)),
            description=mask_phones_in_text(f"{title}: {len(needs)} of {len(children)} steps need a person"
                                            if needs else f"{title}: nothing needs a person"),
            flow_run_id=flow_run.id))
    return needs


ROLLUP_ROWS = 50


def _recorded_during(since) -> list[str]:
    """Markdown: the allocations (to whom, the rule and why) and the SLA breaches (who, which rule) the ledger
    recorded since `since` (the parent run's start, wall time) — what the parent's children did, one click from
    the dashboard (issue 9.4); at most ROLLUP_ROWS each, the rest counted."""
    from leadflow.store.models import Ledger

    if since is None:
        return []
    ctx = stage_ctx()
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(Ledger.at, Ledger.action, Ledger.rule_id, Ledger.customer_id, Ledger.person_id,
                                   Ledger.reason)
                            .where(Ledger.recorded_at >= since, Ledger.action.in_(("allocate", "breach")))
                            .order_by(Ledger.at, Ledger.id)).all()
        labels = load_labels(conn, {r.person_id for r in rows}, (), {r.customer_id for r in rows})
    out = []
    for action, title, head in (("allocate", "Allocated in this run", "| customer | owner | rule | why |"),
                                ("breach", "SLA breaches recorded in this run", "| when | who | customer | rule |")):
        mine = [r for r in rows if r.action == action]
        out += ["", f"## {title}: {len(mine)}", ""]
        if not mine:
            out.append("None.")
            continue
        out += [head, "|---|---|---|---|"]
        for r in mine[:ROLLUP_ROWS]:
            out.append(f"| {labels.customer(r.customer_id)} | {labels.person(r.person_id)} | {r.rule_id} | "
                       f"{named(r.reason or '', labels).replace('|', '/')} |" if action == "allocate" else
                       f"| {when(r.at)} | {labels.person(r.person_id)} | {labels.customer(r.customer_id)} | "
                       f"{r.rule_id} |")
        if len(mine) > ROLLUP_ROWS:
            out.append(f"\n… and {len(mine) - ROLLUP_ROWS} more (`leadflow report allocations` / `breaches`).")
    return out
