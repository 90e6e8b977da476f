"""R-REG rules (leadflow.rules.registration), tested directly: no database, no Prefect."""
import ast
import datetime as dt
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import leadflow.rules
from leadflow.policy import load_policy
from leadflow.rules.registration import (
    known_channels, mask_phone, mask_phones_in_text, normalise_phone, parse_amount, parse_channel,
    parse_registered_at, parse_target,
)

POLICY = load_policy()
SH = ZoneInfo("Asia/Shanghai")


# --- R-REG-2: phones --------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    "13800138000", "138 0013 8000", "138-0013-8000", "138.0013.8000", "(138)00138000",
    " 13800138000 ", "13800138000\t",
])
def test_r_reg_2_separators_removed_from_mobile(raw):
    assert normalise_phone(raw) == ("13800138000", "mobile")


@pytest.mark.parametrize("raw", [
    "１３８００１３８０００",               # full-width digits
    "＋８６　１３８－００１３－８０００",     # full-width +, ideographic space, full-width dashes
    "（１３８）００１３８０００",             # full-width brackets
    "138．0013．8000",                       # full-width dots
    "１３８ ００１３ ８０００",
])
def test_r_reg_2_full_width_and_plus86_mobile_normalises(raw):
    assert normalise_phone(raw) == ("13800138000", "mobile")


@pytest.mark.parametrize("raw", [
    "+86 138-0013-8000", "+8613800138000", "+86 13800138000", "(+86) 138 0013 8000",
    "0086 138 0013 8000", "008613800138000", "86 138 0013 8000", "8613800138000",
])
def test_r_reg_2_country_prefix_removed_from_mobile(raw):
    assert normalise_phone(raw) == ("13800138000", "mobile")


@pytest.mark.parametrize("raw", [
    "+86 21 6123 4567", "+86-21-61234567", "0086 21 6123 4567", "86 21 6123 4567",
    "+86 (0)21 6123 4567",
])
def test_r_reg_2_internationally_written_landline_gets_its_leading_zero_back(raw):
    assert normalise_phone(raw) == ("02161234567", "landline")


@pytest.mark.parametrize("raw, expected", [
    ("021-6123-4567", "02161234567"),       # 3-digit area code + 8
    ("(021) 6123 4567", "02161234567"),
    ("010-1234567", "0101234567"),          # 3 + 7: 10 digits, the shortest landline
    ("0755-12345678", "075512345678"),      # 4 + 8: 12 digits, the longest
    ("0571 8765432", "05718765432"),        # 4 + 7
    ("【0571】87654321", "057187654321"),
])
def test_r_reg_2_landline_area_code_plus_7_to_8_digits(raw, expected):
    assert normalise_phone(raw) == (expected, "landline")


@pytest.mark.parametrize("raw", ["13000138000", "13900139000", "19912345678", "15012345678"])
def test_r_reg_2_mobile_pattern_accepts_1_then_3_to_9(raw):
    assert normalise_phone(raw) == (raw, "mobile")


@pytest.mark.parametrize("raw, cleaned", [
    ("12345", "12345"),                    # the scenario's bad phone
    ("12012345678", "12012345678"),        # 1 then 2: not a mobile
    ("1380013800", "1380013800"),          # 10 digits
    ("138001380001", "138001380001"),      # 12 digits starting with 1
    ("021-123456", "021123456"),           # landline with a 6-digit number
    ("0755-123456789", "0755123456789"),   # 13 digits
    ("6123 4567", "61234567"),             # no area code
    ("+852 1234 5678", "+85212345678"),    # another country
    ("+1 415 555 0100", "+14155550100"),
    ("0012345678901", "0012345678901"),    # 00 is an international prefix, not an area code
    ("abc", "abc"),
    ("138-0013-80OO", "138001380OO"),      # letters O for zeros
    ("138 0013 8000 转 123", "13800138000转123"),
    ("---", ""),
    ("+86", "+86"),
    ("86", "86"),
])
def test_r_reg_2_anything_else_is_invalid_and_returned_cleaned(raw, cleaned):
    assert normalise_phone(raw) == (cleaned, "invalid")


