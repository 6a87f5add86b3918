"""Tamper evidence (T5): each Beijing day's archived recordings sealed in a manifest whose hash
chains to the previous manifest's.

A manifest lists the day's archived files, sorted, each with its recording id, SHA-256, size and
duration, and names the SHA-256 of the manifest sealed before it. It is written as
``<YYYY>/<MM>/<DD>/MANIFEST.json`` beside the day's recordings (and in the backup folder) and
stored in ``recording_manifests`` with its hash; the manifest's hash is the SHA-256 of that
exact file, so ``sha256sum MANIFEST.json`` checks it without this code. Changing one recorded
file, removing or inserting one, or editing an earlier manifest breaks a hash that a later
manifest (or the database) still holds, and :mod:`cc_core.archive.verify` reports it.

**When a day is sealed.** Days are sealed in order, each once it is over (Beijing time) and
none of its recordings is still being recorded or waiting to be archived — normally in the
first archive run after midnight. A day whose stragglers are still unsettled ``seal_grace``
(48 h by default) after it ended is sealed without them.

**A recording archived after its day was sealed** (a straggler, a failed one retried) goes into
an addendum, ``MANIFEST-1.json`` (then ``-2`` …), sealed by the next archive run and chained in
at the head of the chain like any manifest: the day's first seal stays untouched.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from cc_core.archive.config import ArchiveConfig, ArchiveError, one_line, require_folder
from cc_core.archive.durable import CopyMismatch, ensure_content, ensure_folder, write_file
from cc_core.archive.layout import manifest_path
from cc_core.archive.runs import RunClock, archive_lock, changed, record_run
from cc_core.calendars.days import local_day, local_day_bounds
from cc_core.db.models import Recording, RecordingManifest

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "hotline-recordings-manifest/1"
# The "previous manifest" of the first one.
GENESIS = "0" * 64
# Reported to the checkpoint callback with the manifest's chain position (crash tests).
SEAL_CHECKPOINTS = ("manifest_written", "sealed")
# Recordings of a day that keep it from being sealed: still recording, or not archived yet.
_UNSETTLED_STATES = ("pending", "written", "verified")


@dataclass(frozen=True)
class ManifestEntry:
    """One archived file in a manifest."""

    recording_id: int
    file: str
    sha256: str
    size_bytes: int
    seconds: float | None


@dataclass(frozen=True)
class ManifestBody:
    """What a manifest says."""

    day: date
    part: int
    position: int
    previous_sha256: str
    sealed_at: datetime
    entries: tuple[ManifestEntry, ...]


@dataclass(frozen=True)
class ManifestView:
    """A sealed manifest as stored."""

    id: int
    position: int
    day: date
    part: int
    sealed_at: datetime
    entry_count: int
    previous_sha256: str
    sha256: str
    path: str

    @classmethod
    def from_row(cls, row: RecordingManifest) -> ManifestView:
        return cls(
            id=row.id,
            position=row.position,
            day=row.day,
            part=row.part,
            sealed_at=row.sealed_at,
            entry_count=row.entry_count,
            previous_sha256=row.previous_sha256,
            sha256=row.sha256,
            path=row.path,
        )


def render_manifest(body: ManifestBody) -> str:
    """The manifest file's text: JSON, keys sorted, entries sorted by file, one trailing newline.

    Deterministic: the same body always gives the same bytes, hence the same hash.
    """
    entries = sorted(body.entries, key=lambda entry: entry.file)
    document: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "day": body.day.isoformat(),
        "part": body.part,
        "position": body.position,
        "previous_sha256": body.previous_sha256,
        "sealed_at": body.sealed_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "count": len(entries),
        "recordings": [
            {
                "id": entry.recording_id,
                "file": entry.file,
                "sha256": entry.sha256,
                "bytes": entry.size_bytes,
                "seconds": entry.seconds,
            }
            for entry in entries
        ],
    }
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def parse_manifest(text: str) -> ManifestBody:
    """Read a manifest's text back; ValueError (one line) if it is not a manifest of ours."""
    try:
        document = json.loads(text)
        if document.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format is {document.get('format')!r}, not {MANIFEST_FORMAT}")
        entries = tuple(
            ManifestEntry(
                recording_id=int(item["id"]),
                file=str(item["file"]),
                sha256=str(item["sha256"]),
                size_bytes=int(item["bytes"]),
                seconds=None if item["seconds"] is None else float(item["seconds"]),
            )
            for item in document["recordings"]
        )
        if len(entries) != int(document["count"]):
            raise ValueError(f"count says {document['count']}, the list has {len(entries)}")
        return ManifestBody(
            day=date.fromisoformat(document["day"]),
            part=int(document["part"]),
            position=int(document["position"]),
            previous_sha256=str(document["previous_sha256"]),
            sealed_at=datetime.fromisoformat(str(document["sealed_at"]).replace("Z", "+00:00")),
            entries=entries,
        )
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a manifest: {one_line(exc)}") from exc


