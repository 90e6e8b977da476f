"""R-REG: pure registration rules — phones, masking, amounts, target flag, channel, registration time.

Standard library only (the policy is read, not imported): no database, no Prefect, no Great
Expectations (the rules are tested directly).
"""
from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # pragma: no cover - the rules only read the policy's attributes
    from leadflow.policy import Policy

# --- shared text clean-up ---------------------------------------------------------------------

# Full-width ASCII block (U+FF01..U+FF5E) -> ASCII, the ideographic space -> a space, and the
# dash look-alikes people paste from word processors -> "-".
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FULLWIDTH.update({0x3000: 0x20, 0x2212: 0x2D, 0x2010: 0x2D, 0x2011: 0x2D, 0x2012: 0x2D,
                   0x2013: 0x2D, 0x2014: 0x2D, 0x2015: 0x2D, 0xFE63: 0x2D})


def _ascii(text: str) -> str:
    """Full-width digits and punctuation -> ASCII (R-REG-2, R-REG-3)."""
    return text.translate(_FULLWIDTH)


# --- R-REG-2: phones --------------------------------------------------------------------------

MOBILE_RE = re.compile(r"1[3-9]\d{9}")          # R-REG-2: a mainland mobile
LANDLINE_RE = re.compile(r"0\d{2,3}\d{7,8}")     # R-REG-2: area code 0\d{2,3} + 7-8 digits
# Spaces, dashes, dots and brackets (ASCII after _ascii; plus the CJK brackets and middle dots).
_PHONE_SEPARATORS = re.compile(r"[\s\-._·•()\[\]{}（）【】〔〕〈〉《》「」]")


def _domestic(digits: str) -> tuple[str, str] | None:
    """R-REG-2: (number, 'mobile' | 'landline') for a clean national digit string, None otherwise."""
    if MOBILE_RE.fullmatch(digits):
        return digits, "mobile"
    if digits.startswith("0") and MOBILE_RE.fullmatch(digits[1:]):
        # A mobile written with the domestic trunk 0 ("013800138000") is that mobile: no mainland
        # area code is 01 followed by 3-9, so this never hides a landline.
        return digits[1:], "mobile"
    if LANDLINE_RE.fullmatch(digits) and not digits.startswith("00"):
        # "00…" is an international dialling prefix, never a mainland area code.
        return digits, "landline"
    return None


def _national(rest: str) -> tuple[str, str] | None:
    """R-REG-2: what follows an 86 country prefix as a national number; a landline gets its 0 back."""
    found = _domestic(rest)
    if found or rest.startswith("0"):  # "+86 (0)21 …" already carries its 0
        return found
    found = _domestic("0" + rest)
    return found if found and found[1] == "landline" else None


def normalise_phone(raw: str | None) -> tuple[str | None, str]:
    """R-REG-2: (normalised digits or None, kind); kind is 'mobile', 'landline', 'invalid' or 'missing'.

    An invalid phone comes back cleaned (full-width -> ASCII, separators removed) for the record.
    """
    if raw is None:
        return None, "missing"
    text = _ascii(str(raw)).strip()
    if not text:
        return None, "missing"  # R-REG-2: a missing phone is `missing_field`, not `phone_format`
    cleaned = _PHONE_SEPARATORS.sub("", text)
    if cleaned.startswith("+"):
        rest = cleaned[1:]
        if rest.startswith("86") and rest.isascii() and rest.isdigit():
            found = _national(rest[2:])  # R-REG-2: +86 country prefix
            if found:
                return found
        return cleaned, "invalid"  # another country, or not a number
    if not (cleaned.isascii() and cleaned.isdigit()):
        return cleaned, "invalid"
    found = _domestic(cleaned)
    if found is None and cleaned.startswith("0086"):
        found = _national(cleaned[4:])  # R-REG-2: 0086 country prefix
    elif found is None and cleaned.startswith("86"):
        # R-REG-2: a bare 86 prefix is stripped only when what remains is a valid number
        # (no mainland number starts with 86: mobiles start with 1, landlines with 0).
        found = _national(cleaned[2:])
    return found if found else (cleaned, "invalid")


