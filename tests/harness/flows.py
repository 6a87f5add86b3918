"""The IVR flows a test session's contact center serves: the shipped ones, pointed at the
test's own self-service server, with a calendar the test controls (open round the clock unless
a test says otherwise, so the day CI runs on never changes what a test hears)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "ivr_flows"
DEMO_API = "http://127.0.0.1:8090"


def calendar_text(holidays: list[date] | None = None, emergency: bool = False) -> str:
    """A calendar open every day 00:00–24:00, with the given holidays and emergency switch."""
    days = "\n".join(f'  {d}: "00:00-24:00"' for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    lines = [
        "title: 测试日历",
        "timezone: Asia/Shanghai",
        f"emergency:\n  active: {'true' if emergency else 'false'}\n  message: 测试",
        f"hours:\n{days}",
    ]
    if holidays:
        lines.append("holidays:\n" + "\n".join(f"  - {{date: {d.isoformat()}, name: 测试假日}}" for d in holidays))
    return "\n".join(lines) + "\n"


# A test-only flow on its own number (TRANSFER_NUMBER): a notice, then a transfer out through
# the carrier trunk to OUTSIDE_NUMBER (a phone of the simulated world).
TRANSFER_NUMBER = "12334"
OUTSIDE_NUMBER = "13911112222"
TRANSFER_FLOW = f"""flow: transfer_test
title: 转外线测试
start: notice
nodes:
  notice:
    play: "正在为您转接区信访办公室。"
    next: out
  out:
    transfer: {{number: "{OUTSIDE_NUMBER}"}}
"""


# Test-only flows for the ACD (issue 4): each number sends the caller straight to one queue,
# so a routing test does not spend its time in menus. Number → (queue, skill).
ACD_NUMBERS = {
    "12340": ("idle", None),
    "12341": ("rr", None),
    "12342": ("occ", None),
    "12343": ("skill", "pension"),
    "12344": ("wrap", None),
    "12345": ("vip", None),
    "12346": ("ret", None),
}


# A caller who asks for an agent by work number (T9): keyed in, then the idle queue.
REQUEST_NUMBER = "12347"
REQUEST_FLOW = """flow: acd_req
title: 指定坐席测试
start: agent_no
nodes:
  agent_no:
    collect: {prompt: "请输入坐席工号，按井号键结束。", check: digits, store: agent_no, max_length: 6,
              next: to_queue, on_fail: to_queue}
  to_queue:
    queue: {queue: idle, agent_from: agent_no}
"""


def acd_flow(number: str) -> str:
    queue, skill = ACD_NUMBERS[number]
    skill_part = f", skill: {skill}" if skill else ""
    return f"""flow: acd_{queue}
title: 排队测试 {queue}
start: hello
nodes:
  hello:
    play: "您好。"
    next: to_queue
  to_queue:
    queue: {{queue: {queue}{skill_part}}}
"""


def prepare_flows(dest: Path, selfservice_url: str) -> Path:
    """Copy the shipped flows to ``dest`` for a test session (plus the transfer test flow)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(SHIPPED, dest)
    for flow in dest.glob("*.yaml"):
        flow.write_text(flow.read_text(encoding="utf-8").replace(DEMO_API, selfservice_url), encoding="utf-8")
    (dest / "transfer_test.yaml").write_text(TRANSFER_FLOW, encoding="utf-8")
    for number, (queue, _skill) in ACD_NUMBERS.items():
        (dest / f"acd_{queue}.yaml").write_text(acd_flow(number), encoding="utf-8")
    (dest / "acd_req.yaml").write_text(REQUEST_FLOW, encoding="utf-8")
    write_calendar(dest)
    return dest


def write_calendar(flows: Path, holidays: list[date] | None = None, emergency: bool = False) -> None:
    target = flows / "calendars" / "beijing.yaml"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(calendar_text(holidays, emergency), encoding="utf-8")
    tmp.replace(target)
