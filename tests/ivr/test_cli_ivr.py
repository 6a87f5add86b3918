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


# --- `hotline ivr validate FILE` checks the file given (issue 11, "also found") ---------------------

BROKEN_FLOW = """flow: draft
title: 草稿
start: main_menu
nodes:
  main_menu:
    menu:
      prompt: "咨询请按1。"
      choices:
        "1": consul
      on_fail: bye
  bye:
    hangup: "再见。"
"""


def test_validate_a_broken_file_reports_its_problems_and_fails(tmp_path: Path) -> None:
    draft = tmp_path / "draft.yaml"
    draft.write_text(BROKEN_FLOW, encoding="utf-8")
    result = hotline("ivr", "validate", str(draft), home=tmp_path)
    # On the old code: the shipped folder was validated instead, "ok" for main, exit 0.
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"{draft}:9: nodes.main_menu.menu.choices.\"1\": target 'consul' does not exist",
    ]
    assert "1 problem(s)" in result.stderr
    assert "flow main" not in result.stdout


def test_validate_a_good_file_checks_it_against_the_flows_folder(tmp_path: Path) -> None:
    draft = tmp_path / "draft.yaml"
    good = BROKEN_FLOW.replace("consul", "to_main").replace("  bye:\n", "  to_main:\n    goto: {flow: main}\n  bye:\n")
    draft.write_text(good, encoding="utf-8")
    result = hotline("ivr", "validate", str(draft), home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"ok: {draft}: flow draft (3 nodes, start main_menu)"]
    # A goto to a flow the folder does not have is a problem of that file.
    draft.write_text(good.replace("{flow: main}", "{flow: mian}"), encoding="utf-8")
    result = hotline("ivr", "validate", str(draft), home=tmp_path)
    assert result.returncode == 1 and "flow 'mian' does not exist (did you mean 'main'?)" in result.stdout


def test_validate_a_shipped_file_and_a_calendar_by_name(tmp_path: Path) -> None:
    main, calendar = REPO / "ivr_flows" / "main.yaml", REPO / "ivr_flows" / "calendars" / "beijing.yaml"
    result = hotline("ivr", "validate", str(main), str(calendar), home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"ok: {main}: flow main (")
    assert lines[1].startswith(f"ok: {calendar}: calendar beijing (")


def test_validate_refuses_a_missing_file_and_a_wrong_extension(tmp_path: Path) -> None:
    missing = hotline("ivr", "validate", str(tmp_path / "nope.yaml"), home=tmp_path)
    assert missing.returncode == 2 and f"no such file: {tmp_path / 'nope.yaml'}" in missing.stderr
    yml = tmp_path / "draft.yml"
    yml.write_text(BROKEN_FLOW, encoding="utf-8")
    wrong = hotline("ivr", "validate", str(yml), home=tmp_path)
    assert wrong.returncode == 1
    assert wrong.stdout.splitlines() == [f"{yml}:1: flow files end in .yaml; this file would not be loaded"]


def test_validate_a_file_with_a_host_not_allowed(tmp_path: Path) -> None:
    draft = tmp_path / "draft.yaml"
    flow = BROKEN_FLOW.replace('"1": consul', '"1": ask').replace(
        "  bye:\n", '  ask:\n    http: {url: "https://10.9.8.7/q", next: bye, on_error: bye}\n  bye:\n'
    )
    draft.write_text(flow, encoding="utf-8")
    result = hotline("ivr", "validate", str(draft), home=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{draft}:12: nodes.ask.http.url: 主机 10.9.8.7:443 不在允许列表中 "
        "(host 10.9.8.7:443 is not in [ivr] http_allow of hotline.toml: 127.0.0.1:8090)"
    ]


def test_graph_takes_one_flow_and_reload_no_argument(tmp_path: Path) -> None:
    two = hotline("ivr", "graph", "main", "holiday", home=tmp_path)
    assert two.returncode == 2 and "name one flow, not 2" in two.stderr
    reload = hotline("ivr", "reload", "main.yaml", home=tmp_path)
    assert reload.returncode == 2 and "reload takes no argument" in reload.stderr
