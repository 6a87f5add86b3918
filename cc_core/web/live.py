"""Live updates over a WebSocket (``/api/ws``, issue 6 items 3 and 4).

One connection per open page. Twice a second the handler compares what the page depends on in
memory (:meth:`Views.agent_key` / :meth:`Views.wallboard_key`: states, waiting callers, the call
on the agent) with what it last sent; on a change, and at least every few seconds (the day's
figures and the callback list live in the database), it builds the page's data in a worker
thread and sends ``{"type": "agent"|"wallboard", "data": …}``. Building per connection costs a
few queries; a center has tens of pages open, not thousands.

The session is checked again every :data:`SESSION_CHECK_S`: when it has ended (logged out,
disabled, past its lifetime) the page gets ``{"type": "expired"}`` and the socket closes with
code 4401, so the page asks for the password again without losing what was typed. An open
page counts as activity for the session's idle timer.

One login session holds at most ``[controller] live_sockets_per_session`` sockets at once
(issue 11 item 8e): each costs a loop task and database reads every few seconds, so a stolen or
scripted session must not open thousands. One more is accepted, told ``{"type": "refused"}``
and closed with code 4429 (the page then falls back to polling, as when the socket is down).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from cc_core.web.security import AUTH_KEY, SESSION_COOKIE, current, requires
from cc_core.web.workstation import VIEWS_KEY, Views, dumps

log = logging.getLogger(__name__)

TICK_S = 0.5
HEARTBEAT_S = 5.0
SESSION_CHECK_S = 15.0
EXPIRED_CLOSE_CODE = 4401
TOO_MANY_CLOSE_CODE = 4429


class LiveSockets:
    """Open live sockets per login session (by the cookie's token), and the cap on them."""

    def __init__(self, per_session: int = 5) -> None:
        self.per_session = per_session
        self.open: dict[str, int] = {}

    def take(self, token: str) -> bool:
        """Count one more socket for ``token``; False (nothing counted) when it has its cap."""
        count = self.open.get(token, 0)
        if count >= self.per_session:
            return False
        self.open[token] = count + 1
        return True

    def give_back(self, token: str) -> None:
        count = self.open.get(token, 0) - 1
        if count > 0:
            self.open[token] = count
        else:
            self.open.pop(token, None)


LIVE_KEY = web.AppKey("live_sockets", LiveSockets)


def _payload(views: Views, role: str, agent_id: str | None) -> dict[str, Any]:
    if role == "agent" and agent_id:
        return {"type": "agent", "data": views.agent_view(agent_id)}
    return {"type": "wallboard", "data": views.wallboard()}


@requires("agent", "supervisor", "admin")
async def live(request: web.Request) -> web.StreamResponse:
    """The WebSocket of live updates: the agent's screen, or the wallboard."""
    view = current(request)
    assert view is not None
    role, agent_id = view.user.role, view.user.agent_id
    views = request.app[VIEWS_KEY]
    if role == "agent" and (not agent_id or agent_id not in views.acd.agents):
        raise web.HTTPConflict(
            text=dumps({"error": "此账号未关联坐席 (not linked to an agent)"}), content_type="application/json"
        )
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        # Another site's page opening our socket with the user's cookie (the SameSite cookie
        # already prevents it in current browsers; this holds for older ones too).
        raise web.HTTPForbidden(
            text=dumps({"error": "跨站连接被拒绝 (cross-site WebSocket refused)"}), content_type="application/json"
        )
    auth = request.app[AUTH_KEY]
    token = request.cookies.get(SESSION_COOKIE, "")
    sockets = request.app[LIVE_KEY]
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096)
    if not sockets.take(token):  # checked and counted before any await
        await ws.prepare(request)
        await ws.send_str(
            dumps(
                {
                    "type": "refused",
                    "error": f"此登录已打开 {sockets.per_session} 个实时连接 "
                    f"(this session already has {sockets.per_session} live sockets open)",
                }
            )
        )
        await ws.close(code=TOO_MANY_CLOSE_CODE, message=b"too many live sockets for this session")
        return ws
    try:
        await ws.prepare(request)
    except BaseException:
        sockets.give_back(token)
        raise

    def key() -> tuple[Any, ...]:
        return views.agent_key(agent_id) if role == "agent" and agent_id else views.wallboard_key()

    sent_key: tuple[Any, ...] | None = None
    sent_at = 0.0
    checked_at = time.monotonic()
    try:
        while not ws.closed:
            now = time.monotonic()
            if now - checked_at >= SESSION_CHECK_S:
                checked_at = now
                if await asyncio.to_thread(auth.sessions.resolve, token, auth.clock()) is None:
                    await ws.send_str(dumps({"type": "expired"}))
                    await ws.close(code=EXPIRED_CLOSE_CODE, message=b"session expired")
                    break
            current_key = key()
            if current_key != sent_key or now - sent_at >= HEARTBEAT_S:
                try:
                    payload = await asyncio.to_thread(_payload, views, role, agent_id)
                except Exception:  # the database is down, a record half written: try again
                    log.exception("live update not built", extra={"user": view.user.username})
                    sent_key, sent_at = current_key, now  # again at the next change or heartbeat
                else:
                    await ws.send_str(dumps(payload))
                    sent_key, sent_at = current_key, now
            try:
                message = await ws.receive(timeout=TICK_S)
            except TimeoutError:
                continue
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
            # Pages send nothing but pings (answered by aiohttp); anything else is ignored.
    except ConnectionResetError:
        pass
    except Exception:
        log.exception("live update socket failed", extra={"user": view.user.username})
    finally:
        sockets.give_back(token)
        if not ws.closed:
            await ws.close()
    return ws


def add_live_routes(app: web.Application, per_session: int = 5) -> None:
    """``/api/ws``; the controller replaces ``app[LIVE_KEY]`` with its settings' cap."""
    app[LIVE_KEY] = LiveSockets(per_session)
    app.router.add_get("/api/ws", live)
