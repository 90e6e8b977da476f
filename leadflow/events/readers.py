"""Event files: the exports of a CRM, the 400 call system, HR attendance or finance — one row per event.

CSV (UTF-8, UTF-8 with BOM, GBK), JSON Lines and .xlsx, read by the same readers as registration
files (`leadflow.intake.readers`), with their own columns and Chinese header aliases. The inbox tells
an event file from a registration file by its header: an event file has a `type` (类型) column.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from leadflow.intake.readers import REGISTRATIONS, FileSpec, IntakeFileError, header_names, iter_rows

# canonical column -> accepted aliases (matched trimmed and case-insensitively)
COLUMNS: dict[str, tuple[str, ...]] = {
    "type": ("类型", "事件类型", "事件", "event", "event_type"),
    "at": ("时间", "发生时间", "记录时间", "日期时间", "time", "occurred_at"),
    "recorded_at": ("录入时间", "上报时间", "导出时间"),
    "event_id": ("事件编号", "记录编号", "流水号", "id"),
    "customer": ("客户", "客户编号", "客户号", "customer_id"),
    "by": ("销售", "经办人", "跟进人", "操作人", "业务员"),
    "step": ("步骤", "销售步骤"),
    "amount": ("金额", "成交金额", "实际金额"),
    "person": ("人员", "员工", "协助人", "认领人"),
    "to": ("接手人", "交给"),
    "kind": ("种类", "假别", "违规类型"),
    "reason": ("原因", "无效原因"),
    "with_customer": ("交换客户", "对方客户"),
    "relation": ("关系",),
    "phone": ("电话", "号码", "关联号码"),
    "share": ("比例", "分成比例"),
    "knowingly": ("明知",),
    "department": ("部门",),
}
REQUIRED: tuple[str, ...] = ("type", "at")
EVENTS = FileSpec("event", COLUMNS, REQUIRED)


def is_event_file(path: str | Path) -> bool:
    """True when the file's header has an event `type` column and not the registration columns.

    Raises IntakeFileError (one sentence) when the file cannot be read at all."""
    headers = header_names(path)
    canon_events = {EVENTS.canonical(h) for h in headers}
    canon_regs = {REGISTRATIONS.canonical(h) for h in headers}
    return "type" in canon_events and "registered_at" not in canon_regs


def iter_event_rows(path: str | Path) -> Iterator[dict]:
    """Every data row of an event file as a dict of canonical columns (None when blank), plus `row_number` and,
    on a row that cannot be taken as written, `problems` (too_long, bad_quote, ragged, bad_json: the row is
    refused with it). Raises IntakeFileError (one sentence) when the file cannot be read; a file with a header
    and no rows is an empty delivery (rows in 0), not an error."""
    for row in iter_rows(path, EVENTS):
        row.pop("raw", None)  # the raw cells may hold phone numbers; the canonical ones are all we keep
        yield row


def read_event_file(path: str | Path) -> list[dict]:
    """`iter_event_rows` as a list."""
    return list(iter_event_rows(path))


__all__ = ["COLUMNS", "EVENTS", "REQUIRED", "IntakeFileError", "is_event_file", "iter_event_rows",
           "read_event_file"]
