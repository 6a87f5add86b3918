#!/usr/bin/env python3
"""Load benchmark: N concurrent calls through IVR → queue → agent → survey (issue 4).

Starts its own contact center (an Asterisk instance and the controller process, built the way the
test harness builds them, tests/harness/) and its own outside world (a second Asterisk playing the
carrier and N agents' SIP phones, each registered to the contact center with its agent's
generated password). Then, per run, the world places N citizens' calls to the hotline, ramped in at
``--rate`` calls/s, and each call goes the whole way:

1. the hotline answers; the IVR's menu prompt starts; the caller presses 1 (``--think`` s after
   the prompt started);
2. the "transferring you" prompt; the queue; an agent's phone rings, answers after
   ``--answer-after`` s and talks ``--talk`` s (auto: long enough that all N calls are up at once);
3. the phone hangs up; the survey question starts; the caller presses a digit (1-5); the thanks
   prompt; the hotline hangs up.

Callers and phones send audio all along (music stands for a voice), so RTP flows both ways on
every leg (``--audio silence``: they send none). Every conversation is recorded (MixMonitor), as
in production. Keys are RFC 4733, sent by the world's channel itself.

Two modes run the same path on the same two switches:

* ``controller``: the product. The number's IVR flow runs on the controller over FastAGI, the
  controller's ACD picks the agent (N agents logged in through its control endpoint), the survey
  runs on the controller, the call record goes to the database.
* ``dialplan``: no controller (its process is stopped): the same prompts (the same WAV files), the
  menu as Background/WaitExten, app_queue's Queue() over all the phones, the survey as Read().

Measured per call, from AMI events timestamped on arrival at this script: setup (Originate sent →
the world's OriginateResponse, i.e. the hotline answered), answer → first prompt, menu key →
next prompt and survey key → thanks prompt (the contact center's DTMFEnd → the next prompt's
start: AGIExecStart STREAM FILE on the controller, Newexten BackGround/Playback/Read on the pure
dialplan), and whether the call completed: it reached an agent, the survey digit was stored (the
call record in the database; a UserEvent on the pure dialplan) and the hotline hung up after the
thanks. CPU: utime+stime (+ reaped children) from /proc/<pid>/stat of the contact-center Asterisk,
the world's Asterisk, the controller and this script, from the first Originate to the last
hang-up, as % of one core and as CPU ms per call; also the machine's busy share and the CPU while
all N calls were up at once (the plateau).

``--mode both`` (default) alternates the modes inside each round (each goes first in turn) and
quotes the comparison as ratios (median over rounds of the per-round ratios): the contact-center
Asterisk's CPU with the controller / without, the controller's CPU as a share of the
contact-center Asterisk's, and (Asterisk + controller) / pure-dialplan Asterisk.

The run checks itself: every call is accounted for (completed, or failed with a reason), completed
calls have every milestone in order and the survey digit that was pressed, no channel is left on
either switch, and the CPU figures are real. Exit status 1 if a check fails. Failed calls are
results (listed with their reasons), not check failures.

Needs root (the switch runs in a chroot) and the switch built by scripts/setup.sh. RTP ranges are
the benchmark's own (``--cc-rtp``, ``--world-rtp``), above the kernel's ephemeral range.

Usage: .venv/bin/python scripts/bench_load.py [--calls N] [--mode controller|dialplan|both]
       [--rate CALLS_PER_S] [--rounds R] [--talk S] [--think S] [--answer-after S]
       [--audio music|silence] [--dtmf-ms MS] [--settle S] [--db URL] [--cc-rtp A-B]
       [--world-rtp A-B] [--keep] [--json]          (BENCH_LOAD_TRACE=1: every call's events)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmachine import machine

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the test harness (tests/harness) is not an installed package

from cc_core.acd.service import AcdPrompts  # noqa: E402
from cc_core.app import prompt_cache  # noqa: E402
from cc_core.bus import EventBus  # noqa: E402
from cc_core.calls.store import CallStore  # noqa: E402
from cc_core.calls.views import CallView  # noqa: E402
from cc_core.cli import control_request  # noqa: E402
from cc_core.db.session import make_engine, make_sessionmaker  # noqa: E402
from cc_core.errors import HotlineError  # noqa: E402
from cc_core.ivr.flow import Prompt  # noqa: E402
from cc_core.ivr.prompts import PromptLibrary  # noqa: E402
from cc_core.ivr.runtime import SURVEY_PROMPT  # noqa: E402
from cc_core.switch.ami import AmiLink, AmiUnavailable  # noqa: E402
from cc_core.switch.config import (  # noqa: E402
    TEMPLATE_DIR,
    Block,
    base_values,
    hold_music,
    hotline_values,
    render,
    render_tree,
)
from cc_core.switch.instance import INSTANCES_INSIDE  # noqa: E402
from cc_core.switch.process import Ports, pid_alive  # noqa: E402
from tests.harness.flows import write_calendar  # noqa: E402
from tests.harness.hotline import HARNESS_AMI_USER, Hotline, switch_root  # noqa: E402
from tests.harness.ports import CC_RTP, HIGH, LOW, WORLD_RTP, free_port  # noqa: E402
from tests.harness.world import WORLD_TEMPLATES, World  # noqa: E402

TEMPLATES = Path(__file__).resolve().parent / "bench_load"
MODES = ("controller", "dialplan")
NUMBER = {"controller": "12333", "dialplan": "12399"}  # the hotline number each mode's calls dial
QUEUE = "bench"
AGENT_BASE = 2000  # agents (and their phones) are 2000, 2001, …
MENU_TEXT = "业务咨询请按1，人工服务请按0。"
TRANSFER_TEXT = "正在为您转接人工服务，请稍候。"
MENU_KEY = "1"
TARGET_CALLS = 400  # issue 4: 400 concurrent calls, none failed, on this 2-core machine
TARGET_CONTROLLER_SHARE = 0.15  # … with the controller's CPU under 15% of the contact-center Asterisk's
# RTP ranges of the benchmark's own instances (UDP). Each call has two legs on each switch (caller
# and agent on the contact center; caller and phone in the world), each leg an RTP+RTCP port pair:
# 4 ports per call per switch, 1,600 for 400 calls. The ranges lie above the kernel's ephemeral
# range (32768-60999 here; the kernel never hands those ports to anyone's outgoing sockets), apart
# from production's 10000-14999, the tests' 16000-17999 and the harness's free ports 20000-30999.
DEFAULT_CC_RTP = (61000, 63199)
DEFAULT_WORLD_RTP = (63200, 65399)
PORTS_PER_CALL = 4
# The contact center's events this script needs; its AMI session asks the switch for no others.
CC_EVENTS = "Event: (Newchannel|Newexten|AGIExecStart|DTMFEnd|DialEnd|Hangup|UserEvent)"
PROMPT_APPS = frozenset({"background", "playback", "read"})  # Asterisk spells it BackGround
SAMPLE_S = 0.5
TRACE = bool(os.environ.get("BENCH_LOAD_TRACE"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
MILESTONES = (
    "originate",
    "answered",
    "prompt1",
    "press1",
    "dtmf1",
    "prompt2",
    "connected",
    "survey",
    "press2",
    "dtmf2",
    "thanks",
    "end",
)

# The order the check holds the milestones to. Events are stamped when they reach this script,
# and the two switches' AMI connections are read independently: under load one can lag the
# other by seconds, so only stamps that one connection carries are compared with each other
# (the contact center's events, in the order it sent them), plus what causality fixes across
# them (a key is stamped before the world is told to press it, so it cannot reach the hotline
# first).
ORDERED = (
    ("prompt1", "dtmf1", "prompt2", "connected", "survey", "dtmf2", "thanks", "end"),
    ("originate", "answered"),
    ("press1", "dtmf1"),
    ("prompt1", "press1", "press2", "dtmf2"),
)

FLOW = f"""flow: bench
title: 压力测试
start: menu
nodes:
  menu:
    menu:
      prompt: "{MENU_TEXT}"
      choices:
        "1": to_agent
        "0": to_agent
      timeout: 6
      retries: 3
      on_fail: to_agent
  to_agent:
    play: "{TRANSFER_TEXT}"
    next: to_queue
  to_queue:
    queue: {{queue: {QUEUE}}}
