"""no mail ends in silence: every message's outcome (inbound_message.outcome/_reason); a
退回 without a reason asked for and told later (review_task.reason_asked_at/unit_told_at);
publication (submission.published_at); operator alerts, deduplicated (operator_alert)

Revision ID: silence_0009
Revises: 0008
Create Date: 2026-12-06 18:20:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'silence_0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))
        batch_op.add_column(sa.Column('outcome_reason', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_inbound_message_outcome'), ['outcome'], unique=False)
    with op.batch_alter_table('review_task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason_asked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('unit_told_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.add_column(sa.Column('published_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.create_table('operator_alert',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('first_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('resolved_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('operator_alert', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_operator_alert_kind'), ['kind'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('operator_alert', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_operator_alert_kind'))
    op.drop_table('operator_alert')
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.drop_column('published_at')
    with op.batch_alter_table('review_task', schema=None) as batch_op:
        batch_op.drop_column('unit_told_at')
        batch_op.drop_column('reason_asked_at')
    with op.batch_alter_table('inbound_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_message_outcome'))
        batch_op.drop_column('outcome_reason')
        batch_op.drop_column('outcome')
