"""a reviewer's files are kept with the 稿件 (submission_file.source); why a file cannot be
opened (submission_file.problem)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 16:40:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('submission_file', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False,
                                      server_default='unit'))
        batch_op.add_column(sa.Column('problem', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('submission_file', schema=None) as batch_op:
        batch_op.drop_column('problem')
        batch_op.drop_column('source')
