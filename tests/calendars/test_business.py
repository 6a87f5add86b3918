"""Business time (issue 12 item 6, for tickets' SLA): opening time between two moments, and when
a span of it ends, over the test calendar of test_calendar.py (lunch gap on Mondays, a closure, a
holiday, a make-up workday)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cc_core.calendars import Calendar, load_calendar
from cc_core.calendars.business import HORIZON_DAYS, add_business_time, business_seconds, open_periods
from tests.calendars.test_calendar import make

BEIJING = ZoneInfo("Asia/Shanghai")
HOUR = 3600.0


@pytest.fixture
def cal(tmp_path: Path) -> Calendar:
    return make(tmp_path)


def bj(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BEIJING)


def test_a_monday_has_seven_hours_around_its_lunch_gap(cal: Calendar) -> None:
    assert business_seconds(cal, bj("2026-06-08 00:00"), bj("2026-06-09 00:00")) == 7 * HOUR
    assert list(open_periods(cal, bj("2026-06-08 10:00"), bj("2026-06-08 14:00"))) == [
        (datetime(2026, 6, 8, 2, 0, tzinfo=UTC), datetime(2026, 6, 8, 4, 0, tzinfo=UTC)),
        (datetime(2026, 6, 8, 5, 0, tzinfo=UTC), datetime(2026, 6, 8, 6, 0, tzinfo=UTC)),
    ]


def test_closures_holidays_weekends_and_make_up_workdays_count_as_the_calendar_says(cal: Calendar) -> None:
    # Week of 8 June: Mon 7 h, Tue 8, Wed 10th closure 0, Thu 8, Fri 8, Sat/Sun 0.
    assert business_seconds(cal, bj("2026-06-08 00:00"), bj("2026-06-15 00:00")) == 31 * HOUR
    assert business_seconds(cal, bj("2026-06-19 00:00"), bj("2026-06-20 00:00")) == 0.0  # 端午节
    # Sat 10 Oct is a make-up workday with Monday's hours (7 h); Sun 11 is closed.
    assert business_seconds(cal, bj("2026-10-10 00:00"), bj("2026-10-12 00:00")) == 7 * HOUR


def test_naive_moments_are_local_and_a_backwards_span_is_empty(cal: Calendar) -> None:
    assert business_seconds(cal, datetime(2026, 6, 9, 9, 0), datetime(2026, 6, 9, 9, 30)) == 1800.0
    assert business_seconds(cal, bj("2026-06-09 12:00"), bj("2026-06-09 10:00")) == 0.0


def test_a_span_continues_after_the_weekend(cal: Calendar) -> None:
    # Friday 12 June, 16:00, four business hours: one on Friday, three on Monday (09-12).
    due = add_business_time(cal, bj("2026-06-12 16:00"), timedelta(hours=4))
    assert (due, due.tzinfo) == (bj("2026-06-15 12:00"), BEIJING)
    # Five: Monday's lunch gap is skipped.
    assert add_business_time(cal, bj("2026-06-12 16:00"), timedelta(hours=5)) == bj("2026-06-15 14:00")


def test_a_span_ending_at_closing_time_ends_then(cal: Calendar) -> None:
    assert add_business_time(cal, bj("2026-06-09 16:00"), timedelta(hours=1)) == bj("2026-06-09 17:00")
    assert add_business_time(cal, bj("2026-06-09 20:00"), timedelta(0)) == bj("2026-06-09 20:00")
    # Starting while closed: the clock starts at the next opening (Thu 11th, the 10th is closed).
    assert add_business_time(cal, bj("2026-06-09 20:00"), timedelta(minutes=1)) == bj("2026-06-11 09:01")


def test_bad_durations_and_a_calendar_that_never_opens(tmp_path: Path, cal: Calendar) -> None:
    with pytest.raises(ValueError, match=r"^时长不能为负 \(duration must not be negative"):
        add_business_time(cal, bj("2026-06-09 09:00"), timedelta(seconds=-1))
    path = tmp_path / "never.yaml"
    path.write_text("hours:\n  mon: closed\n", encoding="utf-8")
    never = load_calendar(path)
    with pytest.raises(ValueError) as caught:
        add_business_time(never, bj("2026-06-09 09:00"), timedelta(hours=1))
    assert str(caught.value) == (
        f"日历 never 在 {HORIZON_DAYS} 天内营业时间不足 1:00:00 "
        f"(calendar never is not open for 1:00:00 within {HORIZON_DAYS} days)"
    )


def test_a_day_with_a_clock_change_is_measured_in_real_time(tmp_path: Path) -> None:
    # London, 29 March 2026: clocks go forward at 01:00; a 00:00-24:00 day is 23 hours long.
    path = tmp_path / "london.yaml"
    path.write_text('timezone: Europe/London\nhours:\n  sun: "00:00-24:00"\n', encoding="utf-8")
    london = load_calendar(path)
    zone = ZoneInfo("Europe/London")
    day = datetime(2026, 3, 29, tzinfo=zone)
    assert business_seconds(london, day, day + timedelta(days=1)) == 23 * HOUR
