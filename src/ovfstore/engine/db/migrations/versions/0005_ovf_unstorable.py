"""Entities whose OVF is too large for any store: recorded so status can say they are not protected.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ovf_unstorable",
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("ovf_size", sa.BigInteger(), nullable=False),
        sa.Column("data_center_id", sa.Uuid(), nullable=True),
        sa.Column("domain_ids", sa.Text(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"], ["vm_static.id"], name=op.f("fk_ovf_unstorable_entity_id_vm_static"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("entity_id", name=op.f("pk_ovf_unstorable")),
    )


def downgrade() -> None:
    op.drop_table("ovf_unstorable")