"""


# ---- the contact center and the world ----------------------------------------------------------


def agent_ids(count: int) -> list[str]:
    return [str(AGENT_BASE + i) for i in range(count)]


def write_settings(
    home: Path, instance: str, agents: list[str], rtp: tuple[int, int], world_sip_port: int, db_url: str
) -> Path:
    """hotline.toml of the benchmark's contact center: free ports, N agents, one queue, the
    production defaults elsewhere (INFO logs, 15 s watchdog); no wrap-up, so an agent is free again
    at once; callbacks never due during a run (an abandoned call would otherwise ring an agent)."""
    flows = home / "flows"
    flows.mkdir(parents=True, exist_ok=True)
    (flows / "bench.yaml").write_text(FLOW, encoding="utf-8")
    (flows / "calendars").mkdir(exist_ok=True)
    write_calendar(flows)
    agent_blocks = "\n".join(f'[[agents]]\nid = "{a}"\nname = "压测坐席{a}"\n' for a in agents)
    text = f"""
[switch]
root = "{switch_root()}"
instance = "{instance}"
sip_bind = "127.0.0.1"
sip_port = {free_port()}
rtp_start = {rtp[0]}
rtp_end = {rtp[1]}
ami_port = {free_port()}
http_port = {free_port()}

[controller]
agi_port = {free_port()}
web_port = {free_port()}
control_port = {free_port()}

[database]
url = "{db_url}"

[ivr]
flows_dir = "{flows}"
default_flow = "bench"
fallback_queue = "{QUEUE}"
demo_api_port = 0

[log]
level = "INFO"
format = "json"

[[numbers]]
number = "{NUMBER["controller"]}"
name = "压力测试热线"
flow = "bench"

[acd]
callback_delay = 86400
callback_queue = "{QUEUE}"

[[queues]]
name = "{QUEUE}"
title = "压力测试"
strategy = "longest_idle"
ring_timeout = 20
wrapup = 0
returning_window_hours = 0
max_wait = 3600

[[trunks]]
name = "carrier"
match = ["127.0.0.1"]
host = "127.0.0.1"
port = {world_sip_port}

{agent_blocks}
"""
    path = home / "hotline.toml"
    path.write_text(text, encoding="utf-8")
    return path


def render_contact_center(hotline: Hotline, home: Path) -> None:
    """The product's configuration plus the pure-dialplan mode's contexts and queue, and the
    prompts that mode plays (the very files the controller plays, from the shared TTS cache)."""
    overlay = home / "overlay"
    overlay.mkdir(parents=True, exist_ok=True)
    for name, extra in (("extensions.conf", "cc_dialplan.conf"), ("queues.conf", "cc_queues.conf")):
        product = (TEMPLATE_DIR / name).read_text(encoding="utf-8")
        (overlay / name).write_text(product + (TEMPLATES / extra).read_text(encoding="utf-8"), encoding="utf-8")
    values = {
        **hotline_values(hotline.settings, hotline.secrets, hotline.instance),
        "bench_number": NUMBER["dialplan"],
        "bench_max_wait": 3600,
        "bench_ring_s": 20,
    }
    render_tree([TEMPLATE_DIR, overlay], hotline.instance, values)
    settings = hotline.settings
    library = PromptLibrary(prompt_cache(hotline.instance), settings.flows_path / "prompts", settings.prompts.tts_voice)
    prompts = {
        "menu": Prompt(text=MENU_TEXT),
        "transfer": Prompt(text=TRANSFER_TEXT),
        "survey": SURVEY_PROMPT,
        "thanks": Prompt(text=AcdPrompts().survey_thanks),
    }
    for name, prompt in prompts.items():
        shutil.copyfile(library.resolve(prompt), hotline.instance.sounds / f"bench_{name}.wav")


class BenchWorld(World):
    """The harness's world with the benchmark's own dialplan (scripts/bench_load/world), its own
    RTP range, and no harness AMI peer (the benchmark has its own asyncio AMI links)."""

    def __init__(
        self,
        root: Path,
        name: str,
        state_dir: Path,
        cc_sip_port: int,
        agents: dict[str, str],
        *,
        rtp: tuple[int, int],
        behaviour: dict[str, object],
    ) -> None:
        super().__init__(root, name, state_dir, cc_sip_port, agents)
        self.rtp = rtp
        self.behaviour = behaviour

    def render(self) -> None:
        values: dict[str, object] = {
            **base_values(self.instance),
            "ami_port": self.ami_port,
            "http_port": self.http_port,
            "sip_port": self.sip_port,
            "rtp_start": self.rtp[0],
            "rtp_end": self.rtp[1],
            "ami_user": "world",
            "ami_secret": self.ami_secret,
            "cc_sip_port": self.cc_sip_port,
            **self.behaviour,
        }
        partial = (WORLD_TEMPLATES / "pjsip.phone.conf").read_text(encoding="utf-8")
        values["phones"] = Block(
            "\n".join(
                render(partial, {**values, "agent": a, "agent_password": p}, "pjsip.phone.conf")
                for a, p in self.agents.items()
            )
        )
        render_tree([TEMPLATE_DIR, WORLD_TEMPLATES, TEMPLATES / "world"], self.instance, values)
        hold_music(self.instance.host_dir / "moh" / "hold.wav")

    def start_switch(self) -> None:
        self.render()
        self.switch.start(Ports(self.sip_port, self.ami_port, self.http_port, "127.0.0.1"), timeout=60)


def remove_stale_instances(root: Path) -> None:
    """Instance folders of earlier benchmark runs whose process is gone (``bl<pid>-…``), and any
    Asterisk such a run left running (killed by its id, from the instance's own PID file)."""
    base = root / str(INSTANCES_INSIDE).lstrip("/")
    for folder in base.glob("bl*-*") if base.is_dir() else ():
        pid = folder.name[2:].split("-", 1)[0]
        if not pid.isdigit() or pid_alive(int(pid)):
            continue
        try:
            orphan = int((folder / "run" / "asterisk.pid").read_text().strip())
            cmdline = Path(f"/proc/{orphan}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            orphan, cmdline = 0, ""
        if orphan and f"/srv/hotline/{folder.name}/" in cmdline:
            os.kill(orphan, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


# ---- CPU -----------------------------------------------------------------------------------------


def proc_cpu(pid: int | None) -> float | None:
    """CPU seconds of a process so far: utime + stime (+ children it reaped), all threads."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is the state (field 3 of proc(5)); utime, stime, cutime, cstime are fields 14-17.
    return sum(int(v) for v in fields[11:15]) / CLK_TCK


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs together since boot (/proc/stat)."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal
    return total - values[3] - values[4], total


@dataclass
class Sample:
    t: float
    cpu: dict[str, float | None]
    busy: int
    total: int


class CpuSampler:
    """Reads the processes' CPU every SAMPLE_S seconds while a run is going."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.samples: list[Sample] = []
        self._stop = asyncio.Event()

    def sample(self) -> Sample:
        busy, total = machine_jiffies()
        return Sample(time.monotonic(), {name: proc_cpu(pid) for name, pid in self.pids.items()}, busy, total)

    async def run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.sample())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), SAMPLE_S)
        self.samples.append(self.sample())

    def stop(self) -> None:
        self._stop.set()


