"""Recording archive: archive state, hashes, legal hold and purge on recordings; manifests, hold
events, the purge log and archive runs (issue 5, decision 0010).

Revision ID: 0005
Revises: 0004
Create Date: 2024-08-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from cc_core.db.models: a migration must not change when the
# models do. UTCDateTime stores as DateTime(timezone=True); JSON is JSONB on PostgreSQL.
UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "recording_manifests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("sealed_at", UTC_DATETIME, nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("previous_sha256", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_manifests")),
        sa.UniqueConstraint("position", name=op.f("uq_recording_manifests_position")),
        sa.UniqueConstraint("sha256", name=op.f("uq_recording_manifests_sha256")),
        sa.UniqueConstraint("path", name=op.f("uq_recording_manifests_path")),
        sa.UniqueConstraint("day", "part", name="uq_recording_manifests_day_part"),
    )

    # Batch mode: SQLite rebuilds the table (keeping rows, indexes and the unique file); on
    # PostgreSQL this is plain ALTER TABLE. Every new column is nullable: existing recordings
    # simply have not been taken up by the archiver yet.
    with op.batch_alter_table("recordings") as batch_op:
        batch_op.add_column(sa.Column("archive_state", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("archive_day", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("archive_path", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("archive_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("archive_size_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("archive_duration_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("archive_format", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("archive_error", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("archived_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("backed_up_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("manifest_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("hold_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("hold_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hold_reason", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("purged_at", UTC_DATETIME, nullable=True))
        batch_op.create_unique_constraint(op.f("uq_recordings_archive_path"), ["archive_path"])
        batch_op.create_foreign_key(
            op.f("fk_recordings_manifest_id_recording_manifests"), "recording_manifests", ["manifest_id"], ["id"]
        )
        batch_op.create_index(op.f("ix_recordings_archive_state"), ["archive_state"], unique=False)
        batch_op.create_index(op.f("ix_recordings_archive_day"), ["archive_day"], unique=False)
        batch_op.create_index(op.f("ix_recordings_manifest_id"), ["manifest_id"], unique=False)

    op.create_table(
        "recording_hold_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recordings.id"], name=op.f("fk_recording_hold_events_recording_id_recordings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_hold_events")),
    )
    op.create_index(
        op.f("ix_recording_hold_events_recording_id"), "recording_hold_events", ["recording_id"], unique=False
    )

    op.create_table(
        "recording_purges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("archive_path", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("purged_at", UTC_DATETIME, nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("files_removed_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recordings.id"], name=op.f("fk_recording_purges_recording_id_recordings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_purges")),
        sa.UniqueConstraint("recording_id", name=op.f("uq_recording_purges_recording_id")),
    )
    op.create_index(op.f("ix_recording_purges_purged_at"), "recording_purges", ["purged_at"], unique=False)

    op.create_table(
        "archive_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("counts", JSON_DOCUMENT, nullable=False),
        sa.Column("findings", JSON_DOCUMENT, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("chain_head", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_runs")),
    )
    op.create_index(op.f("ix_archive_runs_kind"), "archive_runs", ["kind"], unique=False)
    op.create_index(op.f("ix_archive_runs_started_at"), "archive_runs", ["started_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_archive_runs_started_at"), table_name="archive_runs")
    op.drop_index(op.f("ix_archive_runs_kind"), table_name="archive_runs")
    op.drop_table("archive_runs")
    op.drop_index(op.f("ix_recording_purges_purged_at"), table_name="recording_purges")
    op.drop_table("recording_purges")
    op.drop_index(op.f("ix_recording_hold_events_recording_id"), table_name="recording_hold_events")
    op.drop_table("recording_hold_events")
    with op.batch_alter_table("recordings") as batch_op:
        batch_op.drop_index(op.f("ix_recordings_manifest_id"))
        batch_op.drop_index(op.f("ix_recordings_archive_day"))
        batch_op.drop_index(op.f("ix_recordings_archive_state"))
        batch_op.drop_constraint(op.f("fk_recordings_manifest_id_recording_manifests"), type_="foreignkey")
        batch_op.drop_constraint(op.f("uq_recordings_archive_path"), type_="unique")
        batch_op.drop_column("purged_at")
        batch_op.drop_column("hold_reason")
        batch_op.drop_column("hold_by")
        batch_op.drop_column("hold_at")
        batch_op.drop_column("manifest_id")
        batch_op.drop_column("backed_up_at")
        batch_op.drop_column("archived_at")
        batch_op.drop_column("archive_error")
        batch_op.drop_column("archive_format")
        batch_op.drop_column("archive_duration_s")
        batch_op.drop_column("archive_size_bytes")
        batch_op.drop_column("archive_sha256")
        batch_op.drop_column("archive_path")
        batch_op.drop_column("archive_day")
        batch_op.drop_column("archive_state")
    op.drop_table("recording_manifests")
