"""load_flow / load_flows: safe YAML reading, the file's shape, and the model built from it."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest

from cc_core.ivr.flow import (
    Collect,
    Goto,
    Hangup,
    Http,
    Menu,
    Play,
    Prompt,
    Queue,
    Survey,
    TimeSwitch,
    Transfer,
    Voicemail,
)
from cc_core.ivr.loader import MAX_FILE_BYTES, FlowError, Problem, load_flow, load_flows, parse_flow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOOD = FIXTURES / "ivr_good"
BROKEN = FIXTURES / "ivr_broken"


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    assert caught.value.problems, "FlowError without problems"
    return caught.value.problems


def only_problem(path: Path) -> Problem:
    problems = problems_of(path)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def write(folder: Path, text: str | bytes, name: str = "flow.yaml") -> Path:
    path = folder / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


MINIMAL = """\
flow: flow
start: agent
nodes:
  agent:
    queue: {queue: general}
"""


# ---- the good flow ----------------------------------------------------------------------


def test_good_folder_loads_without_problems() -> None:
    flows, problems = load_flows(GOOD)
    assert problems == []
    assert sorted(flows) == ["after_hours", "main"]


def test_good_flow_header() -> None:
    path = GOOD / "main.yaml"
    flow = load_flow(path)
    assert flow.name == "main"
    assert flow.title == "社保服务热线 主流程"
    assert flow.start == "welcome"
    assert flow.source == path
    assert flow.version == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(flow.nodes) == 20


def test_good_flow_has_every_kind() -> None:
    flow = load_flow(GOOD / "main.yaml")
    kinds = {node.kind for node in flow.nodes.values()}
    assert kinds == {
        "play",
        "menu",
        "collect",
        "http",
        "time_switch",
        "queue",
        "voicemail",
        "survey",
        "transfer",
        "hangup",
        "goto",
    }


def test_good_flow_prompts_named_inline_and_file() -> None:
    flow = load_flow(GOOD / "main.yaml")
    menu_main = Prompt(text="咨询业务请按1，办理业务请按2，投诉与建议请按3，人工服务请按0。", name="menu_main")
    assert flow.prompts["menu_main"] == menu_main
    assert flow.prompts["music"] == Prompt(file="hold.wav", name="music")
    main_menu = flow.nodes["main_menu"]
    assert isinstance(main_menu, Menu)
    assert main_menu.prompt == menu_main  # a name resolves to the content and keeps the name
    assert main_menu.invalid == Prompt(text="您的输入有误。", name="bad_input")
    assert main_menu.no_input == Prompt(text="我们没有收到您的按键。")  # inline text has no name
    music = flow.nodes["pension_detail_play"]
    assert isinstance(music, Play) and music.prompt == Prompt(file="hold.wav", name="music")
    medical = flow.nodes["medical"]
    assert isinstance(medical, Play) and medical.prompt == Prompt(file="medical.wav")


def test_good_flow_menu() -> None:
    flow = load_flow(GOOD / "main.yaml")
    main_menu = flow.nodes["main_menu"]
    assert isinstance(main_menu, Menu)
    assert main_menu.line == 22
    # `1:` is unquoted in the file (YAML reads an int): it is the key "1" all the same.
    assert main_menu.choices == {"1": "consult", "2": "business", "3": "complaints", "0": "agent"}
    assert (main_menu.timeout, main_menu.retries, main_menu.repeat, main_menu.back) == (5.0, 3, "*", None)
    assert main_menu.on_fail == "agent"
    consult = flow.nodes["consult"]
    assert isinstance(consult, Menu)
    assert (consult.timeout, consult.retries, consult.back) == (5.0, 3, "#")  # defaults from flow.py
    pension = flow.nodes["pension"]
    assert isinstance(pension, Menu) and pension.timeout == 4.5


def test_good_flow_other_kinds() -> None:
    nodes = load_flow(GOOD / "main.yaml").nodes
    assert nodes["welcome"] == Play(
        name="welcome",
        line=12,
        prompt=Prompt(text="您好，欢迎致电丰台区社保服务热线。本次通话可能会被录音。"),
        next="hours",
    )
    assert nodes["hours"] == TimeSwitch(
        name="hours",
        line=15,
        calendar="beijing",
        open="main_menu",
        closed="after_hours",
        holiday="holiday",
        emergency="emergency",
    )
    collect = nodes["id_number"]
    assert isinstance(collect, Collect)
    assert (collect.check, collect.store, collect.min_length, collect.max_length) == ("id_card", "id_number", 18, 18)
    assert (collect.timeout, collect.next, collect.on_fail) == (8.0, "pension_query", "agent")
    http = nodes["pension_query"]
    assert isinstance(http, Http)
    assert (http.url, http.method, http.send) == (
        "http://127.0.0.1:8090/api/pension/status",
        "GET",
        {"id_number": "id_number"},
    )
    assert (http.timeout, http.next, http.on_error) == (3.0, "satisfaction", "query_failed")
    assert http.say is not None and "{amount}" in http.say
    assert nodes["business"] == Queue(name="business", line=87, queue="business", skill="handle", priority=1)
    assert nodes["agent"] == Queue(name="agent", line=91, queue="general")
    assert nodes["complaints"] == Voicemail(
        name="complaints", line=89, prompt=Prompt(text="请在提示音后留言，按井号键结束。"), max_seconds=120, next="bye"
    )
    assert nodes["after_hours"] == Goto(name="after_hours", line=93, flow="after_hours")
    assert nodes["holiday"] == Hangup(name="holiday", line=95, prompt=Prompt(text="今天是法定节假日，请在工作日来电。"))
    # Unquoted 01063000000 is an octal int to YAML 1.1; the number keeps its written digits.
    assert nodes["emergency"] == Transfer(name="emergency", line=97, number="01063000000")
    assert nodes["satisfaction"] == Survey(name="satisfaction", line=99, next="bye")
    assert nodes["bye"] == Hangup(name="bye", line=101)


def test_good_flow_records_lines_by_path() -> None:
    lines = load_flow(GOOD / "main.yaml").lines
    assert lines["nodes.main_menu"] == 22
    assert lines['nodes.main_menu.menu.choices."1"'] == 26
    assert lines['nodes.main_menu.menu.choices."0"'] == 29
    assert lines["nodes.main_menu.menu.on_fail"] == 35
    assert lines["nodes.welcome.next"] == 14
    assert lines["prompts.music"] == 10


def test_goto_node_and_version_changes_with_bytes(tmp_path: Path) -> None:
    text = MINIMAL + "  again:\n    goto: agent\n"
    first = load_flow(write(tmp_path, text))
    assert first.nodes["again"] == Goto(name="again", line=6, target="agent")
    second = load_flow(write(tmp_path, text + "# a comment changes the version\n"))
    assert first.version != second.version


# ---- refused YAML -------------------------------------------------------------------------


def test_alias_bomb_is_refused_quickly() -> None:
    began = time.monotonic()
    problem = only_problem(BROKEN / "alias_bomb.yaml")
    assert time.monotonic() - began < 1.0
    assert (problem.line, problem.path) == (5, "")
    assert "aliases are not allowed" in problem.message


def test_alias_alone_is_refused(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, MINIMAL.replace("{queue: general}", "*general")))
    assert problem.line == 5
    assert "alias '*general': aliases are not allowed" in problem.message


def test_custom_tag_is_refused() -> None:
    problem = only_problem(BROKEN / "custom_tag.yaml")
    assert (problem.line, problem.path) == (5, "")
    assert "tag '!!python/object/apply:os.system' is not allowed" in problem.message


@pytest.mark.parametrize("tagged", ["!!str general", "!local general", "! general"])
def test_every_explicit_tag_is_refused(tmp_path: Path, tagged: str) -> None:
    problem = only_problem(write(tmp_path, MINIMAL.replace("{queue: general}", f"{{queue: {tagged}}}")))
    assert problem.line == 5 and "custom tags are refused" in problem.message


def test_non_utf8_names_line_and_offset(tmp_path: Path) -> None:
    data = MINIMAL.encode("utf-8").replace(b"general", "普通".encode("gbk"))
    problem = only_problem(write(tmp_path, data, "non_utf8.yaml"))
    offset = data.index("普通".encode("gbk"))
    assert (problem.line, problem.path) == (5, "")
    assert f"not UTF-8: byte 0x{data[offset]:02x} at offset {offset}" in problem.message


def test_huge_file_is_refused(tmp_path: Path) -> None:
    padding = "# " + "x" * 98 + "\n"
    path = write(tmp_path, MINIMAL + padding * (MAX_FILE_BYTES // len(padding) + 1), "huge.yaml")
    assert path.stat().st_size > MAX_FILE_BYTES
    problem = only_problem(path)
    assert (problem.line, problem.path) == (1, "")
    assert "larger than 256 KB" in problem.message


def test_file_just_under_the_limit_loads(tmp_path: Path) -> None:
    padding = "# " + "x" * 98 + "\n"
    text = MINIMAL + padding * ((MAX_FILE_BYTES - len(MINIMAL)) // len(padding))
    assert len(text.encode()) <= MAX_FILE_BYTES
    assert load_flow(write(tmp_path, text)).name == "flow"


def test_duplicate_digit() -> None:
    problem = only_problem(BROKEN / "duplicate_digit.yaml")
    # `1:` on line 8 and `"1":` on line 10 are the same key.
    assert (problem.line, problem.path) == (10, 'nodes.main_menu.menu.choices."1"')
    assert "digit '1' is used twice in this menu (first on line 8)" in problem.message


def test_duplicate_node_and_key(tmp_path: Path) -> None:
    text = MINIMAL + "  agent:\n    hangup:\n"
    problem = only_problem(write(tmp_path, text))
    assert (problem.line, problem.path) == (6, "nodes.agent")
    assert "node 'agent' is defined twice (first on line 4)" in problem.message
    problem = only_problem(write(tmp_path, MINIMAL.replace("start: agent", "start: agent\nstart: other")))
    assert (problem.line, problem.path) == (3, "start")
    assert "duplicate key 'start' (first on line 2)" in problem.message


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "the file is empty"),
        ("# nothing but a comment\n", 1, "the file is empty"),
        ("flow: a\nstart: [b\nnodes: {}\n", 3, "YAML syntax"),
        ("flow: a\n---\nflow: b\n", 2, "only one YAML document per file"),
        ("flow: a\nstart: b\x07\n", 2, "character U+0007 is not allowed"),
        ("- flow\n- start\n", 1, "expected a mapping with flow, start and nodes, got a list"),
        ("nodes:\n" + "  " + "[" * 30 + "]" * 30 + "\n", 2, "nested more than 20 levels"),
        ("flow: a\nstart: b\nnodes:\n  b:\n    menu:\n      repeat: *\n", 6, 'write the star key as "*"'),
    ],
)
def test_unreadable_yaml(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    problem = only_problem(write(tmp_path, text))
    assert problem.line == line
    assert fragment in problem.message


def test_windows_and_old_mac_line_ends_keep_line_numbers(tmp_path: Path) -> None:
    broken = (BROKEN / "unknown_key.yaml").read_text(encoding="utf-8")
    for ending in ("\r\n", "\r"):
        problem = only_problem(write(tmp_path, broken.replace("\n", ending)))
        assert (problem.line, problem.path) == (8, "nodes.main_menu.menu.timout")


def test_unicode_line_separator_is_refused(tmp_path: Path) -> None:
    # YAML counts U+2028 as a line break where editors do not: every later line would be off.
    problem = only_problem(write(tmp_path, MINIMAL.replace("general", "gene\u2028ral")))
    assert problem.line == 5 and "U+2028 is not allowed" in problem.message


def test_deep_nesting_does_not_recurse(tmp_path: Path) -> None:
    text = "a: " + "[" * 100_000 + "]" * 100_000 + "\n"
    problem = only_problem(write(tmp_path, text))
    assert problem.line == 1


def test_missing_file() -> None:
    problem = only_problem(BROKEN / "no_such_flow.yaml")
    assert (problem.line, problem.path) == (1, "")
    assert "cannot read the file" in problem.message


# ---- the shape of the file --------------------------------------------------------------


def test_unknown_key_suggests() -> None:
    problem = only_problem(BROKEN / "unknown_key.yaml")
    assert (problem.line, problem.path) == (8, "nodes.main_menu.menu.timout")
    assert problem.message == "unknown key 'timout' (did you mean 'timeout'?)"


def test_bad_type() -> None:
    problem = only_problem(BROKEN / "bad_type.yaml")
    assert (problem.line, problem.path) == (8, "nodes.main_menu.menu.timeout")
    assert problem.message == "expected a number of seconds, got text 'soon'"


def test_two_kinds() -> None:
    problem = only_problem(BROKEN / "two_kinds.yaml")
    assert (problem.line, problem.path) == (7, "nodes.welcome")
    assert "exactly one kind, this one has play and hangup" in problem.message


def test_no_kind() -> None:
    problem = only_problem(BROKEN / "no_kind.yaml")
    assert (problem.line, problem.path) == (4, "nodes.welcome")
    assert "the node has no kind" in problem.message


def test_missing_required_key() -> None:
    problem = only_problem(BROKEN / "missing_key.yaml")
    assert (problem.line, problem.path) == (5, "nodes.main_menu.menu")
    assert problem.message == "missing required key 'on_fail'"


@pytest.mark.parametrize(
    ("node", "line", "path", "fragment"),
    [
        ("{menux: {}}", 6, "nodes.x.menux", "unknown key 'menux' (did you mean 'menu'?)"),
        ("{queue: general}", 6, "nodes.x.queue", "expected a mapping of queue settings, got text 'general'"),
        ("{queue: {queue: 7}}", 6, "nodes.x.queue.queue", "expected text, got a number '7'"),
        ("{queue: {queue: q, priority: high}}", 6, "nodes.x.queue.priority", "expected a whole number"),
        ("{queue: {queue: q, priority: 1.5}}", 6, "nodes.x.queue.priority", "expected a whole number"),
        ("{play: [a, b], next: agent}", 6, "nodes.x.play", "expected a prompt, got a list"),
        ("{play: {file: a.wav, text: b}, next: agent}", 6, "nodes.x.play", "exactly one of file or text"),
        ("{play: {url: a.wav}, next: agent}", 6, "nodes.x.play.url", "unknown key 'url'"),
        ("{play: 你好}", 6, "nodes.x", "missing required key 'next'"),
        ("{goto: {node: agent}}", 6, "nodes.x.goto.node", "unknown key 'node'"),
        ("{goto: on}", 6, "nodes.x.goto", "got true/false 'on'"),
        ("{survey: {}, next: agent}", 6, "nodes.x.next", "'next' goes inside 'survey:'"),
        ("{transfer: {number: '110'}, next: agent}", 6, "nodes.x.next", "'next' is not allowed for 'transfer:'"),
        ("{transfer: {number: }}", 6, "nodes.x.transfer.number", "'number' has no value"),
        ("hello", 6, "nodes.x", "expected a node (a mapping with one of play, menu"),
    ],
)
def test_node_shape(tmp_path: Path, node: str, line: int, path: str, fragment: str) -> None:
    problems = problems_of(write(tmp_path, MINIMAL + f"  x: {node}\n"))
    assert any((p.line, p.path) == (line, path) and fragment in p.message for p in problems), "\n".join(
        map(str, problems)
    )


def test_back_key_written_as_bare_hash(tmp_path: Path) -> None:
    menu = "  x:\n    menu:\n      prompt: 你好\n      choices: {'1': agent}\n      back: #\n      on_fail: agent\n"
    text = MINIMAL + menu
    problem = only_problem(write(tmp_path, text))
    assert (problem.line, problem.path) == (10, "nodes.x.menu.back")
    assert 'write "#"' in problem.message


def test_numbers_where_text_is_expected(tmp_path: Path) -> None:
    text = MINIMAL + (
        "  x:\n    menu:\n      prompt: 你好\n      choices: {1: agent, 0: t}\n      repeat: 9\n      on_fail: agent\n"
        "  t:\n    transfer: {number: 12345}\n"
    )
    nodes = load_flow(write(tmp_path, text)).nodes
    menu = nodes["x"]
    assert isinstance(menu, Menu) and menu.choices == {"1": "agent", "0": "t"} and menu.repeat == "9"
    assert nodes["t"] == Transfer(name="t", line=12, number="12345")


def test_top_level_shape(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, "flow: 1\ntitel: x\nnodes: {}\n"))
    found = {(p.line, p.path, p.message) for p in problems}
    assert (1, "flow", "expected text, got a number '1'") in found
    assert (2, "titel", "unknown key 'titel' (did you mean 'title'?)") in found
    assert (1, "", "missing required key 'start'") in found


def test_prompt_that_looks_like_a_name_stays_unresolved(tmp_path: Path) -> None:
    """A bare ASCII word is a prompt name; the validator reports it when prompts: lacks it."""
    text = MINIMAL + "  x:\n    play: welcom\n    next: agent\n  y:\n    play: '请稍候 please'\n    next: agent\n"
    nodes = load_flow(write(tmp_path, text)).nodes
    assert nodes["x"] == Play(name="x", line=6, prompt=Prompt(name="welcom"), next="agent")
    y = nodes["y"]
    assert isinstance(y, Play) and y.prompt == Prompt(text="请稍候 please")


def test_explicit_text_prompt(tmp_path: Path) -> None:
    text = MINIMAL + "  x:\n    play: {text: OK}\n    next: agent\n"
    x = load_flow(write(tmp_path, text)).nodes["x"]
    assert isinstance(x, Play) and x.prompt == Prompt(text="OK")


# ---- errors as text ---------------------------------------------------------------------


def test_problem_and_flow_error_text() -> None:
    path = 'nodes.main_menu.menu.choices."1"'
    problem = Problem(Path("ivr_flows/main.yaml"), 42, path, "target 'consul' does not exist")
    assert str(problem) == "ivr_flows/main.yaml:42: nodes.main_menu.menu.choices.\"1\": target 'consul' does not exist"
    assert str(Problem(Path("a.yaml"), 1, "", "the file is empty")) == "a.yaml:1: the file is empty"
    error = FlowError([problem, problem])
    assert str(error) == f"{problem}\n{problem}"
    assert error.problems == [problem, problem]


def test_parse_flow_from_bytes() -> None:
    flow = parse_flow(MINIMAL.encode(), Path("upload/flow.yaml"))
    assert flow.source == Path("upload/flow.yaml") and flow.name == "flow"


# ---- a folder of flows ------------------------------------------------------------------


def test_load_flows_keeps_good_flows_and_reports_the_rest(tmp_path: Path) -> None:
    shutil.copytree(GOOD, tmp_path / "ivr_flows")
    folder = tmp_path / "ivr_flows"
    shutil.copy(BROKEN / "unknown_key.yaml", folder / "unknown_key.yaml")
    shutil.copy(BROKEN / "missing_target.yaml", folder / "missing_target.yaml")
    write(folder / "calendars", "not: a flow\n", "holidays.yaml")  # subfolders are not flows
    write(folder, MINIMAL, "old.yml")
    write(folder, MINIMAL, ".#main.yaml")  # an editor's lock file
    flows, problems = load_flows(folder)
    assert sorted(flows) == ["after_hours", "main"]
    assert {p.file.name for p in problems} == {"unknown_key.yaml", "missing_target.yaml", "old.yml"}
    old = next(p for p in problems if p.file.name == "old.yml")
    assert "end in .yaml" in old.message


def test_load_flows_checks_goto_to_another_flow(tmp_path: Path) -> None:
    shutil.copytree(GOOD, tmp_path / "ivr_flows")
    folder = tmp_path / "ivr_flows"
    (folder / "after_hours.yaml").unlink()
    flows, problems = load_flows(folder)
    assert flows == {}
    assert [(p.file.name, p.line, p.path) for p in problems] == [("main.yaml", 94, "nodes.after_hours.goto.flow")]
    assert problems[0].message == "flow 'after_hours' does not exist"


def test_load_flows_checks_calendars_and_prompt_files(tmp_path: Path) -> None:
    shutil.copytree(GOOD, tmp_path / "ivr_flows")
    folder = tmp_path / "ivr_flows"
    shutil.rmtree(folder / "calendars")
    (folder / "prompts" / "hold.wav").unlink()
    _, problems = load_flows(folder)
    assert [(p.line, p.path) for p in problems] == [(10, "prompts.music"), (17, "nodes.hours.time_switch.calendar")]
    assert "prompt file 'hold.wav' is not in" in problems[0].message
    assert "calendar 'beijing' does not exist" in problems[1].message


def test_load_flows_missing_folder(tmp_path: Path) -> None:
    flows, problems = load_flows(tmp_path / "nowhere")
    assert flows == {} and len(problems) == 1 and "does not exist" in problems[0].message


def test_queue_node_reads_the_requested_agent_from_a_collected_value(tmp_path: Path) -> None:
    """T9: a caller keys in an agent's work number; the queue step carries it to the router."""
    from datetime import UTC, datetime

    from cc_core.ivr.simulate import simulate

    source = tmp_path / "ask_agent.yaml"
    source.write_text(
        "flow: ask_agent\nstart: agent_no\nnodes:\n"
        "  agent_no:\n"
        '    collect: {prompt: "请输入坐席工号，按井号键结束。", check: digits, store: agent_no,'
        " max_length: 6, next: agent, on_fail: agent}\n"
        "  agent:\n    queue: {queue: general, agent_from: agent_no}\n",
        encoding="utf-8",
    )
    flow = load_flow(source)
    node = flow.nodes["agent"]
    assert isinstance(node, Queue) and node.agent_from == "agent_no"
    at = datetime(2026, 10, 8, 2, 0, tzinfo=UTC)
    asked = simulate({"ask_agent": flow}, "ask_agent", ["1002"], {}, at)
    assert asked.outcome == "queue general (skill -, priority 0, agent 1002)"
    skipped = simulate({"ask_agent": flow}, "ask_agent", ["t", "t", "t"], {}, at)
    assert skipped.outcome == "queue general (skill -, priority 0)"
