"""The business system the IVR's self-service nodes call, under the test's control (T8):
``ok`` answers like the product's demo API, ``slow`` answers after the flow's timeout,
``down`` closes the port (connection refused)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from cc_core.selfservice.demo_api import make_app
from tests.harness.loop import LoopThread
from tests.harness.ports import free_port


class SelfService:
    def __init__(self, loop: LoopThread) -> None:
        self.loop = loop
        self.port = free_port()
        self.mode = "ok"
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @web.middleware
    async def _control(self, request: web.Request, handler: web.Handler) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.query)))
        if self.mode == "slow":
            await asyncio.sleep(15)
        return await handler(request)

    async def _start(self) -> None:
        app = make_app()
        app.middlewares.append(self._control)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> None:
        self.loop.run(self._start())
        self.mode = "ok"

    def go_down(self) -> None:
        self.loop.run(self._stop())
        self.mode = "down"

    def close(self) -> None:
        self.loop.run(self._stop())
