"""The one clock in Prefect: every time-driven deployment runs the same global catch-up (R-SLA-6).

Whichever scheduled run comes next does all that is due, in global time order, whatever the interval and
however long nothing ran; concurrent catch-ups wait for each other (the engine's clock lock). Each due
instant is a task run of its own, with its artifact, so the UI shows each stage's work when it had some.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable

from tasks.masked import flow
from prefect.states import Completed

from flows.params import AsOf
from flows.states import failed
from leadflow import engine
from leadflow.privacy import mask_phones_in_text
from tasks import reporting
from tasks.context import stage_ctx
from tasks.engine import stage_runner


def run_name(title: str):
    """`sla check 2026-03-02 09:00+08:00` — what ran and as of when, in business time (never lead data)."""
    def name() -> str:
        from prefect.runtime import flow_run

        from leadflow.clock import business_time_label
        from leadflow.settings import configured_policy

        as_of = flow_run.parameters.get("as_of") or dt.datetime.now(dt.timezone.utc)
        if isinstance(as_of, str):
            as_of = dt.datetime.fromisoformat(as_of)
        return f"{title} {business_time_label(as_of, configured_policy())}"
    return name


def engine_run(as_of: dt.datetime | None, act: Callable[[dt.datetime | None, dt.datetime], dict] | None = None,
               offer_first: bool = True) -> tuple[dict, dict | None]:
    """One engine run inside a flow: the catch-up as task runs, `act(run_after, as_of)`, then the pool offer.

    `as_of` None is now, read under the clock lock. Returns (the run's outcome, what `act` returned); the run's
    summary artifact is published last (`reporting.publish_run_summary`), its attention lines in
    `out["attention"]`.
    Raises engine.ClockError when `as_of` is before the clock.
    """
    result = None
    with engine.run(stage_ctx(), as_of, runner=stage_runner, offer_first=offer_first) as (rctx, out):
        if act is not None:
            result = act(rctx.run_after, out["as_of"])
    decisions = (out.get("pool_before") or {}).get("decisions", []) + out["pool"].get("decisions", [])
    if decisions:
        reporting.publish_allocations("pool", decisions[:reporting.SHOWN_ROWS], total=len(decisions))
        reporting.notify_owners(decisions)
    out["holds"] = reporting.publish_holds()
    out["attention"] = reporting.publish_run_summary(out, result)  # issue 9.4: every engine run has its summary
    return out, result


def outcome_state(out: dict, data: dict | None = None):
    """Completed, or Failed with one sentence for each thing that needs a person (issue 9.5, `flows.states`):
    leads left in the pool (R-ALLOC-5), a check that breached more than the policy's share of what it looked at
    (R-SLA-7), records this run newly held out of a stage until fixed (R-VAL-2). The run's summary is the
    state's data either way."""
    from leadflow.clock import iso

    summary = {"as_of": iso(out["as_of"], stage_ctx().policy), "stages_run": dict(Counter(r["stage"] for r in out["timed"])),
               "events": out.get("events"), "allocated": out["pool"].get("allocated", 0),
               "pooled": out["pool"].get("pooled", 0), **(data or {})}
    # leads an earlier run pooled and still waiting were that run's alarm: only this run's own fail it
    needs = [reporting.pool_warning(out["pool"], data).message] if reporting.newly_pooled(out["pool"])["pooled"] else []
    needs += [r["summary"]["warning"] for r in out["timed"] if r["summary"].get("mass_breach")][:1]
    needs += [held] if (held := _newly_held(out)) else []
    recovered = out.get("recovered") or {}
    needs += recovered.get("errors", [])  # R-VAL-3: a killed run's batch refused now fails this run, never silently
    if recovered.get("batches"):
        summary["recovered"] = {k: recovered[k] for k in ("rows_in", "accepted", "attached", "quarantined")}
    if needs:  # R-REG-7: a state message is stored and shown by Prefect
        return failed("; ".join(n.rstrip(".") for n in needs) + ".", summary)
    return Completed(message=mask_phones_in_text(_describe(summary)), data=summary)


def _newly_held(out: dict) -> str | None:
    """One sentence on the records this flow run newly held (R-VAL-2), or None."""
    from leadflow.stages.validation import newly_held

    ctx = stage_ctx()
    with ctx.engine.connect() as conn:
        held = newly_held(conn, ctx.flow_run_id, out.get("previous"))
    if not held:
        return None
    suites = Counter(h["suite"] for h in held)
    reasons = Counter(r for h in held for r in h["reasons"])
    return (f"{len(held)} record(s) newly held out of a stage until fixed (R-VAL-2): "
            + ", ".join(f"{n} by the {s} suite" for s, n in sorted(suites.items()))
            + " (" + ", ".join(f"{r} × {n}" for r, n in sorted(reasons.items())) + ")")


def _describe(summary: dict) -> str:
    ran = ", ".join(f"{n} × {s.replace('_', ' ')}" for s, n in summary["stages_run"].items()) or "nothing was due"
    said = f"caught up to {summary['as_of']}: {ran}; {summary['allocated']} allocated from the pool"
    if r := summary.get("recovered"):
        said += (f"; {r['rows_in']} registration(s) a killed run had staged decided now ({r['accepted']} accepted, "
                 f"{r['attached']} attached, {r['quarantined']} quarantined)")
    return said


def catch_up(as_of: dt.datetime | None):
    """The body of every time-driven flow: one engine run with nothing to act on."""
    out, _ = engine_run(as_of, offer_first=False)
    return outcome_state(out)


@flow(name="tick", flow_run_name=run_name("tick"))
def tick_flow(as_of: AsOf = None):
    """Bring the store to `as_of` (default now): every due instant of every stage, in time order (R-SLA-6)."""
    return catch_up(as_of)
