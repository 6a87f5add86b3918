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
import json
import logging
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cc_core import logs
from cc_core.errors import HotlineError
from cc_core.secrets import Secrets, load_or_create
from cc_core.settings import Settings, load_settings
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


async def _run_controller(settings: Settings, secrets: Secrets) -> None:
    from cc_core.app import Controller

    controller = Controller(settings, secrets)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, controller.request_stop)
    await controller.start()
    try:
        await controller.run_until_stopped()
    finally:
        await controller.stop()


def cmd_controller(settings: Settings, _args: argparse.Namespace) -> int:
    from cc_core.db.session import upgrade

    secrets = load_or_create(settings)
    upgrade(settings.database_url)
    asyncio.run(_run_controller(settings, secrets))
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
        f"hotline: controller on FastAGI {ctl.agi_host}:{ctl.agi_port}, health page http://{ctl.web_host}:{ctl.web_port}/"
        " — Ctrl-C or 'hotline down' stops it",
        flush=True,
    )
    try:
        asyncio.run(_run_controller(settings, secrets))
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


def fetch_health(settings: Settings, timeout: float = 3.0) -> dict[str, Any] | None:
    ctl = settings.controller
    url = f"http://{ctl.web_host}:{ctl.web_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
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


if __name__ == "__main__":
    sys.exit(main())
