"""Persistence: SQLAlchemy tables, repositories, Alembic migrations, blob store."""
