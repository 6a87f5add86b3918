"""The words the agent's pop-up shows for a caller's IVR path (issue 11, also found): the menu
choices the caller made, from the flow's own prompts, with the node ids kept beside them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from cc_core.calls.store import CallStore
from cc_core.db.session import make_engine, make_sessionmaker, upgrade
from cc_core.ivr.flow import Flow, Menu, Prompt
from cc_core.ivr.labels import choice_labels, path_labels
from cc_core.ivr.loader import load_flows
from cc_core.web.workstation import Views
from tests.harness.hotline import REPO

FLOWS, _PROBLEMS = load_flows(REPO / "ivr_flows")


def menu(text: str, keys: str = "1230#*") -> Menu:
    return Menu("m", prompt=Prompt(text=text), choices={k: "x" for k in keys}, on_fail="x")


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        (
            "业务咨询请按1，业务办理和自助查询请按2，投诉与建议请按3，人工服务请按0。",
            {"1": "业务咨询", "2": "业务办理和自助查询", "3": "投诉与建议", "0": "人工服务"},
        ),
        ("查询请按1。返回上一级请按井号键，重听请按星号键。", {"1": "查询", "#": "返回上一级", "*": "重听"}),
        ("按1查询养老金，按2查询缴费", {"1": "查询养老金", "2": "查询缴费"}),
        ("如需人工服务，请按0。", {"0": "人工服务"}),
        ("欢迎致电。", {}),
    ],
)
def test_choice_labels_come_from_the_menu_prompt(text: str, labels: dict[str, str]) -> None:
    assert choice_labels(menu(text)) == labels


def test_a_recorded_menu_prompt_has_no_labels() -> None:
    assert choice_labels(Menu("m", prompt=Prompt(file="menu.wav"), choices={"1": "x"}, on_fail="x")) == {}


# A caller's path through the shipped main flow: consult → pension → back (#) → agent.
PATH = [
    ("main", "welcome", "play"),
    ("main", "hours", "time_switch"),
    ("main", "hours", "decided"),
    ("main", "main_menu", "menu"),
    ("main", "consult_menu", "menu"),
    ("main", "pension_menu", "menu"),
    ("main", "consult_menu", "menu"),
    ("main", "agent", "play"),
    ("main", "agent_queue", "queue"),
]


def test_the_path_is_labelled_with_what_the_caller_chose() -> None:
    assert _PROBLEMS == []
    assert path_labels(FLOWS, PATH) == [
        "播放提示",
        "时间判断",
        "工作时间",
        "主菜单",
        "业务咨询",
        "养老保险",
        "业务咨询",  # back with #: the menu keeps the words it was chosen with
        "人工服务",
        "排队转人工",
    ]


def test_self_service_and_other_flows_are_labelled() -> None:
    path = [
        ("main", "hours", "time_switch"),
        ("main", "hours", "decided"),
        ("main", "after_hours", "goto"),
        ("after_hours", FLOWS["after_hours"].start, FLOWS["after_hours"].nodes[FLOWS["after_hours"].start].kind),
    ]
    labels = path_labels(FLOWS, path)
    assert labels[:3] == ["时间判断", "非工作时间", f"转入{FLOWS['after_hours'].title}"]
    business = [
        ("main", "main_menu", "menu"),
        ("main", "business_menu", "menu"),
        ("main", "pension_id", "collect"),
        ("main", "pension_query", "http"),
        ("main", "pension_query", "http_failed"),
    ]
    assert path_labels(FLOWS, business) == ["主菜单", "业务办理和自助查询", "养老金发放查询", "自助查询", "查询失败"]


def test_an_unknown_flow_or_node_keeps_its_id() -> None:
    assert path_labels({}, [("gone", "old_menu", "menu"), ("gone", "old_menu", "decided")]) == ["old_menu", "decided"]
    assert path_labels(FLOWS, [("main", "removed_node", "play")]) == ["removed_node"]


# --- the API field: GET /api/agent's call.ivr_path[].label ----------------------------------------


class NoWaiters:
    def __init__(self) -> None:
        self.waiters: dict[str, Any] = {}


class NoRoom:
    def room_state(self, _uniqueid: str) -> None:
        return None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CallStore]:
    url = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        yield CallStore(make_sessionmaker(engine))
    finally:
        engine.dispose()


def test_the_pop_up_sends_the_words_with_the_ids(store: CallStore) -> None:
    t0 = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
    uid = "1733300000.7"
    store.call_arrived(uid, uid, "13800138000", "12333", "PJSIP/carrier-00000007", t0)
    for i, (flow, node, kind) in enumerate(PATH):
        store.add_step(uid, t0 + timedelta(seconds=i), flow, node, kind)
    flows: dict[str, Flow] = dict(FLOWS)
    views = Views(
        cast(Any, NoWaiters()),
        cast(Any, NoRoom()),
        store,
        cast(Any, None),
        cast(Any, None),
        flows=lambda: flows,
    )
    steps = views._call_json(uid, ringing=True)["ivr_path"]
    assert [(s["node"], s["label"]) for s in steps] == [
        ("welcome", "播放提示"),
        ("hours", "时间判断"),
        ("hours", "工作时间"),
        ("main_menu", "主菜单"),
        ("consult_menu", "业务咨询"),
        ("pension_menu", "养老保险"),
        ("consult_menu", "业务咨询"),
        ("agent", "人工服务"),
        ("agent_queue", "排队转人工"),
    ]
    assert steps[4] == {
        "at": (t0 + timedelta(seconds=4)).isoformat(),
        "flow": "main",
        "node": "consult_menu",
        "kind": "menu",
        "label": "业务咨询",
    }
