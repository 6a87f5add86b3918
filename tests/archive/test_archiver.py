"""Archival with the real ffmpeg on real WAV files: the layout, what is stored on the recording,
the original removed only after the copy is verified, failures that stop one recording or the run."""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cc_core.archive.archiver import archive_recordings
from cc_core.archive.config import ArchiveBusy, ArchiveError
from cc_core.archive.durable import sha256_file
from cc_core.archive.runs import archive_lock, last_run
from cc_core.archive.transcode import decoded_seconds
from cc_core.archive.views import (
    ArchivedRecording,
    archive_file,
    archive_summary,
    archived_for_call,
    archived_recording,
)
from cc_core.calls.recordings import RecordingStore
from tests.archive.conftest import RATE, T0, Site, speech_like

NOW = T0 + timedelta(days=1)


def _view(site: Site, recording_id: int) -> ArchivedRecording:
    view = archived_recording(site.sessions, recording_id)
    assert view is not None
    return view


def test_a_recording_is_archived_as_opus_by_beijing_day(site: Site) -> None:
    # 23:30 UTC on 30 April is 07:30 on 1 May in Beijing: the file goes under 2026/05/01.
    at = datetime(2026, 4, 30, 23, 30, tzinfo=UTC)
    recording_id = site.record("1777591800.7", at, 4.0, call="1777591800.1")
    original = site.original(recording_id)
    wav_bytes = original.stat().st_size

    result = archive_recordings(site.sessions, site.config(), now=NOW)

    assert result.ok and result.archived == [recording_id] and result.resumed == []
    view = _view(site, recording_id)
    assert view.state == "archived" and view.day == datetime(2026, 5, 1).date()
    assert view.path == "2026/05/01/1777591800.7.opus"
    assert view.format == "ogg/opus mono 16 kbit/s"
    archived = site.store / view.path
    assert sha256_file(archived) == (view.sha256, view.size_bytes)
    assert view.size_bytes is not None and view.size_bytes < wav_bytes / 5
    assert view.duration_s is not None and abs(view.duration_s - 4.0) < 0.05
    assert abs(decoded_seconds(archived) - 4.0) < 0.05
    assert archived.read_bytes()[:4] == b"OggS" and b"OpusHead" in archived.read_bytes()[:100]
    assert view.archived_at == NOW and view.backed_up_at == NOW and view.error is None
    assert sha256_file(site.backup / view.path) == (view.sha256, view.size_bytes)
    assert not original.exists()
    # On the call record, through the call's recordings.
    [for_call] = archived_for_call(site.sessions, "1777591800.1")
    assert for_call.sha256 == view.sha256 and archive_file(site.config(), for_call) == archived
    assert (result.audio_seconds, result.original_bytes, result.archived_bytes) == (4.0, wav_bytes, view.size_bytes)


def test_a_second_run_does_nothing(site: Site) -> None:
    ids = [site.record(f"1.{n}", T0 + timedelta(minutes=n), 2.0, seed=n) for n in range(3)]
    first = archive_recordings(site.sessions, site.config(), now=NOW)
    assert sorted(first.archived) == ids and first.sealed == ["2026/05/01/MANIFEST.json"]
    files = {p: p.stat().st_mtime_ns for p in site.store.rglob("*.*")}

    second = archive_recordings(site.sessions, site.config(), now=NOW + timedelta(hours=1))
    assert (second.archived, second.failed, second.sealed, second.error) == ([], [], [], None)
    assert {p: p.stat().st_mtime_ns for p in site.store.rglob("*.*")} == files
    assert archive_summary(site.sessions)["archived"] == 3
    # A run with nothing to do leaves no row behind; the first one did.
    run = last_run(site.sessions, "archive")
    assert run is not None and run.counts["archived"] == 3 and run.ok


def test_recordings_of_today_are_archived_but_not_sealed(site: Site) -> None:
    recording_id = site.record("2.1", T0, 2.0)
    result = archive_recordings(site.sessions, site.config(), now=T0 + timedelta(hours=1))
    assert result.archived == [recording_id] and result.sealed == []


def test_output_is_the_same_bytes_for_the_same_input(site: Site) -> None:
    first = site.record("3.1", T0, 3.0, seed=7)
    second = site.record("3.2", T0 + timedelta(minutes=1), 3.0, seed=7)
    archive_recordings(site.sessions, site.config(), now=NOW)
    assert _view(site, first).sha256 == _view(site, second).sha256


