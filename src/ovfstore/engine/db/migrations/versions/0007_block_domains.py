"""Block storage domains (iSCSI, FCP): the volume group's UUID and the domain's LUNs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Domains already there are file domains: no volume group, no LUNs.
    op.add_column("storage_domains", sa.Column("vg_uuid", sa.String(64), nullable=False, server_default=""))
    op.add_column("storage_domains", sa.Column("logical_units", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("storage_domains") as batch:
        batch.drop_column("logical_units")
        batch.drop_column("vg_uuid")
