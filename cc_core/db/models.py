"""Declarative models. The schema itself is created by the Alembic migrations, never by ``create_all``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
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


def table_of(model: type[Base]) -> Table:
    """The model's table, for Core statements on the hot write paths (they skip the ORM's per-row work)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


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
    # Indexed: a returning caller is routed to the agent who served them before (T9).
    caller_number: Mapped[str] = mapped_column(String(32), index=True)
    dialed_number: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(128))
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When an agent first answered (接通, the "answered" of T10 and the reports): the moment
    # connected_at holds; None for a call that ended in the IVR or was abandoned.
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
    # The ACD (issue 4). The queue the call waits in now (or last waited in), its skill and
    # priority; queued_at is when it first entered a queue: a transfer back keeps the first.
    queue: Mapped[str | None] = mapped_column(String(32))
    skill: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[int | None] = mapped_column(Integer)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # When the first agent answered; agent_id is the agent who has (or had) the caller last.
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    agent_id: Mapped[str | None] = mapped_column(String(16), index=True)
    # Wrap-up (T4): when the agent finished it, and the summary they wrote.
    wrapup_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    summary: Mapped[str | None] = mapped_column(Text)
    # The agent the survey score is about (T7).
    survey_agent_id: Mapped[str | None] = mapped_column(String(16))

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


class Recording(Base):
    """One recorded leg of a conversation (T5): a MixMonitor file on the switch.

    Outlives its call row (deleting the call only clears ``call_id``): recordings are kept for
    years, call rows may be pruned sooner.
    """

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), index=True)
    # The caller's call (calls.uniqueid), also when that call is not recorded in calls.
    uniqueid: Mapped[str] = mapped_column(String(64), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(16))
    # "agent", "consult" or "conference".
    leg: Mapped[str] = mapped_column(String(16))
    # The path inside the switch chroot, as Asterisk sees it; one row per file.
    file: Mapped[str] = mapped_column(String(255), unique=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_s: Mapped[float | None] = mapped_column(Float)
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    # "recording", "done", "empty" (no audio, file deleted) or "missing".
    status: Mapped[str] = mapped_column(String(16), index=True)

    # The archive (issue 5, decision 0010). archive_state walks pending → written → verified →
    # archived (the switch's original removed), or stops at "failed" with archive_error; None
    # until the archiver takes the recording up. Each step is committed before the next begins.
    archive_state: Mapped[str | None] = mapped_column(String(16), index=True)
    # The Beijing day the recording belongs to (its start), and its file under recordings_store/.
    archive_day: Mapped[date | None] = mapped_column(Date, index=True)
    archive_path: Mapped[str | None] = mapped_column(String(255), unique=True)
    archive_sha256: Mapped[str | None] = mapped_column(String(64))
    archive_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # Seconds of audio the archived file decodes to (checked against the original's).
    archive_duration_s: Mapped[float | None] = mapped_column(Float)
    # e.g. "ogg/opus mono 16 kbit/s".
    archive_format: Mapped[str | None] = mapped_column(String(32))
    # Why the recording could not be archived ("failed"), or the last transient error.
    archive_error: Mapped[str | None] = mapped_column(String(255))
    # When the original was removed (the archive complete), and when the backup copy was verified.
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    backed_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The manifest that sealed the file (tamper evidence); None until its day is sealed.
    manifest_id: Mapped[int | None] = mapped_column(ForeignKey("recording_manifests.id"), index=True)
    # A legal hold keeps the recording past its retention; set when hold_at is not None.
    hold_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    hold_by: Mapped[str | None] = mapped_column(String(64))
    hold_reason: Mapped[str | None] = mapped_column(String(255))
    # When retention removed the archived file (the row, its hash and its manifest entry stay).
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RecordingManifest(Base):
    """A sealed list of one Beijing day's archived recordings with their hashes (tamper evidence).

    Manifests form one hash chain in ``position`` order: each body names the previous manifest's
    sha256. Part 0 seals a day; parts 1, 2 … are addenda for recordings archived after it.
    ``body`` is the exact text of the day folder's MANIFEST JSON file; ``sha256`` is its hash.
    """

    __tablename__ = "recording_manifests"
    __table_args__ = (UniqueConstraint("day", "part", name="uq_recording_manifests_day_part"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, unique=True)
    day: Mapped[date] = mapped_column(Date)
    part: Mapped[int] = mapped_column(Integer)
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    entry_count: Mapped[int] = mapped_column(Integer)
    previous_sha256: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # The file, relative to the archive folder.
    path: Mapped[str] = mapped_column(String(255), unique=True)
    body: Mapped[str] = mapped_column(Text)


class RecordingHoldEvent(Base):
    """A legal hold set on or cleared from a recording: who, when, why (kept for the auditors)."""

    __tablename__ = "recording_hold_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"), index=True)
    # "set" or "cleared".
    action: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(255))


