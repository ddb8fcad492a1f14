"""one worker per server action: message_copy.claimed_at (a copy is claimed before its
MOVE/COPY, so two workers never file a message twice into a server folder)

Revision ID: silence_0011
Revises: web0009
Create Date: 2026-12-06 18:45:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'silence_0011'
down_revision = 'web0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('message_copy', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('message_copy', schema=None) as batch_op:
        batch_op.drop_column('claimed_at')
