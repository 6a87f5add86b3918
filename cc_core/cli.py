"""The ``hotline`` command. Every error a user can cause ends in one line that says what to do.

hotline up                      switch + controller + health page; Ctrl-C stops what it started
hotline down                    stop what 'hotline up' started (by PID)
hotline status                  is the switch running, is AMI connected
hotline controller              the controller alone (the switch must be running)
hotline switch start|stop|restart|status
hotline switch cli "core show channels"
hotline db upgrade|current
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

from cc_core import logs
from cc_core.calendars.days import local_zone, use_timezone
from cc_core.errors import HotlineError
from cc_core.logs import mask_personal_data
from cc_core.secrets import Secrets, load_or_create
from cc_core.settings import Settings, load_settings, settings_path
from cc_core.switch.config import render_hotline
from cc_core.switch.instance import Instance
from cc_core.switch.process import Ports, Switch, pid_alive

EXIT_ERROR = 2


def _switch(settings: Settings) -> Switch:
    from cc_core.app import switch_pid_file

    return Switch(Instance(settings.switch_root, settings.switch.instance), switch_pid_file(settings))


def _ports(settings: Settings) -> Ports:
    sw = settings.switch
    return Ports(sip_udp=sw.sip_port, ami_tcp=sw.ami_port, http_tcp=sw.http_port, sip_host=sw.sip_bind)


def _up_file(settings: Settings) -> Path:
    return settings.state_path / "run" / "hotline-up.json"


def start_switch(settings: Settings, secrets: Secrets) -> tuple[Switch, bool]:
    """Render the config and start the switch unless it runs; return (switch, started_by_us)."""
    switch = _switch(settings)
    render_hotline(settings, secrets)
    if switch.is_running():
        switch.cli("module reload")
        return switch, False
    switch.start(_ports(settings), timeout=settings.switch.start_timeout)
    return switch, True


async def _run_controller(settings: Settings, secrets: Secrets, config: Path | None = None) -> None:
    from cc_core.app import Controller

    controller = Controller(settings, secrets, config_file=settings_path(config))
    controller.install_signal_handlers()
    await controller.start()
    try:
        await controller.run_until_stopped()
    finally:
        await controller.stop()


def cmd_controller(settings: Settings, args: argparse.Namespace) -> int:
    from cc_core.db.session import upgrade

    secrets = load_or_create(settings)
    upgrade(settings.database_url)
    asyncio.run(_run_controller(settings, secrets, args.config))
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from cc_core.db.session import upgrade

    up_file = _up_file(settings)
    if up_file.exists():
        state = json.loads(up_file.read_text())
        if pid_alive(int(state.get("pid", 0))):
            raise HotlineError(f"hotline is already up (pid {state['pid']}); stop it with 'hotline down'")
    secrets = load_or_create(settings)
    upgrade(settings.database_url)
    started = False
    switch = None
    if not args.no_switch:
        switch, started = start_switch(settings, secrets)
        print(f"hotline: switch {'started' if started else 'already running'} (pid {switch.pid})", flush=True)
    up_file.parent.mkdir(parents=True, exist_ok=True)
    up_file.write_text(json.dumps({"pid": os.getpid(), "started_switch": started}))
    ctl = settings.controller
    print(
        f"hotline: controller on FastAGI {ctl.agi_host}:{ctl.agi_port}, web http://{ctl.web_host}:{ctl.web_port}/,"
        f" control http://127.0.0.1:{ctl.control_port}/api/control/ — Ctrl-C or 'hotline down' stops it",
        flush=True,
    )
    try:
        asyncio.run(_run_controller(settings, secrets, args.config))
    finally:
        if started and switch is not None:
            switch.stop()
            print("hotline: switch stopped", flush=True)
        up_file.unlink(missing_ok=True)
    return 0


def cmd_down(settings: Settings, _args: argparse.Namespace) -> int:
    up_file = _up_file(settings)
    if not up_file.exists():
        print("hotline: nothing to stop ('hotline up' is not running)")
        return 0
    state = json.loads(up_file.read_text())
    pid = int(state.get("pid", 0))
    if pid and pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    # If 'up' died without cleaning up, stop the switch it had started.
    if state.get("started_switch"):
        _switch(settings).stop()
    up_file.unlink(missing_ok=True)
    print("hotline: stopped")
    return 0


def control_url(settings: Settings, path: str) -> str:
    """The controller's loopback-only control site (``[controller] control_port``), not the web port."""
    return f"http://127.0.0.1:{settings.controller.control_port}/api/control/{path}"


