"""The web API's security and the recordings replay (P2, T5; issue 5 item 5, issue 6 item 1):
a real aiohttp server on loopback, a real SQLite database, real audio files; requests over HTTP.

* every /api endpoint: no session → 401, a role it does not allow → 403 (and the refusal, only
  the refusal, in the audit log for the recording endpoints);
* login: wrong password, rate limit, CSRF required on changes, an expired session says so;
* Range requests: start, middle, end, open-ended, bad ranges → 416; the listen is audited once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from pydub.generators import Sine
from sqlalchemy import text, update
from sqlalchemy.orm import Session, sessionmaker

from cc_core.archive.config import ArchiveConfig
from cc_core.auth.store import AuditLog, SessionStore, UserStore
from cc_core.calls.recordings import RecordingStore
from cc_core.calls.store import CallStore
from cc_core.db.models import Recording
from cc_core.db.session import make_engine, make_sessionmaker, upgrade
from cc_core.switch.instance import Instance
from cc_core.web.admin import FlowAdmin
from cc_core.web.api import PUBLIC_API, add_api_routes
from cc_core.web.health import make_app
from cc_core.web.recordings import ReplayContext
from cc_core.web.security import AUTH_KEY, LoginLimiter, WebAuth, session_middleware
from tests.harness.loop import LoopThread
from tests.harness.ports import free_port
from tests.harness.web import WebClient

PASSWORD = "Hotline-test-2026"
ROLES = ("agent", "supervisor", "admin", "reviewer", "auditor")
UID = "1764560000.7"
NOW = datetime.now(UTC)


@dataclass
class Api:
    port: int
    auth: WebAuth
    app: web.Application
    recording_id: int
    wav: Path
    sessions: sessionmaker[Session]
    chroot: Path
    edits: list[tuple[str, str, dict[str, Any]]]

    def client(self) -> Client:
        return Client(self.port)


class Client(WebClient):
    def login(self, username: str, password: str = PASSWORD) -> int:
        return super().login(username, password)


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def api(tmp_path: Path, loop: LoopThread) -> Iterator[Api]:
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    users = UserStore(sessions)
    for role in ROLES:
        users.add(f"{role}1", role, PASSWORD, NOW)
    # A recording as the switch leaves it: a WAV under the chroot's spool, closed, not archived yet.
    chroot = tmp_path / "root"
    inside = f"/srv/hotline/cc/spool/monitor/2026-12-01/{UID}.wav"
    wav = chroot / inside.lstrip("/")
    wav.parent.mkdir(parents=True)
    Sine(440).to_audio_segment(duration=4000).set_frame_rate(8000).set_channels(1).set_sample_width(2).export(
        wav, format="wav"
    )
    calls = CallStore(sessions)
    calls.call_arrived(UID, UID, "13800138000", "12333", "PJSIP/carrier-1", NOW - timedelta(minutes=5))
    calls.queue_entered(UID, "general", None, 0, NOW - timedelta(minutes=4))
    calls.agent_answered(UID, "1001", NOW - timedelta(minutes=4))
    recordings = RecordingStore(sessions)
    recording_id = recordings.started(UID, "1001", "agent", inside, NOW - timedelta(minutes=4))
    recordings.finished(inside, NOW - timedelta(minutes=1), wav)
    auth = WebAuth(
        users,
        SessionStore(sessions, idle=timedelta(minutes=30), lifetime=timedelta(hours=12)),
        AuditLog(sessions),
        limiter=LoginLimiter(max_failures=3, window_s=60),
    )
    app = make_app(lambda: {"status": "ok"}, middlewares=[session_middleware])
    app[AUTH_KEY] = auth
    archive = ArchiveConfig(store=tmp_path / "store", backup=None, host_path=Instance(chroot, "cc").host_path)
    # The product's whole route set. The workstation and admin parts are never reached by these
    # tests (they check refusals, given before a handler runs); their behaviour is tested
    # against the real controller in tests/integration and tests/web/test_browser.py.
    unreached = cast(Any, None)
    edits: list[tuple[str, str, dict[str, Any]]] = []

    async def save_agent(agent_id: str, fields: dict[str, Any], create: bool) -> str | None:
        edits.append(("agent", agent_id, fields))
        return None

    async def save_queue(name: str, fields: dict[str, Any]) -> None:
        edits.append(("queue", name, fields))

    async def nothing(*_args: Any) -> Any:
        return None

    flows_dir = tmp_path / "flows"
    flows_dir.mkdir()
    # The admin part: what reaches the settings file is recorded (the real roster is tested in
    # tests/acd/test_roster.py and tests/integration/test_web_api.py), the flows are unreached.
    admin = FlowAdmin(
        flows_dir,
        registry=unreached,
        reload=nothing,
        current_settings=unreached,
        new_sip_password=nothing,
        save_agent=save_agent,
        remove_agent=nothing,
        save_queue=save_queue,
    )
    add_api_routes(
        app,
        replay=ReplayContext(sessions, archive, chroot / "srv/hotline/cc/spool/monitor"),
        views=unreached,
        flows=admin,
    )
    port = free_port()
    runner = web.AppRunner(app, access_log=None)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    loop.run(start())
    yield Api(port, auth, app, recording_id, wav, sessions, chroot, edits)
    loop.run(runner.cleanup())
    engine.dispose()


def api_routes(app: web.Application) -> list[tuple[str, str, tuple[str, ...]]]:
    """Every /api route behind a login: (method, path with ids filled in, roles allowed)."""
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        roles = getattr(route.handler, "roles", None)
        if not path.startswith("/api/") or route.method == "HEAD":
            continue
        if path in PUBLIC_API:
            continue
        assert roles is not None, f"{route.method} {path} has no role check"
        filled = path.replace("{id}", "1").replace("{name}", "main").replace("{agent}", "1001")
        out.append((route.method, filled.replace("{action}", "pause"), roles))
    return out


def test_every_endpoint_needs_a_session_and_the_right_role(api: Api) -> None:
    routes = api_routes(api.app)
    assert len(routes) >= 8
    anonymous = api.client()
    for method, path, _roles in routes:
        status, answer = anonymous.json(method, path, {"reason": "x"} if method in ("POST", "DELETE") else None)
        assert status == 401, (method, path, status)
        assert answer["expired"] is False
    for role in ROLES:
        client = api.client()
        assert client.login(f"{role}1") == 200
        for method, path, roles in routes:
            if role in roles:
                continue
            status, _ = client.json(method, path, {"reason": "x"} if method in ("POST", "DELETE") else None)
            assert status == 403, (role, method, path, status)


def test_a_refused_listen_writes_only_its_refusal(api: Api) -> None:
    agent = api.client()
    agent.login("agent1")
    status, _ = agent.request("GET", f"/api/recordings/{api.recording_id}/audio")
    assert status == 403
    status, _ = api.client().request("GET", f"/api/recordings/{api.recording_id}/audio")
    assert status == 401
    entries = api.auth.audit.read(action="listen")
    assert [(e.actor, e.allowed) for e in entries] == [("-", False), ("agent1", False)]


def test_changes_need_the_csrf_token_and_holds_are_audited(api: Api) -> None:
    auditor = api.client()
    assert auditor.login("auditor1") == 200
    cookie = auditor.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    hold = f"/api/recordings/{api.recording_id}/hold"
    # A change without the CSRF token is refused even with a valid session cookie.
    status, _ = auditor.json("POST", hold, {"reason": "投诉 2026-118"}, csrf=False)
    assert status == 403
    status, held = auditor.json("POST", hold, {"reason": "投诉 2026-118"})
    assert status == 200 and held["held"] is True and held["by"] == "auditor1"
    status, _ = auditor.json("POST", hold, {})
    assert status == 400  # a hold needs its reason
    status, cleared = auditor.json("DELETE", hold, {"reason": "结案"})
    assert status == 200 and cleared["held"] is False
    actions = [e.action for e in api.auth.audit.read(actor="auditor1") if e.allowed]
    assert actions.count("hold_set") == 1 and actions.count("hold_cleared") == 1


def test_failed_logins_are_rate_limited(api: Api) -> None:
    client = api.client()
    for _ in range(3):
        assert client.login("auditor1", "wrong-password-1") == 401
    assert client.login("auditor1") == 429  # even with the right password, for a while
    assert int(client.headers["retry-after"]) > 0
    refused = [e for e in api.auth.audit.read(action="login") if not e.allowed]
    assert len(refused) == 3


def test_an_expired_session_is_told_apart_from_no_session(api: Api) -> None:
    client = api.client()
    client.login("auditor1")
    with api.auth.sessions._sessions.begin() as session:  # the session's idle time runs out
        session.execute(text("UPDATE web_sessions SET last_seen_at = :t"), {"t": NOW - timedelta(hours=2)})
    status, answer = client.json("GET", "/api/session")
    assert status == 401 and answer["expired"] is True


def test_search_and_replay_with_ranges_are_audited(api: Api) -> None:
    client = api.client()
    client.login("supervisor1")
    status, found = client.json("GET", "/api/recordings?caller=00138&agent=1001&queue=general&from=2026-01-01")
    assert status == 200
    [hit] = found["recordings"]
    assert hit["id"] == api.recording_id and hit["caller_number"] == "13800138000"
    status, none = client.json("GET", "/api/recordings?queue=complaints")
    assert status == 200 and none["recordings"] == []
    status, _ = client.json("GET", "/api/recordings?from=yesterday")
    assert status == 400
    data = api.wav.read_bytes()
    size = len(data)
    path = f"/api/recordings/{api.recording_id}/audio"
    status, body = client.request("GET", path)
    assert status == 200 and body == data and client.headers["content-type"] == "audio/wav"
    for header, start, end in (
        ("bytes=0-99", 0, 99),
        (f"bytes={size // 2}-{size // 2 + 999}", size // 2, size // 2 + 999),
        ("bytes=-500", size - 500, size - 1),
        (f"bytes={size - 10}-", size - 10, size - 1),
    ):
        status, body = client.request("GET", path, headers={"Range": header})
        assert status == 206, header
        assert body == data[start : end + 1]
        assert client.headers["content-range"] == f"bytes {start}-{end}/{size}"
    for bad in (f"bytes={size + 10}-{size + 20}", "bytes=500-100", "bytes=abc"):
        status, _ = client.request("GET", path, headers={"Range": bad})
        assert status == 416, bad
    # Downloading is the auditor's (docs/web-api.md's role table): the supervisor is refused.
    status, _ = client.request("GET", f"/api/recordings/{api.recording_id}/download")
    assert status == 403
    entries = api.auth.audit.read(actor="supervisor1")
    actions = sorted(e.action for e in entries if e.allowed)
    # One listen for the whole session of seeks; the searches.
    assert actions.count("listen") == 1 and actions.count("download") == 0 and actions.count("search") >= 2
    auditor = api.client()
    auditor.login("auditor1")
    status, body = auditor.request("GET", f"/api/recordings/{api.recording_id}/download")
    assert status == 200 and body == data
    assert auditor.headers["content-disposition"].startswith("attachment")
    status, log = auditor.json("GET", f"/api/audit?target={api.recording_id}")
    assert status == 200
    assert {e["action"] for e in log["entries"]} >= {"listen", "download"}
    assert all(e["ip"] == "127.0.0.1" for e in log["entries"])


def test_no_audio_without_an_audit_entry(api: Api, tmp_path: Path) -> None:
    """P2: if the audit log cannot be written (its database gone), the recording is not served."""
    client = api.client()
    client.login("auditor1")
    working = api.auth.audit
    # A real database failure: the log's tables do not exist in this (empty) database.
    api.auth.audit = AuditLog(make_sessionmaker(make_engine(f"sqlite:///{tmp_path / 'empty.db'}")))
    try:
        status, body = client.request("GET", f"/api/recordings/{api.recording_id}/audio")
    finally:
        api.auth.audit = working
    assert status == 503 and b"audit" in body
    assert [e for e in api.auth.audit.read(actor="auditor1", action="listen") if e.allowed] == []
    # The retry is a first listen: its audit entry is written, then the audio served (issue 11
    # item 7: the failed try had marked the listen as logged, so the retry was served unlogged).
    status, _ = client.request("GET", f"/api/recordings/{api.recording_id}/audio")
    assert status == 200
    listens = [e for e in api.auth.audit.read(actor="auditor1", action="listen") if e.allowed]
    assert [e.target for e in listens] == [str(api.recording_id)]
    # Seeks of that listen are not logged again.
    status, _ = client.request("GET", f"/api/recordings/{api.recording_id}/audio", headers={"Range": "bytes=0-99"})
    assert status == 206
    assert len([e for e in api.auth.audit.read(actor="auditor1", action="listen") if e.allowed]) == 1


def _forge(api: Api, **values: Any) -> None:
    """Write a recording row's columns by hand (an edited database, a forged AMI event's file)."""
    with api.sessions.begin() as session:
        session.execute(update(Recording).where(Recording.id == api.recording_id).values(**values))


@pytest.mark.parametrize(
    "forged",
    [
        "/etc/passwd",  # the host's file seen through the chroot
        "/srv/hotline/cc/spool/monitor/../../secrets.json",  # climbs out of the monitor folder
        "/srv/hotline/cc/spool/monitor/2026-12-01/link.wav",  # a symlink in the folder to a file outside
        "spool/monitor/../secrets.json",  # relative to the instance
    ],
)
def test_replay_serves_no_file_outside_the_monitor_folder(api: Api, forged: str) -> None:
    """Issue 11 item 6: a recording whose file names another file of the host is not served
    (404, no such audio); the secret's bytes never reach the client."""
    secret = b'{"ami_secret": "do-not-serve"}'
    for place in ("etc/passwd", "srv/hotline/cc/secrets.json", "srv/hotline/cc/spool/secrets.json"):
        (api.chroot / place).parent.mkdir(parents=True, exist_ok=True)
        (api.chroot / place).write_bytes(secret)
    (api.chroot / "srv/hotline/cc/spool/monitor/2026-12-01/link.wav").symlink_to(api.chroot / "etc/passwd")
    _forge(api, file=forged)
    client = api.client()
    client.login("auditor1")
    for path in (f"/api/recordings/{api.recording_id}/audio", f"/api/recordings/{api.recording_id}/download"):
        status, body = client.request("GET", path)
        assert status == 404 and b"do-not-serve" not in body, (path, status)
    # The genuine file is still served.
    _forge(api, file=f"/srv/hotline/cc/spool/monitor/2026-12-01/{UID}.wav")
    status, body = client.request("GET", f"/api/recordings/{api.recording_id}/audio")
    assert status == 200 and body == api.wav.read_bytes()


