"""Alembic's environment: migrate the connection :func:`~blindmatch.service.storage.migrate`
hands over (``config.attributes["connection"]``). No ini file, no URL of its own."""

from __future__ import annotations

from alembic import context

from blindmatch.service.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
