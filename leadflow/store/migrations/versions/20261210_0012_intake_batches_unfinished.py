"""intake batches staged and never decided are found by a partial index (issue 10, "nothing lost")

A run that crashed between staging a batch and deciding it left the batch's rows `staged`; when nothing delivers the
batch again (a lead through the Python API at the current time has a batch id of its own), no run decided them. Every
run now finishes such batches (`leadflow.stages.intake.recover_unfinished`), after its own act, so it asks each time
whether one exists: this index holds only the unfinished batches (`WHERE finished_at IS NULL`), nearly always none.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_intake_batches_unfinished", "intake_batches", ["started_at"],
                    sqlite_where=sa.text("finished_at IS NULL"), postgresql_where=sa.text("finished_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_intake_batches_unfinished", "intake_batches")
