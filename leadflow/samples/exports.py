"""The sample organisation's activity as the files its systems export, one row per event (INTAKE-style aliases):
the CRM (.xlsx), the 400 call system (GBK CSV) and HR attendance (JSON Lines)."""
from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

from leadflow.clock import zone
from leadflow.export_cells import safe_row
from leadflow.policy import Policy

# Which system records which event type, under which header (aliases of `leadflow.events.readers.COLUMNS`).
CRM_TYPES = {"crm_entry": "录入CRM", "abcd_entry": "ABCD表", "follow_up": "跟进", "sales_step": "销售步骤", "deal": "成交"}
CRM_COLUMNS = {"event_id": "记录编号", "type": "类型", "at": "时间", "customer": "客户编号", "by": "销售",
               "step": "步骤", "amount": "金额"}
CALL_TYPES = {"contact": "首次联系", "call_register": "来电登记"}
CALL_COLUMNS = {"event_id": "流水号", "type": "事件类型", "at": "时间", "customer": "客户编号", "by": "业务员"}
HR_COLUMNS = ("event_id", "type", "at", "person", "kind")


def _local(t: dt.datetime, policy: Policy) -> dt.datetime:
    """As the systems write times: business time, without an offset."""
    return t.astimezone(zone(policy)).replace(tzinfo=None)


def write_exports(rows: list[dict], folder: Path, stamp: str, policy: Policy) -> list[Path]:
    """Write `rows` (canonical event rows) as the day's exports named by `stamp`; only files with rows."""
    from openpyxl import Workbook

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    crm = [r for r in rows if r["type"] in CRM_TYPES]
    if crm:
        path = folder / f"crm-export-{stamp}.xlsx"
        wb = Workbook()
        ws = wb.active
        ws.append(safe_row(CRM_COLUMNS.values()))
        for r in crm:
            ws.append(safe_row(CRM_TYPES[r["type"]] if k == "type" else _local(r["at"], policy) if k == "at"
                               else r.get(k) for k in CRM_COLUMNS))
        wb.save(path)
        written.append(path)
    calls = [r for r in rows if r["type"] in CALL_TYPES]
    if calls:
        path = folder / f"call400-export-{stamp}.csv"
        with open(path, "w", encoding="gbk", newline="") as f:
            w = csv.writer(f)
            w.writerow(safe_row(CALL_COLUMNS.values()))
            for r in calls:
                w.writerow(safe_row(CALL_TYPES[r["type"]] if k == "type" else
                                    _local(r["at"], policy).strftime("%Y-%m-%d %H:%M:%S") if k == "at" else r.get(k)
                                    for k in CALL_COLUMNS))
        written.append(path)
    hr = [r for r in rows if r["type"] == "leave"]
    if hr:
        path = folder / f"hr-attendance-{stamp}.jsonl"
        path.write_text("".join(json.dumps({k: _local(r["at"], policy).strftime("%Y-%m-%d %H:%M:%S") if k == "at"
                                            else r[k] for k in HR_COLUMNS}, ensure_ascii=False) + "\n"
                                for r in hr), encoding="utf-8")
        written.append(path)
    return written
