"""Retention and legal holds: purged after the retention period unless held, every purge logged,
the manifest chain still verifying afterwards."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from cc_core.archive.archiver import archive_recordings
from cc_core.archive.config import RecordingNotFound, RecordingPurged
from cc_core.archive.retention import (
    clear_hold,
    hold_history,
    purge_expired,
    purge_log,
    retention_cutoff,
    set_hold,
)
from cc_core.archive.runs import last_run
from cc_core.archive.verify import verify_archive
from cc_core.archive.views import archive_summary, archived_recording
from tests.archive.conftest import T0, Site

NOW = T0 + timedelta(days=1)
# Recordings of 1 May 2026 are kept through 30 April 2031 (1825 days later: 2028 has a 29
# February) and purged from 1 May 2031 on.
LAST_KEPT = datetime(2031, 4, 30, 15, 59, tzinfo=UTC)  # 23:59 on 30 April 2031 in Beijing
FIRST_PURGE = datetime(2031, 4, 30, 18, 0, tzinfo=UTC)  # 02:00 on 1 May 2031 in Beijing


def test_retention_cutoff() -> None:
    assert date(2026, 5, 1) + timedelta(days=1825) == date(2031, 4, 30)
    assert retention_cutoff(date(2031, 4, 30), 1825) == date(2026, 5, 1)
    assert retention_cutoff(date(2031, 5, 1), 1825) == date(2026, 5, 2)


@pytest.fixture
def three(site: Site) -> list[int]:
    ids = [site.record(f"1.{n}", T0 + timedelta(minutes=n), 1.0, seed=n) for n in range(3)]
    archive_recordings(site.sessions, site.config(), now=NOW)
    return ids


def test_purge_after_retention_except_held(site: Site, three: list[int]) -> None:
    first, held, third = three
    hold = set_hold(site.sessions, held, by="审计员王", reason="投诉 2026-0042", at=NOW)
    assert hold.held and hold.by == "审计员王" and hold.reason == "投诉 2026-0042" and hold.at == NOW

    kept = purge_expired(site.sessions, site.config(), now=LAST_KEPT)
    assert kept.purged == [] and kept.cutoff == date(2026, 5, 1)

    dry = purge_expired(site.sessions, site.config(), now=FIRST_PURGE, dry_run=True)
    assert dry.purged == [first, third] and dry.held == [held] and dry.freed_bytes > 0
    assert archive_summary(site.sessions)["archived"] == 3

    result = purge_expired(site.sessions, site.config(), now=FIRST_PURGE)
    assert result.purged == [first, third] and result.held == [held] and result.ok
    for recording_id in (first, third):
        view = archived_recording(site.sessions, recording_id)
        assert view is not None and view.purged_at == FIRST_PURGE and view.sha256 is not None
        assert view.path is not None and not (site.store / view.path).exists()
        assert not (site.backup / view.path).exists()
    held_view = archived_recording(site.sessions, held)
    assert held_view is not None and held_view.purged_at is None and (site.store / str(held_view.path)).exists()
    log = purge_log(site.sessions)
    assert [(e.recording_id, e.by, e.day, e.purged_at) for e in log] == [
        (first, "retention", date(2026, 5, 1), FIRST_PURGE),
        (third, "retention", date(2026, 5, 1), FIRST_PURGE),
    ]
    assert log[0].reason == "retention of 1825 days ended (recordings of days before 2026-05-02)"
    assert all(e.files_removed_at is not None for e in log)
    run = last_run(site.sessions, "purge")
    assert run is not None and run.counts["purged"] == 2

    # The chain still verifies; the purged files count as purged, not missing.
    report = verify_archive(site.sessions, site.config())
    assert report.ok, [f.line() for f in report.findings]
    assert (report.purged, report.recordings) == (2, 1)
    # Purging again does nothing.
    assert purge_expired(site.sessions, site.config(), now=FIRST_PURGE).purged == []

    # The hold is lifted: the next purge takes it.
    cleared = clear_hold(site.sessions, held, by="审计员王", reason="结案", at=FIRST_PURGE)
    assert not cleared.held and cleared.by is None
    assert purge_expired(site.sessions, site.config(), now=FIRST_PURGE + timedelta(days=1)).purged == [held]
    assert [(e.action, e.by, e.reason) for e in hold_history(site.sessions, held)] == [
        ("set", "审计员王", "投诉 2026-0042"),
        ("cleared", "审计员王", "结案"),
    ]
    assert verify_archive(site.sessions, site.config()).ok


def test_a_purged_file_that_comes_back_is_reported(site: Site, three: list[int]) -> None:
    view = archived_recording(site.sessions, three[0])
    assert view is not None and view.path is not None
    data = (site.store / view.path).read_bytes()
    purge_expired(site.sessions, site.config(), now=FIRST_PURGE)
    (site.store / view.path).write_bytes(data)
    assert [(f.kind, f.path) for f in verify_archive(site.sessions, site.config()).findings] == [
        ("not_purged", view.path)
    ]


def test_hold_rules(site: Site, three: list[int]) -> None:
    recording_id = three[0]
    set_hold(site.sessions, recording_id, by="a", reason="first", at=NOW)
    again = set_hold(site.sessions, recording_id, by="b", reason="second", at=NOW + timedelta(hours=1))
    assert (again.by, again.reason) == ("a", "first")  # already held: unchanged, not logged twice
    assert len(hold_history(site.sessions, recording_id)) == 1
    assert not clear_hold(site.sessions, three[1], by="a", reason="none").held
    assert hold_history(site.sessions, three[1]) == []
    with pytest.raises(ValueError, match="by must not be empty"):
        set_hold(site.sessions, three[1], by=" ", reason="x")
    with pytest.raises(ValueError, match="reason must not be empty"):
        set_hold(site.sessions, three[1], by="a", reason="")
    with pytest.raises(RecordingNotFound, match="no recording has the id 999"):
        set_hold(site.sessions, 999, by="a", reason="x")
    purge_expired(site.sessions, site.config(), now=FIRST_PURGE)
    with pytest.raises(RecordingPurged, match=r"recording \d+ was purged on 2031-05-01 \(Beijing\); nothing to hold"):
        set_hold(site.sessions, three[1], by="a", reason="x")


def test_unarchived_recordings_are_never_purged(site: Site) -> None:
    recording_id = site.record("2.1", T0, 1.0)
    assert purge_expired(site.sessions, site.config(), now=FIRST_PURGE).purged == []
    assert site.original(recording_id).exists()


def test_an_unmounted_backup_keeps_the_removal_owed(site: Site, three: list[int]) -> None:
    backup_files = sorted(p for p in site.backup.rglob("*") if p.is_file())
    moved = site.backup.with_name("backup-away")
    site.backup.rename(moved)
    result = purge_expired(site.sessions, site.config(), now=FIRST_PURGE)
    assert len(result.purged) == 3 and len(result.problems) == 3
    assert "is the disk mounted?" in result.problems[0]
    assert all(e.files_removed_at is None for e in purge_log(site.sessions))
    moved.rename(site.backup)
    finished = purge_expired(site.sessions, site.config(), now=FIRST_PURGE)
    assert finished.finished_earlier == 3 and finished.ok
    assert [p for p in backup_files if p.exists()] == sorted(site.backup.rglob("MANIFEST.json"))
    assert verify_archive(site.sessions, site.config()).ok
