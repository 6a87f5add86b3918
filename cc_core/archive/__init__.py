"""The recording archive (T5; issue 5; decision 0010): archival, backup, tamper evidence,
retention, verify.

Every function is synchronous and takes the sessionmaker and an :class:`ArchiveConfig`; the
controller calls them with ``asyncio.to_thread``, the CLI directly (with a :class:`ProgressBar`).

=====================  ==========================================================================
archiver.py            :func:`archive_recordings`: WAV → verified Opus file, crash-safe steps
backup.py              :func:`backup_archive`: the second copy, catching up
manifest.py            :func:`seal_days`: each day's files sealed in a hash-chained manifest
verify.py              :func:`verify_archive`: re-hash, orphans, the chain; the stored report
retention.py           :func:`purge_expired`, :func:`set_hold`, :func:`clear_hold`, the purge log
runs.py                the archive lock; :func:`last_verify` and :func:`last_run` for the health page
views.py               read-only archive state of recordings (CLI, health page, replay API)
progress.py            :class:`ProgressBar` for the command line
config.py, layout.py, durable.py, transcode.py: the folders, the file layout, durable writes, ffmpeg
=====================  ==========================================================================
"""

from cc_core.archive.archiver import CHECKPOINTS, ArchiveResult, archive_recordings
from cc_core.archive.backup import BackupResult, backup_archive
from cc_core.archive.config import ArchiveBusy, ArchiveConfig, ArchiveError, RecordingNotFound, RecordingPurged
from cc_core.archive.manifest import ManifestView, manifests, seal_days
from cc_core.archive.progress import Progress, ProgressBar
from cc_core.archive.retention import (
    HoldEvent,
    HoldView,
    PurgeEntry,
    PurgeResult,
    clear_hold,
    hold_history,
    purge_expired,
    purge_log,
    set_hold,
)
from cc_core.archive.runs import RunView, last_run, last_verify
from cc_core.archive.verify import Finding, VerifyReport, verify_archive
from cc_core.archive.views import (
    ArchivedRecording,
    archive_file,
    archive_summary,
    archived_for_call,
    archived_recording,
    failed_recordings,
)

__all__ = [
    "CHECKPOINTS",
    "ArchiveBusy",
    "ArchiveConfig",
    "ArchiveError",
    "ArchiveResult",
    "ArchivedRecording",
    "BackupResult",
    "Finding",
    "HoldEvent",
    "HoldView",
    "ManifestView",
    "Progress",
    "ProgressBar",
    "PurgeEntry",
    "PurgeResult",
    "RecordingNotFound",
    "RecordingPurged",
    "RunView",
    "VerifyReport",
    "archive_file",
    "archive_recordings",
    "archive_summary",
    "archived_for_call",
    "archived_recording",
    "backup_archive",
    "clear_hold",
    "failed_recordings",
    "hold_history",
    "last_run",
    "last_verify",
    "manifests",
    "purge_expired",
    "purge_log",
    "seal_days",
    "set_hold",
    "verify_archive",
]
