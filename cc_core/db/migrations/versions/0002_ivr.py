"""IVR: the flow a call took, its survey score and IVR exit; voicemails.

Revision ID: 0002
Revises: 0001
Create Date: 2024-06-15
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from cc_core.db.models: a migration must not change when the
# models do. UTCDateTime stores as DateTime(timezone=True).
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Batch mode: SQLite cannot alter tables in place for everything; on PostgreSQL this is
    # plain ALTER TABLE.
    with op.batch_alter_table("calls") as batch_op:
        batch_op.add_column(sa.Column("flow", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("flow_version", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("survey_score", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("ivr_exit", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("ivr_exit_detail", sa.String(length=64), nullable=True))

    op.create_table(
        "voicemails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("uniqueid", sa.String(length=64), nullable=False),
        sa.Column("caller_number", sa.String(length=32), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("file", sa.String(length=255), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("listened_at", UTC_DATETIME, nullable=True),
        sa.Column("listened_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_voicemails_call_id_calls"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voicemails")),
        sa.UniqueConstraint("uniqueid", "file", name="uq_voicemails_uniqueid_file"),
    )
    op.create_index(op.f("ix_voicemails_call_id"), "voicemails", ["call_id"], unique=False)
    op.create_index(op.f("ix_voicemails_uniqueid"), "voicemails", ["uniqueid"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_voicemails_uniqueid"), table_name="voicemails")
    op.drop_index(op.f("ix_voicemails_call_id"), table_name="voicemails")
    op.drop_table("voicemails")
    with op.batch_alter_table("calls") as batch_op:
        batch_op.drop_column("ivr_exit_detail")
        batch_op.drop_column("ivr_exit")
        batch_op.drop_column("survey_score")
        batch_op.drop_column("flow_version")
        batch_op.drop_column("flow")
