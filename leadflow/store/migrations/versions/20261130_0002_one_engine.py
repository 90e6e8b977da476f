"""one engine: lifecycle events, late evidence (R-SLA-7), enforced gates

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa
import leadflow.store.models

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

UTC = leadflow.store.models.UTCDateTime


def upgrade() -> None:
    # --- events (lifecycle events enter production) -------------------------------------------
    op.create_table('event_batches',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=True),
    sa.Column('operator', sa.String(length=64), nullable=True),
    sa.Column('rows_in', sa.Integer(), nullable=False),
    sa.Column('applied', sa.Integer(), nullable=False),
    sa.Column('duplicate', sa.Integer(), nullable=False),
    sa.Column('waiting', sa.Integer(), nullable=False),
    sa.Column('refused', sa.Integer(), nullable=False),
    sa.Column('started_at', UTC(), nullable=False),
    sa.Column('finished_at', UTC(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('batch_id', sa.String(length=64), nullable=False),
    sa.Column('row_number', sa.Integer(), nullable=False),
    sa.Column('source_event_id', sa.String(length=200), nullable=True),
    sa.Column('dedupe_key', sa.String(length=64), nullable=True),
    sa.Column('type', sa.String(length=20), nullable=True),
    sa.Column('at', UTC(), nullable=True),
    sa.Column('recorded_at', UTC(), nullable=False),
    sa.Column('customer_key', sa.String(length=200), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('other_customer_key', sa.String(length=200), nullable=True),
    sa.Column('other_customer_id', sa.Integer(), nullable=True),
    sa.Column('by', sa.String(length=64), nullable=True),
    sa.Column('person', sa.String(length=64), nullable=True),
    sa.Column('department', sa.String(length=64), nullable=True),
    sa.Column('fields', sa.JSON(), nullable=True),
    sa.Column('operator', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('wait_until', UTC(), nullable=True),
    sa.Column('applied_at', UTC(), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['event_batches.id'], ),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.ForeignKeyConstraint(['other_customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    op.create_index('ix_events_batch_id', 'events', ['batch_id'], unique=False)
    op.create_index('ix_events_customer_id', 'events', ['customer_id'], unique=False)
    op.create_index('ix_events_status', 'events', ['status'], unique=False)
    with op.batch_alter_table('activities') as batch:
        batch.add_column(sa.Column('recorded_at', UTC(), nullable=True))
        batch.add_column(sa.Column('event_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_activities_event_id', 'events', ['event_id'], ['id'])
    # --- sla (R-SLA-6 without a window, R-SLA-7 late evidence) ----------------------------------
    with op.batch_alter_table('assignments') as batch:  # existing rows start unsettled: the first check settles them
        batch.add_column(sa.Column('sla_settled', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_index('ix_assignments_sla_settled', ['sla_settled'], unique=False)
    with op.batch_alter_table('breaches') as batch:
        batch.add_column(sa.Column('revoked_at', UTC(), nullable=True))
    with op.batch_alter_table('fines') as batch:
        batch.add_column(sa.Column('revoked_at', UTC(), nullable=True))
    with op.batch_alter_table('pauses') as batch:
        batch.add_column(sa.Column('source_key', sa.String(length=200), nullable=True))
        batch.create_index('ix_pauses_source_key', ['source_key'], unique=False)
    # --- validation holds (gates enforce before every stage) ------------------------------------
    op.create_table('validation_holds',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('suite', sa.String(length=32), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('flagged_at', UTC(), nullable=False),
    sa.Column('cleared_at', UTC(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_validation_holds_customer_id', 'validation_holds', ['customer_id'], unique=False)
    op.create_index('ix_validation_holds_registration_id', 'validation_holds', ['registration_id'], unique=False)
    op.create_index('uq_validation_holds_open', 'validation_holds', ['registration_id', 'suite'], unique=True,
                    sqlite_where=sa.text('cleared_at IS NULL'), postgresql_where=sa.text('cleared_at IS NULL'))
    # --- end of sections ------------------------------------------------------------------------


def downgrade() -> None:
    # --- validation holds ---
    op.drop_index('uq_validation_holds_open', table_name='validation_holds',
                  sqlite_where=sa.text('cleared_at IS NULL'), postgresql_where=sa.text('cleared_at IS NULL'))
    op.drop_index('ix_validation_holds_registration_id', table_name='validation_holds')
    op.drop_index('ix_validation_holds_customer_id', table_name='validation_holds')
    op.drop_table('validation_holds')
    # --- sla ---
    with op.batch_alter_table('pauses') as batch:
        batch.drop_index('ix_pauses_source_key')
        batch.drop_column('source_key')
    with op.batch_alter_table('fines') as batch:
        batch.drop_column('revoked_at')
    with op.batch_alter_table('breaches') as batch:
        batch.drop_column('revoked_at')
    with op.batch_alter_table('assignments') as batch:
        batch.drop_index('ix_assignments_sla_settled')
        batch.drop_column('sla_settled')
    # --- events ---
    with op.batch_alter_table('activities') as batch:
        batch.drop_constraint('fk_activities_event_id', type_='foreignkey')
        batch.drop_column('event_id')
        batch.drop_column('recorded_at')
    op.drop_index('ix_events_status', table_name='events')
    op.drop_index('ix_events_customer_id', table_name='events')
    op.drop_index('ix_events_batch_id', table_name='events')
    op.drop_table('events')
    op.drop_table('event_batches')
