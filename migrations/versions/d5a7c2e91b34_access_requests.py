"""access_requests: Request access from the denied page, approved by Administrators or the group's owners

Revision ID: d5a7c2e91b34
Revises: c3e8a1f07b52
Create Date: 2026-12-04 18:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd5a7c2e91b34'
down_revision = 'c3e8a1f07b52'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'access_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('requester_id', sa.Integer(), nullable=False),
        sa.Column('requester_label', sa.String(length=320), nullable=False),
        sa.Column('datasource_id', sa.Integer(), nullable=True),
        sa.Column('group_id', sa.String(length=64), nullable=False),
        sa.Column('group_name', sa.String(length=256), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('path', sa.String(length=2048), nullable=False),
        sa.Column('rule_name', sa.String(length=256), nullable=False),
        sa.Column('reason', sa.String(length=512), nullable=False),
        sa.Column('approver_ids', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('decided_by', sa.String(length=320), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('message', sa.String(length=1024), nullable=False),
        sa.Column('seen_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['requester_id'], ['users.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['datasource_id'], ['datasources.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_access_requests_requester_id', 'access_requests', ['requester_id'])
    op.create_index('ix_access_requests_status_created', 'access_requests', ['status', 'created_at'])
    op.create_index('uq_access_requests_pending', 'access_requests', ['requester_id', 'group_id'], unique=True,
                    sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))


def downgrade():
    op.drop_index('uq_access_requests_pending', table_name='access_requests')
    op.drop_index('ix_access_requests_status_created', table_name='access_requests')
    op.drop_index('ix_access_requests_requester_id', table_name='access_requests')
    op.drop_table('access_requests')
