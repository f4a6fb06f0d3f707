"""Datasets may carry unit polygons (GeoJSON text) for territory boundaries and contiguity.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable additions: existing datasets simply have no units (no table rebuild needed).
    op.add_column("datasets", sa.Column("units_count", sa.Integer(), nullable=True))
    op.add_column("datasets", sa.Column("units_geojson", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("units_geojson")
        batch.drop_column("units_count")
