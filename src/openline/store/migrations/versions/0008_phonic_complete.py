"""phonic complete: data protection state, external storage policies, socket JWT keys

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """The four tables of ``store/tables_phonic.py``."""
    op.create_table(
        'conversation_retention',
        sa.Column('conversation_id', sa.String(length=64), nullable=False),
        sa.Column('transcripts_due_at', _TS, nullable=True),
        sa.Column('audio_due_at', _TS, nullable=True),
        sa.Column('transcripts_deleted_at', _TS, nullable=True),
        sa.Column('audio_recordings_deleted_at', _TS, nullable=True),
        sa.Column('delivered_at', _TS, nullable=True),
        sa.Column('delivery_error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ['conversation_id'], ['conversations.id'], ondelete='CASCADE',
            name=op.f('fk_conversation_retention_conversation_id_conversations')),
        sa.PrimaryKeyConstraint('conversation_id', name=op.f('pk_conversation_retention')))
    with op.batch_alter_table('conversation_retention') as batch_op:
        batch_op.create_index('ix_conversation_retention_transcripts_due',
                              ['transcripts_due_at'], unique=False)
        batch_op.create_index('ix_conversation_retention_audio_due', ['audio_due_at'],
                              unique=False)
    op.create_table(
        'external_storage_policies',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('project_id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('endpoint_url', sa.String(length=2048), nullable=False),
        sa.Column('bucket', sa.String(length=255), nullable=False),
        sa.Column('region', sa.String(length=64), nullable=True),
        sa.Column('key_prefix', sa.String(length=512), nullable=True),
        sa.Column('addressing_style', sa.String(length=16), nullable=False),
        sa.Column('access_key_id', sa.Text(), nullable=False),
        sa.Column('secret_access_key', sa.Text(), nullable=False),
        sa.Column('created_at', _TS, nullable=False),
        sa.Column('updated_at', _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ['project_id'], ['projects.id'], ondelete='CASCADE',
            name=op.f('fk_external_storage_policies_project_id_projects')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_external_storage_policies')),
        sa.UniqueConstraint('project_id', 'name',
                            name=op.f('uq_external_storage_policies_project_id')))
    op.create_table(
        'socket_jwt_keys',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('workspace_id', sa.String(length=64), nullable=False),
        sa.Column('issuer', sa.String(length=255), nullable=False),
        sa.Column('audience', sa.String(length=255), nullable=False),
        sa.Column('algorithm', sa.String(length=16), nullable=False),
        sa.Column('key', sa.Text(), nullable=False),
        sa.Column('created_at', _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ['workspace_id'], ['workspaces.id'], ondelete='CASCADE',
            name=op.f('fk_socket_jwt_keys_workspace_id_workspaces')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_socket_jwt_keys')))
    with op.batch_alter_table('socket_jwt_keys') as batch_op:
        batch_op.create_index(batch_op.f('ix_socket_jwt_keys_workspace_id'), ['workspace_id'],
                              unique=False)
    op.create_table(
        'socket_jwt_uses',
        sa.Column('key_id', sa.String(length=64), nullable=False),
        sa.Column('jti', sa.String(length=255), nullable=False),
        sa.Column('expires_at', _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ['key_id'], ['socket_jwt_keys.id'], ondelete='CASCADE',
            name=op.f('fk_socket_jwt_uses_key_id_socket_jwt_keys')),
        sa.PrimaryKeyConstraint('key_id', 'jti', name=op.f('pk_socket_jwt_uses')))
    with op.batch_alter_table('socket_jwt_uses') as batch_op:
        batch_op.create_index(batch_op.f('ix_socket_jwt_uses_expires_at'), ['expires_at'],
                              unique=False)


def downgrade() -> None:
    """Drop them again."""
    for table in ('socket_jwt_uses', 'socket_jwt_keys', 'external_storage_policies',
                  'conversation_retention'):
        op.drop_table(table)