def fetch_health(settings: Settings, timeout: float = 3.0) -> dict[str, Any] | None:
    """The controller's whole health report (the control site, with the control token); None
    when it does not answer. The web port's /health tells only up or down."""
    request = urllib.request.Request(control_url(settings, "health"))  # noqa: S310 (see below)
    request.add_header("Authorization", f"Bearer {load_or_create(settings).control_token}")
    try:
        # Plain http to the controller on loopback, built from the settings, never a user's URL.
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            data: dict[str, Any] = json.loads(answer.read())
            return data
    except urllib.error.HTTPError as exc:
        data = json.loads(exc.read() or b"{}")
        return data
    except (OSError, ValueError):
        return None


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    switch = _switch(settings)
    pid = switch.pid
    health = fetch_health(settings)
    report = {
        "switch": {"running": pid is not None, "pid": pid},
        "controller": health if health is not None else {"status": "down"},
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(f"switch:     {'running (pid ' + str(pid) + ')' if pid else 'stopped'}")
        if health is None:
            print("controller: not running")
        else:
            ami = health.get("ami", {})
            detail = "connected" if ami.get("connected") else f"{ami.get('state')} ({ami.get('last_error')})"
            print(f"controller: {health.get('status')} — AMI {detail}")
            agi = health.get("fastagi", {})
            print(f"fastagi:    {agi.get('listening')} active={agi.get('active')} accepted={agi.get('accepted')}")
            ivr = health.get("ivr", {})
            problems = ivr.get("problems", [])
            flows = ", ".join(sorted(ivr.get("flows", {}))) or "(none)"
            print(f"ivr:        flows {flows}; {len(problems)} problem(s)")
            for problem in problems[:10]:
                print(f"            {problem}")
            for warning in ivr.get("warnings", []):
                print(f"            warning: {warning}")
    ok = pid is not None and health is not None and health.get("status") == "ok"
    return 0 if ok else 1


def cmd_switch(settings: Settings, args: argparse.Namespace) -> int:
    switch = _switch(settings)
    if args.action == "start":
        switch, started = start_switch(settings, load_or_create(settings))
        print(f"hotline: switch {'started' if started else 'already running'} (pid {switch.pid})")
    elif args.action == "stop":
        print("hotline: switch stopped" if switch.stop() else "hotline: switch was not running")
    elif args.action == "restart":
        switch.stop()
        switch, _ = start_switch(settings, load_or_create(settings))
        print(f"hotline: switch restarted (pid {switch.pid})")
    elif args.action == "status":
        pid = switch.pid
        if pid is None:
            print("switch: stopped")
            return 1
        print(f"switch: running (pid {pid})")
        print(switch.cli("core show uptime").strip())
    elif args.action == "cli":
        if not args.command:
            raise HotlineError('give the command to run, e.g. hotline switch cli "core show channels"')
        print(switch.cli(" ".join(args.command)), end="")
    return 0


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from cc_core.db.session import current_revision, upgrade

    if args.action == "upgrade":
        print(f"hotline: database at revision {upgrade(settings.database_url)}")
    else:
        print(current_revision(settings.database_url) or "(empty database)")
    return 0


def _load_ivr(settings: Settings, folder: Path | None) -> tuple[Any, Any, list[str]]:
    """Flows and calendars of the folder, with every problem as a printable line."""
    from cc_core.calendars import CalendarError, load_calendars
    from cc_core.ivr.loader import load_flows

    folder = folder or settings.flows_path
    if not folder.is_dir():
        raise HotlineError(f"no IVR flows folder at {folder}; set [ivr] flows_dir in hotline.toml")
    problems: list[str] = []
    calendars: Any = {}
    try:
        calendars = load_calendars(folder / "calendars")
    except CalendarError as exc:
        problems.append(str(exc))
    except FileNotFoundError:
        pass
    flows, flow_problems = load_flows(folder, http=_http_policy(settings))
    problems.extend(str(p) for p in flow_problems)
    return flows, calendars, problems


def _http_policy(settings: Settings) -> Any:
    """The hosts IVR http nodes may call, ``[ivr] http_allow`` (checked by validate and --http)."""
    from cc_core.http_policy import HttpPolicy

    return HttpPolicy.of(settings.ivr.http_allow)


def _validate_files(settings: Settings, names: list[str], folder: Path | None) -> int:
    """``hotline ivr validate FILE…``: check exactly the files given, each as if published into
    the flows folder (its prompts, calendars and other flows); a folder is checked whole and a
    file under ``calendars/`` as a calendar. Exit 1 if any has a problem."""
    from cc_core.calendars import CalendarError, load_calendar
    from cc_core.ivr.loader import check_file

    folder = folder or settings.flows_path
    problems: list[str] = []
    for name in names:
        path = Path(name)
        if not path.exists():
            raise HotlineError(
                f"找不到文件 {name} (no such file: {name}; give flow files such as ivr_flows/main.yaml, "
                "or no file to check the whole flows folder)"
            )
        if path.is_dir():
            flows, _calendars, found = _load_ivr(settings, path)
            problems.extend(found)
            for line in found:
                print(line)
            for flow_name, flow in sorted(flows.items()):
                print(f"ok: {flow.source}: flow {flow_name} ({len(flow.nodes)} nodes, start {flow.start})")
            continue
        if path.parent.name == "calendars":
            try:
                calendar = load_calendar(path)
            except CalendarError as exc:
                problems.append(str(exc))
                print(exc)
            else:
                print(f"ok: {path}: calendar {path.stem} ({len(calendar.holidays)} holidays)")
            continue
        flow, found_in_file = check_file(path, folder, http=_http_policy(settings))
        for problem in found_in_file:
            problems.append(str(problem))
            print(problem)
        if flow is not None:
            print(f"ok: {path}: flow {flow.name} ({len(flow.nodes)} nodes, start {flow.start})")
    if problems:
        print(f"hotline: {len(problems)} problem(s); a flow with problems is not loaded", file=sys.stderr)
    return 1 if problems else 0


def cmd_ivr(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "reload":
        if args.flow:
            given = " ".join(args.flow)
            raise HotlineError(f"reload 不带参数 (reload takes no argument, got {given}): it reloads every flow")
        return _reload_flows(settings)
    if args.action == "validate" and args.flow:
        return _validate_files(settings, args.flow, args.dir)
    flows, calendars, problems = _load_ivr(settings, args.dir)
    if args.action == "validate":
        for line in problems:
            print(line)
        for name, flow in sorted(flows.items()):
            print(f"ok: {flow.source.name}: flow {name} ({len(flow.nodes)} nodes, start {flow.start})")
        if problems:
            print(f"hotline: {len(problems)} problem(s); flows with problems are not loaded", file=sys.stderr)
        return 1 if problems else 0
    if len(args.flow) > 1:
        raise HotlineError(f"只能指定一个流程 (name one flow, not {len(args.flow)}: 'hotline ivr {args.action} main')")
    name = args.flow[0] if args.flow else ""
    if not name:
        raise HotlineError("name the flow, e.g. 'hotline ivr graph main'")
    if name not in flows:
        detail = "; ".join(p for p in problems if f"/{name}.yaml" in p)[:300]
        raise HotlineError(
            f"flow {name!r} is not loadable{': ' + detail if detail else ''} (see 'hotline ivr validate')"
        )
    if args.action == "graph":
        from cc_core.ivr.graph import render_graph

        out = args.out or settings.state_path / "graphs" / f"{name}.{args.format}"
        out.parent.mkdir(parents=True, exist_ok=True)
        print(render_graph(flows[name], out, args.format))
        return 0
    from cc_core.ivr.simulate import http_fetch, simulate

    at = _parse_at(args.at)
    inputs = [d.strip() for d in args.digits.split(",")] if args.digits else []
    policy = _http_policy(settings)
    fetch = functools.partial(http_fetch, policy=policy) if args.http else None
    result = simulate(flows, name, inputs, calendars, at, fetch)
    print(f"流程 {name}，时间 {at:%Y-%m-%d %H:%M}，输入 {','.join(inputs) or '(无)'}")
    for line in result.lines:
        print(line)
    print(f"结果: {result.outcome}")
    return 0


def _parse_at(text: str | None) -> Any:
    from datetime import datetime

    beijing = local_zone()
    if not text:
        return datetime.now(beijing)
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=beijing)
        except ValueError:
            continue
    raise HotlineError(f'--at {text!r} is not a time like "2026-10-01 10:00" (Beijing time)')


def _reload_flows(settings: Settings) -> int:
    from cc_core.app import controller_pid_file

    pid_file = controller_pid_file(settings)
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        pid = 0
    if not pid or not pid_alive(pid):
        raise HotlineError("the controller is not running ('hotline up' first); flows load when it starts")
    os.kill(pid, signal.SIGHUP)
    print(f"hotline: asked the controller (pid {pid}) to reload the IVR flows; 'hotline status' shows problems")
    return 0


def cmd_voicemail(settings: Settings, args: argparse.Namespace) -> int:
    from cc_core.calls.voicemail import VoicemailStore
    from cc_core.db.session import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    try:
        messages = VoicemailStore(make_sessionmaker(engine)).list(limit=args.limit, unheard_only=args.unheard)
    finally:
        engine.dispose()
    if not messages:
        print("没有留言 (no messages)")
    for m in messages:
        heard = f"已听 {m.listened_by}" if m.listened_at else "未听"
        print(
            f"{m.id:5d}  {m.created_at:%Y-%m-%d %H:%M}  {m.caller_number:<14} {m.duration_s:5.1f}s  "
            f"{m.flow}/{m.node}  {heard}  {m.file}"
        )
    return 0


def _day(text: str | None) -> date:
    if not text:
        return datetime.now(local_zone()).date()
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise HotlineError(f"--date must be YYYY-MM-DD, got {text!r}") from exc


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    """The day's acceptance figures (T10) and its callback list, from the database."""
    from cc_core.calls.callbacks import CallbackStore
    from cc_core.calls.store import CallStore
    from cc_core.db.session import make_engine, make_sessionmaker

    day = _day(args.date)
    engine = make_engine(settings.database_url)
    try:
        sessions = make_sessionmaker(engine)
        if args.what == "callbacks":
            callbacks = CallbackStore(sessions).list_day(day)
            if args.json:
                rows = [
                    {
                        "id": c.id,
                        "number": mask_personal_data(c.number),
                        "reason": c.reason,
                        "status": c.status,
                        "attempts": c.attempts,
                        "agent": c.agent_id,
                        "created_at": c.created_at.isoformat(),
                        "reached_at": c.reached_at.isoformat() if c.reached_at else None,
                    }
                    for c in callbacks
                ]
                print(json.dumps(rows, ensure_ascii=False, indent=2))
                return 0
            if not callbacks:
                print(f"{day} 没有回电 (no callbacks)")
            for c in callbacks:
                print(
                    f"{c.id:5d}  {c.created_at.astimezone(local_zone()):%H:%M}  {mask_personal_data(c.number):<14} "
                    f"{c.reason:<10} {c.status:<12} {c.attempts} 次  {c.agent_id or '-'}"
                )
            return 0
        stats = CallStore(sessions).day_stats(day)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps({**asdict(stats), "day": stats.day.isoformat()}, ensure_ascii=False, indent=2))
        return 0
    print(
        f"{stats.day}  进线 offered {stats.offered}  接通 answered {stats.answered}  放弃 abandoned {stats.abandoned}"
    )
    print(f"接通率 answered rate {stats.answered_rate:.1%}  回电率 callback rate {stats.callback_rate:.1%}")
    target = "达标 target met" if stats.total_rate >= 1.0 - 1e-9 else "未达标 below the 100% target"
    print(f"合计 total {stats.total_rate:.1%}  ({target}: 95% answered + 5% called back)")
    return 0


