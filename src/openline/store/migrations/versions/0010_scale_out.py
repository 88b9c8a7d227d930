"""scale out: a workspace's concurrency limit defaults to the nodes' setting

``workspaces.max_active_conversations`` becomes the workspace's own override; NULL means
``OPENLINE_MAX_CONCURRENT_CONVERSATIONS`` (default 100). Rows holding the old column
default (100) had never been set by anyone (no API sets it), so they become NULL.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The column becomes nullable; the old default becomes "use the setting"."""
    with op.batch_alter_table('workspaces') as batch:
        batch.alter_column('max_active_conversations', existing_type=sa.Integer(),
                           nullable=True)
    op.execute("UPDATE workspaces SET max_active_conversations = NULL "
               "WHERE max_active_conversations = 100")


def downgrade() -> None:
    op.execute("UPDATE workspaces SET max_active_conversations = 100 "
               "WHERE max_active_conversations IS NULL")
    with op.batch_alter_table('workspaces') as batch:
        batch.alter_column('max_active_conversations', existing_type=sa.Integer(),
                           nullable=False)
