"""The ACD's data: agents, waiting contacts, queue settings and the router's input (T4, T9, T10).

Everything here is a frozen value: a transition (:mod:`cc_core.acd.agent_state`) or a routing
decision (:mod:`cc_core.acd.router`) returns new values and never changes the ones it was given,
so a decision can be replayed, logged and tested with nothing but these objects and a moment.

Moments are aware datetimes in UTC; the constructors refuse naive ones, because comparing a naive
with an aware moment raises in the middle of routing, and a naive local time would silently be
eight hours off in Beijing.

Load is designed for voice and chat together: an agent has a capacity per channel (one call at a
time; ``chat_capacity`` parallel chats, 0 for a phone-only agent) and counts of what is active on
each. :attr:`Agent.occupancy` weighs both into one figure for the ``least_occupied`` strategy.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import compress
from operator import itemgetter
from typing import Literal, get_args, overload

Channel = Literal["voice", "chat"]
Strategy = Literal["longest_idle", "least_occupied", "round_robin", "skills"]

CHANNELS: tuple[str, ...] = get_args(Channel)
STRATEGIES: tuple[str, ...] = get_args(Strategy)
MIN_SKILL_LEVEL = 1
MAX_SKILL_LEVEL = 5

# How much of an agent's attention one contact takes, for the occupancy figure. A call takes it
# whole; a chat is answered between other work, so two chats count like one call. Only the order
# of occupancies matters to the router, so these need to be right in proportion, not exact.
VOICE_WEIGHT = 1.0
CHAT_WEIGHT = 0.5

# The reasons the system itself pauses an agent for (the agent's own reasons are free text).
PAUSE_NO_ANSWER = "no answer"  # 未接听: N offers in a row rang out
PAUSE_UNREACHABLE = "device unreachable"  # the phone is unregistered or does not answer SIP


class AgentState(StrEnum):
    """What an agent is doing, as the controller keeps it (issue 4, item 1)."""

    OFFLINE = "offline"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


def _require_utc(what: str, moment: datetime | None) -> None:
    if moment is not None and (moment.tzinfo is None or moment.utcoffset() != timedelta(0)):
        raise ValueError(f"{what} must be an aware UTC datetime, got {moment!r}")


@dataclass(frozen=True, slots=True)
class Agent:
    """One agent and everything routing needs to know about them.

    ``skills`` maps a skill to a level from 1 (knows the basics) to 5 (expert). ``queues`` are
    the queues the agent serves, whatever their state. ``last_ended_at`` is when the agent's last
    call ended (None since login): the "idle since" of the longest-idle strategies.
    """

    id: str
    name: str
    state: AgentState
    state_since: datetime
    skills: Mapping[str, int] = field(default_factory=dict)
    team: str = ""
    tags: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()
    voice_capacity: int = 1
    chat_capacity: int = 0
    active_voice: int = 0
    active_chat: int = 0
    last_ended_at: datetime | None = None
    missed_in_row: int = 0
    wrapup_until: datetime | None = None
    wrapup_extended: bool = False
    pause_reason: str | None = None
    device_reachable: bool = True
    # Derived once here for the router, which sorts agents by them on every decision (a float
    # read from a slot is several times faster than an aware datetime or a property). Never
    # passed in; replace() renews them. See idle_since and occupancy_of for what they mean.
    idle_key: float = field(init=False, repr=False, compare=False)
    occupancy: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _require_utc("state_since", self.state_since)
        _require_utc("last_ended_at", self.last_ended_at)
        _require_utc("wrapup_until", self.wrapup_until)
        for skill, level in self.skills.items():
            if not MIN_SKILL_LEVEL <= level <= MAX_SKILL_LEVEL:
                raise ValueError(
                    f"agent {self.id}: skill {skill!r} has level {level}, "
                    f"levels go from {MIN_SKILL_LEVEL} to {MAX_SKILL_LEVEL}"
                )
        if min(self.voice_capacity, self.chat_capacity, self.active_voice, self.active_chat, self.missed_in_row) < 0:
            raise ValueError(f"agent {self.id}: capacities and counts cannot be negative")
        object.__setattr__(self, "idle_key", self.idle_since.timestamp())
        object.__setattr__(self, "occupancy", occupancy_of(self))

    @property
    def idle_since(self) -> datetime:
        """Since when the agent has been without a call: the end of the last one, else the state change."""
        return self.last_ended_at if self.last_ended_at is not None else self.state_since

    def capacity_free(self, channel: Channel) -> bool:
        """Whether one more contact of ``channel`` fits beside what the agent already has."""
        if channel == "voice":
            return self.active_voice < self.voice_capacity
        return self.active_chat < self.chat_capacity


def occupancy_of(agent: Agent) -> float:
    """The share of the agent's capacity in use, voice and chat weighed together (0.0 – 1.0);
    kept on the agent as :attr:`Agent.occupancy`."""
    capacity = agent.voice_capacity * VOICE_WEIGHT + agent.chat_capacity * CHAT_WEIGHT
    if capacity <= 0:
        return 1.0  # takes nothing: as good as full
    return (agent.active_voice * VOICE_WEIGHT + agent.active_chat * CHAT_WEIGHT) / capacity


@dataclass(frozen=True, slots=True)
class Contact:
    """A caller (or chat) waiting in a queue for an agent.

    ``priority``: higher is served first; the queue's ``priority_tags`` add to it for the caller's
    tags. ``requested_agent``: the caller asked for this agent (IVR or chat widget).
    ``preferred_agent``: a returning caller's previous agent, filled in by whoever builds the
    contact from the call history (within the queue's ``returning_window_s``); the caller waits
    for them until ``preferred_until`` or, when that is None, ``returning_wait_s`` after arrival.
    ``declined``: agents who were rung for this contact and did not answer; they are not offered
    it again (issue 4 item 4: no answer → the next agent).
    """

    id: str
    queue: str
    arrived_at: datetime
    skill: str | None = None
    min_level: int = MIN_SKILL_LEVEL
    priority: int = 0
    caller_number: str = ""
    caller_tags: frozenset[str] = frozenset()
    channel: Channel = "voice"
    requested_agent: str | None = None
    preferred_agent: str | None = None
    preferred_until: datetime | None = None
    declined: frozenset[str] = frozenset()
    # Derived once here for the router, which may sort every waiting contact on every decision:
    # the arrival as a float (sorts several times faster than an aware datetime; exact to the
    # microsecond until 2106) and the key of the contacts that share their eligible agents
    # (queue, channel, skill; a string, so its hash is computed once). Never passed in.
    arrival_key: float = field(init=False, repr=False, compare=False)
    pool_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _require_utc("arrived_at", self.arrived_at)
        _require_utc("preferred_until", self.preferred_until)
        if self.channel not in CHANNELS:
            raise ValueError(f"contact {self.id}: channel {self.channel!r} is not one of {', '.join(CHANNELS)}")
        if not MIN_SKILL_LEVEL <= self.min_level <= MAX_SKILL_LEVEL:
            raise ValueError(f"contact {self.id}: min_level {self.min_level} is outside 1–5")
        if self.skill == "":
            raise ValueError(f"contact {self.id}: skill is a name or None, not empty")
        object.__setattr__(self, "arrival_key", self.arrived_at.timestamp())
        object.__setattr__(self, "pool_key", f"{self.queue}\x1f{self.channel}\x1f{self.skill or ''}")


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One queue's settings (T4, T9): how it picks agents, wrap-up, and how long callers are held.

    ``returning_window_s`` is read by whoever fills :attr:`Contact.preferred_agent` (how far back a
    previous agent still counts); the router itself uses ``returning_wait_s`` and
    ``requested_wait_s``, the time a caller is held for that one agent before anyone may answer.
    """

    name: str
    strategy: Strategy = "longest_idle"
    ring_timeout_s: int = 20
    wrapup_s: int = 30
    max_missed_before_pause: int = 2
    returning_window_s: int = 7 * 24 * 3600  # a citizen calling back about one matter does so within days
    returning_wait_s: int = 30
    requested_wait_s: int = 60
    priority_tags: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"queue {self.name}: strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        times = (
            self.ring_timeout_s,
            self.wrapup_s,
            self.returning_window_s,
            self.returning_wait_s,
            self.requested_wait_s,
        )
        if min(times) < 0:
            raise ValueError(f"queue {self.name}: times cannot be negative")
        if self.max_missed_before_pause < 1:
            raise ValueError(f"queue {self.name}: max_missed_before_pause must be at least 1")

    def boost(self, tags: frozenset[str]) -> int:
        """The priority the queue adds for a caller's tags (the boosts of all matching tags, summed)."""
        boosts = self.priority_tags
        return sum(boosts.get(tag, 0) for tag in tags) if boosts else 0