class RecordingPurge(Base):
    """The purge log: an archived recording removed at the end of its retention (what, when, why)."""

    __tablename__ = "recording_purges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"), unique=True)
    archive_path: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    day: Mapped[date] = mapped_column(Date)
    purged_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(255))
    # When the files (archive and backup) were gone; None while a removal is still owed.
    files_removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ArchiveRun(Base):
    """One run of an archive job (archive, backup, seal, verify, purge) and its outcome.

    The health page shows the last verify from here; ``findings`` lists what was wrong (capped).
    """

    __tablename__ = "archive_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ok: Mapped[bool] = mapped_column(Boolean)
    # Counts by name ({"archived": 12, "failed": 1, …}).
    counts: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    # Why the run stopped early (a full disk, a missing backup folder), if it did.
    error: Mapped[str | None] = mapped_column(Text)
    # verify: the newest manifest's hash when the run checked the chain.
    chain_head: Mapped[str | None] = mapped_column(String(64))


class Callback(Base):
    """A citizen to call back (T10): one row per number and Beijing calendar day."""

    __tablename__ = "callbacks"
    # However many calls a citizen abandons in a day, they are called back once.
    __table_args__ = (UniqueConstraint("number", "day", name="uq_callbacks_number_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32))
    # The calendar day in Asia/Shanghai of the call that caused it.
    day: Mapped[date] = mapped_column(Date, index=True)
    # "abandoned", "requested" or "unanswered": why the first call landed here.
    reason: Mapped[str] = mapped_column(String(16))
    # "open", "in_progress", "done", "failed" or "cancelled".
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The agent who reached the citizen.
    agent_id: Mapped[str | None] = mapped_column(String(16))
    # Why it was closed without a call back from us: a cancel's reason, "called in again" ….
    close_reason: Mapped[str | None] = mapped_column(String(64))


class CallbackCall(Base):
    """Links a callback to every call (by uniqueid) that caused it."""

    __tablename__ = "callback_calls"

    callback_id: Mapped[int] = mapped_column(ForeignKey("callbacks.id", ondelete="CASCADE"), primary_key=True)
    uniqueid: Mapped[str] = mapped_column(String(64), primary_key=True)


class CallbackAttempt(Base):
    """One try at calling a citizen back: the agent's leg, then the citizen's."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    callback_id: Mapped[int] = mapped_column(ForeignKey("callbacks.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # "agent_no_answer", "citizen_no_answer", "citizen_busy", "reached" or "failed".
    result: Mapped[str | None] = mapped_column(String(24))
    agent_uniqueid: Mapped[str | None] = mapped_column(String(64))
    citizen_uniqueid: Mapped[str | None] = mapped_column(String(64))


class User(Base):
    """A person who logs in to the web pages, with one role (P2). No default account exists."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    # agent, supervisor, admin, reviewer or auditor.
    role: Mapped[str] = mapped_column(String(16))
    # argon2id, with its parameters (cc_core/auth/passwords.py).
    password_hash: Mapped[str] = mapped_column(String(255))
    # For the role agent: the ACD agent (hotline.toml [[agents]] id) this login is.
    agent_id: Mapped[str | None] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebSession(Base):
    """A login: the browser holds a random token, this row only its SHA-256."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ip: Mapped[str] = mapped_column(String(64))


class AuditEntry(Base):
    """Who did what with personal data, from where (P2): listens, downloads, holds, logins,
    refusals. Append-only: the migration adds triggers that refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str] = mapped_column(String(128), index=True)
    ip: Mapped[str] = mapped_column(String(64))
    allowed: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDocument)


class Contact(Base):
    """A citizen, whatever channel they come by (issue 12 item 4, decision 0016).

    Known by its identities (:class:`ContactIdentity`); each call or conversation is one
    :class:`Interaction` of it. A contact merged into another stays as a pointer to it
    (``merged_into_id``), with no identities or interactions of its own left.
    """

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    merged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ContactIdentity(Base):
    """One way a channel knows a contact: a phone number, a web visitor id, a WeChat
    external_userid, an ID card (its keyed hash, never the number). Each (kind, value) belongs
    to one contact."""

    __tablename__ = "contact_identities"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_contact_identities_kind_value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    # One of cc_core.contacts.identity.IdentityKind's values.
    kind: Mapped[str] = mapped_column(String(16))
    # The normalised value (a phone number's national form; an ID card's HMAC-SHA256 in hex).
    value: Mapped[str] = mapped_column(String(64))
    # What an agent may be shown: the number; for an ID card, a masked form.
    display: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Interaction(Base):
    """One call or conversation of a contact: "last agent of this citizen" and "earlier contacts
    of this citizen" read these, across channels (T9, T1)."""

    __tablename__ = "interactions"
    __table_args__ = (
        UniqueConstraint("channel", "ref", name="uq_interactions_channel_ref"),
        # The returning-citizen look-up: a contact's interactions, newest first.
        Index("ix_interactions_contact_id_started_at", "contact_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    # One of cc_core.contacts.identity.Channel's values: voice, web, wechat.
    channel: Mapped[str] = mapped_column(String(16))
    # The call's uniqueid (calls.uniqueid) or the conversation's id.
    ref: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When an agent first took it (a call's connected_at); None while nobody has.
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The agent who has (or had) it last (a call's agent_id).
    agent_id: Mapped[str | None] = mapped_column(String(16))
