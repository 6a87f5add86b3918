"""Agents: each agent's current state and the history of their state changes.

Revision ID: 0003
Revises: 0002
Create Date: 2024-07-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from cc_core.db.models: a migration must not change when the
# models do. UTCDateTime stores as DateTime(timezone=True).
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    # New tables only, with their constraints inline: nothing to ALTER, so no batch mode needed
    # on SQLite and the existing tables are not touched.
    op.create_table(
        "agent_states",
        sa.Column("agent_id", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_since", UTC_DATETIME, nullable=False),
        sa.Column("pause_reason", sa.String(length=64), nullable=True),
        sa.Column("wrapup_until", UTC_DATETIME, nullable=True),
        sa.Column("extension", sa.String(length=32), nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent_states")),
    )

    op.create_table(
        "agent_state_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=16), nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("call_uniqueid", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_state_changes")),
        sa.UniqueConstraint("agent_id", "at", "to_state", name="uq_agent_state_changes_agent_id_at_to_state"),
    )
    op.create_index(op.f("ix_agent_state_changes_agent_id"), "agent_state_changes", ["agent_id"], unique=False)
    op.create_index(op.f("ix_agent_state_changes_at"), "agent_state_changes", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_agent_state_changes_at"), table_name="agent_state_changes")
    op.drop_index(op.f("ix_agent_state_changes_agent_id"), table_name="agent_state_changes")
    op.drop_table("agent_state_changes")
    op.drop_table("agent_states")
