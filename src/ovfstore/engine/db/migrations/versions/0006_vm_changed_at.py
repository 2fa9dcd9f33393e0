"""When each VM's and template's generation last moved: the age of a change not yet in the OVF stores.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: rows already there have no known change time until their next change.
    op.add_column("vm_static", sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("vm_static") as batch:
        batch.drop_column("changed_at")
