"""The policy: every number and switch of the rulebook, validated on load, with a content version."""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_POLICY_PATH = Path(__file__).with_name("default.yaml")
TIERS = ("A", "B", "C", "D", "below_d")
UNRANKED_TIERS = ("unclassified", "non_target")  # R-TIER-1: unknown amount or unclear target; not a target
ALL_TIERS = TIERS + UNRANKED_TIERS
_CHANNEL_ID = re.compile(r"[a-z][a-z0-9_]*")
GRADES = ("A", "B", "C", "D")
SLA_RULES = ("R-SLA-1", "R-SLA-2", "R-SLA-3", "R-SLA-4", "R-SLA-5")  # R-SLA-7: each has its own switch


class PolicyError(ValueError):
    """A policy file that cannot be used; the message is one sentence naming the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkingDays(_Strict):
    closing_time: dt.time = dt.time(18, 0)
    weekdays: tuple[int, ...] = (1, 2, 3, 4, 5)
    holidays: tuple[dt.date, ...] = ()
    makeup_days: tuple[dt.date, ...] = ()


class Registration(_Strict):
    amount_cap_yuan: float = Field(1_000_000_000, gt=0)
    company_channels: tuple[str, ...] = Field(min_length=1)
    self_channel: str = "self"

    @field_validator("company_channels", "self_channel")
    @classmethod
    def _channel_ids(cls, v):
        for channel in (v,) if isinstance(v, str) else v:
            if not _CHANNEL_ID.fullmatch(channel):
                raise ValueError(f"channel id {channel!r} must be lower-case letters, digits and _")
        if not isinstance(v, str) and len(set(v)) != len(v):
            raise ValueError("lists a channel twice")
        return v

    @model_validator(mode="after")
    def _self_is_not_a_company_channel(self) -> "Registration":
        if self.self_channel in self.company_channels:
            raise ValueError(f"self_channel {self.self_channel!r} is also a company channel (R-REG-8)")
        return self


class Intake(_Strict):
    batch_rows: int = Field(50_000, ge=1)  # a registration file is registered in batches of this many rows


class Validation(_Strict):
    max_bad_fraction: float = Field(0.2, ge=0, le=1)
    min_rows_for_fraction: int = Field(20, ge=1)


class Grading(_Strict):
    closes_for_grade: int = Field(2, ge=1)
    records_begin: dt.date | None = None


class Misjudgment(_Strict):
    count: int = Field(ge=1)
    months: int = Field(ge=1)
    pause_rounds: int = 0
    suspend_days: int = 0
    hotline_ban_months: int = 0


class Allocation(_Strict):
    rotation_epoch: dt.date | None = None
    capacity_per_tier: dict[str, int] = {}
    manager_tiers: tuple[str, ...] = UNRANKED_TIERS

    @field_validator("capacity_per_tier", "manager_tiers")
    @classmethod
    def _known_tiers(cls, v):
        bad = [t for t in v if t not in ALL_TIERS]
        if bad:
            raise ValueError(f"unknown tier {bad[0]!r}")
        return v

    @field_validator("manager_tiers")
    @classmethod
    def _unranked_go_to_managers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        missing = [t for t in UNRANKED_TIERS if t not in v]
        if missing:  # no grade is eligible for them (R-ALLOC-3): only a manager can take them
            raise ValueError(f"must include {missing[0]!r}: no salesperson's grade is eligible for it")
        return v


class Suspension(_Strict):
    violation_days: tuple[int, ...] = (7, 15, 30)
    leaves_per_month: int = 5
    late_entry_fine_yuan: float = 20
    late_entry_pause_every: int = Field(5, ge=1)
    late_abcd_fine_yuan: float = 20
    late_table_hours: tuple[int, ...] = (24, 48, 168)
    no_contact_pause_rounds: int = 1
    malicious_omission_fine_yuan: float = 100
    malicious_omissions_to_depart: int = 2


class Sla(_Strict):
    first_contact_minutes: int = 10
    crm_entry_hours: int = 24
    call_register_working_days: int = 1
    abcd_working_days: int = 1
    abcd_min_tier: str = "C"
    audit_held_days: int = 30
    audit_quiet_days: int = 30
    audit_grace_days: int = 7
    # R-SLA-7 late evidence
    evidence_grace_minutes: int = Field(0, ge=0)
    max_lateness_days: int = Field(7, ge=0)
    enforcement: dict[str, Literal["enforce", "record", "off"]] = {r: "enforce" for r in SLA_RULES}
    mass_breach_share: float = Field(0.5, ge=0, le=1)
    mass_breach_min_obligations: int = Field(20, ge=1)

    @field_validator("enforcement", mode="before")
    @classmethod
    def _yaml_off_is_off(cls, v):
        """YAML reads a bare `off` as false (and `on` as true): take them as the switch values they spell."""
        if isinstance(v, dict):
            return {r: {False: "off", True: "enforce"}.get(m, m) if isinstance(m, bool) else m for r, m in v.items()}
        return v

    @field_validator("enforcement")
    @classmethod
    def _switch_per_rule(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [r for r in v if r not in SLA_RULES]
        if bad:
            raise ValueError(f"names {bad[0]!r}; the switch covers {', '.join(SLA_RULES)}")
        return {r: v.get(r, "enforce") for r in SLA_RULES}


class DormantReturn(_Strict):
    enabled: bool = False
    months: int = 6


class Conversion(_Strict):
    period_months: dict[str, int]
    exempt_step: int = Field(4, ge=1, le=6)
    previous_owner_commission: float = Field(0.3, ge=0, le=1)
    previous_owner_max_quiet_days: int = 30
    dormant_return: DormantReturn = DormantReturn()


class Disputes(_Strict):
    protection_days: int = 30
    maintain_days: int = 15
    same_day_split: float = Field(0.5, ge=0, le=1)
    claim_window_days: int = 3
    unknowing_close_split: float = Field(0.5, ge=0, le=1)
    unknowing_help_share: float = Field(0.3, ge=0, le=1)
    knowing_fine_yuan: float = 1000


class Events(_Strict):
    wait_minutes: int = Field(1440, ge=0)  # an event naming a customer not yet known waits this long


class Policy(_Strict):
    """The whole policy; `version` is a hash of its content and goes on every ledger entry."""

    timezone: str  # business time (RULES.md); default.yaml declares it, and every schedule follows it
    working_days: WorkingDays = WorkingDays()
    sales_year_start_month: int = Field(1, ge=1, le=12)
    registration: Registration
    intake: Intake = Intake()
    validation: Validation = Validation()
    tiers: dict[str, float]
    grading: Grading = Grading()
    misjudgment: tuple[Misjudgment, ...] = ()
    allocation: Allocation = Allocation()
    suspension: Suspension = Suspension()
    sla: Sla = Sla()
    conversion: Conversion
    disputes: Disputes = Disputes()
    events: Events = Events()

    @field_validator("tiers")
    @classmethod
    def _four_tiers(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != set(GRADES):
            raise ValueError("must give a minimum amount for exactly A, B, C and D")
        if not v["A"] >= v["B"] >= v["C"] >= v["D"] >= 0:
            raise ValueError("minimums must not increase from A down to D")
        return v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)
        except Exception:
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @functools.cached_property
    def version(self) -> str:
        """12 hex digits of the SHA-256 of the canonical JSON of the whole policy (R-ALLOC-7: on every ledger
        entry). Computed once per Policy object: the model is frozen, and the stages read it per row."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> "Policy":
        """A copy whose `version` is computed afresh: a copy with `update` is another policy."""
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("version", None)
        return copy


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _first_problem(err: ValidationError, source: str) -> str:
    problem = err.errors()[0]
    key = ".".join(str(p) for p in problem["loc"]) or "(top level)"
    msg = problem["msg"].removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        msg = "is not a policy key"
    return f"{source}: policy key '{key}' {msg}."


def load_policy(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Policy:
    """Load the default policy, a replacement file on top of it, then overrides; validate the result."""
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    source = "the default policy"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
            loaded = yaml.safe_load(text) or {}
        except OSError as e:
            raise PolicyError(f"{path}: cannot read the policy file ({e.strerror}).") from None
        except yaml.YAMLError as e:
            raise PolicyError(f"{path}: the policy file is not valid YAML ({e.__class__.__name__}).") from None
        if not isinstance(loaded, dict):
            raise PolicyError(f"{path}: the policy file must be a mapping of policy keys.")
        data = _merge(data, loaded)
    if overrides:
        if not isinstance(overrides, dict):
            raise PolicyError("policy overrides must be a mapping of policy keys.")
        data = _merge(data, overrides)
        source = f"{source} with overrides"
    try:
        return Policy.model_validate(data)
    except ValidationError as e:
        raise PolicyError(_first_problem(e, source)) from None
