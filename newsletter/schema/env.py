"""Alembic's environment: migrations always run on the connection `newsletter.schema.run`
gives, inside its transaction (it holds the database's writer lock)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transactional_ddl=True, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
