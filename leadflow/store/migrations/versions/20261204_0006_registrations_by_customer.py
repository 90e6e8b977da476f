"""registrations indexed by customer (issue 10): a customer's records without reading them all

The records in play (R-VAL-1: the pool's and the open assignments' registrations, read before every pool offer and
timed stage), a customer's own records (disputes, forget) and the holds' customers all find registrations by
customer; without an index each of those read every registration — 2 s a registration at a million leads.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('registrations') as batch:
        batch.create_index('ix_registrations_customer_id', ['customer_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('registrations') as batch:
        batch.drop_index('ix_registrations_customer_id')
