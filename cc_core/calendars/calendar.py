"""Business-hours calendars: open, closed, public holiday or emergency (T6; K4 may reuse the hours).

A calendar answers the question of the IVR's ``time_switch`` node — which state is the hotline in
at this moment — and a few related ones: is this date a public holiday, what is it called, when do
we open again. The module is pure: it never reads the clock (every moment is passed in) and keeps
nothing between calls, so a decision is tested in microseconds with any date we like.

File format
-----------
One calendar per file, ``ivr_flows/calendars/<name>.yaml``; a flow names it by ``<name>``.
UTF-8 (a BOM is tolerated), at most 64 KB, plain YAML without anchors, aliases or tags::

    title: 丰台区社保中心 服务时间            # optional, for people
    timezone: Asia/Shanghai                  # optional IANA zone name; default: the hotline's timezone setting
    emergency:                               # optional; the switch an admin flips in an emergency
      active: false                          # true: every time_switch takes its emergency exit
      message: "因系统升级，热线暂停服务。"     # optional; text the emergency prompt may read out
      until: 2026-10-02T12:00                # optional; local time (or with an offset); after it: off
    hours:                                   # weekly hours; a weekday left out is closed
      mon: "09:00-17:00"
      tue: ["09:00-12:00", "13:00-17:00"]    # several intervals a day, e.g. a lunch gap
      sat: closed
    workday_hours: mon                       # optional; whose hours a make-up workday keeps; default mon
    holidays:                                # public holidays: the time_switch's holiday exit
      - {date: 2026-10-01..2026-10-07, name: 国庆节}   # a range includes both ends
      - {date: 2026-06-19, name: 端午节}
    workdays:                                # make-up workdays (调休): normally closed days that are worked
      - {date: 2026-10-10, name: 国庆节调休}
    closures:                                # other closed dates (a training day, a move): the closed exit
      - {date: 2026-06-10, name: 全员业务培训}

Times are ``H:MM`` or ``HH:MM``, 24-hour, an interval ``start-end`` with the end excluded (a
09:00-17:00 line is open at 09:00:00 and closed at 17:00:00); ``24:00`` may end a day. Dates are
``YYYY-MM-DD``; a range ``first..last`` covers at most 31 days (a longer one is almost always a
typo in the year, and would silently close the hotline for months).

Precedence (first match wins): an emergency in force > a public holiday > a make-up workday (open
or closed by the hours of ``workday_hours``) > a closure > the weekly hours.

The loader refuses, with ``file:line: message``: unknown or duplicate keys, wrong types, bad dates
or times, a range or an interval that ends before it starts, overlapping intervals in a day, a
date listed twice in one section, a date that is both a holiday and a make-up workday, a make-up
workday on a day that is normally open (a typo: 调休 days are days normally closed), a
``workday_hours`` day with no hours, an unknown time zone, non-UTF-8 text, anchors/aliases/tags,
and files over 64 KB. Whole-file problems (too big, unreadable) have no line and read ``file: message``.

Why the emergency override lives inside the calendar file and not in a file of its own: an admin
has one file per calendar to find, edit and back up, and sees the override next to the holidays it
overrides; there is no second file whose mere presence — or a leftover from last year — changes how
calls are answered. The section is three lines at the top of the file. Check the file after
editing (``hotline ivr validate``): like a flow, a calendar that fails to load is not used.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Literal, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cc_core import safeyaml
from cc_core.calendars.days import local_zone
from cc_core.errors import HotlineError
from cc_core.safeyaml import MAP, SEQ, Value

State = Literal["emergency", "holiday", "open", "closed"]

MAX_FILE_BYTES = 64 * 1024
MAX_RANGE_DAYS = 31
# "We open again at …" only makes sense within a holiday season; the longest (春节) is 9 days.
NEXT_OPEN_HORIZON_DAYS = 60
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")  # not %A: locale-free
TOP_KEYS = ("title", "timezone", "emergency", "hours", "workday_hours", "holidays", "workdays", "closures")
EMERGENCY_KEYS = ("active", "message", "until")
ENTRY_KEYS = ("date", "name")
CLOSED_WORDS = ("closed", "")
TRUE_WORDS = ("true", "yes", "on")
FALSE_WORDS = ("false", "no", "off")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SPAN = re.compile(r"(\S+?)\s*\.\.\s*(\S+)")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
# Admins copy hours from notices written with an en dash or a tilde: accept those too.
_INTERVAL = re.compile(r"(\S+?)\s*[-–~～]\s*(\S+)")
_UNTIL = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}.*")


class CalendarError(HotlineError):
    """A calendar file is wrong; the message names the file and, where there is one, the line."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class Interval:
    """Opening hours within one day, in minutes after midnight; ``end`` is excluded."""

    start: int
    end: int

    def contains(self, seconds: float) -> bool:
        """Whether a moment of the day (seconds after midnight) falls inside."""
        return self.start * 60 <= seconds < self.end * 60

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


