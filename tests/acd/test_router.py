"""The router (T9; issue 4 item 2): strategies, priority, holds, capacity, who is never chosen, reasons.

Small hand-made states; every moment is passed in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import pytest

from cc_core.acd.model import (
    Agent,
    AgentState,
    Contact,
    QueueConfig,
    RouterState,
    Strategy,
    WaitingList,
    effective_priority,
    service_key,
)
from cc_core.acd.router import RoutingResult, route

NOW = datetime(2026, 6, 8, 2, 30, tzinfo=UTC)  # 10:30 in Beijing
AVAILABLE = AgentState.AVAILABLE


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def agent(agent_id: str, idle_for: float = 60, **changes: object) -> Agent:
    """An available agent of queue "general" whose last call ended ``idle_for`` seconds ago."""
    fields: dict[str, object] = {
        "id": agent_id,
        "name": f"坐席{agent_id}",
        "state": AVAILABLE,
        "state_since": ago(idle_for),
        "queues": frozenset({"general"}),
        "last_ended_at": ago(idle_for),
    }
    fields.update(changes)
    return Agent(**fields)  # type: ignore[arg-type]


def contact(contact_id: str, waited: float = 10, **changes: object) -> Contact:
    """A voice contact of queue "general" that arrived ``waited`` seconds ago."""
    fields: dict[str, object] = {"id": contact_id, "queue": "general", "arrived_at": ago(waited)}
    fields.update(changes)
    return Contact(**fields)  # type: ignore[arg-type]


def queue(name: str = "general", strategy: Strategy = "longest_idle", **changes: object) -> QueueConfig:
    return QueueConfig(name=name, strategy=strategy, **changes)  # type: ignore[arg-type]


def state(
    agents: Iterable[Agent],
    contacts: Iterable[Contact],
    queues: Iterable[QueueConfig] = (),
    rr_cursor: Mapping[str, str] | None = None,
) -> RouterState:
    configured = {q.name: q for q in queues} or {"general": queue()}
    return RouterState(
        agents={a.id: a for a in agents},
        contacts=list(contacts),
        queues=configured,
        rr_cursor=dict(rr_cursor or {}),
    )


def pairs(result: RoutingResult) -> dict[str, str]:
    return dict(result.assignments)


# ---- strategies ---------------------------------------------------------------------------------


def test_longest_idle_takes_the_agent_whose_last_call_ended_first() -> None:
    agents = [agent("1001", idle_for=30), agent("1002", idle_for=300), agent("1003", idle_for=120)]
    assert pairs(route(state(agents, [contact("c1")]), NOW)) == {"c1": "1002"}


def test_longest_idle_uses_the_state_change_when_there_was_no_call_yet() -> None:
    fresh = agent("1001", state_since=ago(600), last_ended_at=None)  # logged in 10 minutes ago
    busy_before = agent("1002", idle_for=300)
    assert pairs(route(state([fresh, busy_before], [contact("c1")]), NOW)) == {"c1": "1001"}


def test_ties_are_broken_by_agent_id() -> None:
    agents = [agent("1003"), agent("1001"), agent("1002")]
    assert pairs(route(state(agents, [contact("c1")]), NOW)) == {"c1": "1001"}


def test_longest_idle_serves_several_contacts_in_turn() -> None:
    agents = [agent("1001", idle_for=10), agent("1002", idle_for=20), agent("1003", idle_for=30)]
    contacts = [contact("c1", waited=30), contact("c2", waited=20)]
    assert route(state(agents, contacts), NOW).assignments == [("c1", "1003"), ("c2", "1002")]


def test_least_occupied_takes_the_agent_with_the_least_load() -> None:
    agents = [
        agent("1001", idle_for=500, chat_capacity=2, active_chat=2),
        agent("1002", idle_for=100, chat_capacity=2, active_chat=1),
        agent("1003", idle_for=50, chat_capacity=2, active_chat=0),
    ]
    queues = [queue(strategy="least_occupied")]
    assert pairs(route(state(agents, [contact("c1")], queues), NOW)) == {"c1": "1003"}


def test_least_occupied_breaks_equal_load_by_longest_idle() -> None:
    agents = [agent("1001", idle_for=50, chat_capacity=2, active_chat=1), agent("1002", idle_for=90, chat_capacity=2)]
    agents.append(agent("1003", idle_for=80, chat_capacity=2))
    queues = [queue(strategy="least_occupied")]
    assert pairs(route(state(agents, [contact("c1")], queues), NOW)) == {"c1": "1002"}


def test_round_robin_takes_the_next_id_after_the_cursor_and_moves_it() -> None:
    agents = [agent("1001", idle_for=999), agent("1002"), agent("1003")]
    queues = [queue(strategy="round_robin")]
    result = route(state(agents, [contact("c1")], queues, {"general": "1001"}), NOW)
    assert pairs(result) == {"c1": "1002"}
    assert result.rr_cursor == {"general": "1002"}


def test_round_robin_wraps_around_and_starts_at_the_lowest_id() -> None:
    agents = [agent("1001"), agent("1002"), agent("1003")]
    queues = [queue(strategy="round_robin")]
    assert pairs(route(state(agents, [contact("c1")], queues, {"general": "1003"}), NOW)) == {"c1": "1001"}
    assert pairs(route(state(agents, [contact("c1")], queues), NOW)) == {"c1": "1001"}  # no cursor yet


def test_round_robin_skips_a_cursor_agent_who_left_and_the_busy_ones() -> None:
    agents = [agent("1001"), agent("1003", state=AgentState.ON_CALL, active_voice=1), agent("1004")]
    queues = [queue(strategy="round_robin")]
    # 1002 (the cursor) has logged out and is not in the state at all
    assert pairs(route(state(agents, [contact("c1")], queues, {"general": "1002"}), NOW)) == {"c1": "1004"}


def test_round_robin_cycles_through_the_agents_over_rounds() -> None:
    agents = [agent("1001"), agent("1002"), agent("1003")]
    queues = [queue(strategy="round_robin")]
    cursor: Mapping[str, str] = {}
    chosen = []
    for n in range(6):
        result = route(state(agents, [contact(f"c{n}")], queues, cursor), NOW)
        chosen.append(result.assignments[0][1])
        cursor = result.rr_cursor
    assert chosen == ["1001", "1002", "1003", "1001", "1002", "1003"]


def test_round_robin_in_one_round_gives_each_agent_one_contact_in_order() -> None:
    agents = [agent("1001"), agent("1002"), agent("1003")]
    queues = [queue(strategy="round_robin")]
    contacts = [contact("c1", waited=30), contact("c2", waited=20)]
    result = route(state(agents, contacts, queues, {"general": "1002"}), NOW)
    assert result.assignments == [("c1", "1003"), ("c2", "1001")]
    assert result.rr_cursor == {"general": "1001"}


def test_skills_takes_the_highest_level_then_the_longest_idle() -> None:
    agents = [
        agent("1001", idle_for=900, skills={"pension": 2}),
        agent("1002", idle_for=100, skills={"pension": 5}),
        agent("1003", idle_for=200, skills={"pension": 5}),
        agent("1004", idle_for=999, skills={"medical": 5}),
    ]
    queues = [queue(strategy="skills")]
    result = route(state(agents, [contact("c1", skill="pension")], queues), NOW)
    assert pairs(result) == {"c1": "1003"}


def test_skills_without_a_skill_on_the_contact_is_longest_idle() -> None:
    agents = [agent("1001", idle_for=10, skills={"pension": 5}), agent("1002", idle_for=20, skills={"pension": 1})]
    queues = [queue(strategy="skills")]
    assert pairs(route(state(agents, [contact("c1")], queues), NOW)) == {"c1": "1002"}


@pytest.mark.parametrize("strategy", ["longest_idle", "least_occupied", "round_robin", "skills"])
def test_every_strategy_respects_the_minimum_level(strategy: Strategy) -> None:
    agents = [agent("1001", idle_for=999, skills={"pension": 2}), agent("1002", idle_for=1, skills={"pension": 3})]
    queues = [queue(strategy=strategy)]
    c1 = contact("c1", skill="pension", min_level=3)
    assert pairs(route(state(agents, [c1], queues), NOW)) == {"c1": "1002"}


# ---- priority -----------------------------------------------------------------------------------


def test_tags_boost_priority_over_arrival() -> None:
    queues = [queue(priority_tags={"vip": 10, "elderly": 5})]
    contacts = [
        contact("plain", waited=300),
        contact("elderly", waited=100, caller_tags=frozenset({"elderly"})),
        contact("vip", waited=10, caller_tags=frozenset({"vip"})),
    ]
    one = route(state([agent("1001")], contacts, queues), NOW)
    assert one.assignments == [("vip", "1001")]
    two = route(state([agent("1001"), agent("1002")], contacts, queues), NOW)
    assert [c for c, _ in two.assignments] == ["vip", "elderly"]


def test_boosts_add_up_and_add_to_the_priority() -> None:
    q = queue(priority_tags={"vip": 10, "elderly": 5})
    both = contact("c1", priority=1, caller_tags=frozenset({"vip", "elderly", "unknown-tag"}))
    assert effective_priority(both, q) == 16
    assert effective_priority(contact("c2", priority=2), q) == 2


def test_a_tag_counts_only_where_its_queue_boosts_it() -> None:
    queues = [queue("general"), queue("vipline", priority_tags={"vip": 10})]
    agents = [agent("1001", queues=frozenset({"general", "vipline"}))]
    contacts = [contact("early", waited=60), contact("vip", waited=5, caller_tags=frozenset({"vip"}))]
    assert pairs(route(state(agents, contacts, queues), NOW)) == {"early": "1001"}  # no boost in "general"


def test_priority_field_orders_before_arrival_and_arrival_breaks_ties() -> None:
    contacts = [contact("old", waited=100), contact("urgent", waited=1, priority=1), contact("older", waited=200)]
    two = route(state([agent("1001"), agent("1002")], contacts), NOW)
    assert [c for c, _ in two.assignments] == ["urgent", "older"]


def test_a_negative_priority_waits_behind_everyone() -> None:
    contacts = [contact("low", waited=500, priority=-1), contact("normal", waited=1)]
    assert pairs(route(state([agent("1001")], contacts), NOW)) == {"normal": "1001"}


def test_a_high_priority_contact_nobody_can_take_does_not_block_the_others() -> None:
    contacts = [contact("vip-medical", priority=9, skill="medical"), contact("plain", waited=1)]
    result = route(state([agent("1001", skills={"pension": 3})], contacts), NOW)
    assert pairs(result) == {"plain": "1001"}
    assert result.waiting["vip-medical"] == "no agent logged in for skill medical (level ≥ 1) in queue general"


# ---- requested agent and returning caller ---------------------------------------------------------


def test_a_requested_agent_who_is_free_gets_the_contact_whatever_the_strategy() -> None:
    agents = [agent("1001", idle_for=999), agent("1002", idle_for=1)]
    c1 = contact("c1", requested_agent="1002")
    assert pairs(route(state(agents, [c1]), NOW)) == {"c1": "1002"}


def test_a_caller_waits_for_a_busy_requested_agent_until_the_wait_is_over() -> None:
    busy = agent("1002", state=AgentState.ON_CALL, active_voice=1)
    agents = [agent("1001"), busy]
    queues = [queue(requested_wait_s=60)]
    held = contact("c1", waited=59, requested_agent="1002")
    result = route(state(agents, [held], queues), NOW)
    assert result.assignments == []
    assert result.waiting == {"c1": "waiting for requested agent 1002 until 2026-06-08T02:30:01+00:00"}
    over = dataclasses.replace(held, arrived_at=ago(60))
    assert pairs(route(state(agents, [over], queues), NOW)) == {"c1": "1001"}


def test_a_held_contact_does_not_hold_up_the_contacts_behind_it() -> None:
    agents = [agent("1001"), agent("1002", state=AgentState.WRAP_UP, wrapup_until=NOW + timedelta(seconds=9))]
    contacts = [contact("held", waited=50, requested_agent="1002"), contact("next", waited=5)]
    assert pairs(route(state(agents, contacts), NOW)) == {"next": "1001"}


@pytest.mark.parametrize(
    ("wanted", "channel"),
    [("9999", "voice"), ("1002", "voice"), ("1003", "voice"), ("1004", "voice"), ("1005", "chat")],
    ids=["unknown", "logged-out", "not-in-queue", "without-the-skill", "without-chat"],
)
def test_no_hold_for_an_agent_who_could_never_take_the_contact(wanted: str, channel: str) -> None:
    agents = [
        agent("1001", skills={"pension": 1}, chat_capacity=1),
        agent("1002", state=AgentState.OFFLINE, skills={"pension": 5}),
        agent("1003", queues=frozenset({"other"}), skills={"pension": 5}),
        agent("1004", state=AgentState.PAUSED, pause_reason="break", skills={"medical": 5}),
        agent("1005", state=AgentState.ON_CALL, active_voice=1, skills={"pension": 5}, chat_capacity=0),
    ]
    c1 = contact("c1", skill="pension", requested_agent=wanted, channel=channel)
    assert pairs(route(state(agents, [c1], [queue(requested_wait_s=600)]), NOW)) == {"c1": "1001"}


def test_a_paused_or_unreachable_requested_agent_still_holds_the_caller() -> None:
    queues = [queue(requested_wait_s=60)]
    for wanted in (
        agent("1002", state=AgentState.PAUSED, pause_reason="break"),
        agent("1002", device_reachable=False),
        agent("1002", state=AgentState.RINGING),
    ):
        result = route(state([agent("1001"), wanted], [contact("c1", requested_agent="1002")], queues), NOW)
        assert result.assignments == []


def test_a_returning_caller_waits_for_their_agent_until_preferred_until() -> None:
    agents = [agent("1001"), agent("1002", state=AgentState.ON_CALL, active_voice=1)]
    held = contact("c1", waited=100, preferred_agent="1002", preferred_until=NOW + timedelta(seconds=1))
    result = route(state(agents, [held]), NOW)
    assert result.assignments == []
    assert result.waiting["c1"].startswith("waiting for returning caller's agent 1002 until 2026-06-08T02:30:01")
    over = dataclasses.replace(held, preferred_until=NOW)
    assert pairs(route(state(agents, [over]), NOW)) == {"c1": "1001"}


def test_a_returning_caller_without_an_end_waits_returning_wait_s_from_arrival() -> None:
    agents = [agent("1001"), agent("1002", state=AgentState.WRAP_UP, wrapup_until=NOW + timedelta(seconds=5))]
    queues = [queue(returning_wait_s=30)]
    within = contact("c1", waited=29, preferred_agent="1002")
    assert route(state(agents, [within], queues), NOW).assignments == []
    past = contact("c1", waited=30, preferred_agent="1002")
    assert pairs(route(state(agents, [past], queues), NOW)) == {"c1": "1001"}


def test_a_returning_caller_gets_their_free_agent_first() -> None:
    agents = [agent("1001", idle_for=999), agent("1002", idle_for=1)]
    c1 = contact("c1", preferred_agent="1002", preferred_until=NOW + timedelta(seconds=30))
    assert pairs(route(state(agents, [c1]), NOW)) == {"c1": "1002"}
    late = dataclasses.replace(c1, preferred_until=ago(1))  # past the wait: still first if free
    assert pairs(route(state(agents, [late]), NOW)) == {"c1": "1002"}


def test_a_request_beats_a_preference() -> None:
    agents = [agent("1001"), agent("1002"), agent("1003")]
    c1 = contact("c1", requested_agent="1003", preferred_agent="1002", preferred_until=NOW + timedelta(seconds=30))
    assert pairs(route(state(agents, [c1]), NOW)) == {"c1": "1003"}


def test_a_requested_agent_in_a_round_robin_queue_does_not_move_the_cursor() -> None:
    agents = [agent("1001"), agent("1002"), agent("1003")]
    queues = [queue(strategy="round_robin")]
    result = route(state(agents, [contact("c1", requested_agent="1003")], queues, {"general": "1001"}), NOW)
    assert pairs(result) == {"c1": "1003"}
    assert result.rr_cursor == {"general": "1001"}


# ---- capacity: voice and chat ---------------------------------------------------------------------


def test_a_chat_goes_only_to_an_agent_with_chat_capacity_free() -> None:
    agents = [
        agent("1001", idle_for=999, chat_capacity=0),
        agent("1002", idle_for=500, chat_capacity=2, active_chat=2),
        agent("1003", idle_for=10, chat_capacity=2, active_chat=1),
    ]
    result = route(state(agents, [contact("chat1", channel="chat")]), NOW)
    assert pairs(result) == {"chat1": "1003"}


def test_a_chat_needs_chat_capacity_and_says_so() -> None:
    result = route(state([agent("1001", chat_capacity=0)], [contact("chat1", channel="chat")]), NOW)
    assert result.assignments == []
    assert result.waiting["chat1"] == "no agent logged in for chat in queue general"


def test_an_agent_with_chats_open_still_takes_a_call() -> None:
    agents = [agent("1001", chat_capacity=3, active_chat=3)]
    assert pairs(route(state(agents, [contact("c1")]), NOW)) == {"c1": "1001"}


def test_an_agent_without_voice_capacity_takes_chats_only() -> None:
    agents = [agent("1001", voice_capacity=0, chat_capacity=2)]
    result = route(state(agents, [contact("call"), contact("chat", channel="chat", waited=1)]), NOW)
    assert pairs(result) == {"chat": "1001"}


def test_an_agent_gets_one_contact_per_round_even_with_capacity_for_more() -> None:
    agents = [agent("1001", chat_capacity=3)]
    contacts = [contact("chat1", channel="chat", waited=20), contact("chat2", channel="chat", waited=10)]
    result = route(state(agents, contacts), NOW)
    assert result.assignments == [("chat1", "1001")]


# ---- who is never chosen --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"state": AgentState.PAUSED, "pause_reason": "break"},
        {"state": AgentState.WRAP_UP, "wrapup_until": NOW + timedelta(seconds=30)},
        {"state": AgentState.WRAP_UP, "wrapup_until": NOW - timedelta(seconds=30)},  # tick not applied yet
        {"state": AgentState.RINGING},
        {"state": AgentState.ON_CALL, "active_voice": 1},
        {"state": AgentState.OFFLINE},
        {"device_reachable": False},
        {"queues": frozenset({"other"})},
        {"voice_capacity": 0},
    ],
    ids=["paused", "wrap-up", "wrap-up-over-but-not-ticked", "ringing", "on-call", "offline", "unreachable",
         "not-in-queue", "no-voice-capacity"],
)  # fmt: skip
def test_an_agent_who_cannot_take_the_contact_is_never_chosen(changes: dict[str, object]) -> None:
    result = route(state([agent("1001", 60, **changes)], [contact("c1")]), NOW)
    assert result.assignments == []
    assert set(result.waiting) == {"c1"}


def test_two_contacts_and_one_agent_make_exactly_one_assignment() -> None:
    contacts = [contact("second", waited=5), contact("first", waited=6)]
    result = route(state([agent("1001")], contacts), NOW)
    assert result.assignments == [("first", "1001")]
    assert result.waiting == {"second": "the 1 free agent(s) for queue general went to contacts ahead"}


def test_an_agent_of_two_queues_is_given_one_contact() -> None:
    queues = [queue("general"), queue("pension")]
    agents = [agent("1001", queues=frozenset({"general", "pension"}))]
    contacts = [contact("g", waited=5), contact("p", queue="pension", waited=6)]
    assert route(state(agents, contacts, queues), NOW).assignments == [("p", "1001")]


# ---- reasons for waiting --------------------------------------------------------------------------


def test_reasons_name_the_missing_agents() -> None:
    agents = [
        agent("1001", state=AgentState.ON_CALL, active_voice=1, skills={"pension": 4}),
        agent("1002", state=AgentState.OFFLINE, skills={"medical": 5}),
    ]
    contacts = [
        contact("busy", skill="pension", min_level=2),
        contact("nobody", skill="medical"),
        contact("lost", queue="nowhere"),
        contact("high", skill="pension", min_level=5),
    ]
    waiting = route(state(agents, contacts), NOW).waiting
    assert waiting == {
        "busy": "all 1 agent(s) logged in for skill pension (level ≥ 2) in queue general are busy, "
        "in wrap-up, paused or unreachable",
        "nobody": "no agent logged in for skill medical (level ≥ 1) in queue general",
        "lost": "queue nowhere is not configured",
        "high": "no agent logged in for skill pension (level ≥ 5) in queue general",
    }


def test_a_contact_of_an_unknown_queue_is_never_routed() -> None:
    agents = [agent("1001", queues=frozenset({"general", "nowhere"}))]
    result = route(state(agents, [contact("c1", queue="nowhere")]), NOW)
    assert result.assignments == []


def test_every_waiting_contact_has_a_reason_and_no_assigned_one_has() -> None:
    agents = [agent(f"10{n:02d}") for n in range(3)]
    contacts = [contact(f"c{n}", waited=n) for n in range(7)]
    result = route(state(agents, contacts), NOW)
    assert len(result.assignments) == 3
    assert set(result.waiting) == {c.id for c in contacts} - {c for c, _ in result.assignments}
    assert len(result.waiting) == 4


# ---- purity -----------------------------------------------------------------------------------------


def test_route_changes_nothing_it_is_given_and_repeats_itself() -> None:
    agents = [agent("1001"), agent("1002")]
    queues = [queue(strategy="round_robin")]
    cursor = {"general": "1001"}
    given = state(agents, [contact("c1"), contact("c2", waited=3)], queues, cursor)
    copy = dataclasses.replace(given, rr_cursor=dict(given.rr_cursor), contacts=list(given.contacts))
    first = route(given, NOW)
    assert given == copy
    assert given.rr_cursor == {"general": "1001"}
    second = route(given, NOW)
    assert first.assignments == second.assignments
    assert first.rr_cursor == second.rr_cursor
    assert dict(first.waiting) == dict(second.waiting)


# ---- the waiting list ---------------------------------------------------------------------------------


def test_a_waiting_list_keeps_the_routers_order() -> None:
    queues = {"general": queue(priority_tags={"vip": 10})}
    contacts = [
        contact("a", waited=30),
        contact("b", waited=40, caller_tags=frozenset({"vip"})),
        contact("c", waited=50),
        contact("d", waited=30),
    ]
    waiting = WaitingList(queues)
    for c in contacts:
        waiting = waiting.added(c)
    assert [c.id for c in waiting] == ["b", "c", "a", "d"]  # a and d arrived together: in the order added
    assert [service_key(c, queues) for c in waiting] == sorted(service_key(c, queues) for c in contacts)
    assert [c.id for c in waiting.removed({"c", "zz"})] == ["b", "a", "d"]
    assert len(waiting) == 4
    assert waiting[0].id == "b"
    assert [c.id for c in waiting[1:3]] == ["c", "a"]
    assert [c.id for c in waiting.rebuilt({"general": queue()})] == ["c", "b", "a", "d"]


def test_a_waiting_list_routes_like_the_same_contacts_in_a_list() -> None:
    queues = {"general": queue(priority_tags={"elderly": 5})}
    contacts = [contact(f"c{n}", waited=n % 4, caller_tags=frozenset({"elderly"} if n % 3 else ())) for n in range(9)]
    agents = {a.id: a for a in (agent("1001"), agent("1002"), agent("1003"))}
    waiting = WaitingList(queues, contacts)
    fast = route(RouterState(agents, waiting, queues), NOW)
    plain = route(RouterState(agents, list(waiting), queues), NOW)
    assert fast.assignments == plain.assignments
    assert dict(fast.waiting) == dict(plain.waiting)


def test_a_waiting_list_made_for_other_queue_settings_is_sorted_again() -> None:
    old = {"general": queue()}
    new = {"general": queue(priority_tags={"vip": 10})}
    contacts = [contact("plain", waited=60), contact("vip", waited=1, caller_tags=frozenset({"vip"}))]
    stale = WaitingList(old, contacts)
    result = route(RouterState({"1001": agent("1001")}, stale, new), NOW)
    assert pairs(result) == {"vip": "1001"}  # the router did not trust the stale order


# ---- the values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"arrived_at": datetime(2026, 6, 8, 10, 30)},  # naive: would be 8 hours off in Beijing
        {"min_level": 0},
        {"min_level": 6},
        {"channel": "fax"},
        {"skill": ""},
    ],
)
def test_contact_values_are_checked(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        contact("c1", 10, **changes)


@pytest.mark.parametrize(
    "changes",
    [{"strategy": "random"}, {"wrapup_s": -1}, {"requested_wait_s": -5}, {"max_missed_before_pause": 0}],
)
def test_queue_values_are_checked(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        QueueConfig(name="general", **changes)  # type: ignore[arg-type]


def test_derived_keys_follow_replace() -> None:
    c1 = contact("c1", waited=10)
    later = dataclasses.replace(c1, arrived_at=NOW, skill="pension")
    assert later.arrival_key == NOW.timestamp() > c1.arrival_key
    assert later.pool_key == "general\x1fvoice\x1fpension"
    a1 = agent("1001", chat_capacity=2)
    assert dataclasses.replace(a1, active_chat=1).occupancy > a1.occupancy
    assert dataclasses.replace(a1, last_ended_at=NOW).idle_key == NOW.timestamp()
