"""What an agent does with the call they are on (T3, issue 4 item 6): hold, blind transfer to an
agent, a queue or an outside number, consultation, consultative transfer and three-way calls.

A plain call is the dialplan's ``Dial`` bridge between the caller and the agent (cheap, and the
survey follows by itself when the agent hangs up). The first hold or consultation moves the call
into a **room**: a ``ConfBridge`` named after the caller's channel (``hotline-room`` in the
dialplan), where the citizen hears music while alone. From there every move is an AMI
``Redirect`` of one or two channels (decision 0009):

========================  ===================================================================
hold / take back          the agent waits in ``hotline-held``; back into the room
consult                   the agent dials the third party from ``hotline-consult``; when that
                          ends (no answer, hung up, cancelled) the dialplan brings the agent back
hand over (consultative)  the third party into the room, the agent out (``hotline-room,leave``)
three-way                 the third party and the agent into the room
drop the third party      the third party's channel hung up
leave the three-way       the agent's channel hung up; the citizen and the third party go on
blind transfer            the caller to the queue loop (an agent or a queue) or to
                          ``hotline-transfer`` (a number); the agent's leg ends
========================  ===================================================================

The citizen alone in the room with nobody to come back (every agent and third party gone) is
taken to the survey. Each party's leg is recorded from its answer (``hotline-answered``), and
every step is an event on the call record, with its time (T3, T5).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cc_core.acd import agent_state as sm
from cc_core.acd.model import AgentState
from cc_core.acd.service import Acd, AgentError, AgentLeg, Waiter
from cc_core.bus import EventBus
from cc_core.logs import mask_personal_data
from cc_core.switch.actions import (
    ActionResult,
    Hangup,
    Outside,
    Place,
    Redirect,
    SetVariables,
    SwitchAction,
    SwitchUnavailable,
)
from cc_core.switch.events import ChannelHungUp, ConferenceJoined, ConferenceLeft, DialEnded, DialStarted
from cc_core.switch.numbers import is_dialable

log = logging.getLogger(__name__)

TARGET_KINDS = ("agent", "queue", "number")
TARGETED_ACTIONS = ("transfer", "consult")
# A transferred caller goes ahead of callers who have not been served yet.
TRANSFER_PRIORITY_BOOST = 1


@dataclass
class Party:
    """The third party of a consultation or a three-way call."""

    target: str  # what the agent asked for, e.g. "agent:1003" or "number:13912345678"
    agent: str | None  # the agent's id; None for an outside number
    uniqueid: str = ""
    channel: str = ""
    # ringing → talking (with the agent, the citizen on hold) → joined (in the room) → gone
    state: str = "ringing"


@dataclass
class Room:
    """A call that has moved into its conference room, and where each party is."""

    call: str  # the caller's uniqueid: the call's id and the room's name
    caller_channel: str
    agent: str | None  # the agent in charge of the call (None: only an outside party is left)
    agent_uid: str
    agent_channel: str
    # bridge (still the plain call), room, held, consult, gone
    agent_where: str = "bridge"
    moved: bool = False  # the caller is in the room
    members: set[str] = field(default_factory=set)
    third: Party | None = None
    gone: set[str] = field(default_factory=set)  # channels of this call that hung up


class CallControl:
    """Carries out agents' call-control requests on the switch and follows the parties."""

    def __init__(self, acd: Acd, bus: EventBus) -> None:
        self.acd = acd
        self.rooms: dict[str, Room] = {}  # call → room (only calls an agent acted on)
        bus.subscribe(DialStarted, self.on_dial_started)
        bus.subscribe(DialEnded, self.on_dial_ended)
        bus.subscribe(ConferenceJoined, self.on_joined)
        bus.subscribe(ConferenceLeft, self.on_left)
        bus.subscribe(ChannelHungUp, self.on_hangup)

    # ---- what the agent is on ---------------------------------------------------------------

    def _call_of(self, agent_id: str) -> tuple[AgentLeg, Waiter]:
        acd = self.acd
        agent = acd._agent(agent_id)
        leg = acd.legs.get(agent_id)
        if agent.state is not AgentState.ON_CALL or leg is None or not leg.uniqueid:
            raise AgentError(f"agent {agent_id} is not on a call")
        waiter = acd.waiters.get(leg.call)
        if waiter is None or waiter.state != "connected":
            raise AgentError(f"agent {agent_id}'s call cannot be transferred (a callback, or already moving)")
        return leg, waiter

    def _room(self, agent_id: str) -> tuple[Room, Waiter]:
        leg, waiter = self._call_of(agent_id)
        room = self.rooms.get(leg.call)
        if room is None:
            chan = self.acd.view.channels.get(leg.uniqueid)
            if chan is None:
                raise AgentError(f"agent {agent_id}'s channel is gone")
            room = Room(leg.call, waiter.channel, agent_id, leg.uniqueid, chan.channel)
            self.rooms[leg.call] = room
        elif room.agent != agent_id:
            raise AgentError(f"agent {agent_id} is not in charge of call {leg.call}")
        return room, waiter

    def resolve(self, to: str, *, allow_queue: bool = True) -> tuple[str, str]:
        """``agent:1003``, ``queue:complaints``, ``number:139…`` or a bare id, queue or number."""
        kind, sep, value = to.strip().partition(":")
        if not sep:
            value = kind
            if value in self.acd.agents:
                kind = "agent"
            elif value in self.acd.queues:
                kind = "queue"
            else:
                kind = "number"
        value = value.strip()
        if kind not in TARGET_KINDS or not value:
            raise AgentError(f"unknown transfer target {to!r} (agent:<id>, queue:<name> or number:<digits>)")
        if kind == "agent" and value not in self.acd.agents:
            raise AgentError(f"unknown agent {value!r}")
        if kind == "queue":
            if not allow_queue:
                raise AgentError("a consultation is with an agent or a number, not a queue")
            if value not in self.acd.queues:
                raise AgentError(f"unknown queue {value!r}")
        if kind == "number":
            # ASCII digits only (str.isdigit() takes '²' and '١'): it becomes Dial(PJSIP/<n>@trunk).
            if not is_dialable(value):
                raise AgentError(f"{mask_personal_data(value)!r} is not a phone number")
            if not self.acd.trunk:
                raise AgentError("no trunk with a host is configured: no calls to outside numbers")
        return kind, value

    # ---- switch moves ---------------------------------------------------------------------------

    async def _send(self, action: SwitchAction) -> ActionResult:
        """Carry one typed action out on the switch (issue 12 item 5); a switch that cannot be
        asked is the agent's error, with the reason, never an unhandled exception."""
        try:
            return await self.acd.switch.send(action)
        except SwitchUnavailable as exc:
            raise AgentError(f"the switch did not carry the request out: {exc}") from exc

    async def _setvars(self, channel: str, values: dict[str, str]) -> None:
        result = await self._send(SetVariables(channel, values))
        if not result.ok:
            raise AgentError(f"the call's channel is gone ({result.reason})")

    async def _redirect(self, channel: str, where: tuple[str, str], extra: tuple[str, tuple[str, str]] | None) -> None:
        also = None if extra is None else (extra[0], Place(*extra[1]))
        result = await self._send(Redirect(channel, Place(*where), also))
        if not result.ok:
            raise AgentError(f"the switch refused: {result.reason}")

    async def _hangup(self, channel: str) -> None:
        await self._send(Hangup(channel))  # a channel already gone is what was asked for

    async def _into_room(self, room: Room, agent_to: tuple[str, str]) -> None:
        """Send the agent to ``agent_to``; the first time, the caller into the room as well."""
        if room.moved:
            await self._redirect(room.agent_channel, agent_to, None)
            return
        await self._setvars(room.caller_channel, {"HOTLINE_ROOM": room.call})
        await self._setvars(room.agent_channel, {"HOTLINE_ROOM": room.call})
        await self._redirect(room.caller_channel, ("hotline-room", "caller"), (room.agent_channel, agent_to))
        room.moved = True

    async def _event(self, call: str, kind: str, detail: dict[str, Any]) -> None:
        acd = self.acd
        try:
            await asyncio.to_thread(acd.calls.add_event, call, kind, detail, acd.clock())
        except Exception:  # the database is down: the call goes on, the record misses a line
            log.exception("call event not stored", extra={"uniqueid": call, "kind": kind})

    # ---- hold -------------------------------------------------------------------------------------

    async def hold(self, agent_id: str) -> str:
        room, _ = self._room(agent_id)
        if room.third is not None:
            raise AgentError("a third party is on the call: drop them or hand the call over first")
        if room.agent_where == "held":
            raise AgentError("the caller is already on hold")
        await self._into_room(room, ("hotline-held", "s"))
        room.agent_where = "held"
        await self._event(room.call, "hold", {"agent": agent_id})
        return room.call

    async def take_back(self, agent_id: str) -> str:
        room, _ = self._room(agent_id)
        if room.agent_where != "held":
            raise AgentError("the caller is not on hold")
        await self._redirect(room.agent_channel, ("hotline-room", "member"), None)
        room.agent_where = "room"
        await self._event(room.call, "unhold", {"agent": agent_id})
        return room.call

    # ---- blind transfer ---------------------------------------------------------------------------

    async def transfer(self, agent_id: str, to: str) -> str:
        """Blind transfer: the caller goes to another agent, a queue or an outside number at once;
        the agent's leg ends (wrap-up follows)."""
        acd = self.acd
        leg, waiter = self._call_of(agent_id)
        kind, value = self.resolve(to)
        room = self.rooms.get(leg.call)
        if room is not None and room.third is not None:
            raise AgentError("a consultation is going on: hand over, or drop the third party first")
        if kind == "agent":
            target = acd.agents[value]
            if value == agent_id:
                raise AgentError("an agent cannot transfer a call to themselves")
            if target.state is AgentState.OFFLINE:
                raise AgentError(f"agent {value} is not logged in")
        target_text = f"{kind}:{value}"
        if kind == "number":
            await self._setvars(waiter.channel, {"HOTLINE_TRANSFER": value})
            waiter.state = "transferred"
            try:
                await self._redirect(waiter.channel, ("hotline-transfer", "s"), None)
            except Exception:
                waiter.state = "connected"
                raise
        else:
            if kind == "agent":
                serving = acd.agents[value].queues
                queue = waiter.contact.queue if waiter.contact.queue in serving or not serving else sorted(serving)[0]
            else:
                queue = value
            contact = replace(
                waiter.contact,
                queue=queue,
                arrived_at=acd.clock(),
                priority=waiter.contact.priority + TRANSFER_PRIORITY_BOOST,
                skill=None,
                requested_agent=value if kind == "agent" else None,
                preferred_agent=None,
                declined=frozenset({agent_id}),
            )
            await self._setvars(
                waiter.channel,
                {"HOTLINE_QUEUE": queue, "HOTLINE_REQUESTED_AGENT": value if kind == "agent" else ""},
            )
            waiter.state, waiter.contact, waiter.agent = "transferring", contact, None
            waiter.announced_at = None
            try:
                await self._redirect(waiter.channel, ("hotline-queue", "s"), None)
            except Exception:
                waiter.state = "connected"
                raise
        if room is not None and room.moved and room.agent_where != "gone":
            # The agent was held or in the room: out of the call (from the plain bridge, the
            # switch hangs the agent's leg up by itself when the caller leaves it).
            await self._hangup(room.agent_channel)
        self.rooms.pop(leg.call, None)
        await self._event(leg.call, "transfer", {"mode": "blind", "from": agent_id, "to": _masked(target_text)})
        log.info("blind transfer", extra={"uniqueid": leg.call, "agent": agent_id, "to": _masked(target_text)})
        return leg.call

    # ---- consultation, hand-over, three-way -------------------------------------------------------

    async def consult(self, agent_id: str, to: str) -> str:
        """Put the caller on hold in the room and ring a third party (an agent or a number)."""
        acd = self.acd
        room, _ = self._room(agent_id)
        if room.third is not None:
            raise AgentError("a third party is already on the call")
        kind, value = self.resolve(to, allow_queue=False)
        third_agent: str | None = None
        if kind == "agent":
            if value == agent_id:
                raise AgentError("an agent cannot consult themselves")
            target = acd.agents[value]
            if target.state is not AgentState.AVAILABLE or not target.device_reachable:
                raise AgentError(f"agent {value} is not available ({target.state.value})")
            dial = acd.dial_string(acd.extension.get(value, value))
            third_agent = value
        else:
            dial = acd.switch.dial_string(Outside(value, acd.trunk))
        queue = acd.queues.get(acd.legs[agent_id].queue) or next(iter(acd.queues.values()))
        if third_agent is not None:
            now = acd.clock()
            before = acd.agents[third_agent]
            offered = sm.offer(before, now)
            acd.agents[third_agent] = offered
            acd._spawn(acd._record(before, offered, "consultation", room.call))
            acd.legs[third_agent] = AgentLeg(third_agent, room.call, queue.name)
        room.third = Party(f"{kind}:{value}", third_agent)
        try:
            await self._setvars(
                room.agent_channel,
                {
                    "HOTLINE_CONSULT_DIAL": dial,
                    "HOTLINE_CONSULT_AGENT": third_agent or "",
                    "HOTLINE_RING_S": str(queue.ring_timeout_s),
                },
            )
            await self._into_room(room, ("hotline-consult", "s"))
        except Exception:
            room.third = None
            if third_agent is not None:
                acd.legs.pop(third_agent, None)
                acd._set(third_agent, lambda a: sm.ring_cancelled(a, acd.clock()), "consultation not placed")
            raise
        room.agent_where = "consult"
        await self._event(room.call, "consult", {"agent": agent_id, "to": _masked(room.third.target)})
        return room.call

    def _third(self, agent_id: str, *states: str) -> tuple[Room, Party]:
        room, _ = self._room(agent_id)
        third = room.third
        if third is None or third.state not in states:
            now = third.state if third is not None else "none"
            raise AgentError(f"no third party in a state for this ({now})")
        return room, third

    async def cancel_consult(self, agent_id: str) -> str:
        """End the consultation (ringing or talking): the agent goes back to the caller."""
        room, third = self._third(agent_id, "ringing", "talking")
        # Leaving the Dial stops the ring, or hangs the third party's answered leg up.
        await self._redirect(room.agent_channel, ("hotline-room", "member"), None)
        room.agent_where = "room"
        if third.state == "talking":
            third.state = "gone"
            room.third = None
        await self._event(room.call, "consult_cancelled", {"agent": agent_id, "to": _masked(third.target)})
        return room.call

    async def hand_over(self, agent_id: str) -> str:
        """Consultative transfer: the third party joins the caller, the agent leaves the call."""
        room, third = self._third(agent_id, "talking")
        await self._setvars(third.channel, {"HOTLINE_ROOM": room.call})
        await self._redirect(third.channel, ("hotline-room", "member"), (room.agent_channel, ("hotline-room", "leave")))
        third.state = "joined"
        room.agent_where = "gone"
        self._pass_on(room, third)
        await self._event(
            room.call, "transfer", {"mode": "consultative", "from": agent_id, "to": _masked(third.target)}
        )
        return room.call

    async def conference(self, agent_id: str) -> str:
        """Three-way: the third party and the agent join the caller in the room."""
        room, third = self._third(agent_id, "talking")
        await self._setvars(third.channel, {"HOTLINE_ROOM": room.call})
        await self._redirect(
            third.channel, ("hotline-room", "member"), (room.agent_channel, ("hotline-room", "member"))
        )
        third.state = "joined"
        room.agent_where = "room"
        waiter = self.acd.waiters.get(room.call)
        if waiter is not None and third.agent is not None:
            waiter.served_by.append(third.agent)
        await self._event(room.call, "conference", {"agent": agent_id, "with": _masked(third.target)})
        return room.call

    async def drop_third(self, agent_id: str) -> str:
        """The agent ends the third party's part in a three-way call."""
        room, third = self._third(agent_id, "joined")
        await self._hangup(third.channel)
        third.state = "gone"
        room.third = None
        await self._event(room.call, "third_party_dropped", {"agent": agent_id, "who": _masked(third.target)})
        return room.call

    async def leave(self, agent_id: str) -> str:
        """The agent leaves a three-way call; the caller and the third party stay connected."""
        room, third = self._third(agent_id, "joined")
        await self._hangup(room.agent_channel)
        room.agent_where = "gone"
        self._pass_on(room, third)
        await self._event(room.call, "agent_left_conference", {"agent": agent_id, "left": _masked(third.target)})
        return room.call

    async def hang_up(self, agent_id: str) -> str:
        """The agent ends their part of the call (the workstation's 挂断 button): their channel is
        hung up, as if they put the phone down. The citizen goes on to the survey, or stays with a
        third party the agent left them with. Works on callbacks too."""
        acd = self.acd
        agent = acd._agent(agent_id)
        leg = acd.legs.get(agent_id)
        if agent.state not in (AgentState.ON_CALL, AgentState.RINGING) or leg is None:
            raise AgentError(f"agent {agent_id} is not on a call")
        room = self.rooms.get(leg.call)
        if room is not None and room.agent == agent_id and room.agent_channel:
            channel = room.agent_channel
        else:
            chan = acd.view.channels.get(leg.uniqueid)
            if chan is None:
                raise AgentError(f"agent {agent_id}'s channel is gone")
            channel = chan.channel
        await self._hangup(channel)
        await self._event(leg.call, "agent_hung_up", {"agent": agent_id, "from": "workstation"})
        return leg.call

    async def perform(self, agent_id: str, action: str, to: str | None = None) -> str:
        """One call-control request by name (the web workstation and ``hotline agent`` share it):
        hold, unhold, transfer and consult (``to`` needed), consult-cancel, hand-over, conference,
        drop-third, leave, hangup. Returns the call's id; AgentError when refused, KeyError for
        an unknown action, ValueError when ``to`` is missing."""
        if action in TARGETED_ACTIONS:
            if not to or not to.strip():
                raise ValueError("to")
            return await (self.transfer if action == "transfer" else self.consult)(agent_id, to)
        return await self._simple_actions()[action](agent_id)

    def _simple_actions(self) -> dict[str, Callable[[str], Awaitable[str]]]:
        return {
            "hold": self.hold,
            "unhold": self.take_back,
            "consult-cancel": self.cancel_consult,
            "hand-over": self.hand_over,
            "conference": self.conference,
            "drop-third": self.drop_third,
            "leave": self.leave,
            "hangup": self.hang_up,
        }

    def room_state(self, call: str) -> dict[str, Any] | None:
        """Where a call's parties are, for the agent's screen (None: a plain call)."""
        room = self.rooms.get(call)
        if room is None:
            return None
        third = room.third
        return {
            "agent_where": room.agent_where,
            "caller_in_room": room.moved,
            "third": None if third is None else {"target": _masked(third.target), "state": third.state},
        }

    def _pass_on(self, room: Room, third: Party) -> None:
        """The third party takes the call over: an agent is in charge of it from now on."""
        room.third = None
        waiter = self.acd.waiters.get(room.call)
        if third.agent is None:
            room.agent = None
            return
        if waiter is not None and third.agent not in waiter.served_by[-1:]:
            waiter.served_by.append(third.agent)
        room.agent, room.agent_uid, room.agent_channel = third.agent, third.uniqueid, third.channel
        room.agent_where = "room"

    # ---- what the switch reports ------------------------------------------------------------------

    def _consulting(self, agent_uid: str) -> Room | None:
        for room in self.rooms.values():
            if room.agent_uid == agent_uid and room.third is not None and room.third.state == "ringing":
                return room
        return None

    async def on_dial_started(self, event: DialStarted) -> None:
        room = self._consulting(event.uniqueid)
        if room is None or room.third is None:
            return
        third = room.third
        third.uniqueid, third.channel = event.dest_uniqueid, event.dest_channel
        if third.agent is not None:
            leg = self.acd.legs.get(third.agent)
            if leg is not None:
                leg.uniqueid = event.dest_uniqueid

    async def on_dial_ended(self, event: DialEnded) -> None:
        room = self._consulting(event.uniqueid)
        if room is None or room.third is None:
            return
        acd, third, now = self.acd, room.third, self.acd.clock()
        if event.status == "ANSWER":
            third.state = "talking"
            if third.agent is not None:
                acd.connected_at[third.agent] = now
                acd._last_call[third.agent] = room.call
                acd._set(third.agent, lambda a: sm.answered(a, now), "consultation answered", room.call)
        else:
            room.third = None
            room.agent_where = "room"  # the dialplan takes the agent back to the caller
            if third.agent is not None:
                acd.legs.pop(third.agent, None)
                change = sm.unreachable if event.status == "CHANUNAVAIL" else sm.ring_cancelled
                acd._set(third.agent, lambda a: change(a, now), "consultation not answered", room.call)
        await self._event(room.call, "consult_result", {"to": _masked(third.target), "status": event.status})

    async def on_joined(self, event: ConferenceJoined) -> None:
        room = self.rooms.get(event.conference)
        if room is not None:
            room.members.add(event.uniqueid)

    async def on_left(self, event: ConferenceLeft) -> None:
        room = self.rooms.get(event.conference)
        if room is None:
            return
        room.members.discard(event.uniqueid)
        await self._check_alone(room)

    async def on_hangup(self, event: ChannelHungUp) -> None:
        uid = event.uniqueid
        room = self.rooms.get(uid)
        if room is not None:  # the caller hung up: a held agent is not left waiting
            self.rooms.pop(uid, None)
            if room.agent_where == "held" and room.agent_uid not in room.gone:
                try:
                    await self._hangup(room.agent_channel)
                except Exception as exc:
                    log.warning("held agent's leg not hung up: %s", exc)
            return
        for room in list(self.rooms.values()):
            if uid == room.agent_uid:
                room.gone.add(uid)
                room.agent_where = "gone"
                if room.third is not None and room.third.state in ("ringing", "talking"):
                    room.third = None  # the consultation ends with the agent's leg
            elif room.third is not None and uid == room.third.uniqueid:
                room.gone.add(uid)
                room.third = None
            else:
                continue
            await self._check_alone(room)

    async def _check_alone(self, room: Room) -> None:
        """The caller alone in the room with nobody coming back: on to the survey."""
        if not room.moved or room.call not in room.members or room.members - {room.call}:
            return
        if room.agent_where != "gone" and room.agent_uid not in room.gone:
            return
        if room.third is not None and room.third.uniqueid not in room.gone:
            return
        self.rooms.pop(room.call, None)
        try:
            await self._redirect(room.caller_channel, ("hotline-survey", "s"), None)
        except Exception as exc:
            log.warning("caller left alone in the room not sent to the survey: %s", exc)
            return
        await self._event(room.call, "room_ended", {})


def _masked(target: str) -> str:
    kind, _, value = target.partition(":")
    return f"{kind}:{mask_personal_data(value)}" if kind == "number" else target