@pytest.mark.parametrize("raw", [None, "", "   ", "\u3000", "\t\n"])
def test_r_reg_2_blank_phone_is_missing(raw):
    assert normalise_phone(raw) == (None, "missing")


def test_r_reg_2_bare_86_prefix_only_stripped_when_the_rest_is_valid():
    # 86 + 6 digits: stripping would leave no valid number, so nothing is stripped
    assert normalise_phone("86123456") == ("86123456", "invalid")
    assert normalise_phone("8613800138000") == ("13800138000", "mobile")


def test_r_reg_2_mobile_written_with_trunk_zero_is_the_mobile():
    assert normalise_phone("0138 0013 8000") == ("13800138000", "mobile")


def test_r_reg_2_same_person_written_differently_normalises_to_one_number():
    forms = ["138 0013 8000", "+86 138-0013-8000", "１３８００１３８０００", "0086-138-0013-8000"]
    assert {normalise_phone(f)[0] for f in forms} == {"13800138000"}


def test_r_reg_2_non_string_input_is_read_as_text():
    assert normalise_phone(13800138000) == ("13800138000", "mobile")


# --- R-REG-7: masking -------------------------------------------------------------------------

def test_r_reg_7_mask_phone_first_three_last_four():
    assert mask_phone("13800138000") == "138****8000"
    assert mask_phone("02161234567") == "021****4567"
    assert mask_phone("075512345678") == "075****5678"


@pytest.mark.parametrize("short", ["1234567", "12345", "1", ""])
def test_r_reg_7_mask_phone_never_reveals_a_short_string(short):
    assert mask_phone(short) == "*" * len(short)


def test_r_reg_7_mask_phone_none_is_empty():
    assert mask_phone(None) == ""


def test_r_reg_7_mask_phone_eight_characters_is_masked_middle():
    assert mask_phone("61234567") == "612****4567"


@pytest.mark.parametrize("text, expected", [
    ("call 13800138000 now", "call 138****8000 now"),
    ("phone=13800138000", "phone=138****8000"),
    ("电话13800138000已登记", "电话138****8000已登记"),
    ("tel +86 138-0013-8000.", "tel 138****8000."),
    ("tel 138 0013 8000", "tel 138****8000"),
    ("landline 021-6123-4567 ok", "landline 021****4567 ok"),
    ("full width １３８００１３８０００", "full width 138****8000"),
    ("a (021) 6123 4567 b", "a (021****4567 b"),
])
def test_r_reg_7_mask_phones_in_text_masks_every_number(text, expected):
    assert mask_phones_in_text(text) == expected


def test_r_reg_7_mask_phones_in_text_leaves_no_digits_of_the_middle():
    text = "rows 12 and 13: 13800138000, +86 139 0013 9000, 0086-137-0013-7000"
    masked = mask_phones_in_text(text)
    for middle in ("0013800", "0013900", "0013700", "00138", "00139", "00137"):
        assert middle not in masked.replace("*", "")
    assert masked.count("****") == 3


@pytest.mark.parametrize("text", [
    "row 12 of 300: 5 quarantined",
    "registered 2026-03-02 09:00:00+08:00 by k1",
    "at 2026-03-02T09:00:00.123456+08:00",
    "file hotline-2026-03-02.csv, 2026/3/2 9:05",
    "amount 850000 yuan",          # six digits are not a phone
    "",
])
def test_r_reg_7_mask_phones_in_text_leaves_dates_times_and_short_numbers(text):
    assert mask_phones_in_text(text) == text


def test_r_reg_7_mask_phones_in_text_masks_a_phone_right_after_a_date_or_a_row_number():
    assert mask_phones_in_text("2026-03-02 13800138000") == "2026-03-02 138****8000"
    assert mask_phones_in_text("row 12:13800138000") == "row 12:138****8000"


