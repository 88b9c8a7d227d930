"""scale out (reserved: filled in by the work that needs it; a no-op until then)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 19:00:00
"""

from __future__ import annotations

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
