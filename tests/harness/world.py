"""The outside world: a second Asterisk that places citizens' calls and plays agents' phones.

One-line helpers for tests::

    call = world.call_hotline(caller="13800138000")      # the carrier calls the hotline
    call.press("12#")                                    # DTMF (RFC 4733), digit by digit
    call.hang_up()
    world.phone("1001").answers_after(2)                 # agent 1001's phone answers after 2 s
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from cc_core.switch.config import TEMPLATE_DIR, Block, base_values, render, render_tree
from cc_core.switch.instance import Instance
from cc_core.switch.process import Ports, Switch, pid_alive
from tests.harness.ami import AmiPeer, match
from tests.harness.loop import LoopThread
from tests.harness.ports import WORLD_RTP, free_port
from tests.harness.watch import file_tail

# The world reuses the product's templates; a file of the same name in its own folder wins
# (pjsip, extensions, queues, ari, and manager: the world's AMI user has every class), so a new
# product template with placeholders the world lacks fails at render time with the name of the
# missing value.
WORLD_TEMPLATES = Path(__file__).resolve().parent / "world_config"


class World:
    """The simulated carrier and agents' phones, on their own ports."""

    def __init__(self, root: Path, name: str, state_dir: Path, cc_sip_port: int, agents: dict[str, str]) -> None:
        self.instance = Instance(root, name)
        self.sip_port = free_port()
        self.ami_port = free_port()
        self.http_port = free_port()
        self.ami_secret = secrets.token_urlsafe(16)
        self.cc_sip_port = cc_sip_port
        self.agents = agents
        self.switch = Switch(self.instance, state_dir / "run" / f"switch-{name}.pid")
        self.ami: AmiPeer | None = None

    def render(self) -> None:
        values: dict[str, object] = {
            **base_values(self.instance),
            "ami_port": self.ami_port,
            "http_port": self.http_port,
            "sip_port": self.sip_port,
            "rtp_start": WORLD_RTP[0],
            "rtp_end": WORLD_RTP[1],
            "ami_user": "world",
            "ami_secret": self.ami_secret,
            "cc_sip_port": self.cc_sip_port,
        }
        partial = (WORLD_TEMPLATES / "pjsip.phone.conf").read_text(encoding="utf-8")
        values["phones"] = Block(
            "\n".join(
                render(partial, {**values, "agent": a, "agent_password": p}, "pjsip.phone.conf")
                for a, p in self.agents.items()
            )
        )
        render_tree([TEMPLATE_DIR, WORLD_TEMPLATES], self.instance, values)

    def start(self, loop: LoopThread) -> None:
        self.render()
        self.switch.start(Ports(self.sip_port, self.ami_port, self.http_port, "127.0.0.1"), timeout=30)
        self.ami = AmiPeer(loop, self.ami_port, "world", self.ami_secret, "world")
        self.ami.wait_connected()

    def close(self) -> None:
        if self.ami is not None:
            self.ami.close()
        self.switch.stop()

    def is_running(self) -> bool:
        """Whether the world's Asterisk is alive (a pid file left by a crash does not count)."""
        pid = self.switch.pid
        return pid is not None and pid_alive(pid)

    def restart(self, loop: LoopThread) -> None:
        """Start the world again after it died (the test it died in has failed already, see
        tests/harness/watch.py): a fresh AMI peer, the same ports and phones."""
        if self.ami is not None:
            self.ami.close()
            self.ami = None
        self.switch.pid_file.unlink(missing_ok=True)
        self.start(loop)

    def switch_tail(self, lines: int = 40) -> str:
        return file_tail(self.instance.console_log, lines)

    # ---- callers ------------------------------------------------------------------------

    def call_hotline(
        self,
        number: str = "12333",
        caller: str = "13800138000",
        script: str = "",
        timeout: float = 20.0,
        record: str = "",
    ) -> WorldCall:
        """Place a citizen's call to the hotline; return once the hotline has answered it.

        ``record``: a path inside the world's chroot where what the caller hears is recorded.
        """
        assert self.ami is not None
        # panoramisk resolves an async Originate with [Response, OriginateResponse] once the
        # far end answers (or the attempt fails), so the answer is in the action's result.
        result = self.ami.action(
            {
                "Action": "Originate",
                "Channel": f"PJSIP/{number}@hotline",
                "Context": "caller",
                "Exten": "s",
                "Priority": "1",
                "CallerID": f'"{caller}" <{caller}>',
                "Variable": [f"CALLER_SCRIPT={script}", f"CALLER_RECORD={record}"],
                "Timeout": str(int(timeout * 1000)),
                "Async": "true",
            },
            timeout=timeout + 5,
        )
        answers = result if isinstance(result, list) else [result]
        answer = next((m for m in answers if m.get("Event") == "OriginateResponse"), None)
        if answer is None or answer.get("Response") != "Success":
            raise AssertionError(f"the hotline did not answer: {answers}")
        return WorldCall(self, answer["Channel"], answer["Uniqueid"])

    # ---- phones -------------------------------------------------------------------------

    def phone(self, agent: str) -> Phone:
        return Phone(self, agent)


