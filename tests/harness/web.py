"""Just enough of a browser for API tests: one session cookie and its CSRF token, over HTTP."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WebClient:
    """Requests to a web server on loopback, keeping the session cookie it sets."""

    port: int
    cookie: str = ""
    csrf: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # the last answer's, lower-cased

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, csrf: bool = True
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        sent = dict(headers or {})
        if self.cookie:
            sent["Cookie"] = self.cookie
        if csrf and self.csrf:
            sent["X-CSRF-Token"] = self.csrf
        data = None
        if isinstance(body, bytes):  # sent as is (the caller sets Content-Type)
            data = body
        elif body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            payload = response.read()
        finally:
            conn.close()
        self.headers = {k.lower(): v for k, v in response.getheaders()}
        cookie = response.getheader("Set-Cookie")
        if cookie and cookie.startswith("hotline_session="):
            self.cookie = cookie.split(";", 1)[0]
        return response.status, payload

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, payload = self.request(method, path, body, **kw)
        return status, json.loads(payload) if payload else None

    def upload(self, path: str, filename: str, content: bytes, field: str = "file") -> tuple[int, Any]:
        """POST one file as multipart/form-data."""
        boundary = "----hotline-test-boundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, payload = self.request(
            "POST", path, body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        return status, json.loads(payload) if payload else None

    def login(self, username: str, password: str) -> int:
        """Log in; on success keep the session's CSRF token for the changes that follow."""
        status, answer = self.json("POST", "/api/login", {"username": username, "password": password})
        if status == 200:
            self.csrf = answer["csrf_token"]
        return status


PASSWORD = "Hotline-web-2026"


def ensure_user(database_url: str, username: str, role: str, agent_id: str | None = None, name: str = "") -> str:
    """Make the account if it is not there yet (with :data:`PASSWORD`); returns the password."""
    from datetime import UTC, datetime

    from cc_core.auth.store import UserStore
    from cc_core.db.session import make_engine, make_sessionmaker

    engine = make_engine(database_url)
    try:
        users = UserStore(make_sessionmaker(engine))
        if all(u.username != username for u in users.list()):
            users.add(username, role, PASSWORD, datetime.now(UTC), display_name=name, agent_id=agent_id)
    finally:
        engine.dispose()
    return PASSWORD
