"""R-DISP: protection of self-found leads and the deterministic dispute decision (R-DISP-1..8).

Household relatives count as the customer (R-DISP-3): the caller passes their facts as the customer's.
Evidence names people, times and rule ids, never a phone number.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from leadflow.clock import iso, local
from leadflow.policy import Policy

SELF_KINDS = ("self", "takeover")  # holdings protected by R-DISP-1; the others are held by a conversion period


@dataclass(frozen=True)
class Reg:
    person: str
    at: dt.datetime
    channel: str
    valid: bool = True


@dataclass(frozen=True)
class Contact:
    person: str
    at: dt.datetime


@dataclass(frozen=True)
class Holding:
    person: str
    start: dt.datetime
    end: dt.datetime | None
    kind: str  # self, takeover, allocation, hand_on, reallocation, exchange, …


@dataclass(frozen=True)
class DealFact:
    closer: str | None  # None: closed by nobody on record
    at: dt.datetime
    amount: float | None = None


@dataclass(frozen=True)
class ClaimFact:
    person: str
    at: dt.datetime
    knowingly: bool = False


@dataclass(frozen=True)
class DisputeDecision:
    decision: dict[str, float]  # person -> share of the deal (or of the customer, with no deal)
    rule: str
    evidence: list[str]
    fines: list[tuple[str, float, str]]  # (person, yuan, rule)
    refused_claims: list[str]


def _plus_days(t: dt.datetime, days: float) -> dt.datetime:
    return (t.astimezone(dt.timezone.utc) + dt.timedelta(days=days)).astimezone(t.tzinfo)


def protection_until(first_self_reg_at: dt.datetime, followups: list[dt.datetime], policy: Policy) -> dt.datetime:
    """R-DISP-1: protection expiry: 30 days from registration, or 15 days after a follow-up made while protected."""
    end = _plus_days(first_self_reg_at, policy.disputes.protection_days)
    for f in sorted(followups):
        if f < first_self_reg_at:
            continue
        if f >= end:  # an expiry: a follow-up at the instant of lapse is too late
            break
        end = max(end, _plus_days(f, policy.disputes.maintain_days))
    return end


def _times(contacts: list[Contact], person: str) -> list[dt.datetime]:
    return [c.at for c in contacts if c.person == person]


def _chain(regs, contacts, upto, policy) -> list[tuple[Reg, dt.datetime]]:
    """R-DISP-1, R-DISP-7: owning self registrations in order (first valid, then each after a lapse), with lapses."""
    selfs = sorted((r for r in regs if r.valid and r.channel == policy.registration.self_channel and r.at <= upto),
                   key=lambda r: (r.at, r.person))
    chain: list[tuple[Reg, dt.datetime]] = []
    for r in selfs:
        if chain and (r.person == chain[-1][0].person or r.at < chain[-1][1]):
            continue
        chain.append((r, protection_until(r.at, _times(contacts, r.person), policy)))
    return chain


def _holder_at(t, holdings, chain, contacts, policy, protected_only: bool) -> Holding | None:
    """Who holds the customer at `t`; with `protected_only`, a self-found lead only while protected (R-DISP-6)."""
    if holdings:
        open_ = [h for h in holdings if h.start <= t and (h.end is None or t < h.end)]
        if not open_:
            return None
        h = max(open_, key=lambda h: (h.start, h.person))
        lapsed = h.kind in SELF_KINDS and t >= protection_until(h.start, _times(contacts, h.person), policy)
        return None if protected_only and lapsed else h
    links = [(r, lapse) for r, lapse in chain if r.at <= t]
    if not links or (protected_only and t >= links[-1][1]):
        return None
    return Holding(links[-1][0].person, links[-1][0].at, None, "self" if len(links) == 1 else "takeover")


def _split(people: list[str], first_share: float) -> dict[str, float]:
    if len(people) == 2:
        return {people[0]: round(first_share, 10), people[1]: round(1.0 - first_share, 10)}
    return {p: round(1.0 / len(people), 10) for p in people}


def _claims(claims, regs, contacts, holdings, deal, policy, evidence) -> tuple[set[str], list[str]]:
    """R-DISP-4: (valid claimants, refused claimants); the closer needs no claim; a holding is on record too."""
    deadline = _plus_days(deal.at, policy.disputes.claim_window_days) if deal else None
    valid, refused = set(), []
    for person in sorted({c.person for c in claims}):
        if deal and person == deal.closer:
            continue
        whys = []
        for c in sorted((c for c in claims if c.person == person), key=lambda c: c.at):
            has_record = any(r.person == person and r.at <= c.at for r in regs) or any(
                x.person == person and x.at <= c.at for x in contacts) or any(
                h.person == person and h.start <= c.at for h in holdings)
            if deadline is not None and c.at > deadline:
                whys.append(f"claim at {iso(c.at, policy)} is after the claim deadline {iso(deadline, policy)}")
            elif not has_record:
                whys.append(f"claim at {iso(c.at, policy)} has no registration, contact or holding "
                            "of the customer on record before it")
            else:
                valid.add(person)
        if person not in valid:
            refused.append(person)
            evidence.append(f"R-DISP-4: {person}'s claim refused: " + "; ".join(whys))
    return valid, refused


def decide_dispute(regs: list[Reg], contacts: list[Contact], holdings: list[Holding], deal: DealFact | None,
                   claims: list[ClaimFact], policy: Policy, reception_manager: str | None = None,
                   as_of: dt.datetime | None = None) -> DisputeDecision:
    """R-DISP-8: the first rule that applies (R-DISP-4, -2, -6, -7, -5, else -1); same facts, same decision."""
    times = [x.at for x in (*regs, *contacts, *claims)] + [h.start for h in holdings]
    t = deal.at if deal else (as_of or (max(times) if times else None))
    if t is None:
        return DisputeDecision({}, "R-DISP-1", ["R-DISP-1: nothing on record for the customer"], [], [])
    evidence: list[str] = []
    valid, refused = _claims(claims, regs, contacts, holdings, deal, policy, evidence)
    knowing = {c.person for c in claims if c.knowingly and c.person not in refused}
    decision, rule, fines = _decide(regs, contacts, holdings, deal, valid, knowing, policy, reception_manager, t, evidence)
    return DisputeDecision(dict(sorted(decision.items())), "R-DISP-4" if refused else rule, evidence, fines, refused)


def _decide(regs, contacts, holdings, deal, valid, knowing, policy, reception_manager, t, ev):
    closer = deal.closer if deal else None
    d = policy.disputes
    chain = _chain(regs, contacts, t, policy)
    firsts = sorted((r for r in regs if r.valid and r.at <= t), key=lambda r: (r.at, r.person))
    # R-DISP-2: different salespeople validly registered it on the owning registration's business day.
    anchor = chain[-1][0] if chain else (firsts[0] if firsts else None)
    if anchor is not None:
        day = local(anchor.at, policy).date()
        same = list(dict.fromkeys(r.person for r in firsts if local(r.at, policy).date() == day))
        members = same  # with a deal: the closer and those who claimed in time (R-DISP-4)
        if deal is not None:
            members = [p for p in same if p == closer or p in valid] if closer in same else []
        if len(members) >= 2:
            ev.append(f"R-DISP-2: {', '.join(members)} registered the customer validly on {day.isoformat()}")
            return _split(members, d.same_day_split), "R-DISP-2", []
    # R-DISP-6: contact with a customer another salesperson held (protected or within a conversion period).
    touches = sorted([(c.at, c.person) for c in contacts] + ([(deal.at, closer)] if closer else []))
    for at, x in touches:
        h = _holder_at(at, holdings, chain, contacts, policy, protected_only=True)
        if h is None or h.person == x:
            continue
        knowingly = bool(knowing & {x, h.person, closer})
        if deal is None:
            now = _holder_at(t, holdings, chain, contacts, policy, protected_only=False)
            if not (now and now.person == h.person and (x in valid or knowingly)):
                continue
            shares = {h.person: 1.0}
        elif closer == x and (knowingly or h.person in valid):
            shares = {h.person: 1.0} if knowingly else _split([x, h.person], d.unknowing_close_split)
        elif closer == h.person and (knowingly or x in valid):
            shares = {h.person: 1.0} if knowingly else _split([x, h.person], d.unknowing_help_share)
        else:
            continue
        how = "knowingly" if knowingly else "unknowingly"
        ev.append(f"R-DISP-6: {x} contacted the customer at {iso(at, policy)} {how} while {h.person} held it ({h.kind})")
        return shares, "R-DISP-6", [(x, float(d.knowing_fine_yuan), "R-DISP-6")] if knowingly else []
    holder = _holder_at(t, holdings, chain, contacts, policy, protected_only=False)
    # R-DISP-7: the current holder took the customer over after the previous protection lapsed.
    took_over = holder is not None and (holder.kind == "takeover" or (
        holder.kind in SELF_KINDS and len(chain) >= 2 and chain[-1][0].person == holder.person))
    if took_over and (deal is None or closer == holder.person):
        prev = next(((r, lapse) for r, lapse in reversed(chain[:-1]) if r.person != holder.person), None)
        after = (f"{prev[0].person}'s protection lapsed at {iso(prev[1], policy)}" if prev
                 else "the previous protection lapsed")
        ev.append(f"R-DISP-7: {holder.person} took the customer over at {iso(holder.start, policy)} after {after}")
        return {holder.person: 1.0}, "R-DISP-7", []
    # R-DISP-5: a deal on a customer nobody owns, closed by nobody on record.
    if deal is not None and not closer and holder is None:
        who = reception_manager or "nobody (no reception manager known)"
        ev.append(f"R-DISP-5: deal at {iso(deal.at, policy)} on an unowned customer, "
                  f"credited to the reception manager {who}")
        return ({reception_manager: 1.0} if reception_manager else {}), "R-DISP-5", []
    # R-DISP-1: the first valid registration owns; a deal's credit stays with its closer unless a rule above moved it.
    if firsts:
        ev.append(f"R-DISP-1: first valid registration by {firsts[0].person} at {iso(firsts[0].at, policy)}")
    if deal is not None:
        who = closer or holder.person
        ev.append(f"R-DISP-1: the deal at {iso(deal.at, policy)} stays credited to {who}")
        return {who: 1.0}, "R-DISP-1", []
    owner = holder.person if holder else None
    ev.append(f"R-DISP-1: the customer belongs to {owner}" if owner else "R-DISP-1: nobody owns the customer")
    return ({owner: 1.0} if owner else {}), "R-DISP-1", []