# --- R-REG-3: amounts -------------------------------------------------------------------------

@pytest.mark.parametrize("raw, yuan", [
    ("850000", 850_000), ("850,000", 850_000), ("85万", 850_000), ("85.5万", 855_000),
    ("0.85亿", 85_000_000), ("８５万", 850_000), ("850000元", 850_000), ("85w", 850_000),
    ("85W", 850_000), ("约80万", 800_000), ("80万左右", 800_000), ("大约80万以上", 800_000),
    ("45万", 450_000), ("450,000", 450_000), ("49999", 49_999), ("1,200,000元", 1_200_000),
    ("80万上下", 800_000), ("约 85 万", 850_000), ("85万元", 850_000), ("约85万元左右", 850_000),
    ("８５０，０００", 850_000), ("８５．５万", 855_000), ("0", 0), ("12.5", 12.5),
    ("1,234.5", 1234.5), ("5万左右", 50_000), ("0.12亿", 12_000_000),
])
def test_r_reg_3_amounts_as_people_write_them(raw, yuan):
    value, status = parse_amount(raw)
    assert status == "ok"
    assert value == pytest.approx(yuan)


@pytest.mark.parametrize("raw, yuan", [(200000, 200_000), (850000.0, 850_000), (0, 0), (49999, 49_999)])
def test_r_reg_3_numbers_accepted_as_they_are(raw, yuan):
    assert parse_amount(raw) == (yuan, "ok")


@pytest.mark.parametrize("raw", [None, "", "   ", "\u3000"])
def test_r_reg_3_blank_amount_is_unknown(raw):
    assert parse_amount(raw) == (None, "blank")


@pytest.mark.parametrize("raw", [
    "1,2,3", "1,0000", "12,34", ",850", "850,", "1e9", "1E9", "abc", "约", "左右", "大约以上", "万",
    "元", "85万万", "85千", "85k", "80-100万", ".5万", "85.", "85..5", "八十五万", "85万多",
    "1,000,00", "约80万约", True, False, float("nan"), float("inf"), "--5", "5-",
])
def test_r_reg_3_not_an_amount_is_invalid(raw):
    assert parse_amount(raw) == (None, "invalid")


@pytest.mark.parametrize("raw, yuan", [("-5", -5), (-5, -5), ("-85万", -850_000), ("－５", -5), (-0.5, -0.5)])
def test_r_reg_3_negative_amount_is_flagged_negative(raw, yuan):
    assert parse_amount(raw) == (yuan, "negative")


def test_r_reg_3_absurd_amount_above_the_cap():
    assert parse_amount("20亿") == (2e9, "absurd")
    assert parse_amount(2_000_000_000) == (2e9, "absurd")
    assert parse_amount("10亿") == (1e9, "ok")  # at the cap is still an amount
    assert parse_amount("1,000,000,001") == (1_000_000_001, "absurd")


def test_r_reg_3_cap_is_a_parameter():
    assert parse_amount("85万", cap=500_000) == (850_000, "absurd")
    assert parse_amount("45万", cap=500_000) == (450_000, "ok")


def test_r_reg_3_decimal_units_are_exact():
    assert parse_amount("0.85亿")[0] == 85_000_000
    assert parse_amount("85.5万")[0] == 855_000
    assert parse_amount("0.1万")[0] == 1_000


# --- R-TIER-1 / INTAKE.md: is-target flag -----------------------------------------------------

@pytest.mark.parametrize("raw", ["yes", "YES", " Yes ", "是", "true", "True", "1", "y", "Y", True, 1, 1.0])
def test_r_tier_1_target_yes_forms(raw):
    assert parse_target(raw) is True


@pytest.mark.parametrize("raw", ["no", "NO", "否", "false", "False", "0", "n", "N", False, 0, 0.0])
def test_r_tier_1_target_no_forms(raw):
    assert parse_target(raw) is False


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_r_tier_1_target_blank_means_yes(raw):
    assert parse_target(raw) is True


