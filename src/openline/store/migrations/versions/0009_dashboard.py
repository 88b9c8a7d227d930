"""dashboard: browser sessions, login links, per-turn stage timings

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'dashboard_sessions',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('workspace_id', sa.String(length=64), nullable=False),
        sa.Column('api_key_id', sa.String(length=64), nullable=True),
        sa.Column('csrf_token', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], ondelete='CASCADE',
                                name=op.f('fk_dashboard_sessions_workspace_id_workspaces')),
        sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], ondelete='CASCADE',
                                name=op.f('fk_dashboard_sessions_api_key_id_api_keys')),
        sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_dashboard_sessions')),
    )
    with op.batch_alter_table('dashboard_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dashboard_sessions_expires_at'), ['expires_at'],
                              unique=False)
    op.create_table(
        'dashboard_login_links',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('workspace_id', sa.String(length=64), nullable=False),
        sa.Column('api_key_id', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], ondelete='CASCADE',
                                name=op.f('fk_dashboard_login_links_workspace_id_workspaces')),
        sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], ondelete='CASCADE',
                                name=op.f('fk_dashboard_login_links_api_key_id_api_keys')),
        sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_dashboard_login_links')),
    )
    op.create_table(
        'conversation_stage_timings',
        sa.Column('conversation_id', sa.String(length=64), nullable=False),
        sa.Column('turns', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ['conversation_id'], ['conversations.id'], ondelete='CASCADE',
            name=op.f('fk_conversation_stage_timings_conversation_id_conversations')),
        sa.PrimaryKeyConstraint('conversation_id', name=op.f('pk_conversation_stage_timings')),
    )


def downgrade() -> None:
    op.drop_table('conversation_stage_timings')
    op.drop_table('dashboard_login_links')
    with op.batch_alter_table('dashboard_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dashboard_sessions_expires_at'))
    op.drop_table('dashboard_sessions')
