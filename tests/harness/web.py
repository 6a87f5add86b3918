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
        if body is not None:
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

    def login(self, username: str, password: str) -> int:
        """Log in; on success keep the session's CSRF token for the changes that follow."""
        status, answer = self.json("POST", "/api/login", {"username": username, "password": password})
        if status == 200:
            self.csrf = answer["csrf_token"]
        return status
