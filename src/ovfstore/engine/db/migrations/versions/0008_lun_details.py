"""Direct LUN disks keep their vendor, product, serial and paths, so that their OVF carries them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("disks") as batch:
        batch.add_column(sa.Column("lun_vendor", sa.String(length=255), nullable=False, server_default=""))
        batch.add_column(sa.Column("lun_product", sa.String(length=255), nullable=False, server_default=""))
        batch.add_column(sa.Column("lun_serial", sa.String(length=255), nullable=False, server_default=""))
        batch.add_column(sa.Column("lun_connections", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("disks") as batch:
        for column in ("lun_connections", "lun_serial", "lun_product", "lun_vendor"):
            batch.drop_column(column)
