"""The health report over HTTP: ``/health`` (JSON, for ``hotline status`` and monitoring) and
``/status`` (a small page in Chinese for a person). ``/`` is the web front-end.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

HealthSource = Callable[[], dict[str, Any]]


class _HealthHolder:
    """Holds the health source in the app (an AppKey needs a concrete type)."""

    def __init__(self, source: HealthSource) -> None:
        self.source = source


HEALTH_KEY = web.AppKey("health", _HealthHolder)


async def health_json(request: web.Request) -> web.Response:
    report = request.app[HEALTH_KEY].source()
    status = 200 if report.get("status") == "ok" else 503
    return web.json_response(report, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))


_LABELS = {"ok": "正常", "degraded": "部分异常", "down": "停止"}


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1)


async def health_page(request: web.Request) -> web.Response:
    report = request.app[HEALTH_KEY].source()
    status = str(report.get("status", "down"))
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td><pre>{html.escape(_pretty(v))}</pre></td></tr>"
        for k, v in report.items()
    )
    body = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>Hotline 运行状态</title>
<style>body{{font-family:sans-serif;margin:2em}} th{{text-align:left;vertical-align:top;padding-right:1em}}
pre{{margin:0}} .ok{{color:#0a0}} .degraded{{color:#c60}} .down{{color:#c00}}</style></head>
<body><h1>Hotline 热线系统运行状态：<span class="{html.escape(status)}">{_LABELS.get(status, status)}</span></h1>
<table>{rows}</table></body></html>"""
    return web.Response(text=body, content_type="text/html", charset="utf-8")


def make_app(health: HealthSource, middlewares: Iterable[Middleware] = ()) -> web.Application:
    """The aiohttp application serving the health report (and, mounted by the controller, the API)."""
    app = web.Application(middlewares=list(middlewares))
    app[HEALTH_KEY] = _HealthHolder(health)
    app.router.add_get("/health", health_json)
    app.router.add_get("/status", health_page)
    return app
