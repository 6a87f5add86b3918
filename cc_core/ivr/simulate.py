"""Walk a flow without the switch and tell what the caller would hear (``hotline ivr simulate``).

The same runtime as real calls (:func:`cc_core.ivr.runtime.run`) is driven by a script of
inputs: each menu question takes the next entry (one key, or ``t`` for "no key"), each
collection takes the next entry as the keys typed. HTTP nodes call the real URL, or are
skipped with a note (they then take their error exit) when HTTP is off.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cc_core.http_policy import DEFAULT_POLICY, HttpPolicy
from cc_core.ivr.flow import Flow, Prompt
from cc_core.ivr.runtime import (
    AskDigits,
    AskKey,
    CalendarLike,
    CallContext,
    End,
    Fetch,
    RecordMessage,
    Say,
    ToNumber,
    ToQueue,
    Visit,
    run,
)

TIMEOUT = "t"


@dataclass
class Simulation:
    """What happened: the lines a person reads, and the nodes visited in order."""

    lines: list[str] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    outcome: str = ""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx is an answer (a failure), never followed: the driver's rule (issue 11 item 8)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects, urllib.request.ProxyHandler({}))


def http_fetch(step: Fetch, policy: HttpPolicy = DEFAULT_POLICY) -> dict[str, Any] | None:
    """A blocking version of the driver's HTTP call (same rules: only a host ``policy`` allows,
    no redirects, no cookies, 200 + a JSON object)."""
    if policy.refusal(step.url) is not None:
        return None
    data = None
    url = step.url
    if step.method == "POST":
        data = json.dumps(dict(step.values)).encode()
    else:
        url = f"{url}?{urllib.parse.urlencode(dict(step.values))}"
    request = urllib.request.Request(url, data=data, method=step.method, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with _OPENER.open(request, timeout=step.timeout) as answer:
            body = json.loads(answer.read(64 * 1024).decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return body if isinstance(body, dict) else None


def _say(prompt: Prompt | None) -> str:
    return prompt.describe() if prompt is not None else ""


def simulate(
    flows: Mapping[str, Flow],
    flow_name: str,
    inputs: Sequence[str],
    calendars: Mapping[str, CalendarLike],
    at: datetime,
    fetch: Callable[[Fetch], dict[str, Any] | None] | None = None,
    caller_number: str = "13800138000",
) -> Simulation:
    """Run ``flow_name`` with scripted ``inputs``; ``fetch=None`` skips HTTP nodes."""
    out = Simulation()
    remaining = list(inputs)
    context = CallContext(caller_number=caller_number, dialed_number="")
    steps = run(flows, flow_name, context, calendars, lambda: at)
    answer: Any = None
    while True:
        step = steps.send(answer)
        answer = None
        match step:
            case Visit(flow=flow, node=node, kind=kind, detail=detail):
                if kind in ("decided", "survey_answer", "collect_failed", "http_failed", "step_limit"):
                    out.lines.append(f"   ({kind}: {json.dumps(dict(detail), ensure_ascii=False)})")
                else:
                    out.path.append(f"{flow}/{node}")
                    out.lines.append(f"→ {flow}/{node} [{kind}]")
            case Say(prompt=prompt):
                out.lines.append(f"   播放: {_say(prompt)}")
            case AskKey(prompt=prompt, timeout=timeout, keys=keys):
                out.lines.append(f"   播放并等待按键 ({timeout:g}s, 可按 {keys}): {_say(prompt)}")
                if not remaining:
                    out.lines.append("   (输入用完：来电者挂机)")
                    out.outcome = "caller hung up"
                    return out
                key = remaining.pop(0)
                answer = "" if key == TIMEOUT else key[:1]
                out.lines.append("   来电者: (没有按键)" if answer == "" else f"   来电者按: {answer}")
            case AskDigits(prompt=prompt, max_digits=most):
                out.lines.append(f"   播放并收号 (最多 {most} 位, #结束): {_say(prompt)}")
                if not remaining:
                    out.lines.append("   (输入用完：来电者挂机)")
                    out.outcome = "caller hung up"
                    return out
                keyed = remaining.pop(0)
                answer = "" if keyed == TIMEOUT else keyed
                out.lines.append(f"   来电者输入: {answer or '(没有输入)'}")
            case Fetch(url=url, method=method, values=values):
                if fetch is None:
                    out.lines.append(f"   自助查询 {method} {url} — 已跳过 (未提供 --http)，按出错处理")
                else:
                    answer = fetch(step)
                    result = "失败" if answer is None else json.dumps(answer, ensure_ascii=False)
                    out.lines.append(f"   自助查询 {method} {url} {dict(values)} → {result}")
            case RecordMessage(prompt=prompt, max_seconds=most):
                out.lines.append(f"   播放: {_say(prompt)}  [嘀] 录音留言 (最长 {most}s)")
                answer = 0
            case ToQueue(queue=queue, skill=skill, priority=priority, requested_agent=requested):
                wanted = f", agent {requested}" if requested else ""
                out.outcome = f"queue {queue} (skill {skill or '-'}, priority {priority}{wanted})"
                out.lines.append(
                    f"   ⇒ 转人工队列 {queue}，技能 {skill or '-'}，优先级 {priority}"
                    + (f"，指定坐席 {requested}" if requested else "")
                )
                return out
            case ToNumber(number=number):
                out.outcome = f"transfer {number}"
                out.lines.append(f"   ⇒ 转接外线 {number}")
                return out
            case End(prompt=prompt):
                if prompt is not None:
                    out.lines.append(f"   播放: {_say(prompt)}")
                out.outcome = "hangup"
                out.lines.append("   ⇒ 挂机")
                return out
