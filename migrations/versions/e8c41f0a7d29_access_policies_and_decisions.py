"""access policies: versions of the rules document and the decisions that were not allowed

Revision ID: e8c41f0a7d29
Revises: d5a7c2e91b34
Create Date: 2026-12-04 19:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e8c41f0a7d29'
down_revision = 'd5a7c2e91b34'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'policy_versions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('document', sa.JSON(), nullable=False),
        sa.Column('created_by', sa.String(length=320), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('note', sa.String(length=512), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('number'),
    )
    op.create_table(
        'access_decisions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('user_label', sa.String(length=320), nullable=False),
        sa.Column('session_hash', sa.String(length=16), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('path', sa.String(length=2048), nullable=False),
        sa.Column('method', sa.String(length=16), nullable=False),
        sa.Column('rule_id', sa.String(length=64), nullable=False),
        sa.Column('rule_name', sa.String(length=256), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('criterion', sa.String(length=64), nullable=False),
        sa.Column('reason', sa.String(length=512), nullable=False),
        sa.Column('granting_groups', sa.JSON(), nullable=False),
        sa.Column('policy_version', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_access_decisions_at', 'access_decisions', ['at'])
    op.create_index('ix_access_decisions_outcome_at', 'access_decisions', ['outcome', 'at'])
    op.create_index('ix_access_decisions_user_id', 'access_decisions', ['user_id'])


def downgrade():
    op.drop_index('ix_access_decisions_user_id', table_name='access_decisions')
    op.drop_index('ix_access_decisions_outcome_at', table_name='access_decisions')
    op.drop_index('ix_access_decisions_at', table_name='access_decisions')
    op.drop_table('access_decisions')
    op.drop_table('policy_versions')
