"""Business-hours calendars (T6): states at chosen moments, next opening, the file checks, beijing.yaml.

Every moment is passed in: no test reads the clock, so the results never depend on the day they run.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cc_core.calendars import (
    MAX_FILE_BYTES,
    Calendar,
    CalendarError,
    load_calendar,
    load_calendars,
)
from cc_core.errors import HotlineError

REPO = Path(__file__).resolve().parents[2]
BEIJING = ZoneInfo("Asia/Shanghai")

# A week of June 2026: Mon 8, Tue 9, Wed 10 (closure), Sat 13, Fri 19 (端午节);
# October: Wed 30 Sep, 1-7 国庆节, Thu 8, Fri 9, Sat 10 (make-up workday), Sun 11.
TEST_CALENDAR = """\
title: 测试日历
timezone: Asia/Shanghai
EMERGENCY
hours:
  mon: ["09:00-12:00", "13:00-17:00"]
  tue: "09:00-17:00"
  wed: 9:00-17:00
  thu: "09:00-17:00"
  fri: "09:00 – 17:00"
  sat: closed
workday_hours: mon
holidays:
  - {date: 2026-06-19, name: 端午节}
  - {date: 2026-10-01..2026-10-07, name: 国庆节}
workdays:
  - {date: 2026-10-10, name: 国庆节调休上班}
closures:
  - {date: 2026-06-10, name: 全员业务培训}
