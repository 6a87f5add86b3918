"""Backup (T5): a second folder — another disk or mount — holds a verified copy of every archived
file and manifest, in the same layout.

With a backup folder set, :func:`~cc_core.archive.archiver.archive_recordings` copies each
recording there before it removes the switch's original, so a recording always exists twice.
:func:`backup_archive` catches up: the files archived before the backup folder was set, or while
it was unreachable, and any manifest whose copy is missing or differs. Each copy goes to a
temporary file, is synced and renamed, then read back from the disk and hashed against the
SHA-256 recorded at archival; the source is hashed while it is copied, so an archived file that
changed since is reported and never spread to the backup.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cc_core.archive.config import ArchiveConfig, ArchiveError, one_line, require_folder
from cc_core.archive.durable import CopyMismatch, SourceChanged, copy_file, ensure_folder
from cc_core.archive.manifest import copy_manifests
from cc_core.archive.progress import Progress
from cc_core.archive.runs import RunClock, archive_lock, record_run
from cc_core.db.models import Recording

log = logging.getLogger(__name__)


@dataclass
class BackupResult:
    """What one backup run did."""

    started_at: datetime
    finished_at: datetime | None = None
    copied: list[int] = field(default_factory=list)
    copied_bytes: int = 0
    # (recording id, why) for files not copied: the archived copy is missing or has changed.
    problems: list[tuple[int, str]] = field(default_factory=list)
    # Manifests whose backup could not be written.
    manifest_problems: list[str] = field(default_factory=list)
    # Why the run stopped early (the backup disk full or gone).
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.problems and not self.manifest_problems

    def counts(self) -> dict[str, Any]:
        return {
            "copied": len(self.copied),
            "copied_bytes": self.copied_bytes,
            "problems": len(self.problems),
            "manifest_problems": len(self.manifest_problems),
        }


def backup_archive(
    sessions: sessionmaker[Session],
    config: ArchiveConfig,
    *,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> BackupResult:
    """Copy to the backup folder every archived file that has no verified copy there yet, and
    every manifest whose copy is missing or differs.

    Raises ArchiveError (one line) if no backup folder is set, a folder is missing, or another
    archive job runs; a storage error during the run stops it and is reported in ``error``.
    """
    if config.backup is None:
        raise ArchiveError("no backup folder is set; set [archive] backup_dir in hotline.toml")
    backup = config.backup
    clock = RunClock(now)
    moment = clock.start
    require_folder(config.store, "archive", "store_dir")
    require_folder(backup, "backup", "backup_dir")
    with archive_lock(config.store):
        result = BackupResult(started_at=moment)
        with sessions() as session:
            rows = [
                (row.id, str(row.archive_path), str(row.archive_sha256), row.archive_size_bytes or 0)
                for row in session.execute(
                    select(Recording.id, Recording.archive_path, Recording.archive_sha256, Recording.archive_size_bytes)
                    .where(
                        Recording.archive_state.in_(("verified", "archived")),
                        Recording.backed_up_at.is_(None),
                        Recording.purged_at.is_(None),
                    )
                    .order_by(Recording.archive_day, Recording.id)
                )
            ]
        if progress is not None:
            progress(0, len(rows), "")
        for number, (recording_id, path, sha256, size) in enumerate(rows, 1):
            source = config.store / path
            target = backup / path
            try:
                ensure_folder(target.parent)
                copy_file(source, target, sha256)
            except FileNotFoundError as exc:
                if not source.exists():
                    result.problems.append((recording_id, f"the archived file {path} is missing; not backed up"))
                else:
                    result.error = f"cannot write the backup {target}: {exc.strerror}; backup stopped"
            except SourceChanged:
                result.problems.append((recording_id, f"the archived file {path} has changed; not backed up"))
            except CopyMismatch as exc:
                result.error = f"{exc}; check the backup disk; backup stopped"
            except OSError as exc:
                result.error = f"cannot write the backup {target}: {exc.strerror or one_line(exc)}; backup stopped"
            else:
                with sessions() as session, session.begin():
                    session.execute(
                        update(Recording)
                        .where(Recording.id == recording_id, Recording.backed_up_at.is_(None))
                        .values(backed_up_at=moment)
                        .execution_options(synchronize_session=False)
                    )
                result.copied.append(recording_id)
                result.copied_bytes += size
            if progress is not None:
                progress(number, len(rows), path)
            if result.error is not None:
                break
        if result.error is None:
            result.manifest_problems = copy_manifests(sessions, config)
        result.finished_at = clock.now()
        findings: list[dict[str, Any]] = [
            {"kind": "not_backed_up", "recording_id": rid, "detail": why} for rid, why in result.problems
        ]
        findings += [{"kind": "manifest_not_backed_up", "detail": text} for text in result.manifest_problems]
        record_run(
            sessions,
            "backup",
            result.started_at,
            result.finished_at,
            ok=result.ok,
            counts=result.counts(),
            findings=findings,
            error=result.error,
        )
        log.info("backup run: %d copied, %d problems", len(result.copied), len(result.problems))
        return result
