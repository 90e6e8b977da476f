"""Artifacts people read in the Prefect UI; phones are always masked (R-REG-7)."""
from __future__ import annotations

from collections import Counter

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from sqlalchemy import select

from leadflow.store.models import Customer, Registration
from tasks.context import stage_ctx


def _key(text: str) -> str:
    """Artifact keys: lowercase letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:60] or "run"


@task(name="publish validation summary")
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


@task(name="publish intake summary")
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
                                       + (" (already registered: nothing changed)"
                                          if summary.get("already_registered") else "")))


@task(name="publish allocation table")
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
