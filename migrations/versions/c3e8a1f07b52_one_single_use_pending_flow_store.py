"""One single-use pending-flow store (pending_flows) for SSO sign-ins and datasource authorizations

Replaces sso_flows and pending_authorizations. Flows in flight during the upgrade (at most 10 minutes' worth) are
dropped: their callbacks say "expired or already used" and the person starts again.

Revision ID: c3e8a1f07b52
Revises: 0afddd8ac726
Create Date: 2026-12-04 14:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c3e8a1f07b52'
down_revision = '0afddd8ac726'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('pending_flows',
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'key_hash', name=op.f('pk_pending_flows'))
    )
    with op.batch_alter_table('pending_flows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_flows_expires_at'), ['expires_at'], unique=False)

    with op.batch_alter_table('sso_flows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sso_flows_created_at'))
    op.drop_table('sso_flows')
    with op.batch_alter_table('pending_authorizations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_authorizations_datasource_id'))
    op.drop_table('pending_authorizations')


def downgrade():
    op.create_table('pending_authorizations',
    sa.Column('state', sa.String(length=128), nullable=False),
    sa.Column('datasource_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('flow', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['datasource_id'], ['datasources.id'], name=op.f('fk_pending_authorizations_datasource_id_datasources'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_pending_authorizations_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('state', name=op.f('pk_pending_authorizations'))
    )
    with op.batch_alter_table('pending_authorizations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_authorizations_datasource_id'), ['datasource_id'], unique=False)
    op.create_table('sso_flows',
    sa.Column('state', sa.String(length=128), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('secrets', sa.Text(), nullable=False),
    sa.Column('next_path', sa.String(length=2048), nullable=True),
    sa.Column('redirect_uri', sa.String(length=2048), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['sso_providers.id'], name=op.f('fk_sso_flows_provider_id_sso_providers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('state', name=op.f('pk_sso_flows'))
    )
    with op.batch_alter_table('sso_flows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_flows_created_at'), ['created_at'], unique=False)

    with op.batch_alter_table('pending_flows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_flows_expires_at'))
    op.drop_table('pending_flows')
