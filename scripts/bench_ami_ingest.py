#!/usr/bin/env python3
"""Benchmark: how many AMI events per second the controller ingests (issue 2).

"Ingests" means what the controller does with the bytes Asterisk sends on the AMI socket:
incremental UTF-8 decoding, splitting into messages, parsing each event into a dict,
translating it to a typed event (``cc_core.switch.events.from_ami``), applying it to the
``SwitchView`` and publishing it on the ``EventBus``. The stream goes through the real code:
an ``AmiLink`` (never connected) with a fresh view and bus, and its ``_Protocol`` fed with
``data_received`` in TCP-sized chunks. No socket I/O, no event loop, no database.

In the same run, for comparison (medians over rounds, the paths alternating inside each round):

* parse only: our ``_Protocol`` with an ``on_event`` that only counts (no translation or state);
* panoramisk stock: its ``AMIProtocol.data_received`` (``Message.from_line`` per message) and a
  stock ``Manager``'s pattern dispatch to a ``register_event('*', ...)`` callback that counts;
* panoramisk stock + translate: the same, with the callback doing our translation and state
  update, i.e. the whole controller path as it would be on a stock ``Manager``.

The stream is generated (seeded, so every run measures the same bytes) to look like a busy
contact center: many concurrent calls interleaved, each with its dialplan chatter (VarSet,
Newexten, AGIExec*: most of the traffic, parsed then dropped), IVR digits, a queue, agent
legs ringing and answering, a bridge and a hang-up. ``--from FILE`` ingests a recorded stream
instead (raw bytes from an AMI socket; docs/PERFORMANCE.md says how to record one).

At the end the run is checked: every event was seen once, by type; the view holds exactly
the channels not hung up, the device states and the queue callers of the stream.

Usage: .venv/bin/python scripts/bench_ami_ingest.py [--events N] [--rounds R] [--chunk BYTES|mixed]
       [--from FILE] [--rtcp] [--cpu N | --no-pin] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from benchmachine import machine, pin
from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from cc_core.bus import EventBus
from cc_core.switch.ami import AmiLink, _Manager, _Protocol
from cc_core.switch.events import TRANSLATORS
from cc_core.switch.view import SwitchView

TARGET = 20_000  # events/s on one core (issue 2)
EOM = "\r\n\r\n"
MIXED_CHUNKS = (536, 1448, 1448, 2896, 4096, 4096, 8192, 16384, 65536)

# ---- the generated stream ----------------------------------------------------------------

SYSTEM_NAME = "cc"
CARRIER = "carrier"
HOTLINE_NUMBERS = ("12333", "12345", "12366")
QUEUES = ("hotline-fallback", "hotline-general", "hotline-elderly")
NAMES_ZH = (
    "张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄晓明", "周杰", "吴秀英",
    "徐丽", "孙强", "马超", "朱红梅", "胡军", "郭涛", "林慧", "何勇", "高峰", "欧阳娜娜",
)  # fmt: skip
NAMES_LATIN = ("Zhang Wei", "Li Na", "WANG FANG", "Chen Jing", "Hotline Test")
AGENT_NAMES = ("坐席", "话务员", "接线员")
STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
HANGUP_CAUSES = ((16, "Normal Clearing"), (16, "Normal Clearing"), (16, "Normal Clearing"), (31, "Normal, unspecified"))


@dataclass(slots=True)
class _Chan:
    """A channel's snapshot as Asterisk prints it in every channel event."""

    name: str
    uniqueid: str
    linkedid: str
    cid_num: str
    cid_name: str
    context: str
    exten: str
    state: int = 0
    priority: int = 1
    conn_num: str = "<unknown>"
    conn_name: str = "<unknown>"
    language: str = "zh"

    def snapshot(self, prefix: str = "") -> str:
        p = prefix
        return (
            f"{p}Channel: {self.name}\r\n{p}ChannelState: {self.state}\r\n"
            f"{p}ChannelStateDesc: {STATE_DESC[self.state]}\r\n{p}CallerIDNum: {self.cid_num}\r\n"
            f"{p}CallerIDName: {self.cid_name}\r\n{p}ConnectedLineNum: {self.conn_num}\r\n"
            f"{p}ConnectedLineName: {self.conn_name}\r\n{p}Language: {self.language}\r\n{p}AccountCode: \r\n"
            f"{p}Context: {self.context}\r\n{p}Exten: {self.exten}\r\n{p}Priority: {self.priority}\r\n"
            f"{p}Uniqueid: {self.uniqueid}\r\n{p}Linkedid: {self.linkedid}\r\n"
        )


# One generated event: (name, uniqueid, aux, text). ``aux`` carries what the expected view
# needs: the queue of a queue event, (device, state) of a device event.
Ev = tuple[str, str, Any, str]


