"""validate: what a loaded flow means — targets, reachability, loops, menu depth, prompts, values."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cc_core.ivr import validator
from cc_core.ivr.flow import (
    Collect,
    Flow,
    Goto,
    Hangup,
    Http,
    Menu,
    Node,
    Play,
    Prompt,
    Queue,
    TimeSwitch,
    Transfer,
    Voicemail,
)
from cc_core.ivr.loader import load_flow, load_flows
from cc_core.ivr.validator import Problem, join_path, validate

BROKEN = Path(__file__).resolve().parents[1] / "fixtures" / "ivr_broken"
KNOWN_FLOWS = {p.stem for p in BROKEN.glob("*.yaml")}


def problems_of(name: str) -> list[Problem]:
    """The validator's problems of a broken fixture that loads (its errors are about meaning)."""
    flow = load_flow(BROKEN / f"{name}.yaml")
    return validate(
        flow, prompts_dir=BROKEN / "prompts", known_flows=KNOWN_FLOWS, known_calendars=frozenset({"beijing"})
    )


# Each broken fixture: the exact problems, as (line, path, a fragment of the message).
CASES: dict[str, list[tuple[int, str, str]]] = {
    "missing_target": [
        (8, 'nodes.main_menu.menu.choices."1"', "target 'consul' does not exist (did you mean 'consult'?)"),
        (11, "nodes.consult", "node 'consult' is not reachable from start 'main_menu'"),
    ],
    "unreachable": [(9, "nodes.old_menu", "node 'old_menu' is not reachable from start 'welcome'")],
    "loop_no_exit": [(9, "nodes.ping", "loop with no way out: ping, pong lead only to each other")],
    "loop_menu_no_exit": [
        (4, "nodes.welcome", "loop with no way out: welcome, main_menu, consult lead only to each other")
    ],
    "six_menu_levels": [
        (17, "nodes.level6", "more than 5 menu levels: level1 → level2 → level3 → level4 → level5 → level6")
    ],
    "bad_choice_key": [(9, 'nodes.main_menu.menu.choices."12"', "choice '12' is not one phone key (0-9, *, #)")],
    "repeat_clash": [(8, "nodes.main_menu.menu.repeat", "repeat key '9' is also a choice of this menu")],
    "missing_prompt_name": [
        (8, "nodes.main_menu.menu.prompt", "prompt 'menu_mian' is not defined in prompts: (did you mean 'menu_main'?)")
    ],
    "missing_prompt_file": [(7, "nodes.welcome.play", "prompt file 'welcome.wav' is not in")],
    "empty_prompt": [(5, "nodes.welcome.play", "prompt text is empty")],
    "negative_retries": [(8, "nodes.main_menu.menu.retries", "retries must be between 1 and 10, not -1")],
    "bad_check": [
        (
            7,
            "nodes.id_number.collect.check",
            "check 'idcard' is not one of digits, id_card, phone, date (did you mean 'id_card'?)",
        )
    ],
    "bad_method": [(9, "nodes.query.http.method", "method must be GET or POST, not 'PUT'")],
    "bad_url": [(8, "nodes.query.http.url", "url must start with http:// or https://, not 'ftp://127.0.0.1/pension'")],
    "agent_never_collected": [
        (7, "nodes.agent.queue.agent_from", "value 'agent_nr' is never collected (did you mean 'agent_no'?)")
    ],
    "never_collected": [
        (9, "nodes.query.http.send.id", "value 'id_numbr' is never collected (did you mean 'id_number'?)")
    ],
    "wrong_flow_name": [(1, "flow", "flow 'main' must match the file name 'wrong_flow_name' (wrong_flow_name.yaml)")],
    "missing_start": [(2, "start", "start node 'welcom' does not exist (did you mean 'welcome'?)")],
    "unknown_calendar": [
        (5, "nodes.hours.time_switch.calendar", "calendar 'shanghai' does not exist (calendars/shanghai.yaml)")
    ],
    "missing_flow": [(8, "nodes.elsewhere.goto.flow", "flow 'after_hour' does not exist")],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_fixture(name: str) -> None:
    problems = problems_of(name)
    assert [(p.line, p.path) for p in problems] == [(line, path) for line, path, _ in CASES[name]], "\n".join(
        map(str, problems)
    )
    for problem, (_, _, fragment) in zip(problems, CASES[name], strict=True):
        assert fragment in problem.message
        assert problem.file == BROKEN / f"{name}.yaml"


def test_no_broken_fixture_loads() -> None:
    """Through load_flows (the controller's way in) every broken fixture is refused, with a reason."""
    flows, problems = load_flows(BROKEN)
    assert flows == {}
    assert {p.file.name for p in problems} == {p.name for p in BROKEN.glob("*.yaml")}


def test_problem_text_matches_the_docs() -> None:
    (problem, _) = problems_of("missing_target")
    assert str(problem) == (
        f'{BROKEN / "missing_target.yaml"}:8: nodes.main_menu.menu.choices."1": '
        "target 'consul' does not exist (did you mean 'consult'?)"
    )


# ---- hand-built flows (the validator is pure: no files needed) ---------------------------

QUEUE = Queue(name="agent", line=90, queue="general")
HELLO = Prompt(text="您好。")


def flow_of(
    *nodes: Node, start: str | None = None, prompts: dict[str, Prompt] | None = None, agent: bool = True
) -> Flow:
    """A flow of ``nodes`` (the first is the start) and, unless ``agent`` is false, the queue 'agent'."""
    all_nodes = {node.name: node for node in (*nodes, *([QUEUE] if agent else []))}
    return Flow(
        name="t",
        title="",
        start=start if start is not None else nodes[0].name,
        nodes=all_nodes,
        prompts=prompts or {},
        source=Path("ivr_flows/t.yaml"),
        version="0",
    )


def menu(name: str, choices: dict[str, str], line: int = 1, **settings: object) -> Menu:
    return Menu(name=name, line=line, prompt=HELLO, choices=choices, on_fail="agent", **settings)  # type: ignore[arg-type]


def found(flow: Flow, **kwargs: object) -> list[tuple[int, str, str]]:
    return [(p.line, p.path, p.message) for p in validate(flow, **kwargs)]  # type: ignore[arg-type]


def test_a_good_hand_built_flow_has_no_problems() -> None:
    flow = flow_of(
        Play(name="hi", line=1, prompt=HELLO, next="menu"),
        menu("menu", {"1": "ask", "2": "agent"}, line=2, repeat="*", back="#"),
        Collect(name="ask", line=3, prompt=HELLO, store="id_number", next="query", on_fail="agent"),
        Http(name="query", line=4, url="https://example.org/x", send={"id": "id_number"}, next="bye", on_error="agent"),
        Hangup(name="bye", line=5),
    )
    assert validate(flow, prompts_dir=None, known_flows=None, known_calendars=None) == []


def test_lines_fall_back_to_the_node_line() -> None:
    flow = flow_of(menu("menu", {"1": "nowhere"}, line=7))
    assert found(flow) == [(7, 'nodes.menu.menu.choices."1"', "target 'nowhere' does not exist")]


def test_a_goto_to_itself_is_a_loop() -> None:
    flow = flow_of(menu("menu", {"1": "again"}), Goto(name="again", line=3, target="again"))
    assert found(flow) == [(3, "nodes.again", "loop with no way out: 'again' leads only to itself")]


def test_a_loop_with_a_way_out_is_fine() -> None:
    # The menu's choices lead back into the loop, but on_fail (after the retries) leads out.
    flow = flow_of(
        Play(name="hi", line=1, prompt=HELLO, next="menu"),
        menu("menu", {"1": "hi", "2": "menu"}, line=2),
    )
    assert found(flow) == []


def test_a_loop_left_through_another_flow_is_fine() -> None:
    flow = flow_of(
        Play(name="hi", line=1, prompt=HELLO, next="out"),
        Goto(name="out", line=2, flow="after_hours"),
        agent=False,
    )
    assert found(flow, known_flows={"after_hours"}) == []
    assert found(flow, known_flows={"after_hour"}) == [
        (2, "nodes.out.goto.flow", "flow 'after_hours' does not exist (did you mean 'after_hour'?)")
    ]


def test_menu_levels_count_the_longest_path() -> None:
    # m1 reaches m6 directly (level 2) and through m2..m5 (level 6): "on any path" counts the long one.
    menus = [menu(f"m{i}", {"1": f"m{i + 1}"}, line=i) for i in range(1, 6)]
    menus[0] = menu("m1", {"1": "m2", "2": "m6"}, line=1)
    flow = flow_of(*menus, menu("m6", {"0": "agent"}, line=6))
    assert found(flow) == [(6, "nodes.m6", "more than 5 menu levels: m1 → m2 → m3 → m4 → m5 → m6")]


def test_five_menu_levels_with_ways_back_are_fine() -> None:
    # "0" on each level returns to the top menu: going back is not going deeper.
    menus = [menu(f"m{i}", {"1": f"m{i + 1}", "0": "m1"}, line=i) for i in range(1, 5)]
    flow = flow_of(*menus, menu("m5", {"0": "m1", "9": "agent"}, line=5))
    assert found(flow) == []


def test_menu_level_search_has_a_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validator, "MENU_SEARCH_BUDGET", 3)
    menus = [menu(f"m{i}", {"1": f"m{i + 1}"}, line=i) for i in range(1, 5)]
    flow = flow_of(*menus, menu("m5", {"0": "agent"}, line=5))
    assert [(path, message[:24]) for _, path, message in found(flow)] == [("nodes", "too many paths between m")]


