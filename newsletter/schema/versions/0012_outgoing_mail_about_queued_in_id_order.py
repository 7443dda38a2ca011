"""0012: the index of one announcement's emails (`outgoing_mail_about`) holds only the queued
ones, in id order: a pass takes its next page from it in id order on PostgreSQL too, whatever
the planner's statistics say (right after 100,000 rows were owed it had none, and sorted every
row for each page), and claiming or recording an email no longer writes to it (on PostgreSQL
every change of status writes a new entry in each index the row is in). Queries about every
status of one thing use the unique index (about_id, kind, subscriber_id)."""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.drop_index("outgoing_mail_about", table_name="outgoing_mail")
    queued = sa.text("status = 'queued'")
    op.create_index(
        "outgoing_mail_about",
        "outgoing_mail",
        ["about_id", "kind", "id"],
        sqlite_where=queued,
        postgresql_where=queued,
    )
