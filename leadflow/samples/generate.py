"""A realistic sample organisation and its leads, generated deterministically (same seed, same files): four weeks
of registrations as the front desk exports them a few times a day (`period_leads`, `write_sample`), and the few
new ones of any minute while the main job serves (`live_leads`)."""
from __future__ import annotations

import csv
import datetime as dt
import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from leadflow.export_cells import safe_row

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
INQUIRIES = ["办公室绿植租摆", "展厅布置", "酒店大堂绿化", "园区绿化养护", "商场中庭造景", "会议室花艺", "写字楼租摆",
             "楼盘样板间", "餐厅绿植", "门店开业花篮", "屋顶花园", "学校绿化"]
REGIONS = ["上海", "杭州", "苏州", "南京", "宁波", "无锡", "合肥", "外省"]
CHANNELS = [("hotline", "400", 0.35), ("web_chat", "商桥", 0.2), ("marketplace", "淘宝", 0.1), ("wechat", "微信公众号", 0.15),
            ("boss", "肖总资源", 0.05), ("sales_manager", "销售部经理", 0.05), ("internal_referral", "公司其它部门", 0.05),
            ("self", "自己挖掘", 0.05)]
ONLINE = [c for c in CHANNELS if c[0] in ("web_chat", "marketplace", "wechat")]  # what still comes in at night

DAYS = 28  # the sample period: four weeks up to the main job's start
HOURS = (8, 19)  # registrations are taken from 08:00 to 19:59 (business time)
SLOTS = (11, 14, 17, 20)  # the front desk exports the registrations taken since the last export at these hours
FORMATS = {11: "csv", 14: "jsonl", 17: "xlsx", 20: "csv"}  # the 400 system's GBK CSV, the web chat's JSON Lines, Excel
WEEKEND_SHARE = 0.3  # a day off brings this share of a working day's registrations
LEADS = 2000  # over DAYS: about 2 a working day per salesperson (40), of which ~1.7 allocated to them
# While the main job serves: new registrations per minute, in working hours (HOURS) and outside them (online only).
# About 6 times the sample period's pace, so that a few minutes show new leads being allocated.
LIVE_PER_MINUTE = {"day": 1.0, "night": 0.3}
HEADERS = {"channel": "渠道", "name": "客户姓名", "phone": "电话", "amount": "预计成交金额", "inquiry": "咨询内容",
           "registered_at": "来电时间", "registered_by": "接听人", "target": "是否目标客户", "region": "地区",
           "external_ref": "编号"}


def org(seed: int = 7) -> dict:
    """3 departments, 13–14 salespeople each with grades and ranks, a manager each, 2 receptionists."""
    rnd = random.Random(seed)
    departments = [{"id": "d1", "name": "营销一部"}, {"id": "d2", "name": "营销二部"}, {"id": "d3", "name": "营销三部"}]
    people = []
    grades = ["A"] * 2 + ["B"] * 3 + ["C"] * 3 + ["D"] * 3 + [None] * 2
    for d in departments:
        people.append({"id": f"m{d['id'][1]}", "department": d["id"], "role": "manager"})
        ranks: dict = {}
        for i, g in enumerate(grades + ([None] if d["id"] == "d1" else [])):
            ranks[g] = ranks.get(g, 0) + 1
            people.append({"id": f"s{d['id'][1]}{i + 1:02d}", "department": d["id"], "role": "sales", "grade": g,
                           "rank": ranks[g] if g else None})
    people += [{"id": "k1", "department": "d1", "role": "receptionist"},
               {"id": "k2", "department": "d2", "role": "receptionist"}]
    rnd.shuffle(people)  # order in the file does not matter
    people = sorted(people, key=lambda p: p["id"])
    for p, name in zip(people, staff_names(len(people), seed)):
        p["name"] = name
    return {"departments": departments, "people": people}


GIVEN_NAMES = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉健俊帆欣怡博宇浩然子轩雨晨"


def staff_names(n: int, seed: int = 7) -> list[str]:
    """`n` distinct Chinese names (a surname and one or two given characters), the same for the same seed; drawn
    from a generator of their own, so the org's and the leads' random streams stay as they were."""
    rnd, names = random.Random(f"staff-names-{seed}"), []
    while len(names) < n:
        name = rnd.choice(SURNAMES) + "".join(rnd.choice(GIVEN_NAMES) for _ in range(rnd.choice((1, 2))))
        if name not in names:
            names.append(name)
    return names


