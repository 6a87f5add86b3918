"""Edits of hotline.toml's agents and queues (cc_core/acd/roster.py): comments and layout kept,
the result validated as settings, nothing written on a refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from cc_core.acd.roster import Roster, RosterError, RosterInvalid
from cc_core.settings import load_settings

BASE = """# 热线配置 — the admin's own comment
[switch]
sip_port = 5060   # phones

[[agents]]
id = "1001"       # 张丽's desk
name = "张丽"
skills = {consult = 3}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "hotline.toml"
    path.write_text(BASE, encoding="utf-8")
    return path


def test_an_agent_is_added_and_changed_with_comments_kept(config: Path) -> None:
    roster = Roster(config, env={})
    settings = roster.save_agent("1002", {"name": "王芳", "skills": {"complaint": 5}, "tags": ["老员工"]}, create=True)
    assert [a.id for a in settings.agents] == ["1001", "1002"]
    settings = roster.save_agent("1001", {"skills": {"consult": 4, "pension": 2}}, create=False)
    text = config.read_text(encoding="utf-8")
    assert text.startswith("# 热线配置 — the admin's own comment")
    assert "# phones" in text and "# 张丽's desk" in text
    reloaded = load_settings(config, env={})
    assert {a.id: a.skills for a in reloaded.agents} == {"1001": {"consult": 4, "pension": 2}, "1002": {"complaint": 5}}
    assert reloaded.agents[1].tags == ["老员工"]


def test_refused_edits_write_nothing(config: Path) -> None:
    roster = Roster(config, env={})
    with pytest.raises(RosterError, match="skills"):
        roster.save_agent("1001", {"skills": {"consult": 7}}, create=False)
    with pytest.raises(RosterError, match="exists"):
        roster.save_agent("1001", {"name": "x"}, create=True)
    with pytest.raises(RosterError, match="no agent"):
        roster.save_agent("1009", {"name": "x"}, create=False)
    with pytest.raises(RosterError, match="no queue"):
        roster.save_queue("nowhere", {"wrapup": 10})
    with pytest.raises(RosterError, match=r"hotline\.toml"):  # the file's name, not the temp file's
        roster.save_queue("general", {"strategy": "random"})
    assert config.read_text(encoding="utf-8") == BASE
    assert not list(config.parent.glob(".hotline.toml.*"))


def test_a_queue_edit_writes_out_the_default_queues_first(config: Path) -> None:
    roster = Roster(config, env={})
    settings = roster.save_queue("complaints", {"wrapup": 90, "ring_timeout": 25})
    queues = {q.name: q for q in settings.queues}
    assert set(queues) == {"general", "complaints"}
    assert (queues["complaints"].wrapup, queues["complaints"].strategy) == (90, "skills")
    assert queues["general"].title == "综合咨询"
    assert load_settings(config, env={}).queues == settings.queues


def test_a_removed_agent_is_gone_from_the_file(config: Path) -> None:
    roster = Roster(config, env={})
    roster.save_agent("1002", {"name": "王芳"}, create=True)
    settings = roster.remove_agent("1002")
    assert [a.id for a in settings.agents] == ["1001"]
    with pytest.raises(RosterError):
        roster.remove_agent("1002")


def test_a_name_that_would_add_a_sip_section_is_refused_with_its_key(config: Path) -> None:
    """Issue 11 item 2: the admin's edit goes through the settings' validation; the web answers 400."""
    roster = Roster(config, env={})
    with pytest.raises(RosterInvalid) as caught:
        roster.save_agent("1001", {"name": "x\n[evil]\ntype=endpoint"}, create=False)
    assert "agents.0.name" in str(caught.value) and "坐席姓名不能含控制字符" in str(caught.value)
    with pytest.raises(RosterInvalid, match=r"agents\.1\.name"):
        roster.save_agent("1002", {"name": '张"丽'}, create=True)
    assert config.read_text(encoding="utf-8") == BASE
    assert roster.save_agent("1002", {"name": "张丽"}, create=True).agents[1].name == "张丽"
