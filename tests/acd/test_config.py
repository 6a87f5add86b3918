"""Queues and agents from hotline.toml become the router's model (T4, T9)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cc_core.acd.config import agents_offline, queue_configs
from cc_core.acd.model import AgentState
from cc_core.errors import SettingsError
from cc_core.settings import load_settings

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def settings_from(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "hotline.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, env={})


def test_default_queues_serve_the_shipped_flows(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, '[[agents]]\nid = "1001"\nname = "坐席一"\n')
    queues = queue_configs(settings)
    assert set(queues) == {"general", "complaints"}  # the queues ivr_flows/main.yaml names
    assert queues["complaints"].strategy == "skills"
    agent = agents_offline(settings, NOW)["1001"]
    assert agent.state is AgentState.OFFLINE and agent.queues == frozenset(queues)


def test_queue_and_agent_settings_are_mapped(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path,
        """
[[queues]]
name = "pension"
strategy = "round_robin"
wrapup = 45
ring_timeout = 15
returning_window_hours = 24
priority_tags = {vip = 20}

[[agents]]
id = "1001"
name = "王老师"
skills = {pension = 5, medical = 2}
team = "养老组"
tags = ["senior"]
queues = ["pension"]
""",
    )
    queue = queue_configs(settings)["pension"]
    assert (queue.strategy, queue.wrapup_s, queue.ring_timeout_s) == ("round_robin", 45, 15)
    assert queue.returning_window_s == 24 * 3600 and queue.boost(frozenset({"vip"})) == 20
    agent = agents_offline(settings, NOW)["1001"]
    assert agent.skills == {"pension": 5, "medical": 2} and agent.team == "养老组"
    assert agent.queues == frozenset({"pension"}) and agent.tags == frozenset({"senior"})


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[[agents]]\nid = "1001"\nname = "a"\nqueues = ["nope"]\n', "unknown queue(s) nope"),
        ('[[agents]]\nid = "1001"\nname = "a"\nskills = {pension = 6}\n', "agents.0.skills.pension"),
        ('[[queues]]\nname = "q"\nstrategy = "random"\n', "queues.0.strategy"),
        ('[[queues]]\nname = "q"\n[[queues]]\nname = "q"\n', "duplicate queue name"),
        ('[[queues]]\nname = "q"\nwrapup = -1\n', "queues.0.wrapup"),
    ],
)
def test_bad_queue_and_agent_settings_are_one_clear_line(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as error:
        settings_from(tmp_path, text)
    assert fragment in str(error.value) and "\n" not in str(error.value)