def _amount(rnd: random.Random) -> str:
    """Amounts as people write them: 85万, 850,000, 约80万, 0.85亿, blank."""
    yuan = rnd.choice([rnd.randint(1, 49) * 1000, rnd.randint(5, 19) * 10000, rnd.randint(20, 39) * 10000,
                       rnd.randint(40, 79) * 10000, rnd.randint(80, 300) * 10000])
    style = rnd.random()
    if style < 0.08:
        return ""
    if style < 0.35:
        return f"{yuan / 10000:g}万"
    if style < 0.5:
        return f"{yuan:,}"
    if style < 0.6:
        return f"约{yuan / 10000:g}万"
    if style < 0.65:
        return f"{yuan / 10000:g}w"
    if style < 0.68:
        return f"{yuan / 1e8:g}亿"
    return str(yuan)


def _phone(rnd: random.Random, n: int) -> str:
    digits = f"1{rnd.choice('3456789')}{n:09d}"
    style = rnd.random()
    if style < 0.15:
        return f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    if style < 0.25:
        return f"+86 {digits[:3]}-{digits[3:7]}-{digits[7:]}"
    return digits


def leads(quarter_start: dt.date, n: int = 5000, seed: int = 11, bad_share: float = 0.025,
          days: int = 90) -> list[dict]:
    """About `n` registrations over `days` (a quarter) of working hours, 2–3 % of them bad, some repeat callers.

    Every row has the channel's own reference (`external_ref`, e.g. the 400 system's 来电编号), by which the
    activity exports (`leadflow.samples.exports`) name the customer."""
    rnd = random.Random(seed)
    sellers = _sellers()
    rows = []
    for i in range(n):
        day = quarter_start + dt.timedelta(days=rnd.randint(0, days - 1))
        at = dt.datetime.combine(day, dt.time(rnd.randint(8, 19), rnd.randint(0, 59), rnd.randint(0, 59)))
        rows.append(_row(rnd, i, at, sellers, bad_share))
    rows.sort(key=lambda r: r["registered_at"])
    return rows


def _sellers() -> list[str]:
    return [p["id"] for p in org()["people"] if p["role"] == "sales"]


def _row(rnd: random.Random, i: int, at: dt.datetime, sellers: list[str], bad_share: float,
         channels: list[tuple[str, str, float]] = CHANNELS, phone_n: int | None = None,
         ref: str | None = None) -> dict:
    """One registration as the front desk or a salesperson writes it down (`at`: business time, naive)."""
    channel, label, _ = rnd.choices(channels, weights=[w for *_, w in channels])[0]
    if phone_n is None:
        phone_n = 10_000_000 + (rnd.randint(0, i) if i and rnd.random() < 0.04 else i)  # some call again
    row = {"channel": label if rnd.random() < 0.5 else channel, "name": rnd.choice(SURNAMES) + rnd.choice("先生女士"),
           "phone": _phone(rnd, phone_n), "amount": _amount(rnd), "inquiry": rnd.choice(INQUIRIES),
           "registered_at": at.strftime("%Y-%m-%d %H:%M:%S"),
           "registered_by": rnd.choice(sellers) if channel == "self" else rnd.choice(["k1", "k2"]),
           "target": rnd.choice(["是"] * 12 + ["否", ""]), "region": rnd.choice(REGIONS),
           "external_ref": ref or f"{channel[:2].upper()}{i:06d}"}
    bad = rnd.random()
    if bad < bad_share * 0.5:
        row["phone"] = str(rnd.randint(10000, 99999))
    elif bad < bad_share * 0.8:
        row["amount"] = rnd.choice(["-5万", "面议很多", "1e9"])
    elif bad < bad_share:
        row["registered_by"] = ""
    return row


def _weekday(day: dt.date) -> bool:
    return day.weekday() < 5


def period_leads(first_day: dt.date, until: dt.datetime, n: int = LEADS, seed: int = 11, bad_share: float = 0.025,
                 working_day: Callable[[dt.date], bool] = _weekday) -> list[dict]:
    """About `n` registrations from `first_day` to `until` (business time, naive; later ones are not taken yet),
    in working hours (HOURS), a day off bringing WEEKEND_SHARE of a working day's; 2–3 % bad, some repeat callers."""
    rnd = random.Random(f"{seed}|period")
    days = [first_day + dt.timedelta(days=k) for k in range((until.date() - first_day).days + 1)]
    weights = [1.0 if working_day(d) else WEEKEND_SHARE for d in days]
    sellers = _sellers()
    rows = []
    for i in range(n):
        day = rnd.choices(days, weights=weights)[0]
        at = dt.datetime.combine(day, dt.time(rnd.randint(*HOURS), rnd.randint(0, 59), rnd.randint(0, 59)))
        row = _row(rnd, i, at, sellers, bad_share)
        if at < until:
            rows.append(row)
    rows.sort(key=lambda r: r["registered_at"])
    return rows


def delivery_slot(registered_at: dt.datetime) -> dt.datetime:
    """The front desk's export that carries a registration taken at `registered_at` (naive business time)."""
    hour = next(h for h in SLOTS if h > registered_at.hour)
    return dt.datetime.combine(registered_at.date(), dt.time(hour))


