"""The inbox's one task: file away what the store has taken (`leadflow.inbox`), after the runs committed.

It takes the inbox folder (already the flow's parameter) and digests, never a file name: a name may hold a
phone (R-REG-7), and the task lists the folder itself. Returns masked names only.
"""
from __future__ import annotations

from pathlib import Path

from prefect.cache_policies import NO_CACHE

from leadflow import inbox as box
from leadflow.spool import display_name
from leadflow.store.transient import retry_transient
from tasks.context import stage_ctx
from tasks.masked import task


@task(name="file away the inbox's files", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 5],
      retry_condition_fn=retry_transient)
def file_away(inbox: str, refusals: dict[str, str] | None = None) -> list[dict]:
    """Every settled file in `inbox`: into done/ when the store holds rows of it, into rejected/ when nothing of
    it was taken or its run refused it as a whole (`refusals`: digest -> one sentence), else left for the next
    run. Returns [{"name" (masked), "verdict" (done | rejected | ""), "reason" (rejected: one sentence)}]."""
    refusals = refusals or {}
    files = {p: box.digest(p) for p in box.candidates(inbox)}
    with stage_ctx().engine.connect() as conn:
        known = box.deliveries(conn, sorted(set(files.values())))
    out = []
    for path, d in files.items():
        filed = box.file_away(path, Path(inbox), known.get(d), refusals.get(d))
        out.append({"name": display_name(path), "verdict": filed["verdict"], "reason": filed["reason"]})
    return out
