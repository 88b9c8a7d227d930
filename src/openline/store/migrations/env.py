"""Alembic environment: runs on a connection handed over by ``Database.migrate``."""

from __future__ import annotations

from alembic import context

from openline.store import (
    tables_dashboard,  # noqa: F401  (registers the dashboard tables)
    tables_phonic,  # noqa: F401  (data protection, storage, JWTs)
    tables_postcall,  # noqa: F401  (registers the post-call tables)
    tables_vapi,  # noqa: F401  (registers the Vapi tables)
    tables_vapi_live,  # noqa: F401  (the Vapi dialect's live calls)
)
from openline.store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via `alembic` CLI without a connection
    raise RuntimeError("run migrations through openline.store.db.Database.migrate()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