def test_replay_serves_no_archive_path_outside_the_store(api: Api) -> None:
    """An archived recording's path climbing out of the archive's store is not served either."""
    store = api.chroot.parent / "store"
    store.mkdir(exist_ok=True)
    (store.parent / "secrets.json").write_bytes(b"do-not-serve")
    _forge(api, archive_state="archived", archive_path="../secrets.json", file="/etc/passwd")
    client = api.client()
    client.login("auditor1")
    status, body = client.request("GET", f"/api/recordings/{api.recording_id}/audio")
    assert status == 404 and b"do-not-serve" not in body
    (store / "2026/12/01").mkdir(parents=True)
    (store / "2026/12/01/x.opus").write_bytes(b"OggS-archived")
    _forge(api, archive_path="2026/12/01/x.opus")
    status, body = client.request("GET", f"/api/recordings/{api.recording_id}/audio")
    assert status == 200 and body == b"OggS-archived"


def test_search_numbers_out_of_range_are_refused(api: Api) -> None:
    """A limit or offset past what the database takes is a 400, not a 500 (SQLite overflows)."""
    client = api.client()
    client.login("supervisor1")
    for query in ("offset=99999999999999999999", "limit=99999999999", "min_duration=nan", "max_duration=1e400"):
        status, answer = client.json("GET", f"/api/recordings?{query}")
        assert status == 400 and "超出范围" in answer["error"], (query, status, answer)


