"""campaign forms

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 09:42:24.586402
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('campaign_reminder',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('offset', sa.Integer(), nullable=False),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('campaign', 'unit', 'offset', name='uq_campaign_reminder')
    )
    op.create_table('form_return',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('sender', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('inbound_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.Text(), nullable=False),
    sa.Column('path', sqlmodel.sql.sqltypes.AutoString(length=700), nullable=True),
    sa.Column('format', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('valid', sa.Boolean(), nullable=False),
    sa.Column('stamped', sa.Boolean(), nullable=False),
    sa.Column('on_time', sa.Boolean(), nullable=False),
    sa.Column('result_json', sa.Text(), nullable=False),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['inbound_id'], ['inbound_message.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('form_return', schema=None) as batch_op:
        batch_op.create_index('ix_form_return_campaign_unit', ['campaign', 'unit'], unique=False)
        batch_op.create_index(batch_op.f('ix_form_return_inbound_id'), ['inbound_id'], unique=False)

    op.create_table('form_row',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('return_id', sa.Integer(), nullable=False),
    sa.Column('row_index', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('row_unit', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('parent', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('data_json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['return_id'], ['form_return.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('form_row', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_row_return_id'), ['return_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('form_row', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_form_row_return_id'))

    op.drop_table('form_row')
    with op.batch_alter_table('form_return', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_form_return_inbound_id'))
        batch_op.drop_index('ix_form_return_campaign_unit')

    op.drop_table('form_return')
    op.drop_table('campaign_reminder')
