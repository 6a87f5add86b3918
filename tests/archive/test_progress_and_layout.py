"""Pure parts: the progress bar's text and behaviour, the archive's file names, the settings."""

from __future__ import annotations

import io
from datetime import date, timedelta
from pathlib import Path

import pytest

from cc_core.archive.config import ArchiveConfig
from cc_core.archive.layout import archive_name, archive_path, day_of_folder, manifest_path, partial_name
from cc_core.archive.progress import ProgressBar, render
from cc_core.errors import SettingsError
from cc_core.settings import load_settings


def test_render() -> None:
    assert render("verify", 45, 120, 9.0) == ("verify [##########------------------]  45/120  37%  5.0/s  left 0:15")
    assert render("archive", 0, 3, 0.0) == "archive [----------------------------] 0/3   0%"
    assert render("archive", 3, 3, 75.0, "recording 9") == (
        "archive [############################] 3/3 100%  2.4/min  took 1:15  recording 9"
    )
    assert render("purge", 0, 0, 1.0) == "purge [############################] 0/0 100%"
    assert "left 1:23:20" in render("verify", 1, 5001, 1.0)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bar_on_a_terminal_redraws_in_place_at_most_ten_times_a_second() -> None:
    out, clock = io.StringIO(), _Clock()
    with ProgressBar("verify", out, clock=clock, interactive=True) as bar:
        for done in range(0, 101):
            clock.now = done * 0.01
            bar(done, 100, f"file {done}")
    text = out.getvalue()
    assert text.count("\r") == 11  # 0, then every 0.1 s, and the last one always
    assert text.endswith("\n") and "100/100 100%" in text and "file 100" in text


def test_bar_in_a_log_writes_a_line_every_ten_percent() -> None:
    out, clock = io.StringIO(), _Clock()
    bar = ProgressBar("archive", out, clock=clock, interactive=False)
    for done in range(0, 201):
        clock.now = done
        bar(done, 200, "x")
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 11 and "\r" not in out.getvalue()
    assert lines[0].startswith("archive [") and lines[-1].startswith("archive [####") and "200/200 100%" in lines[-1]


def test_archive_names() -> None:
    assert archive_name("/srv/hotline/cc/spool/monitor/2026-05-01/1777600000.12.wav", 7) == "1777600000.12.opus"
    assert archive_name("/x/1777600000.12.wav", 7, taken=True) == "1777600000.12-7.opus"
    assert archive_name("/x/../evil name.wav", 8) == "recording-8.opus"
    assert archive_name("/x/.hidden.wav", 9) == "recording-9.opus"
    day = date(2026, 5, 1)
    assert archive_path(day, "a.opus") == "2026/05/01/a.opus"
    assert manifest_path(day, 0) == "2026/05/01/MANIFEST.json"
    assert manifest_path(day, 2) == "2026/05/01/MANIFEST-2.json"
    assert partial_name("a.opus") == ".a.opus.partial"
    assert day_of_folder("2026/05/01") == day
    assert day_of_folder("2026/02/30") is None and day_of_folder("2026/5/1") is None


def test_settings_and_config(tmp_path: Path) -> None:
    settings = load_settings(env={"HOTLINE_HOME": str(tmp_path)})
    config = ArchiveConfig.from_settings(settings)
    assert config.store == tmp_path / "recordings_store" and config.backup is None
    assert (config.bitrate_kbps, config.retention_days, config.seal_grace) == (16, 1825, timedelta(hours=48))
    assert config.format == "ogg/opus mono 16 kbit/s"
    assert config.host_path("/srv/hotline/cc/spool/monitor/x.wav") == (
        tmp_path / "var/switch/root/srv/hotline/cc/spool/monitor/x.wav"
    )
    env = {
        "HOTLINE_HOME": str(tmp_path),
        "HOTLINE_ARCHIVE__BACKUP_DIR": "/mnt/backup/recordings",
        "HOTLINE_ARCHIVE__BITRATE_KBPS": "24",
        "HOTLINE_ARCHIVE__RETENTION_DAYS": "3650",
    }
    config = ArchiveConfig.from_settings(load_settings(env=env))
    assert config.backup == Path("/mnt/backup/recordings") and config.bitrate_kbps == 24
    assert config.retention_days == 3650


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HOTLINE_ARCHIVE__BACKUP_DIR": "recordings_store"}, "backup_dir must be another folder than store_dir"),
        ({"HOTLINE_ARCHIVE__RETENTION_DAYS": "7"}, "archive.retention_days"),
        ({"HOTLINE_ARCHIVE__DAILY_AT": "25:00"}, "archive.daily_at"),
    ],
)
def test_bad_archive_settings(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env={"HOTLINE_HOME": str(tmp_path), **env})


def test_backup_inside_the_archive_is_refused(tmp_path: Path) -> None:
    settings = load_settings(env={"HOTLINE_HOME": str(tmp_path), "HOTLINE_ARCHIVE__BACKUP_DIR": "recordings_store/b"})
    with pytest.raises(SettingsError, match=r"^\[archive\] backup_dir .* and store_dir .* overlap; put the backup"):
        ArchiveConfig.from_settings(settings)
