"""live access: per-datasource switch and state, and the Graph change-notification subscriptions

Revision ID: a7d3c9e5f120
Revises: e8c41f0a7d29
Create Date: 2026-12-04 21:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a7d3c9e5f120'
down_revision = 'e8c41f0a7d29'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'live_access',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('datasource_id', sa.Integer(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('notifications', sa.Boolean(), nullable=False),
        sa.Column('poll_seconds', sa.Integer(), nullable=False),
        sa.Column('fallback_reason', sa.String(length=512), nullable=False),
        sa.Column('sync_requested_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('sync_due_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('sync_reason', sa.String(length=64), nullable=False),
        sa.Column('last_round_started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_round_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_round_error', sa.Text(), nullable=True),
        sa.Column('last_reconciled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('lag_seconds', sa.Double(), nullable=True),
        sa.Column('last_notification_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('notifications_received', sa.Integer(), nullable=False),
        sa.Column('notifications_refused', sa.Integer(), nullable=False),
        sa.Column('sessions_ended', sa.Integer(), nullable=False),
        sa.Column('sessions_refreshed', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by', sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(['datasource_id'], ['datasources.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('datasource_id'),
    )
    op.create_table(
        'graph_subscriptions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('datasource_id', sa.Integer(), nullable=False),
        sa.Column('subscription_id', sa.String(length=64), nullable=False),
        sa.Column('resource', sa.String(length=64), nullable=False),
        sa.Column('change_type', sa.String(length=64), nullable=False),
        sa.Column('client_state', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('renewed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_notification_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['datasource_id'], ['datasources.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('subscription_id'),
    )
    op.create_index('ix_graph_subscriptions_datasource_id', 'graph_subscriptions', ['datasource_id'])
    # The user mirror learns when each user's sign-in sessions became valid (revokeSignInSessions).
    with op.batch_alter_table('import_source_users') as batch:
        batch.add_column(sa.Column('sessions_valid_from', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('import_source_users') as batch:
        batch.drop_column('sessions_valid_from')
    op.drop_index('ix_graph_subscriptions_datasource_id', table_name='graph_subscriptions')
    op.drop_table('graph_subscriptions')
    op.drop_table('live_access')
