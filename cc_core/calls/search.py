"""Finding recordings for supervisors and auditors (T5, issue 5 item 5): by date range, caller
number, agent, queue, duration, survey score and IVR path, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session, sessionmaker

from cc_core.db.models import Call, CallEvent, Recording

MAX_RESULTS = 500
# Recordings a person can play: written and closed (archived ones included).
PLAYABLE = ("done",)


@dataclass(frozen=True, slots=True)
class RecordingQuery:
    """Filters; ``None`` means any. ``caller`` matches part of the number (digits only)."""

    since: datetime | None = None
    until: datetime | None = None
    caller: str | None = None
    agent: str | None = None
    queue: str | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    survey_score: int | None = None
    ivr_node: str | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class RecordingHit:
    id: int
    uniqueid: str
    leg: str
    agent_id: str | None
    started_at: datetime
    duration_s: float | None
    caller_number: str | None
    dialed_number: str | None
    queue: str | None
    survey_score: int | None
    summary: str | None


def search_recordings(sessions: sessionmaker[Session], query: RecordingQuery) -> list[RecordingHit]:
    """Recordings matching every filter given, newest first (at most :data:`MAX_RESULTS`)."""
    stmt = (
        select(Recording, Call)
        .outerjoin(Call, Call.id == Recording.call_id)
        .where(Recording.status.in_(PLAYABLE))
        .order_by(Recording.started_at.desc(), Recording.id.desc())
        .limit(max(1, min(query.limit, MAX_RESULTS)))
        .offset(max(0, query.offset))
    )
    if query.since is not None:
        stmt = stmt.where(Recording.started_at >= query.since)
    if query.until is not None:
        stmt = stmt.where(Recording.started_at < query.until)
    if query.caller:
        digits = "".join(c for c in query.caller if c.isdigit())
        stmt = stmt.where(Call.caller_number.contains(digits, autoescape=True))
    if query.agent:
        stmt = stmt.where(Recording.agent_id == query.agent)
    if query.queue:
        stmt = stmt.where(Call.queue == query.queue)
    if query.min_duration_s is not None:
        stmt = stmt.where(Recording.duration_s >= query.min_duration_s)
    if query.max_duration_s is not None:
        stmt = stmt.where(Recording.duration_s <= query.max_duration_s)
    if query.survey_score is not None:
        stmt = stmt.where(Call.survey_score == query.survey_score)
    if query.ivr_node:
        stmt = stmt.where(
            exists().where(
                and_(
                    CallEvent.call_id == Call.id,
                    CallEvent.kind == "ivr",
                    CallEvent.detail["node"].as_string() == query.ivr_node,
                )
            )
        )
    with sessions() as session:
        return [
            RecordingHit(
                id=rec.id,
                uniqueid=rec.uniqueid,
                leg=rec.leg,
                agent_id=rec.agent_id,
                started_at=rec.started_at,
                duration_s=rec.duration_s,
                caller_number=call.caller_number if call else None,
                dialed_number=call.dialed_number if call else None,
                queue=call.queue if call else None,
                survey_score=call.survey_score if call else None,
                summary=call.summary if call else None,
            )
            for rec, call in session.execute(stmt)
        ]