def cpu_between(a: Sample, b: Sample) -> dict[str, Any]:
    """Each process's CPU seconds and % of one core between two samples, and the machine's busy %."""
    wall = max(b.t - a.t, 1e-9)
    out: dict[str, Any] = {"wall_s": wall}
    for name in a.cpu:
        start, end = a.cpu[name], b.cpu[name]
        if start is None or end is None:
            out[name] = None
        else:
            out[name] = {"cpu_s": end - start, "core_pct": 100.0 * (end - start) / wall}
    jiffies = b.total - a.total
    out["machine_busy_pct"] = 100.0 * (b.busy - a.busy) / jiffies if jiffies else None
    return out


# ---- calls -------------------------------------------------------------------------------------


class CallFailed(Exception):
    """A call left the expected path (the reason is the message)."""


@dataclass
class Call:
    index: int
    mode: str
    caller: str
    survey_key: str
    events: asyncio.Queue[tuple[float, dict[str, str]]] = field(default_factory=asyncio.Queue)
    uid: str = ""
    world_channel: str = ""
    t: dict[str, float] = field(default_factory=dict)
    failed: str = ""
    survey_seen: str | None = None
    fallback: bool = False
    rings_missed: int = 0
    last_events: list[str] = field(default_factory=list)

    @property
    def number(self) -> str:
        return NUMBER[self.mode]

    @property
    def last_t(self) -> float:
        return max(self.t.values()) if self.t else 0.0


def is_prompt(mode: str) -> Callable[[dict[str, str]], bool]:
    """The start of a prompt the caller hears: the controller's AGI STREAM FILE, or a dialplan
    application that plays one."""
    if mode == "controller":
        return lambda e: e.get("Event") == "AGIExecStart" and e.get("Command", "").startswith("STREAM FILE")
    return lambda e: e.get("Event") == "Newexten" and e.get("Application", "").lower() in PROMPT_APPS


def is_key(e: dict[str, str]) -> bool:
    return e.get("Event") == "DTMFEnd" and e.get("Direction") == "Received"


def is_agent(e: dict[str, str]) -> bool:
    return e.get("Event") == "DialEnd" and e.get("DialStatus") == "ANSWER"


def is_hangup(e: dict[str, str]) -> bool:
    return e.get("Event") == "Hangup"


class Router:
    """Hands the contact center's events to the call they belong to (by caller number until the
    call's channel is known, then by its uniqueid), timestamped on arrival."""

    def __init__(self) -> None:
        self.by_caller: dict[str, Call] = {}
        self.by_uid: dict[str, Call] = {}
        self.events = 0

    def on_event(self, headers: dict[str, str]) -> None:
        now = time.monotonic()
        self.events += 1
        uid = headers.get("Uniqueid", "")
        call = self.by_uid.get(uid)
        if call is None and headers.get("Event") == "Newchannel":
            call = self.by_caller.get(headers.get("CallerIDNum", ""))
            if call is None or call.uid or headers.get("Exten") != call.number:
                return
            call.uid = uid
            self.by_uid[uid] = call
        if call is not None:
            call.events.put_nowait((now, headers))

    def forget(self, calls: list[Call]) -> None:
        for call in calls:
            self.by_caller.pop(call.caller, None)
            self.by_uid.pop(call.uid, None)


@dataclass
class Plan:
    calls: int
    rate: float
    talk_s: float
    think_s: float
    answer_after_s: float
    deadline_s: float


