"""The hotline's time zone as a setting and its local day (issue 12 item 6), and the one safe YAML
reader as the calendars see it.

Before: ``Asia/Shanghai`` was written out in six modules; a ``timezone`` in hotline.toml did not
exist, and a calendar file without ``timezone:`` was always in Beijing time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cc_core.calendars import CalendarError, load_calendar
from cc_core.calendars.days import (
    DEFAULT_TIMEZONE,
    local_day,
    local_day_bounds,
    local_zone,
    timezone_named,
    use_timezone,
)
from cc_core.errors import SettingsError
from cc_core.settings import load_settings

HOURS = 'hours:\n  mon: "09:00-17:00"\n'


@pytest.fixture
def zone() -> Iterator[None]:
    """Leave the process's zone as the tests found it (the default)."""
    yield
    use_timezone(DEFAULT_TIMEZONE)


def test_the_default_zone_is_beijing() -> None:
    assert (DEFAULT_TIMEZONE, local_zone()) == ("Asia/Shanghai", ZoneInfo("Asia/Shanghai"))
    assert local_day(datetime(2026, 6, 8, 16, 0, tzinfo=UTC)) == date(2026, 6, 9)  # 00:00 in Beijing


def test_the_setting_moves_the_day_and_its_bounds(zone: None) -> None:
    moment = datetime(2026, 6, 8, 16, 30, tzinfo=UTC)  # 00:30 on the 9th in Beijing, 17:30 on the 8th in London
    assert local_day(moment) == date(2026, 6, 9)
    assert use_timezone("Europe/London") == ZoneInfo("Europe/London")
    assert local_day(moment) == date(2026, 6, 8)
    # Summer time in London: the day starts at 23:00 UTC the evening before.
    assert local_day_bounds(date(2026, 6, 8)) == (
        datetime(2026, 6, 7, 23, 0, tzinfo=UTC),
        datetime(2026, 6, 8, 23, 0, tzinfo=UTC),
    )


def test_a_naive_moment_has_no_day() -> None:
    with pytest.raises(ValueError, match=r"^naive datetime 2026-06-08T16:30:00; pass an aware one"):
        local_day(datetime(2026, 6, 8, 16, 30))


def test_an_unknown_zone_is_refused_chinese_first(zone: None) -> None:
    with pytest.raises(ValueError) as caught:
        use_timezone("Mars/Olympus")
    assert str(caught.value) == (
        "未知时区 'Mars/Olympus' (unknown time zone 'Mars/Olympus'; give an IANA name such as Asia/Shanghai)"
    )
    assert local_zone() == ZoneInfo("Asia/Shanghai")  # unchanged
    with pytest.raises(ValueError, match="未知时区"):
        timezone_named("../etc/passwd")


def test_the_setting_is_read_from_the_file_and_the_environment(tmp_path: Path) -> None:
    assert load_settings(env={}).timezone == "Asia/Shanghai"
    file = tmp_path / "hotline.toml"
    file.write_text('timezone = "Asia/Urumqi"\n', encoding="utf-8")
    settings = load_settings(file, env={})
    assert (settings.timezone, settings.zone) == ("Asia/Urumqi", ZoneInfo("Asia/Urumqi"))
    assert load_settings(file, env={"HOTLINE_TIMEZONE": "Asia/Hong_Kong"}).timezone == "Asia/Hong_Kong"


def test_a_bad_setting_is_one_line_naming_the_key(tmp_path: Path) -> None:
    file = tmp_path / "hotline.toml"
    file.write_text('timezone = "Beijing"\n', encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings(file, env={})
    assert str(caught.value) == (
        f"bad settings in {file}: timezone: Value error, 未知时区 'Beijing' (unknown time zone 'Beijing'; "
        "give an IANA name such as Asia/Shanghai)"
    )


def test_a_calendar_without_a_zone_takes_the_hotlines(tmp_path: Path, zone: None) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(HOURS, encoding="utf-8")
    assert load_calendar(path).timezone == ZoneInfo("Asia/Shanghai")
    use_timezone("Europe/London")
    assert load_calendar(path).timezone == ZoneInfo("Europe/London")
    path.write_text(HOURS + "timezone: Asia/Shanghai\n", encoding="utf-8")
    assert load_calendar(path).timezone == ZoneInfo("Asia/Shanghai")  # its own zone wins


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        # The flow loader refused these before; the calendar's own reader did not (issue 12: one reader).
        (
            HOURS + "title: " + "[" * 25 + "]" * 25 + "\n",
            3,
            "nested more than 20 levels deep",
        ),
        (HOURS + "---\n" + HOURS, 3, "only one YAML document per file ('---' starts a second one)"),
        (HOURS + "title: a\x85b\n", 3, "character U+0085 is not allowed in YAML"),
    ],
    ids=["deep-nesting", "second-document", "nel"],
)
def test_calendars_get_every_refusal_of_the_one_reader(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CalendarError) as caught:
        load_calendar(path)
    assert str(caught.value) == f"{path}:{line}: {message}"
