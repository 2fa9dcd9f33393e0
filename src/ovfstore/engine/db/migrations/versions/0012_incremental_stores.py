"""Incremental OVF store writes (engine/updater/append.py): what each store's last whole write held, what
was appended since, and per domain the entities changed since its stores were written.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("base_size", sa.BigInteger(), nullable=True),
        sa.Column("appended", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("status_sha256", sa.String(length=64), nullable=True),
        sa.Column("unregistered", sa.Integer(), nullable=True),
    ]


def upgrade() -> None:
    # Existing stores keep NULLs: each is written whole once more before it is appended to.
    with op.batch_alter_table("ovf_stores") as batch:
        for column in _columns():
            batch.add_column(column)
    op.create_table(
        "ovf_store_changes",
        sa.Column("domain_id", sa.Uuid(), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["storage_domains.id"],
            name=op.f("fk_ovf_store_changes_domain_id_storage_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("domain_id", "entity_id", name=op.f("pk_ovf_store_changes")),
    )


def downgrade() -> None:
    op.drop_table("ovf_store_changes")
    with op.batch_alter_table("ovf_stores") as batch:
        for column in reversed(_columns()):
            batch.drop_column(column.name)
