"""Logins, sessions, roles and CSRF for the web API (P2; issue 5 item 5, issue 6 item 1).

* ``POST /api/login`` with ``{"username", "password"}`` opens a session: an HttpOnly,
  SameSite=Strict cookie, and a CSRF token in the answer. Failed logins are rate limited per
  address and per user name (429 with ``Retry-After``).
* Every request with the cookie is resolved by :func:`session_middleware`; a state-changing
  request (POST, PUT, PATCH, DELETE) must carry the session's CSRF token in ``X-CSRF-Token``
  (403 otherwise), so another site cannot act with the user's cookie.
* A handler declares who may call it with :func:`requires`: no session → 401 (with
  ``"expired": true`` when the cookie was there but the session is over, so the page can log in
  again without losing what the user typed); another role → 403.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from cc_core.auth.store import AuditLog, SessionStore, SessionView, UserStore

SESSION_COOKIE = "hotline_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_LOGIN_BODY = 4096

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response(
        {"error": message, **extra}, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False)
    )


@dataclass
class LoginLimiter:
    """At most ``max_failures`` failed logins per ``window_s`` for one address and for one user
    name; a success clears the user name's count."""

    max_failures: int = 5
    window_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def wait_s(self, *keys: str) -> float:
        """Seconds until another try is allowed for these keys (0: now)."""
        now = self.clock()
        wait = 0.0
        for key in keys:
            times = self._failures.get(key)
            if not times:
                continue
            while times and now - times[0] > self.window_s:
                times.popleft()
            if len(times) >= self.max_failures:
                wait = max(wait, self.window_s - (now - times[0]))
        return wait

    def failed(self, *keys: str) -> None:
        now = self.clock()
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)
        if len(self._failures) > 10_000:  # a flood of made-up names must not fill memory
            for key in [k for k, v in self._failures.items() if not v or now - v[-1] > self.window_s]:
                del self._failures[key]

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


@dataclass
class WebAuth:
    """What the web server needs to know who is asking."""

    users: UserStore
    sessions: SessionStore
    audit: AuditLog
    secure_cookie: bool = False
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


AUTH_KEY = web.AppKey("web_auth", WebAuth)
USER_KEY = web.RequestKey("hotline_user", SessionView)  # absent without a live session
EXPIRED_KEY = web.RequestKey("hotline_session_expired", bool)


def client_ip(request: web.Request) -> str:
    return request.remote or "-"


def current(request: web.Request) -> SessionView | None:
    return request.get(USER_KEY)


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    auth = request.app[AUTH_KEY]
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        view = await asyncio.to_thread(auth.sessions.resolve, token, auth.clock())
        if view is None:
            request[EXPIRED_KEY] = True
        else:
            request[USER_KEY] = view
            if request.method in UNSAFE_METHODS and request.path != "/api/login":
                given = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(given.encode(), view.csrf_token.encode()):
                    return json_error(403, "缺少或错误的 CSRF 令牌 (missing or wrong CSRF token)")
    return await handler(request)


def requires(*roles: str, audit: str | None = None) -> Callable[[Handler], Handler]:
    """Only a logged-in user with one of ``roles`` gets through (401 / 403 otherwise). With
    ``audit``, a refusal is written to the audit log as that action, refused (P2)."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            view = current(request)
            if view is None:
                expired = bool(request.get(EXPIRED_KEY))
                message = "登录已过期，请重新登录 (session expired)" if expired else "请先登录 (log in first)"
                await _refusal(request, audit, "-", "-")
                return json_error(401, message, expired=expired)
            if view.user.role not in roles:
                await _refusal(request, audit, view.user.username, view.user.role)
                return json_error(403, f"无权访问 (role {view.user.role} may not do this)")
            return await handler(request)

        guarded.__name__ = handler.__name__
        guarded.__doc__ = handler.__doc__
        setattr(guarded, "roles", roles)  # noqa: B010 (read by the auth-coverage test)
        return guarded

    return wrap


async def audit(request: web.Request, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    """Write an allowed action of the logged-in user to the audit log (P2)."""
    auth = request.app[AUTH_KEY]
    view = current(request)
    assert view is not None
    await asyncio.to_thread(
        auth.audit.write,
        auth.clock(),
        view.user.username,
        view.user.role,
        action,
        target,
        client_ip(request),
        allowed=True,
        detail=detail or {},
    )


async def read_json(request: web.Request, limit: int) -> dict[str, Any]:
    """The request's JSON object: {} for an empty body, 400 when it is not a JSON object, 413
    past ``limit`` bytes (read no further than that)."""
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(raw))
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "请求须为 JSON 对象 (a JSON object)"}, ensure_ascii=False),
            content_type="application/json",
        )
    return data


async def _refusal(request: web.Request, action: str | None, actor: str, role: str) -> None:
    if action is None:
        return
    auth = request.app[AUTH_KEY]
    target = request.match_info.get("id", "") or request.path
    await asyncio.to_thread(
        auth.audit.write,
        auth.clock(),
        actor,
        role,
        action,
        target,
        client_ip(request),
        allowed=False,
        detail={"path": request.path, "method": request.method},
    )


async def login(request: web.Request) -> web.Response:
    auth = request.app[AUTH_KEY]
    raw = await request.content.read(MAX_LOGIN_BODY + 1)
    try:
        data = json.loads(raw.decode("utf-8")) if len(raw) <= MAX_LOGIN_BODY else None
    except (UnicodeDecodeError, ValueError):
        data = None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("username"), str)
        or not isinstance(data.get("password"), str)
    ):
        return json_error(400, "需要 username 与 password (JSON with username and password)")
    username, password = data["username"].strip().lower()[:64], data["password"][:256]
    ip = client_ip(request)
    keys = (f"ip:{ip}", f"user:{username}")
    wait = auth.limiter.wait_s(*keys)
    if wait > 0:
        response = json_error(429, "登录失败次数过多，请稍后再试 (too many failed logins)")
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    now = auth.clock()
    user = await asyncio.to_thread(auth.users.authenticate, username, password, now)
    if user is None:
        auth.limiter.failed(*keys)
        await asyncio.to_thread(auth.audit.write, now, username or "-", "-", "login", username, ip, allowed=False)
        return json_error(401, "用户名或密码错误 (wrong user name or password)")
    auth.limiter.succeeded(f"user:{username}")
    token, view = await asyncio.to_thread(auth.sessions.open, user.id, now, ip)
    await asyncio.to_thread(auth.audit.write, now, user.username, user.role, "login", user.username, ip, allowed=True)
    response = web.json_response(_session_json(view), dumps=lambda v: json.dumps(v, ensure_ascii=False))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=auth.secure_cookie,
        path="/",
        max_age=int(auth.sessions.lifetime.total_seconds()),
    )
    return response


async def logout(request: web.Request) -> web.Response:
    auth = request.app[AUTH_KEY]
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        await asyncio.to_thread(auth.sessions.close, token)
    response = web.json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def _session_json(view: SessionView) -> dict[str, Any]:
    return {
        "user": {
            "username": view.user.username,
            "name": view.user.display_name,
            "role": view.user.role,
            "agent_id": view.user.agent_id,
        },
        "csrf_token": view.csrf_token,
        "expires_at": view.expires_at.isoformat(),
    }


@requires("agent", "supervisor", "admin", "reviewer", "auditor")
async def whoami(request: web.Request) -> web.Response:
    view = current(request)
    assert view is not None
    return web.json_response(_session_json(view), dumps=lambda v: json.dumps(v, ensure_ascii=False))


def add_auth_routes(app: web.Application) -> None:
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/session", whoami)
