"""review reminders

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 09:27:03.988754
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('review_task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chased_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('escalated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('review_task', schema=None) as batch_op:
        batch_op.drop_column('escalated_at')
        batch_op.drop_column('chased_at')

