"""The product's whole web API, served in-process on loopback, for the role-table test
(test_roles.py) and the fuzzer (test_fuzz_api.py) (issue 11 items 9 and 10).

Unlike test_api.py's server (whose workstation and admin parts are ``None``: it only checks
refusals), every handler here is reached and does its real work: a real :class:`Controller`
built from a test ``hotline.toml`` (its ACD, call control, views, flow registry, roster edits
written to that file, the switch's config rendered into its own instance of the project's
chroot), a real SQLite database, real flows (a copy of ``ivr_flows/``, so a publish never
touches the repository). Only the switch is not running: the controller's AMI link (and its
reload of SIP accounts through the switch's CLI) is replaced by :class:`AnsweringAmi`, which
answers every action with success, so an agent can log in and a SIP password be reset without
Asterisk. The routes are mounted exactly as
``Controller.start`` mounts them.

Sessions are opened directly in the session store (no argon2 hash per login), one per role;
each account has the role's name as user name (``agent`` is linked to ACD agent 1001).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from pydub.generators import Sine

from cc_core.app import Controller
from cc_core.auth.store import UserStore
from cc_core.db.session import upgrade
from cc_core.secrets import load_or_create
from cc_core.settings import load_settings
from cc_core.switch.asterisk import AsteriskControl
from cc_core.switch.config import render_hotline
from cc_core.web.admin import FlowAdmin
from cc_core.web.api import add_api_routes
from cc_core.web.health import make_app
from cc_core.web.live import LIVE_KEY, LiveSockets
from cc_core.web.recordings import ReplayContext
from cc_core.web.security import AUTH_KEY, SESSION_COOKIE, session_middleware
from tests.harness.hotline import REPO, switch_root
from tests.harness.loop import LoopThread
from tests.harness.ports import free_port
from tests.harness.web import WebClient

ROLES = ("agent", "supervisor", "admin", "reviewer", "auditor")
PASSWORD = "Hotline-served-2026"
AGENT = "1001"
CALLER = "13800138000"
UID = "1764560000.7"


class AnsweringAmi:
    """Stands in for the AMI link: every action succeeds, and is kept (to see what was sent)."""

    connected = True

    def __init__(self) -> None:
        self.actions: list[dict[str, str]] = []

    async def action(self, action: dict[str, str], **_kwargs: Any) -> dict[str, str]:
        self.actions.append(dict(action))
        return {"Response": "Success", "Message": "ok"}

    async def reload_sip_accounts(self) -> None:
        self.actions.append({"Action": "reload res_pjsip.so (CLI)"})

    def health(self) -> dict[str, Any]:
        return {"connected": True}


@dataclass
class Served:
    """A running server and a session per role."""

    port: int
    app: web.Application
    controller: Controller
    ami: AnsweringAmi
    sessions: dict[str, tuple[str, str]]  # role → (session token, CSRF token)
    recording_id: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, role: str | None = None) -> WebClient:
        """A client with ``role``'s session (cookie and CSRF token), or none."""
        client = WebClient(self.port)
        if role is not None:
            token, csrf = self.sessions[role]
            client.cookie, client.csrf = f"{SESSION_COOKIE}={token}", csrf
        return client


def _settings_text(home: Path, instance: str) -> str:
    return f"""
[switch]
root = "{switch_root()}"
instance = "{instance}"
sip_bind = "127.0.0.1"
sip_port = {free_port()}
ami_port = {free_port()}
http_port = {free_port()}

[controller]
agi_port = {free_port()}
web_port = {free_port()}

[database]
url = "sqlite:///{home / "hotline.db"}"

[ivr]
flows_dir = "{home / "ivr_flows"}"
watch_interval = 0
demo_api_port = 0

[[numbers]]
number = "12333"
name = "社保服务热线"

[[queues]]
name = "general"
title = "综合咨询"

[[queues]]
name = "complaints"
title = "投诉建议"
strategy = "skills"

[[agents]]
id = "{AGENT}"
name = "张丽"
skills = {{pension = 3}}

[[agents]]
id = "1002"
name = "王芳"
"""


@contextmanager
def serve(home: Path, loop: LoopThread) -> Iterator[Served]:
    """Build and start the server in ``home`` (a fresh folder); stop it and remove its switch
    instance afterwards."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "recordings_store").mkdir()
    shutil.copytree(REPO / "ivr_flows", home / "ivr_flows")
    instance = f"web{free_port()}"
    config = home / "hotline.toml"
    config.write_text(_settings_text(home, instance), encoding="utf-8")
    settings = load_settings(config, env={})
    upgrade(settings.database_url)
    secrets = load_or_create(settings)
    render_hotline(settings, secrets)
    now = datetime.now(UTC)
    ami = AnsweringAmi()
    port = settings.controller.web_port
    state: dict[str, Any] = {}

    async def start() -> None:
        controller = Controller(settings, secrets, config)
        controller.ami = ami  # type: ignore[assignment]
        controller.acd.switch = AsteriskControl(ami)  # the typed switch interface over the fake link
        # SIP accounts are reloaded through the switch's CLI socket (item 5): nothing to reload.
        controller._reload_sip_accounts = ami.reload_sip_accounts  # type: ignore[method-assign]
        await controller.reload_flows()
        app = make_app(controller.health, middlewares=[session_middleware])
        app[AUTH_KEY] = controller.web_auth
        add_api_routes(  # as Controller.start does
            app,
            replay=ReplayContext(controller.sessions, controller.archive, controller.monitor.host),
            views=controller.views,
            flows=FlowAdmin(
                settings.flows_path,
                controller.registry,
                controller.reload_flows,
                lambda: controller.settings,
                controller.new_sip_password,
                controller.save_agent,
                controller.remove_agent,
                controller.save_queue,
            ),
        )
        app[LIVE_KEY] = LiveSockets(settings.controller.live_sockets_per_session)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        state.update(controller=controller, app=app, runner=runner)

    loop.run(start(), timeout=120)
    controller: Controller = state["controller"]
    users = UserStore(controller.sessions)
    views = {role: users.add(role, role, PASSWORD, now, agent_id=AGENT if role == "agent" else None) for role in ROLES}
    # One answered call and its recording, the file where this instance's switch leaves it
    # (closed, not archived yet), to replay.
    calls = controller.store
    calls.call_arrived(UID, UID, CALLER, "12333", "PJSIP/carrier-1", now - timedelta(minutes=5))
    calls.queue_entered(UID, "general", None, 0, now - timedelta(minutes=4))
    calls.agent_answered(UID, AGENT, now - timedelta(minutes=4))
    inside = f"{controller.instance.inside}/spool/monitor/2026-12-01/{UID}.wav"
    wav = controller.instance.host_path(inside)
    wav.parent.mkdir(parents=True, exist_ok=True)
    Sine(440).to_audio_segment(duration=2000).set_frame_rate(8000).set_channels(1).set_sample_width(2).export(
        wav, format="wav"
    )
    recording_id = controller.recordings.started(UID, AGENT, "agent", inside, now - timedelta(minutes=4))
    controller.recordings.finished(inside, now - timedelta(minutes=1), wav)
    opened = {role: controller.web_auth.sessions.open(view.id, now, "127.0.0.1") for role, view in views.items()}
    try:
        yield Served(
            port,
            state["app"],
            controller,
            ami,
            {role: (token, view.csrf_token) for role, (token, view) in opened.items()},
            recording_id,
        )
    finally:

        async def stop() -> None:
            await state["runner"].cleanup()
            await controller.acd.close()
            controller.engine.dispose()

        loop.run(stop())
        shutil.rmtree(controller.instance.host_dir, ignore_errors=True)