def test_a_large_flow_is_checked_quickly_without_recursion() -> None:
    count = 5000
    chain: list[Node] = [Goto(name=f"g{i}", line=i + 1, target=f"g{i + 1}") for i in range(count)]
    chain.append(menu(f"g{count}", {str(d): f"m{d}" for d in range(10)}, line=count + 1))
    chain += [menu(f"m{d}", {str(k): f"m{k}" for k in range(10)}, line=count + 2 + d) for d in range(10)]
    began = time.monotonic()
    problems = found(flow_of(*chain))
    assert time.monotonic() - began < 3.0
    # Every menu m0..m9 is at level 6 on some path: each is named once.
    assert [path for _, path, _ in problems] == [f"nodes.m{d}" for d in range(10)]
    assert all("more than 5 menu levels: g5000 → " in message for _, _, message in problems)


def test_menu_keys() -> None:
    flow = flow_of(menu("menu", {"1": "agent", "": "agent", "**": "agent"}, repeat="*", back="*"))
    assert found(flow) == [  # sorted by line, then path
        (1, "nodes.menu.menu.back", "back key '*' is also the repeat key"),
        (1, 'nodes.menu.menu.choices.""', "choice '' is not one phone key (0-9, *, #)"),
        (1, 'nodes.menu.menu.choices."**"', "choice '**' is not one phone key (0-9, *, #)"),
    ]
    flow = flow_of(menu("menu", {"1": "agent"}, back="A"))
    assert found(flow) == [(1, "nodes.menu.menu.back", "back key 'A' is not one phone key (0-9, *, #)")]
    flow = flow_of(menu("menu", {}))
    assert found(flow) == [(1, "nodes.menu.menu.choices", "a menu needs at least one choice")]