def test_the_openapi_document_lists_every_route_with_its_roles(api: Api) -> None:
    status, doc = api.client().json("GET", "/api/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    described = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    for route in api.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        if not path.startswith("/api/") or route.method == "HEAD":
            continue
        assert (route.method, path) in described, (route.method, path)
        operation = doc["paths"][path][route.method.lower()]
        assert operation["summary"], path
        if path not in PUBLIC_API:
            assert operation["x-roles"] == list(route.handler.roles), path


def _raw(api: Api, method: str, path: str, body: bytes | Any, content_type: str, csrf: str) -> tuple[int, Any]:
    """A request with a hand-made body and content type (what a client or a fuzzer may send)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{api.port}{path}", data=body, method=method)
    request.add_header("Content-Type", content_type)
    client = api.client()
    client.login("admin1")
    request.add_header("Cookie", client.cookie)
    request.add_header("X-CSRF-Token", client.csrf)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        text = exc.read()
        return exc.code, json.loads(text) if text.startswith(b"{") else text


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("multipart/form-data", b"--x\r\n", "boundary"),  # no boundary (schemathesis found a 500)
        ("multipart/form-data; boundary=abc", b"garbage", "boundary"),  # no part at all
        (
            "multipart/form-data; boundary=abc",
            b'--abc\r\nContent-Disposition: form-data; name="file"; filename="main.yaml"\r\n\r\nhello',
            "EOF",
        ),  # torn: the closing boundary never comes
        ("multipart/form-data; boundary=abc", b"--abc\r\nno colon here\r\n\r\nx\r\n--abc--\r\n", "header"),
    ],
)
def test_a_malformed_upload_is_a_400_with_the_reason(api: Api, content_type: str, body: bytes, reason: str) -> None:
    """Issue 11 ("also found"): a multipart body without a boundary, torn, or with a bad part
    header answered 500; now 400 saying what is wrong, and nothing is published."""
    status, answer = _raw(api, "POST", "/api/admin/flows/upload", body, content_type, "")
    assert status == 400, (status, answer)
    assert "multipart" in answer["error"] and reason.lower() in answer["error"].lower(), answer
    # Not multipart at all: 415, as before.
    status, answer = _raw(api, "POST", "/api/admin/flows/upload", b"{}", "application/json", "")
    assert status == 415 and "multipart" in answer["error"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/admin/agents/1001", {"name": None}, "name"),
        ("/api/admin/agents/1001", {"skills": {"consult": None}}, "skills.consult"),
        ("/api/admin/agents/1001", {"tags": ["vip", None]}, "tags[1]"),
        ("/api/admin/queues/general", {"ring_timeout": None}, "ring_timeout"),
        ("/api/admin/queues/general", {"priority_tags": {"vip": None}}, "priority_tags.vip"),
    ],
)
def test_a_null_in_an_agent_or_queue_edit_is_a_400_naming_the_field(
    api: Api, path: str, body: dict[str, Any], field: str
) -> None:
    """Issue 11 item 8: {"name": null} reached the settings file, which cannot hold a null (a
    500). Now a 400 naming the field, and nothing reaches the settings file."""
    client = api.client()
    client.login("admin1")
    status, answer = client.json("PUT", path, body)
    assert status == 400 and answer["error"].startswith(f"{field} 不能为 null"), answer
    status, answer = client.json("POST", "/api/admin/agents", {"id": "1009", "name": None})
    assert status == 400 and answer["error"].startswith("name 不能为 null"), answer
    assert api.edits == []
    # A value without nulls goes through.
    assert client.json("PUT", "/api/admin/agents/1001", {"name": "王芳", "tags": ["vip"]})[0] == 200
    assert api.edits == [("agent", "1001", {"name": "王芳", "tags": ["vip"]})]


def test_odd_json_bodies_are_400s(api: Api) -> None:
    """Bad JSON, a non-object, JSON nested past Python's recursion limit (a 500 before), or a
    path number past the database's integers: each a 4xx with the reason, nothing written."""
    deep = b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for body in (b"{not json", b"[1, 2]", b'"text"', deep, "名字".encode("gbk")):
        status, answer = _raw(api, "PUT", "/api/admin/agents/1001", body, "application/json", "")
        assert status == 400 and "JSON" in answer["error"], (body[:20], status, answer)
    assert api.edits == []
    client = api.client()
    client.login("auditor1")
    status, answer = client.json("GET", "/api/recordings/99999999999999999999999")
    assert status == 404 and "no such recording" in answer["error"]


def test_a_json_body_arriving_in_pieces_is_read_whole(api: Api, loop: LoopThread) -> None:
    """read_json took the first read() as the whole body: a body that arrived in two TCP pieces
    was cut and answered 400 (bad JSON). Now it reads to the end."""
    client = api.client()
    client.login("admin1")
    body = json.dumps({"name": "王芳", "team": "一组" * 2000}, ensure_ascii=False).encode()

    async def send() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
        head = (
            f"PUT /api/admin/agents/1001 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nCookie: {client.cookie}\r\nX-CSRF-Token: {client.csrf}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        writer.write(head + body[:100])
        await writer.drain()
        await asyncio.sleep(0.3)  # the server has read the first piece by now
        writer.write(body[100:])
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        writer.close()
        return status

    assert loop.run(send(), timeout=20) == 200
    assert api.edits == [("agent", "1001", {"name": "王芳", "team": "一组" * 2000})]