"""


def write(folder: Path, text: str, name: str = "test.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def make(folder: Path, emergency: str = "") -> Calendar:
    """The test calendar, with an optional ``emergency:`` section (YAML text, unindented)."""
    return load_calendar(write(folder, TEST_CALENDAR.replace("EMERGENCY\n", emergency)))


def at(text: str) -> datetime:
    """A naive local moment, e.g. at("2026-06-08 09:00")."""
    return datetime.fromisoformat(text)


@pytest.fixture
def cal(tmp_path: Path) -> Calendar:
    return make(tmp_path)


# ---- weekly hours ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "state"),
    [
        ("2026-06-09 08:59:59", "closed"),
        ("2026-06-09 09:00", "open"),  # the opening minute is inside
        ("2026-06-09 12:30", "open"),  # Tuesday has no lunch gap
        ("2026-06-09 16:59:59.999", "open"),
        ("2026-06-09 17:00", "closed"),  # the closing minute is outside
        ("2026-06-09 23:00", "closed"),
        ("2026-06-11 10:00", "open"),  # Wednesday written without quotes (9:00): still a time, not 540
        ("2026-06-12 16:00", "open"),  # Friday written with an en dash
    ],
)
def test_weekday_inside_outside_and_at_the_boundaries(cal: Calendar, moment: str, state: str) -> None:
    assert cal.state_at(at(moment)) == state


@pytest.mark.parametrize(
    ("moment", "state"),
    [
        ("2026-06-08 11:59", "open"),
        ("2026-06-08 12:00", "closed"),
        ("2026-06-08 12:59", "closed"),
        ("2026-06-08 13:00", "open"),
    ],
)
def test_lunch_gap(cal: Calendar, moment: str, state: str) -> None:
    assert cal.state_at(at(moment)) == state


@pytest.mark.parametrize("moment", ["2026-06-13 10:00", "2026-06-14 10:00"])
def test_weekend_is_closed(cal: Calendar, moment: str) -> None:
    assert cal.state_at(at(moment)) == "closed"


# ---- holidays, make-up workdays, closures -----------------------------------------------


def test_public_holiday_on_a_weekday(cal: Calendar) -> None:
    assert date(2026, 6, 19).weekday() == 4  # a Friday
    assert cal.state_at(at("2026-06-19 10:00")) == "holiday"
    assert cal.state_at(at("2026-06-19 22:00")) == "holiday"  # the whole day, not only the hours
    assert cal.is_holiday(date(2026, 6, 19))
    assert cal.holiday_name(date(2026, 6, 19)) == "端午节"


def test_holiday_range_includes_both_ends(cal: Calendar) -> None:
    assert cal.holiday_name(date(2026, 10, 1)) == "国庆节"
    assert cal.holiday_name(date(2026, 10, 7)) == "国庆节"
    assert cal.holiday_name(date(2026, 9, 30)) is None
    assert cal.holiday_name(date(2026, 10, 8)) is None
    assert cal.state_at(at("2026-10-08 09:00")) == "open"


def test_make_up_workday_on_a_saturday_keeps_mondays_hours(cal: Calendar) -> None:
    assert date(2026, 10, 10).weekday() == 5  # a Saturday
    assert cal.is_makeup_workday(date(2026, 10, 10))
    assert cal.state_at(at("2026-10-10 08:59")) == "closed"
    assert cal.state_at(at("2026-10-10 09:00")) == "open"
    assert cal.state_at(at("2026-10-10 12:30")) == "closed"  # Monday's lunch gap
    assert cal.state_at(at("2026-10-10 16:00")) == "open"
    assert cal.state_at(at("2026-10-10 17:00")) == "closed"
    assert cal.state_at(at("2026-10-11 10:00")) == "closed"  # the Sunday after is an ordinary Sunday


def test_closure(cal: Calendar) -> None:
    assert cal.closure_name(date(2026, 6, 10)) == "全员业务培训"
    assert cal.state_at(at("2026-06-10 10:00")) == "closed"
    assert not cal.is_holiday(date(2026, 6, 10))  # closed, but callers hear the after-hours path


def test_has_holidays_for(cal: Calendar) -> None:
    assert cal.has_holidays_for(2026)
    assert not cal.has_holidays_for(2027)


# ---- emergency override -----------------------------------------------------------------


def test_emergency_active_wins_over_everything(tmp_path: Path) -> None:
    cal = make(tmp_path, 'emergency:\n  active: true\n  message: "系统升级，暂停服务。"\n')
    for moment in ("2026-06-09 10:00", "2026-06-09 23:00", "2026-10-01 10:00", "2026-06-13 10:00"):
        assert cal.state_at(at(moment)) == "emergency", moment
    assert cal.emergency_message(at("2026-06-09 10:00")) == "系统升级，暂停服务。"


def test_emergency_ends_by_itself_at_until(tmp_path: Path) -> None:
    cal = make(tmp_path, "emergency:\n  active: true\n  until: 2026-06-09T12:00\n")
    assert cal.state_at(at("2026-06-09 11:59:59")) == "emergency"
    assert cal.state_at(at("2026-06-09 12:00")) == "open"
    assert cal.emergency_message(at("2026-06-09 12:00")) is None


def test_emergency_until_with_an_offset(tmp_path: Path) -> None:
    cal = make(tmp_path, 'emergency:\n  active: yes\n  until: "2026-06-09T04:00+00:00"\n')
    assert cal.state_at(at("2026-06-09 11:59")) == "emergency"  # 04:00 UTC is 12:00 in Beijing
    assert cal.state_at(at("2026-06-09 12:00")) == "open"


def test_emergency_inactive(tmp_path: Path) -> None:
    cal = make(tmp_path, 'emergency:\n  active: false\n  message: "x"\n  until: 2099-01-01T00:00\n')
    assert cal.state_at(at("2026-06-09 10:00")) == "open"
    assert cal.emergency_message(at("2026-06-09 10:00")) is None


# ---- time zones --------------------------------------------------------------------------


def test_aware_utc_moments_are_converted_into_beijing(cal: Calendar) -> None:
    assert cal.state_at(datetime(2026, 6, 9, 0, 59, tzinfo=UTC)) == "closed"  # 08:59 in Beijing
    assert cal.state_at(datetime(2026, 6, 9, 1, 0, tzinfo=UTC)) == "open"  # 09:00
    assert cal.state_at(datetime(2026, 6, 9, 9, 0, tzinfo=UTC)) == "closed"  # 17:00
    # Friday 17:30 UTC is already Saturday 01:30 in Beijing: the make-up workday, before its hours.
    assert cal.state_at(datetime(2026, 10, 9, 17, 30, tzinfo=UTC)) == "closed"
    assert cal.state_at(datetime(2026, 10, 10, 1, 30, tzinfo=UTC)) == "open"
    # The day before 国庆节 in UTC is already the holiday in Beijing.
    assert cal.state_at(datetime(2026, 9, 30, 16, 0, tzinfo=UTC)) == "holiday"
    new_york_summer = timezone(timedelta(hours=-4))
    assert cal.state_at(datetime(2026, 6, 8, 21, 30, tzinfo=new_york_summer)) == "open"  # Tue 09:30


def test_naive_moments_are_local_to_the_calendars_zone(tmp_path: Path) -> None:
    utc_cal = load_calendar(write(tmp_path, 'timezone: UTC\nhours:\n  tue: "09:00-17:00"\n'))
    assert utc_cal.state_at(at("2026-06-09 09:00")) == "open"
    assert utc_cal.state_at(datetime(2026, 6, 9, 9, 0, tzinfo=BEIJING)) == "closed"  # 01:00 UTC


def test_default_time_zone_is_beijing(tmp_path: Path) -> None:
    cal = load_calendar(write(tmp_path, 'hours:\n  mon: "09:00-17:00"\n'))
    assert cal.timezone == BEIJING


# ---- next_open ---------------------------------------------------------------------------


def test_next_open_is_now_when_open(cal: Calendar) -> None:
    assert cal.next_open(at("2026-06-09 10:15")) == datetime(2026, 6, 9, 10, 15, tzinfo=BEIJING)


def test_next_open_after_lunch_and_overnight_and_weekend(cal: Calendar) -> None:
    assert cal.next_open(at("2026-06-08 12:30")) == datetime(2026, 6, 8, 13, 0, tzinfo=BEIJING)
    assert cal.next_open(at("2026-06-09 17:00")) == datetime(2026, 6, 11, 9, 0, tzinfo=BEIJING)  # Wed is closed
    assert cal.next_open(at("2026-06-12 18:00")) == datetime(2026, 6, 15, 9, 0, tzinfo=BEIJING)


def test_next_open_across_a_holiday_and_onto_a_make_up_workday(cal: Calendar) -> None:
    assert cal.next_open(at("2026-09-30 17:00")) == datetime(2026, 10, 8, 9, 0, tzinfo=BEIJING)
    assert cal.next_open(at("2026-10-09 17:30")) == datetime(2026, 10, 10, 9, 0, tzinfo=BEIJING)


def test_next_open_takes_aware_moments_and_answers_in_beijing(cal: Calendar) -> None:
    answer = cal.next_open(datetime(2026, 6, 9, 10, 0, tzinfo=UTC))  # 18:00 Tuesday in Beijing
    assert answer == datetime(2026, 6, 11, 9, 0, tzinfo=BEIJING)
    assert answer is not None and answer.tzinfo == BEIJING


def test_next_open_during_an_emergency(tmp_path: Path) -> None:
    ending = make(tmp_path, "emergency:\n  active: true\n  until: 2026-06-09T10:30\n")
    assert ending.next_open(at("2026-06-09 10:00")) == datetime(2026, 6, 9, 10, 30, tzinfo=BEIJING)
    assert ending.next_open(at("2026-06-08 18:00")) == datetime(2026, 6, 9, 10, 30, tzinfo=BEIJING)
    endless = make(tmp_path, "emergency:\n  active: true\n")
    assert endless.next_open(at("2026-06-09 10:00")) is None


def test_next_open_gives_up_after_the_horizon(tmp_path: Path) -> None:
    never = load_calendar(write(tmp_path, "hours:\n  mon: closed\n"))
    assert never.next_open(at("2026-06-09 10:00")) is None


def test_calendar_is_immutable(cal: Calendar) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        cal.name = "other"  # type: ignore[misc]


# ---- file errors: file:line: message -----------------------------------------------------

HOURS = 'hours:\n  mon: "09:00-17:00"\n'  # lines 1-2 of most cases below


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        pytest.param(HOURS + "holiday: []\n", 3, "unknown key 'holiday'; did you mean 'holidays'?", id="unknown-key"),
        pytest.param(
            HOURS + "holidays:\n  - {date: 2026-10-01, nmae: 国庆节}\n",
            4,
            "holidays[0]: unknown key 'nmae'",
            id="unknown-entry-key",
        ),
        pytest.param('hours:\n  monday: "09:00-17:00"\n', 2, "hours: unknown key 'monday'", id="unknown-weekday"),
        pytest.param(HOURS + "hours: {}\n", 3, "'hours' is given twice", id="duplicate-key"),
        pytest.param("timezone: UTC\n", 1, "hours: missing", id="missing-hours"),
        pytest.param(
            HOURS + "holidays:\n  - {date: 2026-02-30, name: 不存在}\n",
            4,
            "bad date '2026-02-30': no such day",
            id="bad-date",
        ),
        pytest.param(
            HOURS + "holidays:\n  - {date: 2026/10/01, name: 国庆节}\n", 4, "write YYYY-MM-DD", id="date-format"
        ),
        pytest.param(
            HOURS + "holidays:\n  - {date: 2026-10-07..2026-10-01, name: 国庆节}\n",
            4,
            "the range ends (2026-10-01) before it starts (2026-10-07)",
            id="end-before-start",
        ),
        pytest.param(
            HOURS + "holidays:\n  - {date: 2026-10-01..2027-10-07, name: 国庆节}\n",
            4,
            "is the year right?",
            id="range-too-long",
        ),
        pytest.param(
            HOURS + "holidays:\n  - {date: 2026-10-01..2026-10-07, name: 国庆节}\n  - {date: 2026-10-07, name: 重复}\n",
            5,
            "overlaps '国庆节' (line 4)",
            id="holidays-overlap",
        ),
        pytest.param(
            HOURS
            + "holidays:\n  - {date: 2026-10-01..2026-10-10, name: 国庆节}\n"
            + "workdays:\n  - {date: 2026-10-10, name: 调休}\n",
            6,
            "2026-10-10 is also the holiday '国庆节' (line 4)",
            id="holiday-and-workday",
        ),
        pytest.param(
            HOURS + "workdays:\n  - {date: 2026-10-12, name: 调休}\n",
            4,
            "2026-10-12 is a Monday, normally open",
            id="workday-on-open-day",
        ),
        pytest.param(HOURS + "workday_hours: sat\n", 3, "sat has no hours", id="workday-hours-closed-day"),
        pytest.param(HOURS + "holidays:\n  - {date: 2026-10-01}\n", 4, "'name' is missing", id="missing-name"),
        pytest.param('hours:\n  mon: "09:00-25:00"\n', 2, "bad time '25:00'", id="bad-hour"),
        pytest.param('hours:\n  mon: "09:60-17:00"\n', 2, "bad time '09:60'", id="bad-minute"),
        pytest.param('hours:\n  mon: "9-17"\n', 2, "write HH:MM", id="no-minutes"),
        pytest.param('hours:\n  mon: "17:00-09:00"\n', 2, "ends before it starts", id="interval-backwards"),
        pytest.param('hours:\n  mon: "nine to five"\n', 2, "write start-end", id="not-an-interval"),
        pytest.param(
            'hours:\n  mon:\n    - "09:00-12:00"\n    - "11:00-17:00"\n',
            4,
            "11:00-17:00 overlaps 09:00-12:00",
            id="intervals-overlap",
        ),
        pytest.param(HOURS + "timezone: Asia/Peking\n", 3, "unknown time zone 'Asia/Peking'", id="bad-timezone"),
        pytest.param(HOURS + "emergency:\n  active: maybe\n", 4, "expected true or false", id="bad-boolean"),
        pytest.param(
            HOURS + "emergency:\n  active: true\n  until: 2026-10-02\n", 5, "YYYY-MM-DDTHH:MM", id="until-without-time"
        ),
        pytest.param(
            HOURS + "emergency:\n  active: true\n  until: 2026-13-02T12:00\n", 5, "no such date", id="bad-until"
        ),
        pytest.param(
            'hours:\n  mon: &day "09:00-17:00"\n  tue: *day\n',
            2,
            "anchor '&day': anchors and aliases are not allowed",
            id="anchor",
        ),
        pytest.param(HOURS + "title: !!str 日历\n", 3, "tag '!!str' is not allowed: custom tags are refused", id="tag"),
        pytest.param('hours:\n  mon: ["09:00-17:00"\n', 3, "YAML syntax: ", id="yaml-syntax"),
        pytest.param("", 1, "the calendar is empty", id="empty"),
        pytest.param("- mon\n", 1, "expected keys", id="not-a-mapping"),
    ],
)
def test_file_errors_name_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CalendarError) as caught:
        load_calendar(path)
    error = caught.value
    assert isinstance(error, HotlineError)
    assert error.path == path
    assert error.line == line, str(error)
    assert str(error).startswith(f"{path}:{line}: "), str(error)
    assert fragment in str(error)
    assert "\n" not in str(error)


def test_alias_is_refused_at_its_line(tmp_path: Path) -> None:
    # An alias alone (no anchor anywhere) is refused where it is written.
    path = write(tmp_path, HOURS + "  tue: *day\n")
    with pytest.raises(CalendarError, match=r":3: "):
        load_calendar(path)


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "gbk.yaml"
    path.write_bytes(HOURS.encode() + "title: 测试日历\n".encode("gbk"))
    with pytest.raises(CalendarError) as caught:
        load_calendar(path)
    assert caught.value.line == 3
    assert str(caught.value) == f"{path}:3: not UTF-8 text; save the file as UTF-8"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + (HOURS + "title: 测试\n").encode())
    assert load_calendar(path).title == "测试"


def test_file_over_64_kb_is_refused_without_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, HOURS + "# " + "x" * MAX_FILE_BYTES + "\n")
    with pytest.raises(CalendarError) as caught:
        load_calendar(path)
    assert caught.value.line is None
    assert str(caught.value).startswith(f"{path}: the file is ")
    assert f"at most {MAX_FILE_BYTES}" in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="cannot read the calendar"):
        load_calendar(tmp_path / "nope.yaml")


# ---- load_calendars ----------------------------------------------------------------------


def test_load_calendars_by_file_name(tmp_path: Path) -> None:
    write(tmp_path, HOURS, "beijing.yaml")
    write(tmp_path, 'hours:\n  sat: "09:00-12:00"\n', "weekend.yaml")
    write(tmp_path, "not: a calendar\n", ".beijing.yaml")  # an editor's leftover
    write(tmp_path, "not: a calendar\n", "notes.txt")
    calendars = load_calendars(tmp_path)
    assert sorted(calendars) == ["beijing", "weekend"]
    assert calendars["weekend"].name == "weekend"


def test_load_calendars_missing_folder_is_empty(tmp_path: Path) -> None:
    assert load_calendars(tmp_path / "calendars") == {}


def test_load_calendars_refuses_a_bad_file(tmp_path: Path) -> None:
    write(tmp_path, HOURS, "good.yaml")
    bad = write(tmp_path, HOURS + "holiday: []\n", "bad.yaml")
    with pytest.raises(CalendarError, match=f"^{re.escape(str(bad))}:3: "):
        load_calendars(tmp_path)


# ---- the shipped calendar ----------------------------------------------------------------


@pytest.fixture(scope="module")
def beijing() -> Calendar:
    return load_calendars(REPO / "ivr_flows" / "calendars")["beijing"]


@pytest.mark.parametrize(
    ("moment", "state"),
    [
        ("2026-01-01 10:00", "holiday"),  # 元旦
        ("2026-01-04 10:00", "open"),  # Sunday, 元旦 make-up workday
        ("2026-02-14 10:00", "open"),  # Saturday, 春节 make-up workday
        ("2026-02-14 17:00", "closed"),
        ("2026-02-17 10:00", "holiday"),  # 春节 (正月初一)
        ("2026-02-23 10:00", "holiday"),  # last day of 春节 (a Monday)
        ("2026-02-24 09:00", "open"),
        ("2026-02-28 10:00", "open"),  # Saturday, 春节 make-up workday
        ("2026-04-06 10:00", "holiday"),  # 清明节 (Monday)
        ("2026-05-05 10:00", "holiday"),  # 劳动节
        ("2026-05-09 10:00", "open"),  # Saturday, 劳动节 make-up workday
        ("2026-06-19 10:00", "holiday"),  # 端午节 (Friday)
        ("2026-09-20 10:00", "open"),  # Sunday, 国庆节 make-up workday
        ("2026-09-25 10:00", "holiday"),  # 中秋节 (Friday)
        ("2026-10-01 10:00", "holiday"),  # 国庆节
        ("2026-10-07 16:00", "holiday"),
        ("2026-10-08 10:00", "open"),  # Thursday, back to work
        ("2026-10-08 17:00", "closed"),
        ("2026-10-10 10:00", "open"),  # Saturday, 国庆节 make-up workday
        ("2026-10-11 10:00", "closed"),  # an ordinary Sunday
        ("2026-11-28 10:00", "closed"),  # an ordinary Saturday
        ("2025-10-08 10:00", "holiday"),  # 2025: 国庆节、中秋节 together, 8 days
        ("2025-04-27 10:00", "open"),  # 2025: Sunday, 劳动节 make-up workday
    ],
)
def test_shipped_beijing_calendar(beijing: Calendar, moment: str, state: str) -> None:
    assert beijing.state_at(at(moment)) == state


def test_shipped_beijing_calendar_details(beijing: Calendar) -> None:
    assert beijing.timezone == BEIJING
    assert beijing.holiday_name(date(2026, 10, 1)) == "国庆节"
    assert beijing.holiday_name(date(2026, 2, 15)) == "春节"
    assert not beijing.emergency.active  # shipped switched off
    assert beijing.has_holidays_for(2025) and beijing.has_holidays_for(2026)
    assert beijing.next_open(at("2026-09-30 17:00")) == datetime(2026, 10, 8, 9, 0, tzinfo=BEIJING)
    assert beijing.next_open(at("2026-10-09 17:00")) == datetime(2026, 10, 10, 9, 0, tzinfo=BEIJING)