@dataclass(frozen=True, slots=True)
class RouterState:
    """The router's whole input: agents by id, the waiting contacts, queues by name, and for each
    round-robin queue the id of the agent it gave the last contact to (its cursor).

    Agent and contact ids are unique. ``contacts`` may be in any order; a :class:`WaitingList`
    (the contacts kept in service order) spares the router a sort on every decision. A cursor is
    an agent id, not a position: agents logging in and out do not shift whose turn it is.
    """

    agents: Mapping[str, Agent]
    contacts: Sequence[Contact]
    queues: Mapping[str, QueueConfig]
    rr_cursor: Mapping[str, str] = field(default_factory=dict)


def effective_priority(contact: Contact, queue: QueueConfig | None) -> int:
    """The contact's priority plus its queue's boosts for the caller's tags (none for an unknown queue)."""
    if queue is None or not contact.caller_tags:
        return contact.priority
    return contact.priority + queue.boost(contact.caller_tags)


def service_key(contact: Contact, queues: Mapping[str, QueueConfig]) -> tuple[int, float]:
    """Where a contact stands in the order the router serves: effective priority, highest first,
    then arrival. Smaller comes first."""
    return -effective_priority(contact, queues.get(contact.queue)), contact.arrival_key


class WaitingList(Sequence[Contact]):
    """Waiting contacts kept in the order the router serves them: a faster kind of contact sequence.

    The router sorts any sequence of contacts itself, which is a pass over all of them on every
    decision. A controller that keeps its waiting contacts in a WaitingList pays for the order once
    per change instead (a binary search and a C-level copy), and the router reads only as much of
    the front as it needs. Equal keys keep the order they were added in, as the router's own
    (stable) sort keeps the order given, so both give the same decision.

    Immutable: :meth:`added` and :meth:`removed` return new lists. The order holds for one set of
    queue settings (their tag boosts): the router uses it only when ``queues`` is the very mapping of
    the :class:`RouterState`, and sorts otherwise; after the queues are reloaded, :meth:`rebuilt`
    orders the list for the new ones.
    """

    __slots__ = ("_contacts", "_keys", "_queues")

    def __init__(self, queues: Mapping[str, QueueConfig], contacts: Iterable[Contact] = ()) -> None:
        pairs = sorted(((service_key(contact, queues), contact) for contact in contacts), key=itemgetter(0))
        self._queues = queues
        self._keys: tuple[tuple[int, float], ...] = tuple(key for key, _ in pairs)
        self._contacts: tuple[Contact, ...] = tuple(contact for _, contact in pairs)

    @classmethod
    def _of(
        cls, queues: Mapping[str, QueueConfig], keys: tuple[tuple[int, float], ...], contacts: tuple[Contact, ...]
    ) -> WaitingList:
        made = cls.__new__(cls)
        made._queues, made._keys, made._contacts = queues, keys, contacts
        return made

    @property
    def queues(self) -> Mapping[str, QueueConfig]:
        """The queue settings the order was made for."""
        return self._queues

    def added(self, contact: Contact) -> WaitingList:
        """The list with ``contact`` in its place (after any with the same key)."""
        key = service_key(contact, self._queues)
        at = bisect_right(self._keys, key)
        return self._of(
            self._queues,
            (*self._keys[:at], key, *self._keys[at:]),
            (*self._contacts[:at], contact, *self._contacts[at:]),
        )

    def removed(self, contact_ids: Collection[str]) -> WaitingList:
        """The list without the contacts of ``contact_ids`` (assigned, hung up, timed out; a set)."""
        keep = [contact.id not in contact_ids for contact in self._contacts]
        return self._of(self._queues, tuple(compress(self._keys, keep)), tuple(compress(self._contacts, keep)))

    def rebuilt(self, queues: Mapping[str, QueueConfig]) -> WaitingList:
        """The same contacts ordered for other queue settings (equal keys keep their order)."""
        return WaitingList(queues, self._contacts)

    @overload
    def __getitem__(self, index: int) -> Contact: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Contact]: ...

    def __getitem__(self, index: int | slice) -> Contact | Sequence[Contact]:
        return self._contacts[index]

    def __len__(self) -> int:
        return len(self._contacts)

    def __iter__(self) -> Iterator[Contact]:
        return iter(self._contacts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WaitingList):
            return NotImplemented
        return self._queues is other._queues and self._contacts == other._contacts

    __hash__ = None  # type: ignore[assignment]  # like a list: equal by content, so not hashable

    def __repr__(self) -> str:
        return f"WaitingList({list(self._contacts)!r})"