def cmd_recordings(settings: Settings, args: argparse.Namespace) -> int:
    """The recording archive by hand (T5; decision 0010): archive, backup, verify, purge, holds."""
    from datetime import UTC

    from cc_core import archive as arc
    from cc_core.db.session import make_engine, make_sessionmaker

    config = arc.ArchiveConfig.from_settings(settings)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    ok = True
    try:
        if args.action == "status":
            summary = arc.archive_summary(sessions)
            last = arc.last_verify(sessions)
            print("  ".join(f"{k} {v}" for k, v in summary.items()))
            if last is None:
                print("verify: never run")
            else:
                state = "ok" if last.ok else f"{len(last.findings)} problem(s)"
                print(f"last verify {last.finished_at.astimezone(local_zone()):%Y-%m-%d %H:%M}: {state}")
            for failed in arc.failed_recordings(sessions):
                print(f"failed: recording {failed.id} ({failed.uniqueid}): {failed.error}")
            return 0
        if args.action in ("hold", "unhold"):
            if args.id is None or not args.reason:
                raise HotlineError(f"'hotline recordings {args.action}' needs the recording id and --reason")
            change = arc.set_hold if args.action == "hold" else arc.clear_hold
            who = args.by or os.environ.get("SUDO_USER") or os.environ.get("USER") or "cli"
            view = change(sessions, args.id, by=who, reason=args.reason, at=datetime.now(UTC))
            print(f"recording {view.recording_id}: {'held' if view.held else 'not held'}")
            return 0
        with arc.ProgressBar(args.action) as bar:
            if args.action == "archive":
                result = arc.archive_recordings(sessions, config, retry_failed=args.retry_failed, progress=bar)
                counts, ok, lines = result.counts(), result.ok, [f"failed {i}: {why}" for i, why in result.failed]
                lines += [f"stopped: {result.error}"] if result.error else []
            elif args.action == "backup":
                backed = arc.backup_archive(sessions, config, progress=bar)
                counts, ok, lines = backed.counts(), backed.ok, [f"{i}: {why}" for i, why in backed.problems]
                lines += [f"stopped: {backed.error}"] if backed.error else []
            elif args.action == "verify":
                report = arc.verify_archive(sessions, config, progress=bar)
                counts, ok, lines = report.counts(), report.ok, [f.line() for f in report.findings]
            else:
                purged = arc.purge_expired(sessions, config, dry_run=args.dry_run, progress=bar)
                counts = {"purged": len(purged.purged), "held": len(purged.held), "freed_bytes": purged.freed_bytes}
                ok, lines = purged.ok, list(purged.problems)
        for line in lines:
            print(line)
        print(f"{args.action}: " + "  ".join(f"{k} {v}" for k, v in counts.items()) + ("" if ok else "  (problems)"))
    except arc.ArchiveError as exc:
        raise HotlineError(str(exc)) from exc
    finally:
        engine.dispose()
    return 0 if ok else 1


