"""The agents' actions, once (issue 12 item 7): each one's name, the body it takes (one validator,
whose refusals are 400s in Chinese then English) and the one call that performs it on the
:class:`~cc_core.acd.service.Acd` or the :class:`~cc_core.acd.callcontrol.CallControl`.

Two sites serve them and both dispatch through :data:`ACTIONS`: the web workstation
(cc_core/web/workstation.py: a session whose role is ``agent``, acting on the session's own agent)
and the loopback control endpoint behind the control token (cc_core/web/control.py, the agent's
id in the path; ``hotline agent …`` and the test harness use it). Before, each site had its own
``match`` with its own names (``wrapup-done`` here, ``wrapup/finish`` there) and its own checks
(a pause reason of any length, a number as ``extension`` called "missing" on one side, "not text"
on the other; a summary of another agent's call a 409 on one and a 403 on the other): the same
request could be refused on one site and done on the other.

An action lives under a *group* of the site's path, the same on both sites::

    group          workstation                      control site
    ""             /api/agent/{verb}                /api/control/agents/{agent}/{verb}
    "wrapup"       /api/agent/wrapup/{verb}         /api/control/agents/{agent}/wrapup/{verb}
    "call"         /api/agent/call/{verb}           /api/control/agents/{agent}/call/{verb}
    "callbacks"    /api/agent/callbacks/{id}/call   /api/control/agents/{agent}/callbacks/{id}/call

What a site answers on success is its own (the control site adds the agent's state, which the CLI
prints; the workstation's screen is pushed over the WebSocket); what is refused, and how, is this
module's. The OpenAPI document (cc_core/web/openapi.py) reads each group's verbs and body schema
from here, so the document and the validator cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cc_core.acd.callcontrol import CallControl
from cc_core.acd.model import Agent
from cc_core.acd.service import Acd, AgentError, SummaryRefused

Schema = dict[str, Any]

SUMMARY_MAX = 4000
REASON_MAX = 64
TARGET_MAX = 40
EXTENSION_MAX = 64
SECONDS_MIN, SECONDS_MAX, SECONDS_DEFAULT = 1, 600, 60
CALLBACK_ID_MAX = 2**31  # the database's integers: a bigger one was a 500 before


class ActionRefused(Exception):
    """A request the table refuses before or while acting: its HTTP status and one line (Chinese
    first, then English in parentheses, or the controller's own reason for a 409/403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bad(message: str) -> ActionRefused:
    return ActionRefused(400, message)


# ---- the fields a body may hold ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    """A text field, stripped. ``required``: present and not blank ("缺少 key"); otherwise absent,
    null or empty means None, and anything but text is refused ("key 须为文本")."""

    key: str
    limit: int
    required: bool = True

    def read(self, data: Mapping[str, Any]) -> str | None:
        value = data.get(self.key)
        if not self.required and (value is None or value == ""):
            return None
        if not isinstance(value, str) or (self.required and not value.strip()):
            if self.required:
                raise _bad(f"缺少 {self.key} (missing {self.key})")
            raise _bad(f"{self.key} 须为文本 ({self.key} must be text)")
        if len(value) > self.limit:
            raise _bad(f"{self.key} 过长 (longer than {self.limit} characters)")
        return value.strip() or None

    def schema(self) -> Schema:
        text: Schema = {"type": "string", "maxLength": self.limit}
        return text if self.required else {"anyOf": [text, {"type": "null"}]}


@dataclass(frozen=True, slots=True)
class Seconds:
    """A whole number of seconds in [low, high] (not a bool, not 1.5), ``default`` when absent."""

    key: str
    low: int
    high: int
    default: int

    def read(self, data: Mapping[str, Any]) -> int:
        value = data.get(self.key, self.default)
        if not isinstance(value, int) or isinstance(value, bool) or not self.low <= value <= self.high:
            raise _bad(f"{self.key} 须为 {self.low}–{self.high} 的整数 (an integer {self.low}–{self.high})")
        return value

    def schema(self) -> Schema:
        return {"type": "integer", "minimum": self.low, "maximum": self.high}


@dataclass(frozen=True, slots=True)
class CallbackId:
    """The callback's id from the path (``callbacks/{id}/call``): a positive number the database holds."""

    key: str = "id"

    def read(self, data: Mapping[str, Any]) -> int:
        try:
            value = int(str(data.get(self.key, "")))
        except ValueError:
            raise _bad("回拨编号须为数字 (a number)") from None
        if not 0 < value < CALLBACK_ID_MAX:
            raise _bad("回拨编号超出范围 (the callback id is out of range)")
        return value

    def schema(self) -> Schema:
        return {"type": "integer", "minimum": 1, "maximum": CALLBACK_ID_MAX - 1}


FieldSpec = Text | Seconds | CallbackId


# ---- what an action does --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Done:
    """An action done: the agent whose state it changed (the control site shows it), and what else
    the answer carries (``call``: the call acted on; ``callback``: the callback placed)."""

    agent: Agent | None = None
    extra: Mapping[str, Any] | None = None


Args = dict[str, Any]
Perform = Callable[[Acd, CallControl, str, Args], Awaitable[Done]]


@dataclass(frozen=True, slots=True)
class AgentAction:
    """One agent action: where it lives (group, verb), what its body holds, and what performs it."""

    name: str
    group: str
    verb: str
    fields: tuple[FieldSpec, ...]
    perform: Perform
    summary: str
    # False: served on the loopback control site only. The chat counters stand in for the chat
    # channel until it exists (issue 13); an agent's own browser must not lower its load.
    workstation: bool = True

    def validate(self, data: Mapping[str, Any], path: Mapping[str, str] | None = None) -> Args:
        """The body's fields checked in order (the first bad one is the 400); path parameters
        (the callback's id) are read by the fields that name them."""
        source = {**data, **(path or {})}
        return {f.key: f.read(source) for f in self.fields}


def _agent(call: Callable[[Acd, str, Args], Awaitable[Agent]]) -> Perform:
    async def perform(acd: Acd, _control: CallControl, agent_id: str, args: Args) -> Done:
        return Done(agent=await call(acd, agent_id, args))

    return perform


async def _summary(acd: Acd, _control: CallControl, agent_id: str, args: Args) -> Done:
    return Done(extra={"call": await acd.summary(agent_id, args["text"], args["call"])})


async def _call_back(acd: Acd, _control: CallControl, agent_id: str, args: Args) -> Done:
    await acd.call_back_now(agent_id, args["id"])
    return Done(extra={"callback": args["id"]})


def _call(verb: str) -> Perform:
    async def perform(_acd: Acd, control: CallControl, agent_id: str, args: Args) -> Done:
        return Done(extra={"call": await control.perform(agent_id, verb, args.get("to"))})

    return perform


_TO = Text("to", TARGET_MAX)
_SIMPLE_CALL_ACTIONS = (
    ("hold", "把来电者保持 (put the caller on hold)"),
    ("unhold", "取回保持的来电者 (take the caller back)"),
    ("consult-cancel", "取消咨询 (end the consultation)"),
    ("hand-over", "咨询后转接 (hand the call over after consulting)"),
    ("conference", "三方通话 (three-way call)"),
    ("drop-third", "挂断第三方 (drop the third party)"),
    ("leave", "退出三方通话 (leave the three-way call)"),
    ("hangup", "挂断 (hang up)"),
)

_TABLE: tuple[AgentAction, ...] = (
    AgentAction(
        "login",
        "",
        "login",
        (Text("extension", EXTENSION_MAX, required=False),),
        _agent(lambda acd, a, args: acd.login(a, args["extension"])),
        "签入 (log in, on the agent's phone or another extension)",
    ),
    AgentAction("logout", "", "logout", (), _agent(lambda acd, a, _: acd.logout(a)), "签出 (log out)"),
    AgentAction(
        "pause",
        "",
        "pause",
        (Text("reason", REASON_MAX),),
        _agent(lambda acd, a, args: acd.pause(a, args["reason"])),
        "示忙 (pause, with a reason)",
    ),
    AgentAction("resume", "", "resume", (), _agent(lambda acd, a, _: acd.resume(a)), "示闲 (available again)"),
    AgentAction(
        "chat-start",
        "",
        "chat-start",
        (),
        _agent(lambda acd, a, _: acd.chat_started(a)),
        "开始一个会话 (a chat opened for the agent)",
        workstation=False,
    ),
    AgentAction(
        "chat-end",
        "",
        "chat-end",
        (),
        _agent(lambda acd, a, _: acd.chat_ended(a)),
        "结束一个会话 (a chat closed)",
        workstation=False,
    ),
    AgentAction(
        "summary",
        "",
        "summary",
        (Text("text", SUMMARY_MAX), Text("call", TARGET_MAX * 2, required=False)),
        _summary,
        "保存小结 (save the call's summary; only a call this agent served)",
    ),
    AgentAction(
        "wrapup-finish",
        "wrapup",
        "finish",
        (),
        _agent(lambda acd, a, _: acd.end_wrapup(a)),
        "结束话后整理 (end the wrap-up now)",
    ),
    AgentAction(
        "wrapup-extend",
        "wrapup",
        "extend",
        (Seconds("seconds", SECONDS_MIN, SECONDS_MAX, SECONDS_DEFAULT),),
        _agent(lambda acd, a, args: acd.extend_wrapup(a, args["seconds"])),
        "延长话后整理一次 (more wrap-up time, once)",
    ),
    AgentAction("transfer", "call", "transfer", (_TO,), _call("transfer"), "盲转 (blind transfer to `to`)"),
    AgentAction("consult", "call", "consult", (_TO,), _call("consult"), "咨询 (consult `to`, the caller on hold)"),
    *(AgentAction(verb, "call", verb, (), _call(verb), summary) for verb, summary in _SIMPLE_CALL_ACTIONS),
    AgentAction("call-back", "callbacks", "call", (CallbackId(),), _call_back, "立即回拨 (call this citizen back now)"),
)

# name → action: the one table both sites serve.
ACTIONS: dict[str, AgentAction] = {a.name: a for a in _TABLE}
_BY_PLACE: dict[tuple[str, str], AgentAction] = {(a.group, a.verb): a for a in _TABLE}
_UNKNOWN = {"": "unknown action", "wrapup": "unknown wrap-up action", "call": "unknown call action"}
GROUPS = ("", "wrapup", "call", "callbacks")


def verbs(group: str, *, workstation: bool = True) -> list[str]:
    """The verbs a group's ``{action}`` path parameter takes, in the table's order (on the
    workstation, or with ``workstation=False`` on the control site)."""
    return [a.verb for a in _TABLE if a.group == group and (a.workstation or not workstation)]


def body_schema(group: str) -> Schema:
    """The JSON body a group's route takes: every field of its actions (each optional in the
    document, since which are needed depends on the action), nothing else."""
    props: Schema = {}
    for action in _TABLE:
        if action.group == group:
            for f in action.fields:
                if not isinstance(f, CallbackId):
                    props[f.key] = f.schema()
    return {"type": "object", "properties": props, "additionalProperties": False}


def find(group: str, verb: str, *, workstation: bool = False) -> AgentAction:
    """The action at ``group``/``verb``; a 404 naming what was asked for otherwise (also for an
    action of the control site only, asked for on the workstation)."""
    action = _BY_PLACE.get((group, verb))
    if action is None or (workstation and not action.workstation):
        raise ActionRefused(404, f"{_UNKNOWN.get(group, 'unknown action')} {verb}")
    return action


async def dispatch(
    acd: Acd,
    control: CallControl,
    agent_id: str,
    group: str,
    verb: str,
    data: Mapping[str, Any],
    path: Mapping[str, str] | None = None,
    *,
    workstation: bool = False,
) -> Done:
    """Find the action, check its body, perform it for ``agent_id``. Raises :class:`ActionRefused`:
    404 for an unknown action, 400 for a bad body (nothing done), 403 for a summary of a call the
    agent did not serve, 409 with the controller's reason for anything else it refuses."""
    action = find(group, verb, workstation=workstation)
    args = action.validate(data, path)
    try:
        return await action.perform(acd, control, agent_id, args)
    except SummaryRefused as exc:
        raise ActionRefused(403, str(exc)) from exc
    except AgentError as exc:
        raise ActionRefused(409, str(exc)) from exc
