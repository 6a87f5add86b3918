"""Where things go in the archive folder (and, identically, in the backup folder).

``<YYYY>/<MM>/<DD>/<leg uniqueid>.opus`` by the recording's Beijing day, the day's manifest
``MANIFEST.json`` beside its recordings, addenda ``MANIFEST-1.json``, ``MANIFEST-2.json`` … Pure
functions: no file is touched here.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import PurePosixPath

ARCHIVE_SUFFIX = ".opus"
# A file being written: renamed to its real name once complete and synced.
PARTIAL_SUFFIX = ".partial"
LOCK_NAME = ".archive.lock"
# Files of the archive's own at its top (never reported as orphans).
TOP_LEVEL_FILES = frozenset({LOCK_NAME, "README.md"})
_SAFE_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
_DAY_FOLDER = re.compile(r"^(\d{4})/(\d{2})/(\d{2})$")


def day_folder(day: date) -> str:
    """``2026/05/01`` for 1 May 2026."""
    return f"{day:%Y/%m/%d}"


def day_of_folder(folder: str) -> date | None:
    """The day a ``YYYY/MM/DD`` folder holds, or None if it is not one."""
    found = _DAY_FOLDER.match(folder)
    if found is None:
        return None
    try:
        return date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        return None


def archive_name(switch_file: str, recording_id: int, taken: bool = False) -> str:
    """The archived file's name for the switch's ``switch_file`` (``…/1714552215.12.wav``).

    The leg's uniqueid (the WAV's stem) names it, so an auditor can find a recording from the
    switch's logs. A stem with unexpected characters, or one already ``taken`` that day by
    another recording, gets the recording id instead / as well, so names never collide.
    """
    stem = PurePosixPath(switch_file).stem
    if not _SAFE_STEM.match(stem):
        return f"recording-{recording_id}{ARCHIVE_SUFFIX}"
    return f"{stem}-{recording_id}{ARCHIVE_SUFFIX}" if taken else f"{stem}{ARCHIVE_SUFFIX}"


def archive_path(day: date, name: str) -> str:
    """The path of an archived file relative to the archive folder."""
    return f"{day_folder(day)}/{name}"


def manifest_path(day: date, part: int) -> str:
    """``2026/05/01/MANIFEST.json`` seals the day; ``MANIFEST-1.json`` … are its addenda."""
    name = "MANIFEST.json" if part == 0 else f"MANIFEST-{part}.json"
    return f"{day_folder(day)}/{name}"


def partial_name(name: str) -> str:
    """The temporary name a file is written under before it is renamed into place."""
    return f".{name}{PARTIAL_SUFFIX}"