def _read_password(args: argparse.Namespace) -> tuple[str, bool]:
    """The new password: generated (shown once), from stdin, or typed twice; (password, generated)."""
    import getpass
    import secrets as pysecrets

    if args.generate:
        return pysecrets.token_urlsafe(12) + "-7a", True
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    first = getpass.getpass("新密码 (new password): ")
    if getpass.getpass("再输一次 (again): ") != first:
        raise HotlineError("the two passwords differ")
    return first, False


def cmd_user(settings: Settings, args: argparse.Namespace) -> int:
    """Web accounts (P2): there is no default one; the first admin is made here."""
    from datetime import UTC

    from cc_core.auth.passwords import PasswordRejected
    from cc_core.auth.store import AccountError, UserStore
    from cc_core.db.session import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    users = UserStore(make_sessionmaker(engine))
    now = datetime.now(UTC)
    try:
        if args.action == "list":
            for u in users.list():
                state = "停用 disabled" if u.disabled else ""
                print(f"{u.username:<20} {u.role:<10} {u.display_name:<12} {u.agent_id or '-':<6} {state}")
            return 0
        if not args.username:
            raise HotlineError(f"'hotline user {args.action}' needs a user name")
        if args.action == "add":
            if not args.role:
                raise HotlineError("'hotline user add' needs --role (agent, supervisor, admin, reviewer, auditor)")
            password, generated = _read_password(args)
            user = users.add(args.username, args.role, password, now, display_name=args.name or "", agent_id=args.agent)
            print(f"created {user.username} ({user.role})")
        elif args.action == "passwd":
            password, generated = _read_password(args)
            users.set_password(args.username, password, now)
            print(f"password changed for {args.username}; their sessions are closed")
        else:
            users.set_disabled(args.username, args.action == "disable")
            print(f"{args.username}: {args.action}d")
            return 0
        if generated:
            print(f"password (shown once, write it down): {password}")
        return 0
    except (AccountError, PasswordRejected) as exc:
        raise HotlineError(str(exc)) from exc
    finally:
        engine.dispose()


