"""live access, notifications: the endpoint's refusals and replay digests, subscription URL and lifecycle state

Revision ID: b3e8f2a61d07
Revises: a7d3c9e5f120
Create Date: 2026-12-04 21:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b3e8f2a61d07'
down_revision = 'a7d3c9e5f120'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('live_access') as batch:
        batch.add_column(sa.Column('notifications_replayed', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('missed_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('maintaining_until', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('graph_subscriptions') as batch:
        batch.add_column(sa.Column('notification_url', sa.String(length=1000), nullable=False, server_default=''))
        batch.add_column(sa.Column('last_lifecycle_event', sa.String(length=32), nullable=False, server_default=''))
        batch.add_column(sa.Column('last_lifecycle_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'live_refused_notifications',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('datasource_id', sa.Integer(), nullable=True),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('detail', sa.String(length=300), nullable=False),
        sa.Column('subscription_id', sa.String(length=64), nullable=False),
        sa.Column('client_ip', sa.String(length=64), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['datasource_id'], ['datasources.id'],
                                name=op.f('fk_live_refused_notifications_datasource_id_datasources'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_live_refused_notifications')),
    )
    op.create_index(op.f('ix_live_refused_notifications_at'), 'live_refused_notifications', ['at'])
    op.create_index(op.f('ix_live_refused_notifications_datasource_id'), 'live_refused_notifications',
                    ['datasource_id'])
    op.create_table(
        'live_seen_notifications',
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('digest', name=op.f('pk_live_seen_notifications')),
    )
    op.create_index(op.f('ix_live_seen_notifications_expires_at'), 'live_seen_notifications', ['expires_at'])


def downgrade():
    op.drop_index(op.f('ix_live_seen_notifications_expires_at'), table_name='live_seen_notifications')
    op.drop_table('live_seen_notifications')
    op.drop_index(op.f('ix_live_refused_notifications_datasource_id'), table_name='live_refused_notifications')
    op.drop_index(op.f('ix_live_refused_notifications_at'), table_name='live_refused_notifications')
    op.drop_table('live_refused_notifications')
    with op.batch_alter_table('graph_subscriptions') as batch:
        batch.drop_column('last_lifecycle_at')
        batch.drop_column('last_lifecycle_event')
        batch.drop_column('notification_url')
    with op.batch_alter_table('live_access') as batch:
        batch.drop_column('maintaining_until')
        batch.drop_column('missed_at')
        batch.drop_column('notifications_replayed')
