"""Time zones: per scheduled task and per user preference

Existing tasks keep UTC, the zone they ran in until now; users without a preference see the deployment's TIME_ZONE.

Revision ID: 59031de8a6ed
Revises: 853f34c0da13
Create Date: 2026-12-04 07:40:51.110591

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '59031de8a6ed'
down_revision = '853f34c0da13'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('scheduled_tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('time_zone', sa.String(length=64), server_default='UTC', nullable=False))

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('time_zone', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('time_zone')

    with op.batch_alter_table('scheduled_tasks', schema=None) as batch_op:
        batch_op.drop_column('time_zone')