def control_request(settings: Settings, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Send a command to the running controller's loopback endpoint with the control token."""

    token = load_or_create(settings).control_token
    url = control_url(settings, path)
    data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")  # noqa: S310
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        # Plain http to the controller on loopback, built from the settings, never a user's URL.
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            result: dict[str, Any] = json.loads(answer.read())
            return result
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read() or b"{}").get("error") or exc.reason
        except ValueError:
            message = exc.reason
        raise HotlineError(str(message)) from exc
    except (OSError, ValueError) as exc:
        raise HotlineError(f"the controller is not reachable at {url} ('hotline up' first): {exc}") from exc


# Call control on the agent's current call (T3): the control endpoint's agents/<id>/call/<action>.
CALL_ACTIONS = (
    "hold",
    "unhold",
    "transfer",
    "consult",
    "consult-cancel",
    "hand-over",
    "conference",
    "drop-third",
    "leave",
    "hangup",
)
# ``hotline agent <command>`` → the control endpoint's path under agents/<id>/: the actions of
# cc_core/web/agent_actions.py, the table the workstation serves too (issue 12 item 7). The CLI
# keeps its short words for the wrap-up (wrapup-done, wrapup-more); tests/web/test_agent_actions.py
# checks that every path here is an action of the table.
AGENT_PATHS: dict[str, str] = {
    "login": "login",
    "logout": "logout",
    "pause": "pause",
    "resume": "resume",
    "chat-start": "chat-start",
    "chat-end": "chat-end",
    "wrapup-done": "wrapup/finish",
    "wrapup-more": "wrapup/extend",
    "summary": "summary",
    **{action: f"call/{action}" for action in CALL_ACTIONS},
}


