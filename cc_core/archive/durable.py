"""Writing files so that a crash or power loss leaves either the old state or the new, never half.

A file is written under a temporary name in its final folder, synced, renamed into place (atomic
on one file system), and the folder is synced so the rename itself survives. Folders created on
the way are synced into their parents too. Reading back "from disk" drops the file's cached
pages first (they are clean after the sync), so a re-read checks what the device returns, not
what is still in memory.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from cc_core.archive.layout import partial_name

CHUNK = 1 << 20


class SourceChanged(Exception):
    """The file to be copied does not hash to what it should: nothing was copied."""


class CopyMismatch(Exception):
    """A copy read back from its disk does not hash to its source's SHA-256."""


def fsync_dir(folder: Path) -> None:
    """Make the folder's entries (a new name, a removed name) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_folder(folder: Path) -> None:
    """Create ``folder`` and missing parents, each made durable in its parent."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            pass
        fsync_dir(path.parent)


def _drop_cache(fd: int) -> None:
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def sha256_file(path: Path, *, from_disk: bool = False) -> tuple[str, int]:
    """The file's SHA-256 (hex) and size. ``from_disk``: drop its cached pages first."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        if from_disk:
            _drop_cache(fd)
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest(), size


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def write_file(path: Path, data: bytes, *, after_temp: Callable[[], None] | None = None) -> None:
    """Write ``data`` to ``path`` durably (temp file, fsync, rename, fsync of the folder).

    An error (a full disk) removes the temporary file and leaves ``path`` as it was; the
    OSError is raised. ``after_temp`` runs once the temporary file is synced, before the rename.
    """
    temp = path.with_name(partial_name(path.name))
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if after_temp is not None:
            after_temp()
        os.replace(temp, path)
    except BaseException:
        _remove_quietly(temp)
        raise
    fsync_dir(path.parent)


def copy_file(
    source: Path,
    target: Path,
    sha256: str,
    *,
    after_rename: Callable[[], None] | None = None,
) -> int:
    """Copy ``source`` to ``target`` durably and check both ends against ``sha256``; returns the size.

    The source is hashed while it is copied: if it is not what it should be, nothing is renamed
    into place and SourceChanged is raised. After the rename the copy is read back from the disk
    and hashed; a mismatch raises CopyMismatch (the bad copy stays, to be overwritten next time).
    """
    temp = target.with_name(partial_name(target.name))
    digest = hashlib.sha256()
    size = 0
    try:
        src = os.open(source, os.O_RDONLY)
        try:
            dst = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                while chunk := os.read(src, CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    _write_all(dst, chunk)
                os.fsync(dst)
            finally:
                os.close(dst)
        finally:
            os.close(src)
        if digest.hexdigest() != sha256:
            raise SourceChanged(f"{source} does not match its recorded SHA-256; not copied")
        os.replace(temp, target)
    except BaseException:
        _remove_quietly(temp)
        raise
    fsync_dir(target.parent)
    if after_rename is not None:
        after_rename()
    again, _ = sha256_file(target, from_disk=True)
    if again != sha256:
        raise CopyMismatch(f"the copy {target} read back differs from its source")
    return size


def remove_file(path: Path) -> bool:
    """Remove ``path`` durably; False if it was not there."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def ensure_content(path: Path, data: bytes) -> bool:
    """Make ``path`` hold exactly ``data`` (durably, read back from the disk); False if it already did."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    ensure_folder(path.parent)
    write_file(path, data)
    again, _ = sha256_file(path, from_disk=True)
    if again != hashlib.sha256(data).hexdigest():
        raise CopyMismatch(f"{path} read back differs from what was written")
    return True