@dataclass
class Expected:
    """What a correct ingestion of the stream must end with."""

    events: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    caller_names: Counter[str] = field(default_factory=Counter)
    live: set[str] = field(default_factory=set)
    devices: dict[str, str] = field(default_factory=dict)
    queue_callers: dict[str, set[str]] = field(default_factory=dict)

    def add(self, name: str, uid: str, aux: Any, caller_name: str | None = None) -> None:
        self.events += 1
        self.counts[name] += 1
        if name == "Newchannel":
            self.live.add(uid)
            if caller_name is not None:
                self.caller_names[caller_name] += 1
        elif name == "Hangup":
            self.live.discard(uid)
            for callers in self.queue_callers.values():
                callers.discard(uid)
        elif name == "QueueCallerJoin":
            self.queue_callers.setdefault(aux, set()).add(uid)
        elif name in ("QueueCallerLeave", "QueueCallerAbandon"):
            self.queue_callers.get(aux, set()).discard(uid)
        elif name == "DeviceStateChange":
            device, state = aux
            self.devices[device] = state

    @property
    def translated(self) -> int:
        return sum(n for name, n in self.counts.items() if name in TRANSLATORS)


class Generator:
    """A deterministic busy contact center: ``concurrency`` calls in progress at any time."""

    def __init__(self, seed: int, concurrency: int, agents: int, rtcp: bool) -> None:
        self.rng = random.Random(seed)
        self.concurrency = concurrency
        self.rtcp = rtcp
        self.agents = [f"{1001 + i}" for i in range(agents)]
        self.agent_names = {a: f"{self.rng.choice(AGENT_NAMES)}{a[-3:]}" for a in self.agents}
        self.epoch = 1_718_000_000
        self.seq = 0
        self.chan_seq = 0
        self.bridge_seq = 0
        self.calls = 0

    # ---- pieces --------------------------------------------------------------------------

    def _uid(self) -> str:
        self.seq += 1
        if self.seq % 7 == 0:
            self.epoch += 1
        return f"{SYSTEM_NAME}-{self.epoch}.{self.seq}"

    def _chan_suffix(self) -> str:
        self.chan_seq += 1
        return f"{self.chan_seq:08x}"

    @staticmethod
    def _head(name: str, privilege: str) -> str:
        return f"Event: {name}\r\nPrivilege: {privilege}\r\nSystemName: {SYSTEM_NAME}\r\n"

    def _ev(self, out: list[Ev], name: str, privilege: str, chan: _Chan, extra: str = "", aux: Any = None) -> None:
        out.append((name, chan.uniqueid, aux, f"{self._head(name, privilege)}{chan.snapshot()}{extra}\r\n"))

    def _app(self, out: list[Ev], chan: _Chan, app: str, data: str, sets: tuple[tuple[str, str], ...] = ()) -> None:
        """One dialplan step: Newexten, then the VarSets it causes."""
        self._ev(
            out,
            "Newexten",
            "dialplan,all",
            chan,
            f"Extension: {chan.exten}\r\nApplication: {app}\r\nAppData: {data}\r\n",
        )
        for var, value in sets:
            self._ev(out, "VarSet", "dialplan,all", chan, f"Variable: {var}\r\nValue: {value}\r\n")
        chan.priority += 1

    def _goto(self, chan: _Chan, context: str, exten: str) -> None:
        chan.context, chan.exten, chan.priority = context, exten, 1

    def _state(self, out: list[Ev], chan: _Chan, state: int) -> None:
        chan.state = state
        self._ev(out, "Newstate", "call,all", chan)

    def _agi(self, out: list[Ev], chan: _Chan, command: str, result: str, between: list[Ev] | None = None) -> None:
        cid = f"{self.rng.getrandbits(31)}"
        self._ev(out, "AGIExecStart", "agi,all", chan, f"Command: {command}\r\nCommandId: {cid}\r\n")
        out.extend(between or ())
        self._ev(
            out,
            "AGIExecEnd",
            "agi,all",
            chan,
            f"Command: {command}\r\nCommandId: {cid}\r\nResultCode: 200\r\nResult: {result}\r\n",
        )

    def _device(self, out: list[Ev], device: str, state: str) -> None:
        text = f"{self._head('DeviceStateChange', 'call,all')}Device: {device}\r\nState: {state}\r\n\r\n"
        out.append(("DeviceStateChange", "", (device, state), text))

    def _member_status(self, out: list[Ev], queue: str, agent: str, status: int, in_call: int) -> None:
        text = (
            f"{self._head('QueueMemberStatus', 'agent,all')}Queue: {queue}\r\nMemberName: PJSIP/{agent}\r\n"
            f"Interface: PJSIP/{agent}\r\nStateInterface: PJSIP/{agent}\r\nMembership: static\r\nPenalty: 0\r\n"
            f"CallsTaken: {self.rng.randrange(200)}\r\nLastCall: {self.epoch - 60}\r\nLastPause: 0\r\n"
            f"LoginTime: {self.epoch - 3600}\r\nInCall: {in_call}\r\nStatus: {status}\r\nPaused: 0\r\n"
            f"PausedReason: \r\nRinginuse: 0\r\nWrapuptime: 0\r\n\r\n"
        )
        out.append(("QueueMemberStatus", "", None, text))

    def _pair(self, out: list[Ev], name: str, privilege: str, a: _Chan, b: _Chan, extra: str) -> None:
        out.append(
            (name, a.uniqueid, None, f"{self._head(name, privilege)}{a.snapshot()}{b.snapshot('Dest')}{extra}\r\n")
        )

    def _dtmf(self, out: list[Ev], chan: _Chan, digit: str) -> None:
        self._ev(out, "DTMFBegin", "dtmf,all", chan, f"Digit: {digit}\r\nDirection: Received\r\n")
        ms = self.rng.randrange(80, 240)
        self._ev(out, "DTMFEnd", "dtmf,all", chan, f"Digit: {digit}\r\nDurationMs: {ms}\r\nDirection: Received\r\n")

    def _bridge(self, out: list[Ev], name: str, bridge: str, chan: _Chan, count: int) -> None:
        text = (
            f"{self._head(name, 'call,all')}BridgeUniqueid: {bridge}\r\nBridgeType: basic\r\n"
            f"BridgeTechnology: simple_bridge\r\nBridgeCreator: <unknown>\r\nBridgeName: <unknown>\r\n"
            f"BridgeNumChannels: {count}\r\nBridgeVideoSourceMode: none\r\n{chan.snapshot()}\r\n"
        )
        out.append((name, chan.uniqueid, None, text))

    def _rtcp(self, out: list[Ev], chan: _Chan, talk_s: int) -> None:
        for _ in range(talk_s // 5):
            for name in ("RTCPSent", "RTCPReceived"):
                ssrc = self.rng.getrandbits(32)
                extra = (
                    f"SSRC: 0x{ssrc:08x}\r\nPT: 200(SR)\r\nReportCount: 1\r\n"
                    f"To: 203.0.113.7:{self.rng.randrange(10000, 15000)}\r\n"
                    f"SentNTP: {self.epoch}.{self.rng.randrange(10**6):06d}\r\nSentRTP: {self.rng.getrandbits(31)}\r\n"
                    f"SentPackets: {self.rng.randrange(10**4)}\r\nSentOctets: {self.rng.randrange(10**6)}\r\n"
                    f"Report0SourceSSRC: 0x{self.rng.getrandbits(32):08x}\r\nReport0FractionLost: 0\r\n"
                    f"Report0CumulativeLost: {self.rng.randrange(4)}\r\n"
                    f"Report0HighestSequence: {self.rng.randrange(65536)}\r\n"
                    f"Report0SequenceNumberCycles: 0\r\nReport0IAJitter: {self.rng.randrange(40)}\r\n"
                    f"Report0LSR: {self.rng.getrandbits(31)}\r\nReport0DLSR: 0.{self.rng.randrange(1000):03d}\r\n"
                )
                self._ev(out, name, "reporting,all", chan, extra)

    def _hangup(self, out: list[Ev], chan: _Chan, cause: tuple[int, str]) -> None:
        self._ev(out, "HangupRequest", "call,all", chan, f"Cause: {cause[0]}\r\n")
        self._ev(out, "Hangup", "call,all", chan, f"Cause: {cause[0]}\r\nCause-txt: {cause[1]}\r\nTechCause: \r\n")

    # ---- one call ------------------------------------------------------------------------

    def call(self) -> list[Ev]:
        """Every event of one inbound call, in the order Asterisk would send them."""
        rng = self.rng
        self.calls += 1
        out: list[Ev] = []
        did = rng.choice(HOTLINE_NUMBERS)
        prefix = rng.choice(("13", "15", "18", "19", "010", "021"))  # mobiles, Beijing and Shanghai lines
        number = prefix + "".join(rng.choices("0123456789", k=11 - len(prefix)))
        roll = rng.random()
        name = rng.choice(NAMES_ZH) if roll < 0.35 else rng.choice(NAMES_LATIN) if roll < 0.5 else "<unknown>"
        uid = self._uid()
        caller = _Chan(f"PJSIP/{CARRIER}-{self._chan_suffix()}", uid, uid, number, name, "from-trunk", did, state=4)
        self._ev(out, "Newchannel", "call,all", caller)
        self._app(out, caller, "Goto", f"hotline,{did},1")
        self._goto(caller, "hotline", did)
        self._app(out, caller, "NoOp", f"Hotline call to {did}")
        self._app(out, caller, "Set", f"__HOTLINE_DNIS={did}", (("__HOTLINE_DNIS", did),))
        self._app(out, caller, "Set", f"__HOTLINE_CALLER={number}", (("__HOTLINE_CALLER", number),))
        self._app(out, caller, "Set", f"__HOTLINE_START={self.epoch}", (("__HOTLINE_START", f"{self.epoch}"),))
        self._app(out, caller, "Set", "TIMEOUT(absolute)=3600")
        self._app(out, caller, "ExecIf", '$["${CHANNEL(language)}" = "en"]?Set(CHANNEL(language)=zh)')
        self._app(out, caller, "Answer", "")
        self._state(out, caller, 6)
        self._app(out, caller, "AGI", "agi://127.0.0.1:4573/hotline")
        # The controller's IVR over FastAGI: a menu with digits, a prompt, the routing decision.
        digits = "".join(rng.choices("0123456789", k=rng.choice((1, 1, 2, 3, 4))))
        between: list[Ev] = []
        for digit in digits:
            self._dtmf(between, caller, digit)
        self._agi(out, caller, "GET DATA /var/lib/hotline/sounds/greeting 5000 4", f"{digits}", between)
        self._agi(out, caller, 'STREAM FILE /var/lib/hotline/sounds/thanks ""', "0 endpos=41280")
        queue = rng.choice(QUEUES)
        sets: list[Ev] = []
        self._ev(sets, "VarSet", "dialplan,all", caller, f"Variable: HOTLINE_QUEUE\r\nValue: {queue}\r\n")
        self._agi(out, caller, f"SET VARIABLE HOTLINE_QUEUE {queue}", "1", sets)
        self._ev(out, "VarSet", "dialplan,all", caller, "Variable: AGISTATUS\r\nValue: SUCCESS\r\n")
        self._app(out, caller, "GotoIf", '$["${HOTLINE_NEXT}" = "hangup"]?bye')
        self._app(out, caller, "Goto", "hotline-queue,s,1")
        self._goto(caller, "hotline-queue", "s")
        self._app(out, caller, "Set", f"__HOTLINE_QUEUE={queue}", (("__HOTLINE_QUEUE", queue),))
        self._app(out, caller, "Queue", f"{queue},t,,,600")
        count = rng.randrange(1, 25)  # callers in that queue, this one included
        self._ev(
            out,
            "QueueCallerJoin",
            "agent,all",
            caller,
            f"Queue: {queue}\r\nPosition: {count}\r\nCount: {count}\r\n",
            queue,
        )
        self._ev(out, "MusicOnHoldStart", "call,all", caller, "Class: default\r\n")
        # Ring agents until one answers (or the caller gives up).
        for attempt in range(3):
            if attempt and rng.random() < 0.3:
                break  # abandoned after a no-answer
            agent = rng.choice(self.agents)
            member = f"Queue: {queue}\r\nMemberName: PJSIP/{agent}\r\nInterface: PJSIP/{agent}\r\n"
            auid = self._uid()
            leg = _Chan(
                f"PJSIP/{agent}-{self._chan_suffix()}",
                auid,
                uid,
                agent,
                self.agent_names[agent],
                "agents",
                "s",
                conn_num=number,
                conn_name=name,
            )
            self._ev(out, "Newchannel", "call,all", leg)
            inherited = (("__HOTLINE_DNIS", did), ("__HOTLINE_CALLER", number), ("__HOTLINE_QUEUE", queue))
            for var, value in inherited:
                self._ev(out, "VarSet", "dialplan,all", leg, f"Variable: {var}\r\nValue: {value}\r\n")
            self._pair(out, "DialBegin", "call,all", caller, leg, f"DialString: {agent}\r\n")
            self._pair(
                out,
                "AgentCalled",
                "agent,all",
                caller,
                leg,
                member,
            )
            self._state(out, leg, 5)
            self._device(out, f"PJSIP/{agent}", "RINGING")
            self._member_status(out, queue, agent, 6, 0)
            if rng.random() < 0.2:  # no answer: the queue cancels this leg and tries another
                self._pair(out, "DialEnd", "call,all", caller, leg, "DialStatus: NOANSWER\r\n")
                self._pair(
                    out,
                    "AgentRingNoAnswer",
                    "agent,all",
                    caller,
                    leg,
                    f"{member}RingTime: 20000\r\n",
                )
                self._hangup(out, leg, (26, "Answered elsewhere"))
                self._device(out, f"PJSIP/{agent}", "NOT_INUSE")
                self._member_status(out, queue, agent, 1, 0)
                continue
            self._state(out, leg, 6)
            self._pair(out, "DialEnd", "call,all", caller, leg, "DialStatus: ANSWER\r\n")
            self._ev(
                out,
                "QueueCallerLeave",
                "agent,all",
                caller,
                f"Queue: {queue}\r\nCount: {count - 1}\r\nPosition: 1\r\n",
                queue,
            )
            self._ev(out, "MusicOnHoldStop", "call,all", caller)
            hold = rng.randrange(2, 90)
            queue_vars = (  # queues.conf setinterfacevar / setqueueentryvar
                ("MEMBERINTERFACE", f"PJSIP/{agent}"),
                ("MEMBERNAME", f"PJSIP/{agent}"),
                ("MEMBERCALLS", f"{rng.randrange(200)}"),
                ("MEMBERLASTCALL", f"{self.epoch - rng.randrange(600)}"),
                ("MEMBERPENALTY", "0"),
                ("MEMBERDYNAMIC", "0"),
                ("MEMBERREALTIME", "0"),
                ("QEHOLDTIME", f"{hold}"),
                ("QEORIGINALPOS", f"{count}"),
            )
            for var, value in queue_vars:
                self._ev(out, "VarSet", "dialplan,all", caller, f"Variable: {var}\r\nValue: {value}\r\n")
            caller.conn_num, caller.conn_name = agent, self.agent_names[agent]
            self._ev(out, "NewConnectedLine", "call,all", caller)
            self._pair(
                out,
                "AgentConnect",
                "agent,all",
                caller,
                leg,
                f"{member}RingTime: {rng.randrange(1, 15)}\r\nHoldTime: {hold}\r\n",
            )
            self.bridge_seq += 1
            bridge = f"{self.bridge_seq:08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}-"
            bridge += f"a{rng.getrandbits(12):03x}-{rng.getrandbits(48):012x}"
            self._bridge(out, "BridgeEnter", bridge, caller, 1)
            self._bridge(out, "BridgeEnter", bridge, leg, 2)
            for a, b in ((caller, leg), (leg, caller)):
                self._ev(out, "VarSet", "dialplan,all", a, f"Variable: BRIDGEPEER\r\nValue: {b.name}\r\n")
                self._ev(
                    out,
                    "VarSet",
                    "dialplan,all",
                    a,
                    f"Variable: BRIDGEPVTCALLID\r\nValue: {rng.getrandbits(64):016x}@10.0.0.2\r\n",
                )
            self._device(out, f"PJSIP/{agent}", "INUSE")
            self._member_status(out, queue, agent, 2, 1)
            talk = rng.randrange(20, 300)
            if rng.random() < 0.15:  # the agent asks the caller to key an ID number
                for digit in rng.choices("0123456789", k=6):
                    self._dtmf(out, caller, digit)
            if self.rtcp:
                self._rtcp(out, caller, talk)
                self._rtcp(out, leg, talk)
            first, second = (caller, leg) if rng.random() < 0.6 else (leg, caller)
            cause = rng.choice(HANGUP_CAUSES)
            reason = "caller" if first is caller else "agent"
            self._ev(out, "SoftHangupRequest", "call,all", second, "Cause: 16\r\n")
            self._bridge(out, "BridgeLeave", bridge, first, 1)
            self._bridge(out, "BridgeLeave", bridge, second, 0)
            self._pair(
                out,
                "AgentComplete",
                "agent,all",
                caller,
                leg,
                f"{member}HoldTime: {hold}\r\nTalkTime: {talk}\r\nReason: {reason}\r\n",
            )
            self._hangup(out, first, cause)
            if second is caller:  # the caller goes on in the dialplan after the agent hung up
                self._app(out, caller, "Hangup", "")
            self._hangup(out, second, cause)
            self._device(out, f"PJSIP/{agent}", "NOT_INUSE")
            self._member_status(out, queue, agent, 1, 0)
            return out
        self._ev(
            out,
            "QueueCallerAbandon",
            "agent,all",
            caller,
            f"Queue: {queue}\r\nPosition: 1\r\nOriginalPosition: {count}\r\nHoldTime: {rng.randrange(20, 120)}\r\n",
            queue,
        )
        self._ev(
            out,
            "QueueCallerLeave",
            "agent,all",
            caller,
            f"Queue: {queue}\r\nCount: {count - 1}\r\nPosition: 1\r\n",
            queue,
        )
        self._ev(out, "MusicOnHoldStop", "call,all", caller)
        self._hangup(out, caller, (16, "Normal Clearing"))
        return out

    # ---- the stream ----------------------------------------------------------------------

    def stream(self, n_events: int) -> tuple[bytes, Expected]:
        """``n_events`` events of ``concurrency`` interleaved calls, with the login preamble."""
        rng = self.rng
        expected = Expected()
        parts = [
            "Asterisk Call Manager/9.0.0\r\n",
            "Response: Success\r\nActionID: bench-login\r\nMessage: Authentication accepted\r\n\r\n",
        ]
        boot = "Uptime: 86400\r\nLastReload: 86400\r\nStatus: Fully Booted\r\n\r\n"
        boot = self._head("FullyBooted", "system,all") + boot
        parts.append(boot)
        expected.add("FullyBooted", "", None)
        # The stream starts mid-traffic, as a capture would: each call already in progress is
        # cut at a random point (its earlier events, perhaps its Newchannel, came before).
        active: list[list[Ev]] = []
        for _ in range(self.concurrency):
            events = self.call()
            active.append(events[rng.randrange(len(events)) :][::-1])
        while expected.events < n_events:
            i = rng.randrange(len(active))
            events = active[i]
            name, uid, aux, text = events.pop()
            parts.append(text)
            caller_name = None
            if name == "Newchannel":
                caller_name = text.partition("CallerIDName: ")[2].partition("\r\n")[0]
            expected.add(name, uid, aux, caller_name)
            if not events:
                active[i] = self.call()[::-1]
        return "".join(parts).encode("utf-8"), expected


# ---- a recorded stream -------------------------------------------------------------------


def expected_from_bytes(data: bytes) -> Expected:
    """The reference reading of a stream: the whole thing decoded at once, a naive parser."""
    expected = Expected()
    blocks = data.decode("utf-8", "replace").split(EOM)
    blocks.pop()  # what follows the last separator is an unfinished message (or nothing)
    for block in blocks:
        lines = [line for line in block.split("\r\n") if line]
        while lines and ": " not in lines[0]:
            lines.pop(0)  # the "Asterisk Call Manager/x.y" banner
        if not lines or not lines[0].startswith("Event: "):
            continue
        h: dict[str, str] = {}
        for line in lines:
            k, _, v = line.partition(": ")
            h[k] = v
        name, uid = h["Event"], h.get("Uniqueid", "")
        aux: Any = None
        if name.startswith("QueueCaller"):
            aux = h.get("Queue", "")
        elif name == "DeviceStateChange":
            aux = (h.get("Device", ""), h.get("State", ""))
        expected.add(name, uid, aux, h.get("CallerIDName", "") if name == "Newchannel" else None)
    return expected


def _nonempty(queue_callers: dict[str, set[str]]) -> dict[str, set[str]]:
    return {q: c for q, c in queue_callers.items() if c}


def chunked(data: bytes, chunk: str, seed: int) -> list[bytes]:
    """The stream cut as TCP reads would cut it: fixed sizes, or a seeded mix of sizes."""
    if chunk == "mixed":
        rng = random.Random(seed + 1)
        out, i = [], 0
        while i < len(data):
            size = rng.choice(MIXED_CHUNKS)
            out.append(data[i : i + size])
            i += size
        return out
    size = int(chunk)
    return [data[i : i + size] for i in range(0, len(data), size)]


# ---- the paths under test ----------------------------------------------------------------


class _NullTransport(asyncio.Transport):
    """Where the protocols would write actions: nowhere (the benchmark sends none)."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Run:
    """One ingestion of the stream by one path: what it counted and what it left behind."""

    feed: Callable[[bytes], None]
    seen: Callable[[], int]
    link: AmiLink | None = None
    names: Counter[str] | None = None
    caller_names: Counter[str] | None = None


def _link() -> AmiLink:
    return AmiLink("127.0.0.1", 5038, "bench", "bench", EventBus(), SwitchView())


def make_controller(record: bool = False) -> Run:
    """The controller's own path, wired as ``AmiLink._connect_once`` wires it."""
    link = _link()
    manager = _Manager(
        link._on_lost,
        host=link.host,
        port=link.port,
        protocol_factory=_Protocol,
        ping_delay=3600,
        encoding="utf-8",
        forgetable_actions=("ping", "login", "logoff"),
    )
    manager.dispatch = link._ignore_dispatch
    protocol = _Protocol()
    protocol.connection_made(_NullTransport())
    protocol.factory, protocol.encoding, protocol.log = manager, "utf-8", manager.log
    manager.protocol = protocol
    link.attach(protocol)
    run = Run(protocol.data_received, lambda: link.events_seen + protocol.skipped, link=link)
    if record:
        run.names, run.caller_names = Counter(), Counter()
        link.add_raw_listener(_recorder(run.names, run.caller_names))
    return run


def make_parse_only(record: bool = False) -> Run:
    """Our protocol (decode, split, parse_block) with an ``on_event`` that only counts."""
    protocol = _Protocol()
    protocol.connection_made(_NullTransport())
    box = [0]

    def count(headers: dict[str, str]) -> None:
        box[0] += 1

    protocol.on_event = count
    run = Run(protocol.data_received, lambda: box[0])
    if record:
        run.names, run.caller_names = Counter(), Counter()
        listen = _recorder(run.names, run.caller_names)

        def count_and_record(headers: dict[str, str]) -> None:
            box[0] += 1
            listen(headers)

        protocol.on_event = count_and_record
    return run


def make_stock(record: bool = False, translate: bool = False) -> Run:
    """panoramisk as shipped: ``AMIProtocol`` and a ``Manager`` with ``register_event('*')``."""
    manager = Manager(host="127.0.0.1", port=5038, encoding="utf8")
    # Keep the stock FullyBooted pattern (dispatch matches every pattern), but not its
    # coroutine, which would need a running loop.
    manager.callbacks["FullyBooted"] = [lambda _m, _e: None]
    manager.connection_lost = lambda _exc: None  # a recorded Shutdown must not reconnect
    protocol = AMIProtocol()
    protocol.connection_made(_NullTransport())
    protocol.factory, protocol.encoding, protocol.log = manager, "utf8", manager.log
    manager.protocol = protocol
    box = [0]
    link = _link() if translate else None
    names: Counter[str] | None = Counter() if record else None
    caller_names: Counter[str] | None = Counter() if record else None
    listen = _recorder(names, caller_names) if names is not None and caller_names is not None else None

    def on_event(_manager: Any, message: Any) -> None:
        box[0] += 1
        if listen is not None:
            listen(message)
        if link is not None:
            link._on_event(message)

    manager.register_event("*", on_event)
    return Run(protocol.data_received, lambda: box[0], link=link, names=names, caller_names=caller_names)


def _recorder(names: Counter[str], caller_names: Counter[str]) -> Callable[[Any], None]:
    def listen(headers: Any) -> None:
        name = headers.get("Event", "")
        names[name] += 1
        if name == "Newchannel":
            caller_names[headers.get("CallerIDName", "")] += 1

    return listen


PATHS: dict[str, tuple[str, Callable[[bool], Run]]] = {
    "controller": ("controller: parse + translate + view + bus", make_controller),
    "parse_only": ("parse only (our _Protocol, no state)", make_parse_only),
    "stock": ("panoramisk stock: Message + dispatch", make_stock),
    "stock_full": ("panoramisk stock + our translate/view/bus", lambda record: make_stock(record, translate=True)),
}


def time_path(make: Callable[[bool], Run], chunks: list[bytes], n_events: int) -> tuple[float, float, Run]:
    """Feed the whole stream to a fresh instance of a path: (wall seconds, CPU seconds, run)."""
    run = make(False)
    feed = run.feed
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for chunk in chunks:
        feed(chunk)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if run.seen() != n_events:
        raise SystemExit(f"bench: a path saw {run.seen()} events, not {n_events}: it measured something else")
    return wall, cpu, run


# ---- checks ------------------------------------------------------------------------------


def validate(chunks: list[bytes], expected: Expected, last_controller: Run) -> tuple[list[str], list[str]]:
    """Problems (the benchmark is wrong) and notes (worth knowing) about one full ingestion."""
    problems: list[str] = []
    notes: list[str] = []
    link = last_controller.link
    assert link is not None
    view = link.view
    # Events the controller does not translate are skipped before parsing (cc_core/switch/ami.py);
    # parsed + skipped must still account for every event of the stream.
    health = link.health()
    seen = link.events_seen + health["events_skipped"]
    if seen != expected.events:
        problems.append(f"controller saw {seen} events (parsed + skipped), the stream has {expected.events}")
    if view.applied != expected.translated or link.bus.published != expected.translated:
        problems.append(
            f"view applied {view.applied} and bus published {link.bus.published} events; "
            f"{expected.translated} are translatable"
        )
    if set(view.channels) != expected.live:
        problems.append(f"view has {len(view.channels)} live channels, expected {len(expected.live)}")
    if view.devices != expected.devices:
        problems.append(f"view has {len(view.devices)} device states, expected {len(expected.devices)}")
    got_q, want_q = _nonempty(view.queue_callers), _nonempty(expected.queue_callers)
    if got_q != want_q:
        problems.append(
            f"view queue callers {sum(map(len, got_q.values()))}, expected {sum(map(len, want_q.values()))}"
        )
    for key, (_label, make) in PATHS.items():
        run = make(True)
        for chunk in chunks:
            run.feed(chunk)
        assert run.names is not None and run.caller_names is not None
        if run.names != expected.counts:
            diff = (run.names - expected.counts) + (expected.counts - run.names)
            problems.append(f"{key}: events by type differ from the stream: {dict(diff)}")
        if run.caller_names != expected.caller_names:
            lost = sum((expected.caller_names - run.caller_names).values())
            where = "the controller" if key in ("controller", "parse_only") else "panoramisk"
            text = (
                f"{key}: {lost} of {expected.counts['Newchannel']} CallerIDName values garbled "
                "(a UTF-8 character split across two reads)"
            )
            (problems if where == "the controller" else notes).append(text)
    return problems, notes


# ---- machine and report ------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--events", type=int, default=40_000, help="events to generate (default 40000)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per path (default 7)")
    parser.add_argument("--chunk", default="4096", help="bytes per data_received call, or 'mixed' (default 4096)")
    parser.add_argument("--from", dest="source", metavar="FILE", help="ingest a recorded raw AMI stream instead")
    parser.add_argument("--seed", type=int, default=2, help="generator seed (default 2)")
    parser.add_argument("--concurrency", type=int, default=300, help="calls in progress at once (default 300)")
    parser.add_argument("--agents", type=int, default=150, help="agents in the queues (default 150)")
    parser.add_argument("--rtcp", action="store_true", help="add RTCPSent/RTCPReceived every 5 s of talk per leg")
    parser.add_argument("--cpu", type=int, help="CPU to pin to (default: the last one allowed)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.chunk != "mixed" and (not args.chunk.isdigit() or int(args.chunk) <= 0):
        parser.error("--chunk takes a positive number of bytes or 'mixed'")
    if args.rounds < 1 or args.events < 1:
        parser.error("--rounds and --events must be positive")

    pinned = pin(args.cpu, not args.no_pin)
    t0 = time.perf_counter()
    if args.source:
        with open(args.source, "rb") as f:
            data = f.read()
        expected = expected_from_bytes(data)
        source = f"recorded: {args.source}"
        calls = None
    else:
        gen = Generator(args.seed, args.concurrency, args.agents, args.rtcp)
        data, expected = gen.stream(args.events)
        reference = expected_from_bytes(data)
        mine = (expected.counts, expected.live, expected.devices, _nonempty(expected.queue_callers))
        if (reference.counts, reference.live, reference.devices, _nonempty(reference.queue_callers)) != mine:
            raise SystemExit("bench: the generator's bookkeeping disagrees with the stream it wrote")
        source = f"generated: seed {args.seed}, {args.concurrency} concurrent calls, joined mid-call"
        source += ", RTCP every 5 s" if args.rtcp else ""
        calls = gen.calls
    if expected.events == 0:
        raise SystemExit("bench: the stream holds no events")
    chunks = chunked(data, args.chunk, args.seed)
    gen_s = time.perf_counter() - t0

    elapsed: dict[str, list[float]] = {key: [] for key in PATHS}
    cpu: dict[str, list[float]] = {key: [] for key in PATHS}
    keys = list(PATHS)
    for key in keys:  # warm-up on the first fifth of the stream, not counted
        warm = PATHS[key][1](False)
        for chunk in chunks[: max(1, len(chunks) // 5)]:
            warm.feed(chunk)
    last: Run | None = None
    for r in range(args.rounds):
        order = keys[r % len(keys) :] + keys[: r % len(keys)]  # each path goes first in turn
        for key in order:
            wall, cpu_s, run = time_path(PATHS[key][1], chunks, expected.events)
            elapsed[key].append(wall)
            cpu[key].append(cpu_s)
            if key == "controller":
                last = run
    assert last is not None
    problems, notes = validate(chunks, expected, last)

    n = expected.events
    results: dict[str, dict[str, Any]] = {}
    for key, (label, _make) in PATHS.items():
        rates = [n / s for s in elapsed[key]]
        results[key] = {
            "label": label,
            "median_events_s": statistics.median(rates),
            "min_events_s": min(rates),
            "max_events_s": max(rates),
            "median_us_per_event": statistics.median(s * 1e6 / n for s in elapsed[key]),
            "median_events_per_cpu_s": statistics.median(n / s for s in cpu[key]),
            "rounds_events_s": rates,
        }

    def paired(a: str, b: str) -> float:
        """Median of the per-round ratios (rate a / rate b): robust to drift between rounds."""
        return statistics.median(tb / ta for ta, tb in zip(elapsed[a], elapsed[b], strict=True))

    ours = results["controller"]["median_events_s"]
    ratios = {
        "controller_vs_stock": paired("controller", "stock"),
        "controller_vs_stock_full": paired("controller", "stock_full"),
        "parse_only_vs_stock": paired("parse_only", "stock"),
        "controller_vs_parse_only": paired("controller", "parse_only"),
    }
    # What translation + view + bus add per event: paired per round, on CPU time (less noisy).
    translate_us = statistics.median(
        (c - p) * 1e6 / n for c, p in zip(cpu["controller"], cpu["parse_only"], strict=True)
    )
    mix = Counter({name: c for name, c in expected.counts.items()})
    report = {
        "machine": machine(pinned, panoramisk=metadata.version("panoramisk")),
        "command": " ".join(["scripts/bench_ami_ingest.py", *(argv if argv is not None else sys.argv[1:])]),
        "stream": {
            "source": source,
            "events": n,
            "calls": calls,
            "bytes": len(data),
            "mean_event_bytes": round(len(data) / n),
            "translated_events": expected.translated,
            "live_channels_at_end": len(expected.live),
            "chunk": args.chunk,
            "chunks": len(chunks),
            "mix_top": {name: round(c / n, 3) for name, c in mix.most_common(8)},
            "prepare_s": round(gen_s, 2),
        },
        "rounds": args.rounds,
        "results": results,
        "ratios": ratios,
        "translate_state_us_per_event": translate_us,
        "target_events_s": TARGET,
        "target_met": ours >= TARGET,
        "target_margin": ours / TARGET,
        "validation": {"ok": not problems, "problems": problems, "notes": notes},
    }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_report(report)
    return 0 if not problems else 1


def print_report(rep: dict[str, Any]) -> None:
    m, s = rep["machine"], rep["stream"]
    pinned = f"pinned to CPU {m['pinned_cpu']}" if m["pinned_cpu"] is not None else "not pinned"
    print(f"machine:  {m['cpu']}, {m['cores']} cores ({pinned}); {m['python']}; panoramisk {m['panoramisk']}")
    print(f"          {m['platform']}; {m['date_utc']}")
    print(f"command:  {rep['command']}")
    calls = f", {s['calls']:,} calls" if s["calls"] else ""
    print(
        f"stream:   {s['source']}; {s['events']:,} events{calls}, {s['bytes'] / 1e6:.1f} MB "
        f"({s['mean_event_bytes']} B/event), {s['translated_events']:,} translated; "
        f"{s['chunks']:,} reads of {s['chunk']}{'' if s['chunk'] == 'mixed' else ' B'}"
    )
    print("mix:      " + ", ".join(f"{k} {v:.0%}" for k, v in s["mix_top"].items()))
    print()
    head = f"{'path':<44} {'median ev/s':>12} {'min ev/s':>10} {'max ev/s':>10} {'µs/event':>9} {'ev/CPU-s':>10}"
    print(f"{rep['rounds']} rounds, the paths alternating in each round; wall clock (ev/CPU-s: per CPU second)")
    print(head)
    print("-" * len(head))
    for r in rep["results"].values():
        print(
            f"{r['label']:<44} {r['median_events_s']:>12,.0f} {r['min_events_s']:>10,.0f} "
            f"{r['max_events_s']:>10,.0f} {r['median_us_per_event']:>9.2f} {r['median_events_per_cpu_s']:>10,.0f}"
        )
    q = rep["ratios"]
    print()
    print("ratios (median of per-round ratios of rates):")
    print(f"  controller (full path) / panoramisk stock (parse + dispatch only): {q['controller_vs_stock']:.2f}x")
    print(f"  controller (full path) / panoramisk stock + same translate/view:  {q['controller_vs_stock_full']:.2f}x")
    print(f"  our parse only / panoramisk stock parse + dispatch:              {q['parse_only_vs_stock']:.2f}x")
    print(
        f"  controller / our parse only: {q['controller_vs_parse_only']:.2f} "
        f"(translate + view + bus add {rep['translate_state_us_per_event']:.2f} CPU-µs per event)"
    )
    ours = rep["results"]["controller"]["median_events_s"]
    verdict = "MET" if rep["target_met"] else "NOT MET"
    print(
        f"target:   {rep['target_events_s']:,} events/s on one core: {verdict} "
        f"({ours:,.0f} = {rep['target_margin']:.1f}x the target)"
    )
    v = rep["validation"]
    if v["ok"]:
        print(
            f"check:    ok: every event seen once by type by all 4 paths; view holds the "
            f"{s['live_channels_at_end']} live channels, devices and queue callers of the stream"
        )
    for problem in v["problems"]:
        print(f"check:    FAILED: {problem}")
    for note in v["notes"]:
        print(f"note:     {note}")


if __name__ == "__main__":
    sys.exit(main())
