"""The hotline's local day: which calendar day a moment belongs to, in the product's time zone.

Reports, the wallboard's "today", callbacks' daily limits, the recording archive's folders and
manifests, the CLI's ``--at`` and the scheduler's daily jobs all count days the way the
citizens and the centre do: in the hotline's own time zone, the top-level ``timezone`` setting
(default ``Asia/Shanghai``), not in UTC — 23:30 UTC is already the next day in Beijing. Before
issue 12 the zone was written out in six places; now it is one setting and this one module.

Why a process-wide zone (:func:`use_timezone`) and not a parameter on every call: the zone is
fixed for a running controller (it is read once from the settings at start, like the log
level), and the day is needed deep inside stores and archive jobs that have no settings object.
The wiring (``cc_core.app``, ``cc_core.cli``) sets it before anything counts a day; until then,
and in unit tests, it is the default. Pure otherwise: nothing here reads the clock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_TIMEZONE",
    "local_day",
    "local_day_bounds",
    "local_zone",
    "require_aware",
    "timezone_named",
    "use_timezone",
]

DEFAULT_TIMEZONE = "Asia/Shanghai"

_zone: ZoneInfo = ZoneInfo(DEFAULT_TIMEZONE)


def timezone_named(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``Asia/Shanghai``), or ValueError with a Chinese-first message."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"未知时区 {name!r} (unknown time zone {name!r}; give an IANA name such as Asia/Shanghai)"
        ) from None


def use_timezone(name: str) -> ZoneInfo:
    """Make ``name`` the hotline's time zone for this process (the ``timezone`` setting)."""
    global _zone
    _zone = timezone_named(name)
    return _zone


def local_zone() -> ZoneInfo:
    """The hotline's time zone (the ``timezone`` setting; ``Asia/Shanghai`` by default)."""
    return _zone


def require_aware(at: datetime) -> None:
    """ValueError for a naive datetime: a moment without a zone has no day and no UTC instant.

    Checked before a value reaches SQLAlchemy, so the caller gets a plain ValueError naming it.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}; pass an aware one (datetime.now(UTC))")


def local_day(at: datetime) -> date:
    """The hotline's calendar day of an aware moment: 23:30 UTC is the next day in Beijing."""
    require_aware(at)
    return at.astimezone(_zone).date()


def local_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC moments the hotline's calendar ``day`` starts (inclusive) and ends (exclusive)."""
    start = datetime.combine(day, time(0), tzinfo=_zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=_zone)
    return start.astimezone(UTC), end.astimezone(UTC)
