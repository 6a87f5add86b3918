"""Search and replay of recordings for supervisors and auditors (T5, P2; issue 5 item 5).

=====================================  ==================  ==========================================
``GET /api/recordings``                supervisor, auditor  search (date range, caller, agent, queue,
                                                            duration, survey score, IVR node)
``GET /api/recordings/{id}``           supervisor, auditor  one recording, its archive state and hold
``GET /api/recordings/{id}/audio``     supervisor, auditor  the audio, with HTTP Range (seek)
``GET /api/recordings/{id}/download``  auditor              the file as an attachment
``POST /api/recordings/{id}/hold``     auditor              set a legal hold ``{"reason": …}``
``DELETE /api/recordings/{id}/hold``   auditor              clear it ``{"reason": …}``
``GET /api/audit``                     auditor              the audit log (read only; no one can edit it)
=====================================  ==================  ==========================================

Every search, listen, download and hold is written to the audit log with who, when, which and from
where; a refused request writes only its refusal. A listen is one entry per person and recording
per ten minutes (a player's seeks are Range requests of the same listen); every download is
logged. If the audit log cannot be written, the audio is not served, and the next try is a
first listen again (a listen counts as logged only once its audit entry is written).

Only files inside the switch's monitor folder (the originals) or the archive's store are
served, checked after symlinks and ``..`` are resolved: a recording row whose ``file`` or
archive path was forged (a crafted AMI event, an edited database) cannot make replay stream
another file of the host (issue 11 item 6).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from cc_core.archive.config import ArchiveConfig, ArchiveError
from cc_core.archive.retention import clear_hold, set_hold
from cc_core.archive.views import ArchivedRecording, archive_file, archived_recording
from cc_core.calls.search import RecordingQuery, search_recordings
from cc_core.db.models import Recording
from cc_core.web.security import AUTH_KEY, audit, current, json_error, requires

LISTEN_WINDOW_S = 600.0
CONTENT_TYPES = {".opus": "audio/ogg", ".ogg": "audio/ogg", ".wav": "audio/wav"}
_BEIJING_OFFSET = "+08:00"


@dataclass
class ReplayContext:
    """What the replay API reads: the database, the archive's folders and the switch's monitor
    folder (on the host), the only two places audio is served from."""

    sessions: sessionmaker[Session]
    archive: ArchiveConfig
    monitor: Path
    _listens: dict[tuple[str, int], float] = field(default_factory=dict)

    def first_listen(self, username: str, recording_id: int) -> bool:
        """True if this person's listen of this recording is to be logged now (none logged in
        the last :data:`LISTEN_WINDOW_S`). Only asks: :meth:`listened` marks it, once the audit
        entry is written, so a listen whose entry failed is logged on the next try."""
        last = self._listens.get((username, recording_id))
        return last is None or time.monotonic() - last >= LISTEN_WINDOW_S

    def listened(self, username: str, recording_id: int) -> None:
        """The audit entry of this listen is written: its seeks are not logged again for a while."""
        now = time.monotonic()
        if len(self._listens) > 50_000:
            self._listens = {k: v for k, v in self._listens.items() if now - v < LISTEN_WINDOW_S}
        self._listens[(username, recording_id)] = now


def inside(path: Path, folder: Path) -> Path | None:
    """``path`` with symlinks and ``..`` resolved, if it is a file under ``folder`` (resolved
    too); else None. A path that cannot be resolved (a symlink loop) counts as outside."""
    try:
        real = path.resolve(strict=True)
        root = folder.resolve()
    except (OSError, RuntimeError):
        return None
    return real if real.is_relative_to(root) and real.is_file() else None


REPLAY_KEY = web.AppKey("replay", ReplayContext)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _when(text: str | None, name: str, *, end: bool = False) -> datetime | None:
    """``YYYY-MM-DD`` (a Beijing day; ``end``: the day after it) or an ISO time with its zone."""
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text) + (timedelta(days=1) if end else timedelta())
            return datetime.fromisoformat(f"{day.isoformat()}T00:00:00{_BEIJING_OFFSET}")
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=_dumps({"error": f"{name} 须为 YYYY-MM-DD 或带时区的 ISO 时间 (got {text!r})"}),
            content_type="application/json",
        ) from exc
    if moment.tzinfo is None:
        raise web.HTTPBadRequest(
            text=_dumps({"error": f"{name} 须带时区 (needs a time zone, e.g. +08:00)"}), content_type="application/json"
        )
    return moment


# Query numbers past this are refused: the database's integers stop at 2**63, SQLite's LIMIT
# and OFFSET overflow before, and no search needs more.
_NUMBER_MAX = 2**31 - 1


def _number(text: str | None, name: str, kind: type[int] | type[float]) -> Any:
    if text is None or text == "":
        return None
    try:
        value = kind(text)
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=_dumps({"error": f"{name} 须为数字 (a number, got {text!r})"}), content_type="application/json"
        ) from exc
    if not -_NUMBER_MAX <= value <= _NUMBER_MAX:  # also NaN and infinity
        raise web.HTTPBadRequest(
            text=_dumps({"error": f"{name} 超出范围 (out of range, got {text!r})"}), content_type="application/json"
        )
    return value


@requires("supervisor", "auditor", audit="search")
async def search(request: web.Request) -> web.Response:
    q = request.query
    query = RecordingQuery(
        since=_when(q.get("from"), "from"),
        until=_when(q.get("to"), "to", end=True),
        caller=q.get("caller") or None,
        agent=q.get("agent") or None,
        queue=q.get("queue") or None,
        min_duration_s=_number(q.get("min_duration"), "min_duration", float),
        max_duration_s=_number(q.get("max_duration"), "max_duration", float),
        survey_score=_number(q.get("score"), "score", int),
        ivr_node=q.get("ivr_node") or None,
        limit=_number(q.get("limit"), "limit", int) or 100,
        offset=_number(q.get("offset"), "offset", int) or 0,
    )
    replay = request.app[REPLAY_KEY]
    hits = await asyncio.to_thread(search_recordings, replay.sessions, query)
    await audit(request, "search", "recordings", {k: v for k, v in q.items() if k != "limit"})
    return web.json_response({"recordings": [asdict(h) for h in hits]}, dumps=_dumps)


async def _recording(request: web.Request) -> ArchivedRecording:
    try:
        recording_id = int(request.match_info["id"])
        if not 0 < recording_id < 2**31:  # SQLite overflows past 2**63 (a 500 before)
            raise ValueError(recording_id)
    except ValueError as exc:
        raise web.HTTPNotFound(
            text=_dumps({"error": "没有这个录音 (no such recording)"}), content_type="application/json"
        ) from exc
    found = await asyncio.to_thread(archived_recording, request.app[REPLAY_KEY].sessions, recording_id)
    if found is None:
        raise web.HTTPNotFound(
            text=_dumps({"error": "没有这个录音 (no such recording)"}), content_type="application/json"
        )
    return found


def _audio_file(replay: ReplayContext, recording: ArchivedRecording, original: str | None) -> Path | None:
    """The archived file, or the switch's original while it is not archived yet; only ever a
    file inside the archive's store or the monitor folder (see :func:`inside`)."""
    archived = archive_file(replay.archive, recording)
    if archived is not None:
        found = inside(archived, replay.archive.store)
        if found is not None:
            return found
    if recording.purged_at is None and recording.status == "done" and original:
        return inside(replay.archive.host_path(original), replay.monitor)
    return None


