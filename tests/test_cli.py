"""The ``hotline`` command's error paths: each ends with one clear line, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.harness.hotline import REPO, switch_root, write_settings


def hotline(*args: str, config: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "cc_core.cli"]
    if config is not None:
        cmd += ["--config", str(config)]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("hotline: error: ")
    return lines[0]


def test_bad_settings_file(tmp_path: Path) -> None:
    bad = tmp_path / "hotline.toml"
    bad.write_text("[switch]\nsip_port = 'not a number'\n")
    line = one_line_error(hotline("status", config=bad))
    assert str(bad) in line and "switch.sip_port" in line


def test_settings_file_not_toml(tmp_path: Path) -> None:
    bad = tmp_path / "hotline.toml"
    bad.write_text("[switch\n")
    assert "not valid TOML" in one_line_error(hotline("status", config=bad))


def test_missing_settings_file(tmp_path: Path) -> None:
    assert "not found" in one_line_error(hotline("status", config=tmp_path / "nope.toml"))


def test_switch_not_installed(tmp_path: Path) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text(f'[switch]\nroot = "{tmp_path / "no-switch"}"\n')
    line = one_line_error(hotline("switch", "start", config=config))
    assert "not installed" in line and "scripts/setup.sh" in line


def test_port_already_in_use(tmp_path: Path) -> None:
    config = write_settings(tmp_path, "tportbusy", 5999, f"sqlite:///{tmp_path / 'db.sqlite'}")
    text = config.read_text()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        import re

        config.write_text(re.sub(r"(?m)^sip_port = \d+$", f"sip_port = {port}", text, count=1))
        line = one_line_error(hotline("switch", "start", config=config))
    assert f"port {port}" in line and "already in use" in line
    assert switch_root().exists()


def test_bad_database_url(tmp_path: Path) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text('[database]\nurl = "postgresql+psycopg://postgres@127.0.0.1:1/none"\n')
    line = one_line_error(hotline("db", "upgrade", config=config))
    assert "cannot reach the database" in line


def test_status_when_nothing_runs(tmp_path: Path) -> None:
    config = write_settings(tmp_path, "tnothing", 5999, f"sqlite:///{tmp_path / 'db.sqlite'}")
    result = hotline("status", config=config)
    assert result.returncode == 1
    assert "switch:     stopped" in result.stdout
    assert "controller: not running" in result.stdout


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "h.db"}"\n')
    assert hotline("db", "current", config=config).stdout.strip() == "(empty database)"
    up = hotline("db", "upgrade", config=config)
    assert up.returncode == 0 and "revision" in up.stdout
    assert hotline("db", "current", config=config).stdout.strip() != "(empty database)"


def test_day_report_and_callback_list(tmp_path: Path) -> None:
    """T10: the day's rates from real rows (two offered, one answered, one called back = 100%)."""
    import json
    from datetime import UTC, datetime, timedelta

    from cc_core.calls.callbacks import CallbackStore
    from cc_core.calls.store import CallStore
    from cc_core.db.session import make_engine, make_sessionmaker

    config = tmp_path / "hotline.toml"
    url = f"sqlite:///{tmp_path / 'h.db'}"
    config.write_text(f'[database]\nurl = "{url}"\n')
    assert hotline("db", "upgrade", config=config).returncode == 0
    sessions = make_sessionmaker(make_engine(url))
    calls, callbacks = CallStore(sessions), CallbackStore(sessions)
    at = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
    for n, uid in enumerate(("1.1", "1.2")):
        calls.call_arrived(uid, uid, f"1380000000{n}", "12333", f"PJSIP/carrier-{n}", at)
        calls.queue_entered(uid, "general", None, 0, at + timedelta(seconds=5))
    calls.agent_answered("1.1", "1001", at + timedelta(seconds=20))
    callback = callbacks.request("13800000001", "1.2", "abandoned", at + timedelta(minutes=1))
    assert callbacks.claim(callback, at + timedelta(minutes=3))
    attempt = callbacks.attempt_started(callback, "1001", at + timedelta(minutes=3), "cb-1")
    callbacks.attempt_finished(attempt, "reached", at + timedelta(minutes=4))

    day = hotline("report", "day", "--date", "2026-11-30", "--json", config=config)
    assert day.returncode == 0, day.stderr
    figures = json.loads(day.stdout)
    assert (figures["offered"], figures["answered"], figures["called_back"]) == (2, 1, 1)
    assert figures["answered_rate"] == 0.5 and figures["total_rate"] == 1.0
    text = hotline("report", "day", "--date", "2026-11-30", config=config).stdout
    assert "合计 total 100.0%" in text and "达标" in text
    listing = hotline("report", "callbacks", "--date", "2026-11-30", config=config)
    assert "done" in listing.stdout and "13800000001" not in listing.stdout  # masked
    bad = hotline("report", "day", "--date", "30/11/2026", config=config)
    assert "YYYY-MM-DD" in one_line_error(bad)


def test_user_accounts_from_the_command_line(tmp_path: Path) -> None:
    """P2: no default account; the first admin is made here, weak passwords are refused."""
    config = tmp_path / "hotline.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "h.db"}"\n')
    assert hotline("db", "upgrade", config=config).returncode == 0
    assert hotline("user", "list", config=config).stdout.strip() == ""
    assert "--role" in one_line_error(hotline("user", "add", "boss", config=config))
    weak = subprocess.run(
        [sys.executable, "-m", "cc_core.cli", "--config", str(config), "user", "add", "boss", "--role", "admin",
         "--password-stdin"],
        input="password\n", capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
    )  # fmt: skip
    assert "至少" in one_line_error(weak)
    made = hotline("user", "add", "boss", "--role", "admin", "--generate", config=config)
    assert made.returncode == 0 and "shown once" in made.stdout
    assert "boss" in hotline("user", "list", config=config).stdout
    assert "exists" in one_line_error(hotline("user", "add", "boss", "--role", "agent", "--generate", config=config))
