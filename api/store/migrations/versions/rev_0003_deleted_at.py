"""Deleted datasets, batches and jobs stay as tombstones: their rows without the data.

A job's row keeps its kind, state and run time (the /metrics counters count ended jobs and
must never go down) and what it ran on; a dataset's keeps its name and sizes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from api.store.tables import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
TABLES = ("datasets", "batches", "jobs")


def upgrade() -> None:
    # Nullable additions: nothing existing is deleted (no table rebuild needed).
    for table in TABLES:
        op.add_column(table, sa.Column("deleted_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("deleted_at")
