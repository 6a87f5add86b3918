"""Drawing flows: the DOT text (pure) and real Graphviz renders to SVG and PNG with Chinese labels."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cc_core.ivr.flow import Flow, Goto, Hangup, Http, Menu, Node, Play, Prompt, Queue, TimeSwitch
from cc_core.ivr.graph import GraphError, exit_label, flow_to_dot, quote, render_graph


def small_flow() -> Flow:
    nodes: list[Node] = [
        Play("welcome", prompt=Prompt(text="您好，欢迎致电丰台区社保服务热线。本次通话可能会被录音。"), next="hours"),
        TimeSwitch("hours", calendar="beijing", open="main_menu", closed="after_hours", holiday="bye"),
        Menu(
            "main_menu",
            prompt=Prompt(text='请按"1"咨询\n按\\2办理', name="menu_main"),
            choices={"1": "pension", "0": "agent", "*": "main_menu"},
            repeat="#",
            on_fail="agent",
        ),
        Http("pension", url="http://127.0.0.1:8090/api/pension", say="金额{amount}元", next="bye", on_error="agent"),
        Queue("agent", queue="general", skill="consult"),
        Goto("after_hours", flow="night"),
        Hangup("bye", prompt=Prompt(text="感谢您的来电，再见。")),
    ]
    return Flow(
        name="main",
        title="社保服务热线 主流程",
        start="welcome",
        nodes={node.name: node for node in nodes},
        prompts={"menu_main": Prompt(text='请按"1"咨询\n按\\2办理', name="menu_main")},
        source=Path("ivr_flows/main.yaml"),
        version="0" * 64,
    )


def node_ids(dot: str) -> dict[str, str]:
    """Node name -> DOT id, from the first line of each node's label."""
    return {m[2]: m[1] for m in re.finditer(r'^  (n\d+) \[label="([^"\\]*)\\n', dot, re.MULTILINE)}


def strings_closed(line: str) -> bool:
    """Whether every DOT string opened on ``line`` is closed on it (backslash escapes skipped)."""
    inside = escaped = False
    for char in line:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = inside
        elif char == '"':
            inside = not inside
    return not inside


def test_quote_escapes_quotes_backslashes_and_newlines() -> None:
    assert quote('a"b') == '"a\\"b"'
    assert quote("a\\b") == '"a\\\\b"'
    assert quote("a\nb\r\nc") == '"a\\nb\\nc"'
    assert quote("社保") == '"社保"'


def test_exit_labels() -> None:
    assert exit_label("1") == "按1"
    assert exit_label("*") == "按*"
    assert exit_label("#") == "按#"
    assert exit_label("on_fail") == "失败"
    assert exit_label("on_error") == "出错"
    assert exit_label("timeout") == "超时"
    assert exit_label("next") == ""


def test_dot_has_a_box_per_node_with_kind_and_prompt() -> None:
    dot = flow_to_dot(small_flow())
    ids = node_ids(dot)
    assert set(ids) == {"welcome", "hours", "main_menu", "pension", "agent", "after_hours", "bye"}
    assert '"welcome\\n播放\\n您好，欢迎致电丰台区社保服务热线。本次通话可能会…"' in dot  # first 24 characters
    assert "hours\\n时间判断\\n日历 beijing" in dot
    assert "pension\\n自助查询\\n金额{amount}元" in dot
    assert "agent\\n转人工队列\\n队列 general（技能 consult）" in dot
    assert "after_hours\\n跳转" in dot
    assert "bye\\n挂机\\n感谢您的来电，再见。" in dot


def test_dot_escapes_a_prompt_with_quotes_backslashes_and_newlines() -> None:
    dot = flow_to_dot(small_flow())
    assert '"main_menu\\n菜单\\n请按\\"1\\"咨询 按\\\\2办理"' in dot
    # Every line is a whole statement: no raw newline ever ends up inside a quoted string.
    for line in dot.splitlines():
        assert strings_closed(line), line


