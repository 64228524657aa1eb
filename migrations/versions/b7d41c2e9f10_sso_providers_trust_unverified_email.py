"""SSO providers: trust_unverified_email (a generic provider's e-mail is used only when verified, unless set)

Revision ID: b7d41c2e9f10
Revises: 59031de8a6ed
Create Date: 2026-12-04 08:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7d41c2e9f10'
down_revision = '59031de8a6ed'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sso_providers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trust_unverified_email', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('sso_providers', schema=None) as batch_op:
        batch_op.drop_column('trust_unverified_email')
