"""secrets at rest: key_checks, webhook secrets as text, existing plaintext sealed

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-12 10:00:00

Seals the secrets that earlier releases stored in plaintext (tools' endpoint headers,
configuration endpoints' headers of agents, agent versions, phone numbers and conversation
snapshots, SIP passwords, webhook signing secrets) with the process's secret key, and
records that key's check value. A migration run without a key (a database handle opened
without one) only changes the schema; the first start with a key seals the rest
(``store/sealed.py`` ``check_key``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from openline.store.sealed import SealedColumn, seal_plaintext, write_check

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_ENDPOINT = ("configuration_endpoint.headers.*",)
# Frozen here: what this revision seals does not change when the models do.
_COLUMNS = (
    SealedColumn("agents", ("id",), "spec", _ENDPOINT),
    SealedColumn("agent_versions", ("agent_id", "version_number"), "spec", _ENDPOINT),
    SealedColumn("phone_numbers", ("id",), "sip", ("password",)),
    SealedColumn("phone_numbers", ("id",), "configuration_endpoint", ("headers.*",)),
    SealedColumn("tools", ("id",), "spec", ("endpoint_headers.*",)),
    SealedColumn("conversations", ("id",), "config", _ENDPOINT),
    SealedColumn("webhook_endpoints", ("id",), "secret"),
)


def upgrade() -> None:
    op.create_table('key_checks',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('sealed', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_key_checks'))
    )
    bind = op.get_bind()
    # A sealed secret is longer than 128 characters. SQLite does not enforce VARCHAR
    # lengths, and rebuilding the table there would cascade-delete its delivery log.
    if bind.dialect.name != 'sqlite':
        op.alter_column('webhook_endpoints', 'secret', type_=sa.Text(),
                        existing_type=sa.String(length=128), existing_nullable=False)
    box = context.config.attributes.get('secret_box')
    if box is not None:
        seal_plaintext(bind, box, _COLUMNS)
        write_check(bind, box)


def downgrade() -> None:
    # Sealed values stay sealed: opening them needs the key, which downgrades do not get.
    op.drop_table('key_checks')
