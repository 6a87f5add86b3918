"""The OpenAPI 3.1 description of the web API, built from the routes themselves (issue 6 item 1).

Every ``/api`` route's method, path parameters, summary (its handler's docstring) and the roles
:func:`~cc_core.web.security.requires` lets through (``x-roles``) are read from the running
application, so the document cannot drift from the code. ``docs/web-api.md`` has the shapes of
the answers in prose.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from cc_core import __version__

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def build_openapi(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s ``/api`` routes."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = str(info.get("formatter") or info.get("path") or "")
        if not path.startswith("/api") or route.method in ("HEAD", "*"):
            continue
        handler = route.handler
        doc = (handler.__doc__ or "").strip()
        roles = list(getattr(handler, "roles", ()))
        operation: dict[str, Any] = {
            "summary": doc.splitlines()[0] if doc else route.method + " " + path,
            "operationId": f"{route.method.lower()}_{getattr(handler, '__name__', 'handler')}_{len(paths)}",
            "responses": {"200": {"description": "成功 (OK)"}},
        }
        if doc:
            operation["description"] = doc
        params = _PARAM.findall(path)
        if params:
            operation["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in params
            ]
        if roles:
            operation["x-roles"] = roles
            operation["security"] = [{"session": []}]
            operation["responses"]["401"] = {"description": "未登录或登录已过期 (no session)"}
            operation["responses"]["403"] = {"description": "角色无权 (wrong role, or missing CSRF token)"}
        if route.method in ("POST", "PUT", "PATCH", "DELETE"):
            operation.setdefault("parameters", []).append(
                {"name": "X-CSRF-Token", "in": "header", "required": path != "/api/login", "schema": {"type": "string"}}
            )
        paths.setdefault(_PARAM.sub(r"{\1}", path), {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hotline 热线系统 API",
            "version": __version__,
            "description": "Sessions by cookie (POST /api/login); see docs/web-api.md.",
        },
        "components": {"securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "hotline_session"}}},
        "paths": dict(sorted(paths.items())),
    }


async def openapi_json(request: web.Request) -> web.Response:
    """This document (no login needed: it describes the API, it holds no data)."""
    return web.json_response(build_openapi(request.app))


def add_openapi_route(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi_json)
