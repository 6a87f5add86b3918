"""Router edges the mutation run of 0d15ad6 left unchecked (issue 12, first part; T9).

Each test is one situation the random worlds rarely build: a round that stopped counting free
agents after a requested agent was taken, a declined contact in a round-robin queue without a
cursor yet, and a declined contact behind a pool whose front was consumed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cc_core.acd.model import Agent, AgentState, Contact, QueueConfig, RouterState
from cc_core.acd.router import route

NOW = datetime(2026, 6, 8, 2, 30, tzinfo=UTC)


def agent(agent_id: str, idle_for: int) -> Agent:
    return Agent(
        id=agent_id,
        name=agent_id,
        state=AgentState.AVAILABLE,
        state_since=NOW - timedelta(seconds=idle_for),
        queues=frozenset({"general"}),
    )


def contact(contact_id: str, waited: int, **changes: object) -> Contact:
    return Contact(id=contact_id, queue="general", arrived_at=NOW - timedelta(seconds=waited), **changes)  # type: ignore[arg-type]


def test_a_requested_agent_taken_first_leaves_every_other_free_agent_counted() -> None:
    agents = {a.id: a for a in (agent("1001", 10), agent("1002", 20), agent("1003", 30))}
    contacts = [contact("c1", 30, requested_agent="1001"), contact("c2", 20), contact("c3", 10)]
    result = route(RouterState(agents, contacts, {"general": QueueConfig(name="general")}), NOW)
    assert result.assignments == [("c1", "1001"), ("c2", "1003"), ("c3", "1002")]


def test_a_declined_contact_in_a_round_robin_queue_without_a_cursor_goes_to_the_first_other() -> None:
    agents = {a.id: a for a in (agent("1001", 10), agent("1002", 20), agent("1003", 30))}
    contacts = [contact("c1", 10, declined=frozenset({"1001"}))]
    queues = {"general": QueueConfig(name="general", strategy="round_robin")}
    result = route(RouterState(agents, contacts, queues), NOW)
    assert (result.assignments, dict(result.rr_cursor)) == ([("c1", "1002")], {"general": "1002"})


def test_a_declined_contact_behind_a_consumed_pool_waits_without_error() -> None:
    agents = {a.id: a for a in (agent("1001", 30), agent("1002", 10))}
    contacts = [contact("c1", 20), contact("c2", 10, declined=frozenset({"1002"}))]
    result = route(RouterState(agents, contacts, {"general": QueueConfig(name="general")}), NOW)
    assert result.assignments == [("c1", "1001")]
    assert dict(result.waiting) == {"c2": "the 1 free agent(s) for queue general went to contacts ahead"}
