"""The router: which waiting contact goes to which agent, now (T9; issue 4 item 2).

:func:`route` is a pure function of a :class:`~cc_core.acd.model.RouterState` and a moment. It
reads no clock, keeps nothing between calls, and breaks every tie by agent id, so the same input
always gives the same decision. The controller calls it whenever something changes (a contact
arrives, an agent becomes free, a hold runs out) and carries the assignments out on the switch;
the assigned agents go to ringing (:func:`cc_core.acd.agent_state.offer`) before the next call.

The rules, in order:

1. Contacts are served by effective priority (their ``priority`` plus the queue's boosts for the
   caller's tags, e.g. vip +10, elderly +5), highest first, then by arrival, then as listed.
2. An agent is *eligible* for a contact when they are available, their phone is reachable, they
   serve the contact's queue, have the contact's skill at ``min_level`` or better, have capacity
   free on the contact's channel (voice or chat), and have not been given a contact in this round.
   The caller of :func:`route` has already applied :func:`~cc_core.acd.agent_state.tick`: an
   agent still in wrap-up is never eligible, whatever the clock says (T4).
3. A caller who asked for an agent (``requested_agent``) gets that agent if eligible; otherwise
   the caller waits for them until ``arrived_at + requested_wait_s``, and then anyone eligible may
   answer. A returning caller (``preferred_agent``) likewise, until ``preferred_until`` (or
   ``arrived_at + returning_wait_s``). A request beats a preference. The caller is not held for an
   agent who could never take the contact (unknown, logged out, not in the queue, without the
   skill or the channel): that would be waiting for nothing.
4. Anyone else is picked by the queue's strategy among the eligible agents:
   ``longest_idle`` (oldest end of last call, else oldest state change), ``least_occupied``
   (lowest :attr:`~cc_core.acd.model.Agent.occupancy`, then longest idle), ``round_robin`` (the
   next agent id after the queue's cursor, wrapping; the cursor moves to the agent chosen), and
   ``skills`` (highest level in the contact's skill, then longest idle).

Greedy in priority order is also *maximal*: a contact waits only if, at its turn, no eligible
agent was left (or it is held for one agent), and agents are only ever taken away after that, so
no contact is left waiting while an eligible agent stays idle.

Speed (target: p99 under 1 ms for 500 agents and 2,000 waiting contacts; ``scripts/bench_router.py``
and docs/PERFORMANCE.md): the free agents are indexed by channel and queue once per call, the only
pass over all agents. The contacts are taken in service order lazily: from a
:class:`~cc_core.acd.model.WaitingList` as they stand, from any other sequence after a sort on
precomputed keys. Each (queue, channel, skill) gets one list of its free agents in the strategy's
order, built on first use and consumed from the front; a list found empty at a level turns later
contacts away at once; the round stops as soon as every free agent has a contact. Why each waiting
contact waits is worked out only when asked (:attr:`RoutingResult.waiting`): the controller needs
the decision on every event, the explanations only when a person looks.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain
from operator import attrgetter

from cc_core.acd.model import (
    MAX_SKILL_LEVEL,
    Agent,
    AgentState,
    Contact,
    QueueConfig,
    RouterState,
    WaitingList,
)

AVAILABLE = AgentState.AVAILABLE
OFFLINE = AgentState.OFFLINE


@dataclass(frozen=True, slots=True)
class RoutingResult:
    """One routing decision.

    ``assignments``: (contact id, agent id) pairs, in the order they were decided (highest
    priority first). ``rr_cursor``: the round-robin cursors to pass in next time. ``waiting``: for
    every contact left waiting, why (e.g. ``no agent logged in for skill pension (level ≥ 3) in
    queue general``, ``waiting for requested agent 1001 until 2026-06-08T09:31:00+00:00``).
    """

    assignments: list[tuple[str, str]]
    rr_cursor: Mapping[str, str]
    waiting: Mapping[str, str]


def hold_until(contact: Contact, queue: QueueConfig) -> tuple[str, datetime] | None:
    """The agent a contact is held for and until when, or None: a request first, else a preference."""
    if contact.requested_agent is not None:
        return contact.requested_agent, contact.arrived_at + timedelta(seconds=queue.requested_wait_s)
    if contact.preferred_agent is not None:
        if contact.preferred_until is not None:
            return contact.preferred_agent, contact.preferred_until
        return contact.preferred_agent, contact.arrived_at + timedelta(seconds=queue.returning_wait_s)
    return None


def is_eligible(agent: Agent, contact: Contact) -> bool:
    """Whether ``agent`` may take ``contact`` now, leaving aside who else is assigned in the round."""
    return (
        agent.state is AVAILABLE
        and agent.device_reachable
        and agent.id not in contact.declined
        and contact.queue in agent.queues
        and agent.capacity_free(contact.channel)
        and (contact.skill is None or agent.skills.get(contact.skill, 0) >= contact.min_level)
    )


def could_serve(agent: Agent | None, contact: Contact) -> bool:
    """Whether ``agent`` could ever take ``contact`` without an admin changing something: logged in,
    in the queue, with the skill and the channel. Being busy, paused or unreachable is passing."""
    return (
        agent is not None
        and agent.state is not OFFLINE
        and agent.id not in contact.declined
        and contact.queue in agent.queues
        and (agent.voice_capacity if contact.channel == "voice" else agent.chat_capacity) > 0
        and (contact.skill is None or agent.skills.get(contact.skill, 0) >= contact.min_level)
    )


def route(state: RouterState, now: datetime) -> RoutingResult:
    """Decide which waiting contacts go to which agents at ``now`` (see the module's rules)."""
    agents, queues = state.agents, state.queues

    # The free agents by channel and queue, longest idle first, ties by id.
    free = [agent for agent in agents.values() if agent.state is AVAILABLE and agent.device_reachable]
    free.sort(key=_ID)
    free.sort(key=_IDLE)  # stable: equal idle times stay in id order
    voice_lanes: defaultdict[str, list[Agent]] = defaultdict(list)
    chat_lanes: defaultdict[str, list[Agent]] = defaultdict(list)
    left = 0  # free agents not yet given a contact: the round ends when none is left
    for agent in free:
        voice = agent.active_voice < agent.voice_capacity
        chat = agent.active_chat < agent.chat_capacity
        if voice or chat:
            left += 1
            for name in agent.queues:
                if voice:
                    voice_lanes[name].append(agent)
                if chat:
                    chat_lanes[name].append(agent)
    lanes = {"voice": voice_lanes, "chat": chat_lanes}

    assignments: list[tuple[str, str]] = []
    taken: set[str] = set()
    cursor = dict(state.rr_cursor)
    pools: dict[str, _Pool] = {}
    arranged: dict[str, list[Agent]] = {}
    for contact in _in_turn(state.contacts, queues) if left else ():
        pool = pools.get(contact.pool_key)
        if pool is None:
            pool = pools[contact.pool_key] = _Pool.build(lanes, arranged, queues, contact)
        level = contact.min_level
        if level >= pool.blocked_from:
            continue  # nobody left in this pool at that level: no need to look
        if contact.requested_agent is not None or contact.preferred_agent is not None:
            wanted_id, until = _hold(contact, queues[contact.queue])
            wanted = agents.get(wanted_id)
            if wanted is not None and wanted.id not in taken and is_eligible(wanted, contact):
                assignments.append((contact.id, wanted.id))
                taken.add(wanted.id)
                left -= 1
                if not left:
                    break
                continue  # outside the rotation: a round-robin cursor stays where it is
            if now < until and could_serve(wanted, contact):
                continue  # held for that agent
        if contact.declined:
            chosen = pool.take_except(level, taken, cursor, contact.declined)
        else:
            chosen = pool.take(level, taken, cursor)
        if chosen is None:
            continue
        assignments.append((contact.id, chosen.id))
        left -= 1
        if not left:
            break  # every free agent has a contact: the rest wait

    assigned = {contact_id for contact_id, _ in assignments}
    return RoutingResult(assignments, cursor, _Waiting(state, now, assigned, taken))


_SEP = "\x1f"  # between queue, channel and skill in lane and pool keys (see Contact.pool_key)
_ID = attrgetter("id")
_IDLE = attrgetter("idle_key")
_OCCUPANCY = attrgetter("occupancy")
_ARRIVAL = attrgetter("arrival_key")


def _hold(contact: Contact, queue: QueueConfig) -> tuple[str, datetime]:
    hold = hold_until(contact, queue)
    assert hold is not None  # only called for a contact with a requested or preferred agent
    return hold


def _in_turn(contacts: Sequence[Contact], queues: Mapping[str, QueueConfig]) -> Iterator[Contact]:
    """The contacts in the order they are served: effective priority (high first), then arrival,
    then the order given (:func:`~cc_core.acd.model.service_key`, stably).

    A :class:`~cc_core.acd.model.WaitingList` made for these queues is in that order already: it is
    read as it is, and :func:`route` looks only at the front it needs. Any other sequence is sorted
    here, with C-level passes over all contacts (a sort on a precomputed key, one filter); only
    contacts with a priority or tags are looked at one by one. Contacts in arrival order sort in a
    single pass.
    """
    if isinstance(contacts, WaitingList) and contacts.queues is queues:
        return iter(contacts)
    ranked = sorted(contacts, key=_ARRIVAL)  # stable: equal arrivals stay in the order given
    special = [contact for contact in ranked if contact.priority or contact.caller_tags]
    buckets: dict[int, list[Contact]] = {}
    boosts: dict[tuple[str, frozenset[str]], int] = {}  # a few distinct tag sets: boost each once
    for contact in special:
        priority = contact.priority
        if contact.caller_tags:
            key = (contact.queue, contact.caller_tags)
            boost = boosts.get(key)
            if boost is None:
                queue = queues.get(contact.queue)
                boost = boosts[key] = queue.boost(contact.caller_tags) if queue is not None else 0
            priority += boost
        if priority:
            buckets.setdefault(priority, []).append(contact)  # in arrival order, as ranked is
    if not buckets:
        return iter(ranked)
    lifted = {contact.id for bucket in buckets.values() for contact in bucket}
    levels = sorted(buckets, reverse=True)
    return chain(
        chain.from_iterable(buckets[level] for level in levels if level > 0),
        (contact for contact in ranked if contact.id not in lifted),  # effective priority 0
        chain.from_iterable(buckets[level] for level in levels if level < 0),
    )


class _Pool:
    """The free agents of one (queue, channel, skill), best first for the queue's strategy.

    Agents are only ever taken during a round, never added, so a pool is consumed from the front
    (``head``) and, once a contact needing level L found nobody, nobody is found at L or above
    again (``blocked_from``): later contacts of the pool are turned away in O(1).
    """

    __slots__ = ("agents", "blocked_from", "head", "ids", "queue", "round_robin", "skill")

    def __init__(self, queue: str, agents: list[Agent], skill: str | None, round_robin: bool) -> None:
        self.queue = queue
        self.agents = agents
        self.skill = skill
        self.round_robin = round_robin
        self.ids = [agent.id for agent in agents] if round_robin else []
        self.head = 0
        self.blocked_from = MAX_SKILL_LEVEL + 1 if agents else 0

    @classmethod
    def build(
        cls,
        lanes: Mapping[str, Mapping[str, list[Agent]]],
        arranged: dict[str, list[Agent]],
        queues: Mapping[str, QueueConfig],
        contact: Contact,
    ) -> _Pool:
        """The pool of ``contact``'s queue, channel and skill; ``arranged`` caches each lane in its
        queue's order, so a lane is sorted once per round whatever the number of skills."""
        name = contact.queue
        lane = lanes[contact.channel].get(name)
        queue = queues.get(name)
        if lane is None or queue is None:
            return cls(name, [], None, round_robin=False)  # nobody free, or a queue nobody configured
        strategy = queue.strategy
        lane_key = name + _SEP + contact.channel
        ordered = arranged.get(lane_key)
        if ordered is None:
            ordered = arranged[lane_key] = _arrange(lane, strategy)
        skill = contact.skill
        if skill is None:
            return cls(name, ordered, None, strategy == "round_robin")
        able = [agent for agent in ordered if skill in agent.skills]
        if strategy == "skills":
            # Stable, also reversed: within a level the longest idle stays first.
            able.sort(key=lambda agent: agent.skills[skill], reverse=True)
        return cls(name, able, skill, strategy == "round_robin")

    def take(self, level: int, taken: set[str], cursor: dict[str, str]) -> Agent | None:
        """The best agent not yet taken, with the pool's skill at ``level`` or better, now taken
        (and the queue's round-robin cursor moved to them); None if there is none."""
        agents, skill = self.agents, self.skill
        if self.round_robin:
            count = len(agents)
            start = bisect_right(self.ids, cursor.get(self.queue, ""))
            for step in range(count):
                agent = agents[(start + step) % count]
                if agent.id not in taken and (skill is None or agent.skills[skill] >= level):
                    taken.add(agent.id)
                    cursor[self.queue] = agent.id
                    return agent
        elif skill is None:  # the first one not taken (through another pool since this one was built)
            head, count = self.head, len(agents)
            while head < count:
                agent = agents[head]
                head += 1
                if agent.id not in taken:
                    self.head = head
                    taken.add(agent.id)
                    return agent
            self.head = head
        else:
            head, count = self.head, len(agents)
            while head < count and agents[head].id in taken:
                head += 1
            self.head = head
            for index in range(head, count):
                agent = agents[index]
                if agent.skills[skill] >= level and agent.id not in taken:
                    taken.add(agent.id)
                    return agent
        self.blocked_from = min(self.blocked_from, level)
        return None

    def take_except(
        self, level: int, taken: set[str], cursor: dict[str, str], declined: frozenset[str]
    ) -> Agent | None:
        """Like :meth:`take`, for a contact some agents declined (rare): the best agent not taken and
        not among ``declined``. The pool's front and block level are left alone, since an agent this
        contact skips may still suit the next one."""
        agents, skill, count = self.agents, self.skill, len(self.agents)
        start = bisect_right(self.ids, cursor.get(self.queue, "")) if self.round_robin else self.head
        for step in range(count - (0 if self.round_robin else start)):
            agent = agents[(start + step) % count] if self.round_robin else agents[start + step]
            if agent.id in taken or agent.id in declined:
                continue
            if skill is None or agent.skills[skill] >= level:
                taken.add(agent.id)
                if self.round_robin:
                    cursor[self.queue] = agent.id
                return agent
        return None


def _arrange(lane: list[Agent], strategy: str) -> list[Agent]:
    """A lane (longest idle first) in the order of its queue's strategy; ties stay by idle, then id."""
    if strategy == "round_robin":
        return sorted(lane, key=_ID)
    if strategy == "least_occupied":
        return sorted(lane, key=_OCCUPANCY)
    return lane  # longest_idle; skills re-sorts per skill in _Pool.build


# ---- why contacts wait ------------------------------------------------------------------------


class _Waiting(Mapping[str, str]):
    """Contact id → why it waits, for every contact the round left waiting.

    Worked out on first access from the round's input (frozen values) and outcome, then kept:
    reading it gives the same answer every time; it is only not paid for by the many rounds
    nobody looks at.
    """

    def __init__(self, state: RouterState, now: datetime, assigned: set[str], taken: set[str]) -> None:
        self._state = state
        self._now = now
        self._assigned = assigned
        self._taken = taken
        self._reasons: dict[str, str] | None = None

    def _all(self) -> dict[str, str]:
        if self._reasons is None:
            self._reasons = _explain(self._state, self._now, self._assigned, self._taken)
        return self._reasons

    def __getitem__(self, contact_id: str) -> str:
        return self._all()[contact_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._all()!r})"


