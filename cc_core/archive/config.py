"""What the archive needs to know: its folders, where the switch's files are, format and retention.

Built once from the settings (:meth:`ArchiveConfig.from_settings`) and passed to every archive
function, like the sessionmaker. The folders are checked when a job runs, not here: the backup
disk may be mounted after the controller starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cc_core.errors import HotlineError, SettingsError
from cc_core.settings import Settings
from cc_core.switch.instance import Instance


class ArchiveError(HotlineError):
    """An archive job cannot go on: a missing folder or tool, a full disk. One line, what to do."""


class ArchiveBusy(ArchiveError):
    """Another archive job holds the archive's lock."""


class RecordingNotFound(ArchiveError):
    """No recording has this id."""


class RecordingPurged(ArchiveError):
    """The recording's archived file was already removed by retention."""


@dataclass(frozen=True)
class ArchiveConfig:
    """The archive's folders and choices (``[archive]`` in hotline.toml)."""

    # recordings_store/: <YYYY>/<MM>/<DD>/<leg uniqueid>.opus and the days' MANIFEST files.
    store: Path
    # The second copy of every archived file and manifest, same layout; None: no backup.
    backup: Path | None
    # A recording's file as the switch names it (inside its chroot) → the same file on the host.
    host_path: Callable[[str], Path]
    bitrate_kbps: int = 16
    retention_days: int = 1825
    seal_grace: timedelta = timedelta(hours=48)
    ffmpeg: str = "ffmpeg"

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveConfig:
        """The archive of this installation; raises SettingsError if one folder lies inside the other."""
        archive = settings.archive
        store = settings.path(archive.store_dir).resolve()
        backup = None if archive.backup_dir is None else settings.path(archive.backup_dir).resolve()
        if backup is not None and (backup == store or backup.is_relative_to(store) or store.is_relative_to(backup)):
            raise SettingsError(
                f"[archive] backup_dir {backup} and store_dir {store} overlap; put the backup on another folder or disk"
            )
        instance = Instance(settings.switch_root, settings.switch.instance)
        return cls(
            store=store,
            backup=backup,
            host_path=instance.host_path,
            bitrate_kbps=archive.bitrate_kbps,
            retention_days=archive.retention_days,
            seal_grace=timedelta(hours=archive.seal_grace_hours),
        )

    @property
    def format(self) -> str:
        """How archived files are encoded, as stored on each recording."""
        return f"ogg/opus mono {self.bitrate_kbps} kbit/s"


def require_folder(path: Path, what: str, setting: str) -> None:
    """Raise ArchiveError unless ``path`` is an existing folder.

    Never creates it: a backup folder that is missing usually means a disk that is not mounted,
    and writing into the empty mount point would fill the system disk with a "backup".
    """
    if not path.is_dir():
        hint = "mount the disk or create the folder" if what == "backup" else "create the folder"
        raise ArchiveError(
            f"the {what} folder {path} does not exist; {hint}, or set [archive] {setting} in hotline.toml"
        )


def one_line(text: object) -> str:
    """An error's text on one line, for messages and the archive_error column."""
    return " ".join(str(text).split())
