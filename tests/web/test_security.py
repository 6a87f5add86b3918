"""Logins, the login limit, the health report and live sockets under attack (issue 11 items 1
and 8; P1, P2): a real aiohttp server on loopback, a real SQLite database, requests over HTTP.

* N parallel wrong logins from one address cost at most the limit's number of password checks
  (the attempt is counted before the hash), and a login flood leaves the default executor free
  (the hashes have threads of their own; excess logins get 503 at once, unhashed);
* per user name an increasing delay, not a lock-out: a real user is not kept out by someone
  else's wrong passwords (and is never slowed on an address the name logged in from lately);
* ``X-Forwarded-For`` counts only from a trusted proxy, right-most untrusted entry;
* a login must be ``application/json`` (login CSRF);
* ``/health`` and ``/status`` tell anyone only up or down, the details to a supervisor or admin;
  the whole report is on the control site, behind the control token;
* at most ``live_sockets_per_session`` live sockets per session; one more is closed with 4429.

Client addresses are real: requests leave from 127.0.0.2, 127.0.0.3 … (all of 127/8 is local).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from argon2 import PasswordHasher, Type

import cc_core.auth.passwords as passwords
import cc_core.auth.store as auth_store
from cc_core.auth.store import AuditLog, SessionStore, UserStore
from cc_core.db.session import make_engine, make_sessionmaker, upgrade
from cc_core.web.control import make_control_site
from cc_core.web.health import make_app
from cc_core.web.live import LIVE_KEY, TOO_MANY_CLOSE_CODE, LiveSockets, add_live_routes
from cc_core.web.security import (
    AUTH_KEY,
    LoginLimiter,
    WebAuth,
    add_auth_routes,
    forwarded_client,
    parse_networks,
    session_middleware,
)
from cc_core.web.workstation import VIEWS_KEY
from tests.harness.loop import LoopThread
from tests.harness.ports import free_port
from tests.harness.web import WebClient

PASSWORD = "Hotline-test-2026"
ROLES = ("agent", "supervisor", "admin", "reviewer", "auditor")
NOW = datetime.now(UTC)
REPORT = {"status": "ok", "version": "0.test", "ami": {"connected": True}, "fastagi": {"active": 0}}


class Clock:
    """The limiter's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeViews:
    """What the live socket reads for a supervisor: the wallboard and the key of its state."""

    acd = None

    def wallboard_key(self) -> tuple[Any, ...]:
        return ("same",)

    def wallboard(self) -> dict[str, Any]:
        return {"queues": []}


@dataclass
class Server:
    port: int
    auth: WebAuth
    app: web.Application
    clock: Clock
    report: dict[str, Any] = field(default_factory=lambda: dict(REPORT))

    def client(self) -> WebClient:
        return WebClient(self.port)


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def make_server(tmp_path: Path, loop: LoopThread) -> Iterator[Callable[..., Server]]:
    """A web server with the product's login, health and live routes; ``limiter`` and the other
    keywords go to :class:`WebAuth`."""
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    users = UserStore(sessions)
    for role in ROLES:
        users.add(f"{role}1", role, PASSWORD, NOW)
    runners: list[web.AppRunner] = []

    def make(**auth_kw: Any) -> Server:
        clock = Clock()
        auth_kw.setdefault("limiter", LoginLimiter(max_failures=5, window_s=300, clock=clock))
        auth = WebAuth(
            users,
            SessionStore(sessions, idle=timedelta(minutes=30), lifetime=timedelta(hours=12)),
            AuditLog(sessions),
            **auth_kw,
        )
        holder: dict[str, Any] = {}
        app = make_app(lambda: dict(holder["server"].report), middlewares=[session_middleware])
        app[AUTH_KEY] = auth
        app[VIEWS_KEY] = cast(Any, FakeViews())
        add_auth_routes(app)
        add_live_routes(app, per_session=2)
        port = free_port()
        runner = web.AppRunner(app, access_log=None)
        runners.append(runner)

        async def start() -> None:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()

        loop.run(start())
        server = Server(port, auth, app, clock)
        holder["server"] = server
        return server

    yield make
    for runner in runners:
        loop.run(runner.cleanup())
    engine.dispose()


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password check the store makes, by the name of the thread it ran on."""
    calls: list[str] = []
    real = auth_store.verify_password

    def counting(stored_hash: str, password: str) -> bool:
        calls.append(threading.current_thread().name)
        return real(stored_hash, password)

    monkeypatch.setattr(auth_store, "verify_password", counting)
    return calls


def login_from(
    port: int,
    username: str,
    password: str,
    *,
    source: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
    body: bytes | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """POST /api/login from the client address ``source``: (status, headers, answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=(source, 0))
    data = body if body is not None else json.dumps({"username": username, "password": password}).encode()
    try:
        conn.request("POST", "/api/login", body=data, headers={"Content-Type": content_type, **(headers or {})})
        response = conn.getresponse()
        payload = response.read()
    finally:
        conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(payload or b"{}")