def manifest_sha256(text: str) -> str:
    """A manifest's hash: the SHA-256 of its file's bytes (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def manifests(sessions: sessionmaker[Session]) -> list[ManifestView]:
    """Every sealed manifest, in chain order."""
    with sessions() as session:
        rows = session.scalars(select(RecordingManifest).order_by(RecordingManifest.position))
        return [ManifestView.from_row(row) for row in rows]


# ---- sealing -------------------------------------------------------------------------------------


def _due_days(session: Session, now: datetime, grace: timedelta) -> list[date]:
    """The days to seal now, in order: over, settled (or past the grace), after the last sealed one."""
    last = session.scalar(select(func.max(RecordingManifest.day)).where(RecordingManifest.part == 0))
    if last is None:
        first = session.scalar(select(func.min(Recording.archive_day)).where(Recording.archive_state == "archived"))
        if first is None:
            return []
    else:
        first = last + timedelta(days=1)
    today = local_day(now)
    days: list[date] = []
    day = first
    while day < today:
        start, end = local_day_bounds(day)
        unsettled = session.scalar(
            select(func.count())
            .select_from(Recording)
            .where(
                Recording.started_at >= start,
                Recording.started_at < end,
                (Recording.status == "recording")
                | (
                    (Recording.status == "done")
                    & Recording.purged_at.is_(None)
                    & (Recording.archive_state.is_(None) | Recording.archive_state.in_(_UNSETTLED_STATES))
                ),
            )
        )
        if unsettled and now < end + grace:
            break
        days.append(day)
        day += timedelta(days=1)
    return days


def _late_days(session: Session) -> list[date]:
    """Sealed days that have archived recordings in no manifest (they need an addendum)."""
    last = session.scalar(select(func.max(RecordingManifest.day)).where(RecordingManifest.part == 0))
    if last is None:
        return []
    days = session.scalars(
        select(Recording.archive_day)
        .where(
            Recording.archive_state == "archived",
            Recording.manifest_id.is_(None),
            Recording.archive_day <= last,
        )
        .group_by(Recording.archive_day)
        .order_by(Recording.archive_day)
    )
    return [day for day in days if day is not None]


def _unsealed(session: Session, day: date) -> list[Recording]:
    return list(
        session.scalars(
            select(Recording)
            .where(
                Recording.archive_day == day,
                Recording.archive_state == "archived",
                Recording.manifest_id.is_(None),
            )
            .order_by(Recording.archive_path)
        )
    )


def _seal_one(
    sessions: sessionmaker[Session],
    config: ArchiveConfig,
    day: date,
    part: int,
    now: datetime,
    checkpoint: Callable[[str, int], None] | None,
) -> ManifestView:
    with sessions() as session:
        head = session.scalars(select(RecordingManifest).order_by(RecordingManifest.position.desc()).limit(1)).first()
        position = 1 if head is None else head.position + 1
        previous = GENESIS if head is None else head.sha256
        entries = tuple(
            ManifestEntry(
                recording_id=row.id,
                file=str(row.archive_path),
                sha256=str(row.archive_sha256),
                size_bytes=int(row.archive_size_bytes or 0),
                seconds=row.archive_duration_s,
            )
            for row in _unsealed(session, day)
        )
    text = render_manifest(ManifestBody(day, part, position, previous, now, entries))
    path = manifest_path(day, part)
    target = config.store / path
    try:
        ensure_folder(target.parent)
        write_file(target, text.encode("utf-8"))
    except OSError as exc:
        raise ArchiveError(f"cannot write the manifest {target}: {exc.strerror or one_line(exc)}") from exc
    if checkpoint is not None:
        checkpoint("manifest_written", position)
    if config.backup is not None:
        # Before the commit, like a recording's backup before its original goes: a sealed
        # manifest always exists twice.
        require_folder(config.backup, "backup", "backup_dir")
        try:
            ensure_content(config.backup / path, text.encode("utf-8"))
        except (OSError, CopyMismatch) as exc:
            raise ArchiveError(f"cannot write the manifest's backup {config.backup / path}: {one_line(exc)}") from exc
    with sessions() as session, session.begin():
        row = RecordingManifest(
            position=position,
            day=day,
            part=part,
            sealed_at=now,
            entry_count=len(entries),
            previous_sha256=previous,
            sha256=manifest_sha256(text),
            path=path,
            body=text,
        )
        session.add(row)
        session.flush()
        ids = [entry.recording_id for entry in entries]
        if ids:
            linked = session.execute(
                update(Recording)
                .where(Recording.id.in_(ids), Recording.manifest_id.is_(None))
                .values(manifest_id=row.id)
                .execution_options(synchronize_session=False)
            )
            if changed(linked) != len(ids):  # pragma: no cover - the archive lock keeps other writers out
                raise ArchiveError(f"recordings of {day} changed while sealing them; run the archive again")
        view = ManifestView.from_row(row)
    if checkpoint is not None:
        checkpoint("sealed", position)
    log.info("sealed %s: %d recordings, sha256 %s", path, len(entries), view.sha256)
    return view


def seal_due(
    sessions: sessionmaker[Session],
    config: ArchiveConfig,
    now: datetime,
    checkpoint: Callable[[str, int], None] | None = None,
) -> list[ManifestView]:
    """Seal the days that are due and the addenda owed; the caller holds the archive lock.

    Each manifest is written to the archive and the backup folder, then committed. Returns the
    new manifests; raises ArchiveError if a manifest cannot be written.
    """
    sealed: list[ManifestView] = []
    with sessions() as session:
        days = _due_days(session, now, config.seal_grace)
    for day in days:
        sealed.append(_seal_one(sessions, config, day, 0, now, checkpoint))
    with sessions() as session:
        late = _late_days(session)
    for day in late:
        with sessions() as session:
            part = (
                session.scalar(select(func.max(RecordingManifest.part)).where(RecordingManifest.day == day)) or 0
            ) + 1
        sealed.append(_seal_one(sessions, config, day, part, now, checkpoint))
    return sealed


def copy_manifests(sessions: sessionmaker[Session], config: ArchiveConfig) -> list[str]:
    """Make the backup folder's manifest files match the database's (a backup folder set, or
    restored, after days were sealed); returns problems as one-line warnings rather than raising."""
    if config.backup is None:
        return []
    try:
        require_folder(config.backup, "backup", "backup_dir")
    except ArchiveError as exc:
        return [str(exc)]
    query = select(RecordingManifest.path, RecordingManifest.body).order_by(RecordingManifest.position)
    problems: list[str] = []
    with sessions() as session:
        rows = list(session.execute(query))
    for path, body in rows:
        try:
            ensure_content(config.backup / path, body.encode("utf-8"))
        except (OSError, CopyMismatch) as exc:
            problems.append(f"cannot copy the manifest {path} to the backup: {one_line(exc)}")
    return problems


def seal_days(
    sessions: sessionmaker[Session],
    config: ArchiveConfig,
    *,
    now: datetime | None = None,
    checkpoint: Callable[[str, int], None] | None = None,
) -> list[ManifestView]:
    """Seal every day that is due now (and addenda for late recordings); :func:`archive_recordings`
    does this at the end of each run. Raises ArchiveError (one line) on a storage problem."""
    clock = RunClock(now)
    moment = clock.start
    require_folder(config.store, "archive", "store_dir")
    with archive_lock(config.store):
        sealed = seal_due(sessions, config, moment, checkpoint)
        if sealed:
            record_run(sessions, "seal", moment, clock.now(), ok=True, counts={"sealed": len(sealed)})
        return sealed