@pytest.mark.parametrize("raw", ["unknown", "UNKNOWN", "未知", "不明确", "?", "？", "maybe", "可能", 2])
def test_r_tier_1_target_unknown_or_unrecognised_is_unclear(raw):
    assert parse_target(raw) is None


# --- R-REG-1 / glossary: channels -------------------------------------------------------------

@pytest.mark.parametrize("raw, channel", [
    ("boss", "boss"), ("肖总资源", "boss"), ("老板", "boss"), ("总经理", "boss"),
    ("sales_manager", "sales_manager"), ("销售部经理", "sales_manager"), ("销售经理", "sales_manager"),
    ("hotline", "hotline"), ("400", "hotline"), ("400电话", "hotline"), ("离线宝", "hotline"),
    ("热线", "hotline"), ("HOTLINE", "hotline"), ("Hotline", "hotline"), ("４００", "hotline"),
    ("web_chat", "web_chat"), ("商桥", "web_chat"), ("网页", "web_chat"), ("在线客服", "web_chat"),
    ("Web Chat", "web_chat"), ("web-chat", "web_chat"),
    ("marketplace", "marketplace"), ("淘宝", "marketplace"), ("千牛", "marketplace"), ("天猫", "marketplace"),
    ("wechat", "wechat"), ("微信", "wechat"), ("微信公众号", "wechat"), ("公众号", "wechat"),
    ("internal_referral", "internal_referral"), ("公司其它部门", "internal_referral"),
    ("公司其他部门", "internal_referral"), ("内部推荐", "internal_referral"),
    ("self", "self"), ("自己挖掘", "self"), ("自己挖掘的新客户", "self"), ("自主开发", "self"),
    ("自拓", "self"), ("  Self  ", "self"),
])
def test_r_reg_1_channel_labels_map_to_canonical_ids(raw, channel):
    assert parse_channel(raw, POLICY) == channel


@pytest.mark.parametrize("raw", [None, "", "  ", "fax", "抖音", "boss2", 400.5])
def test_r_reg_1_unknown_channel_is_none(raw):
    assert parse_channel(raw, POLICY) is None


def test_r_reg_1_the_known_channels_are_the_policys_company_channels_and_self():
    assert known_channels(POLICY) == (*POLICY.registration.company_channels, "self")


def test_r_reg_1_a_channel_the_company_adds_to_its_policy_is_accepted_written_as_itself():
    policy = load_policy(overrides={"registration": {"company_channels": [
        *POLICY.registration.company_channels, "douyin"]}})
    assert parse_channel("douyin", policy) == "douyin"
    assert parse_channel(" Douyin ", policy) == "douyin"
    assert parse_channel("热线", policy) == "hotline"  # the labels of the other channels still count
    assert parse_channel("douyin", POLICY) is None


def test_r_reg_1_a_channel_the_policy_does_not_list_is_unknown_even_by_its_label():
    policy = load_policy(overrides={"registration": {"company_channels": ["boss", "hotline"]}})
    assert parse_channel("400", policy) == "hotline"
    assert parse_channel("淘宝", policy) is None and parse_channel("marketplace", policy) is None


def test_r_reg_8_the_self_labels_name_the_policys_self_channel():
    policy = load_policy(overrides={"registration": {"self_channel": "own_find"}})
    assert parse_channel("自己挖掘", policy) == "own_find"
    assert parse_channel("own_find", policy) == "own_find"
    assert parse_channel("self", policy) is None


# --- R-REG-1 / INTAKE.md: registration time ---------------------------------------------------

