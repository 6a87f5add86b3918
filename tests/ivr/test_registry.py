"""FlowRegistry: reloads keep the last good flow; calendars warn about missing holiday years."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

from cc_core.calendars import load_calendars
from cc_core.ivr.registry import FlowRegistry, calendar_warnings

SHIPPED = Path(__file__).resolve().parents[2] / "ivr_flows"


def test_missing_holiday_years_are_warned_about() -> None:
    calendars = load_calendars(SHIPPED / "calendars")
    assert calendar_warnings(calendars, date(2026, 6, 1)) == []
    # From November the next year's notice is due: 2027 is not entered yet.
    late = calendar_warnings(calendars, date(2026, 11, 29))
    assert len(late) == 1 and "beijing" in late[0] and "2027" in late[0]
    assert "2028" in calendar_warnings(calendars, date(2028, 3, 1))[0]


def test_reload_keeps_the_last_good_flow_and_reports(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    shutil.copytree(SHIPPED, folder)
    registry = FlowRegistry(folder, today=lambda: date(2026, 6, 1))
    first = registry.reload()
    assert first.ok and sorted(first.loaded) == ["after_hours", "holiday", "main"]
    good = registry.snapshot()["main"]
    main = folder / "main.yaml"
    main.write_text(main.read_text(encoding="utf-8").replace('"2": business_menu', '"2": nowhere'), encoding="utf-8")
    assert registry.changed()
    second = registry.reload()
    assert not second.ok and "main" in second.kept
    assert any("nowhere" in p for p in second.problems)
    assert registry.snapshot()["main"] is good  # the last good version keeps serving
    assert registry.reloads == 2
