"""The IVR flow model: what an admin's YAML file means, as plain immutable data (T6).

The loader (:mod:`cc_core.ivr.loader`) builds these from YAML and the validator
(:mod:`cc_core.ivr.validator`) checks them; the runtime, the simulator and the graph only
read them. See docs/ivr-flows.md for the file format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DTMF_KEYS = frozenset("0123456789*#")
CHECKS = ("digits", "id_card", "phone", "date")
MAX_MENU_LEVELS = 5


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the caller hears: Chinese text (rendered by TTS) or a recorded file.

    ``name`` is set when the node referred to a named prompt of the flow's ``prompts:``.
    """

    text: str | None = None
    file: str | None = None
    name: str | None = None

    def describe(self) -> str:
        if self.text is not None:
            return self.text
        return f"[录音 {self.file}]"


@dataclass(frozen=True, slots=True)
class Node:
    """Base of every node: its name and where it is written (for error messages)."""

    name: str
    line: int = 0

    def exits(self) -> list[tuple[str, str]]:
        """The node's outgoing edges as (label, target node name) within the same flow."""
        return []

    @property
    def kind(self) -> str:
        return KIND_OF[type(self)]

    @property
    def terminal(self) -> bool:
        """Whether the call leaves the IVR here (queue, transfer, hang-up, another flow)."""
        return False


@dataclass(frozen=True, slots=True)
class Play(Node):
    prompt: Prompt = Prompt()
    next: str = ""

    def exits(self) -> list[tuple[str, str]]:
        return [("next", self.next)]


@dataclass(frozen=True, slots=True)
class Menu(Node):
    prompt: Prompt = Prompt()
    choices: dict[str, str] = field(default_factory=dict)
    timeout: float = 5.0
    retries: int = 3
    invalid: Prompt | None = None
    no_input: Prompt | None = None
    repeat: str | None = None
    back: str | None = None
    on_fail: str = ""

    def exits(self) -> list[tuple[str, str]]:
        return [*((key, target) for key, target in self.choices.items()), ("on_fail", self.on_fail)]


@dataclass(frozen=True, slots=True)
class Collect(Node):
    prompt: Prompt = Prompt()
    check: str = "digits"
    store: str = ""
    min_length: int = 1
    max_length: int = 20
    timeout: float = 8.0
    retries: int = 3
    invalid: Prompt | None = None
    no_input: Prompt | None = None
    next: str = ""
    on_fail: str = ""

    def exits(self) -> list[tuple[str, str]]:
        return [("next", self.next), ("on_fail", self.on_fail)]


@dataclass(frozen=True, slots=True)
class Http(Node):
    url: str = ""
    method: str = "GET"
    send: dict[str, str] = field(default_factory=dict)
    timeout: float = 3.0
    say: str | None = None
    next: str = ""
    on_error: str = ""

    def exits(self) -> list[tuple[str, str]]:
        return [("next", self.next), ("on_error", self.on_error)]


@dataclass(frozen=True, slots=True)
class TimeSwitch(Node):
    calendar: str = ""
    open: str = ""
    closed: str = ""
    holiday: str | None = None
    emergency: str | None = None

    def exits(self) -> list[tuple[str, str]]:
        out = [("open", self.open), ("closed", self.closed)]
        if self.holiday:
            out.append(("holiday", self.holiday))
        if self.emergency:
            out.append(("emergency", self.emergency))
        return out


@dataclass(frozen=True, slots=True)
class Queue(Node):
    queue: str = ""
    skill: str | None = None
    priority: int = 0
    # The name of a collected value holding the agent the caller asked for (their work number):
    # that agent gets the call if free, or the caller waits for them a while (T9).
    agent_from: str | None = None

    @property
    def terminal(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Voicemail(Node):
    prompt: Prompt = Prompt()
    max_seconds: int = 120
    next: str = ""

    def exits(self) -> list[tuple[str, str]]:
        return [("next", self.next)]


@dataclass(frozen=True, slots=True)
class Survey(Node):
    prompt: Prompt | None = None
    next: str = ""

    def exits(self) -> list[tuple[str, str]]:
        return [("next", self.next)]


@dataclass(frozen=True, slots=True)
class Transfer(Node):
    number: str = ""

    @property
    def terminal(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Hangup(Node):
    prompt: Prompt | None = None

    @property
    def terminal(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Goto(Node):
    """Continue at another node of this flow (``target``) or at the start of another ``flow``."""

    target: str | None = None
    flow: str | None = None

    def exits(self) -> list[tuple[str, str]]:
        return [("goto", self.target)] if self.target else []

    @property
    def terminal(self) -> bool:
        return self.flow is not None


KIND_OF: dict[type[Node], str] = {
    Play: "play",
    Menu: "menu",
    Collect: "collect",
    Http: "http",
    TimeSwitch: "time_switch",
    Queue: "queue",
    Voicemail: "voicemail",
    Survey: "survey",
    Transfer: "transfer",
    Hangup: "hangup",
    Goto: "goto",
}
KINDS = tuple(KIND_OF.values())


@dataclass(frozen=True, slots=True)
class Flow:
    """One validated flow file. ``version`` is the SHA-256 of the file's bytes: a call keeps the
    version it started on, whatever reloads happen meanwhile.

    ``lines`` maps the path of every value the loader read (``nodes.main_menu.menu.choices."1"``)
    to its line in ``source``, so the validator can point at the exact line; it is not part of
    the flow's meaning (not compared, not shown).
    """

    name: str
    title: str
    start: str
    nodes: dict[str, Node]
    prompts: dict[str, Prompt]
    source: Path
    version: str
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def node(self, name: str) -> Node:
        return self.nodes[name]
