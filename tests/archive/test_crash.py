"""Crash safety (issue 5's Done-when): the archiver is killed with SIGKILL right after each of its
steps, in a process of its own (tests/archive/crash_runner.py), then run again.

At the moment of the kill every recording still exists once in good shape — its original WAV on
the switch, or a verified archived copy — and after the next run: every recording archived once
(no loss, no duplicate, no temporary file left), every hash verifies, the backup matches, each
original was removed exactly once, the days are sealed once, and a further run does nothing.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cc_core.archive.archiver import CHECKPOINTS, archive_recordings
from cc_core.archive.durable import sha256_file
from cc_core.archive.manifest import SEAL_CHECKPOINTS, manifests
from cc_core.archive.retention import PURGE_CHECKPOINTS, purge_expired, purge_log
from cc_core.archive.verify import verify_archive
from cc_core.archive.views import archived_recording
from cc_core.db.models import Recording, RecordingManifest
from tests.archive.conftest import T0, Site

PROJECT = Path(__file__).resolve().parents[2]
# Two recordings on each of two Beijing days; the run happens the day after.
NOW = T0 + timedelta(days=2)
KILLED = -9


def _recordings(site: Site) -> list[int]:
    return [
        site.record(f"1777600000.{n}", T0 + timedelta(days=n // 2, minutes=n), 2.0 + n * 0.5, seed=n) for n in range(4)
    ]


def _run(site: Site, journal: Path, crash_at: str, occurrence: int, job: str = "archive", now: datetime = NOW) -> int:
    command = [sys.executable, "-m", "tests.archive.crash_runner", "--db", site.url]
    command += ["--store", str(site.store), "--backup", str(site.backup), "--root", str(site.instance.root)]
    command += ["--job", job, "--crash-at", crash_at, "--occurrence", str(occurrence)]
    command += ["--journal", str(journal), "--now", now.isoformat()]
    done = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode not in (0, KILLED):
        pytest.fail(f"the archiver failed: {done.stderr[-2000:]}", pytrace=False)
    return done.returncode


def _journal(path: Path) -> Callable[[str, int], None]:
    """The same journal for the run after the crash."""

    def write(point: str, item: int) -> None:
        with path.open("a") as out:
            out.write(f"{point} {item}\n")

    return write


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != ".archive.lock")


def _nothing_lost(site: Site, ids: list[int]) -> None:
    """Each recording is still there in good shape: the original, or a verified archived copy."""
    for recording_id in ids:
        if site.original(recording_id).is_file():
            continue
        view = archived_recording(site.sessions, recording_id)
        assert view is not None and view.state in ("verified", "archived") and view.path is not None, view
        assert sha256_file(site.store / view.path)[0] == view.sha256


@pytest.mark.parametrize("point", CHECKPOINTS + SEAL_CHECKPOINTS)
def test_killed_after_each_step_then_run_again(site: Site, tmp_path: Path, point: str) -> None:
    ids = _recordings(site)
    journal = tmp_path / "journal"

    assert _run(site, journal, point, occurrence=2) == KILLED
    assert journal.read_text().splitlines()[-1].startswith(point)
    _nothing_lost(site, ids)

    again = archive_recordings(site.sessions, site.config(), now=NOW, checkpoint=_journal(journal))
    assert again.error is None and not again.failed
    views = [archived_recording(site.sessions, recording_id) for recording_id in ids]
    assert all(view is not None and view.state == "archived" for view in views), views
    # Each recording once in the archive and once in the backup, nothing else but the manifests.
    paths = sorted(view.path for view in views if view is not None and view.path is not None)
    assert len(set(paths)) == len(ids)
    expected = sorted([*paths, "2026/05/01/MANIFEST.json", "2026/05/02/MANIFEST.json"])
    assert _files(site.store) == expected
    assert _files(site.backup) == expected
    for view in views:
        assert view is not None and view.path is not None
        assert sha256_file(site.store / view.path)[0] == view.sha256 == sha256_file(site.backup / view.path)[0]
        assert not site.original(view.id).exists()
    # Each original removed exactly once, across the killed run and the next.
    removed = Counter(int(line.split()[1]) for line in journal.read_text().splitlines() if line.startswith("original_"))
    assert removed == Counter(ids)
    # Sealed once per day, chained.
    sealed = manifests(site.sessions)
    assert [(m.day.isoformat(), m.part, m.entry_count) for m in sealed] == [("2026-05-01", 0, 2), ("2026-05-02", 0, 2)]
    report = verify_archive(site.sessions, site.config())
    assert report.ok, [finding.line() for finding in report.findings]
    assert (report.recordings, report.files_checked, report.manifests) == (4, 8, 2)

    # A third run finds nothing to do and touches nothing.
    before = {path: (site.store / path).stat().st_mtime_ns for path in expected}
    third = archive_recordings(site.sessions, site.config(), now=NOW)
    assert (third.archived, third.resumed, third.failed, third.sealed) == ([], [], [], [])
    assert {path: (site.store / path).stat().st_mtime_ns for path in expected} == before
    with site.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Recording)) == 4
        assert session.scalar(select(func.count()).select_from(RecordingManifest)) == 2


def test_killed_run_is_counted_as_resumed(site: Site, tmp_path: Path) -> None:
    ids = _recordings(site)
    assert _run(site, tmp_path / "journal", "written", occurrence=1) == KILLED
    again = archive_recordings(site.sessions, site.config(), now=NOW)
    assert again.resumed == [ids[0]]
    assert sorted(again.archived) == ids


@pytest.mark.parametrize("point", PURGE_CHECKPOINTS)
def test_purge_killed_after_each_step_then_run_again(site: Site, tmp_path: Path, point: str) -> None:
    ids = _recordings(site)
    archive_recordings(site.sessions, site.config(), now=NOW)
    later = NOW + timedelta(days=1826)
    journal = tmp_path / "journal"

    assert _run(site, journal, point, occurrence=2, job="purge", now=later) == KILLED
    again = purge_expired(site.sessions, site.config(), now=later)
    assert again.ok
    log = purge_log(site.sessions)
    assert sorted(entry.recording_id for entry in log) == ids
    assert all(entry.files_removed_at is not None for entry in log)
    assert _files(site.store) == ["2026/05/01/MANIFEST.json", "2026/05/02/MANIFEST.json"]
    assert _files(site.backup) == ["2026/05/01/MANIFEST.json", "2026/05/02/MANIFEST.json"]
    report = verify_archive(site.sessions, site.config())
    assert report.ok, [finding.line() for finding in report.findings]
    assert report.purged == 4
