"""The words an agent reads for a caller's IVR path (the pop-up shows them, the ids on hover).

A call record keeps the path as node ids (``main_menu``, ``consult_menu``, ``agent``), which
mean nothing to an agent. What the caller chose is in the flow itself: a menu's prompt says
what each key is for ("养老保险请按1，医疗保险请按2…"), so the node a key led to is labelled with
those words; a time switch's step with the state it found (工作时间, 节假日 …, read from the node
it went to); any other node with what it does (自助查询, 留言, 人工服务 …).

Pure functions over the flows the registry holds now: a node a reload removed keeps its id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from cc_core.ivr.flow import KINDS, Collect, Flow, Goto, Menu, Node, TimeSwitch

# "业务咨询请按1" / "返回上一级请按井号键" / "按1查询养老金" in one clause of a menu prompt.
_CLAUSES = re.compile(r"[，,。．.；;！!？?、\s]+")
_KEY_WORDS = {"井号": "#", "井": "#", "星号": "*", "米字": "*"}
_PRESS = re.compile(r"^(?P<before>.*?)请?按\s*(?P<key>[0-9*#＊＃]|井号|星号|米字|井)(?:号?键)?(?P<after>.*)$")
_LEAD_IN = re.compile(r"^(?:如需|如果需要|如要|需要|若需|请)")

KIND_WORDS = {
    "play": "播放提示",
    "menu": "菜单",
    "collect": "按键输入",
    "http": "自助查询",
    "time_switch": "时间判断",
    "queue": "排队转人工",
    "voicemail": "留言",
    "survey": "满意度评价",
    "transfer": "转接外线",
    "hangup": "结束通话",
    "goto": "跳转",
}
COLLECT_WORDS = {"id_card": "输入身份证号", "phone": "输入电话号码", "date": "输入日期", "digits": "按键输入"}
STEP_WORDS = {
    "collect_failed": "输入有误",
    "http_failed": "查询失败",
    "survey_answer": "评价已记录",
    "step_limit": "步数超限，转人工",
}
STATE_WORDS = {"open": "工作时间", "closed": "非工作时间", "holiday": "节假日", "emergency": "应急"}


def choice_labels(menu: Menu) -> dict[str, str]:
    """Each key of ``menu`` → the words its prompt says for it ("养老保险请按1" → {"1": "养老保险"}).

    Keys the prompt does not name (or a recorded prompt) are left out."""
    text = menu.prompt.text or ""
    out: dict[str, str] = {}
    previous = ""
    for clause in _CLAUSES.split(text):
        match = _PRESS.match(clause)
        if match is None:
            previous = clause
            continue
        key = match["key"].replace("＊", "*").replace("＃", "#")
        key = _KEY_WORDS.get(key, key)
        words = match["before"] or match["after"] or previous  # "如需人工服务，请按0"
        words = _LEAD_IN.sub("", words).strip()
        if words and key not in out:
            out[key] = words
        previous = ""
    return out


def node_words(node: Node, flows: Mapping[str, Flow]) -> str:
    """What a node does, when no menu choice names it."""
    if isinstance(node, Collect):
        return COLLECT_WORDS.get(node.check, KIND_WORDS["collect"])
    if isinstance(node, Goto) and node.flow is not None:
        other = flows.get(node.flow)
        return f"转入{other.title or other.name}" if other is not None else f"转入流程 {node.flow}"
    return KIND_WORDS.get(node.kind, node.kind)


def path_labels(flows: Mapping[str, Flow], steps: Sequence[tuple[str, str, str]]) -> list[str]:
    """A label for each step ``(flow, node, kind)`` of a call's IVR path, in order.

    ``kind`` is the node's kind for a visit, or one of the extra steps the runtime records
    (``decided``, ``collect_failed``, ``http_failed``, ``survey_answer``, ``step_limit``).
    """
    labels: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    last_visit: tuple[str, str] | None = None
    menus_seen: list[Node] = []
    for index, (flow_name, node_name, kind) in enumerate(steps):
        flow = flows.get(flow_name)
        node = flow.nodes.get(node_name) if flow is not None else None
        if kind not in KINDS:
            labels.append(_step_label(kind, node, steps[index + 1 :]))
            continue
        label = None
        if node is not None and flow is not None and last_visit is not None and last_visit[0] == flow_name:
            before = flow.nodes.get(last_visit[1])
            if isinstance(before, Menu):
                named = choice_labels(before)
                label = next((named[k] for k, t in before.choices.items() if t == node_name and k in named), None)
        if label is None:
            label = seen.get((flow_name, node_name))  # back to a menu: the words it had before
        if label is None and isinstance(node, Menu) and not any(isinstance(n, Menu) for n in menus_seen):
            label = "主菜单"  # the first menu a caller hears
        if label is None:
            label = node_words(node, flows) if node is not None else node_name
        if node is not None:
            menus_seen.append(node)
        seen.setdefault((flow_name, node_name), label)
        labels.append(label)
        last_visit = (flow_name, node_name)
    return labels


def _step_label(kind: str, node: Node | None, after: Sequence[tuple[str, str, str]]) -> str:
    if kind == "decided" and isinstance(node, TimeSwitch):
        following = next((n for _f, n, k in after if k in KINDS), None)
        targets = {"open": node.open, "closed": node.closed, "holiday": node.holiday, "emergency": node.emergency}
        state = next((s for s, target in targets.items() if target and target == following), None)
        return STATE_WORDS[state] if state else KIND_WORDS["time_switch"]
    return STEP_WORDS.get(kind, kind)
