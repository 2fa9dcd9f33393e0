"""Storage domains keep every setting oVirt's API takes for them (backup, wipe and discard after delete,
the space thresholds) and their storage connection's details (file system type, mount options, NFS
version, timeout and retransmissions), so that a client that sets them sees them again unchanged.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("backup", sa.Boolean(), "0"),
    ("wipe_after_delete", sa.Boolean(), "0"),
    ("discard_after_delete", sa.Boolean(), "0"),
    ("warning_low_space_indicator", sa.Integer(), "10"),
    ("critical_space_action_blocker", sa.Integer(), "5"),
    ("vfs_type", sa.String(length=255), ""),
    ("mount_options", sa.String(length=4000), ""),
    ("nfs_version", sa.String(length=16), ""),
    ("nfs_timeo", sa.Integer(), "0"),
    ("nfs_retrans", sa.Integer(), "0"),
)


def upgrade() -> None:
    with op.batch_alter_table("storage_domains") as batch:
        for name, kind, default in _COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=False, server_default=default))


def downgrade() -> None:
    with op.batch_alter_table("storage_domains") as batch:
        for name, _kind, _default in reversed(_COLUMNS):
            batch.drop_column(name)
