"""vapi resources: the documents of the Vapi dialect (assistants, squads, tools, phone
numbers, files, blocks, calls)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'vapi_resources',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('workspace_id', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('doc', sa.JSON(), nullable=False),
        sa.Column('link_id', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'],
                                name=op.f('fk_vapi_resources_workspace_id_workspaces'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_vapi_resources')),
    )
    with op.batch_alter_table('vapi_resources', schema=None) as batch_op:
        batch_op.create_index('ix_vapi_resources_kind_created',
                              ['workspace_id', 'kind', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_vapi_resources_link_id'), ['link_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('vapi_resources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vapi_resources_link_id'))
        batch_op.drop_index('ix_vapi_resources_kind_created')
    op.drop_table('vapi_resources')