def _explain(state: RouterState, now: datetime, assigned: set[str], taken: set[str]) -> dict[str, str]:
    """Why each contact not in ``assigned`` waits; one sentence per group of alike contacts.

    The hold test is :func:`route`'s own, so a contact the round never reached (every free agent
    had gone) is still reported as held when it is.
    """
    members: dict[str, list[Agent]] = {}
    for agent in state.agents.values():
        if agent.state is not OFFLINE:
            for name in agent.queues:
                members.setdefault(name, []).append(agent)
    said: dict[tuple[str, int], str] = {}
    reasons: dict[str, str] = {}
    for contact in state.contacts:
        if contact.id in assigned:
            continue
        queue = state.queues.get(contact.queue)
        if queue is not None and (contact.requested_agent is not None or contact.preferred_agent is not None):
            wanted, until = _hold(contact, queue)
            if now < until and could_serve(state.agents.get(wanted), contact):
                kind = "requested" if contact.requested_agent is not None else "returning caller's"
                reasons[contact.id] = f"waiting for {kind} agent {wanted} until {until.isoformat(timespec='seconds')}"
                continue
        key = (contact.pool_key, contact.min_level if contact.skill is not None else 0)
        reason = said.get(key)
        if reason is None:
            reason = said[key] = _group_reason(contact, queue, members.get(contact.queue, []), taken)
        reasons[contact.id] = reason
    return reasons


def _group_reason(contact: Contact, queue: QueueConfig | None, members: list[Agent], taken: set[str]) -> str:
    if queue is None:
        return f"queue {contact.queue} is not configured"
    what = f"queue {contact.queue}"
    if contact.skill is not None:
        what = f"skill {contact.skill} (level ≥ {contact.min_level}) in {what}"
    if contact.channel == "chat":
        what = f"chat in {what}"
    able = [agent for agent in members if could_serve(agent, contact)]
    if not able:
        return f"no agent logged in for {what}"
    free = [agent for agent in able if is_eligible(agent, contact)]
    if free and all(agent.id in taken for agent in free):
        return f"the {len(free)} free agent(s) for {what} went to contacts ahead"
    return f"all {len(able)} agent(s) logged in for {what} are busy, in wrap-up, paused or unreachable"
