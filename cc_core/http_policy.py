"""Which business systems an IVR ``http`` node may call (issue 11 item 8, P2).

A flow is written by an admin on the web, but its ``http`` nodes run inside the controller, on
the server's network: without a limit, a flow (or a stolen admin session) could make callers'
calls fetch anything the server can reach — an intranet system, a cloud metadata address —
and read the answer aloud. So:

- only the hosts listed in ``[ivr] http_allow`` (``host`` for any port, ``host:port`` for one)
  may be called; the default is the shipped demo API, ``127.0.0.1:8090``;
- plain ``http://`` only to a loopback host (127.0.0.0/8, ``::1``, ``localhost``); any other
  host must be ``https://``;
- no user name or password in the URL.

The same check runs when a flow is validated (a problem with file and line, so the flow is not
published) and before each request (:class:`cc_core.ivr.agi_driver.AgiDriver`), which also sends
no cookies and follows no redirects: a redirect could lead anywhere, and a cookie one caller's
answer set would be sent with the next caller's request.

A neutral module (moved out of ``ivr/`` by issue 12 item 6): the settings validate
``[ivr] http_allow`` with :func:`parse_allowed`, and the switch imports the settings, so the
parser may live in no domain; chat's and tickets' calls to business systems will use it too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from yarl import URL

DEFAULT_HTTP_ALLOW = ("127.0.0.1:8090",)
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP address, IPv6 without brackets) is this machine."""
    host = host.lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class AllowedHost:
    """One entry of ``[ivr] http_allow``: a host, and a port (None: any port)."""

    host: str
    port: int | None

    def matches(self, host: str, port: int) -> bool:
        return self.host == host and (self.port is None or self.port == port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def parse_allowed(entry: str) -> AllowedHost:
    """``api.example.com``, ``10.0.0.5:8443``, ``[::1]:8090`` → :class:`AllowedHost`.

    Raises ValueError (with a message for the settings file) for anything else: a scheme, a
    path, an empty host, a port outside 1–65535.
    """
    text = entry.strip()
    try:
        return AllowedHost(str(ipaddress.ip_address(text)), None)  # a bare address, IPv6 too
    except ValueError:
        pass
    if not text or any(c in text for c in "/?#@\\ \t") or "://" in text:
        raise ValueError(f"'{entry}' must be a host or host:port, e.g. 127.0.0.1:8090 (no scheme, no path)")
    try:
        url = URL(f"http://{text}")
    except ValueError as exc:
        raise ValueError(f"'{entry}' is not a host or host:port: {exc}") from None
    if not url.host:
        raise ValueError(f"'{entry}' has no host")
    port = url.explicit_port
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"'{entry}': the port must be between 1 and 65535")
    return AllowedHost(url.host.lower().rstrip(".") or url.host.lower(), port)


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    """The hosts ``http`` nodes may call; :meth:`refusal` says why a URL may not be called."""

    allow: tuple[AllowedHost, ...]

    @classmethod
    def of(cls, entries: Iterable[str]) -> HttpPolicy:
        """The policy of ``[ivr] http_allow`` (entries as written in the settings)."""
        return cls(tuple(parse_allowed(entry) for entry in entries))

    def allowed_text(self) -> str:
        return ", ".join(str(a) for a in self.allow) or "(none)"

    def refusal(self, url: str) -> str | None:
        """None if a call may fetch ``url``; otherwise the reason, in Chinese then English."""
        try:
            parsed = URL(url)
            port = parsed.port
        except ValueError as exc:
            return f"网址无效 (the url is not valid: {exc})"
        scheme = parsed.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            return f"网址须以 https:// 开头 (the url must start with https://, or http:// to loopback): '{url[:60]}'"
        host = (parsed.host or "").lower().rstrip(".")
        if not host:
            return f"网址缺少主机名 (the url '{url[:60]}' has no host)"
        if parsed.user is not None or parsed.password is not None:
            return "网址不得包含用户名或密码 (the url must not hold a user name or password)"
        loopback = is_loopback(host)
        if scheme == "http" and not loopback:
            return (
                f"访问本机以外的主机 {host} 须用 https:// "
                f"(plain http:// is allowed only to loopback; use https://{host}/…)"
            )
        port = port if port is not None else _DEFAULT_PORTS[scheme]
        if not any(allowed.matches(host, port) for allowed in self.allow):
            shown = f"[{host}]" if ":" in host else host
            return (
                f"主机 {shown}:{port} 不在允许列表中 "
                f"(host {shown}:{port} is not in [ivr] http_allow of hotline.toml: {self.allowed_text()})"
            )
        return None


DEFAULT_POLICY = HttpPolicy.of(DEFAULT_HTTP_ALLOW)