@pytest.mark.parametrize("seconds", [0.0, -1.0, 61.0, float("nan"), float("inf")])
def test_timeouts_out_of_range(seconds: float) -> None:
    flow = flow_of(menu("menu", {"1": "agent"}, timeout=seconds))
    [(_, path, message)] = found(flow)
    assert path == "nodes.menu.menu.timeout" and message.startswith("timeout must be more than 0 and at most 60")


def test_collect_values() -> None:
    flow = flow_of(
        Collect(
            name="ask",
            prompt=HELLO,
            check="id",
            store="id number",
            min_length=0,
            max_length=99,
            next="agent",
            on_fail="agent",
        )
    )
    assert [(path, message) for _, path, message in found(flow)] == [
        ("nodes.ask.collect.check", "check 'id' is not one of digits, id_card, phone, date"),
        ("nodes.ask.collect.max_length", "max_length must be between min_length and 64"),
        ("nodes.ask.collect.min_length", "min_length must be between 1 and 64"),
        ("nodes.ask.collect.store", "store 'id number' must be a name (letters, digits, _)"),
    ]


@pytest.mark.parametrize(
    ("url", "say", "path", "fragment"),
    [
        ("http://", None, "nodes.q.http.url", "has no host"),
        ("javascript:alert(1)", None, "nodes.q.http.url", "must start with http:// or https://"),
        ("http://[::1", None, "nodes.q.http.url", "must start with http:// or https://"),
        ("http://h/x", "金额{amount", "nodes.q.http.say", "say has a broken {field}"),
        ("http://h/x", "金额{0}", "nodes.q.http.say", "say field '{0}' must be a name"),
        ("http://h/x", " ", "nodes.q.http.say", "say is empty"),
    ],
)
def test_http_values(url: str, say: str | None, path: str, fragment: str) -> None:
    flow = flow_of(Http(name="q", url=url, say=say, next="agent", on_error="agent"))
    [(_, got_path, message)] = found(flow)
    assert got_path == path and fragment in message


