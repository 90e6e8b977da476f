"""Issue 9.2 / R-REG-7, found by the operator trial: `leadflow record contact --customer 1 --reason "回电 137…"` sent
the number to Prefect as a flow parameter (only `--customer` was resolved locally). Any phone-shaped value of an
event given as options is recorded in this process, never as a parameter (SQLite and PostgreSQL)."""
from __future__ import annotations

from sqlalchemy import select

from leadflow import cli
from leadflow.store.models import Event
from tests.store.test_dispute_unknown_claimant import store  # noqa: F401 - one customer, the CLI pointed at it


def test_issue9_2_r_reg_7_an_event_option_holding_a_phone_is_recorded_here_not_sent_to_prefect(store, capsys):
    # no Prefect server answers in the tests (tests/conftest.py): reaching Prefect would be exit 2, nothing recorded
    code = cli.main(["record", "contact", "--customer", "1", "--by", "s1", "--reason", "回电 13700137000",
                     "--at", "2026-03-02T09:05+08:00", "--as-of", "2026-03-02T09:06+08:00"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "13700137000" not in out.out + out.err
    with store.engine.connect() as conn:
        kinds = conn.execute(select(Event.type).where(Event.customer_id == 1)).scalars().all()
    assert "contact" in kinds


def test_issue9_7_one_event_refused_is_exit_2_with_its_reason(store, capsys):
    code = cli.main(["record", "deal", "--customer", "1", "--by", "s1", "--amount", "abc",
                     "--at", "2026-03-02T09:05+08:00", "--as-of", "2026-03-02T09:06+08:00", "--person", "13800138000"])
    out = capsys.readouterr()
    assert code == 2 and "refused" in out.out + out.err
    assert "13800138000" not in out.out + out.err