class Bench:
    """The two switches, the controller and the benchmark's AMI links, for all the runs."""

    def __init__(self, args: argparse.Namespace, plan: Plan) -> None:
        self.args = args
        self.plan = plan
        self.home = Path(tempfile.mkdtemp(prefix="hotline-bench-load-"))
        self.agents = agent_ids(plan.calls)
        self.hotline: Hotline | None = None
        self.world: BenchWorld | None = None
        self.cc: AmiLink | None = None
        self.world_ami: AmiLink | None = None
        self.router = Router()
        self._tasks: list[asyncio.Task[None]] = []

    # ---- set-up and tear-down ----------------------------------------------------------------

    async def start(self) -> None:
        root = switch_root()
        if not (root / "usr" / "sbin" / "asterisk").exists():
            raise SystemExit(f"bench_load: the switch is not installed in {root}: run scripts/setup.sh first")
        remove_stale_instances(root)
        world_sip_port = free_port()
        db_url = self.args.db or f"sqlite:///{self.home / 'hotline.db'}"
        prefix = f"bl{os.getpid()}"
        config = write_settings(self.home, f"{prefix}-cc", self.agents, self.args.cc_rtp, world_sip_port, db_url)
        hotline = Hotline.create(config)
        self.hotline = hotline
        await asyncio.to_thread(render_contact_center, hotline, self.home)
        world = BenchWorld(
            hotline.settings.switch_root,
            f"{prefix}-world",
            hotline.settings.state_path,
            hotline.settings.switch.sip_port,
            {a: hotline.secrets.agent_password(a) for a in self.agents},
            rtp=self.args.world_rtp,
            behaviour={
                "answer_after": f"{self.plan.answer_after_s:g}",
                "talk_s": f"{self.plan.talk_s:g}",
                "caller_talks": "MusicOnHold(default)" if self.args.audio == "music" else "Wait(3600)",
                "phone_talks": (
                    f"MusicOnHold(default,{self.plan.talk_s:g})"
                    if self.args.audio == "music"
                    else f"Wait({self.plan.talk_s:g})"
                ),
                "dtmf_ms": self.args.dtmf_ms,
            },
        )
        world.sip_port = world_sip_port  # the trunk in hotline.toml points here
        self.world = world
        await asyncio.to_thread(hotline.start_switch)
        await asyncio.to_thread(world.start_switch)
        # The harness's AMI user (every event, Filter allowed): the controller's own user has
        # only the classes and events the controller uses (issue 11 item 5).
        self.cc = await self._link(
            hotline.settings.switch.ami_port, HARNESS_AMI_USER, hotline.harness_ami_secret, "contact center"
        )
        self.world_ami = await self._link(world.ami_port, "world", world.ami_secret, "world")
        await self._wait_phones()
        # From now on each switch sends this script only the events it uses: less work for both
        # switches and for this script, which shares the machine with what it measures.
        self.cc.add_raw_listener(self.router.on_event)
        await self.cc.action({"Action": "Filter", "Operation": "Add", "Filter": CC_EVENTS})
        await self.world_ami.action({"Action": "Filter", "Operation": "Add", "Filter": "Event: OriginateResponse"})

    async def _link(self, port: int, user: str, secret: str, what: str) -> AmiLink:
        link = AmiLink("127.0.0.1", port, user, secret, EventBus(), backoff_initial=0.2, backoff_max=1.0)
        self._tasks.append(asyncio.create_task(link.run(), name=f"ami-{what}"))
        if not await link.wait_connected(30):
            raise SystemExit(f"bench_load: no AMI link to the {what} switch: {link.last_error}")
        return link

    async def _wait_phones(self) -> None:
        """Wait until every agent's phone is registered and reachable on the contact center."""
        assert self.cc is not None
        deadline = time.monotonic() + 60 + len(self.agents) / 10
        wanted = {f"PJSIP/{a}" for a in self.agents}
        ready: set[str] = set()
        while time.monotonic() < deadline:
            answer = await self.cc.action({"Action": "DeviceStateList"}, as_list=True, timeout=30)
            states = {m.get("Device", ""): m.get("State", "") for m in answer if m.get("Event") == "DeviceStateChange"}
            ready = {d for d in wanted if states.get(d) == "NOT_INUSE"}
            if ready == wanted:
                return
            await asyncio.sleep(0.5)
        raise SystemExit(f"bench_load: only {len(ready)} of {len(wanted)} phones registered in time")

    async def close(self) -> None:
        hotline, world = self.hotline, self.world
        if hotline is not None:
            await asyncio.to_thread(hotline.stop_controller)
        for link in (self.cc, self.world_ami):
            if link is not None:
                with contextlib.suppress(Exception):
                    await link.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if world is not None:
            await asyncio.to_thread(world.switch.stop)
        if hotline is not None:
            await asyncio.to_thread(hotline.switch.stop)
        if not self.args.keep:
            for instance in (hotline.instance if hotline else None, world.instance if world else None):
                if instance is not None:
                    shutil.rmtree(instance.host_dir, ignore_errors=True)
            shutil.rmtree(self.home, ignore_errors=True)

    # ---- the controller -------------------------------------------------------------------------

    async def controller_up(self) -> None:
        """The controller running, connected, with every agent logged in, available and reachable."""
        hotline = self.hotline
        assert hotline is not None
        if hotline.controller is None or hotline.controller.poll() is not None:
            await asyncio.to_thread(hotline.start_controller)
        await asyncio.to_thread(hotline.wait_controller_ok, 60.0)
        deadline = time.monotonic() + 60 + len(self.agents) / 5
        while True:
            agents = (await asyncio.to_thread(control_request, hotline.settings, "acd"))["agents"]
            for agent_id in self.agents:
                # A restarted controller restores agents as the database last saw them: log in the
                # offline, bring back the paused (a phone seen unreachable while it re-registered)
                # and end wrap-ups left from the previous round.
                action = {"offline": "login", "paused": "resume", "wrap_up": "wrapup/finish"}.get(
                    agents[agent_id]["state"]
                )
                if action is not None and agents[agent_id].get("reachable", True):
                    with contextlib.suppress(HotlineError):
                        await asyncio.to_thread(control_request, hotline.settings, f"agents/{agent_id}/{action}", {})
            not_ready = [
                a for a in self.agents if agents[a]["state"] != "available" or not agents[a].get("reachable", True)
            ]
            if not not_ready:
                return
            if time.monotonic() > deadline:
                states = {
                    a: agents[a]["state"] + ("" if agents[a].get("reachable", True) else "/unreachable")
                    for a in not_ready[:10]
                }
                raise SystemExit(f"bench_load: agents not available: {states}")
            await asyncio.sleep(0.5)

    async def controller_down(self) -> None:
        hotline = self.hotline
        assert hotline is not None
        await asyncio.to_thread(hotline.stop_controller)

    # ---- one run -------------------------------------------------------------------------------

    def pids(self, mode: str) -> dict[str, int | None]:
        assert self.hotline is not None and self.world is not None
        controller = self.hotline.controller
        return {
            "cc_asterisk": self.hotline.switch.pid,
            "controller": controller.pid if mode == "controller" and controller is not None else None,
            "world_asterisk": self.world.switch.pid,
            "bench": os.getpid(),
        }

    async def run(self, mode: str, round_no: int) -> dict[str, Any]:
        if mode == "controller":
            await self.controller_up()
        else:
            await self.controller_down()
        await self._quiet()
        plan = self.plan
        mode_digit = "3" if mode == "controller" else "5"
        calls = [Call(i, mode, f"1{mode_digit}{round_no % 100:02d}{i:07d}", str(1 + i % 5)) for i in range(plan.calls)]
        for call in calls:
            self.router.by_caller[call.caller] = call
        sampler = CpuSampler(self.pids(mode))
        # The switches and the controller idle (N phones registered, N agents logged in) for a
        # moment first: the idle share is printed, so what the calls cost can be told apart.
        idle_start = sampler.sample()
        await asyncio.sleep(self.args.settle)
        idle = cpu_between(idle_start, sampler.sample())
        events_before = self.router.events
        start = sampler.sample()
        sampler.samples.append(start)
        sampling = asyncio.create_task(sampler.run())
        t0 = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        for call in calls:
            delay = t0 + call.index / plan.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.place(call)))
        await asyncio.gather(*tasks)
        sampler.stop()
        await sampling
        stop = sampler.samples[-1]
        self.router.forget(calls)
        if mode == "controller":
            await self._check_survey_records(calls)
        else:
            for call in calls:
                if not call.failed and call.survey_seen != call.survey_key:
                    call.failed = f"survey answer {call.survey_seen!r} seen, {call.survey_key!r} pressed"
        leftovers = await self._quiet()
        self._drop_recordings()
        return summarize(
            mode,
            round_no,
            calls,
            plan,
            idle,
            cpu_between(start, stop),
            plateau_cpu(calls, sampler.samples),
            leftovers,
            self.router.events - events_before,
        )

    async def place(self, call: Call) -> None:
        """One citizen's call, step by step, each step awaited on the contact center's events."""
        assert self.world_ami is not None
        plan = self.plan
        deadline = time.monotonic() + plan.deadline_s
        prompt = is_prompt(call.mode)
        call.t["originate"] = time.monotonic()
        try:
            try:
                answer = await self.world_ami.action(
                    {
                        "Action": "Originate",
                        "Channel": f"PJSIP/{call.number}@hotline",
                        "Context": "bench-caller",
                        "Exten": "s",
                        "Priority": "1",
                        "CallerID": f'"{call.caller}" <{call.caller}>',
                        "Timeout": "30000",
                        "Async": "true",
                    },
                    timeout=45,
                )
            except (TimeoutError, AmiUnavailable) as exc:
                raise CallFailed(f"originate: {type(exc).__name__} {exc}") from None
            messages = answer if isinstance(answer, list) else [answer]
            response = next((m for m in messages if m.get("Event") == "OriginateResponse"), None)
            if response is None or response.get("Response") != "Success":
                reason = response.get("Reason") if response is not None else messages[0].get("Message")
                raise CallFailed(f"the hotline did not answer (reason {reason})")
            call.t["answered"] = time.monotonic()
            call.world_channel = response.get("Channel", "")
            call.t["prompt1"] = await self.expect(call, "the menu prompt", prompt, deadline)
            await asyncio.sleep(plan.think_s)
            call.t["press1"] = await self.press(call, MENU_KEY)
            call.t["dtmf1"] = await self.expect(call, "the menu key on the hotline", is_key, deadline)
            call.t["prompt2"] = await self.expect(call, "the prompt after the menu key", prompt, deadline)
            call.t["connected"] = await self.expect(call, "an agent", is_agent, deadline)
            call.t["survey"] = await self.expect(call, "the survey question", prompt, deadline)
            await asyncio.sleep(plan.think_s)
            call.t["press2"] = await self.press(call, call.survey_key)
            call.t["dtmf2"] = await self.expect(call, "the survey key on the hotline", is_key, deadline)
            call.t["thanks"] = await self.expect(call, "the thanks prompt", prompt, deadline)
            call.t["end"] = await self.expect(call, "the hotline's hang-up", is_hangup, deadline)
        except CallFailed as exc:
            call.failed = str(exc)
            if call.world_channel:
                with contextlib.suppress(Exception):
                    await self.world_ami.action({"Action": "Hangup", "Channel": call.world_channel})

    async def expect(
        self, call: Call, what: str, predicate: Callable[[dict[str, str]], bool], deadline: float
    ) -> float:
        """The arrival time of the call's next event matching ``predicate``; a hang-up or the
        deadline first fails the call."""
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                at, event = await asyncio.wait_for(call.events.get(), left)
            except TimeoutError:
                raise CallFailed(f"no {what} in time (last events: {', '.join(call.last_events[-6:])})") from None
            name = event.get("Event", "")
            detail = {"AGIExecStart": "Command", "Newexten": "Application", "UserEvent": "UserEvent"}.get(name)
            call.last_events.append(f"{name} {event.get(detail, '')[:16]}" if detail else name)
            if TRACE:
                print(f"{at:.3f} call {call.index} {call.last_events[-1]} {event.get('Digit', '')}", file=sys.stderr)
            if name == "UserEvent":
                kind = event.get("UserEvent")
                if kind == "BenchSurvey":
                    call.survey_seen = event.get("Score", "")
                elif kind == "HotlineFallback":
                    call.fallback = True
            elif name == "DialEnd" and event.get("DialStatus") != "ANSWER":
                call.rings_missed += 1
            if predicate(event):
                return at
            if is_hangup(event):
                cause = f"{event.get('Cause', '?')} {event.get('Cause-txt', '')}".strip()
                fallback = "; the safety net had taken it" if call.fallback else ""
                raise CallFailed(
                    f"hung up before {what} (cause {cause}{fallback}; events: {', '.join(call.last_events[-8:])})"
                )

    async def press(self, call: Call, key: str) -> float:
        """The caller presses a key: the world's channel sends it itself (see [bench-press])."""
        assert self.world_ami is not None
        at = time.monotonic()
        try:
            answer = await self.world_ami.action(
                {
                    "Action": "Redirect",
                    "Channel": call.world_channel,
                    "Context": "bench-press",
                    "Exten": key,
                    "Priority": "1",
                }
            )
        except (TimeoutError, AmiUnavailable) as exc:
            raise CallFailed(f"pressing {key}: {type(exc).__name__} {exc}") from None
        if str(answer.get("Response", "")) != "Success":
            raise CallFailed(f"pressing {key}: {answer.get('Message', 'refused')}")
        return at

    async def _check_survey_records(self, calls: list[Call]) -> None:
        """Completed on the controller = the survey digit pressed is on the call record."""
        assert self.hotline is not None
        engine = make_engine(self.hotline.settings.database_url)
        try:
            await self._read_survey_records(CallStore(make_sessionmaker(engine)), calls)
        finally:
            engine.dispose()

    async def _read_survey_records(self, store: CallStore, calls: list[Call]) -> None:
        pending = [c for c in calls if not c.failed]
        deadline = time.monotonic() + 20
        while pending and time.monotonic() < deadline:
            views = await asyncio.to_thread(read_views, store, [c.uid for c in pending])
            still = []
            for call in pending:
                view = views.get(call.uid)
                if view is not None and view.survey_score is not None:
                    if str(view.survey_score) != call.survey_key:
                        call.failed = f"survey {view.survey_score} stored, {call.survey_key} pressed"
                else:
                    still.append(call)
            pending = still
            if pending:
                await asyncio.sleep(0.5)
        for call in pending:
            call.failed = "the survey digit never reached the call record"

    async def _quiet(self, timeout: float = 60.0) -> dict[str, int]:
        """Wait until neither switch has a channel left; return what was left at the deadline."""
        assert self.hotline is not None and self.world is not None
        deadline = time.monotonic() + timeout
        while True:
            counts = {
                "cc": await asyncio.to_thread(channel_count, self.hotline.switch.cli),
                "world": await asyncio.to_thread(channel_count, self.world.switch.cli),
            }
            if not any(counts.values()) or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(0.5)

    def _drop_recordings(self) -> None:
        """Conversations are recorded as in production; the files are not kept between runs."""
        assert self.hotline is not None
        monitor = self.hotline.instance.spool / "monitor"
        for day in monitor.glob("*") if monitor.is_dir() else ():
            shutil.rmtree(day, ignore_errors=True)