def test_a_corrupt_wav_fails_alone_and_is_kept(site: Site) -> None:
    good = site.record("4.1", T0, 2.0)
    store = RecordingStore(site.sessions)
    inside = site.inside("4.2", T0)
    broken = site.instance.host_path(inside)
    broken.write_bytes(b"not a wav at all " * 500)
    bad = store.started("4.2", "1001", "agent", inside, T0)
    assert store.finished(inside, T0 + timedelta(seconds=5), broken) is not None
    later = site.record("4.3", T0 + timedelta(minutes=1), 2.0, seed=3)

    result = archive_recordings(site.sessions, site.config(), now=NOW)

    assert sorted(result.archived) == [good, later] and result.error is None
    [(failed_id, reason)] = result.failed
    assert failed_id == bad and "4.2.wav" in reason and "Invalid data" in reason and "\n" not in reason
    view = _view(site, bad)
    assert view.state == "failed" and view.error == reason
    assert broken.exists() and not (site.store / "2026/05/01/4.2.opus").exists()
    # The day is sealed with what could be archived; a failed recording does not hold it up.
    assert result.sealed == ["2026/05/01/MANIFEST.json"]
    run = last_run(site.sessions, "archive")
    assert run is not None and not run.ok and run.findings[0]["recording_id"] == bad
    # Failed recordings are not retried by themselves...
    assert archive_recordings(site.sessions, site.config(), now=NOW).failed == []
    # ...but on request, and once the file is readable they are archived (into an addendum).
    _write_plain_wav(broken, 2.5)
    retried = archive_recordings(site.sessions, site.config(), now=NOW, retry_failed=True)
    assert retried.archived == [bad] and retried.sealed == ["2026/05/01/MANIFEST-1.json"]


def _write_plain_wav(path: Path, seconds: float) -> None:
    data = speech_like(seconds, seed=11)
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16)
    path.write_bytes(header + b"data" + struct.pack("<I", len(data)) + data)


def test_a_header_asterisk_never_finished_is_archived_whole(site: Site) -> None:
    """A switch stopped mid-call leaves a WAV whose sizes are still 0 (recordings.py): all of it counts."""
    store = RecordingStore(site.sessions)
    inside = site.inside("5.1", T0)
    path = site.instance.host_path(inside)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = speech_like(3.0, seed=5)
    header = (
        b"RIFF" + struct.pack("<I", 0) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16)
    )
    path.write_bytes(header + b"data" + struct.pack("<I", 0) + data)
    recording_id = store.started("5.1", "1001", "agent", inside, T0)
    store.finished(inside, T0 + timedelta(seconds=3), path)

    result = archive_recordings(site.sessions, site.config(), now=NOW)
    assert result.archived == [recording_id]
    view = _view(site, recording_id)
    assert view.duration_s is not None and abs(view.duration_s - 3.0) < 0.05


def test_a_missing_original_fails_with_a_reason(site: Site) -> None:
    recording_id = site.record("6.1", T0, 2.0)
    site.original(recording_id).unlink()
    result = archive_recordings(site.sessions, site.config(), now=NOW)
    assert result.failed == [(recording_id, f"the switch's file {site.inside('6.1', T0)} is missing")]


def test_same_leg_name_on_one_day_gets_the_recording_id(site: Site) -> None:
    first = site.record("7.1", T0, 2.0)
    # Another instance's recording with the same uniqueid, same day (a restore, a second switch).
    store = RecordingStore(site.sessions)
    inside = "/srv/hotline/other/spool/monitor/2026-05-01/7.1.wav"
    second = store.started("7.9", None, "agent", inside, T0 + timedelta(minutes=5))
    _write_plain_wav(_mkparent(site.instance.host_path(inside)), 2.0)
    store.finished(inside, T0 + timedelta(minutes=6), site.instance.host_path(inside))

    archive_recordings(site.sessions, site.config(), now=NOW)
    assert _view(site, first).path == "2026/05/01/7.1.opus"
    assert _view(site, second).path == f"2026/05/01/7.1-{second}.opus"


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_only_some_recordings_and_progress(site: Site) -> None:
    ids = [site.record(f"8.{n}", T0 + timedelta(minutes=n), 1.0, seed=n) for n in range(3)]
    calls: list[tuple[int, int, str]] = []
    result = archive_recordings(
        site.sessions, site.config(), now=NOW, only=ids[1:], seal=False, progress=lambda *a: calls.append(a)
    )
    assert sorted(result.archived) == ids[1:] and _view(site, ids[0]).state is None
    assert calls == [(0, 2, ""), (1, 2, f"recording {ids[1]}"), (2, 2, f"recording {ids[2]}")]


def test_without_a_backup_folder_setting(site: Site) -> None:
    recording_id = site.record("9.1", T0, 2.0)
    result = archive_recordings(site.sessions, site.config(backup=False), now=NOW)
    assert result.archived == [recording_id] and _view(site, recording_id).backed_up_at is None
    assert not any(site.backup.iterdir())


# ---- errors that stop the run --------------------------------------------------------------------