# --- R-REG-7: masking -------------------------------------------------------------------------


def mask_phone(phone: str | None) -> str:
    """R-REG-7: first 3 + '****' + last 4 (前三后四); a string shorter than 8 is masked entirely."""
    if phone is None:
        return ""
    s = str(phone).strip()
    if len(s) < 8:
        return "*" * len(s)
    return f"{s[:3]}****{s[-4:]}"


def __getattr__(name: str):
    """`mask_phones_in_text` and `_PHONEISH` live in `leadflow.privacy` now; old imports keep working."""
    if name in ("mask_phones_in_text", "_PHONEISH"):
        from leadflow.privacy import PHONE_SHAPED, mask_phones_in_text

        return mask_phones_in_text if name == "mask_phones_in_text" else PHONE_SHAPED
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- R-REG-3: amounts -------------------------------------------------------------------------

_AMOUNT_RE = re.compile(
    r"(?:大约|约)?"                                       # leading hedge
    r"(?P<sign>[-+]?)"
    r"(?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"  # groups of exactly three, decimals
    r"(?P<unit>万|w|W|亿)?"
    r"(?:元(?:左右|上下|以上)?|(?:左右|上下|以上)元?)?"     # trailing 元 and hedge, either order
)
_UNITS = {None: Decimal(1), "万": Decimal(10_000), "w": Decimal(10_000), "W": Decimal(10_000),
          "亿": Decimal(100_000_000)}


def _judge(value: float, cap: float) -> tuple[float, str]:
    if value < 0:
        return value, "negative"  # R-REG-3: quarantined with reason `amount`
    if value > cap:
        return value, "absurd"    # R-REG-3: above the policy cap (default 10 亿)
    return value, "ok"


def parse_amount(raw, cap: float = 1e9) -> tuple[float | None, str]:
    """R-REG-3: (yuan, status); status is 'ok', 'blank' (unknown), 'invalid', 'negative' or 'absurd'."""
    if raw is None:
        return None, "blank"
    if isinstance(raw, bool):
        return None, "invalid"
    if isinstance(raw, (int, float, Decimal)):
        value = float(raw)
        if math.isnan(value) or math.isinf(value):
            return None, "invalid"
        return _judge(value, cap)
    text = re.sub(r"\s+", "", _ascii(str(raw)))
    if not text:
        return None, "blank"  # R-REG-3: blank means unknown
    m = _AMOUNT_RE.fullmatch(text)
    if not m:
        return None, "invalid"  # 1,2,3 / 1e9 / abc / a hedge without a number
    try:
        value = Decimal(m.group("number").replace(",", "")) * _UNITS[m.group("unit")]
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return None, "invalid"
    if m.group("sign") == "-":
        value = -value
    return _judge(float(value), cap)


# --- R-TIER-1 / INTAKE.md: is-target flag -----------------------------------------------------

_YES = {"yes", "y", "true", "t", "1", "是", "是的", "对"}
_NO = {"no", "n", "false", "f", "0", "否", "不是", "非"}
_UNKNOWN = {"unknown", "未知", "不明确", "不确定", "?", "？"}


def parse_target(raw) -> bool | None:
    """R-TIER-1: is-target flag yes / no / unknown (None); blank means yes (INTAKE.md)."""
    if raw is None:
        return True
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return {1: True, 0: False}.get(raw) if not (isinstance(raw, float) and math.isnan(raw)) else True
    text = _ascii(str(raw)).strip().lower()
    if not text:
        return True
    if text in _YES:
        return True
    if text in _NO:
        return False
    return None  # explicit unknown, or anything unrecognised: an unclear target


# --- R-REG-1 / glossary: channels -------------------------------------------------------------