def agent_path(agent_id: str, command: str) -> str:
    """The control endpoint's path for ``hotline agent <command> <agent_id>`` (a path such as
    ``call/hold`` or ``callbacks/7/call`` passes as it is)."""
    return f"agents/{agent_id}/{AGENT_PATHS.get(command, command)}"


def cmd_agent(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "list":
        status = control_request(settings, "acd")
        if args.json:
            print(json.dumps(status, ensure_ascii=False, indent=2))
            return 0
        for agent_id, agent in status["agents"].items():
            extra = agent.get("pause_reason") or agent.get("wrapup_until") or ""
            print(f"{agent_id:<6} {agent['state']:<10} {agent.get('extension') or '-':<14} {extra}")
        print(f"waiting: {len(status['waiting'])}")
        return 0
    if not args.agent:
        raise HotlineError(f"'hotline agent {args.action}' needs the agent's id")
    body: dict[str, Any] = {}
    if args.action == "login" and args.extension:
        body["extension"] = args.extension
    if args.action == "pause":
        body["reason"] = args.reason
    if args.action == "wrapup-more":
        body["seconds"] = args.seconds
    if args.action == "summary":
        body["text"] = args.text or ""
        if args.call:
            body["call"] = args.call
    if args.action in CALL_ACTIONS:
        if args.action in ("transfer", "consult"):
            if not args.to:
                raise HotlineError(f"'hotline agent {args.action}' needs --to (agent:<id>, queue:<name>, number:<n>)")
            body["to"] = args.to
        answer = control_request(settings, agent_path(args.agent, args.action), body)
        print(f"{args.agent}: {args.action} done on call {answer.get('call')}")
        return 0
    answer = control_request(settings, agent_path(args.agent, args.action), body)
    agent = answer.get("agent")
    if agent:
        print(f"{agent['id']}: {agent['state']}" + (f" ({agent['pause_reason']})" if agent.get("pause_reason") else ""))
    else:
        print(f"summary stored on call {answer.get('call')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description="Hotline contact center")
    parser.add_argument("--config", type=Path, help="settings file (default: ./hotline.toml or $HOTLINE_CONFIG)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the switch, the controller and the health page")
    up.add_argument("--no-switch", action="store_true", help="do not start the switch")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop what 'hotline up' started").set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="show whether the switch runs and AMI is connected")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    sub.add_parser("controller", help="run the controller alone").set_defaults(func=cmd_controller)
    sw = sub.add_parser("switch", help="control the switch (Asterisk)")
    sw.add_argument("action", choices=["start", "stop", "restart", "status", "cli"])
    sw.add_argument("command", nargs="*", help="for 'cli': the Asterisk CLI command")
    sw.set_defaults(func=cmd_switch)
    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade", "current"])
    db.set_defaults(func=cmd_db)
    ivr = sub.add_parser("ivr", help="IVR flows: validate, graph, simulate, reload")
    ivr.add_argument("action", choices=["validate", "graph", "simulate", "reload"])
    ivr.add_argument(
        "flow",
        nargs="*",
        help="graph, simulate: the flow's name; validate: the flow (or calendar) files to check, "
        "each as if published into the flows folder (none: the whole folder)",
    )
    ivr.add_argument("--dir", type=Path, help="flows folder (default: [ivr] flows_dir)")
    ivr.add_argument("--digits", default="", help="simulate: the caller's inputs, e.g. 1,2,9 (t = no key)")
    ivr.add_argument("--at", help='simulate: the time of the call, e.g. "2026-10-01 10:00" (Beijing)')
    ivr.add_argument("--http", action="store_true", help="simulate: really call the flows' HTTP APIs")
    ivr.add_argument("--out", type=Path, help="graph: output file")
    ivr.add_argument("--format", choices=["svg", "png"], default="svg", help="graph: picture format")
    ivr.set_defaults(func=cmd_ivr)
    vm = sub.add_parser("voicemail", help="messages callers left")
    vm.add_argument("action", choices=["list"])
    vm.add_argument("--limit", type=int, default=50)
    vm.add_argument("--unheard", action="store_true")
    vm.set_defaults(func=cmd_voicemail)
    rec = sub.add_parser("recordings", help="the recording archive: archive, backup, verify, purge, legal holds (T5)")
    rec.add_argument("action", choices=["archive", "backup", "verify", "purge", "hold", "unhold", "status"])
    rec.add_argument("id", nargs="?", type=int, help="hold/unhold: the recording's id")
    rec.add_argument("--reason", help="hold/unhold: why (e.g. the complaint's case number)")
    rec.add_argument("--by", help="hold/unhold: who (default: the login name)")
    rec.add_argument("--retry-failed", action="store_true", help="archive: try recordings that failed before again")
    rec.add_argument("--dry-run", action="store_true", help="purge: only list what would be purged")
    rec.set_defaults(func=cmd_recordings)
    usr = sub.add_parser("user", help="web accounts and roles (no default account exists)")
    usr.add_argument("action", choices=["add", "passwd", "disable", "enable", "list"])
    usr.add_argument("username", nargs="?")
    usr.add_argument("--role", choices=["agent", "supervisor", "admin", "reviewer", "auditor"])
    usr.add_argument("--name", help="the name shown in the pages")
    usr.add_argument("--agent", help="role agent: the ACD agent id this login is")
    usr.add_argument("--generate", action="store_true", help="generate a password and show it once")
    usr.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    usr.set_defaults(func=cmd_user)
    rep = sub.add_parser("report", help="the day's answered and callback rates (T10), its callback list")
    rep.add_argument("what", choices=["day", "callbacks"])
    rep.add_argument("--date", help="the Beijing day, YYYY-MM-DD (default: today)")
    rep.add_argument("--json", action="store_true")
    rep.set_defaults(func=cmd_report)
    ag = sub.add_parser(
        "agent", help="agents: log in and out, pause, wrap-up, summary (T4); hold, transfer, three-way (T3)"
    )
    ag.add_argument(
        "action",
        choices=["list", *AGENT_PATHS],
    )
    ag.add_argument("agent", nargs="?", help="the agent's id")
    ag.add_argument("--extension", help="login: the SIP phone's extension, or m:<mobile number>")
    ag.add_argument("--reason", default="小休", help="pause: why (default 小休, a short break)")
    ag.add_argument("--seconds", type=int, default=60, help="wrapup-more: how much longer")
    ag.add_argument("--text", help="summary: the call's summary")
    ag.add_argument("--call", help="summary: the call's uniqueid (default: the agent's last call)")
    ag.add_argument("--to", help="transfer, consult: agent:<id>, queue:<name> or number:<digits>")
    ag.add_argument("--json", action="store_true", help="list: as JSON")
    ag.set_defaults(func=cmd_agent)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        use_timezone(settings.timezone)  # every day and time the CLI reads or prints is the hotline's
        logs.configure(settings.log.level, settings.log.format)
        # Alembic announces its plugins at INFO on every run; the CLI says what it did itself.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        code: int = args.func(settings, args)
        return code
    except HotlineError as exc:
        print(f"hotline: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into head/less that closed early
        return 0


if __name__ == "__main__":
    sys.exit(main())