def test_backup_disk_not_mounted_keeps_the_original(site: Site) -> None:
    recording_id = site.record("10.1", T0, 2.0)
    site.backup.rmdir()
    result = archive_recordings(site.sessions, site.config(), now=NOW)
    assert result.archived == [] and result.error is not None
    assert result.error.startswith(f"the backup folder {site.backup} does not exist; mount the disk")
    assert _view(site, recording_id).state == "verified"
    assert site.original(recording_id).exists()
    # Mounted again: the next run finishes.
    site.backup.mkdir()
    assert archive_recordings(site.sessions, site.config(), now=NOW).archived == [recording_id]
    assert not site.original(recording_id).exists()


def test_a_disk_full_error_keeps_the_original_and_stops_the_run(site: Site) -> None:
    """ENOSPC injected where the archived copy is written (a hook at the synced temp file)."""
    ids = [site.record(f"11.{n}", T0 + timedelta(minutes=n), 2.0, seed=n) for n in range(2)]

    def full(point: str, _recording_id: int) -> None:
        if point == "temp_written":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    result = archive_recordings(site.sessions, site.config(), now=NOW, checkpoint=full)
    assert result.archived == [] and result.failed == []
    assert result.error == (
        f"cannot write {site.store / '2026/05/01/11.0.opus'}: No space left on device; "
        "the original is kept and archiving stopped"
    )
    assert [_view(site, i).state for i in ids] == ["pending", None]
    assert all(site.original(i).exists() for i in ids)
    assert [p.name for p in (site.store / "2026/05/01").iterdir()] == []
    run = last_run(site.sessions, "archive")
    assert run is not None and run.error == result.error
    assert sorted(archive_recordings(site.sessions, site.config(), now=NOW).archived) == ids


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a real full disk. Skipped where mounting is not allowed."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command (the hook test covers a full disk)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", f"hotline-test-{uuid.uuid4().hex[:8]}", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the hook test covers a full disk")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_really_full_disk_keeps_the_original(site: Site, tiny_disk: Path) -> None:
    small = site.record("12.1", T0, 2.0)
    big = site.record("12.2", T0 + timedelta(minutes=1), 60.0, seed=2)  # about 110 KB of Opus
    config = site.config(store=tiny_disk, backup=False)

    result = archive_recordings(site.sessions, config, now=NOW)

    assert result.archived == [small]
    assert result.error is not None and "No space left on device" in result.error
    assert result.error.endswith("the original is kept and archiving stopped") and "\n" not in result.error
    assert _view(site, big).state == "pending" and site.original(big).exists()
    assert not [p for p in tiny_disk.rglob("*.partial")] and not [p for p in tiny_disk.rglob(".*.partial")]
    # Room again (the archive moved to a bigger disk, say): the next run finishes the job.
    bigger = site.config(backup=False)
    for path in tiny_disk.rglob("*.opus"):
        target = site.store / path.relative_to(tiny_disk)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    assert archive_recordings(site.sessions, bigger, now=NOW).archived == [big]
    assert not site.original(big).exists()


def test_missing_archive_folder_and_busy_lock(site: Site, tmp_path: Path) -> None:
    site.record("13.1", T0, 1.0)
    with pytest.raises(ArchiveError) as missing:
        archive_recordings(site.sessions, site.config(store=tmp_path / "nowhere"), now=NOW)
    assert str(missing.value) == (
        f"the archive folder {tmp_path / 'nowhere'} does not exist; create the folder, "
        "or set [archive] store_dir in hotline.toml"
    )
    with archive_lock(site.store), pytest.raises(ArchiveBusy) as busy:
        archive_recordings(site.sessions, site.config(), now=NOW)
    assert "another archive job is running" in str(busy.value)


def test_without_ffmpeg(site: Site) -> None:
    with pytest.raises(ArchiveError, match=r"^no-such-ffmpeg not found; install ffmpeg"):
        archive_recordings(site.sessions, site.config(ffmpeg="no-such-ffmpeg"), now=NOW)


class _Stop(BaseException):
    """Stops a run at a step, in-process (the crash tests kill a real process instead)."""


@pytest.mark.parametrize("step", ["written", "verified"])
def test_a_copy_damaged_before_it_is_verified_or_backed_up_is_rewritten(site: Site, step: str) -> None:
    recording_id = site.record("14.1", T0, 2.0)

    def stop(point: str, _recording_id: int) -> None:
        if point == step:
            raise _Stop

    with pytest.raises(_Stop):
        archive_recordings(site.sessions, site.config(), now=NOW, checkpoint=stop)
    view = _view(site, recording_id)
    assert view.state == step and view.path is not None
    archived = site.store / view.path
    good = archived.read_bytes()
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF
    archived.write_bytes(bytes(damaged))

    result = archive_recordings(site.sessions, site.config(), now=NOW)
    assert result.archived == [recording_id] and result.resumed == [recording_id]
    assert archived.read_bytes() == good  # the encoder is bit-exact: the same file again
    assert sha256_file(archived)[0] == _view(site, recording_id).sha256
    assert (site.backup / view.path).read_bytes() == good
    assert not site.original(recording_id).exists()
