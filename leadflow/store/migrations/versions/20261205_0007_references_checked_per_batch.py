"""references of the high-volume tables checked per batch, not per row (issue 10)

A foreign key is a trigger per written row: a lookup and a row lock on the referenced customer or person. A lead
writes nine such references on its way in (its phone, its registration's customer, two ledger rows, its
assignment's customer, person and department, its owner and department on the customer): about a third of the
database's time at 100,000 leads. The rows they reference are never deleted (customers stay; a person who leaves
is marked departed, R-CONV-6), so the per-row lock guards nothing; `leadflow.store.references` checks each bulk
write's references in one statement per referenced table instead.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

# (table, column, referenced table): the foreign keys this revision drops; names as PostgreSQL gave them
DROPPED = (
    ("registrations", "customer_id", "customers"),
    ("customers", "owner_id", "people"),
    ("customers", "department_id", "departments"),
    ("customer_phones", "customer_id", "customers"),
    ("assignments", "customer_id", "customers"),
    ("assignments", "person_id", "people"),
    ("assignments", "department_id", "departments"),
    ("ledger", "customer_id", "customers"),
)
# SQLite's foreign keys have no names: batch mode names them by this convention to find them
_SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _by_table():
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, referred in DROPPED:
        tables.setdefault(table, []).append((column, referred))
    return tables


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    inspector = sa.inspect(bind)
    for table, refs in _by_table().items():
        # a key's name as the database has it: PostgreSQL's default, or the one `downgrade` gave it; an unnamed
        # SQLite key gets the batch naming convention's
        names = {fk["constrained_columns"][0]: fk.get("name") for fk in inspector.get_foreign_keys(table)}
        if sqlite:
            with op.batch_alter_table(table, naming_convention=_SQLITE_NAMES) as batch:
                for column, referred in refs:
                    batch.drop_constraint(names.get(column) or f"fk_{table}_{column}_{referred}", type_="foreignkey")
        else:
            for column, _ in refs:
                op.drop_constraint(names.get(column) or f"{table}_{column}_fkey", table, type_="foreignkey")


def downgrade() -> None:
    for table, refs in _by_table().items():
        with op.batch_alter_table(table) as batch:
            for column, referred in refs:
                batch.create_foreign_key(f"{table}_{column}_fkey", referred, [column], ["id"])
