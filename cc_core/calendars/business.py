"""Business time: how much opening time lies between two moments, and when a span of it ends.

Tickets' SLA (K1–K4: "answer within 2 working days", "close within 8 working hours") counts only
the hours a calendar is open — a ticket opened on Friday at 16:00 with 4 business hours left is
due on Monday at 12:00, not on Friday at 20:00; holidays, closures and make-up workdays count as
the calendar says. The IVR's ``time_switch`` asks a calendar about one moment
(:meth:`Calendar.state_at`); this module asks it about a stretch of time, with the same rules.

The emergency override is left out on purpose: it sends callers elsewhere while in force (a
system outage, a typhoon), but it does not stop the centre's work on tickets; whether it should
pause an SLA is the SLA's decision, not the calendar's. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

from cc_core.calendars.calendar import Calendar

__all__ = ["HORIZON_DAYS", "add_business_time", "business_seconds", "open_periods"]

# How far ahead add_business_time looks: a year (a calendar with no hours at all never ends).
HORIZON_DAYS = 366


def open_periods(calendar: Calendar, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The calendar's opening hours within ``[start, end)``, in order, as aware UTC pairs.

    Naive moments are the calendar's local time (as in :meth:`Calendar.local`). Interval ends
    come from the wall clock of each day (``09:00-17:00`` is 09:00 to 17:00 local, whatever the
    day's UTC offset), and durations are measured in UTC, so a day with a clock change is right.
    """
    first = calendar.local(start)
    last = calendar.local(end)
    if last <= first:
        return
    day = first.date()
    while day <= last.date():
        for interval in calendar.hours_on(day):
            opens = _wall(calendar, day, interval.start)
            closes = _wall(calendar, day, interval.end)
            lo = max(opens, first.astimezone(UTC))
            hi = min(closes, last.astimezone(UTC))
            if lo < hi:
                yield lo, hi
        day += timedelta(days=1)


def _wall(calendar: Calendar, day: date, minutes: int) -> datetime:
    """The UTC moment of ``minutes`` after local midnight of ``day`` (24:00 is the next midnight)."""
    if minutes >= 24 * 60:
        day, minutes = day + timedelta(days=1), 0
    local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=calendar.timezone)
    return local.astimezone(UTC)


def business_seconds(calendar: Calendar, start: datetime, end: datetime) -> float:
    """Seconds of opening time between ``start`` and ``end`` (0 when ``end`` is not after ``start``)."""
    return sum((hi - lo).total_seconds() for lo, hi in open_periods(calendar, start, end))


def add_business_time(calendar: Calendar, start: datetime, duration: timedelta) -> datetime:
    """The moment ``duration`` of opening time after ``start`` has passed (aware, calendar's zone).

    A zero duration is ``start`` itself. When the span ends exactly as an interval closes, that
    closing moment is the answer (not the next opening). ValueError for a negative duration, or
    if the calendar is not open that long within :data:`HORIZON_DAYS` days.
    """
    if duration < timedelta(0):
        raise ValueError(f"时长不能为负 (duration must not be negative, got {duration})")
    begin = calendar.local(start)
    if duration == timedelta(0):
        return begin
    left = duration
    for lo, hi in open_periods(calendar, begin, begin + timedelta(days=HORIZON_DAYS)):
        if hi - lo >= left:
            return (lo + left).astimezone(calendar.timezone)
        left -= hi - lo
    raise ValueError(
        f"日历 {calendar.name} 在 {HORIZON_DAYS} 天内营业时间不足 {duration} "
        f"(calendar {calendar.name} is not open for {duration} within {HORIZON_DAYS} days)"
    )
