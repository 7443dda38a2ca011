"""0011, the baseline: every table as the numbered SQL migrations 0001-0011 left them (a
database created now starts here; a SQLite file made before Alembic was migrated by those files
and is stamped 0011)."""

from alembic import op

from newsletter.schema import frozen_0011

revision = "0011"
down_revision = None


def upgrade() -> None:
    frozen_0011.metadata.create_all(op.get_bind())