@dataclass
class WorldCall:
    """The carrier's side of one call to the hotline."""

    world: World
    channel: str
    uniqueid: str

    def press(self, digits: str, duration_ms: int = 200) -> None:
        """Send DTMF to the hotline (RFC 4733), one digit at a time."""
        assert self.world.ami is not None
        for digit in digits:
            self.world.ami.action(
                {
                    "Action": "PlayDTMF",
                    "Channel": self.channel,
                    "Digit": digit,
                    "Duration": str(duration_ms),
                    "Receive": "false",
                }
            )

    def speak(self, sound: str = "hello-world&hello-world&hello-world") -> None:
        """Make the caller talk: play Asterisk sounds into the call, then stay on the line.
        The world raises ``UserEvent CallerPlayed`` when done."""
        assert self.world.ami is not None
        self.world.ami.action({"Action": "Setvar", "Channel": self.channel, "Variable": "CALLER_PLAY", "Value": sound})
        self.world.ami.action(
            {"Action": "Redirect", "Channel": self.channel, "Context": "caller-play", "Exten": "s", "Priority": "1"}
        )

    def hang_up(self, cause: int = 16) -> None:
        """The citizen puts the phone down: Q.850 cause 16, normal clearing, as a phone's BYE
        means (AMI's Hangup without a cause sends 0, "Unknown", which the hotline then records)."""
        assert self.world.ami is not None
        self.world.ami.action({"Action": "Hangup", "Channel": self.channel, "Cause": str(cause)})

    def wait_hung_up(self, timeout: float = 20.0, since: int = 0) -> dict[str, str]:
        """Wait until this call has ended on the carrier's side (e.g. the hotline hung up)."""
        assert self.world.ami is not None
        return self.world.ami.wait_for(match(Event="Hangup", Uniqueid=self.uniqueid), timeout, since, "Hangup")


@dataclass
class Phone:
    """An agent's phone: how it behaves when the hotline rings it."""

    world: World
    agent: str

    def _put(self, key: str, value: str) -> None:
        assert self.world.ami is not None
        self.world.ami.action({"Action": "DBPut", "Family": f"phone/{self.agent}", "Key": key, "Val": value})

    def answers_after(self, seconds: float) -> Phone:
        self._put("answer_after", f"{seconds:g}")
        return self

    def never_answers(self) -> Phone:
        self._put("answer_after", "never")
        return self

    def plays(self, sound: str) -> Phone:
        self._put("play", sound)
        return self

    def hangs_up_after(self, seconds: float) -> Phone:
        self._put("hangup_after", f"{seconds:g}")
        return self

    def records(self, inside: str) -> Phone:
        """Record what the phone hears from the hotline into ``inside`` (a path in the chroot;
        an empty string stops recording)."""
        self._put("record", inside)
        return self