def test_dot_edges_are_labelled_with_keys_and_outcomes() -> None:
    dot = flow_to_dot(small_flow())
    n = node_ids(dot)
    assert f"  start -> {n['welcome']};" in dot
    assert f"  {n['welcome']} -> {n['hours']};" in dot
    assert f'  {n["hours"]} -> {n["main_menu"]} [label="工作时间"];' in dot
    assert f'  {n["hours"]} -> {n["after_hours"]} [label="非工作时间"];' in dot
    assert f'  {n["hours"]} -> {n["bye"]} [label="节假日"];' in dot
    assert f'  {n["main_menu"]} -> {n["pension"]} [label="按1"];' in dot
    assert f'  {n["main_menu"]} -> {n["agent"]} [label="按0"];' in dot
    assert f'  {n["main_menu"]} -> {n["main_menu"]} [label="按*"];' in dot
    assert f'  {n["main_menu"]} -> {n["agent"]} [label="失败"];' in dot
    assert f'  {n["main_menu"]} -> {n["main_menu"]} [label="按# 重听", style=dashed];' in dot
    assert f'  {n["pension"]} -> {n["agent"]} [label="出错"];' in dot


def test_dot_marks_start_terminals_and_other_flows() -> None:
    dot = flow_to_dot(small_flow())
    n = node_ids(dot)
    assert 'start [label="开始"' in dot
    terminal = {name for name, node_id in n.items() if re.search(rf"^  {node_id} .*peripheries=2", dot, re.MULTILINE)}
    assert terminal == {"agent", "after_hours", "bye"}
    match = re.search(r'^  (f\d+) \[label="→ 流程 night", shape=ellipse', dot, re.MULTILINE)
    assert match is not None
    assert f"  {n['after_hours']} -> {match[1]};" in dot


def test_dot_draws_missing_targets_instead_of_failing() -> None:
    flow = small_flow()
    nodes = {**flow.nodes, "welcome": Play("welcome", prompt=Prompt(text="您好"), next="nowhere")}
    dot = flow_to_dot(Flow(flow.name, flow.title, flow.start, nodes, flow.prompts, flow.source, flow.version))
    assert re.search(r'^  m0 \[label="缺失：nowhere"', dot, re.MULTILINE)
    assert f"  {node_ids(dot)['welcome']} -> m0;" in dot


def test_dot_of_a_recorded_prompt_names_the_file() -> None:
    flow = small_flow()
    nodes = {**flow.nodes, "welcome": Play("welcome", prompt=Prompt(file="welcome.wav"), next="hours")}
    dot = flow_to_dot(Flow(flow.name, flow.title, flow.start, nodes, flow.prompts, flow.source, flow.version))
    assert "welcome\\n播放\\n[录音 welcome.wav]" in dot


@pytest.fixture
def need_dot() -> None:
    if shutil.which("dot") is None:
        pytest.fail("Graphviz is not installed: run scripts/setup.sh", pytrace=False)


@pytest.mark.usefixtures("need_dot")
def test_render_svg_with_chinese(tmp_path: Path) -> None:
    out = render_graph(small_flow(), tmp_path / "graphs" / "main.svg")
    assert out == tmp_path / "graphs" / "main.svg"
    text = out.read_text(encoding="utf-8")
    root = ET.fromstring(text)  # valid XML
    assert root.tag.endswith("svg")
    all_text = "".join(root.itertext())
    for name in ("welcome", "main_menu", "pension", "bye", "菜单", "按1", "失败", "→ 流程 night"):
        assert name in all_text
    assert not list(out.parent.glob("*.part")), "the temporary file is left behind"


@pytest.mark.usefixtures("need_dot")
def test_render_png(tmp_path: Path) -> None:
    out = render_graph(small_flow(), tmp_path / "main.png", fmt="png")
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000


@pytest.mark.usefixtures("need_dot")
def test_render_replaces_an_old_picture_atomically(tmp_path: Path) -> None:
    out = tmp_path / "main.svg"
    out.write_text("old")
    render_graph(small_flow(), out)
    assert out.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main.svg"]


def test_render_without_graphviz_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GraphError, match=r"scripts/setup\.sh"):
        render_graph(small_flow(), tmp_path / "main.svg")
    assert not (tmp_path / "main.svg").exists()


def test_render_rejects_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match="svg, png"):
        render_graph(small_flow(), tmp_path / "main.pdf", fmt="pdf")
