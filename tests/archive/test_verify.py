"""Verify (issue 5's Done-when): altering, removing and adding a file in the archive or the backup
is each detected; so is an edited manifest, a broken chain, and a database edited to match."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from cc_core.archive.archiver import archive_recordings
from cc_core.archive.backup import backup_archive
from cc_core.archive.manifest import manifest_sha256, manifests
from cc_core.archive.runs import last_verify
from cc_core.archive.verify import FINDING_KINDS, VerifyReport, verify_archive
from cc_core.archive.views import archived_recording
from cc_core.db.models import Recording, RecordingManifest
from tests.archive.conftest import T0, Site

# Three recordings on 1 May, two on 2 May; archived and sealed on 3 May.
NOW = T0 + timedelta(days=2)
DAY1 = "2026/05/01"
DAY2 = "2026/05/02"


@pytest.fixture
def archived(site: Site) -> Site:
    for n in range(5):
        site.record(f"1777600000.{n}", T0 + timedelta(days=n // 3, minutes=n), 1.5, seed=n)
    result = archive_recordings(site.sessions, site.config(), now=NOW)
    assert len(result.archived) == 5 and len(result.sealed) == 2
    return site


def _path(site: Site, recording_id: int) -> str:
    view = archived_recording(site.sessions, recording_id)
    assert view is not None and view.path is not None
    return view.path


def _verify(site: Site, **kwargs: object) -> VerifyReport:
    return verify_archive(site.sessions, site.config(), **kwargs)  # type: ignore[arg-type]


def _found(report: VerifyReport) -> list[tuple[str, str, str | None]]:
    return sorted((f.kind, f.where, f.path) for f in report.findings)


def test_a_clean_archive_verifies_and_the_result_is_stored(archived: Site) -> None:
    calls: list[tuple[int, int, str]] = []
    report = _verify(archived, progress=lambda *a: calls.append(a))
    assert report.ok and report.findings == []
    assert (report.recordings, report.files_checked, report.manifests, report.backup_checked) == (5, 10, 2, True)
    assert report.chain_head == manifests(archived.sessions)[-1].sha256
    assert calls[0] == (0, 5, "") and calls[-1][:2] == (5, 5)
    stored = last_verify(archived.sessions)
    assert stored is not None and stored.id == report.run_id and stored.ok
    assert stored.counts["files_checked"] == 10 and stored.chain_head == report.chain_head


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["archive", "backup"])
def test_an_altered_file_is_detected(archived: Site, where: str) -> None:
    path = _path(archived, 2)
    _flip_byte((archived.store if where == "archive" else archived.backup) / path)
    report = _verify(archived)
    assert _found(report) == [("altered", where, path)]
    [finding] = report.findings
    assert finding.recording_id == 2 and "recorded" in finding.detail
    assert not report.ok and last_verify(archived.sessions) is not None


@pytest.mark.parametrize("where", ["archive", "backup"])
def test_a_removed_file_is_detected(archived: Site, where: str) -> None:
    path = _path(archived, 4)
    ((archived.store if where == "archive" else archived.backup) / path).unlink()
    assert _found(_verify(archived)) == [("missing", where, path)]


@pytest.mark.parametrize("where", ["archive", "backup"])
def test_an_added_file_is_detected(archived: Site, where: str) -> None:
    root = archived.store if where == "archive" else archived.backup
    (root / DAY1 / "1777600099.1.opus").write_bytes((root / _path(archived, 1)).read_bytes())
    (root / "stray.txt").write_text("?")
    (root / DAY2 / ".1777600000.3.opus.partial").write_bytes(b"half")
    assert _found(_verify(archived)) == [
        ("orphan", where, f"{DAY1}/1777600099.1.opus"),
        ("orphan", where, "stray.txt"),
        ("partial", where, f"{DAY2}/.1777600000.3.opus.partial"),
    ]


@pytest.mark.parametrize("where", ["archive", "backup"])
def test_a_changed_or_removed_manifest_file_is_detected(archived: Site, where: str) -> None:
    root = archived.store if where == "archive" else archived.backup
    manifest = root / DAY1 / "MANIFEST.json"
    manifest.write_text(manifest.read_text().replace('"bytes": ', '"bytes": 1', 1))
    (root / DAY2 / "MANIFEST.json").unlink()
    assert _found(_verify(archived)) == [
        ("manifest_altered", where, f"{DAY1}/MANIFEST.json"),
        ("manifest_missing", where, f"{DAY2}/MANIFEST.json"),
    ]


def _edit(site: Site, statement: object) -> None:
    with site.sessions() as session, session.begin():
        session.execute(statement)  # type: ignore[call-overload]


def test_an_altered_file_with_its_hash_edited_in_the_database_is_detected(archived: Site) -> None:
    """Someone swaps a recording and updates its row to match: the manifest still holds the old hash."""
    path = _path(archived, 1)
    for root in (archived.store, archived.backup):
        (root / path).write_bytes((root / _path(archived, 2)).read_bytes())
    sha = archived_recording(archived.sessions, 2).sha256  # type: ignore[union-attr]
    size = archived_recording(archived.sessions, 2).size_bytes  # type: ignore[union-attr]
    _edit(archived, update(Recording).where(Recording.id == 1).values(archive_sha256=sha, archive_size_bytes=size))
    assert _found(_verify(archived)) == [("altered", "database", path)]


def test_a_rewritten_manifest_breaks_the_chain(archived: Site) -> None:
    """A manifest rewritten (text, hash, files) to hide a change: the next one names the old hash."""
    first = manifests(archived.sessions)[0]
    with archived.sessions() as session:
        body = session.get(RecordingManifest, first.id).body  # type: ignore[union-attr]
    forged = body.replace('"seconds": 1.5', '"seconds": 1.6', 1)
    _edit(
        archived,
        update(RecordingManifest)
        .where(RecordingManifest.id == first.id)
        .values(body=forged, sha256=manifest_sha256(forged)),
    )
    for root in (archived.store, archived.backup):
        (root / first.path).write_text(forged)
    report = _verify(archived)
    assert [(f.kind, f.path) for f in report.findings] == [("chain_broken", f"{DAY2}/MANIFEST.json")]


def test_an_edited_manifest_text_in_the_database_is_detected(archived: Site) -> None:
    first = manifests(archived.sessions)[0]
    _edit(archived, update(RecordingManifest).where(RecordingManifest.id == first.id).values(body="{}"))
    kinds = _found(_verify(archived))
    assert ("manifest_altered", "database", first.path) in kinds
    assert ("manifest_altered", "archive", first.path) in kinds


def test_a_removed_last_manifest_is_detected_by_the_previous_verify(archived: Site) -> None:
    assert _verify(archived).ok
    last = manifests(archived.sessions)[-1]
    _edit(archived, update(Recording).where(Recording.manifest_id == last.id).values(manifest_id=None))
    _edit(archived, delete(RecordingManifest).where(RecordingManifest.id == last.id))
    for root in (archived.store, archived.backup):
        (root / last.path).unlink()
    kinds = {f.kind for f in _verify(archived).findings}
    assert "chain_broken" in kinds


def test_a_recording_inserted_into_a_sealed_day_is_detected(archived: Site) -> None:
    """A row and file slipped into a sealed day by hand: not in its day's manifest."""
    path = f"{DAY1}/1777600099.9.opus"
    source = archived.store / _path(archived, 1)
    for root in (archived.store, archived.backup):
        (root / path).write_bytes(source.read_bytes())
    view = archived_recording(archived.sessions, 1)
    assert view is not None
    first = manifests(archived.sessions)[0]
    with archived.sessions() as session, session.begin():
        row = session.get(Recording, 1)
        assert row is not None
        session.add(
            Recording(
                uniqueid="x",
                leg="agent",
                file="/x.wav",
                started_at=row.started_at,
                status="done",
                archive_state="archived",
                archive_day=row.archive_day,
                archive_path=path,
                archive_sha256=view.sha256,
                archive_size_bytes=view.size_bytes,
                backed_up_at=row.backed_up_at,
                manifest_id=first.id,
            )
        )
    assert _found(_verify(archived)) == [("not_in_manifest", "database", path)]


