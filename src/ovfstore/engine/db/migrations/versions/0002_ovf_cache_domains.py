"""OVF cache membership as rows (`ovf_cache_domains`), the size and SHA-256 of each cached OVF,
data-center-wide entities.

The cache is derived data: the migration empties it and the updater regenerates every OVF on its next
run, which is cheaper and safer than converting the old text column.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM ovf_cache")
    op.create_table(
        "ovf_cache_domains",
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("domain_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["storage_domains.id"],
            name=op.f("fk_ovf_cache_domains_domain_id_storage_domains"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["ovf_cache.entity_id"],
            name=op.f("fk_ovf_cache_domains_entity_id_ovf_cache"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entity_id", "domain_id", name=op.f("pk_ovf_cache_domains")),
    )
    with op.batch_alter_table("ovf_cache_domains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ovf_cache_domains_domain_id"), ["domain_id"], unique=False)
    with op.batch_alter_table("ovf_cache", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ovf_size", sa.BigInteger(), nullable=False))
        batch_op.add_column(sa.Column("ovf_sha256", sa.String(length=64), nullable=False))
        batch_op.add_column(sa.Column("dc_wide", sa.Boolean(), nullable=False))
        batch_op.drop_column("domain_ids")


def downgrade() -> None:
    op.execute("DELETE FROM ovf_cache")
    with op.batch_alter_table("ovf_cache", schema=None) as batch_op:
        batch_op.add_column(sa.Column("domain_ids", sa.Text(), nullable=False))
        batch_op.drop_column("dc_wide")
        batch_op.drop_column("ovf_sha256")
        batch_op.drop_column("ovf_size")
    with op.batch_alter_table("ovf_cache_domains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ovf_cache_domains_domain_id"))
    op.drop_table("ovf_cache_domains")
