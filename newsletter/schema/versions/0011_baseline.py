"""0011, the baseline: every table as the numbered SQL migrations 0001-0011 left them (a
database created now starts here; a SQLite file made before Alembic was migrated by those files
and is stamped 0011)."""

from alembic import op

from newsletter.schema import tables

revision = "0011"
down_revision = None


def upgrade() -> None:
    # The baseline is the schema of tables.py while no later revision exists; the first one
    # that changes a table freezes a copy of these tables here (tests/test_schema.py checks).
    tables.metadata.create_all(op.get_bind())
