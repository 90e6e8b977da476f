"""A realistic sample organisation and a quarter of leads, generated deterministically (same seed, same files)."""
from __future__ import annotations

import csv
import datetime as dt
import json
import random
from pathlib import Path

import yaml

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
INQUIRIES = ["办公室绿植租摆", "展厅布置", "酒店大堂绿化", "园区绿化养护", "商场中庭造景", "会议室花艺", "写字楼租摆",
             "楼盘样板间", "餐厅绿植", "门店开业花篮", "屋顶花园", "学校绿化"]
REGIONS = ["上海", "杭州", "苏州", "南京", "宁波", "无锡", "合肥", "外省"]
CHANNELS = [("hotline", "400", 0.35), ("web_chat", "商桥", 0.2), ("marketplace", "淘宝", 0.1), ("wechat", "微信公众号", 0.15),
            ("boss", "肖总资源", 0.05), ("sales_manager", "销售部经理", 0.05), ("internal_referral", "公司其它部门", 0.05),
            ("self", "自己挖掘", 0.05)]


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
    return {"departments": departments, "people": sorted(people, key=lambda p: p["id"])}


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
    sellers = [p["id"] for p in org()["people"] if p["role"] == "sales"]
    rows = []
    for i in range(n):
        day = quarter_start + dt.timedelta(days=rnd.randint(0, days - 1))
        at = dt.datetime.combine(day, dt.time(rnd.randint(8, 19), rnd.randint(0, 59), rnd.randint(0, 59)))
        channel, label, _ = rnd.choices(CHANNELS, weights=[w for *_, w in CHANNELS])[0]
        phone_n = 10_000_000 + (rnd.randint(0, i) if i and rnd.random() < 0.04 else i)  # some call again
        row = {"channel": label if rnd.random() < 0.5 else channel, "name": rnd.choice(SURNAMES) + rnd.choice("先生女士"),
               "phone": _phone(rnd, phone_n), "amount": _amount(rnd), "inquiry": rnd.choice(INQUIRIES),
               "registered_at": at.strftime("%Y-%m-%d %H:%M:%S"),
               "registered_by": rnd.choice(sellers) if channel == "self" else rnd.choice(["k1", "k2"]),
               "target": rnd.choice(["是"] * 12 + ["否", ""]), "region": rnd.choice(REGIONS),
               "external_ref": f"{channel[:2].upper()}{i:06d}"}
        bad = rnd.random()
        if bad < bad_share * 0.5:
            row["phone"] = str(rnd.randint(10000, 99999))
        elif bad < bad_share * 0.8:
            row["amount"] = rnd.choice(["-5万", "面议很多", "1e9"])
        elif bad < bad_share:
            row["registered_by"] = ""
        rows.append(row)
    rows.sort(key=lambda r: r["registered_at"])
    return rows


def write_sample(folder: Path, quarter_start: dt.date, n: int = 5000) -> list[Path]:
    """The org chart and the quarter's leads as the files people bring: GBK CSV per month, JSON Lines, .xlsx."""
    from openpyxl import Workbook

    folder.mkdir(parents=True, exist_ok=True)
    inbox = folder / "inbox"
    inbox.mkdir(exist_ok=True)
    (folder / "org.yaml").write_text(yaml.safe_dump(org(), allow_unicode=True, sort_keys=False), encoding="utf-8")
    rows = leads(quarter_start, n)
    headers = {"channel": "渠道", "name": "客户姓名", "phone": "电话", "amount": "预计成交金额", "inquiry": "咨询内容",
               "registered_at": "来电时间", "registered_by": "接听人", "target": "是否目标客户", "region": "地区",
               "external_ref": "编号"}
    written = []
    by_month: dict[str, list[dict]] = {}
    for r in rows:
        by_month.setdefault(r["registered_at"][:7], []).append(r)
    for month, month_rows in sorted(by_month.items()):
        third = len(month_rows) // 3
        csv_path = inbox / f"hotline-{month}.csv"
        with open(csv_path, "w", encoding="gbk", errors="replace", newline="") as f:
            w = csv.writer(f)
            w.writerow(headers.values())
            for r in month_rows[:third]:
                w.writerow([r[k] for k in headers])
        jsonl_path = inbox / f"webchat-{month}.jsonl"
        jsonl_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in month_rows[third:2 * third]),
                              encoding="utf-8")
        xlsx_path = inbox / f"sales-{month}.xlsx"
        wb = Workbook()
        ws = wb.active
        ws.append(list(headers))
        for r in month_rows[2 * third:]:
            ws.append([r[k] for k in headers])
        wb.save(xlsx_path)
        written += [csv_path, jsonl_path, xlsx_path]
    return written