async def _original(replay: ReplayContext, recording_id: int) -> str | None:
    def read() -> str | None:
        with replay.sessions() as session:
            row = session.get(Recording, recording_id)
            return row.file if row is not None else None

    return await asyncio.to_thread(read)


@requires("supervisor", "auditor", audit="view")
async def details(request: web.Request) -> web.Response:
    recording = await _recording(request)
    await audit(request, "view", str(recording.id))
    return web.json_response(asdict(recording), dumps=_dumps)


async def _serve(request: web.Request, *, download: bool) -> web.StreamResponse:
    replay = request.app[REPLAY_KEY]
    recording = await _recording(request)
    path = _audio_file(replay, recording, await _original(replay, recording.id))
    if path is None:
        reason = "已按保存期限清除 (purged)" if recording.purged_at else "录音文件不可用 (no audio file)"
        return json_error(410 if recording.purged_at else 404, reason)
    view = current(request)
    assert view is not None
    if download or replay.first_listen(view.user.username, recording.id):
        try:
            await audit(
                request,
                "download" if download else "listen",
                str(recording.id),
                {"uniqueid": recording.uniqueid, "range": request.headers.get("Range", "")},
            )
        except Exception:  # no audit entry, no audio (P2); the next try is a first listen again
            return json_error(503, "审计日志不可写，暂不能播放 (the audit log cannot be written)")
        if not download:
            replay.listened(view.user.username, recording.id)
    headers = {"Content-Type": CONTENT_TYPES.get(path.suffix, "application/octet-stream"), "Cache-Control": "no-store"}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="recording-{recording.id}{path.suffix}"'
    return web.FileResponse(path, headers=headers)


