"""the pool in offer order (issue 10): customers indexed by (status, created_at, id)

Allocation offers the pool oldest first, page by page, by keyset on (created_at, id) (R-ALLOC-5): each page
one index range, however large the pool. The index on status alone is its prefix, so it goes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('customers') as batch:
        batch.drop_index('ix_customers_status')
        batch.create_index('ix_customers_pool_order', ['status', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('customers') as batch:
        batch.drop_index('ix_customers_pool_order')
        batch.create_index('ix_customers_status', ['status'], unique=False)
