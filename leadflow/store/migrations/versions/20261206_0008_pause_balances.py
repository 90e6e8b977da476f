"""pause balances beside the pause rows (issue 10): allocation reads a row per person and tier, not the history

Every offer summed all of `pauses` (grants and every round used, a year of them) to know who is paused: 45 ms a
call at 100,000 leads, growing with the history. `leadflow.store.pauses` keeps each (person, tier)'s sum in
`pause_balances` with every write; this revision creates the table and fills it from the rows so far.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pause_balances',
                    sa.Column('person_id', sa.String(length=64), nullable=False),
                    sa.Column('tier', sa.String(length=16), nullable=False),
                    sa.Column('rounds', sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint('person_id', 'tier'))
    op.execute("INSERT INTO pause_balances (person_id, tier, rounds) "
               "SELECT person_id, tier, SUM(rounds) FROM pauses GROUP BY person_id, tier")


def downgrade() -> None:
    op.drop_table('pause_balances')
