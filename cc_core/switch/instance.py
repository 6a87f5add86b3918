"""An Asterisk instance: a folder inside the switch chroot with its own config, spool and logs.

Asterisk runs chrooted, so every path it sees is inside the chroot (``/srv/hotline/<name>``);
the controller reaches the same files from the host through the chroot's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

INSTANCES_INSIDE = PurePosixPath("/srv/hotline")


@dataclass(frozen=True)
class Instance:
    """Where one switch instance lives, seen from inside the chroot and from the host."""

    root: Path
    name: str

    @property
    def inside(self) -> PurePosixPath:
        return INSTANCES_INSIDE / self.name

    @property
    def host_dir(self) -> Path:
        return self.root / str(self.inside).lstrip("/")

    @property
    def config_inside(self) -> PurePosixPath:
        return self.inside / "etc" / "asterisk.conf"

    @property
    def etc(self) -> Path:
        return self.host_dir / "etc"

    @property
    def sounds(self) -> Path:
        return self.host_dir / "sounds"

    @property
    def log_dir(self) -> Path:
        return self.host_dir / "log"

    @property
    def spool(self) -> Path:
        return self.host_dir / "spool"

    @property
    def console_log(self) -> Path:
        """Where the foreground Asterisk's stdout/stderr go."""
        return self.log_dir / "console.log"

    def host_path(self, inside: str | PurePosixPath) -> Path:
        """The host path of a path Asterisk reports (e.g. a recording's file name)."""
        text = str(inside)
        return self.root / text.lstrip("/") if text.startswith("/") else self.host_dir / text

    def module_dir_inside(self) -> PurePosixPath:
        """The chroot's Asterisk module folder (its path holds the machine's architecture)."""
        found = sorted(self.root.glob("usr/lib/*/asterisk/modules"))
        if found:
            return PurePosixPath("/") / found[0].relative_to(self.root).as_posix()
        return PurePosixPath("/usr/lib/asterisk/modules")

    def is_installed(self) -> bool:
        return (self.root / "usr" / "sbin" / "asterisk").exists()