def read_views(store: CallStore, uids: list[str]) -> dict[str, CallView | None]:
    return {uid: store.get(uid) for uid in uids}


def channel_count(cli: Callable[[str], str]) -> int:
    out = cli("core show channels count")
    for line in out.splitlines():
        if "active channel" in line:
            return int(line.split()[0])
    return -1


# ---- figures -------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p99 of 50 values is the largest)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def spread(values: list[float]) -> dict[str, float | None]:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "max_ms": max(ms, default=None)}


def peak_concurrency(calls: list[Call]) -> int:
    marks: list[tuple[float, int]] = []
    for call in calls:
        if "answered" in call.t:
            marks += [(call.t["answered"], 1), (call.t.get("end", call.last_t), -1)]
    up = peak = 0
    for _t, step in sorted(marks):
        up += step
        peak = max(peak, up)
    return peak


def plateau_cpu(calls: list[Call], samples: list[Sample]) -> dict[str, Any] | None:
    """CPU while every call was up at once (from the last answer to the first hang-up)."""
    if not calls or any("answered" not in c.t or "end" not in c.t for c in calls):
        return None
    begin = max(c.t["answered"] for c in calls)
    end = min(c.t["end"] for c in calls)
    inside = [s for s in samples if begin <= s.t <= end]
    if len(inside) < 2 or inside[-1].t - inside[0].t < 2.0:
        return None
    return cpu_between(inside[0], inside[-1])


