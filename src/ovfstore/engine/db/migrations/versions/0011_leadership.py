"""The leadership of several engines sharing one database: one row, the lease of the engine that runs the
OVF updater, with a term that grows with each new leader (engine/leadership.py).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "leadership",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("term", sa.BigInteger(), nullable=False),
        sa.Column("engine", sa.String(length=255), nullable=False),
        sa.Column("session", sa.String(length=64), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leadership")),
    )
    # The one row: no leader yet, a lease that expired long ago.
    op.bulk_insert(
        table,
        [
            {
                "id": 1,
                "term": 0,
                "engine": "",
                "session": "",
                "since": None,
                "expires_at": datetime(1970, 1, 1, tzinfo=UTC),
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("leadership")
