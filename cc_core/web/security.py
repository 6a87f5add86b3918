"""Logins, sessions, roles and CSRF for the web API (P2; issue 5 item 5, issue 6 item 1).

* ``POST /api/login`` with ``{"username", "password"}`` (``Content-Type: application/json``
  only: a form or ``text/plain`` post from another site is refused with 415, so no login CSRF)
  opens a session: an HttpOnly, SameSite=Strict cookie, and a CSRF token in the answer.
* Logins cannot slow the call path (issue 11 item 1; P1): an attempt is counted by
  :class:`LoginLimiter` *before* its password is hashed, synchronously on the event loop, so
  parallel attempts cannot all pass the check; the argon2 hash (64 MiB, t=3) runs in its own small
  executor (:attr:`WebAuth.hasher`), never in the default one the IVR and the database use; and at
  most :attr:`WebAuth.max_concurrent` logins are in flight (503 with ``Retry-After`` beyond, at
  once, without hashing).
* The limit (issue 11 item 8): per client address a hard cap of failed attempts per window (429
  with ``Retry-After``); per user name no lock-out, an increasing delay between attempts instead
  (1, 2, 4 … s, capped), which an address the name logged in from lately skips, so an attacker
  cannot lock a real user out. The client address is the peer's, or, only when the peer is one of
  ``[controller] trusted_proxies``, the right-most address of ``X-Forwarded-For`` that is not a
  trusted proxy.
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
import ipaddress
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from cc_core.auth.passwords import hashing_executor
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


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """A counted attempt, handed back to :meth:`LoginLimiter.finish` when its check is done."""

    address: str
    username: str
    at: float


@dataclass
class _NameState:
    failures: int = 0  # attempts not followed by a success (in flight ones included)
    last_at: float = 0.0


@dataclass
class LoginLimiter:
    """Who may try a password now (issue 11 items 1 and 8b). Every method runs on the event loop
    without awaiting, so :meth:`begin` checks and counts in one step: N parallel attempts get at
    most the limit's number of password checks.

    * Per address: at most ``max_failures`` attempts that failed or are still being checked per
      ``window_s`` (a hard limit: the address is the attacker's own); a success is not counted.
    * Per user name: no lock-out, which anyone could use to keep a real user out. After
      ``backoff_after`` failures in a row, each further attempt must come at least 1, 2, 4 … s
      (at most ``backoff_max_s``) after the name's previous one; the count is forgotten
      ``window_s`` after the last attempt, and reset by a success. An address the name logged in
      from in the last ``known_s`` seconds skips this delay (the address limit still holds).
    """

    max_failures: int = 5
    window_s: float = 300.0
    backoff_after: int = 3
    backoff_max_s: float = 30.0
    known_s: float = 12 * 3600.0
    clock: Callable[[], float] = time.monotonic
    _attempts: dict[str, deque[float]] = field(default_factory=dict)
    _names: dict[str, _NameState] = field(default_factory=dict)
    _known: dict[tuple[str, str], float] = field(default_factory=dict)
    _prune_at: int = 30_000

    def backoff_s(self, failures: int) -> float:
        """The delay a user name's ``failures`` failures in a row impose before the next try."""
        if failures < self.backoff_after:
            return 0.0
        return float(min(self.backoff_max_s, 2.0 ** (failures - self.backoff_after)))

    def begin(self, address: str, username: str) -> tuple[LoginAttempt | None, float]:
        """Count an attempt now, before its password is checked: ``(attempt, 0)``; or, refused,
        ``(None, seconds until another try may pass)``."""
        now = self.clock()
        times = self._attempts.get(address)
        if times is not None:
            while times and now - times[0] > self.window_s:
                times.popleft()
        wait = 0.0
        if times is not None and len(times) >= self.max_failures:
            wait = self.window_s - (now - times[0])
        state = self._names.get(username)
        if state is not None and now - state.last_at > self.window_s:
            state.failures = 0
        known = self._known.get((username, address))
        if state is not None and not (known is not None and now - known <= self.known_s):
            wait = max(wait, state.last_at + self.backoff_s(state.failures) - now)
        if wait > 0:
            return None, wait
        self._attempts.setdefault(address, deque()).append(now)
        if state is None:
            state = self._names[username] = _NameState()
        state.failures += 1
        state.last_at = now
        self._prune(now)
        return LoginAttempt(address, username, now), 0.0

    def finish(self, attempt: LoginAttempt, *, ok: bool) -> None:
        """The attempt's password was right (``ok``): it no longer counts for its address, the
        name's failures are forgotten and the address is known for the name. Wrong: it stays."""
        if not ok:
            return
        times = self._attempts.get(attempt.address)
        if times is not None:
            try:
                times.remove(attempt.at)
            except ValueError:
                pass
        self._names.pop(attempt.username, None)
        self._known[(attempt.username, attempt.address)] = self.clock()

    def _prune(self, now: float) -> None:
        # A flood of made-up names or addresses must not fill memory. A map is scanned when it
        # has doubled since its last scan (at least 10,000 entries), so the cost per attempt
        # stays constant however many entries are still live.
        size = len(self._attempts) + len(self._names) + len(self._known)
        if size <= self._prune_at:
            return
        for key in [k for k, v in self._attempts.items() if not v or now - v[-1] > self.window_s]:
            del self._attempts[key]
        for key in [k for k, v in self._names.items() if now - v.last_at > self.window_s]:
            del self._names[key]
        for pair in [k for k, v in self._known.items() if now - v > self.known_s]:
            del self._known[pair]
        self._prune_at = max(30_000, 2 * (len(self._attempts) + len(self._names) + len(self._known)))


def parse_networks(items: Iterable[str]) -> tuple[IpNetwork, ...]:
    """``[controller] trusted_proxies`` as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _login_executor() -> Executor:
    return hashing_executor(1)


@dataclass
class WebAuth:
    """What the web server needs to know who is asking.

    ``hasher`` runs the password checks (argon2: 64 MiB and ~0.1 s of CPU each) apart from the
    default executor, which the IVR's look-ups and the database use; ``max_concurrent`` logins
    at most are in flight (checked or waiting for ``hasher``), more get 503 at once.
    ``trusted_proxies``: peers whose ``X-Forwarded-For`` is believed (see :func:`client_ip`).
    """

    users: UserStore
    sessions: SessionStore
    audit: AuditLog
    secure_cookie: bool = False
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    hasher: Executor = field(default_factory=_login_executor)
    max_concurrent: int = 4
    trusted_proxies: tuple[IpNetwork, ...] = ()
    logins_in_flight: int = 0


AUTH_KEY = web.AppKey("web_auth", WebAuth)
USER_KEY = web.RequestKey("hotline_user", SessionView)  # absent without a live session
EXPIRED_KEY = web.RequestKey("hotline_session_expired", bool)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def forwarded_client(peer: str, forwarded_for: Iterable[str], trusted: tuple[IpNetwork, ...]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the right-most
    ``X-Forwarded-For`` entry that is not itself a trusted proxy (entries left of it were written
    by the client and prove nothing). A garbled entry where the answer would be ends the walk at
    the last trusted hop, so a bad header cannot pick a fresh key for every request."""
    peer_ip = _address(peer)
    if peer_ip is None or not any(peer_ip in net for net in trusted):
        return peer or "-"
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        ip = _address(hop)
        if ip is None:
            return client
        client = str(ip)
        if not any(ip in net for net in trusted):
            return client
    return client


def client_ip(request: web.Request) -> str:
    """The address the limiter and the audit log know the client by (issue 11 item 8a)."""
    auth = request.app.get(AUTH_KEY)
    peer = request.remote or "-"
    if auth is None or not auth.trusted_proxies:
        return peer
    return forwarded_client(peer, request.headers.getall("X-Forwarded-For", []), auth.trusted_proxies)


def current(request: web.Request) -> SessionView | None:
    return request.get(USER_KEY)


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    auth = request.app[AUTH_KEY]
    token = request.cookies.get(SESSION_COOKIE, "")
    # A login does not need the current session: a flood of logins with made-up cookies must not
    # cost a database look-up each on the default executor.
    if token and request.path != "/api/login":
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
    # read(n) returns what has arrived so far, not n bytes: read on to the end (or past the limit).
    raw = b""
    while len(raw) <= limit and (chunk := await request.content.read(limit + 1 - len(raw))):
        raw += chunk
    if len(raw) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(raw))
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: [[[[…]]]] nested deep
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