def last_slot(now: dt.datetime) -> dt.datetime:
    """The latest export time at or before `now` (naive business time)."""
    day = now.date()
    while True:
        done = [h for h in SLOTS if dt.datetime.combine(day, dt.time(h)) <= now]
        if done:
            return dt.datetime.combine(day, dt.time(max(done)))
        day -= dt.timedelta(days=1)


def deliveries(rows: list[dict]) -> dict[dt.datetime, list[dict]]:
    """The rows by the export that carries them, in time order."""
    out: dict[dt.datetime, list[dict]] = {}
    for r in rows:
        out.setdefault(delivery_slot(dt.datetime.fromisoformat(r["registered_at"])), []).append(r)
    return dict(sorted(out.items()))


def delivery_name(slot: dt.datetime) -> str:
    """`registrations-YYYY-MM-DD-HHMM.<csv|jsonl|xlsx>`: the export's time is in its name (a date written with
    dashes, so the phone masking of run names and logs, R-REG-7, leaves it alone)."""
    return f"registrations-{slot:%Y-%m-%d-%H%M}.{FORMATS[slot.hour]}"


def slot_of(name: str) -> dt.datetime | None:
    """The export time a file name carries (naive business time), or None for another file."""
    m = re.fullmatch(r"registrations-(\d{4}-\d{2}-\d{2})-(\d{4})\.\w+", name)
    return dt.datetime.strptime(f"{m[1]} {m[2]}", "%Y-%m-%d %H%M") if m else None


def write_registrations(path: Path, rows: list[dict]) -> Path:
    """The rows as the file its suffix says: GBK CSV or .xlsx under the front desk's headers, or JSON Lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        with open(path, "w", encoding="gbk", errors="replace", newline="") as f:
            w = csv.writer(f)
            w.writerow(safe_row(HEADERS.values()))
            for r in rows:
                w.writerow(safe_row(r[k] for k in HEADERS))
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        from openpyxl import Workbook

        wb = Workbook()
        ws = wb.active
        ws.append(safe_row(HEADERS))
        for r in rows:
            ws.append(safe_row(r[k] for k in HEADERS))
        wb.save(path)
    return path


def write_sample(folder: Path, first_day: dt.date, until: dt.datetime, n: int = LEADS,
                 working_day: Callable[[dt.date], bool] = _weekday,
                 progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """The org chart, and the sample period's registrations (`period_leads`) as the front desk's exports: one file
    per export in `registrations/`, the last one in `inbox/` (what the main job's lifecycle run takes).
    `progress(files written, files)` is called after each file (leadflow.progress)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "org.yaml").write_text(yaml.safe_dump(org(), allow_unicode=True, sort_keys=False), encoding="utf-8")
    (folder / "inbox").mkdir(exist_ok=True)
    batches = deliveries(period_leads(first_day, until, n, working_day=working_day))
    last = max(batches, default=None)
    written = []
    for slot, rows in batches.items():
        written.append(write_registrations(folder / ("inbox" if slot == last else "registrations")
                                           / delivery_name(slot), rows))
        if progress is not None:
            progress(len(written), len(batches))
    return written


def live_leads(since: dt.datetime, until: dt.datetime, seed: int = 11, bad_share: float = 0.025) -> list[dict]:
    """The registrations taken in (since, until] (naive business time) while the main job serves: each minute
    its own draw (LIVE_PER_MINUTE; online channels only outside HOURS), so the same minute always brings the
    same leads, with references and phones of their own (a few callers ring again)."""
    sellers, rows = _sellers(), []
    minute = since.replace(second=0, microsecond=0)
    while minute <= until:
        stamp = (minute - dt.datetime(2020, 1, 1)) // dt.timedelta(minutes=1)  # one number per minute
        rnd = random.Random(f"{seed}|live|{minute:%Y%m%d%H%M}")
        day = HOURS[0] <= minute.hour <= HOURS[1]
        rate = LIVE_PER_MINUTE["day" if day else "night"]
        count = sum(rnd.random() < rate / 3 for _ in range(3))  # 0–3 a minute, `rate` on average
        for k in range(count):
            at = minute + dt.timedelta(seconds=rnd.randint(0, 59))
            phone_n = 10_000_000 + rnd.randint(0, LEADS - 1) if rnd.random() < 0.04 else 200_000_000 + 10 * stamp + k
            row = _row(rnd, 0, at, sellers, bad_share, CHANNELS if day else ONLINE, phone_n,
                       ref=f"LV{minute:%y%m%d%H%M}{k}")
            if since < at <= until:
                rows.append(row)
        minute += dt.timedelta(minutes=1)
    return sorted(rows, key=lambda r: r["registered_at"])
