"""the staff console's users (web_user) and indexes for its lists and boards

Revision ID: web0009
Revises: silence_0009
Create Date: 2026-12-06 18:15:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'web0009'
down_revision = 'silence_0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'web_user',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('department', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
        sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('last_sign_in_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    op.create_index('ix_submission_department_created', 'submission', ['department', 'created_at', 'id'])
    op.create_index('ix_submission_status_created', 'submission', ['status', 'created_at', 'id'])
    op.create_index('ix_review_task_status_created', 'review_task', ['status', 'created_at'])
    op.create_index('ix_inbound_message_kind_status', 'inbound_message', ['kind', 'status'])


def downgrade() -> None:
    op.drop_index('ix_inbound_message_kind_status', table_name='inbound_message')
    op.drop_index('ix_review_task_status_created', table_name='review_task')
    op.drop_index('ix_submission_status_created', table_name='submission')
    op.drop_index('ix_submission_department_created', table_name='submission')
    op.drop_table('web_user')
