"""A flow as a picture: Graphviz DOT of the nodes and exits, and rendering it to SVG or PNG.

Admins check a flow by looking at it: one box per node (name, kind in Chinese, the start of its
prompt), one arrow per exit labelled with the key or the outcome (按1, 失败, 出错). Nodes where
the call leaves the IVR are drawn apart; a jump to another flow ends in an ellipse.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from cc_core.errors import HotlineError
from cc_core.ivr.flow import (
    DTMF_KEYS,
    Flow,
    Goto,
    Http,
    Menu,
    Node,
    Prompt,
    Queue,
    TimeSwitch,
    Transfer,
)

KIND_NAMES = {
    "play": "播放",
    "menu": "菜单",
    "collect": "收号",
    "http": "自助查询",
    "time_switch": "时间判断",
    "queue": "转人工队列",
    "voicemail": "留言",
    "survey": "满意度",
    "transfer": "转外线",
    "hangup": "挂机",
    "goto": "跳转",
}
# "next" is the ordinary way on, drawn as a plain arrow; every other exit says what led to it.
EXIT_NAMES = {
    "next": "",
    "goto": "",
    "on_fail": "失败",
    "on_error": "出错",
    "timeout": "超时",
    "open": "工作时间",
    "closed": "非工作时间",
    "holiday": "节假日",
    "emergency": "应急",
}
PROMPT_CHARS = 24
FORMATS = ("svg", "png")
# Noto Sans CJK (Debian fonts-noto-cjk) has the Chinese glyphs; without it the labels are boxes.
FONT = "Noto Sans CJK SC"
DOT_TIMEOUT = 60.0

_NODE_STYLE = 'shape=box, style="rounded,filled", fillcolor="#e8f0fe", color="#3c78d8"'
_TERMINAL_STYLE = 'shape=box, style="filled,bold", fillcolor="#fde2e1", color="#cc0000", peripheries=2'
_FLOW_STYLE = 'shape=ellipse, style="dashed,filled", fillcolor="#fff2cc", color="#bf9000"'
_MISSING_STYLE = 'shape=box, style="dashed", color="#cc0000", fontcolor="#cc0000"'


class GraphError(HotlineError):
    """A flow could not be drawn (Graphviz missing or failing)."""


def quote(text: str) -> str:
    """``text`` as a DOT double-quoted string: quotes and backslashes escaped, newlines as ``\\n``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r\n", "\n").replace("\r", "\n")
    return '"' + escaped.replace("\n", "\\n") + '"'


def exit_label(label: str) -> str:
    """How an exit is written on its arrow: a DTMF key as 按1, an outcome in Chinese."""
    if len(label) == 1 and label in DTMF_KEYS:
        return f"按{label}"
    return EXIT_NAMES.get(label, label)


def flow_to_dot(flow: Flow) -> str:
    """The Graphviz DOT source of ``flow`` (UTF-8 text; render it with :func:`render_graph`)."""
    ids = {name: f"n{index}" for index, name in enumerate(flow.nodes)}
    lines = [
        f"digraph {quote(flow.name)} {{",
        '  charset="UTF-8";',
        "  rankdir=TB;",
        f"  label={quote(f'{flow.title}（{flow.name}）')}; labelloc=t;",
        f"  graph [fontname={quote(FONT)}];",
        f"  node [fontname={quote(FONT)}, fontsize=11];",
        f"  edge [fontname={quote(FONT)}, fontsize=10];",
        '  start [label="开始", shape=circle, style=filled, fillcolor="#93c47d", color="#38761d"];',
    ]
    for name, node in flow.nodes.items():
        style = _TERMINAL_STYLE if node.terminal else _NODE_STYLE
        lines.append(f"  {ids[name]} [label={quote(_node_label(node))}, {style}];")
    if flow.start in ids:
        lines.append(f"  start -> {ids[flow.start]};")

    # Targets missing from the flow (the validator's error) are still drawn, so a broken flow
    # shows where it is broken; other flows reached by goto share one ellipse each.
    extra: dict[str, str] = {}

    def target_id(target: str) -> str:
        if target in ids:
            return ids[target]
        if target not in extra:
            extra[target] = f"m{len(extra)}"
            lines.append(f"  {extra[target]} [label={quote(f'缺失：{target}')}, {_MISSING_STYLE}];")
        return extra[target]

    flows: dict[str, str] = {}
    for name, node in flow.nodes.items():
        for label, target in node.exits():
            if not target:
                continue
            text = exit_label(label)
            attrs = f" [label={quote(text)}]" if text else ""
            lines.append(f"  {ids[name]} -> {target_id(target)}{attrs};")
        if isinstance(node, Menu) and node.repeat:
            lines.append(f"  {ids[name]} -> {ids[name]} [label={quote(f'按{node.repeat} 重听')}, style=dashed];")
        if isinstance(node, Goto) and node.flow:
            if node.flow not in flows:
                flows[node.flow] = f"f{len(flows)}"
                lines.append(f"  {flows[node.flow]} [label={quote(f'→ 流程 {node.flow}')}, {_FLOW_STYLE}];")
            lines.append(f"  {ids[name]} -> {flows[node.flow]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_graph(flow: Flow, out: Path, fmt: str = "svg") -> Path:
    """Draw ``flow`` with Graphviz into ``out`` (svg or png), written atomically; returns ``out``."""
    if fmt not in FORMATS:
        raise GraphError(f"cannot draw a flow as {fmt!r}; choose one of {', '.join(FORMATS)}")
    dot = shutil.which("dot")
    if dot is None:
        raise GraphError("Graphviz (dot) is not installed (needed to draw flows); run scripts/setup.sh")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            result = subprocess.run(
                [dot, f"-T{fmt}", "-o", str(tmp)],
                input=flow_to_dot(flow).encode(),
                capture_output=True,
                timeout=DOT_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise GraphError(f"Graphviz took more than {DOT_TIMEOUT:.0f} s to draw flow {flow.name}") from exc
        if result.returncode != 0 or tmp.stat().st_size == 0:
            reason = result.stderr.decode(errors="replace").strip()[:300]
            raise GraphError(f"Graphviz could not draw flow {flow.name}: {reason or 'no output'}")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the web server serves the picture
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _node_label(node: Node) -> str:
    lines = [node.name, KIND_NAMES.get(node.kind, node.kind)]
    detail = _detail(node)
    if detail:
        lines.append(detail)
    return "\n".join(lines)


def _detail(node: Node) -> str:
    """The third line of a box: the start of what the caller hears, or what the node does."""
    prompt = getattr(node, "prompt", None)
    if isinstance(prompt, Prompt) and (prompt.text is not None or prompt.file is not None):
        return _shorten(prompt.describe())
    if isinstance(node, Http):
        return _shorten(node.say) if node.say else _shorten(f"{node.method} {node.url}")
    if isinstance(node, TimeSwitch):
        return f"日历 {node.calendar}"
    if isinstance(node, Queue):
        return f"队列 {node.queue}" + (f"（技能 {node.skill}）" if node.skill else "")
    if isinstance(node, Transfer):
        return f"号码 {node.number}"
    return ""


def _shorten(text: str) -> str:
    flat = " ".join(text.split())  # line breaks in a prompt would break the box's layout
    return flat if len(flat) <= PROMPT_CHARS else flat[:PROMPT_CHARS] + "…"
