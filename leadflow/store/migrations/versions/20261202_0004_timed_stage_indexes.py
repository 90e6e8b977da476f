"""indexes for the time-driven stages at scale (issue 10): candidates selected by an indexed time bound

The SLA check reads unsettled obligations started before a bound, the conversion expiry the open clocks
started before one, both stages a customer's records of some kinds since a time, and the check the breaches
already recorded for its assignments. Two single-column indexes become the leading columns of composites.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assignments') as batch:
        batch.drop_index('ix_assignments_sla_settled')
        batch.create_index('ix_assignments_sla_due', ['sla_settled', 'started_at'], unique=False)
        batch.create_index('ix_assignments_open_clock', ['ended_at', 'clock_start'], unique=False)
    with op.batch_alter_table('activities') as batch:
        batch.drop_index('ix_activities_customer_id')
        batch.create_index('ix_activities_customer_kind_at', ['customer_id', 'kind', 'at'], unique=False)
    with op.batch_alter_table('breaches') as batch:
        batch.create_index('ix_breaches_assignment', ['assignment_id', 'rule_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('breaches') as batch:
        batch.drop_index('ix_breaches_assignment')
    with op.batch_alter_table('activities') as batch:
        batch.drop_index('ix_activities_customer_kind_at')
        batch.create_index('ix_activities_customer_id', ['customer_id'], unique=False)
    with op.batch_alter_table('assignments') as batch:
        batch.drop_index('ix_assignments_open_clock')
        batch.drop_index('ix_assignments_sla_due')
        batch.create_index('ix_assignments_sla_settled', ['sla_settled'], unique=False)
