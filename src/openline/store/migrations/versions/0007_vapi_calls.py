"""vapi calls: the Vapi dialect's live calls (create request, server-URL settings)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'vapi_calls',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('workspace_id', sa.String(length=64), nullable=False),
        sa.Column('call_type', sa.String(length=32), nullable=False),
        sa.Column('request', sa.JSON(), nullable=False),
        sa.Column('server', sa.Text(), nullable=True),
        sa.Column('ended_reason', sa.String(length=128), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['id'], ['conversations.id'],
                                name=op.f('fk_vapi_calls_id_conversations'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_vapi_calls')),
    )
    with op.batch_alter_table('vapi_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vapi_calls_workspace_id'), ['workspace_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('vapi_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vapi_calls_workspace_id'))
    op.drop_table('vapi_calls')
