"""registration columns left out of ANALYZE (issue 10): statistics target 0 where no statement looks

After a large batch the intake stage ANALYZEs `registrations` (`stages.intake.refresh_statistics`): at 100,000
leads that took 0.35-0.6 s, most of it sampling the raw row's JSON and the free-text columns, which no statement
filters, joins or groups on. With their statistics target at 0 ANALYZE skips them (0.11-0.14 s). PostgreSQL only:
SQLite has no per-column statistics target. The list is `models.UNSAMPLED_REGISTRATION_COLUMNS` as of this
revision.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

COLUMNS = ("raw", "inquiry", "name", "amount_raw", "channel_raw", "region", "phone_masked", "reasons", "amount_yuan",
           "amount_status", "target", "by_known", "staged_at", "decided_at", "phone_kind")


def _set(target: int) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in COLUMNS:
        op.execute(f'ALTER TABLE registrations ALTER COLUMN "{column}" SET STATISTICS {target}')


def upgrade() -> None:
    _set(0)


def downgrade() -> None:
    _set(-1)  # the system default again