def summarize(
    mode: str,
    round_no: int,
    calls: list[Call],
    plan: Plan,
    idle: dict[str, Any],
    cpu: dict[str, Any],
    plateau: dict[str, Any] | None,
    leftovers: dict[str, int],
    events: int,
) -> dict[str, Any]:
    done = [c for c in calls if not c.failed]

    def gaps(a: str, b: str) -> list[float]:
        return [c.t[b] - c.t[a] for c in done]

    problems = []
    for call in done:
        missing = [m for m in MILESTONES if m not in call.t]
        if missing:
            problems.append(f"{mode} call {call.index}: milestones missing {missing}")
            continue
        for chain in ORDERED:
            stamps = [(call.t[m], m) for m in chain]
            pairs = itertools.pairwise(stamps)
            late = [f"{b} {1000 * (ta - tb):.0f} ms before {a}" for (ta, a), (tb, b) in pairs if tb < ta]
            if late:
                problems.append(f"{mode} call {call.index}: out of order: {'; '.join(late)}")
    if any(leftovers.values()):
        problems.append(f"{mode}: channels left after the run: {leftovers}")
    for name in ("cc_asterisk", "world_asterisk") + (("controller",) if mode == "controller" else ()):
        figure = cpu.get(name)
        if figure is None or figure["cpu_s"] <= 0:
            problems.append(f"{mode}: no CPU measured for {name}")
    reasons = Counter(_reason_kind(c.failed) for c in calls if c.failed)
    per_call = {
        name: (figure["cpu_s"] * 1000 / len(calls) if figure is not None else None)
        for name, figure in cpu.items()
        if isinstance(figure, dict) or figure is None
    }
    return {
        "mode": mode,
        "round": round_no,
        "calls": len(calls),
        "completed": len(done),
        "failed": len(calls) - len(done),
        "failure_reasons": dict(reasons),
        "failures": [{"call": c.index, "caller": c.caller, "reason": c.failed} for c in calls if c.failed][:20],
        "fallbacks": sum(c.fallback for c in calls),
        "rings_not_answered": sum(c.rings_missed for c in calls),
        "peak_concurrent": peak_concurrency(calls),
        "run_s": cpu["wall_s"],
        "cc_events": events,
        "latency": {
            "setup": spread(gaps("originate", "answered")),
            "first_prompt": spread(gaps("answered", "prompt1")),
            "menu_key_to_prompt": spread(gaps("dtmf1", "prompt2")),
            "survey_key_to_prompt": spread(gaps("dtmf2", "thanks")),
            "menu_press_to_prompt": spread(gaps("press1", "prompt2")),
            "press_to_key": spread(gaps("press1", "dtmf1") + gaps("press2", "dtmf2")),
        },
        "cpu": cpu,
        "cpu_ms_per_call": per_call,
        "idle": idle,
        "plateau": plateau,
        "leftover_channels": leftovers,
        "problems": problems,
        "plan": plan.__dict__,
    }


def _reason_kind(reason: str) -> str:
    """Failures grouped by kind (the text up to a parenthesis: 'no the menu prompt in time')."""
    return reason.split(" (", 1)[0]


def median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def core_pct(run: dict[str, Any], name: str) -> float | None:
    figure = run["cpu"].get(name)
    return figure["core_pct"] if figure else None


def cpu_s(run: dict[str, Any], name: str) -> float | None:
    figure = run["cpu"].get(name)
    return figure["cpu_s"] if figure else None


