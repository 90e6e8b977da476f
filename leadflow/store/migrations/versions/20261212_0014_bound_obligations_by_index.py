"""the SLA check's bound obligations by index (issue 10): a manager's unbound holdings no longer in the way

Every run of every entry point asks each time-driven stage when it is next due (`timed.catch_up`); `sla.next_due`
(R-SLA-6) reads the bound, unsettled obligations started by a bound. A manager's unbound holding owes nothing and is
never settled, so the index on (sla_settled, started_at) led through every one of them to its row, more of them
every month. `bound` becomes the index's second column (the reads compare it with `=`: the column is NOT NULL, and
`=` is indexable on both databases). Measured on the store a year's replay leaves (20,000 events, 1,249 customers,
SQLite): the read 0.41 -> 0.025 ms.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-12
"""
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assignments') as batch:
        batch.drop_index('ix_assignments_sla_due')
        batch.create_index('ix_assignments_sla_due', ['sla_settled', 'bound', 'started_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('assignments') as batch:
        batch.drop_index('ix_assignments_sla_due')
        batch.create_index('ix_assignments_sla_due', ['sla_settled', 'started_at'], unique=False)