async def parallel_logins(port: int, names: list[str]) -> list[tuple[int, str | None, float]]:
    """A wrong login for each of ``names``, all at once from 127.0.0.1: their (status,
    Retry-After, time.monotonic() of the answer)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as session:

        async def one(name: str) -> tuple[int, str | None, float]:
            body = {"username": name, "password": "wrong-password"}
            async with session.post(f"http://127.0.0.1:{port}/api/login", json=body) as response:
                await response.read()
                return response.status, response.headers.get("Retry-After"), time.monotonic()

        return await asyncio.gather(*(one(name) for name in names))


async def eventually(predicate: Callable[[], bool], timeout: float) -> bool:
    """Wait until ``predicate()`` holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)


# ---- item 1: counted before the hash, hashes apart, logins capped ------------------------------------


def test_parallel_wrong_logins_cost_at_most_the_limits_password_checks(
    make_server: Callable[..., Server], loop: LoopThread, hash_calls: list[str]
) -> None:
    """50 wrong logins at once from one address, each for another name: exactly 5 (the address
    limit) are checked, the other 45 get 429 with Retry-After and no hash; 50 at once for one
    name: 3 (the name's free tries). (Old code: the failure was counted after the hash, so all
    those in flight passed the check and were hashed.)"""
    server = make_server(max_concurrent=64)
    results = loop.run(parallel_logins(server.port, [f"user{i}" for i in range(50)]))
    assert sorted(status for status, _, _ in results) == [401] * 5 + [429] * 45
    assert len(hash_calls) == 5
    assert [retry for status, retry, _ in results if status == 429] == ["300"] * 45
    assert len([e for e in server.auth.audit.read(action="login") if not e.allowed]) == 5
    hash_calls.clear()
    server = make_server(max_concurrent=64)
    results = loop.run(parallel_logins(server.port, ["auditor1"] * 50))
    assert sorted(status for status, _, _ in results) == [401] * 3 + [429] * 47
    assert len(hash_calls) == 3


