"""Serving the built front-end (``web/dist``, made by ``scripts/setup.sh`` with Vite; decision 0012).

``/`` is the single-page app's ``index.html`` (never cached, so a new build is picked up at once)
and ``/assets/…`` its hashed files (cached for a year: their names change with their content).
Every HTML answer carries a Content-Security-Policy that allows only this origin's scripts, so
text a user typed can never run as script even if a page forgot to escape it. Without a build the
root says how to make one instead of a blank page.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from cc_core.web.security import Handler

DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

NOT_BUILT = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>Hotline</title></head>
<body><h1>前端尚未构建 (the front-end is not built)</h1>
<p>运行 <code>scripts/setup.sh</code> 构建 web/dist。运行状态见 <a href="/status">/status</a>。</p></body></html>"""


def add_frontend_routes(app: web.Application, dist: Path = DIST) -> None:
    index = dist / "index.html"

    async def root(request: web.Request) -> web.StreamResponse:
        if not index.is_file():
            return web.Response(text=NOT_BUILT, content_type="text/html", headers=SECURITY_HEADERS)
        return web.FileResponse(index, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    app.router.add_get("/", root)
    assets = dist / "assets"
    if assets.is_dir():
        app.router.add_static("/assets/", assets, append_version=False)

    @web.middleware
    async def long_cache(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path.startswith("/assets/") and response.status == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    app.middlewares.append(long_cache)