def _retry_later(status: int, message: str, wait_s: float) -> web.Response:
    response = json_error(status, message)
    response.headers["Retry-After"] = str(max(1, int(wait_s + 0.999)))
    return response


async def login(request: web.Request) -> web.Response:
    """Log in (see the module's notes: JSON only, counted before the hash, bounded)."""
    auth = request.app[AUTH_KEY]
    if request.content_type != "application/json":
        # A cross-site form or fetch can post text/plain without a preflight: a login CSRF.
        return json_error(415, "登录请求须为 application/json (Content-Type must be application/json)")
    if auth.logins_in_flight >= auth.max_concurrent:  # before even reading the body: a flood's cost
        return _retry_later(503, "登录繁忙，请稍后再试 (too many logins at once; try again shortly)", 1)
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
    # From here to the hash nothing awaits: the cap and the limit are checked and taken at once.
    if auth.logins_in_flight >= auth.max_concurrent:
        return _retry_later(503, "登录繁忙，请稍后再试 (too many logins at once; try again shortly)", 1)
    attempt, wait = auth.limiter.begin(ip, username)
    if attempt is None:
        return _retry_later(429, "登录失败次数过多，请稍后再试 (too many failed logins)", wait)
    now = auth.clock()
    auth.logins_in_flight += 1
    try:
        user = await asyncio.get_running_loop().run_in_executor(
            auth.hasher, auth.users.authenticate, username, password, now
        )
    finally:
        auth.logins_in_flight -= 1
    auth.limiter.finish(attempt, ok=user is not None)
    if user is None:
        await asyncio.to_thread(auth.audit.write, now, username or "-", "-", "login", username, ip, allowed=False)
        return json_error(401, "用户名或密码错误 (wrong user name or password)")
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