@requires("supervisor", "auditor", audit="listen")
async def audio(request: web.Request) -> web.StreamResponse:
    return await _serve(request, download=False)


@requires("auditor", audit="download")
async def download(request: web.Request) -> web.StreamResponse:
    """The file as an attachment: auditors only (docs/web-api.md's role table). A downloaded copy
    is played without the audit log and escapes the retention purge, so taking one out is an
    auditor's act; supervisors review calls by listening (issue 11 item 9)."""
    return await _serve(request, download=True)


async def _reason(request: web.Request) -> str:
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        data = None
    reason = data.get("reason") if isinstance(data, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        raise web.HTTPBadRequest(
            text=_dumps({"error": "需要原因 reason (why: e.g. a complaint's case number)"}),
            content_type="application/json",
        )
    return reason.strip()[:255]


async def _hold(request: web.Request, setting: bool) -> web.Response:
    recording = await _recording(request)
    reason = await _reason(request)
    view = current(request)
    assert view is not None
    replay = request.app[REPLAY_KEY]
    change = set_hold if setting else clear_hold
    try:
        held = await asyncio.to_thread(change, replay.sessions, recording.id, by=view.user.username, reason=reason)
    except (ArchiveError, ValueError) as exc:
        return json_error(409, str(exc))
    await audit(request, "hold_set" if setting else "hold_cleared", str(recording.id), {"reason": reason})
    return web.json_response(asdict(held), dumps=_dumps)


@requires("auditor", audit="hold_set")
async def hold(request: web.Request) -> web.Response:
    return await _hold(request, True)


@requires("auditor", audit="hold_cleared")
async def unhold(request: web.Request) -> web.Response:
    return await _hold(request, False)


@requires("auditor", audit="audit_read")
async def audit_log(request: web.Request) -> web.Response:
    q = request.query
    auth = request.app[AUTH_KEY]
    entries = await asyncio.to_thread(
        auth.audit.read,
        since=_when(q.get("from"), "from"),
        until=_when(q.get("to"), "to", end=True),
        actor=q.get("actor") or None,
        action=q.get("action") or None,
        target=q.get("target") or None,
        limit=_number(q.get("limit"), "limit", int) or 200,
    )
    return web.json_response({"entries": [asdict(e) for e in entries]}, dumps=_dumps)


def add_recording_routes(app: web.Application, replay: ReplayContext) -> None:
    app[REPLAY_KEY] = replay
    app.router.add_get("/api/recordings", search)
    app.router.add_get("/api/recordings/{id}", details)
    app.router.add_get("/api/recordings/{id}/audio", audio)
    app.router.add_get("/api/recordings/{id}/download", download)
    app.router.add_post("/api/recordings/{id}/hold", hold)
    app.router.add_delete("/api/recordings/{id}/hold", unhold)
    app.router.add_get("/api/audit", audit_log)