# The labels people write for the glossary's channels (the policy lists which channels a company
# has: `registration.company_channels` and `registration.self_channel`). A label counts only for a
# channel the policy has; `self` stands for the policy's self channel, whatever it is called.
_CHANNEL_LABELS = {
    "boss": ("肖总资源", "肖总", "老板", "总经理"),
    "sales_manager": ("销售部经理", "销售经理"),
    "hotline": ("400", "400电话", "离线宝", "热线", "400热线"),
    "web_chat": ("商桥", "百度商桥", "网页", "在线客服", "webchat"),
    "marketplace": ("淘宝", "千牛", "天猫"),
    "wechat": ("微信", "微信公众号", "公众号"),
    "internal_referral": ("公司其它部门", "公司其他部门", "内部推荐"),
    "self": ("自己挖掘", "自己挖掘的新客户", "自主开发", "自拓"),
}


def known_channels(policy: Policy) -> tuple[str, ...]:
    """R-REG-1 / R-REG-8: the channel ids a registration may carry — the company channels, then `self`."""
    return (*policy.registration.company_channels, policy.registration.self_channel)


@lru_cache(maxsize=16)
def _channel_table(company: tuple[str, ...], self_channel: str) -> dict[str, str]:
    """Label (lower case) -> channel id, for the channels the policy has; an id is its own label."""
    ids = {**{c: c for c in company}, "self": self_channel}
    table = {label.lower(): ids[c] for c, labels in _CHANNEL_LABELS.items() if c in ids for label in labels}
    table.update({c: c for c in (*company, self_channel)})
    return table


def parse_channel(raw, policy: Policy) -> str | None:
    """R-REG-1: the policy's channel id for `raw` (the id itself, or a label such as 热线), None when unknown."""
    if raw is None:
        return None
    text = _ascii(str(raw)).strip().lower()
    if not text:
        return None
    table = _channel_table(policy.registration.company_channels, policy.registration.self_channel)
    found = table.get(text)
    if found is None:
        found = table.get(re.sub(r"[\s\-]+", "_", text))  # "Web Chat", "web-chat"
    return found


# --- R-REG-1 / INTAKE.md: registration time ---------------------------------------------------

_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
            "%Y-%m-%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S.%f")
_DATE_ONLY = re.compile(r"\d{4}-?\d{2}-?\d{2}")
# The form most files write (`2026-07-01 09:30[:00]`): read by fromisoformat, which gives the datetime the first
# _FORMATS give, without strptime's cost (a third of staging a row); anything else takes the formats in turn.
_PLAIN_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}(?::[0-9]{2})?")
# The times LeadFlow takes: a registration or an event dated outside these years is a typo or a
# placeholder (`0001-01-01 00:00`), never a fact, and the extremes cannot be stored or compared.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)


def parse_registered_at(raw, tz: str) -> dt.datetime | None:
    """R-REG-1: an aware datetime; an offset written in the value is kept, a naive time is read in tz
    (the policy's `timezone`).

    Accepts ISO-8601, `YYYY-MM-DD HH:MM[:SS]`, `YYYY/MM/DD HH:MM[:SS]` or a datetime, from 1970 up to
    (not including) 2100 UTC; a date without a time, a time outside those years, or anything else, is
    None (the caller tells a missing time from one given but not taken: `bad_time`).
    """
    parsed = _parse_time(raw, ZoneInfo(tz))
    if parsed is None:
        return None
    try:
        return parsed if EARLIEST <= parsed.astimezone(dt.timezone.utc) < LATEST else None
    except (OverflowError, ValueError):  # 0001-01-01 00:00 +08:00 has no UTC instant
        return None


def _parse_time(raw, zone: ZoneInfo) -> dt.datetime | None:
    if raw is None:
        return None
    if isinstance(raw, dt.datetime):
        return raw if raw.tzinfo is not None else raw.replace(tzinfo=zone)
    if not isinstance(raw, str):
        return None
    text = re.sub(r"\s+", " ", _ascii(raw)).strip()
    if not text or _DATE_ONLY.fullmatch(text):
        return None
    parsed = None
    if _PLAIN_TIME.fullmatch(text):
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:  # not a date (2026-02-30): the formats below say so as before
            parsed = None
    for fmt in _FORMATS if parsed is None else ():
        try:
            parsed = dt.datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    if parsed is None:
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)
