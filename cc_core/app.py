"""The one place that wires everything: settings → switch adapters → domains → web.

:class:`Controller` is the asyncio controller process. It does not start the switch (the CLI
does that for ``hotline up``), so it can be restarted on its own under a running switch: it
reconnects, resyncs and carries on (P1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiohttp import web

from cc_core import __version__
from cc_core.bus import EventBus
from cc_core.calls.lifecycle import CallLifecycle
from cc_core.calls.store import CallStore
from cc_core.db.session import make_engine, make_sessionmaker
from cc_core.errors import HotlineError
from cc_core.ivr.entry import HotlineEntry
from cc_core.secrets import Secrets
from cc_core.settings import Settings
from cc_core.switch.ami import AmiLink
from cc_core.switch.fastagi import FastAgiServer
from cc_core.switch.instance import Instance
from cc_core.switch.process import read_pid
from cc_core.switch.view import SwitchView
from cc_core.web.health import make_app

log = logging.getLogger(__name__)


def switch_pid_file(settings: Settings) -> Any:
    return settings.state_path / "run" / f"switch-{settings.switch.instance}.pid"


class Controller:
    """The controller process: AMI link, FastAGI server, call records, health page."""

    def __init__(self, settings: Settings, secrets: Secrets) -> None:
        self.settings = settings
        self.instance = Instance(settings.switch_root, settings.switch.instance)
        self.bus = EventBus()
        self.view = SwitchView()
        ctl = settings.controller
        self.ami = AmiLink(
            "127.0.0.1",
            settings.switch.ami_port,
            secrets.ami_user,
            secrets.ami_secret,
            self.bus,
            self.view,
            backoff_initial=ctl.ami_backoff_initial,
            backoff_max=ctl.ami_backoff_max,
            ping_interval=ctl.ami_ping_interval,
        )
        self.engine = make_engine(settings.database_url)
        self.store = CallStore(make_sessionmaker(self.engine))
        self.lifecycle = CallLifecycle(self.store, self.view, self.bus)
        self.entry = HotlineEntry(self.store, self.lifecycle, str(self.instance.inside / "sounds"))
        self.agi = FastAgiServer(
            self.entry,
            ctl.agi_host,
            ctl.agi_port,
            command_timeout=ctl.agi_command_timeout,
        )
        self._runner: web.AppRunner | None = None
        self._ami_task: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        self._stopped = asyncio.Event()

    def health(self) -> dict[str, Any]:
        """The health report: ``ok`` only when the switch runs and AMI is connected."""
        switch_pid = read_pid(switch_pid_file(self.settings))
        ami = self.ami.health()
        status = "ok" if ami["connected"] else "degraded"
        return {
            "status": status,
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started, 1),
            "switch": {"pid": switch_pid, "running": switch_pid is not None or ami["connected"]},
            "ami": ami,
            "fastagi": self.agi.health(),
            "events_published": self.bus.published,
        }

    async def start(self) -> None:
        """Bind FastAGI and the web port, and start the AMI link (which retries by itself)."""
        ctl = self.settings.controller
        try:
            await self.agi.start()
        except OSError as exc:
            raise HotlineError(
                f"cannot listen for FastAGI on {ctl.agi_host}:{ctl.agi_port} ({exc.strerror}); "
                "is another controller running? ('hotline down', or change [controller] agi_port)"
            ) from exc
        self._runner = web.AppRunner(make_app(self.health), access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, ctl.web_host, ctl.web_port).start()
        except OSError as exc:
            await self.agi.close(grace=0)
            raise HotlineError(
                f"cannot listen for the web page on {ctl.web_host}:{ctl.web_port} ({exc.strerror}); "
                "stop the program using it or change [controller] web_port"
            ) from exc
        self._ami_task = asyncio.create_task(self.ami.run(), name="ami-link")
        log.info(
            "controller started",
            extra={"agi_port": self.agi.port, "web": f"http://{ctl.web_host}:{ctl.web_port}/"},
        )

    async def stop(self) -> None:
        """Stop in reverse order; calls in progress keep running in the switch (dialplan)."""
        await self.ami.stop()
        if self._ami_task is not None:
            self._ami_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ami_task
        await self.agi.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.bus.drain()
        self.engine.dispose()
        self._stopped.set()
        log.info("controller stopped")

    def request_stop(self) -> None:
        self._stopped.set()

    async def run_until_stopped(self) -> None:
        await self._stopped.wait()