@dataclass(frozen=True, slots=True)
class DateSpan:
    """A named date or date range (both ends included) of one calendar section."""

    first: date
    last: date
    name: str
    line: int = 0

    def covers(self, day: date) -> bool:
        return self.first <= day <= self.last

    def days(self) -> Iterator[date]:
        day = self.first
        while day <= self.last:
            yield day
            day += timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Emergency:
    """The admin's override: while in force every ``time_switch`` takes its emergency exit."""

    active: bool = False
    message: str = ""
    until: datetime | None = None  # aware; after it the override is off by itself

    def in_force(self, when: datetime) -> bool:
        """Whether the override applies at ``when`` (an aware datetime)."""
        return self.active and (self.until is None or when < self.until)


@dataclass(frozen=True)
class Calendar:
    """Business hours, public holidays, make-up workdays, closures and the emergency override.

    ``hours`` has seven entries, Monday first. Naive datetimes passed to the methods are taken
    as local time of ``timezone``; aware ones are converted to it.
    """

    name: str
    timezone: ZoneInfo
    hours: tuple[tuple[Interval, ...], ...]
    holidays: tuple[DateSpan, ...] = ()
    workdays: tuple[DateSpan, ...] = ()
    closures: tuple[DateSpan, ...] = ()
    workday_hours: int = 0  # weekday index (0 = Monday) whose hours make-up workdays keep
    emergency: Emergency = Emergency()
    title: str = ""

    def local(self, when: datetime) -> datetime:
        """``when`` as an aware datetime in the calendar's time zone."""
        if when.tzinfo is None or when.utcoffset() is None:
            return when.replace(tzinfo=self.timezone)
        return when.astimezone(self.timezone)

    def state_at(self, when: datetime) -> State:
        """The hotline's state at ``when``: "emergency", "holiday", "open" or "closed"."""
        moment = self.local(when)
        if self.emergency.in_force(moment):
            return "emergency"
        day = moment.date()
        if self.is_holiday(day):
            return "holiday"
        seconds = moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6
        if any(interval.contains(seconds) for interval in self.hours_on(day)):
            return "open"
        return "closed"

    def hours_on(self, day: date) -> tuple[Interval, ...]:
        """The opening hours of a date, after holidays, make-up workdays and closures."""
        if self.is_holiday(day):
            return ()
        if self.is_makeup_workday(day):
            return self.hours[self.workday_hours]
        if self.closure_name(day) is not None:
            return ()
        return self.hours[day.weekday()]

    def is_holiday(self, day: date) -> bool:
        """Whether ``day`` is a public holiday."""
        return self.holiday_name(day) is not None

    def holiday_name(self, day: date) -> str | None:
        """The name of the public holiday on ``day`` (e.g. 春节), or None."""
        return _name_on(self.holidays, day)

    def is_makeup_workday(self, day: date) -> bool:
        """Whether ``day`` is a make-up workday (调休): normally closed, worked this time."""
        return _name_on(self.workdays, day) is not None

    def closure_name(self, day: date) -> str | None:
        """Why the center is closed on ``day`` outside the holidays (e.g. a training day), or None."""
        return _name_on(self.closures, day)

    def emergency_message(self, when: datetime) -> str | None:
        """The override's message while it is in force at ``when`` ("" if it has none), else None."""
        moment = self.local(when)
        return self.emergency.message if self.emergency.in_force(moment) else None

    def next_open(self, when: datetime) -> datetime | None:
        """The first moment at or after ``when`` at which the hotline is open, in the calendar's zone.

        ``when`` itself (converted) if open then. None while an emergency without an end is in
        force, or if nothing opens within ``NEXT_OPEN_HORIZON_DAYS`` — then the announcement should
        not promise a time.
        """
        start = self.local(when)
        if self.emergency.in_force(start):
            if self.emergency.until is None:
                return None
            start = self.emergency.until.astimezone(self.timezone)
        for offset in range(NEXT_OPEN_HORIZON_DAYS + 1):
            day = start.date() + timedelta(days=offset)
            midnight = datetime.combine(day, time(), tzinfo=self.timezone)
            for interval in self.hours_on(day):
                opens = midnight + timedelta(minutes=interval.start)
                closes = midnight + timedelta(minutes=interval.end)
                if closes > start:
                    return max(opens, start)
        return None

    def has_holidays_for(self, year: int) -> bool:
        """Whether any public holiday of ``year`` is entered: a start-up check can warn when not."""
        return any(span.first.year <= year <= span.last.year for span in self.holidays)


