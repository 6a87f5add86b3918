"""Report queries over the call record: a day's acceptance rate (T10) and its averages (T1, T7).

Split out of ``calls/store.py`` (issue 12 item 6). Days are the hotline's calendar days in its
time zone (the ``timezone`` setting, :mod:`cc_core.calendars.days`): the contract counts calls
and callbacks per local day, whatever the server's zone. :class:`~cc_core.calls.store.CallStore`
inherits :class:`CallReports`, so callers keep one object per database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from cc_core.calendars.days import local_day_bounds
from cc_core.db.models import Call, Callback

__all__ = ["CallReports", "DayFigures", "DayStats"]


@dataclass(frozen=True)
class DayStats:
    """The acceptance rate of one local calendar day (T10); see :meth:`CallStore.day_stats`."""

    day: date
    offered: int
    answered: int
    abandoned: int
    called_back: int
    answered_rate: float
    callback_rate: float
    total_rate: float
    waiting: int = 0
    in_progress: int = 0


@dataclass(frozen=True)
class DayFigures:
    """Averages of one local day (all calls, or one agent's); None where nothing was measured."""

    day: date
    answered: int
    avg_wait_s: float | None
    avg_talk_s: float | None
    survey_avg: float | None
    survey_count: int
    satisfied_rate: float | None


def _mean(values: list[float] | list[int], digits: int = 1) -> float | None:
    return round(sum(values) / len(values), digits) if values else None


def _rate(part: int, whole: int) -> float:
    # An empty day is no breach of the contract: nothing was offered, nothing was missed.
    return 1.0 if whole == 0 else min(1.0, part / whole)


class CallReports:
    """The report queries of :class:`~cc_core.calls.store.CallStore` (which sets ``_sessions``)."""

    _sessions: sessionmaker[Session]

    def day_stats(self, day: date) -> DayStats:
        """The acceptance rate of one local calendar day (T10: 95% answered + 5% called back = 100%).

        - ``offered``: calls that arrived that day (the hotline's time zone) and entered a queue; calls that
          ended in the IVR (self-service, voicemail, hung up in the menus) were never offered.
        - ``answered``: of those, the ones an agent answered, those still going on included
          (``in_progress``: answered and not ended: an agent talks to the caller now, or the
          caller rates the service); ``waiting``: the ones still going on without an answer (in
          the queue now); ``abandoned`` = offered - answered - waiting (hung up while waiting,
          or never answered). So every offered call is in exactly one of answered, waiting and
          abandoned, live during the day too (issue 11: the wallboard showed a connected call
          as none of them).
        - ``called_back``: callbacks of that day (one per number and day) that are "done": an
          agent reached the citizen, or the citizen called in again and was served.
        - ``answered_rate`` = answered / offered, ``callback_rate`` = called_back / offered,
          ``total_rate`` = their sum; each between 0.0 and 1.0 (clipped), and 1.0 when nothing was
          offered, so an empty day is no breach.

        Raises ValueError for a datetime (pass the day itself).
        """
        if isinstance(day, datetime) or not isinstance(day, date):
            raise ValueError(f"day must be a date, got {day!r}")
        start, end = local_day_bounds(day)
        with self._sessions() as session:
            offered, answered, waiting, in_progress = session.execute(
                select(
                    func.count(Call.id),
                    func.count(Call.connected_at),
                    func.count(case((Call.connected_at.is_(None) & Call.ended_at.is_(None), Call.id))),
                    func.count(case((Call.connected_at.is_not(None) & Call.ended_at.is_(None), Call.id))),
                ).where(Call.arrived_at >= start, Call.arrived_at < end, Call.queued_at.is_not(None))
            ).one()
            called_back = (
                session.scalar(select(func.count(Callback.id)).where(Callback.day == day, Callback.status == "done"))
                or 0
            )
        answered_rate = _rate(answered, offered)
        callback_rate = _rate(called_back, offered)
        return DayStats(
            day=day,
            offered=offered,
            answered=answered,
            abandoned=offered - answered - waiting,
            called_back=called_back,
            answered_rate=answered_rate,
            callback_rate=callback_rate,
            total_rate=min(1.0, answered_rate + callback_rate),
            waiting=waiting,
            in_progress=in_progress,
        )

    def day_figures(self, day: date, agent_id: str | None = None) -> DayFigures:
        """Averages of one local day for the wallboard, or for one agent's own figures (T1, T7):
        calls answered, average wait (queue entry → answer), average talk (answer → hang-up,
        the survey included), the survey average and the satisfied share (scores 1–2 of 1 非常满意
        … 5 非常不满意). Computed in Python over the day's answered rows (at most a few thousand):
        the same code on SQLite and PostgreSQL, which differ in date arithmetic."""
        start, end = local_day_bounds(day)
        stmt = select(
            Call.queued_at, Call.connected_at, Call.ended_at, Call.survey_score, Call.agent_id, Call.survey_agent_id
        ).where(
            Call.arrived_at >= start,
            Call.arrived_at < end,
            or_(Call.connected_at.is_not(None), Call.survey_score.is_not(None)),
        )
        if agent_id is not None:
            stmt = stmt.where(or_(Call.agent_id == agent_id, Call.survey_agent_id == agent_id))
        waits: list[float] = []
        talks: list[float] = []
        scores: list[int] = []
        answered = 0
        with self._sessions() as session:
            for queued, connected, ended, score, agent, survey_agent in session.execute(stmt):
                if connected is not None and (agent_id is None or agent == agent_id):
                    answered += 1
                    if queued is not None:
                        waits.append(max(0.0, (connected - queued).total_seconds()))
                    if ended is not None:
                        talks.append(max(0.0, (ended - connected).total_seconds()))
                if score is not None and (agent_id is None or (survey_agent or agent) == agent_id):
                    scores.append(int(score))
        return DayFigures(
            day=day,
            answered=answered,
            avg_wait_s=_mean(waits),
            avg_talk_s=_mean(talks),
            survey_avg=_mean(scores, 2),
            survey_count=len(scores),
            satisfied_rate=round(sum(1 for v in scores if v <= 2) / len(scores), 4) if scores else None,
        )
