"""The contact center under test: its settings, its switch and its controller process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_urlsafe

from cc_core.secrets import Secrets, load_or_create
from cc_core.settings import Settings, load_settings
from cc_core.switch.config import render_hotline, write_if_changed
from cc_core.switch.instance import Instance
from cc_core.switch.process import Ports, Switch, pid_alive
from tests.harness.flows import ACD_NUMBERS, REQUEST_NUMBER
from tests.harness.ports import CC_RTP, free_port

REPO = Path(__file__).resolve().parents[2]
AGENTS = ("1001", "1002", "1003", "1004")
# Phones the simulated world registers; 1004 is left for tests that register with SIPp.
WORLD_PHONES = ("1001", "1002", "1003")
HOTLINE_NUMBER = "12333"
# The harness's own AMI user on the contact center's switch. The product's user (the
# controller's) has only the classes the controller needs and an event filter (issue 11 item 5);
# tests also read AGIExecStart, Newexten, VarSet… and send PJSIPShowContacts or an Originate of
# their own. This user is written into etc/manager_local.conf, a file the product includes but
# never writes: a real installation has no such user.
HARNESS_AMI_USER = "harness"


def write_harness_ami_user(instance: Instance, secret: str) -> None:
    """Add the harness's AMI user to the instance (read: everything; write: no command, no config)."""
    text = (
        "; The test harness's AMI user (tests/harness/hotline.py); never part of the product.\n"
        f"[{HARNESS_AMI_USER}]\nsecret = {secret}\n"
        "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
        "read = all\nwrite = system,call,agent,user,reporting,originate\nwritetimeout = 5000\n"
    )
    write_if_changed(instance.etc / "manager_local.conf", text)


# Agents' skills in tests (1002 is the pension expert; see tests/integration/test_acd_calls.py).
AGENT_SKILLS = {"1001": "{pension = 2, consult = 3}", "1002": "{pension = 5}", "1003": "{pension = 3, consult = 2}"}
VIP_CALLER = "13900009999"
# The ACD's test queues (one per strategy or behaviour; each has its own number in ACD_NUMBERS).
# No returning-caller hold except in "ret", so one test's earlier call does not steer another.
TEST_QUEUES = "\n".join(
    f'[[queues]]\nname = "{name}"\nstrategy = "{strategy}"\nring_timeout = 6\nwrapup = {wrapup}\n'
    f"max_missed_before_pause = 2\nreturning_wait = {ret}\nreturning_window_hours = {0 if not ret else 1}\n"
    f"announce_every = 20\nmax_wait = {max_wait}\n"
    for name, strategy, wrapup, ret, max_wait in (
        ("idle", "longest_idle", 0, 0, 600),
        ("rr", "round_robin", 0, 0, 600),
        ("occ", "least_occupied", 0, 0, 600),
        ("skill", "skills", 0, 0, 600),
        ("wrap", "longest_idle", 8, 0, 600),
        ("vip", "longest_idle", 0, 0, 30),
        ("ret", "longest_idle", 0, 20, 600),
    )
)


def switch_root() -> Path:
    """The chroot the project's setup built (settings' default, or $HOTLINE_SWITCH__ROOT)."""
    value = os.environ.get("HOTLINE_SWITCH__ROOT")
    return Path(value) if value else REPO / "var" / "switch" / "root"


