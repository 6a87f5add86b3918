"""`hotline ivr validate|graph|simulate` on the shipped flows (issue 3's Done-when)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness.hotline import REPO

ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}


def hotline(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    config = home / "hotline.toml"
    if not config.exists():
        config.write_text(f'[ivr]\nflows_dir = "{REPO / "ivr_flows"}"\n', encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "cc_core.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=ENV,
        check=False,
    )


def test_shipped_flows_validate(tmp_path: Path) -> None:
    result = hotline("ivr", "validate", home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for flow in ("main", "after_hours", "holiday"):
        assert f"flow {flow} " in result.stdout


def test_graph_of_the_main_flow(tmp_path: Path) -> None:
    out = tmp_path / "main.svg"
    result = hotline("ivr", "graph", "main", "--out", str(out), home=tmp_path)
    assert result.returncode == 0, result.stderr
    svg = out.read_text(encoding="utf-8")
    assert "<svg" in svg and "certification_menu" in svg and "菜单" in svg


def test_simulate_reaches_level_5_on_a_working_day(tmp_path: Path) -> None:
    result = hotline("ivr", "simulate", "main", "--digits", "1,1,3,3,1", "--at", "2026-10-08 10:00", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "main/certification_menu [menu]" in result.stdout
    assert "刷脸认证" in result.stdout and "结果: hangup" in result.stdout


def test_simulate_on_national_day_hears_the_holiday_flow(tmp_path: Path) -> None:
    result = hotline("ivr", "simulate", "main", "--at", "2026-10-01 10:00", home=tmp_path)
    assert "holiday/holiday_notice" in result.stdout and "法定节假日" in result.stdout


def test_simulate_on_a_makeup_saturday_is_open(tmp_path: Path) -> None:
    result = hotline("ivr", "simulate", "main", "--digits", "0", "--at", "2026-10-10 10:00", home=tmp_path)
    assert "main/main_menu [menu]" in result.stdout and "结果: queue general" in result.stdout


def test_simulate_after_hours_offers_voicemail(tmp_path: Path) -> None:
    result = hotline("ivr", "simulate", "main", "--digits", "1", "--at", "2026-10-08 20:00", home=tmp_path)
    assert "after_hours/leave_message [voicemail]" in result.stdout


def test_simulate_self_service_without_http_takes_the_error_exit(tmp_path: Path) -> None:
    result = hotline(
        "ivr", "simulate", "main", "--digits", "2,1,11010519491231002*", "--at", "2026-10-08 10:00", home=tmp_path
    )
    assert "已跳过" in result.stdout and "main/query_failed [play]" in result.stdout


def test_simulate_unknown_flow_and_bad_time(tmp_path: Path) -> None:
    unknown = hotline("ivr", "simulate", "nope", home=tmp_path)
    assert unknown.returncode == 2 and "not loadable" in unknown.stderr
    bad = hotline("ivr", "simulate", "main", "--at", "yesterday", home=tmp_path)
    assert bad.returncode == 2 and "--at" in bad.stderr
