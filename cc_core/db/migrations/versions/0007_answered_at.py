"""Fill calls.answered_at for the calls answered before it was written (issue 11).

``answered_at`` existed since 0001 and was never written; from this version on it holds the
first agent's answer, the moment ``connected_at`` holds (cc_core/calls/store.py). Calls answered
before are given the same, so a report over history counts the same calls as answered as
``day_stats`` does. Data only: no column changes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE calls SET answered_at = connected_at WHERE answered_at IS NULL AND connected_at IS NOT NULL")


def downgrade() -> None:
    # Nothing to undo: the code of 0006 neither writes nor reads answered_at, and the values are
    # what its connected_at holds anyway.
    pass