def ratios(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per round: controller mode against pure dialplan, and the controller against its Asterisk."""
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for run in runs:
        by_round.setdefault(run["round"], {})[run["mode"]] = run
    cc_ratio, share, total_ratio = [], [], []
    for pair in by_round.values():
        ctl = pair.get("controller")
        dp = pair.get("dialplan")
        if ctl is not None:
            cc, controller = cpu_s(ctl, "cc_asterisk"), cpu_s(ctl, "controller")
            if cc and controller is not None:
                share.append(controller / cc)
        if ctl is not None and dp is not None:
            cc_ctl, cc_dp, controller = cpu_s(ctl, "cc_asterisk"), cpu_s(dp, "cc_asterisk"), cpu_s(ctl, "controller")
            if cc_ctl and cc_dp:
                cc_ratio.append(cc_ctl / cc_dp)
                total_ratio.append((cc_ctl + (controller or 0.0)) / cc_dp)

    def med(values: list[float]) -> dict[str, float | None]:
        return {
            "median": statistics.median(values) if values else None,
            "min": min(values, default=None),
            "max": max(values, default=None),
        }

    return {
        "cc_asterisk_controller_over_dialplan": med(cc_ratio),
        "controller_share_of_cc_asterisk": med(share),
        "cc_total_controller_over_dialplan": med(total_ratio),
    }


# ---- main ----------------------------------------------------------------------------------------


def port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        a, b = int(low), int(high)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port range like 61000-63199") from None
    if not sep or not 1024 <= a < b <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port range like 61000-63199")
    return a, b


def check_rtp(args: argparse.Namespace) -> list[str]:
    """The RTP ranges must hold the calls and keep clear of everybody else's ports."""
    problems = []
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            eph_low, eph_high = (int(v) for v in f.read().split())
    except OSError:
        eph_low, eph_high = 32768, 60999
    others = {
        "the kernel's ephemeral range": (eph_low, eph_high),
        "production RTP (10000-14999)": (10000, 14999),
        "the tests' RTP": (CC_RTP[0], WORLD_RTP[1]),
        "the harness's free ports": (LOW, HIGH - 1),
    }
    ranges = {"--cc-rtp": args.cc_rtp, "--world-rtp": args.world_rtp}
    for flag, (low, high) in ranges.items():
        need = PORTS_PER_CALL * args.calls
        if high - low + 1 < need * 1.2:
            problems.append(f"{flag} {low}-{high} is too small for {args.calls} calls (needs {need} ports + 20%)")
        for what, (a, b) in others.items():
            if low <= b and a <= high:
                problems.append(f"{flag} {low}-{high} overlaps {what} {a}-{b}")
    (a1, b1), (a2, b2) = ranges.values()
    if a1 <= b2 and a2 <= b1:
        problems.append("--cc-rtp and --world-rtp overlap")
    return problems


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=50, help="concurrent calls per run (default 50)")
    parser.add_argument("--mode", choices=(*MODES, "both"), default="both")
    parser.add_argument("--rate", type=float, default=10.0, help="calls placed per second (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every mode once (default 3)")
    parser.add_argument("--talk", type=float, default=None, help="seconds an agent talks (default: ramp + 5 s)")
    parser.add_argument("--think", type=float, default=1.0, help="seconds from a prompt's start to the key")
    parser.add_argument("--answer-after", type=float, default=1.0, help="seconds a phone rings before answering")
    parser.add_argument(
        "--audio",
        choices=("music", "silence"),
        default="music",
        help="what callers and phones send: music all along (default, RTP both ways) or nothing",
    )
    parser.add_argument("--dtmf-ms", type=int, default=200, help="how long each key is held (ms)")
    parser.add_argument("--settle", type=float, default=3.0, help="idle seconds measured before each run")
    parser.add_argument("--db", default="", help="the controller's database URL (default: SQLite in a temp folder)")
    parser.add_argument("--cc-rtp", type=port_range, default=DEFAULT_CC_RTP, metavar="A-B")
    parser.add_argument("--world-rtp", type=port_range, default=DEFAULT_WORLD_RTP, metavar="A-B")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder and instance folders (logs)")
    parser.add_argument("--json", action="store_true", help="print everything, every run, as JSON")
    return parser


def make_plan(args: argparse.Namespace) -> Plan:
    ramp = (args.calls - 1) / args.rate
    talk = args.talk if args.talk is not None else math.ceil(ramp) + 5.0
    # Prompts (menu ~3 s, transfer ~3 s, survey ~10 s, thanks ~2 s), keys, ring, talk, and slack
    # for a loaded machine.
    deadline = 2 * args.think + args.answer_after + talk + 90.0
    return Plan(args.calls, args.rate, talk, args.think, args.answer_after, deadline)


def schedule(mode: str, rounds: int) -> Iterator[tuple[int, str]]:
    modes = MODES if mode == "both" else (mode,)
    for r in range(rounds):
        order = modes if r % 2 == 0 else tuple(reversed(modes))
        for m in order:
            yield r, m


async def amain(args: argparse.Namespace, argv: list[str]) -> int:
    plan = make_plan(args)
    main_task = asyncio.current_task()
    if main_task is not None:  # SIGTERM, like Ctrl-C, still stops both switches and the controller
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    bench = Bench(args, plan)
    runs: list[dict[str, Any]] = []
    try:
        await bench.start()
        for round_no, mode in schedule(args.mode, args.rounds):
            run = await bench.run(mode, round_no)
            runs.append(run)
            if not args.json:
                print(progress_line(run), file=sys.stderr, flush=True)
    finally:
        await bench.close()
    problems = [p for run in runs for p in run["problems"]]
    report = {
        "machine": machine(
            None, note="not pinned: two Asterisk instances, the controller and this script share the cores"
        ),
        "command": " ".join(["scripts/bench_load.py", *argv]),
        "plan": plan.__dict__,
        "modes": sorted({r["mode"] for r in runs}, key=MODES.index),
        "rtp": {"cc": args.cc_rtp, "world": args.world_rtp},
        "audio": args.audio,
        "database": "sqlite (temp file)" if not args.db else args.db.split("@")[-1],
        "runs": runs,
        "summary": {mode: summary_of([r for r in runs if r["mode"] == mode]) for mode in MODES},
        "ratios": ratios(runs),
        "targets": targets(runs, plan),
        "validation": {"ok": not problems, "problems": problems[:20]},
        "home": str(bench.home) if args.keep else None,
    }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_report(report)
    return 0 if not problems else 1


def progress_line(run: dict[str, Any]) -> str:
    cc = core_pct(run, "cc_asterisk")
    ctl = core_pct(run, "controller")
    return (
        f"round {run['round'] + 1} {run['mode']}: {run['completed']}/{run['calls']} completed, "
        f"peak {run['peak_concurrent']}, {run['run_s']:.0f} s, cc asterisk {cc or 0:.1f}%"
        + (f", controller {ctl:.1f}%" if ctl is not None else "")
        + (f"; failures: {run['failure_reasons']}" if run["failed"] else "")
    )


