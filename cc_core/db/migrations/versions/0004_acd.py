"""ACD: queue, agent, wrap-up and survey agent on calls; recordings; callbacks and their attempts.

Revision ID: 0004
Revises: 0003
Create Date: 2024-07-15
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from cc_core.db.models: a migration must not change when the
# models do. UTCDateTime stores as DateTime(timezone=True).
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Batch mode: SQLite cannot alter tables in place for everything; on PostgreSQL this is
    # plain ALTER TABLE. Every new column is nullable, so existing calls need no values.
    with op.batch_alter_table("calls") as batch_op:
        batch_op.add_column(sa.Column("queue", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("skill", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("queued_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("connected_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("agent_id", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("wrapup_ended_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("summary", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("survey_agent_id", sa.String(length=16), nullable=True))
        batch_op.create_index(op.f("ix_calls_queued_at"), ["queued_at"], unique=False)
        batch_op.create_index(op.f("ix_calls_agent_id"), ["agent_id"], unique=False)
        batch_op.create_index(op.f("ix_calls_caller_number"), ["caller_number"], unique=False)

    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("uniqueid", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=16), nullable=True),
        sa.Column("leg", sa.String(length=16), nullable=False),
        sa.Column("file", sa.String(length=255), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_recordings_call_id_calls"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.UniqueConstraint("file", name=op.f("uq_recordings_file")),
    )
    op.create_index(op.f("ix_recordings_call_id"), "recordings", ["call_id"], unique=False)
    op.create_index(op.f("ix_recordings_uniqueid"), "recordings", ["uniqueid"], unique=False)
    op.create_index(op.f("ix_recordings_status"), "recordings", ["status"], unique=False)

    op.create_table(
        "callbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", UTC_DATETIME, nullable=True),
        sa.Column("closed_at", UTC_DATETIME, nullable=True),
        sa.Column("reached_at", UTC_DATETIME, nullable=True),
        sa.Column("agent_id", sa.String(length=16), nullable=True),
        sa.Column("close_reason", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
        sa.UniqueConstraint("number", "day", name="uq_callbacks_number_day"),
    )
    op.create_index(op.f("ix_callbacks_day"), "callbacks", ["day"], unique=False)
    op.create_index(op.f("ix_callbacks_status"), "callbacks", ["status"], unique=False)

    op.create_table(
        "callback_calls",
        sa.Column("callback_id", sa.Integer(), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["callback_id"],
            ["callbacks.id"],
            name=op.f("fk_callback_calls_callback_id_callbacks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("callback_id", "uniqueid", name=op.f("pk_callback_calls")),
    )

    op.create_table(
        "callback_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("callback_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=16), nullable=True),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.Column("result", sa.String(length=24), nullable=True),
        sa.Column("agent_uniqueid", sa.String(length=64), nullable=True),
        sa.Column("citizen_uniqueid", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["callback_id"],
            ["callbacks.id"],
            name=op.f("fk_callback_attempts_callback_id_callbacks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_attempts")),
    )
    op.create_index(op.f("ix_callback_attempts_callback_id"), "callback_attempts", ["callback_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_callback_attempts_callback_id"), table_name="callback_attempts")
    op.drop_table("callback_attempts")
    op.drop_table("callback_calls")
    op.drop_index(op.f("ix_callbacks_status"), table_name="callbacks")
    op.drop_index(op.f("ix_callbacks_day"), table_name="callbacks")
    op.drop_table("callbacks")
    op.drop_index(op.f("ix_recordings_status"), table_name="recordings")
    op.drop_index(op.f("ix_recordings_uniqueid"), table_name="recordings")
    op.drop_index(op.f("ix_recordings_call_id"), table_name="recordings")
    op.drop_table("recordings")
    with op.batch_alter_table("calls") as batch_op:
        batch_op.drop_index(op.f("ix_calls_caller_number"))
        batch_op.drop_index(op.f("ix_calls_agent_id"))
        batch_op.drop_index(op.f("ix_calls_queued_at"))
        batch_op.drop_column("survey_agent_id")
        batch_op.drop_column("summary")
        batch_op.drop_column("wrapup_ended_at")
        batch_op.drop_column("agent_id")
        batch_op.drop_column("connected_at")
        batch_op.drop_column("queued_at")
        batch_op.drop_column("priority")
        batch_op.drop_column("skill")
        batch_op.drop_column("queue")
