"""The ACD's model built from the settings: queues and logged-out agents (T4, T9)."""

from __future__ import annotations

from datetime import datetime

from cc_core.acd.model import Agent, AgentState, QueueConfig
from cc_core.settings import Settings


def queue_configs(settings: Settings) -> dict[str, QueueConfig]:
    """Every ``[[queues]]`` entry as the router's :class:`QueueConfig`."""
    return {
        q.name: QueueConfig(
            name=q.name,
            strategy=q.strategy,
            ring_timeout_s=q.ring_timeout,
            wrapup_s=q.wrapup,
            max_missed_before_pause=q.max_missed_before_pause,
            returning_window_s=round(q.returning_window_hours * 3600),
            returning_wait_s=q.returning_wait,
            requested_wait_s=q.requested_wait,
            priority_tags=dict(q.priority_tags),
        )
        for q in settings.queues
    }


def agents_offline(settings: Settings, now: datetime) -> dict[str, Agent]:
    """Every ``[[agents]]`` entry as an :class:`Agent`, logged out (an empty queue list = all)."""
    every_queue = frozenset(q.name for q in settings.queues)
    return {
        a.id: Agent(
            id=a.id,
            name=a.name,
            state=AgentState.OFFLINE,
            state_since=now,
            skills=dict(a.skills),
            team=a.team,
            tags=frozenset(a.tags),
            queues=frozenset(a.queues) or every_queue,
            chat_capacity=a.chat_capacity,
        )
        for a in settings.agents
    }