def test_other_values() -> None:
    flow = flow_of(
        Play(name="hi", line=1, prompt=Prompt(file="../../etc/passwd"), next="t"),
        Transfer(name="t", line=2, number="010-6300"),
        Voicemail(name="vm", line=3, prompt=HELLO, max_seconds=0, next="agent"),
        Queue(name="q", line=4, queue="", priority=-1),
        TimeSwitch(name="ts", line=5, calendar="", open="agent", closed="agent"),
        Goto(name="g", line=6),
        start="hi",
    )
    messages = [message for _, _, message in found(flow) if "not reachable" not in message]
    assert messages == [
        "prompt file '../../etc/passwd' must be a file name inside the prompts folder",
        "number '010-6300' is not a phone number (digits only)",
        "max_seconds must be between 1 and 600, not 0",
        "priority must be 0 or more, not -1",  # same line as the next: sorted by path
        "no queue name given",
        "no calendar given",
        "goto needs a node name or {flow: name}",
    ]


def test_named_prompt_is_checked_where_it_is_defined() -> None:
    empty = Prompt(text="", name="greeting")
    flow = flow_of(Play(name="hi", line=5, prompt=empty, next="agent"), prompts={"greeting": empty})
    flow.lines["prompts.greeting"] = 2
    assert found(flow) == [(2, "prompts.greeting", "prompt text is empty")]


def test_checks_given_as_none_are_skipped() -> None:
    flow = flow_of(
        Play(name="hi", line=1, prompt=Prompt(file="missing.wav"), next="ts"),
        TimeSwitch(name="ts", line=2, calendar="nowhere", open="g", closed="agent"),
        Goto(name="g", line=3, flow="nowhere"),
    )
    assert found(flow) == []
    assert len(found(flow, prompts_dir=Path("/nonexistent"), known_flows=set(), known_calendars=set())) == 3


def test_validate_never_raises_on_a_malformed_model() -> None:
    broken = Menu(name="m", prompt=HELLO, choices=None, on_fail="agent")  # type: ignore[arg-type]
    problems = validate(flow_of(broken))
    assert problems and all(p.line >= 1 and p.message for p in problems)
    assert any("internal error" in p.message for p in problems)


def test_join_path_quotes_what_is_not_a_name() -> None:
    assert join_path("", "nodes") == "nodes"
    assert join_path("nodes.m.menu.choices", "1") == 'nodes.m.menu.choices."1"'
    assert join_path("nodes", "主菜单") == 'nodes."主菜单"'
    assert join_path("nodes", 'a"b') == 'nodes."a\\"b"'
