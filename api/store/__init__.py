"""The durable job store: SQLAlchemy tables, sessions and Alembic migrations."""