@pytest.mark.parametrize("raw", [
    "2026-03-02 09:00", "2026-03-02 09:00:00", "2026/03/02 09:00", "2026/03/02 09:00:00",
    "2026/3/2 9:00", "2026-03-02T09:00:00", "2026-03-02T09:00", "２０２６－０３－０２ ０９：００",
    " 2026-03-02  09:00 ",
])
def test_r_reg_1_registered_at_without_offset_is_read_in_shanghai(raw):
    assert parse_registered_at(raw, POLICY.timezone) == dt.datetime(2026, 3, 2, 9, 0, tzinfo=SH)
    assert parse_registered_at(raw, POLICY.timezone).utcoffset() == dt.timedelta(hours=8)


def test_r_reg_1_registered_at_offset_is_kept():
    at = parse_registered_at("2026-03-02T01:00:00+00:00", POLICY.timezone)
    assert at.utcoffset() == dt.timedelta(0)
    assert at == dt.datetime(2026, 3, 2, 9, 0, tzinfo=SH)
    assert parse_registered_at("2026-03-02T01:00:00Z", POLICY.timezone) == at
    assert parse_registered_at("2026-03-02T09:00:00+08:00", POLICY.timezone) == at


def test_r_reg_1_registered_at_other_timezone_parameter():
    at = parse_registered_at("2026-03-02 09:00", tz="UTC")
    assert at == dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)


def test_r_reg_1_registered_at_datetime_objects():
    naive = dt.datetime(2026, 3, 2, 9, 0)
    assert parse_registered_at(naive, POLICY.timezone) == dt.datetime(2026, 3, 2, 9, 0, tzinfo=SH)
    aware = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.timezone.utc)
    assert parse_registered_at(aware, POLICY.timezone) is aware


def test_r_reg_1_registered_at_seconds_and_fractions():
    at = parse_registered_at("2026-03-02 09:00:30", POLICY.timezone)
    assert at == dt.datetime(2026, 3, 2, 9, 0, 30, tzinfo=SH)
    assert parse_registered_at("2026-03-02T09:00:30.5+08:00", POLICY.timezone).microsecond == 500000


@pytest.mark.parametrize("raw", [
    None, "", "   ", "yesterday", "2026-13-02 09:00", "2026-02-30 09:00", "02/03/2026 09:00",
    "2026-03-02", "20260302", "09:00", 20260302, 46083.375,
])
def test_r_reg_1_registered_at_unparseable_is_none(raw):
    assert parse_registered_at(raw, POLICY.timezone) is None


def test_r_reg_1_registered_at_results_are_always_aware():
    for raw in ("2026-03-02 09:00", "2026-03-02T09:00:00+05:30", dt.datetime(2026, 1, 1)):
        assert parse_registered_at(raw, POLICY.timezone).tzinfo is not None


# --- the rules stay pure -----------------------------------------------------------------------

FORBIDDEN = ("prefect", "sqlalchemy", "great_expectations")
RULES_DIR = Path(leadflow.rules.__file__).parent


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


def _rules_modules() -> list[Path]:
    modules = sorted(RULES_DIR.glob("*.py"))
    assert any(p.name == "registration.py" for p in modules)
    return modules


@pytest.mark.parametrize("module", _rules_modules(), ids=lambda p: p.name)
def test_r_reg_rules_modules_import_no_prefect_sqlalchemy_or_great_expectations(module):
    bad = [n for n in _imports(module) if n.split(".")[0] in FORBIDDEN]
    assert bad == [], f"{module.name} imports {bad}"


@pytest.mark.parametrize("module", _rules_modules(), ids=lambda p: p.name)
def test_r_reg_rules_modules_import_only_the_standard_library_and_other_rules(module):
    def allowed(name: str) -> bool:
        if name.startswith("."):
            return True  # relative: another rules module
        top = name.split(".")[0]
        # the policy model and business clock are pure too: rules are given the policy and `now`
        return (top in sys.stdlib_module_names or name == "leadflow.rules" or name.startswith("leadflow.rules.")
                or name in ("leadflow.policy", "leadflow.clock", "leadflow.privacy"))  # privacy: stdlib only too

    bad = [n for n in _imports(module) if not allowed(n)]
    assert bad == [], f"{module.name} imports {bad}"
