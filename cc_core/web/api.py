"""Every route of the web API in one place, for the controller and for the auth-coverage test
(which walks exactly these routes: no endpoint can be added without a role check)."""

from __future__ import annotations

from aiohttp import web

from cc_core.web.admin import FlowAdmin, add_admin_routes
from cc_core.web.live import add_live_routes
from cc_core.web.openapi import add_openapi_route
from cc_core.web.recordings import ReplayContext, add_recording_routes
from cc_core.web.security import add_auth_routes
from cc_core.web.workstation import Views, add_workstation_routes

# Routes anyone may call: logging in and out, and the API's own description.
PUBLIC_API = frozenset({"/api/login", "/api/logout", "/api/openapi.json"})


def add_api_routes(app: web.Application, *, replay: ReplayContext, views: Views, flows: FlowAdmin) -> None:
    add_auth_routes(app)
    add_recording_routes(app, replay)
    add_workstation_routes(app, views)
    add_live_routes(app)
    add_admin_routes(app, flows)
    add_openapi_route(app)
