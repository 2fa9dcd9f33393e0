"""Unregistered disks keep each volume's parent link, size, format and legality as found on storage, so
that registration extends a disk's chain only along real parent links.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("unregistered_disks") as batch:
        batch.add_column(sa.Column("volumes", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("unregistered_disks") as batch:
        batch.drop_column("volumes")
