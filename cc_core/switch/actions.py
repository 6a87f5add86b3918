"""What the domains may ask of the switch: typed actions, typed results and one small interface.

The switch boundary is sealed both ways (issue 12 item 5, docs/decisions/0015-switch-boundary.md):
the domains (the ACD, call control, the controller's wiring) build these values and read these
results; only an implementation in ``cc_core/switch/`` turns them into a switch's own protocol —
:class:`cc_core.switch.asterisk.AsteriskControl` into AMI dictionaries, a FreeSWITCH one (planned,
BRIEF P3) into ESL commands. Nothing outside ``cc_core/switch/`` builds or reads an AMI
dictionary; import contracts (.importlinter) keep it so.

The vocabulary is what the domains send today and no more: set channel variables, move one or two
channels to a place in the dialplan, hang a channel up, place a call from an agent's phone
(callbacks), reload the agents' SIP accounts. A place is (context, extension, priority): both
Asterisk's dialplan and FreeSWITCH's XML dialplan have those. None of these needs an AMI right the
controller's least-privilege user lacks (docs/security.md): Setvar, Redirect and Hangup are the
``call`` class, Originate ``originate``; the reload goes through the switch's root-only CLI socket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


class SwitchUnavailable(Exception):
    """The switch could not be asked: the link is down, or it did not answer in time.

    The AMI link's :class:`cc_core.switch.ami.AmiUnavailable` is one; a timeout waiting for an
    answer is turned into one, so a domain catches this alone, never a transport's errors."""


@dataclass(frozen=True, slots=True)
class Place:
    """A place in the switch's dialplan: where a moved or placed channel goes on."""

    context: str
    exten: str = "s"
    priority: int = 1


@dataclass(frozen=True, slots=True)
class Phone:
    """An agent's SIP phone, by its extension (``1001``)."""

    extension: str


@dataclass(frozen=True, slots=True)
class Outside:
    """A number outside, dialled through a trunk (a mobile login, a transfer, a consultation)."""

    number: str
    trunk: str


Endpoint = Phone | Outside


@dataclass(frozen=True, slots=True)
class SetVariables:
    """Set channel variables the dialplan reads next (``HOTLINE_DIAL``, ``HOTLINE_ROOM``…), in
    order; the first one refused (the channel is gone) stops the rest."""

    channel: str
    values: Mapping[str, str] = field(hash=False)


@dataclass(frozen=True, slots=True)
class Redirect:
    """Move a channel to a place; with ``also``, a second channel at the same moment (both
    parties of a call into a conference room, or one in and one out)."""

    channel: str
    to: Place
    also: tuple[str, Place] | None = None


@dataclass(frozen=True, slots=True)
class Hangup:
    """Hang a channel up."""

    channel: str


@dataclass(frozen=True, slots=True)
class Originate:
    """Ring ``endpoint`` (an agent's phone) for ``ring_s`` seconds; when it answers, it goes on
    at ``to`` with ``variables`` set. The answer of :meth:`SwitchControl.originate` comes when the
    endpoint answered or the ring ended."""

    endpoint: Endpoint
    to: Place
    ring_s: int
    caller_id: str
    channel_id: str  # the new channel's unique id, chosen by the controller
    variables: Mapping[str, str] = field(hash=False)


SwitchAction = SetVariables | Redirect | Hangup


@dataclass(frozen=True, slots=True)
class ActionResult:
    """Whether the switch did it; ``reason`` is its message when it refused (for the log and
    the agent's error)."""

    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OriginateResult:
    """Whether the rung endpoint answered; ``reason`` says why not."""

    answered: bool
    reason: str = ""


class SwitchControl(Protocol):
    """The switch as the domains see it. :class:`cc_core.switch.asterisk.AsteriskControl` is the
    Asterisk one (AMI, and the CLI socket for reloads); another switch implements the same
    members: four that act, and four that speak the switch's naming of phones and channels."""

    @property
    def connected(self) -> bool:
        """Whether actions can be sent now (the link is up and resynced)."""
        ...

    async def send(self, action: SwitchAction) -> ActionResult:
        """Carry one action out. Raises :class:`SwitchUnavailable` when the switch cannot be asked."""
        ...

    async def originate(self, action: Originate) -> OriginateResult:
        """Place a call and wait for its first leg's outcome. Raises :class:`SwitchUnavailable`."""
        ...

    async def reload_accounts(self) -> None:
        """Load the agents' SIP accounts again after their config was rendered (new agent, new
        password). Raises :class:`cc_core.errors.SwitchError` when the switch did not reload."""
        ...

    def dial_string(self, endpoint: Endpoint) -> str:
        """How the dialplan dials ``endpoint`` (the value of ``HOTLINE_DIAL`` and
        ``HOTLINE_CONSULT_DIAL``, which the dialplan passes to its dial application)."""
        ...

    def phone_device(self, extension: str) -> str:
        """The device name the switch reports a phone's state under (the key of
        :attr:`cc_core.switch.view.SwitchView.devices` and of ``DeviceStateChanged.device``)."""
        ...

    def endpoint_of_device(self, device: str) -> str | None:
        """The extension a device name is for; None for a device that is not a SIP endpoint."""
        ...

    def endpoint_of_channel(self, channel: str) -> str:
        """The endpoint (an agent's extension, or a trunk's name) a channel's name belongs to."""
        ...