def summary_of(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not runs:
        return None
    out: dict[str, Any] = {
        "runs": len(runs),
        "calls": sum(r["calls"] for r in runs),
        "completed": sum(r["completed"] for r in runs),
        "failed": sum(r["failed"] for r in runs),
        "peak_concurrent_min": min(r["peak_concurrent"] for r in runs),
        "run_s": median([r["run_s"] for r in runs]),
        "machine_busy_pct": median([r["cpu"]["machine_busy_pct"] for r in runs]),
        "latency": {
            name: {key: median([r["latency"][name][key] for r in runs]) for key in ("p50_ms", "p99_ms")}
            for name in runs[0]["latency"]
        },
        "cpu": {},
    }
    for name in ("cc_asterisk", "controller", "world_asterisk", "bench"):
        pcts = [v for v in (core_pct(r, name) for r in runs) if v is not None]
        out["cpu"][name] = {
            "core_pct": median(pcts),
            "core_pct_min": min(pcts, default=None),
            "core_pct_max": max(pcts, default=None),
            "ms_per_call": median([r["cpu_ms_per_call"].get(name) for r in runs]),
            "idle_core_pct": median([(r["idle"].get(name) or {}).get("core_pct") for r in runs]),
            "plateau_core_pct": median([((r["plateau"] or {}).get(name) or {}).get("core_pct") for r in runs]),
        }
    return out


def targets(runs: list[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    controller_runs = [r for r in runs if r["mode"] == "controller"]
    share = ratios(runs)["controller_share_of_cc_asterisk"]
    return {
        "at_target_load": plan.calls >= TARGET_CALLS,
        "none_failed": all(r["failed"] == 0 for r in controller_runs) if controller_runs else None,
        "controller_share_under_15pct": (share["max"] < TARGET_CONTROLLER_SHARE) if share["max"] is not None else None,
    }


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(rep: dict[str, Any]) -> None:
    m, plan = rep["machine"], rep["plan"]
    load = ", load {:.2f} {:.2f} {:.2f}".format(*m["load_avg"]) if m["load_avg"] else ""
    print(f"machine:  {m['cpu']}, {m['cores']} cores ({m['note']}); {m['python']}{load}")
    print(f"          {m['platform']}; {m['date_utc']}")
    print(f"command:  {rep['command']}")
    ramp = (plan["calls"] - 1) / plan["rate"]
    print(
        f"load:     {plan['calls']} calls per run placed at {plan['rate']:g} calls/s (ramp {ramp:.1f} s); "
        f"phones answer after {plan['answer_after_s']:g} s and talk {plan['talk_s']:g} s; callers press "
        f"{plan['think_s']:g} s after a prompt starts; {len(rep['runs'])} runs ({rep['database']} database)"
    )
    print(
        "path:     carrier → hotline → menu, key 1 → transfer prompt → queue → agent's phone → "
        "survey, key 1-5 → thanks → the hotline hangs up"
    )
    print()
    head = (
        f"{'mode':<10} {'calls':>6} {'done':>6} {'failed':>6} {'peak':>5} {'run s':>6}  "
        f"{'setup ms':>11} {'1st prompt':>11} {'menu key→':>11} {'survey key→':>11}"
    )
    print("latency (p50 / p99 ms, median of the runs' percentiles; key→: DTMFEnd → next prompt starts)")
    print(head)
    print("-" * len(head))
    for mode in rep["modes"]:
        s = rep["summary"][mode]
        lat = s["latency"]

        def pair(name: str, lat: dict[str, Any] = lat) -> str:
            return f"{_fmt(lat[name]['p50_ms'])} / {_fmt(lat[name]['p99_ms'])}"

        print(
            f"{mode:<10} {s['calls']:>6} {s['completed']:>6} {s['failed']:>6} {s['peak_concurrent_min']:>5} "
            f"{_fmt(s['run_s']):>6}  {pair('setup'):>11} {pair('first_prompt'):>11} "
            f"{pair('menu_key_to_prompt'):>11} {pair('survey_key_to_prompt'):>11}"
        )
    print()
    print("CPU from the first call placed to the last hang-up: % of one core (median of runs, min-max), ms per call")
    head = f"{'mode':<10} {'cc asterisk':>24} {'controller':>24} {'world asterisk':>24} {'bench':>8} {'machine':>8}"
    print(head)
    print("-" * len(head))
    for mode in rep["modes"]:
        s = rep["summary"][mode]

        def cell(name: str, s: dict[str, Any] = s) -> str:
            c = s["cpu"][name]
            if c["core_pct"] is None:
                return "-"
            spread = f"({c['core_pct_min']:.1f}-{c['core_pct_max']:.1f})"
            return f"{c['core_pct']:.1f}% {spread} {_fmt(c['ms_per_call'], '.1f')}ms"

        bench = s["cpu"]["bench"]["core_pct"]
        print(
            f"{mode:<10} {cell('cc_asterisk'):>24} {cell('controller'):>24} {cell('world_asterisk'):>24} "
            f"{_fmt(bench, '.1f') + '%':>8} {_fmt(s['machine_busy_pct'], '.0f') + '%':>8}"
        )
    for mode in rep["modes"]:
        s = rep["summary"][mode]
        parts = []
        for name, label in (("cc_asterisk", "cc asterisk"), ("controller", "controller"), ("world_asterisk", "world")):
            c = s["cpu"][name]
            if c["core_pct"] is not None:
                parts.append(f"{label} {_fmt(c['idle_core_pct'], '.1f')}% idle / {_fmt(c['plateau_core_pct'], '.1f')}%")
        print(f"  {mode}: before the calls (idle) / while all calls were up (plateau): " + ", ".join(parts))
    print("  (machine: busy share of all cores; bench: this script, which shares the machine)")
    r = rep["ratios"]
    print()
    share = r["controller_share_of_cc_asterisk"]
    if share["median"] is not None:
        print(
            f"controller CPU / contact-center Asterisk CPU (controller mode): {100 * share['median']:.1f}% "
            f"(rounds {100 * share['min']:.1f}-{100 * share['max']:.1f}%; "
            f"target < {100 * TARGET_CONTROLLER_SHARE:.0f}%)"
        )
    for key, label in (
        ("cc_asterisk_controller_over_dialplan", "contact-center Asterisk CPU, controller mode / pure dialplan"),
        ("cc_total_controller_over_dialplan", "contact center (Asterisk + controller) / pure-dialplan Asterisk"),
    ):
        v = r[key]
        if v["median"] is not None:
            print(f"{label}: {v['median']:.2f}x (rounds {v['min']:.2f}-{v['max']:.2f}x)")
    t = rep["targets"]
    if t["none_failed"] is not None:
        at = "" if t["at_target_load"] else f" (at {plan['calls']} calls; the target is at {TARGET_CALLS})"
        under = t["controller_share_under_15pct"]
        print(
            f"targets{at}: none failed: {'yes' if t['none_failed'] else 'NO'}; controller under 15% of its Asterisk: "
            f"{'-' if under is None else 'yes' if under else 'NO'}"
        )
    failures = [f for run in rep["runs"] for f in run["failures"]]
    if failures:
        print("failed calls (first ones):")
        for run in rep["runs"]:
            for f in run["failures"][:5]:
                print(f"  round {run['round'] + 1} {run['mode']} call {f['call']}: {f['reason']}")
    if rep["home"]:
        print(f"kept:     {rep['home']} (settings, controller.log)")
    v = rep["validation"]
    print("check:    " + ("ok" if v["ok"] else "FAILED: " + "; ".join(v["problems"])))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.calls < 1 or args.rate <= 0 or args.rounds < 1:
        print("bench_load: --calls, --rate and --rounds must be positive", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("bench_load: needs root (the switch runs in a chroot)", file=sys.stderr)
        return 2
    problems = check_rtp(args)
    if problems:
        print("bench_load: " + "; ".join(problems), file=sys.stderr)
        return 2
    # The benchmark's own AMI links say "link down" when it closes them; only errors are news here.
    logging.getLogger("cc_core").setLevel(logging.ERROR)
    try:
        return asyncio.run(amain(args, argv))
    except HotlineError as exc:
        print(f"bench_load: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench_load: interrupted; switches and controller stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