def write_settings(
    home: Path, instance: str, world_sip_port: int, database_url: str, flows_dir: Path | None = None
) -> Path:
    """A hotline.toml for a test instance with free ports and four agents.

    ``flows_dir``: the IVR flows to serve (default: the shipped ones, as they are).
    """
    home.mkdir(parents=True, exist_ok=True)
    # The archive's folder is never made by the product (an unmounted disk must not be filled
    # in its place); an installation has it, so a test home has it too.
    (home / "recordings_store").mkdir(exist_ok=True)
    flows = flows_dir or REPO / "ivr_flows"
    agents = "\n".join(
        f'[[agents]]\nid = "{a}"\nname = "测试坐席{a}"\nskills = {AGENT_SKILLS.get(a, "{}")}\nchat_capacity = 2\n'
        for a in AGENTS
    )
    acd_numbers = "\n".join(
        f'[[numbers]]\nnumber = "{number}"\nname = "排队测试"\nflow = "acd_{queue}"\n'
        for number, (queue, _skill) in ACD_NUMBERS.items()
    )
    acd_numbers += f'\n[[numbers]]\nnumber = "{REQUEST_NUMBER}"\nname = "指定坐席"\nflow = "acd_req"\n'
    if not flows_dir:
        acd_numbers = ""
    text = f"""
[switch]
root = "{switch_root()}"
instance = "{instance}"
sip_bind = "127.0.0.1"
sip_port = {free_port()}
rtp_start = {CC_RTP[0]}
rtp_end = {CC_RTP[1]}
ami_port = {free_port()}
http_port = {free_port()}

[controller]
agi_port = {free_port()}
agi_watchdog = 5
web_port = {free_port()}
control_port = {free_port()}
ami_backoff_initial = 0.2
ami_backoff_max = 1.0
ami_ping_interval = 2.0

[database]
url = "{database_url}"

[ivr]
flows_dir = "{flows}"
watch_interval = 0.5
demo_api_port = 0
http_allow = ["127.0.0.1"]  # the test's own self-service server, on a free port

[log]
level = "DEBUG"
format = "json"

[[numbers]]
number = "{HOTLINE_NUMBER}"
name = "社保服务热线"

[[numbers]]
number = "12334"
name = "转外线测试"
flow = "{"transfer_test" if flows_dir else "main"}"

{acd_numbers}

[acd]
callback_delay = 2
callback_retry = 5

[caller_tags]
vip = ["{VIP_CALLER}"]

[[queues]]
name = "general"
title = "综合咨询"
ring_timeout = 8
wrapup = 0
returning_window_hours = 0

[[queues]]
name = "complaints"
title = "投诉建议"
strategy = "skills"
wrapup = 0
returning_window_hours = 0

{TEST_QUEUES}

[[trunks]]
name = "carrier"
match = ["127.0.0.1"]
host = "127.0.0.1"
port = {world_sip_port}

{agents}
"""
    path = home / "hotline.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Hotline:
    """A rendered, running contact-center switch, and (optionally) its controller process."""

    config: Path
    settings: Settings
    secrets: Secrets
    switch: Switch
    controller_log: Path
    _controller: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # The secret of the harness's own AMI user (HARNESS_AMI_USER).
    harness_ami_secret: str = field(default_factory=lambda: token_urlsafe(24), repr=False)
    # Whether the harness itself stopped the controller / the switch last (stop_controller,
    # stop_switch) rather than it exiting by itself: tests/harness/watch.py tells a test's
    # intended stop from a crash by these.
    controller_stopped: bool = False
    switch_stopped: bool = False
    # Settings the controller process gets from the environment on top of hotline.toml, e.g.
    # HOTLINE_DATABASE__URL for the real-call path on PostgreSQL (test_postgres_path.py).
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, config: Path) -> Hotline:
        settings = load_settings(config, env={})
        secrets = load_or_create(settings)
        render_hotline(settings, secrets)
        instance = Instance(settings.switch_root, settings.switch.instance)
        switch = Switch(instance, settings.state_path / "run" / f"switch-{instance.name}.pid")
        hotline = cls(config, settings, secrets, switch, settings.state_path / "controller.log")
        write_harness_ami_user(instance, hotline.harness_ami_secret)
        return hotline

    @property
    def instance(self) -> Instance:
        return self.switch.instance

    def start_switch(self) -> None:
        self.switch_stopped = False
        sw = self.settings.switch
        self.switch.start(Ports(sw.sip_port, sw.ami_port, sw.http_port, sw.sip_bind), timeout=30)

    def controller_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env["HOTLINE_CONFIG"] = str(self.config)
        env.update(self.extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_controller(self) -> subprocess.Popen[bytes]:
        """Run ``hotline controller`` as a real separate process (it can be killed and restarted)."""
        assert self._controller is None or self._controller.poll() is not None, "controller already running"
        self.controller_stopped = False
        log = open(self.controller_log, "ab")
        self._controller = subprocess.Popen(
            [sys.executable, "-m", "cc_core.cli", "controller"],
            env=self.controller_env(),
            cwd=str(REPO),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self._controller

    def stop_controller(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        proc = self._controller
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        self.controller_stopped = True
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(5)

    @property
    def controller(self) -> subprocess.Popen[bytes] | None:
        return self._controller

    def wait_controller_ok(self, timeout: float = 30.0) -> dict[str, object]:
        """Wait until the controller's health report says ok (AMI connected)."""
        from cc_core.cli import fetch_health

        deadline = time.monotonic() + timeout
        last: dict[str, object] | None = None
        while time.monotonic() < deadline:
            if self._controller is not None and self._controller.poll() is not None:
                raise AssertionError(f"controller exited ({self._controller.returncode}):\n{self.controller_tail()}")
            last = fetch_health(self.settings, timeout=1.0)
            if last is not None and last.get("status") == "ok":
                return last
            time.sleep(0.1)
        raise AssertionError(
            f"controller not ok in {timeout} s: {last}\n{self.controller_tail()}\n"
            f"switch pid: {self.switch.pid}; its console log ends with:\n{self.switch_tail()}"
        )

    @contextmanager
    def ami_link_down(self, timeout: float = 20.0) -> Iterator[None]:
        """Drop every AMI connection and keep the switch refusing logins until the block ends:
        the AMI user's secret is changed in the switch's manager.conf and reloaded, then each
        session is kicked (``manager kick session``). On exit the secret is put back and the
        controller's link reconnects by itself; this waits until its health says ok."""
        conf = self.instance.host_path(f"{self.instance.inside}/etc/manager.conf")
        original = conf.read_text(encoding="utf-8")
        secret = self.secrets.ami_secret
        assert f"secret = {secret}" in original
        conf.write_text(original.replace(f"secret = {secret}", "secret = locked-out-by-test"), encoding="utf-8")
        try:
            self.switch.cli("manager reload")
            listing = self.switch.cli("manager show connected")
            for line in listing.splitlines():
                fields = line.split()
                if len(fields) >= 5 and fields[0] == self.secrets.ami_user and fields[4].isdigit():
                    self.switch.cli(f"manager kick session {fields[4]}")
            deadline = time.monotonic() + timeout
            from cc_core.cli import fetch_health

            while True:
                health = fetch_health(self.settings, timeout=1.0)
                if health is not None and not health["ami"]["connected"]:  # type: ignore[index]
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"the controller's AMI link did not drop: {health}")
                time.sleep(0.05)
            yield
        finally:
            conf.write_text(original, encoding="utf-8")
            self.switch.cli("manager reload")
        self.wait_controller_ok(timeout)

    def controller_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.controller_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no controller log)"

    def switch_tail(self, lines: int = 40) -> str:
        try:
            text = self.instance.console_log.read_text(errors="replace")
        except OSError:
            return "(no switch console log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop_switch(self) -> None:
        """Stop the contact center's switch on purpose (a test marked ``restarts("switch")``)."""
        self.switch_stopped = True
        self.switch.stop()

    def ensure_switch(self) -> None:
        """Start the switch again if an earlier test left it stopped or it died, saying so on
        stderr with its console log's end (the test it died in has failed already, see
        tests/harness/watch.py; restarting here keeps one crash from failing every later test).

        A crashed switch leaves its pid file behind; it is not taken for a running one."""
        pid = self.switch.pid
        if pid is not None and pid_alive(pid):
            return
        print(f"\nthe switch was not running; its console log ends with:\n{self.switch_tail()}", file=sys.stderr)
        self.switch.pid_file.unlink(missing_ok=True)
        self.start_switch()

    def close(self) -> None:
        self.stop_controller()
        self.switch.stop()