def test_only_some_days(archived: Site) -> None:
    _flip_byte(archived.store / _path(archived, 1))  # 1 May
    (archived.store / DAY1 / "stray.opus").write_bytes(b"x")
    report = _verify(archived, days=(date(2026, 5, 2), date(2026, 5, 2)))
    assert report.ok and report.recordings == 2 and report.scope == "2026-05-02..2026-05-02"
    assert report.manifests == 2  # the chain is always checked whole
    assert {f.kind for f in _verify(archived, days=(date(2026, 5, 1), date(2026, 5, 1))).findings} == {
        "altered",
        "orphan",
    }


def test_backup_folder_missing_is_one_finding(archived: Site) -> None:
    for path in sorted(archived.backup.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    archived.backup.rmdir()
    report = _verify(archived)
    assert [(f.kind, f.where) for f in report.findings] == [("backup_unavailable", "backup")]
    assert not report.backup_checked and report.files_checked == 5


def test_a_backup_set_later_is_filled_by_backup_archive(site: Site) -> None:
    ids = [site.record(f"2.{n}", T0 + timedelta(minutes=n), 1.0, seed=n) for n in range(2)]
    archive_recordings(site.sessions, site.config(backup=False), now=NOW)
    assert {f.kind for f in _verify(site).findings} == {"not_backed_up", "manifest_missing"}
    result = backup_archive(site.sessions, site.config(), now=NOW)
    assert result.ok and sorted(result.copied) == ids
    assert _verify(site).ok
    assert backup_archive(site.sessions, site.config(), now=NOW).copied == []


def test_every_finding_kind_is_documented() -> None:
    import cc_core.archive.verify as module

    assert module.__doc__ is not None
    for kind in FINDING_KINDS:
        assert f"\n{kind} " in module.__doc__, kind
