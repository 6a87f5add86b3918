"""Archival (T5): every finished recording becomes a verified Opus file in the archive, and only
then is the switch's original WAV removed.

Each recording walks a small state machine, ``recordings.archive_state``; every step is committed
to the database before the next begins, and every step can be done again safely, so a process
killed between any two steps (kill -9, power loss) loses nothing: the next run picks the
recording up where the database says it is and finishes the job.

======================  =========================================================================
``None`` → pending      claim: the archive path is chosen (``<YYYY>/<MM>/<DD>/<uniqueid>.opus``)
pending → written       transcode; temp file, fsync, rename, fsync of the folder; hash, size and
                        the original's duration stored. A crash before the commit rewrites the
                        file (same name, same bytes: the encoder runs bit-exact).
written → verified      the file read back from the disk: same SHA-256, decodes cleanly, lasts
                        as long as the original ±0.5 s. A bad copy is rewritten once from the
                        original, which is still there.
verified → (backup)     with a backup folder: a copy there, checked the same way; backed_up_at.
verified → archived     the original removed (and its folder synced); archived_at.
any → failed            a corrupt original, a copy that cannot be made right: archive_error says
                        why, the original stays, the others go on.
======================  =========================================================================

A storage error on the archive or backup side (a full disk, a missing mount) stops the run at
once with one line in :attr:`ArchiveResult.error`; the recording stays where it was, its
original untouched. Running the job again when all is archived does nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cc_core.archive.config import ArchiveConfig, ArchiveError, require_folder
from cc_core.archive.durable import (
    CopyMismatch,
    SourceChanged,
    copy_file,
    ensure_folder,
    remove_file,
    sha256_file,
    write_file,
)
from cc_core.archive.layout import archive_name, archive_path
from cc_core.archive.manifest import seal_due
from cc_core.archive.progress import Progress
from cc_core.archive.runs import RunClock, archive_lock, changed, record_run
from cc_core.archive.transcode import TranscodeError, check_ffmpeg, decoded_seconds, to_opus, wav_seconds
from cc_core.calendars.days import local_day
from cc_core.db.models import Recording

log = logging.getLogger(__name__)

# The moments a crash test may stop the archiver at (see tests/archive/crash_runner.py): each
# is reported to the ``checkpoint`` callback right after the step it names, with the recording id.
CHECKPOINTS = (
    "claimed",
    "temp_written",
    "renamed",
    "written",
    "verified",
    "backup_renamed",
    "backed_up",
    "original_removed",
    "archived",
)
Checkpoint = Callable[[str, int], None]
ACTIVE_STATES = ("pending", "written", "verified")
# The archived copy may be this much shorter or longer than the original (codec framing).
DURATION_TOLERANCE_S = 0.5


@dataclass
class ArchiveResult:
    """What one archive run did."""

    started_at: datetime
    finished_at: datetime | None = None
    # Recordings completed by this run, and among them those an earlier run had left mid-way.
    archived: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
    # (recording id, why): kept on the switch, marked "failed".
    failed: list[tuple[int, str]] = field(default_factory=list)
    # Manifests sealed at the end of the run (their paths in the archive).
    sealed: list[str] = field(default_factory=list)
    audio_seconds: float = 0.0
    original_bytes: int = 0
    archived_bytes: int = 0
    # Problems that did not stop the run (an original that could not be removed, a manifest
    # not yet copied to the backup).
    warnings: list[str] = field(default_factory=list)
    # Why the run stopped early (a full disk, a missing backup folder); None if it did not.
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failed

    def counts(self) -> dict[str, Any]:
        return {
            "archived": len(self.archived),
            "resumed": len(self.resumed),
            "failed": len(self.failed),
            "sealed": len(self.sealed),
            "audio_seconds": round(self.audio_seconds, 3),
            "original_bytes": self.original_bytes,
            "archived_bytes": self.archived_bytes,
        }


class _Rewrite(Exception):
    """The archived copy is not right and the original is still there: write it again."""


class _Failed(Exception):
    """This recording cannot be archived (the message says why); the others go on."""


@dataclass(frozen=True)
class _Row:
    id: int
    file: str
    started_at: datetime
    state: str | None
    path: str | None
    sha256: str | None
    size: int | None
    duration_s: float | None
    original_size: int | None
    backed_up_at: datetime | None
    error: str | None


def _reason(exc: OSError) -> str:
    return exc.strerror or " ".join(str(exc).split())


class _Archiver:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        config: ArchiveConfig,
        now: datetime,
        result: ArchiveResult,
        checkpoint: Checkpoint | None,
    ) -> None:
        self.sessions = sessions
        self.config = config
        self.now = now
        self.result = result
        self._checkpoint = checkpoint

    def checkpoint(self, point: str, recording_id: int) -> None:
        if self._checkpoint is not None:
            self._checkpoint(point, recording_id)

    # ---- database -----------------------------------------------------------------------------

    def load(self, recording_id: int) -> _Row:
        with self.sessions() as session:
            row = session.get(Recording, recording_id)
            if row is None:  # pragma: no cover - recordings are never deleted
                raise _Failed(f"recording {recording_id} disappeared")
            return _Row(
                id=row.id,
                file=row.file,
                started_at=row.started_at,
                state=row.archive_state,
                path=row.archive_path,
                sha256=row.archive_sha256,
                size=row.archive_size_bytes,
                duration_s=row.duration_s,
                original_size=row.size_bytes,
                backed_up_at=row.backed_up_at,
                error=row.archive_error,
            )

    def move(self, row: _Row, **values: Any) -> None:
        """Commit the recording's next step, only from the state it was read in."""
        current = Recording.archive_state.is_(None) if row.state is None else Recording.archive_state == row.state
        with self.sessions() as session, session.begin():
            moved = session.execute(
                update(Recording)
                .where(Recording.id == row.id, current)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if changed(moved) != 1:  # pragma: no cover - the archive lock keeps other writers out
                raise ArchiveError(f"recording {row.id} changed under the archiver; run it again")

    # ---- the steps --------------------------------------------------------------------------

    def claim(self, row: _Row) -> None:
        day = local_day(row.started_at)
        path = archive_path(day, archive_name(row.file, row.id))
        with self.sessions() as session:
            taken = session.scalar(select(Recording.id).where(Recording.archive_path == path, Recording.id != row.id))
        if taken is not None:
            path = archive_path(day, archive_name(row.file, row.id, taken=True))
        self.move(row, archive_state="pending", archive_day=day, archive_path=path, archive_error=None)
        self.checkpoint("claimed", row.id)

    def write(self, row: _Row) -> None:
        assert row.path is not None
        source = self.config.host_path(row.file)
        if not source.is_file():
            raise _Failed(f"the switch's file {row.file} is missing")
        try:
            expected = wav_seconds(source, self.config.ffmpeg)
            data = to_opus(source, self.config.bitrate_kbps, self.config.ffmpeg)
        except TranscodeError as exc:
            raise _Failed(str(exc)) from exc
        except OSError as exc:
            raise _Failed(f"cannot read the switch's file {row.file}: {_reason(exc)}") from exc
        target = self.config.store / row.path
        try:
            ensure_folder(target.parent)
            write_file(target, data, after_temp=lambda: self.checkpoint("temp_written", row.id))
        except OSError as exc:
            raise ArchiveError(
                f"cannot write {target}: {_reason(exc)}; the original is kept and archiving stopped"
            ) from exc
        self.checkpoint("renamed", row.id)
        self.move(
            row,
            archive_state="written",
            archive_sha256=hashlib.sha256(data).hexdigest(),
            archive_size_bytes=len(data),
            archive_format=self.config.format,
            duration_s=round(expected, 3),
        )
        self.checkpoint("written", row.id)

    def rewrite_or_fail(self, row: _Row, reason: str) -> None:
        if self.config.host_path(row.file).is_file():
            raise _Rewrite(reason)
        raise _Failed(f"{reason}, and the switch's original is gone")

    def verify(self, row: _Row) -> None:
        assert row.path is not None
        target = self.config.store / row.path
        if not target.is_file():
            self.rewrite_or_fail(row, "the archived copy is missing")
        try:
            sha, size = sha256_file(target, from_disk=True)
        except OSError as exc:
            raise ArchiveError(f"cannot read {target} back: {_reason(exc)}; archiving stopped") from exc
        if sha != row.sha256 or size != row.size:
            self.rewrite_or_fail(row, "the archived copy read back differs from what was written")
        try:
            seconds = decoded_seconds(target, self.config.ffmpeg)
        except TranscodeError as exc:
            raise _Failed(f"the archived copy does not decode: {exc}") from exc
        if row.duration_s is not None and abs(seconds - row.duration_s) > DURATION_TOLERANCE_S:
            raise _Failed(f"the archived copy lasts {seconds:.2f} s, the original {row.duration_s:.2f} s")
        self.move(row, archive_state="verified", archive_duration_s=round(seconds, 3))
        self.checkpoint("verified", row.id)

    def back_up(self, row: _Row) -> None:
        assert row.path is not None and row.sha256 is not None and self.config.backup is not None
        require_folder(self.config.backup, "backup", "backup_dir")
        source = self.config.store / row.path
        target = self.config.backup / row.path
        if not source.is_file():
            self.rewrite_or_fail(row, "the archived copy vanished before its backup")
        try:
            ensure_folder(target.parent)
            copy_file(source, target, row.sha256, after_rename=lambda: self.checkpoint("backup_renamed", row.id))
        except SourceChanged:
            self.rewrite_or_fail(row, "the archived copy changed before its backup")
        except CopyMismatch as exc:
            raise ArchiveError(f"{exc}; check the backup disk; archiving stopped") from exc
        except OSError as exc:
            raise ArchiveError(
                f"cannot write the backup {target}: {_reason(exc)}; the original is kept and archiving stopped"
            ) from exc
        self.move(row, backed_up_at=self.now)
        self.checkpoint("backed_up", row.id)

    def remove_original(self, row: _Row) -> bool:
        source = self.config.host_path(row.file)
        try:
            if remove_file(source):
                self.checkpoint("original_removed", row.id)
        except OSError as exc:
            # The archive is complete; the original stays one more run (a duplicate, not a loss).
            self.result.warnings.append(f"recording {row.id}: cannot remove {source}: {_reason(exc)}")
            return False
        self.move(row, archive_state="archived", archived_at=self.now, archive_error=None)
        self.checkpoint("archived", row.id)
        return True

    # ---- one recording ----------------------------------------------------------------------

    def advance(self, recording_id: int) -> None:
        """Take one recording from wherever it is to "archived" (or "failed")."""
        rewritten = False
        first = True
        while True:
            row = self.load(recording_id)
            if first and row.state in ACTIVE_STATES:
                self.result.resumed.append(row.id)
            first = False
            try:
                if row.state is None:
                    self.claim(row)
                elif row.state == "pending":
                    self.write(row)
                elif row.state == "written":
                    self.verify(row)
                elif row.state == "verified":
                    if self.config.backup is not None and row.backed_up_at is None:
                        self.back_up(row)
                    elif not self.remove_original(row):
                        return
                else:
                    if row.state == "archived":
                        self.result.archived.append(row.id)
                        self.result.audio_seconds += row.duration_s or 0.0
                        self.result.original_bytes += row.original_size or 0
                        self.result.archived_bytes += row.size or 0
                    return
            except _Rewrite as exc:
                if rewritten:
                    self.fail(row, f"{exc} (again after rewriting it)")
                    return
                rewritten = True
                log.warning("recording %s: %s; writing it again from the original", row.id, exc)
                self.move(row, archive_state="pending", backed_up_at=None, archive_error=str(exc)[:255])
            except _Failed as exc:
                self.fail(row, str(exc))
                return

    def fail(self, row: _Row, reason: str) -> None:
        log.error("recording %s cannot be archived: %s", row.id, reason)
        self.move(row, archive_state="failed", archive_error=reason[:255])
        self.result.failed.append((row.id, reason))
        # A useless copy goes, but never the last one: only while the original is still there.
        if row.path is not None and self.config.host_path(row.file).is_file():
            try:
                remove_file(self.config.store / row.path)
            except OSError as exc:
                self.result.warnings.append(f"recording {row.id}: cannot remove the failed copy: {_reason(exc)}")


def _candidates(sessions: sessionmaker[Session], only: Iterable[int] | None) -> list[int]:
    query = select(Recording.id).where(
        Recording.status == "done",
        Recording.purged_at.is_(None),
        Recording.archive_state.is_(None) | Recording.archive_state.in_(ACTIVE_STATES),
    )
    if only is not None:
        query = query.where(Recording.id.in_(list(only)))
    with sessions() as session:
        return list(session.scalars(query.order_by(Recording.started_at, Recording.id)))


def _reset_failed(sessions: sessionmaker[Session], config: ArchiveConfig, only: Iterable[int] | None) -> int:
    """Failed recordings whose original is still there go back to the start (``retry_failed``).

    Their archive path is kept (the claim chooses the same one again), so a copy left behind by
    the failure is overwritten rather than orphaned.
    """
    query = select(Recording.id, Recording.file).where(Recording.archive_state == "failed")
    if only is not None:
        query = query.where(Recording.id.in_(list(only)))
    with sessions() as session:
        retry = [rid for rid, file in session.execute(query) if config.host_path(file).is_file()]
    if not retry:
        return 0
    with sessions() as session, session.begin():
        done = session.execute(
            update(Recording)
            .where(Recording.id.in_(retry), Recording.archive_state == "failed")
            .values(archive_state=None)
            .execution_options(synchronize_session=False)
        )
        return changed(done)


def archive_recordings(
    sessions: sessionmaker[Session],
    config: ArchiveConfig,
    *,
    now: datetime | None = None,
    only: Iterable[int] | None = None,
    retry_failed: bool = False,
    seal: bool = True,
    progress: Progress | None = None,
    checkpoint: Checkpoint | None = None,
) -> ArchiveResult:
    """Archive every finished recording (status "done") not archived yet, oldest first; then seal
    the days that are due (``seal``). Returns what was done; never raises for one bad recording.

    ``only``: just these recording ids. ``retry_failed``: give "failed" recordings another try.
    ``progress(done, total, what)`` is called after each recording; ``checkpoint(point,
    recording_id)`` after each step (:data:`CHECKPOINTS`; for crash tests). Raises ArchiveError
    (one line) if the archive folder or ffmpeg is missing or another archive job is running; a
    storage error during the run is reported in ``error`` instead, after what was done is kept.
    """
    clock = RunClock(now)
    moment = clock.start
    require_folder(config.store, "archive", "store_dir")
    check_ffmpeg(config.ffmpeg)
    only = None if only is None else list(only)
    with archive_lock(config.store):
        result = ArchiveResult(started_at=moment)
        if retry_failed:
            _reset_failed(sessions, config, only)
        archiver = _Archiver(sessions, config, moment, result, checkpoint)
        ids = _candidates(sessions, only)
        if progress is not None:
            progress(0, len(ids), "")
        for number, recording_id in enumerate(ids, 1):
            try:
                archiver.advance(recording_id)
            except ArchiveError as exc:
                result.error = str(exc)
                log.error("archiving stopped: %s", exc)
                break
            finally:
                if progress is not None:
                    progress(number, len(ids), f"recording {recording_id}")
        if seal and result.error is None:
            try:
                result.sealed = [manifest.path for manifest in seal_due(sessions, config, moment, checkpoint)]
            except ArchiveError as exc:
                result.error = str(exc)
        result.finished_at = clock.now()
        if result.archived or result.failed or result.sealed or result.error or result.warnings:
            record_run(
                sessions,
                "archive",
                result.started_at,
                result.finished_at,
                ok=result.ok,
                counts=result.counts(),
                findings=[{"recording_id": rid, "kind": "failed", "detail": why} for rid, why in result.failed]
                + [{"kind": "warning", "detail": text} for text in result.warnings],
                error=result.error,
            )
        log.info(
            "archive run: %d archived (%d resumed), %d failed, %d manifests sealed%s",
            len(result.archived),
            len(result.resumed),
            len(result.failed),
            len(result.sealed),
            f"; stopped: {result.error}" if result.error else "",
        )
        return result
