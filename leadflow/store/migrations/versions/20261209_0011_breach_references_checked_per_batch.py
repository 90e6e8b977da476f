"""breaches' references checked per batch, not per row (issue 10)

The monthly audit writes its listings (R-SLA-5) and the SLA check its breaches (R-SLA-1..4) as `breaches` rows in
bulk: tens of thousands at once at 1 M open leads. Each row's three foreign keys (its customer, person and
assignment) were a lookup and a row lock on the referenced row: about 40 % of the server's time for the insert at
300,000 leads. The rows they reference are never deleted (customers and assignments stay; a person who leaves is
marked departed, R-CONV-6), so `leadflow.store.references` checks each bulk write's references in one statement
per referenced table instead, as migration 0007 did for the intake's tables.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

# (column, referenced table): the foreign keys of `breaches` this revision drops
DROPPED = (("customer_id", "customers"), ("person_id", "people"), ("assignment_id", "assignments"))
# SQLite's foreign keys have no names: batch mode names them by this convention to find them
_SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def upgrade() -> None:
    bind = op.get_bind()
    # a key's name as the database has it: PostgreSQL's default, or the one `downgrade` gave it; an unnamed
    # SQLite key gets the batch naming convention's
    names = {fk["constrained_columns"][0]: fk.get("name") for fk in sa.inspect(bind).get_foreign_keys("breaches")}
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table("breaches", naming_convention=_SQLITE_NAMES) as batch:
            for column, referred in DROPPED:
                batch.drop_constraint(names.get(column) or f"fk_breaches_{column}_{referred}", type_="foreignkey")
    else:
        for column, _ in DROPPED:
            op.drop_constraint(names.get(column) or f"breaches_{column}_fkey", "breaches", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("breaches") as batch:
        for column, referred in DROPPED:
            batch.create_foreign_key(f"breaches_{column}_fkey", referred, [column], ["id"])