def _name_on(spans: tuple[DateSpan, ...], day: date) -> str | None:
    for span in spans:
        if span.covers(day):
            return span.name
    return None


def load_calendars(folder: Path) -> dict[str, Calendar]:
    """Every ``*.yaml`` calendar of ``folder`` by name (the file name without ``.yaml``).

    A missing folder means no calendars. The first bad file raises :class:`CalendarError`.
    """
    if not folder.is_dir():
        return {}
    calendars: dict[str, Calendar] = {}
    for path in sorted(folder.glob("*.yaml")):
        if path.name.startswith(".") or not path.is_file():
            continue  # editors' swap and backup files
        calendar = load_calendar(path)
        calendars[calendar.name] = calendar
    return calendars


def load_calendar(path: Path) -> Calendar:
    """Read and check one calendar file; raise :class:`CalendarError` naming the file and line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CalendarError(path, None, f"cannot read the calendar: {exc.strerror}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise CalendarError(path, None, f"the file is {len(data)} bytes; a calendar may be at most {MAX_FILE_BYTES}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CalendarError(path, line, "not UTF-8 text; save the file as UTF-8") from exc
    root = _compose(path, text)
    return _Reader(path).calendar(root)


def _compose(path: Path, text: str) -> Value:
    """The value tree (lines kept) by the product's one safe reader, :mod:`cc_core.safeyaml`:
    no anchors, aliases or tags (aliases can blow a small file up into a huge document and make
    an admin's file hard to read; calendars are short enough to write every value out)."""
    try:
        root = safeyaml.parse(text)
    except safeyaml.Refused as exc:
        raise CalendarError(path, exc.line, exc.message) from None
    if root is None:
        raise CalendarError(path, 1, "the calendar is empty")
    return root


class _Reader:
    """Turns the node tree of one file into a Calendar; every complaint carries the node's line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: Value | int, message: str) -> NoReturn:
        line = node if isinstance(node, int) else node.line
        raise CalendarError(self.path, line, message)

    def calendar(self, root: Value) -> Calendar:
        top = self.mapping(root, "the calendar", TOP_KEYS)
        if "hours" not in top:
            self.fail(root, "hours: missing; give the weekly hours, e.g. mon: 09:00-17:00")
        zone = self.zone(top["timezone"]) if "timezone" in top else local_zone()
        hours = self.hours(top["hours"])
        workday_hours = 0
        if "workday_hours" in top:
            node = top["workday_hours"]
            workday_hours = self.weekday(node, "workday_hours")
            if not hours[workday_hours]:
                self.fail(
                    node, f"workday_hours: {WEEKDAYS[workday_hours]} has no hours, so make-up workdays would be closed"
                )
        holidays = self.spans(top.get("holidays"), "holidays")
        workdays = self.spans(top.get("workdays"), "workdays")
        closures = self.spans(top.get("closures"), "closures")
        self.check_workdays(workdays, holidays, hours)
        return Calendar(
            name=self.path.stem,
            timezone=zone,
            hours=hours,
            holidays=holidays,
            workdays=workdays,
            closures=closures,
            workday_hours=workday_hours,
            emergency=self.emergency(top["emergency"], zone) if "emergency" in top else Emergency(),
            title=self.text(top["title"], "title") if "title" in top else "",
        )

    # -- shapes ---------------------------------------------------------------------------------

    def mapping(self, node: Value, where: str, known: tuple[str, ...]) -> dict[str, Value]:
        if not node.tag == MAP:
            self.fail(node, f"{where}: expected keys ({', '.join(known)})")
        out: dict[str, Value] = {}
        for key_node, value_node in node.pairs:
            key = key_node.text if key_node.is_scalar else None
            if not isinstance(key, str) or key not in known:
                hint = difflib.get_close_matches(str(key), known, n=1)
                maybe = f"; did you mean '{hint[0]}'?" if hint else f"; known: {', '.join(known)}"
                self.fail(key_node, f"{where}: unknown key '{key}'{maybe}")
            if key in out:
                self.fail(key_node, f"{where}: '{key}' is given twice")
            out[key] = value_node
        return out

    def text(self, node: Value, where: str) -> str:
        # The raw scalar text, never PyYAML's YAML 1.1 guesses (9:00 would become 540, no → False).
        if not node.is_scalar:
            self.fail(node, f"{where}: expected a single value")
        return node.text.strip()

    def boolean(self, node: Value, where: str) -> bool:
        word = self.text(node, where).lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        self.fail(node, f"{where}: expected true or false, got '{word}'")

    def weekday(self, node: Value, where: str) -> int:
        word = self.text(node, where).lower()
        if word not in WEEKDAYS:
            self.fail(node, f"{where}: expected a weekday ({', '.join(WEEKDAYS)}), got '{word}'")
        return WEEKDAYS.index(word)

    def zone(self, node: Value) -> ZoneInfo:
        name = self.text(node, "timezone")
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(node, f"timezone: unknown time zone '{name}' (e.g. Asia/Shanghai; is tzdata installed?)")

    # -- sections -------------------------------------------------------------------------------

    def hours(self, node: Value) -> tuple[tuple[Interval, ...], ...]:
        days = self.mapping(node, "hours", WEEKDAYS)
        week: list[tuple[Interval, ...]] = []
        for day in WEEKDAYS:
            value = days.get(day)
            week.append(self.day_hours(value, f"hours.{day}") if value is not None else ())
        return tuple(week)

    def day_hours(self, node: Value, where: str) -> tuple[Interval, ...]:
        items = node.items if node.tag == SEQ else [node]
        intervals: list[tuple[Interval, Value]] = []
        for item in items:
            raw = self.text(item, where)
            if raw.lower() in CLOSED_WORDS and node.tag != SEQ:
                return ()
            try:
                intervals.append((_parse_interval(raw), item))
            except ValueError as exc:
                self.fail(item, f"{where}: {exc}")
        intervals.sort(key=lambda pair: pair[0].start)
        for (before, _), (after, item) in itertools.pairwise(intervals):
            if after.start < before.end:
                self.fail(item, f"{where}: {after} overlaps {before}")
        return tuple(interval for interval, _ in intervals)

    def spans(self, node: Value | None, section: str) -> tuple[DateSpan, ...]:
        if node is None or (node.is_scalar and node.text == ""):
            return ()  # "holidays:" with nothing under it
        if node.tag != SEQ:
            self.fail(node, f"{section}: expected a list of {{date: YYYY-MM-DD, name: …}}")
        spans: list[DateSpan] = []
        for index, item in enumerate(node.items):
            where = f"{section}[{index}]"
            keys = self.mapping(item, where, ENTRY_KEYS)
            for required in ENTRY_KEYS:
                if required not in keys:
                    self.fail(item, f"{where}: '{required}' is missing")
            name = self.text(keys["name"], f"{where}.name")
            if not name:
                self.fail(keys["name"], f"{where}.name: must not be empty")
            try:
                first, last = _parse_span(self.text(keys["date"], f"{where}.date"))
            except ValueError as exc:
                self.fail(keys["date"], f"{where}.date: {exc}")
            span = DateSpan(first, last, name, keys["date"].line)
            for other in spans:
                if other.first <= span.last and span.first <= other.last:
                    self.fail(
                        span.line, f"{where}: {span.first}..{span.last} overlaps '{other.name}' (line {other.line})"
                    )
            spans.append(span)
        return tuple(spans)

    def check_workdays(
        self,
        workdays: tuple[DateSpan, ...],
        holidays: tuple[DateSpan, ...],
        hours: tuple[tuple[Interval, ...], ...],
    ) -> None:
        for span in workdays:
            for day in span.days():
                for holiday in holidays:
                    if holiday.covers(day):
                        self.fail(
                            span.line,
                            f"workdays: {day} is also the holiday '{holiday.name}' (line {holiday.line}); "
                            "a date cannot be both",
                        )
                if hours[day.weekday()]:
                    self.fail(
                        span.line,
                        f"workdays: {day} is a {DAY_NAMES[day.weekday()]}, normally open; "
                        "make-up workdays (调休) are days that are normally closed",
                    )

    def emergency(self, node: Value, zone: ZoneInfo) -> Emergency:
        keys = self.mapping(node, "emergency", EMERGENCY_KEYS)
        active = self.boolean(keys["active"], "emergency.active") if "active" in keys else False
        message = self.text(keys["message"], "emergency.message") if "message" in keys else ""
        until: datetime | None = None
        if "until" in keys and self.text(keys["until"], "emergency.until"):
            try:
                until = _parse_until(self.text(keys["until"], "emergency.until"), zone)
            except ValueError as exc:
                self.fail(keys["until"], f"emergency.until: {exc}")
        return Emergency(active=active, message=message, until=until)


def _parse_date(text: str) -> date:
    if not _DATE.fullmatch(text):
        raise ValueError(f"bad date '{text}'; write YYYY-MM-DD, e.g. 2026-10-01")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"bad date '{text}': no such day") from None


def _parse_span(text: str) -> tuple[date, date]:
    """``YYYY-MM-DD`` or ``YYYY-MM-DD..YYYY-MM-DD`` (both ends included)."""
    match = _SPAN.fullmatch(text)
    if match is None:
        day = _parse_date(text)
        return day, day
    first, last = _parse_date(match.group(1)), _parse_date(match.group(2))
    if last < first:
        raise ValueError(f"the range ends ({last}) before it starts ({first})")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise ValueError(f"the range {first}..{last} is longer than {MAX_RANGE_DAYS} days; is the year right?")
    return first, last


def _parse_clock(text: str) -> int:
    """``H:MM`` or ``HH:MM`` as minutes after midnight; 24:00 is the end of the day."""
    match = _CLOCK.fullmatch(text)
    if match is None:
        raise ValueError(f"bad time '{text}'; write HH:MM, e.g. 09:00")
    hour, minute = int(match.group(1)), int(match.group(2))
    if minute > 59 or hour > 24 or (hour == 24 and minute):
        raise ValueError(f"bad time '{text}': no such time of day")
    return hour * 60 + minute


def _parse_interval(text: str) -> Interval:
    match = _INTERVAL.fullmatch(text)
    if match is None:
        raise ValueError(f"bad hours '{text}'; write start-end, e.g. 09:00-17:00, or closed")
    start, end = _parse_clock(match.group(1)), _parse_clock(match.group(2))
    if start == 24 * 60:
        raise ValueError(f"bad hours '{text}': a day cannot open at 24:00")
    if end <= start:
        raise ValueError(f"bad hours '{text}': ends before it starts")
    return Interval(start, end)


def _parse_until(text: str, zone: ZoneInfo) -> datetime:
    # A date alone is ambiguous ("until the 2nd": its start or its end?), so a time is required.
    if not _UNTIL.fullmatch(text):
        raise ValueError(f"bad moment '{text}'; write YYYY-MM-DDTHH:MM, e.g. 2026-10-02T12:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"bad moment '{text}': no such date or time") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=zone)
    return moment.astimezone(zone)
