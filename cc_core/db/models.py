"""Declarative models. The schema itself is created by the Alembic migrations, never by ``create_all``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, MetaData, String, UniqueConstraint, false
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Named constraints let Alembic's batch mode (SQLite table rebuilds) find and alter them later.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    PostgreSQL stores ``timestamptz`` but returns it in the session's time zone; SQLite has no
    time zones at all and returns naive values. Both come back here as aware UTC, and naive
    values are refused on the way in because their zone would be a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; pass an aware (UTC) datetime")
        value = value.astimezone(UTC)
        # SQLite keeps the text as given: store naive UTC so values compare and sort correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact); JSON text elsewhere.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class Call(Base):
    """One inbound call, keyed by Asterisk's channel ``uniqueid``."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uniqueid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    linkedid: Mapped[str] = mapped_column(String(64), index=True)
    caller_number: Mapped[str] = mapped_column(String(32))
    dialed_number: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(128))
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    digits: Mapped[str] = mapped_column(String(64), default="", server_default="")
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    hangup_cause_text: Mapped[str | None] = mapped_column(String(64))
    # "ivr" while the caller is in the menus, "ended" after hangup; later issues add more.
    status: Mapped[str] = mapped_column(String(16), default="ivr", server_default="ivr")
    # The call reached the dialplan safety net (controller unreachable or failed).
    fallback: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The IVR flow the call started in, and the sha256 of that flow file at the time.
    flow: Mapped[str | None] = mapped_column(String(64))
    flow_version: Mapped[str | None] = mapped_column(String(64))
    # Phone satisfaction survey: 1 (非常满意) … 5 (非常不满意); None when not answered.
    survey_score: Mapped[int | None] = mapped_column(Integer)
    # How the call left the IVR: "queue", "transfer", "hangup", "fallback" or "abandoned",
    # with e.g. the queue name or the number transferred to.
    ivr_exit: Mapped[str | None] = mapped_column(String(16))
    ivr_exit_detail: Mapped[str | None] = mapped_column(String(64))

    events: Mapped[list[CallEvent]] = relationship(
        back_populates="call",
        order_by="(CallEvent.at, CallEvent.id)",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class CallEvent(Base):
    """One step of a call's timeline (arrived, digits, fallback, hangup, later IVR steps)."""

    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)

    call: Mapped[Call] = relationship(back_populates="events")


class Voicemail(Base):
    """A message a caller left (outside hours, queue too long). Outlives its call row."""

    __tablename__ = "voicemails"
    # The switch may report the same recording twice; one row per (call, file).
    __table_args__ = (UniqueConstraint("uniqueid", "file", name="uq_voicemails_uniqueid_file"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), index=True)
    uniqueid: Mapped[str] = mapped_column(String(64), index=True)
    caller_number: Mapped[str] = mapped_column(String(32))
    flow: Mapped[str] = mapped_column(String(64))
    node: Mapped[str] = mapped_column(String(64))
    # The recording's path as the switch reports it.
    file: Mapped[str] = mapped_column(String(255))
    duration_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    listened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    listened_by: Mapped[str | None] = mapped_column(String(64))


class CurrentAgentState(Base):
    """Where each agent stands now (one row per agent): read back to restore agents after a restart."""

    __tablename__ = "agent_states"

    agent_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    # One of cc_core.acd.model.AgentState's values.
    state: Mapped[str] = mapped_column(String(16))
    state_since: Mapped[datetime] = mapped_column(UTCDateTime())
    pause_reason: Mapped[str | None] = mapped_column(String(64))
    wrapup_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Where the agent logged in: a SIP endpoint id or a mobile number.
    extension: Mapped[str | None] = mapped_column(String(32))
    # When the row was last written (the writer's clock, not the change's moment).
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AgentStateChange(Base):
    """One change of an agent's state, with its moment: the history per-agent reports are built from."""

    __tablename__ = "agent_state_changes"
    # A repeated event (the controller recording again after a restart) is one change.
    __table_args__ = (
        UniqueConstraint("agent_id", "at", "to_state", name="uq_agent_state_changes_agent_id_at_to_state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(16), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    # The call the change is about (ringing, on_call, wrap_up), when there is one.
    call_uniqueid: Mapped[str | None] = mapped_column(String(64))
