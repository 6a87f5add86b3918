"""Recordings of conversations (T5): one row per MixMonitor file, from start to a checked file.

The switch records each leg an agent is on (the call itself, a consultation, a conference) with
MixMonitor into its chroot. When a leg ends, :meth:`RecordingStore.finished` looks at the file on
the host: a leg that never carried audio (the caller hung up while it rang, a dropped consult)
leaves a header-only WAV, which is deleted rather than archived and replayed as silence.

Like :mod:`cc_core.calls.store`, methods are synchronous and each is one transaction. A recording
belongs to a call when that call is known, but outlives it: deleting the call row only clears
``call_id``. Archive, backup and retention build on these rows (``cc_core/recordings/``).

A recording's file name comes from the switch (the ``File:`` of a ``HotlineRecording`` AMI
event). Whatever sends it, the store takes only a file inside the instance's monitor folder
(:class:`MonitorFolder`, checked after ``..`` and symlinks are resolved): a forged event naming
``/etc/passwd`` or ``monitor/../../secrets.json`` leaves no row, so replay can never serve that
file and :meth:`RecordingStore.finished` never inspects or deletes it (issue 11 item 6).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cc_core.calendars.days import require_aware
from cc_core.calls import fields
from cc_core.db.models import Recording, table_of
from cc_core.db.writer import in_batch, transaction

log = logging.getLogger(__name__)

# Core statements for the call path (see cc_core.calls.store).
_RECORDINGS = table_of(Recording)
_RECORDING_ID = select(_RECORDINGS.c.id).where(_RECORDINGS.c.file == bindparam("file"))
_INSERT_RECORDING = insert(_RECORDINGS).returning(_RECORDINGS.c.id)

_FILE_LEN = 255
# A canonical WAV header (RIFF, fmt, data chunk heads) is 44 bytes: at most that is no audio.
WAV_HEADER_BYTES = 44
# Shorter than this is a click, not a conversation.
MIN_DURATION_S = 0.2
# A WAV has a handful of chunks before its data (fmt, maybe fact or LIST): more is not a WAV.
_MAX_CHUNKS = 32

RECORDING_LEGS = ("agent", "consult", "conference", "callback", "transfer")
RECORDING_STATUSES = ("recording", "done", "empty", "missing")


class OutsideMonitorFolder(ValueError):
    """A recording's file is not inside the switch's monitor folder (a forged or broken name)."""


@dataclass(frozen=True)
class MonitorFolder:
    """The switch instance's recording folder (``<instance>/spool/monitor``, where the dialplan's
    ``HOTLINE_REC_DIR`` points), as the switch names it and as the host sees it."""

    inside: PurePosixPath
    host: Path
    host_path: Callable[[str], Path]

    @classmethod
    def of(cls, instance_inside: PurePosixPath, host_path: Callable[[str], Path]) -> MonitorFolder:
        inside = instance_inside / "spool" / "monitor"
        return cls(inside, host_path(str(inside)), host_path)

    def check(self, file_inside: str) -> str:
        """``file_inside`` if it names a file under the folder, else OutsideMonitorFolder.

        Checked twice: by name (absolute, normalised, under :attr:`inside`; no ``..`` may climb
        out) and on the host after resolving symlinks (a link in the folder to another file is
        refused too). The file need not exist yet: MixMonitor has only just opened it.
        """
        name = PurePosixPath(posixpath.normpath(file_inside)) if file_inside.startswith("/") else None
        if name is None or name == self.inside or not name.is_relative_to(self.inside):
            raise OutsideMonitorFolder(f"recording file {file_inside!r} is not inside {self.inside}")
        try:
            real = self.host_path(file_inside).resolve()
            root = self.host.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise OutsideMonitorFolder(f"recording file {file_inside!r} cannot be resolved: {exc}") from exc
        if real == root or not real.is_relative_to(root):
            raise OutsideMonitorFolder(f"recording file {file_inside!r} leads out of {self.inside} (to {real})")
        return file_inside


@dataclass(frozen=True)
class RecordingView:
    """A read-only snapshot of one recording."""

    id: int
    call_id: int | None
    uniqueid: str
    agent_id: str | None
    leg: str
    file: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    size_bytes: int | None
    status: str

    @classmethod
    def from_row(cls, row: Recording) -> RecordingView:
        return cls(
            id=row.id,
            call_id=row.call_id,
            uniqueid=row.uniqueid,
            agent_id=row.agent_id,
            leg=row.leg,
            file=row.file,
            started_at=row.started_at,
            ended_at=row.ended_at,
            duration_s=row.duration_s,
            size_bytes=row.size_bytes,
            status=row.status,
        )


@dataclass(frozen=True)
class _Inspection:
    status: str
    size_bytes: int | None
    duration_s: float | None


def wav_seconds(path: Path, size: int) -> float | None:
    """Seconds of audio in the WAV file of ``size`` bytes, from its header; None if it cannot tell.

    Read by hand rather than with :mod:`wave`, which refuses two files MixMonitor really makes:
    one whose header still has zero sizes (Asterisk fills them in when it closes the file, so a
    switch that stopped first leaves them at 0) and WAV49 (GSM in a WAV). The fmt chunk's bytes
    per second work for every codec; a data size of 0, or past the end of the file, is replaced
    by what the file holds.
    """
    with path.open("rb") as wav:
        head = wav.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return None
        byte_rate = 0
        position = 12
        for _ in range(_MAX_CHUNKS):
            chunk = wav.read(8)
            if len(chunk) < 8:
                return None
            name, length = chunk[:4], int.from_bytes(chunk[4:], "little")
            position += 8
            if name == b"data":
                if byte_rate <= 0:
                    return None
                available = size - position
                return (length if 0 < length <= available else available) / byte_rate
            if name == b"fmt ":
                fmt = wav.read(min(length, 16))
                if len(fmt) < 12:
                    return None
                byte_rate = int.from_bytes(fmt[8:12], "little")
            # Chunks are padded to an even length.
            position += length + (length & 1)
            wav.seek(position)
    return None


def _inspect(path: Path) -> _Inspection:
    """What the file on the host holds: missing, empty (no audio) or done, with size and duration.

    Only a file known to hold no audio is "empty": one that :func:`wav_seconds` cannot read (a
    torn header, another format) is kept as "done" without a duration.
    """
    try:
        size = path.stat().st_size
        if size <= WAV_HEADER_BYTES:
            return _Inspection("empty", size, 0.0)
        seconds = wav_seconds(path, size)
    except FileNotFoundError:
        return _Inspection("missing", None, None)
    if seconds is None:
        return _Inspection("done", size, None)
    duration = round(seconds, 3)
    return _Inspection("empty" if duration < MIN_DURATION_S else "done", size, duration)


class RecordingStore:
    """Reads and writes recordings through a sessionmaker (see :func:`cc_core.db.session.make_sessionmaker`)."""

    def __init__(self, sessions: sessionmaker[Session], monitor: MonitorFolder | None = None) -> None:
        """``monitor``: the only folder recordings may be in (the controller always gives it;
        None, for tests of the rows alone, takes any name)."""
        self._sessions = sessions
        self._monitor = monitor

    # Separate so tests can widen the gap between "not there" and the insert.
    def _find(self, session: Session, file: str) -> Recording | None:
        return session.scalar(select(Recording).where(Recording.file == file))

    # Separate so tests can widen the gap between "not there" and the insert.
    def _find_id(self, session: Session, file: str) -> int | None:
        return session.scalar(_RECORDING_ID, {"file": file})

    def started(self, uniqueid: str, agent_id: str | None, leg: str, file_inside: str, at: datetime) -> int:
        """MixMonitor started writing ``file_inside`` (the path inside the switch chroot) at ``at``; returns the id.

        ``uniqueid`` is the caller's call; ``leg`` one of :data:`RECORDING_LEGS`. Linked to the
        call row when that call is recorded. Idempotent on the file: a repeat (or a concurrent
        duplicate) returns the existing id and changes nothing. Raises ValueError for an unknown
        leg, an empty file, an empty or over-long ``uniqueid`` or ``agent_id``, or a naive ``at``;
        OutsideMonitorFolder (a ValueError) for a file outside the monitor folder.
        """
        uniqueid = fields.key(uniqueid, "uniqueid")
        agent = None if agent_id is None else fields.agent_key(agent_id)
        if leg not in RECORDING_LEGS:
            raise ValueError(f"leg must be one of {', '.join(RECORDING_LEGS)}; got {leg!r}")
        require_aware(at)
        file = fields.clip(file_inside, _FILE_LEN)
        if not file:
            raise ValueError("file_inside must name the recording, got an empty string")
        if self._monitor is not None:
            self._monitor.check(file)
        try:
            with transaction(self._sessions) as session:
                existing = self._find_id(session, file)
                if existing is not None:
                    return existing
                row = {
                    "call_id": session.scalar(fields.CALL_ID_BY_UNIQUEID, {"uniqueid": uniqueid}),
                    "uniqueid": uniqueid,
                    "agent_id": agent,
                    "leg": leg,
                    "file": file,
                    "started_at": at,
                    "status": "recording",
                }
                recording_id: int = session.execute(_INSERT_RECORDING, row).scalar_one()
                return recording_id
        except IntegrityError:
            if in_batch():
                raise
            # Lost the race to another writer between our SELECT and INSERT: its row is
            # committed now. If there is still no row, the error was something else.
            with self._sessions() as session:
                found = self._find_id(session, file)
            if found is None:
                raise
            return found

    def finished(self, file_inside: str, at: datetime, host_path: Path) -> RecordingView | None:
        """MixMonitor stopped writing ``file_inside`` at ``at``; ``host_path`` is that file seen from the host.

        Records size and duration and the status: "missing" when the file is not there, "empty"
        when it holds no audio (at most a 44-byte header, or under 0.2 s; the file is deleted),
        else "done". Returns the recording, or None if no recording has this file. A recording
        that is already finished is returned unchanged: a repeat neither reads nor deletes again,
        and of two racing finishers one writes. A file that is there but cannot be read raises
        OSError and leaves the recording open, to be finished again later. A row whose file is
        outside the monitor folder (written before the check, or into the database by hand) is
        closed as "missing" without looking at that file, let alone deleting it.
        """
        require_aware(at)
        file = fields.clip(file_inside, _FILE_LEN)
        with self._sessions() as session:
            row = self._find(session, file)
            if row is None:
                return None
            if row.status != "recording":
                return RecordingView.from_row(row)
        try:
            if self._monitor is not None:
                self._monitor.check(file)
            seen = _inspect(host_path)
        except OutsideMonitorFolder as exc:
            log.warning("recording not inspected: %s", exc)
            seen = _Inspection("missing", None, None)
        with transaction(self._sessions) as session:
            won = session.scalar(
                update(Recording)
                .where(Recording.file == file, Recording.status == "recording")
                .values(ended_at=at, status=seen.status, size_bytes=seen.size_bytes, duration_s=seen.duration_s)
                .returning(Recording.id)
                .execution_options(synchronize_session=False)
            )
            row = self._find(session, file)
            view = None if row is None else RecordingView.from_row(row)
        if won is not None and seen.status == "empty":
            # After the commit: a failed delete leaves a stray file, never a row without its file.
            try:
                host_path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot delete the empty recording %s: %s", host_path, exc)
        return view

    def for_call(self, uniqueid: str) -> list[RecordingView]:
        """The call's recordings (every leg), in the order they started."""
        with self._sessions() as session:
            rows = session.scalars(
                select(Recording).where(Recording.uniqueid == uniqueid).order_by(Recording.started_at, Recording.id)
            )
            return [RecordingView.from_row(row) for row in rows]

    def open_recordings(self) -> list[RecordingView]:
        """Recordings still "recording", oldest first: after a restart, finish the ones the switch has closed."""
        with self._sessions() as session:
            rows = session.scalars(
                select(Recording).where(Recording.status == "recording").order_by(Recording.started_at, Recording.id)
            )
            return [RecordingView.from_row(row) for row in rows]
