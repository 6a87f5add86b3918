"""The one place that wires everything: settings → switch adapters → domains → web.

:class:`Controller` is the asyncio controller process. It does not start the switch (the CLI
does that for ``hotline up``), so it can be restarted on its own under a running switch: it
reconnects, resyncs and carries on (P1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from cc_core import __version__
from cc_core.acd.callcontrol import CallControl
from cc_core.acd.config import agents_offline, queue_configs
from cc_core.acd.model import AgentState
from cc_core.acd.roster import Roster, RosterError
from cc_core.acd.service import Acd
from cc_core.acd.store import AgentStore
from cc_core.archive import (
    ArchiveBusy,
    ArchiveConfig,
    archive_recordings,
    archive_summary,
    backup_archive,
    last_run,
    last_verify,
    purge_expired,
    verify_archive,
)
from cc_core.auth.passwords import hashing_executor
from cc_core.auth.store import AuditLog, SessionStore, UserStore
from cc_core.bus import EventBus
from cc_core.calendars.days import local_zone, use_timezone
from cc_core.calls.callbacks import CallbackStore
from cc_core.calls.lifecycle import CallLifecycle
from cc_core.calls.recordings import MonitorFolder, RecordingStore
from cc_core.calls.store import CallStore
from cc_core.calls.voicemail import VoicemailStore
from cc_core.contacts.store import ContactStore
from cc_core.db.session import make_engine, make_sessionmaker
from cc_core.db.writer import DbWriter
from cc_core.errors import HotlineError
from cc_core.http_policy import HttpPolicy
from cc_core.ivr.agi_driver import AgiDriver, Recording
from cc_core.ivr.entry import HotlineEntry
from cc_core.ivr.prompts import PromptLibrary
from cc_core.ivr.registry import FlowRegistry
from cc_core.ivr.runtime import Step, Visit
from cc_core.secrets import Secrets, load_or_create, rotate_agent_password
from cc_core.selfservice.demo_api import make_app as make_demo_api
from cc_core.settings import Settings
from cc_core.switch.ami import AmiLink
from cc_core.switch.asterisk import AsteriskControl
from cc_core.switch.config import render_hotline
from cc_core.switch.fastagi import AgiSession, FastAgiServer
from cc_core.switch.instance import Instance
from cc_core.switch.process import Switch, read_pid
from cc_core.switch.view import SwitchView
from cc_core.web.admin import FlowAdmin
from cc_core.web.api import add_api_routes
from cc_core.web.control import make_control_site
from cc_core.web.frontend import add_frontend_routes
from cc_core.web.health import make_app
from cc_core.web.live import LIVE_KEY, LiveSockets
from cc_core.web.recordings import ReplayContext
from cc_core.web.security import AUTH_KEY, LoginLimiter, WebAuth, parse_networks, session_middleware
from cc_core.web.workstation import Views

# Web logins: closed after 30 minutes without a request, and after 12 hours in any case.
SESSION_IDLE = timedelta(minutes=30)
SESSION_LIFETIME = timedelta(hours=12)
log = logging.getLogger(__name__)

ANSWER_PROMPT_MAX_AGE_S = 3600.0


def switch_pid_file(settings: Settings) -> Path:
    return settings.state_path / "run" / f"switch-{settings.switch.instance}.pid"


def controller_pid_file(settings: Settings) -> Path:
    return settings.state_path / "run" / f"controller-{settings.switch.instance}.pid"


def prompt_cache(instance: Instance) -> Path:
    """Rendered prompts, shared by every instance of the chroot (content-addressed, so safe)."""
    return instance.root / "srv" / "hotline" / "_cache" / "prompts"


class Controller:
    """The controller process: AMI link, FastAGI server, call records, health page."""

    def __init__(self, settings: Settings, secrets: Secrets, config_file: Path | None = None) -> None:
        self.settings = settings
        # The hotline's days (reports, callbacks, the archive, daily jobs) in its own time zone,
        # set before anything below counts one (issue 12 item 6).
        use_timezone(settings.timezone)
        # Where agents and queues an admin edits on the web are written (None: defaults only,
        # and the admin page says so).
        self.roster = Roster(config_file) if config_file is not None else None
        self._roster_lock = asyncio.Lock()
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
        # What the domains may ask of the switch, typed (issue 12 item 5, decision 0015): calls
        # over the AMI link, the reload of SIP accounts through the CLI's root-only socket.
        self.switch = AsteriskControl(self.ami, Switch(self.instance, switch_pid_file(settings)).reload_module)
        self.engine = make_engine(settings.database_url)
        sessions = make_sessionmaker(self.engine)
        # Calls are linked to contacts as they are recorded; ID cards are kept as keyed hashes (decision 0016).
        self.store = CallStore(sessions, contacts=ContactStore(sessions, id_card_key=secrets.contact_key.encode()))
        # The call path's writes: one thread, in order, many per transaction (decision 0014).
        self.writer = DbWriter(sessions)
        self.writer.rollback_hooks.append(self.store.forget_ids)
        self.voicemails = VoicemailStore(sessions)
        self.lifecycle = CallLifecycle(self.store, self.view, self.bus, db=self.writer.run)
        flows_dir = settings.flows_path
        self.prompts = PromptLibrary(prompt_cache(self.instance), flows_dir / "prompts", settings.prompts.tts_voice)
        http_policy = HttpPolicy.of(settings.ivr.http_allow)  # issue 11 item 8
        self.registry = FlowRegistry(flows_dir, self.prompts, http=http_policy)
        root = self.instance.root
        self.entry = HotlineEntry(
            self.store,
            self.voicemails,
            self.lifecycle,
            self.registry,
            self.prompts,
            number_flows={n.number: n.flow for n in settings.numbers},
            default_flow=settings.ivr.default_flow,
            fallback_queue=settings.ivr.fallback_queue,
            to_inside=lambda path: "/" + path.relative_to(root).as_posix(),
            voicemail_dir=self.instance.spool / "voicemail",
            watchdog=settings.controller.agi_watchdog,
            db=self.writer.run,
            http_policy=http_policy,
        )
        self.agent_store = AgentStore(sessions)
        # Recordings are taken, and served, only from the instance's monitor folder (issue 11 item 6).
        self.monitor = MonitorFolder.of(self.instance.inside, self.instance.host_path)
        self.recordings = RecordingStore(sessions, self.monitor)
        self.callbacks = CallbackStore(
            sessions, max_attempts=settings.acd.callback_attempts, retry_after_s=settings.acd.callback_retry
        )
        tags: dict[str, set[str]] = {}
        for tag, numbers in settings.caller_tags.items():
            for number in numbers:
                tags.setdefault(number, set()).add(tag)
        self.acd = Acd(
            switch=self.switch,
            bus=self.bus,
            view=self.view,
            calls=self.store,
            agent_store=self.agent_store,
            recordings=self.recordings,
            callbacks=self.callbacks,
            queues=queue_configs(settings),
            agents=agents_offline(settings, datetime.now(UTC)),
            queue_settings={
                q.name: {"announce_every": q.announce_every, "max_wait": q.max_wait} for q in settings.queues
            },
            extensions={a.id for a in settings.agents},
            trunk=next((t.name for t in settings.trunks if t.host), ""),
            steps_driver=self._drive,
            host_path=lambda inside: self.instance.host_path(inside),
            tags_of=lambda number: frozenset(tags.get(number, ())),
            callback_queue=settings.acd.callback_queue,
            callback_delay_s=settings.acd.callback_delay,
            db=self.writer.run,
        )
        self.acd.on_wrapup_scheduled(self._wrapup_timer)
        self.call_control = CallControl(self.acd, self.bus)
        self.views = Views(
            self.acd,
            self.call_control,
            self.store,
            self.acd.agent_store,
            self.callbacks,
            queue_titles={q.name: q.title or q.name for q in settings.queues},
            flows=self.registry.snapshot,
        )
        self._control_token = secrets.control_token
        self.agi = FastAgiServer(
            self._agi,
            ctl.agi_host,
            ctl.agi_port,
            command_timeout=ctl.agi_command_timeout,
        )
        self._runner: web.AppRunner | None = None
        self._control: web.AppRunner | None = None
        self._demo: web.AppRunner | None = None
        self._ami_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[None]] = set()
        # Timed jobs (APScheduler): housekeeping now; wrap-up timers, callbacks, archival later.
        self.scheduler = AsyncIOScheduler(timezone=local_zone())
        # The web API's people and the recording archive (issues 5 and 6).
        self.sessions = sessions
        # Password hashes get threads of their own at the lowest CPU priority, so no login flood
        # can hold up the default executor the IVR's look-ups and the database use, nor take the
        # CPU from the call path (issue 11 item 1; P1).
        self._login_pool = hashing_executor(ctl.login_threads)
        self.web_auth = WebAuth(
            UserStore(sessions),
            SessionStore(sessions, idle=SESSION_IDLE, lifetime=SESSION_LIFETIME),
            AuditLog(sessions),
            secure_cookie=ctl.web_secure_cookie,
            limiter=LoginLimiter(
                max_failures=ctl.login_max_failures,
                window_s=ctl.login_window,
                backoff_after=ctl.login_backoff_after,
                backoff_max_s=ctl.login_backoff_max,
            ),
            hasher=self._login_pool,
            max_concurrent=ctl.login_concurrency,
            trusted_proxies=parse_networks(ctl.trusted_proxies),
        )
        self.archive = ArchiveConfig.from_settings(settings)
        self._archive_health: dict[str, Any] = {"last_verify": None, "last_archive": None}
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
            "ivr": {
                "flows": {name: flow.version[:12] for name, flow in self.registry.snapshot().items()},
                "problems": self.registry.last_report.problems[:20],
                "warnings": self.registry.last_report.warnings,
                "reloads": self.registry.reloads,
                "calendars": sorted(self.registry.calendars),
            },
            "events_published": self.bus.published,
            "db_writer": self.writer.health(),
            "acd": self._acd_health(),
            "archive": self._archive_health,
        }

    def _acd_health(self) -> dict[str, Any]:
        states: dict[str, int] = {state.value: 0 for state in AgentState}
        for agent in self.acd.agents.values():
            states[agent.state.value] += 1
        return {"agents": states, "waiting": len(self.acd.waiting), "routed": self.acd.routed}

    async def _agi(self, session: AgiSession) -> None:
        """FastAGI scripts: ``hotline`` (the IVR), ``wait`` (a queue's loop), ``survey`` (after the agent)."""
        if session.script == "wait":
            await self.acd.wait(session)
        elif session.script == "survey":
            await self.acd.survey(session)
        else:
            await self.entry(session)

    async def _drive(self, session: AgiSession, flow: str, steps: Generator[Step, Any, None]) -> Step:
        """Run IVR steps the ACD makes (announcements, the survey, a message) on a caller."""
        uid = session.uniqueid

        async def record_step(visit: Visit) -> None:
            await self.writer.run(
                self.store.add_step, uid, datetime.now(UTC), visit.flow, visit.node, visit.kind, dict(visit.detail)
            )

        async def save_message(recording: Recording) -> int | None:
            return await asyncio.to_thread(
                self.voicemails.add,
                uid,
                session.caller_number,
                flow,
                "queue",
                recording.file_inside,
                recording.duration_s,
                datetime.now(UTC),
            )

        assert self.entry.http is not None
        root = self.instance.root
        driver = AgiDriver(
            session,
            self.prompts,
            self.entry.http,
            to_inside=lambda path: "/" + path.relative_to(root).as_posix(),
            voicemail_dir=self.instance.spool / "voicemail",
            record_step=record_step,
            save_message=save_message,
            watchdog=self.settings.controller.agi_watchdog,
            http_policy=self.entry.http_policy,
        )
        return await driver.drive(steps)

    def _wrapup_timer(self, agent_id: str, when: datetime) -> None:
        """End the agent's wrap-up on time (T4); the one-second tick is the backstop."""
        self.scheduler.add_job(
            self.acd.tick,
            "date",
            run_date=when,
            id=f"wrapup-{agent_id}",
            replace_existing=True,
            misfire_grace_time=None,
        )

    async def start(self) -> None:
        """Bind FastAGI and the web port, and start the AMI link (which retries by itself)."""
        ctl = self.settings.controller
        # Database work runs in worker threads (asyncio.to_thread). SQLite takes one writer at a
        # time: more threads only wait on its lock and on the GIL, which cost the controller a
        # third of its CPU under load (docs/PERFORMANCE.md). PostgreSQL writes in parallel.
        workers = 2 if self.settings.database_url.startswith("sqlite") else 8
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hotline-db")
        )
        self.writer.start()
        # Flows (and their prompts) are ready before the first call can arrive.
        await asyncio.to_thread(self.registry.reload)
        await self.entry.start()
        try:
            await self.agi.start()
        except OSError as exc:
            raise HotlineError(
                f"cannot listen for FastAGI on {ctl.agi_host}:{ctl.agi_port} ({exc.strerror}); "
                "is another controller running? ('hotline down', or change [controller] agi_port)"
            ) from exc
        await self.acd.restore()
        app = make_app(self.health, middlewares=[session_middleware])
        app[AUTH_KEY] = self.web_auth
        add_api_routes(
            app,
            replay=ReplayContext(self.sessions, self.archive, self.monitor.host),
            views=self.views,
            flows=FlowAdmin(
                self.settings.flows_path,
                self.registry,
                self.reload_flows,
                lambda: self.settings,
                self.new_sip_password,
                self.save_agent,
                self.remove_agent,
                self.save_queue,
            ),
        )
        app[LIVE_KEY] = LiveSockets(ctl.live_sockets_per_session)
        add_frontend_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # The control endpoint and the whole health report: loopback only, never web_host.
        self._control = web.AppRunner(
            make_control_site(self.acd, self.call_control, self._control_token, self.health), access_log=None
        )
        await self._control.setup()
        for runner, host, port, key, what in (
            (self._runner, ctl.web_host, ctl.web_port, "web_port", "the web page"),
            (self._control, "127.0.0.1", ctl.control_port, "control_port", "the control endpoint"),
        ):
            try:
                await web.TCPSite(runner, host, port).start()
            except OSError as exc:
                await self.agi.close(grace=0)
                raise HotlineError(
                    f"cannot listen for {what} on {host}:{port} ({exc.strerror}); "
                    f"stop the program using it or change [controller] {key}"
                ) from exc
        await self._start_demo_api()
        self._ami_task = asyncio.create_task(self.ami.run(), name="ami-link")
        if self.settings.ivr.watch_interval > 0:
            self._watch_task = asyncio.create_task(
                self.registry.watch(self.settings.ivr.watch_interval), name="ivr-watch"
            )
        self.scheduler.add_job(self._prune_answers, "interval", minutes=10, id="prune-answers")
        self.scheduler.add_job(self.acd.tick, "interval", seconds=1, id="acd-tick", coalesce=True, max_instances=1)
        self.scheduler.add_job(
            self.acd.place_callbacks, "interval", seconds=2, id="callbacks", coalesce=True, max_instances=1
        )
        self._schedule_archive()
        self.scheduler.start()
        pid_file = controller_pid_file(self.settings)
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(str(os.getpid()))
        log.info(
            "controller started",
            extra={
                "agi_port": self.agi.port,
                "web": f"http://{ctl.web_host}:{ctl.web_port}/",
                "control": f"http://127.0.0.1:{ctl.control_port}/api/control/",
            },
        )

    def _schedule_archive(self) -> None:
        """Archive finished recordings every few minutes; back up, verify the last week and purge
        what retention allows once a day; verify everything once a week (decision 0010)."""
        settings = self.settings.archive
        hour, minute = (int(part) for part in settings.daily_at.split(":"))
        self.scheduler.add_job(
            self._archive_job, "interval", seconds=settings.archive_every, id="archive", coalesce=True, max_instances=1
        )
        self.scheduler.add_job(
            self._daily_archive_job, "cron", hour=hour, minute=minute, id="archive-daily", coalesce=True,
            max_instances=1, misfire_grace_time=3600,
        )  # fmt: skip
        self.scheduler.add_job(
            self._full_verify_job, "cron", day_of_week="sun", hour=(hour + 1) % 24, minute=minute,
            id="archive-weekly", coalesce=True, max_instances=1, misfire_grace_time=3600,
        )  # fmt: skip
        self.scheduler.add_job(self._prune_sessions, "interval", minutes=15, id="prune-sessions")
        self._spawn_refresh_archive_health()

    def _spawn_refresh_archive_health(self) -> None:
        asyncio.get_running_loop().create_task(self._refresh_archive_health())

    async def _refresh_archive_health(self) -> None:
        def read() -> dict[str, Any]:
            verify = last_verify(self.sessions)
            run = last_run(self.sessions, "archive")
            return {
                "summary": archive_summary(self.sessions),
                "last_verify": None
                if verify is None
                else {
                    "ok": verify.ok,
                    "at": verify.finished_at.isoformat(),
                    "findings": len(verify.findings),
                    "chain_head": verify.chain_head,
                },
                "last_archive": None
                if run is None
                else {"ok": run.ok, "at": run.finished_at.isoformat(), "counts": run.counts, "error": run.error},
            }

        try:
            self._archive_health = await asyncio.to_thread(read)
        except Exception:
            log.exception("archive health not read")

    async def _archive_job(self) -> None:
        try:
            result = await asyncio.to_thread(archive_recordings, self.sessions, self.archive)
        except ArchiveBusy:
            return  # a run by hand holds the lock: next round
        except Exception:
            log.exception("archive run failed")
            return
        if result.archived or result.failed or result.error:
            log.info("archive run", extra={"counts": result.counts(), "error": result.error})
        await self._refresh_archive_health()

    async def _daily_archive_job(self) -> None:
        today = datetime.now(local_zone()).date()
        try:
            if self.archive.backup is not None:
                await asyncio.to_thread(backup_archive, self.sessions, self.archive)
            report = await asyncio.to_thread(
                partial(verify_archive, self.sessions, self.archive, days=(today - timedelta(days=7), today))
            )
            if not report.ok:
                log.error("archive verify found problems", extra={"counts": report.counts()})
            await asyncio.to_thread(purge_expired, self.sessions, self.archive)
        except ArchiveBusy:
            log.warning("daily archive job skipped: another archive job holds the lock")
        except Exception:
            log.exception("daily archive job failed")
        await self._refresh_archive_health()

    async def _full_verify_job(self) -> None:
        try:
            report = await asyncio.to_thread(verify_archive, self.sessions, self.archive)
            if not report.ok:
                log.error("archive verify found problems", extra={"counts": report.counts()})
        except Exception:
            log.exception("weekly archive verify failed")
        await self._refresh_archive_health()

    async def _prune_sessions(self) -> None:
        await asyncio.to_thread(self.web_auth.sessions.prune, datetime.now(UTC))

    async def _start_demo_api(self) -> None:
        port = self.settings.ivr.demo_api_port
        if not port:
            return
        self._demo = web.AppRunner(make_demo_api(), access_log=None)
        await self._demo.setup()
        try:
            await web.TCPSite(self._demo, "127.0.0.1", port).start()
        except OSError as exc:
            # The demo is a convenience: a taken port must not stop the contact center.
            log.warning("demo self-service API not started", extra={"port": port, "error": exc.strerror})
            await self._demo.cleanup()
            self._demo = None

    async def _prune_answers(self) -> None:
        """Read-back prompts hold personal data (pension amounts): keep them one hour at most."""
        removed = await asyncio.to_thread(self.prompts.prune_dynamic, ANSWER_PROMPT_MAX_AGE_S)
        if removed:
            log.info("pruned read-back prompts", extra={"removed": removed})

    async def new_sip_password(self, agent_id: str) -> str:
        """Give an agent's SIP account a new password (admin page, shown once): secrets file,
        the switch's PJSIP config rendered again and reloaded. The phone must then register
        with the new password; calls in progress are not touched. KeyError: no such agent."""
        secrets, password = await asyncio.to_thread(rotate_agent_password, self.settings, agent_id)
        await asyncio.to_thread(render_hotline, self.settings, secrets)
        await self._reload_sip_accounts()
        log.info("agent SIP password replaced", extra={"agent": agent_id})
        return password

    async def apply_roster(self, new: Settings, *, switch: bool) -> Secrets:
        """Take edited agents and queues (the admin page): the ACD at once; with ``switch``, the
        agents' SIP accounts too (secrets for new agents, PJSIP rendered again and reloaded)."""
        self.settings = self.settings.model_copy(update={"agents": new.agents, "queues": new.queues})
        settings = self.settings
        self.acd.reconfigure(
            queue_configs(settings),
            {q.name: {"announce_every": q.announce_every, "max_wait": q.max_wait} for q in settings.queues},
            agents_offline(settings, datetime.now(UTC)),
            {a.id for a in settings.agents},
        )
        self.views.queue_titles = {q.name: q.title or q.name for q in settings.queues}
        secrets = await asyncio.to_thread(load_or_create, settings)
        if switch:
            await asyncio.to_thread(render_hotline, settings, secrets)
            await self._reload_sip_accounts()
        return secrets

    async def _reload_sip_accounts(self) -> None:
        """Reload the switch's SIP accounts (agents' phones). Asterisk's does it through the CLI's
        root-only control socket: the controller's AMI user has no ``command`` class (issue 11 item 5)."""
        await self.switch.reload_accounts()

    async def save_agent(self, agent_id: str, fields: dict[str, Any], create: bool) -> str | None:
        """Add or change an agent from the admin page; a new agent's SIP password is returned
        (shown once). Raises RosterError (refused, nothing written) or HotlineError."""
        roster = self._roster()
        async with self._roster_lock:
            new = await asyncio.to_thread(roster.save_agent, agent_id, fields, create=create)
            secrets = await self.apply_roster(new, switch=create)
        log.info("agent saved from the web", extra={"agent": agent_id, "new": create})
        return secrets.agent_password(agent_id) if create else None

    async def remove_agent(self, agent_id: str) -> None:
        """Remove a logged-out agent (admin page): settings file, ACD, SIP account."""
        roster = self._roster()
        async with self._roster_lock:
            agent = self.acd.agents.get(agent_id)
            if agent is None:
                raise RosterError(f"没有坐席 {agent_id} (no agent {agent_id})")
            if agent.state is not AgentState.OFFLINE:
                raise RosterError(f"坐席 {agent_id} 须先签出 (agent {agent_id} must be logged out first)")
            new = await asyncio.to_thread(roster.remove_agent, agent_id)
            await self.apply_roster(new, switch=True)
        log.info("agent removed from the web", extra={"agent": agent_id})

    async def save_queue(self, name: str, fields: dict[str, Any]) -> None:
        """Change a queue's settings (admin page); callers waiting are ordered again."""
        roster = self._roster()
        async with self._roster_lock:
            new = await asyncio.to_thread(roster.save_queue, name, fields)
            await self.apply_roster(new, switch=False)
        log.info("queue saved from the web", extra={"queue": name})

    def _roster(self) -> Roster:
        if self.roster is None:
            raise RosterError("没有配置文件，无法保存 (the controller runs without a settings file)")
        return self.roster

    async def reload_flows(self) -> None:
        """Reload IVR flows (SIGHUP, 'hotline ivr reload'); calls in progress are not affected."""
        await asyncio.to_thread(self.registry.reload)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload_soon)

    def _reload_soon(self) -> None:
        # Keep a reference: the loop holds tasks only weakly.
        task = asyncio.ensure_future(self.reload_flows())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        """Stop in reverse order; calls in progress keep running in the switch (dialplan)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        await self.ami.stop()
        if self._ami_task is not None:
            self._ami_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ami_task
        await self.agi.close()
        await self.acd.close()
        await self.entry.close()
        for runner in (self._runner, self._control, self._demo):
            if runner is not None:
                await runner.cleanup()
        self._login_pool.shutdown(wait=False, cancel_futures=True)
        controller_pid_file(self.settings).unlink(missing_ok=True)
        await self.bus.drain()
        await asyncio.to_thread(self.writer.close)
        log.info("database writer stopped", extra=self.writer.health())
        self.engine.dispose()
        self._stopped.set()
        log.info("controller stopped")

    def request_stop(self) -> None:
        self._stopped.set()

    async def run_until_stopped(self) -> None:
        await self._stopped.wait()
