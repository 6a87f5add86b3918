"""The health report over HTTP (issue 11 item 8d: nothing internal without a login).

On the web port, which the agents' LAN reaches:

* ``/health``: for monitors, a bare ``{"ok": true|false, "status": "ok"|"degraded"}`` with
  200 or 503; the whole report (AMI, FastAGI, flows and their problems, the database writer,
  agents' counts, the archive) only to a logged-in supervisor or admin (the session cookie).
* ``/status``: a small page in Chinese for a person: the status word for anyone, the whole
  report for a supervisor or admin.

The whole report for ``hotline status`` and the test harness is also at ``/api/control/health``
on the loopback-only control site, behind the control token (cc_core/web/control.py).
``/`` is the web front-end.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from cc_core.web.security import current

HealthSource = Callable[[], dict[str, Any]]
# Who may read the whole report on the web port (the wallboard's people and the admins).
DETAIL_ROLES = frozenset({"supervisor", "admin"})


class HealthHolder:
    """Holds the health source in the app (an AppKey needs a concrete type)."""

    def __init__(self, source: HealthSource) -> None:
        self.source = source


HEALTH_KEY = web.AppKey("health", HealthHolder)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _may_see_details(request: web.Request) -> bool:
    view = current(request)
    return view is not None and view.user.role in DETAIL_ROLES


def bare(report: dict[str, Any]) -> dict[str, Any]:
    """What anyone may know: up or not."""
    status = str(report.get("status", "down"))
    return {"ok": status == "ok", "status": status}


async def health_json(request: web.Request) -> web.Response:
    report = request.app[HEALTH_KEY].source()
    status = 200 if report.get("status") == "ok" else 503
    body = report if _may_see_details(request) else bare(report)
    return web.json_response(body, status=status, dumps=_dumps)


_LABELS = {"ok": "正常", "degraded": "部分异常", "down": "停止"}


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1)


async def health_page(request: web.Request) -> web.Response:
    report = request.app[HEALTH_KEY].source()
    status = str(report.get("status", "down"))
    if _may_see_details(request):
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td><pre>{html.escape(_pretty(v))}</pre></td></tr>"
            for k, v in report.items()
        )
        details = f"<table>{rows}</table>"
    else:
        details = (
            '<p>详情须以班长或管理员身份<a href="/#/login">登录</a>后查看 (details: log in as supervisor or admin)</p>'
        )
    body = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>Hotline 运行状态</title>
<style>body{{font-family:sans-serif;margin:2em}} th{{text-align:left;vertical-align:top;padding-right:1em}}
pre{{margin:0}} .ok{{color:#0a0}} .degraded{{color:#c60}} .down{{color:#c00}}</style></head>
<body><h1>Hotline 热线系统运行状态：<span class="{html.escape(status)}">{_LABELS.get(status, status)}</span></h1>
{details}</body></html>"""
    return web.Response(text=body, content_type="text/html", charset="utf-8")


async def health_full(request: web.Request) -> web.Response:
    """The whole report, for a caller already trusted (the control site's token)."""
    report = request.app[HEALTH_KEY].source()
    return web.json_response(report, status=200 if report.get("status") == "ok" else 503, dumps=_dumps)


def make_app(health: HealthSource, middlewares: Iterable[Middleware] = ()) -> web.Application:
    """The aiohttp application serving the health report (and, mounted by the controller, the API)."""
    app = web.Application(middlewares=list(middlewares))
    app[HEALTH_KEY] = HealthHolder(health)
    app.router.add_get("/health", health_json)
    app.router.add_get("/status", health_page)
    return app