def test_a_login_flood_leaves_the_default_executor_free(
    make_server: Callable[..., Server], loop: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While password checks are stuck, work on the default executor (the IVR's look-ups, the
    database) still runs at once; logins past the cap get 503 at once, unhashed; every hash ran
    on a login thread. (Old code: the hashes filled the default executor and the probe waited.)"""
    entered = threading.Event()
    release = threading.Event()
    threads: list[str] = []
    nice: list[int] = []

    def stuck(stored_hash: str, password: str) -> bool:
        threads.append(threading.current_thread().name)
        nice.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        entered.set()
        release.wait(20)
        return False

    monkeypatch.setattr(auth_store, "verify_password", stuck)
    limiter = LoginLimiter(max_failures=1000, backoff_after=1000)
    server = make_server(limiter=limiter, max_concurrent=8)

    async def flood() -> dict[str, Any]:
        loop_ = asyncio.get_running_loop()
        logins = asyncio.ensure_future(parallel_logins(server.port, ["auditor1"] * 20))
        assert await eventually(entered.is_set, 10)
        # The default executor answers while the login threads are busy.
        started = time.monotonic()
        probe = await asyncio.wait_for(loop_.run_in_executor(None, lambda: threading.current_thread().name), 5)
        probe_s = time.monotonic() - started
        await eventually(lambda: server.auth.logins_in_flight >= 8, 10)
        in_flight = server.auth.logins_in_flight
        released_at = time.monotonic()
        release.set()
        results = await asyncio.wait_for(logins, 30)
        return {"probe": probe, "probe_s": probe_s, "in_flight": in_flight, "results": results, "at": released_at}

    try:
        outcome = loop.run(flood(), timeout=60)
    finally:
        release.set()
    assert not outcome["probe"].startswith("hotline-login")
    assert outcome["probe_s"] < 2.0
    assert outcome["in_flight"] == 8
    statuses = sorted(status for status, _, _ in outcome["results"])
    assert statuses == [401] * 8 + [503] * 12
    # The 12 logins over the cap were answered at once, before any hash finished.
    assert [retry for status, retry, _ in outcome["results"] if status == 503] == ["1"] * 12
    assert all(at < outcome["at"] for status, _, at in outcome["results"] if status == 503)
    assert len(threads) == 8 and all(name.startswith("hotline-login") for name in threads)
    assert nice == [19] * 8  # the hashes only get CPU time the call path leaves


# ---- item 8b: per user name a delay, not a lock-out ---------------------------------------------------


def test_wrong_passwords_of_others_delay_but_do_not_lock_out_a_user(
    make_server: Callable[..., Server], hash_calls: list[str]
) -> None:
    """Six wrong passwords for auditor1 from six addresses: after the third, each next try must
    wait 1, 2, 4, 8 s (429 with that Retry-After before, unhashed); once the delay has passed the
    real user, from an address of their own, logs in. (Old code: the name was locked for the
    whole window, 300 s, whatever the address.)"""
    server = make_server()
    for i in range(3):
        assert login_from(server.port, "auditor1", "wrong-password", source=f"127.0.0.{10 + i}")[0] == 401
    for delay in (1, 2, 4):
        status, headers, answer = login_from(server.port, "auditor1", "wrong-password", source="127.0.0.20")
        assert (status, headers["retry-after"]) == (429, str(delay))
        assert "too many" in answer["error"]
        server.clock.now += delay + 0.01
        assert login_from(server.port, "auditor1", "wrong-password", source=f"127.0.0.{30 + delay}")[0] == 401
    assert len(hash_calls) == 6
    # Six failures in a row: the next try waits 8 s, not the 300 s of a lock-out.
    status, headers, _ = login_from(server.port, "auditor1", PASSWORD, source="127.0.0.50")
    assert (status, headers["retry-after"]) == (429, "8")
    server.clock.now += 8.01
    status, _, answer = login_from(server.port, "auditor1", PASSWORD, source="127.0.0.50")
    assert status == 200 and answer["user"]["username"] == "auditor1"
    # The success ends the delay: the next wrong password is answered 401 at once.
    assert login_from(server.port, "auditor1", "wrong-password", source="127.0.0.51")[0] == 401


def test_an_address_the_user_logged_in_from_is_not_delayed(make_server: Callable[..., Server]) -> None:
    """The real user's own PC skips the user-name delay others cause; a new address does not."""
    server = make_server()
    assert login_from(server.port, "agent1", PASSWORD, source="127.0.0.60")[0] == 200
    for i in range(3):
        assert login_from(server.port, "agent1", "wrong-password", source=f"127.0.0.{70 + i}")[0] == 401
    assert login_from(server.port, "agent1", PASSWORD, source="127.0.0.80")[0] == 429
    assert login_from(server.port, "agent1", PASSWORD, source="127.0.0.60")[0] == 200


def test_the_address_limit_is_hard_and_a_success_is_not_counted(make_server: Callable[..., Server]) -> None:
    server = make_server()
    for _ in range(3):  # successes do not use up the address's attempts
        assert login_from(server.port, "admin1", PASSWORD, source="127.0.0.90")[0] == 200
    for name in ("a1", "a2", "a3", "a4", "a5"):  # different names: no name delay, the address limit
        assert login_from(server.port, name, "wrong-password", source="127.0.0.90")[0] == 401
    status, headers, _ = login_from(server.port, "admin1", PASSWORD, source="127.0.0.90")
    assert (status, headers["retry-after"]) == (429, "300")
    server.clock.now += 301
    assert login_from(server.port, "admin1", PASSWORD, source="127.0.0.90")[0] == 200


# ---- item 8a: X-Forwarded-For only from a trusted proxy ----------------------------------------------


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(make_server: Callable[..., Server]) -> None:
    """Behind the documented reverse proxy every client has its own limit and its own address in
    the audit log; a spoofed left-most entry changes nothing. (Old code: everyone behind the
    proxy shared the proxy's address.)"""
    server = make_server(trusted_proxies=parse_networks(["127.0.0.1"]))
    client_a = {"X-Forwarded-For": "198.51.100.7"}
    for name in ("n1", "n2", "n3", "n4", "n5"):
        assert login_from(server.port, name, "wrong-password", headers=client_a)[0] == 401
    assert login_from(server.port, "n6", "wrong-password", headers=client_a)[0] == 429
    spoofed = {"X-Forwarded-For": "203.0.113.99, 198.51.100.7"}  # the client wrote the first entry
    assert login_from(server.port, "n7", "wrong-password", headers=spoofed)[0] == 429
    assert login_from(server.port, "n8", "wrong-password", headers={"X-Forwarded-For": "198.51.100.8"})[0] == 401
    ips = sorted({e.ip for e in server.auth.audit.read(action="login")})
    assert ips == ["198.51.100.7", "198.51.100.8"]


def test_forwarded_for_is_ignored_without_trusted_proxies(make_server: Callable[..., Server]) -> None:
    server = make_server()
    for i in range(5):
        headers = {"X-Forwarded-For": f"198.51.100.{i}"}
        assert login_from(server.port, f"m{i}", "wrong-password", headers=headers)[0] == 401
    assert login_from(server.port, "m9", "wrong-password", headers={"X-Forwarded-For": "198.51.100.9"})[0] == 429
    assert {e.ip for e in server.auth.audit.read(action="login")} == {"127.0.0.1"}


def test_the_client_is_the_right_most_untrusted_hop() -> None:
    trusted = parse_networks(["127.0.0.1", "10.0.0.0/8"])
    assert forwarded_client("127.0.0.1", ["203.0.113.5"], trusted) == "203.0.113.5"
    assert forwarded_client("127.0.0.1", ["1.1.1.1, 203.0.113.5, 10.1.2.3"], trusted) == "203.0.113.5"
    assert forwarded_client("127.0.0.1", ["1.1.1.1", "203.0.113.5"], trusted) == "203.0.113.5"
    assert forwarded_client("192.0.2.1", ["203.0.113.5"], trusted) == "192.0.2.1"  # not a proxy of ours
    assert forwarded_client("127.0.0.1", [], trusted) == "127.0.0.1"
    assert forwarded_client("127.0.0.1", ["10.0.0.1, 10.0.0.2"], trusted) == "10.0.0.1"  # all trusted
    assert forwarded_client("127.0.0.1", ["203.0.113.5, garbage"], trusted) == "127.0.0.1"
    assert forwarded_client("127.0.0.1", ["2001:db8::1"], trusted) == "2001:db8::1"


# ---- item 8f: a login is JSON --------------------------------------------------------------------------


def test_a_login_must_be_json(make_server: Callable[..., Server], hash_calls: list[str]) -> None:
    """Another site can post text/plain or a form without a preflight (login CSRF): 415, no
    hash. (Old code: the body was parsed as JSON whatever its type, and the user logged in.)"""
    server = make_server()
    body = json.dumps({"username": "admin1", "password": PASSWORD}).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        status, _, answer = login_from(server.port, "", "", body=body, content_type=content_type)
        assert status == 415, content_type
        assert answer["error"] == "登录请求须为 application/json (Content-Type must be application/json)"
    assert hash_calls == []
    status, _, answer = login_from(server.port, "", "", body=body, content_type="application/json; charset=utf-8")
    assert status == 200 and answer["user"]["role"] == "admin"


# ---- item 8d: health without a login is up or down -------------------------------------------------------


def test_health_tells_anyone_only_up_or_down(make_server: Callable[..., Server]) -> None:
    server = make_server()
    anonymous = server.client()
    assert anonymous.json("GET", "/health") == (200, {"ok": True, "status": "ok"})
    status, page = anonymous.request("GET", "/status")
    assert status == 200 and "正常" in page.decode() and "fastagi" not in page.decode()
    for role in ("agent", "reviewer", "auditor"):
        client = server.client()
        assert client.login(f"{role}1", PASSWORD) == 200
        assert client.json("GET", "/health") == (200, {"ok": True, "status": "ok"}), role
    for role in ("supervisor", "admin"):
        client = server.client()
        assert client.login(f"{role}1", PASSWORD) == 200
        assert client.json("GET", "/health") == (200, REPORT), role
        status, page = client.request("GET", "/status")
        assert status == 200 and "fastagi" in page.decode()
    server.report = {**REPORT, "status": "degraded"}
    assert anonymous.json("GET", "/health") == (503, {"ok": False, "status": "degraded"})


def test_the_whole_report_is_on_the_control_site_behind_the_token(loop: LoopThread) -> None:
    token = "t0ken-for-the-test"
    site = make_control_site(cast(Any, None), cast(Any, None), token, lambda: dict(REPORT))
    port = free_port()
    runner = web.AppRunner(site, access_log=None)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    loop.run(start())
    try:
        client = WebClient(port)
        assert client.json("GET", "/api/control/health", headers={"Authorization": f"Bearer {token}"}) == (
            200,
            REPORT,
        )
        status, answer = client.json("GET", "/api/control/health", headers={"Authorization": "Bearer wrong"})
        assert status == 401 and answer == {"error": "未授权 (missing or wrong control token)"}
        assert client.request("GET", "/health")[0] == 404
    finally:
        loop.run(runner.cleanup())


# ---- item 8e: live sockets per session -----------------------------------------------------------------


def test_live_sockets_per_session_are_capped(make_server: Callable[..., Server], loop: LoopThread) -> None:
    """Two sockets (this server's cap) get live data; a third is told why and closed with 4429;
    once one closes, another may open. (Old code: any number.)"""
    server = make_server()
    client = server.client()
    assert client.login("supervisor1", PASSWORD) == 200
    url = f"http://127.0.0.1:{server.port}/api/ws"

    async def scenario() -> dict[str, Any]:
        async with aiohttp.ClientSession(headers={"Cookie": client.cookie}) as session:
            first = await session.ws_connect(url)
            second = await session.ws_connect(url)
            firsts = [json.loads((await ws.receive(timeout=5)).data)["type"] for ws in (first, second)]
            third = await session.ws_connect(url)
            refused = json.loads((await third.receive(timeout=5)).data)
            closing = await third.receive(timeout=5)
            await first.close()
            sockets = server.app[LIVE_KEY]
            await eventually(lambda: sum(sockets.open.values()) == 1, 5)
            again = await session.ws_connect(url)
            again_type = json.loads((await again.receive(timeout=5)).data)["type"]
            open_now = dict(sockets.open)
            for ws in (second, again):
                await ws.close()
            return {
                "firsts": firsts,
                "refused": refused,
                "close": (closing.type, third.close_code),
                "again": again_type,
                "open": open_now,
            }

    outcome = loop.run(scenario())
    assert outcome["firsts"] == ["wallboard", "wallboard"]
    assert outcome["refused"] == {
        "type": "refused",
        "error": "此登录已打开 2 个实时连接 (this session already has 2 live sockets open)",
    }
    assert outcome["close"] == (aiohttp.WSMsgType.CLOSE, TOO_MANY_CLOSE_CODE)
    assert outcome["again"] == "wallboard"
    assert list(outcome["open"].values()) == [2]


def test_live_socket_counts_are_given_back() -> None:
    sockets = LiveSockets(2)
    assert [sockets.take("a"), sockets.take("a"), sockets.take("a"), sockets.take("b")] == [True, True, False, True]
    sockets.give_back("a")
    sockets.give_back("a")
    sockets.give_back("b")
    assert sockets.open == {}


# ---- item 1: one core per password check ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "time_cost", "memory_cost", "parallelism"),
    [(Type.ID, 3, 65536, 4), (Type.ID, 1, 8192, 2), (Type.I, 2, 4096, 1), (Type.D, 1, 4096, 3)],
)
def test_the_one_thread_check_agrees_with_the_library(
    kind: Type, time_cost: int, memory_cost: int, parallelism: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check computes the hash with threads = 1 (one core, not one per lane) and answers as
    argon2-cffi does, for every type and lane count."""
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=kind)
    stored = hasher.hash(PASSWORD)
    threads: list[int] = []
    real_core = passwords.core

    def spying(ctx: Any, type_: int) -> int:
        threads.append(ctx.threads)
        return int(real_core(ctx, type_))

    monkeypatch.setattr(passwords, "core", spying)
    assert passwords.verify_password(stored, PASSWORD) is True
    assert passwords.verify_password(stored, PASSWORD + "x") is False
    assert passwords.verify_password(stored[:-2] + ("A" if stored[-2] != "A" else "B") + stored[-1], PASSWORD) is False
    assert threads == [1, 1, 1]
    assert passwords.verify_password("not a hash", PASSWORD) is False
    assert hasher.verify(stored, PASSWORD) is True


def test_the_limiter_forgets_old_entries_without_scanning_at_every_attempt() -> None:
    """Old entries go once the maps pass 30,000 entries (addresses, names, known pairs), not
    at every attempt; a scan that frees little doubles the next threshold."""
    clock = Clock()
    limiter = LoginLimiter(max_failures=5, window_s=300, clock=clock)
    for i in range(12_000):  # 24,000 entries: below the threshold, nothing scanned
        assert limiter.begin(f"10.0.{i // 250}.{i % 250}", f"name{i}")[0] is not None
    clock.now += 301
    for i in range(3_001):  # the 30,001st entry starts a scan: the 24,000 old ones go
        assert limiter.begin(f"10.1.{i // 250}.{i % 250}", f"new{i}")[0] is not None
    assert (len(limiter._attempts), len(limiter._names)) == (3_001, 3_001)
    assert limiter._prune_at == 30_000
    for i in range(12_000):  # all live: the scan frees nothing and the threshold doubles
        assert limiter.begin(f"10.2.{i // 250}.{i % 250}", f"more{i}")[0] is not None
    assert len(limiter._attempts) + len(limiter._names) == 30_002
    assert limiter._prune_at == 60_004


def test_no_database_connection_is_held_while_a_password_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A login reads the account, gives its connection back, then checks the password; a right
    password with old parameters is re-hashed afterwards. (Old code: the whole check ran inside
    the transaction, a connection held per login for the ~0.1 s hash.)"""
    url = f"sqlite:///{tmp_path / 'users.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        users = UserStore(make_sessionmaker(engine))
        users.add("wang.li", "agent", PASSWORD, NOW)
        held: list[int] = []
        real = auth_store.verify_password

        def checking(stored_hash: str, password: str) -> bool:
            held.append(engine.pool.checkedout())
            return real(stored_hash, password)

        monkeypatch.setattr(auth_store, "verify_password", checking)
        assert users.authenticate("wang.li", "wrong-password", NOW) is None
        assert users.authenticate("nobody", PASSWORD, NOW) is None
        view = users.authenticate("wang.li", PASSWORD, NOW)
        assert view is not None and view.username == "wang.li"
        assert held == [0, 0, 0]
        # An account hashed with weaker parameters gets the current ones at its next login.
        weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE users SET password_hash = ? WHERE username = 'wang.li'", (weak,))
        assert users.authenticate("wang.li", PASSWORD, NOW) is not None
        with engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT password_hash FROM users WHERE username = 'wang.li'").scalar_one()
        assert stored != weak and stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    finally:
        engine.dispose()
