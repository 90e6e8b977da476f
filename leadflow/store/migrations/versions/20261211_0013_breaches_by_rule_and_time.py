"""breaches indexed by rule and time (issue 10): a month's late entries and an audit's listings without a scan

Three reads find breaches by rule and instant: the SLA check's count of the month's late entries per person
(R-SUSP-3, `stages.sla._ordinals`, every check that records an R-SLA-2/3 breach), the grants a revoked late entry
withdraws (R-SLA-7), and the monthly audit's listings already recorded for its instant (R-SLA-5, R-SLA-6). Each
read every breach of the store: at 1 M open leads 200,000 rows, 30-75 ms a read, for a handful of rows.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-11
"""
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('breaches') as batch:
        batch.create_index('ix_breaches_rule_at', ['rule_id', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('breaches') as batch:
        batch.drop_index('ix_breaches_rule_at')
