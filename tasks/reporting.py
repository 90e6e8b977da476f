"""Artifacts people read in the Prefect UI; phones are always masked (R-REG-7)."""
from __future__ import annotations

import functools
import re
from collections import Counter

from tasks.masked import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from sqlalchemy import select

from leadflow.rules.registration import mask_phones_in_text
from leadflow.store.models import Customer, Registration
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
        return task(name=name, retries=1, retry_delay_seconds=2)(guarded)
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
def publish_intake(source: str, batch_id: str, summary: dict) -> None:
    ctx = stage_ctx()
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(Registration.status, Registration.channel, Registration.reasons)
                            .where(Registration.batch_id == batch_id)).all()
    by = Counter((s, c or "(unknown)", ", ".join(sorted(r or [])) or "-") for s, c, r in rows)
    table = [{"outcome": s, "channel": c, "reasons": r, "rows": n} for (s, c, r), n in sorted(by.items())]
    create_table_artifact(table, key=_key(f"intake-{source}"),
                          description=(f"{source}: rows in {summary['rows_in']} = accepted {summary['accepted']} "
                                       f"+ attached {summary['attached']} + quarantined {summary['quarantined']}"
                                       + (" (already registered; the pool was offered again)"
                                          if summary.get("already_registered") else "")))


@publishing("publish allocation table")
def publish_allocations(title: str, decisions: list[dict]) -> int:
    """R-ALLOC-7: the published allocation, from the ledger entries the stage wrote."""
    if not decisions:
        return 0
    ctx = stage_ctx()
    ids = [d["customer_id"] for d in decisions if d.get("customer_id")]
    with ctx.engine.connect() as conn:
        tiers = dict(conn.execute(select(Customer.id, Customer.tier).where(Customer.id.in_(ids))).all())
    table = []
    for d in decisions:
        expl = d.get("explanation") or {}
        skipped = [f"{c.get('person') or c.get('department')}: {c['skipped']}"
                   for c in expl.get("considered", []) if "skipped" in c]
        table.append({"customer": d.get("customer_id"), "tier": tiers.get(d.get("customer_id")),
                      "department": d.get("department_id") or "-", "owner": d.get("person_id") or "(pool)",
                      "rule": d["rule_id"], "explanation": d["reason"] + ("; skipped " + "; ".join(skipped)
                                                                          if skipped else "")})
    create_table_artifact(table, key=_key(f"allocation-{title}"), description=f"Allocations: {title}")
    return len(table)


def _table(rows: list[dict], key: str, description: str) -> None:
    create_table_artifact(rows or [{"result": "nothing to report"}], key=_key(key), description=description)


@publishing("publish SLA breaches")
def publish_breaches(summary: dict) -> None:
    _table(summary.get("rows", []), "sla-breaches",
           f"R-SLA-1..4 breaches recorded as of {summary.get('as_of')}: {summary.get('breaches', 0)} "
           f"(fines {summary.get('fines', 0)}, pauses {summary.get('pauses', 0)})")


@publishing("publish audit listing")
def publish_audit(summary: dict) -> None:
    """R-SLA-5: EC未有效跟进记录表, one row per listed lead, grouped by the department's manager."""
    rows = sorted(summary.get("listing", []), key=lambda r: (r["manager"], r["owner"], r["customer_id"]))
    _table(rows, "monthly-audit-listing", f"R-SLA-5 listing as of {summary.get('as_of')}: {len(rows)} leads")


@publishing("publish expiry reassignments")
def publish_expiry(summary: dict) -> None:
    """R-CONV-2 with its consequences: the previous owner is barred from the tier and keeps a commission claim."""
    new_owner = {d.get("customer_id"): d.get("person_id") for d in summary.get("decisions", [])}
    rows = [{**t, "new_owner": new_owner.get(t["customer_id"]) or "(pool)",
             "consequence": f"{t['from']} barred from {t['tier']} until a {t['tier']} close (R-SUSP-7); "
                            f"30% of the commission if it later closes and follow-ups were kept (R-CONV-3)"}
            for t in summary.get("taken_back", [])]
    _table(rows, "conversion-expiry", f"R-CONV-2 reassignments as of {summary.get('as_of')}: {len(rows)}")


@publishing("publish review")
def publish_review(summary: dict) -> None:
    rows = [{"what": "customer tier", "id": c["cid"], "from": c["old"], "to": c["new"]}
            for c in summary.get("retiered", [])]
    rows += [{"what": "salesperson grade", "id": c["pid"], "from": "", "to": f"{c['g'] or 'ungraded'} {c['r'] or ''}"}
             for c in summary.get("regraded", [])]
    _table(rows, "quarterly-review", f"R-TIER-5 review as of {summary.get('as_of')}")


@publishing("notify owners")
def notify_owners(decisions: list[dict]) -> int:
    """Tell each new owner (a log line by default; a Prefect webhook block when configured)."""
    ctx = stage_ctx()
    allocated = [d for d in decisions if d.get("action") == "allocate" and d.get("person_id")]
    return ctx.notify(allocated) if ctx.notify else 0


def pool_warning(summary: dict, data: dict | None = None):
    """R-ALLOC-5: leads left in the pool end the run loudly, with an artifact; `data` is the run's own result,
    kept on the Failed state so the caller still sees what became of its rows."""
    from prefect.states import Failed

    pooled = [d for d in summary.get("decisions", []) if d.get("action") == "pooled"]
    create_markdown_artifact(f"# {summary['pooled']} leads left in the company pool\n\nNobody eligible could take "
                             f"them (R-ALLOC-5); they are offered again at the next allocation run.\n\n"
                             + "\n".join(f"- customer {d['customer_id']}" for d in pooled[:200]),
                             key="pool-warning", description="R-ALLOC-5: leads waiting in the pool")
    return Failed(message=f"{summary['pooled']} leads were left in the company pool: nobody eligible (R-ALLOC-5).",
                  data=data)


@publishing("publish dispute decision")
def publish_dispute(customer_id: int, decision: dict) -> None:
    """R-DISP-8: the decision, the deciding rule and the evidence, shown with the run."""
    lines = [f"# Dispute over customer {customer_id}", "", f"Deciding rule: **{decision['rule']}**"
             + ("" if decision.get("recorded") else " (same history as before: nothing new recorded)"), "",
             "| person | share of the deal |", "|---|---|"]
    lines += [f"| {p} | {s:.0%} |" for p, s in decision["decision"].items()]
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
        create_table_artifact([{"registration": h["registration_id"], "customer": h["customer_id"],
                                "kept out of": h["suite"], "because": ", ".join(h["reasons"]),
                                "since": h["flagged_at"]} for h in holds], key="records-on-hold",
                              description=f"{len(holds)} registration records are kept out of a stage until "
                                          "they are fixed (R-VAL-2)")
    return len(holds)
