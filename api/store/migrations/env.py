"""Alembic environment: the service always passes an open connection (see api.store.migrate)."""

from __future__ import annotations

from alembic import context

from api.store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through api.store.migrate.upgrade(), which passes a "
                       "connection")

context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
